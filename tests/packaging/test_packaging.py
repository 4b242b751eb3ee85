"""Light checks of the installer recipes (no bundle is built here: ``packaging/build.sh --check``
does the full smoke test). They catch a broken desktop entry, a MIME type that does not match
it, a spec that forgets ``resources/`` or excludes a package the code imports, and installer
recipes that lose their file association."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import importlib.util
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging"
SPEC = PKG / "odt-studio.spec"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"
RESULT_MIME = "application/x-odt-result"


def _desktop_entry() -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str  # keys are case-sensitive
    cp.read(ROOT / "resources" / "odt-studio.desktop", encoding="utf-8")
    return cp["Desktop Entry"]


def _spec_constants() -> dict:
    """The literal assignments at the top level of the spec (lists, tuples, sets, strings)."""
    out = {}
    for node in ast.parse(SPEC.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _imported_top_level_packages(*folders: str) -> set[str]:
    names = set()
    for folder in folders:
        for py in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return names


# ------------------------------------------------------------------ desktop entry and MIME
def test_desktop_entry_opens_result_files_with_the_launcher():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Exec"].split()[0] == "odt-studio"  # /usr/bin/odt-studio from the .deb
    assert re.search(r"%[fFuU]", entry["Exec"]), "Exec must pass the double-clicked file"
    assert entry["Icon"] == "odt-studio"  # installed in hicolor under this name
    assert RESULT_MIME in entry["MimeType"].split(";")
    assert entry["Terminal"] == "false"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_passes_desktop_file_validate():
    r = subprocess.run(["desktop-file-validate", str(ROOT / "resources" / "odt-studio.desktop")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_mime_type_claims_result_files_only():
    root = ET.parse(PKG / "linux" / "odt-studio-mime.xml").getroot()
    types = root.findall(f"{MIME_NS}mime-type")
    assert [t.get("type") for t in types] == [RESULT_MIME]
    globs = [g.get("pattern") for g in types[0].findall(f"{MIME_NS}glob")]
    assert globs
    matches = lambda name: any(fnmatch.fnmatchcase(name, g) for g in globs)  # noqa: E731
    assert matches("cell_003.odt.h5")
    assert not matches("truth.h5") and not matches("report.odt")  # plain HDF5 / OpenDocument text
    icon = types[0].find(f"{MIME_NS}icon")
    assert icon is not None and icon.get("name") == _desktop_entry()["Icon"]


def test_icons_for_hicolor_exist():
    png = ROOT / "resources" / "icons" / "odt-studio.png"
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (256, 256)  # installed as hicolor/256x256/apps
    assert "<svg" in (ROOT / "resources" / "icons" / "odt-studio.svg").read_text()[:2000]


# ------------------------------------------------------------------ PyInstaller spec
def test_spec_is_valid_python_and_bundles_resources_as_resources():
    src = SPEC.read_text()
    ast.parse(src)
    assert 'datas = [(str(RESOURCES), "resources")]' in src
    # every engine module but the training code (tests/packaging/test_training_split.py)
    assert 'collect_submodules("engine", filter=_shipped)' in src and 'collect_submodules("app")' in src
    assert "odt_studio_main.py" in src and (PKG / "odt_studio_main.py").is_file()


def test_spec_vtk_modules_exist_and_avoid_the_vtk_facade():
    mods = _spec_constants()["VTK_MODULES"]
    assert "vtkmodules.vtkRenderingVolumeOpenGL2" in mods
    assert "vtk" not in mods and "vtkmodules.all" not in mods
    missing = [m for m in mods if importlib.util.find_spec(m.rsplit(".", 1)[0]) is None
               or importlib.util.find_spec(m) is None]
    assert not missing


def test_spec_lists_every_vtk_module_the_app_imports():
    """The bundle carries only VTK_MODULES (and what they need): a new VTK import in app/ must
    be added there, and the ``vtk`` facade (all of VTK, ~280 MB more) must not be used."""
    imported = {n for n in _imported_top_level_packages("app", "engine") if n.split(".")[0] in ("vtk", "vtkmodules")}
    assert "vtk" not in imported and "vtkmodules.all" not in imported
    missing = sorted(imported - set(_spec_constants()["VTK_MODULES"]) - {"vtkmodules"})
    assert not missing, f"add to VTK_MODULES in packaging/odt-studio.spec: {missing}"


def test_spec_excludes_nothing_the_code_imports():
    consts = _spec_constants()
    excluded = set(consts["UNUSED_PY"])
    # UNUSED_QT is a comprehension, not a literal: read its names from the source
    qt = {f"PySide6.{m}" for m in re.findall(r'"(Qt\w+)"', SPEC.read_text().split("UNUSED_QT")[1].split("]")[0])}
    assert "PySide6.QtWebEngineWidgets" in qt and "PySide6.QtWidgets" not in qt
    imported = _imported_top_level_packages("app", "engine")
    clash = sorted(n for n in imported
                   if any(n == e or n.startswith(e + ".") for e in excluded | qt))
    assert not clash, f"the spec excludes modules that app/engine import: {clash}"


def test_spec_keeps_what_torch_needs_at_run_time():
    drop = _spec_constants()["DROP_PREFIXES"]
    assert "torch/test/" in drop and "PySide6/Qt/translations/" in drop
    for needed in ("torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/_C.cpython-311.so",
                   "PySide6/Qt/plugins/platforms/libqxcb.so",
                   "PySide6/Qt/plugins/platforms/libqoffscreen.so", "resources/models/x.safetensors"):
        assert not needed.startswith(tuple(drop)), needed
    assert "torch_shm_manager" in _spec_constants()["KEEP_TORCH_BIN"]
    # the GTK-only cut must not touch what the Qt xcb platform plugin links against
    gtk_only = _spec_constants()["GTK_ONLY"]
    for needed in ("libglib-2.0.so.0", "libdbus-1.so.3", "libfontconfig.so.1", "libfreetype.so.6",
                   "libX11.so.6", "libxcb.so.1", "libxcb-render.so.0", "libxcb-shm.so.0",
                   "libxkbcommon.so.0", "libpcre2-8.so.0", "PySide6/Qt/plugins/platforms/libqxcb.so"):
        assert not needed.startswith(gtk_only), needed


def test_entry_script_calls_freeze_support_before_the_app():
    src = (PKG / "odt_studio_main.py").read_text()
    assert src.index("freeze_support()") < src.index("from app.cli import main")


def test_bundle_paths_resolve_to_the_bundled_resources(tmp_path, monkeypatch):
    """In a one-folder bundle, sys._MEIPASS is ``_internal`` and frozen modules get
    ``__file__`` = ``_MEIPASS/<package>/<module>.pyc``: every way the code finds
    ``resources/`` must land on ``_MEIPASS/resources``."""
    from engine import resources as res

    meipass = tmp_path / "_internal"
    (meipass / "resources" / "models").mkdir(parents=True)
    monkeypatch.delenv("ODT_STUDIO_RESOURCES", raising=False)
    monkeypatch.delenv("ODT_STUDIO_MODELS", raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(meipass), raising=False)
    assert res.resources_dir() == meipass / "resources"
    assert res.models_dir() == meipass / "resources" / "models"
    # the __file__-based constants of engine/models.py, engine/screening/network.py, app/paths.py
    models_py = Path(meipass / "engine" / "models.pyc").resolve()
    network_py = Path(meipass / "engine" / "screening" / "network.pyc").resolve()
    paths_py = Path(meipass / "app" / "paths.pyc").resolve()
    assert models_py.parent.parent / "resources" / "models" == meipass.resolve() / "resources" / "models"
    assert network_py.parents[2] / "resources" / "models" == meipass.resolve() / "resources" / "models"
    assert paths_py.parent.parent / "resources" == meipass.resolve() / "resources"


# ------------------------------------------------------------------ build script and .deb parts
def test_build_script_is_valid_bash_with_a_check_mode():
    sh = PKG / "build.sh"
    assert sh.stat().st_mode & 0o111
    r = subprocess.run(["bash", "-n", str(sh)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    src = sh.read_text()
    for needed in ("--check", "dpkg-deb --root-owner-group -Zzstd -z3 --build", "dpkg -i", "dpkg -r",
                   "--self-test", "QT_QPA_PLATFORM=offscreen", "desktop-file-validate"):
        assert needed in src, needed


def test_debian_parts():
    lin = PKG / "linux"
    launcher = (lin / "launcher.sh").read_text()
    assert launcher.startswith("#!/bin/sh") and 'exec /opt/odt-studio/odt-studio "$@"' in launcher
    control = (lin / "control.in").read_text()
    fields = dict(line.split(": ", 1) for line in control.splitlines() if re.match(r"^[A-Z][\w-]*: ", line))
    assert fields["Package"] == "odt-studio" and fields["Version"] == "@VERSION@"
    assert {"Maintainer", "Architecture", "Description", "Depends", "Installed-Size"} <= fields.keys()
    for script in ("postinst", "prerm", "postrm"):
        p = lin / script
        assert p.stat().st_mode & 0o111, script
        assert subprocess.run(["sh", "-n", str(p)]).returncode == 0, script
    assert "update-mime-database" in (lin / "postinst").read_text()
    assert "update-desktop-database" in (lin / "postrm").read_text()


# ------------------------------------------------------------------ Windows and macOS recipes
def test_inno_setup_script_has_shortcut_association_and_uninstall():
    iss = (PKG / "windows" / "odt-studio.iss").read_text(encoding="utf-8")
    sections = set(re.findall(r"^\[(\w+)\]", iss, flags=re.M))
    assert {"Setup", "Files", "Icons", "Registry", "Run"} <= sections
    assert re.search(r'Name:\s*"\{group\}\\ODT Studio"', iss)  # Start-menu shortcut
    assert ".odt.h5" in iss and "uninsdeletekey" in iss and "ChangesAssociations=yes" in iss
    assert r'"%1"' in iss  # the double-clicked file is passed on
    assert "odt-studio.exe" in iss and "dist\\odt-studio" in iss.replace("/", "\\")


def test_macos_bundle_is_hidpi_with_result_document_type():
    src = SPEC.read_text()
    bundle = src[src.index("BUNDLE("):]
    assert '"NSHighResolutionCapable": True' in bundle
    assert '"CFBundleTypeExtensions": ["odt.h5"]' in bundle
    assert (PKG / "macos" / "make_icns.sh").is_file()
    assert "iconutil" in (PKG / "macos" / "make_icns.sh").read_text()
    readme = (PKG / "README.md").read_text()
    assert "cannot be built here" in readme.lower() or "not built here" in readme.lower()
