"""Training apart from inference (#17): ``engine.training`` stays out of the desktop bundle.

Three checks: the spec, run with stand-ins for PyInstaller's classes, leaves every
``engine.training`` module out and keeps the inference side (the product's own fine-tuning
included); no module of ``app/`` or of ``engine/`` outside ``engine/training`` imports
``engine.training`` (static scan, function-level imports too); and the whole engine plus the
command line import in a fresh interpreter where ``engine.training`` cannot be imported.
"""

from __future__ import annotations

import ast
import pkgutil
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "packaging" / "odt-studio.spec"
TRAINING = "engine.training"


def _is_training(name: str) -> bool:
    return name == TRAINING or name.startswith(TRAINING + ".")


def _module_name(py: Path) -> str:
    parts = list(py.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(py: Path) -> set[str]:
    """Absolute names of every module ``py`` imports (relative imports resolved), at any depth."""
    name = _module_name(py)
    package = name if py.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # "from engine import training"
    return out


def _inference_files() -> list[Path]:
    files = sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "engine").rglob("*.py"))
    return [f for f in files if not _is_training(_module_name(f))]


def test_import_scan_resolves_relative_imports():
    """The scan itself: a relative import of the training package is caught."""
    crops = ROOT / "engine" / "screening" / "crops.py"
    assert "engine.screening.network" in _imports_of(crops)
    assert "engine.progress" in _imports_of(crops)
    data = ROOT / "engine" / "training" / "screening_data.py"
    assert "engine.screening.crops" in _imports_of(data)


def test_no_inference_module_imports_training():
    files = _inference_files()
    assert len(files) > 50 and not any("training" in f.parts for f in files)
    offenders = {str(f.relative_to(ROOT)): sorted(n for n in _imports_of(f) if _is_training(n)) for f in files}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"inference modules importing engine.training: {offenders}"


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants of a module and of its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_inference_module_names_training_in_a_string():
    """No ``importlib.import_module("engine.training...")`` or ``-m engine.training...`` either (docstrings may)."""
    hits = set()
    for f in _inference_files():
        tree = ast.parse(f.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and TRAINING in node.value
                    and id(node) not in docs):
                hits.add(str(f.relative_to(ROOT)))
    assert not hits, f"inference modules naming engine.training: {sorted(hits)}"


# --------------------------------------------------------------------------- the spec
class _Recorder:
    """Stand-in for PyInstaller's Analysis / PYZ / EXE / COLLECT / BUNDLE: keeps its arguments."""

    calls: dict = {}

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs
        self.datas: list = []
        self.binaries: list = []
        self.pure: list = []
        self.scripts: list = []
        _Recorder.calls[type(self).__name__] = self


def _collect_submodules(package: str, filter=None, **_) -> list[str]:
    """PyInstaller's collect_submodules on the source tree, with its ``filter`` argument."""
    pkg = __import__(package)
    names = [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")]
    return [n for n in names if filter is None or filter(n)]


def _run_spec(monkeypatch, env: dict) -> dict:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = _collect_submodules
    hooks.collect_data_files = lambda *a, **k: []
    for name, mod in (("PyInstaller", types.ModuleType("PyInstaller")),
                      ("PyInstaller.utils", types.ModuleType("PyInstaller.utils")),
                      ("PyInstaller.utils.hooks", hooks)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the spec inserts the repository root
    _Recorder.calls = {}
    classes = {n: type(n, (_Recorder,), {}) for n in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    ns = {"__name__": "__main__", "SPECPATH": str(SPEC.parent), "workpath": "/nonexistent", **classes}
    exec(compile(SPEC.read_text(encoding="utf-8"), str(SPEC), "exec"), ns)
    return _Recorder.calls["Analysis"].kwargs


def test_spec_leaves_training_out_and_keeps_the_fine_tuning(monkeypatch):
    analysis = _run_spec(monkeypatch, {"ODT_STUDIO_LEAN": "1", "ODT_STUDIO_TRAINING": "0"})
    hidden = analysis["hiddenimports"]
    assert TRAINING in analysis["excludes"]
    assert not [h for h in hidden if _is_training(h)]
    # the inference side, the product's fine-tuning (odt-studio train-screening) and the metrics stay
    for kept in ("engine.screening.crops", "engine.screening.retrain", "engine.metrics", "engine.pipeline",
                 "engine.tomography.deep_regularizer", "engine.birefringence.generator", "app.cli"):
        assert kept in hidden, kept


def test_spec_can_put_training_back_to_measure_the_cut(monkeypatch):
    analysis = _run_spec(monkeypatch, {"ODT_STUDIO_LEAN": "1", "ODT_STUDIO_TRAINING": "1"})
    assert TRAINING not in analysis["excludes"]
    assert {"engine.training.screening", "engine.training.deep_regularizer"} <= set(analysis["hiddenimports"])


# --------------------------------------------------------------------------- at run time
@pytest.mark.timeout(300)
def test_engine_and_command_line_import_without_training():
    """Every engine module outside engine/training, and app.cli, import with engine.training blocked."""
    code = textwrap.dedent("""
        import importlib, importlib.abc, pkgutil, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "engine.training" or name.startswith("engine.training."):
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        import engine
        names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")
                 if not (m.name == "engine.training" or m.name.startswith("engine.training."))]
        for n in names + ["app.cli"]:
            importlib.import_module(n)
        assert not [m for m in sys.modules if m.startswith("engine.training")]
        print(len(names))
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=280,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split()[-1]) > 40
