"""``pip install .`` gives a working program: build the wheel from the files a clean clone has,
install it into a fresh virtual environment and run the installed ``odt-studio --self-test``
from outside the source tree, so the models must come from the installed package data.

To take seconds, not minutes, the fresh environment reuses the packages already installed in
the test's own environment (torch, numpy, ...): a ``.pth`` file adds that environment's
site-packages *after* the new one's, as a plain path, so its own ``.pth`` files (the editable
install of this checkout among them) are not processed and the checkout never gets on
``sys.path``. The wheel is installed with ``--no-deps --no-index``: no network is used.

The packages of the optional extras (gui, cluster, export, napari) are hidden from that
environment by an import blocker, as in a plain ``pip install .``: the headless program must
work without them, and the desktop entry must say how to get them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("birefringence-generator", "deep_regularizer", "screening-compact", "screening-published")
#: import names of the optional extras' packages, hidden from the fresh environment
EXTRAS_ONLY = ("PySide6", "shiboken6", "pyqtgraph", "vtk", "vtkmodules", "platformdirs", "dask", "distributed",
               "zarr", "napari")
BLOCKER_PTH = (
    "import sys, importlib.abc; exec({code!r})\n"
)
BLOCKER_CODE = (
    "class _HideExtras(importlib.abc.MetaPathFinder):\n"
    "    names = {names!r}\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in self.names:\n"
    "            raise ModuleNotFoundError(f'No module named {{name!r}} (hidden: not in a plain install)', name=name)\n"
    "        return None\n"
    "sys.meta_path.insert(0, _HideExtras())\n"
)


def _clean_clone_files() -> list[str]:
    """Paths (relative to ROOT) that a clone of this working tree has: tracked and new files."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git to know which files a clean clone has")
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       cwd=ROOT, capture_output=True, check=True)
    return [p for p in r.stdout.decode().split("\0") if p and (ROOT / p).is_file()]


def _copy_clean_clone(dest: Path) -> None:
    for rel in _clean_clone_files():
        if rel.startswith(("tests/", "docs/", "packaging/")):  # not needed to build the wheel
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "ODT_STUDIO_RESOURCES", "ODT_STUDIO_MODELS")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin folder, wheel path, seconds per step) of a fresh install of the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src, dist, env_dir = tmp / "src", tmp / "dist", tmp / "venv"
    times = {}

    t = time.perf_counter()
    _copy_clean_clone(src)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(dist), str(src)], capture_output=True, text=True,
                       env=_clean_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BuildBackendWarning" not in r.stderr, r.stderr  # e.g. a data folder setuptools does not know
    wheel = next(dist.glob("odt_studio-*.whl"))
    times["build"] = time.perf_counter() - t

    t = time.perf_counter()
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # reuse torch & co. from this environment; a plain path line: its .pth files are not run
    Path(purelib, "zz_reuse_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = BLOCKER_CODE.format(names=set(EXTRAS_ONLY))
    Path(purelib, "zz_hide_extras.pth").write_text(BLOCKER_PTH.format(code=code))
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], capture_output=True, text=True, env=_clean_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    times["install"] = time.perf_counter() - t
    return py, bindir, wheel, times


def test_wheel_carries_the_models_as_package_data(installed):
    _, _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for m in MODELS:
        assert f"engine/_resources/models/{m}.safetensors" in names, m
        assert f"engine/_resources/models/{m}.json" in names, m  # the model card
    assert "engine/_resources/icons/odt-studio.png" in names
    assert "engine/_resources/odt-studio.desktop" in names
    assert "engine/napari_plugin/napari.yaml" in names
    # not in the wheel: screenshots, training logs
    assert not [n for n in names if "screenshots" in n or n.endswith(".log")]
    size_mb = wheel.stat().st_size / 2**20
    print(f"\nwheel {wheel.name}: {size_mb:.1f} MB, {len(names)} files")
    assert size_mb < 40


@pytest.mark.slow
def test_installed_self_test_passes_outside_the_source_tree(installed, tmp_path):
    py, bindir, _, times = installed
    # the installed copy is the one imported, and it finds its models in its own package data
    r = subprocess.run([str(py), "-c", "import engine, app.cli, engine.resources as r; "
                        "print(engine.__file__); print(app.cli.__file__); print(r.models_dir())"],
                       cwd=tmp_path, capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    site = Path(py).parent.parent.resolve()
    for line in r.stdout.split():
        p = Path(line).resolve()
        assert site in p.parents and ROOT not in p.parents, line
    assert r.stdout.split()[-1].endswith(os.path.join("engine", "_resources", "models"))

    t = time.perf_counter()
    exe = bindir / ("odt-studio.exe" if os.name == "nt" else "odt-studio")
    r = subprocess.run([str(exe), "--self-test"], cwd=tmp_path, capture_output=True, text=True,
                       env=_clean_env(), timeout=300)
    times["self-test"] = time.perf_counter() - t
    print(f"\n{r.stderr}\ntimes (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr
    models_line = next(line for line in r.stderr.splitlines() if "shipped models" in line)
    assert all(m in models_line for m in MODELS), models_line
    assert str(ROOT / "resources") not in r.stderr


def test_plain_install_hides_the_extras_and_the_desktop_entry_says_how_to_get_them(installed, tmp_path):
    py, bindir, _, _ = installed
    r = subprocess.run([str(py), "-c", "import PySide6"], cwd=tmp_path, capture_output=True, text=True,
                       env=_clean_env(), timeout=60)
    assert r.returncode != 0 and "hidden" in r.stderr  # the blocker works
    exe = bindir / ("odt-studio.exe" if os.name == "nt" else "odt-studio")
    r = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert 'pip install "odt-studio[gui]"' in r.stderr and "PySide6-Essentials" in r.stderr
    r = subprocess.run([str(exe), "batch", "--help"], cwd=tmp_path, capture_output=True, text=True,
                       env=_clean_env(), timeout=120)
    assert r.returncode == 0 and "--log-level" in r.stdout


def test_resources_are_found_installed_first(tmp_path, monkeypatch):
    """An install's package data wins over a ``resources/`` beside the package (in site-packages
    that could be another project's folder); the source tree is the fallback."""
    from engine import resources as res

    monkeypatch.delenv("ODT_STUDIO_RESOURCES", raising=False)
    monkeypatch.delenv("ODT_STUDIO_MODELS", raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    installed_dir = tmp_path / "engine" / "_resources"
    monkeypatch.setattr(res, "installed_resources_dir", lambda: installed_dir)
    assert res.resources_dir() == res.source_resources_dir() == ROOT / "resources"  # a checkout
    (installed_dir / "models").mkdir(parents=True)
    assert res.models_dir() == installed_dir / "models"
    monkeypatch.setenv("ODT_STUDIO_MODELS", str(tmp_path / "mine"))
    assert res.models_dir() == tmp_path / "mine"


def test_setup_maps_resources_to_package_data_that_pyproject_declares():
    setup_py = (ROOT / "setup.py").read_text()
    assert 'package_dir={"engine._resources": "resources"}' in setup_py
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"engine._resources.models" = ["*.safetensors", "*.json"]' in pyproject
    assert not (ROOT / "engine" / "_resources").exists(), "engine/_resources is made by the wheel only"
