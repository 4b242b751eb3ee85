"""Where the shipped resources (models, icons) are, in a source tree, an install or a bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["resources_dir", "models_dir", "installed_resources_dir", "source_resources_dir"]


def installed_resources_dir() -> Path:
    """``engine/_resources``: where a wheel (``pip install .``) puts ``resources/`` (see setup.py)."""
    return Path(__file__).resolve().parent / "_resources"


def source_resources_dir() -> Path:
    """``resources/`` of the source tree beside ``engine/`` (a checkout or an editable install)."""
    return Path(__file__).resolve().parents[1] / "resources"


def resources_dir() -> Path:
    """The ``resources/`` folder.

    Looked up, in order: ``$ODT_STUDIO_RESOURCES``; the PyInstaller bundle's data folder
    (``sys._MEIPASS/resources``); the installed package data ``engine/_resources`` (a
    non-editable install); the source tree beside ``engine/`` (the path returned when none
    of them exists).
    """
    env = os.environ.get("ODT_STUDIO_RESOURCES")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    installed = installed_resources_dir()
    if installed.is_dir():
        return installed
    return source_resources_dir()


def models_dir() -> Path:
    """Shipped model weights and cards (``$ODT_STUDIO_MODELS`` overrides)."""
    env = os.environ.get("ODT_STUDIO_MODELS")
    return Path(env) if env else resources_dir() / "models"
