"""Shipped desktop resources: application icon and desktop entry."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from app import paths

RES = Path(__file__).resolve().parents[2] / "resources"


def test_resources_are_found_from_the_package():
    assert paths.resources_dir() == RES
    assert paths.icon_path("odt-studio.svg") == RES / "icons" / "odt-studio.svg"
    assert paths.icon_path("no-such-icon.svg") is None


def test_icon_svg_and_png_render(qtbot):
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    r = QSvgRenderer(str(RES / "icons" / "odt-studio.svg"))
    assert r.isValid() and r.defaultSize().width() == 256
    img = QImage(str(RES / "icons" / "odt-studio.png"))
    assert (img.width(), img.height()) == (256, 256)
    assert img.hasAlphaChannel() and img.pixelColor(0, 0).alpha() == 0, "rounded corners are transparent"
    assert img.pixelColor(128, 128).alpha() == 255


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(RES / "odt-studio.desktop", encoding="utf-8")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application" and e["Name"] == "ODT Studio"
    assert e["Exec"] == "odt-studio %f" and e["Icon"] == "odt-studio"
    assert e["MimeType"] == "application/x-odt-result;"
    assert "Science" in e["Categories"].split(";")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_validates():
    out = subprocess.run(["desktop-file-validate", str(RES / "odt-studio.desktop")], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout
