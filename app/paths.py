"""Where the desktop application keeps its files: resources, user data and logs.

User folders follow the platform's conventions through :mod:`platformdirs` (on Linux:
``~/.local/share/odt-studio`` for data, ``~/.local/state/odt-studio/log`` for logs); the
``XDG_*`` environment variables move them, which the tests use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import platformdirs

APP_SLUG = "odt-studio"

__all__ = ["APP_SLUG", "resources_dir", "icon_path", "user_data_dir", "user_log_dir", "demo_dir"]


def resources_dir() -> Optional[Path]:
    """The ``resources/`` folder (see :func:`engine.resources.resources_dir`), or None if absent."""
    from engine.resources import resources_dir as engine_resources_dir

    res = engine_resources_dir()
    return res if res.is_dir() else None


def icon_path(name: str = "odt-studio.svg") -> Optional[Path]:
    """Path of an icon in ``resources/icons``, or None when it is not installed."""
    res = resources_dir()
    if res is None:
        return None
    p = res / "icons" / name
    return p if p.is_file() else None


def user_data_dir() -> Path:
    """Per-user data folder (not created here)."""
    return Path(platformdirs.user_data_dir(APP_SLUG, appauthor=False))


def user_log_dir() -> Path:
    """Per-user log folder (not created here)."""
    return Path(platformdirs.user_log_dir(APP_SLUG, appauthor=False))


def demo_dir() -> Path:
    """Where the built-in demo measurement is simulated on first launch."""
    return user_data_dir() / "demo"
