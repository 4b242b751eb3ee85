"""The engine is a plain library: importing it, or running a headless subcommand, loads no Qt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUI_MODULES = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "vtkmodules", "vtk", "shiboken6")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_every_engine_module_imports_without_qt():
    r = _run(f"""
        import importlib, pkgutil, sys
        import engine
        names = []
        for m in pkgutil.walk_packages(engine.__path__, "engine."):
            importlib.import_module(m.name)
            names.append(m.name)
        bad = sorted(k for k in sys.modules if k.split(".")[0] in {GUI_MODULES!r})
        print(len(names), "modules;", "GUI:", bad)
        assert not bad, bad
        assert not any(k == "app" or k.startswith("app.") for k in sys.modules)
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    n = int(r.stdout.split()[0])
    assert n >= 3, r.stdout


def test_headless_subcommands_do_not_import_qt():
    r = _run(f"""
        import sys
        from app import cli
        for argv in (["demo", "--help"], ["batch", "--help"], ["train-screening", "--help"]):
            try:
                cli.main(argv)
            except SystemExit as e:
                assert e.code == 0, (argv, e.code)
        bad = sorted(k for k in sys.modules if k.split(".")[0] in {GUI_MODULES!r})
        assert not bad, bad
        print("ok")
    """)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("ok")


def test_engine_sources_have_no_gui_imports():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")):
                mod = s.split()[1].split(".")[0]
                if mod in GUI_MODULES or mod == "app":
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {s}")
    assert not offenders, "\n".join(offenders)
