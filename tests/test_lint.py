"""The linters CI runs (configured in pyproject.toml) and the declared dependencies.

* ruff on app/, engine/, tests/, packaging/ and setup.py: pycodestyle, pyflakes, bugbear, and
  RUF100, so that every ``# noqa: CODE`` names a rule that really fires on its line.
* mypy on the modules listed in ``[tool.mypy] files``, with ``warn_unused_ignores``, so that
  every ``# type: ignore[code]`` there is needed.
* Every third-party package that app/ or engine/ imports is declared in pyproject.toml, every
  declared runtime package is imported, and what engine/ imports at module level is a core
  dependency (the headless install and the self-test import every engine module without extras).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")

#: import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "skimage": "scikit-image", "vtkmodules": "vtk", "vtk": "vtk",
                "PySide6": "pyside6-essentials", "yaml": "pyyaml"}
#: extras whose packages are tools or plugins, not imported by app/ or engine/
NOT_IMPORTED_EXTRAS = {"test", "bench", "packaging", "napari"}


def _tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[test]' installs it)")


def test_ruff_finds_nothing():
    _tool("ruff")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "app", "engine", "tests", "packaging",
                        "setup.py"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_finds_nothing_in_its_scope():
    _tool("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ declared dependencies
def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(reqs: list[str]) -> set[str]:
    """Distribution names a list of requirements declares; ``dask[distributed]`` declares both."""
    names = set()
    for req in reqs:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(\[([^\]]*)\])?", req)
        assert m, req
        names.add(_normalise(m.group(1)))
        if m.group(3) and _normalise(m.group(1)) != "odt-studio":
            names.update(_normalise(x) for x in m.group(3).split(","))
    return names


def _third_party_imports(folders: tuple[str, ...], module_level_only: bool = False) -> dict[str, set[str]]:
    """Top-level third-party import names -> files importing them."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for py in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(py.read_text(encoding="utf-8"))
            nodes = tree.body if module_level_only else ast.walk(tree)
            for node in nodes:
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for n in names:
                    top = n.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("app", "engine", "__future__"):
                        continue
                    found.setdefault(top, set()).add(str(py.relative_to(ROOT)))
    return found


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_imported_package_is_declared_and_every_declared_one_imported():
    project = _project()
    core = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project["optional-dependencies"].items()}
    declared = core.union(*extras.values())
    imported = {_normalise(DISTRIBUTION.get(k, k)): files for k, files in _third_party_imports(("app", "engine")).items()}
    undeclared = {k: sorted(v)[:3] for k, v in imported.items() if k not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    runtime = core.union(*(v for k, v in extras.items() if k not in NOT_IMPORTED_EXTRAS))
    runtime -= {"dask", "odt-studio"}  # dask[distributed]: the program imports distributed
    unused = sorted(runtime - set(imported))
    assert not unused, f"declared but never imported by app/ or engine/: {unused}"
    assert "imageio" not in declared and "pillow" in core


def test_engine_and_the_command_line_import_only_core_dependencies_at_module_level():
    """The headless install has no extras: ``--self-test`` imports every engine module."""
    core = _requirement_names(_project()["dependencies"])
    top = _third_party_imports(("engine",), module_level_only=True)
    for f in ("app/cli.py", "app/__main__.py"):
        tree = ast.parse((ROOT / f).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "level", 0) == 0:
                mod = node.names[0].name if isinstance(node, ast.Import) else node.module
                if mod and mod.split(".")[0] not in sys.stdlib_module_names | {"app", "engine", "__future__"}:
                    top.setdefault(mod.split(".")[0], set()).add(f)
    extra_only = {k: sorted(v) for k, v in top.items() if _normalise(DISTRIBUTION.get(k, k)) not in core}
    assert not extra_only, f"module-level imports of packages that only an extra installs: {extra_only}"


def test_extras_for_a_headless_worker():
    extras = _project()["optional-dependencies"]
    assert {"gui", "cluster", "export", "napari", "test", "bench"} <= extras.keys()
    core = _requirement_names(_project()["dependencies"])
    assert not core & {"pyside6-essentials", "pyqtgraph", "vtk", "dask", "distributed", "napari"}
    assert _requirement_names(extras["gui"]) >= {"pyside6-essentials", "pyqtgraph", "vtk"}
    assert "distributed" in _requirement_names(extras["cluster"])
    # .ci/setup installs the test extra: it must bring the whole program and the linters
    test = " ".join(extras["test"])
    assert re.search(r"odt-studio\[[^\]]*gui[^\]]*\]", test) and "cluster" in test and "export" in test
    assert "ruff" in test and "mypy" in test
    assert '-e ".[test]"' in (ROOT / ".ci" / "setup").read_text()
