"""Where the shipped resources (models, icons) are, in a source tree, an install or a bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["resources_dir", "models_dir"]


def resources_dir() -> Path:
    """The ``resources/`` folder.

    Looked up, in order: ``$ODT_STUDIO_RESOURCES``; the PyInstaller bundle's data folder
    (``sys._MEIPASS/resources``); the source tree beside ``engine/``.
    """
    env = os.environ.get("ODT_STUDIO_RESOURCES")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def models_dir() -> Path:
    """Shipped model weights and cards (``$ODT_STUDIO_MODELS`` overrides)."""
    env = os.environ.get("ODT_STUDIO_MODELS")
    return Path(env) if env else resources_dir() / "models"
