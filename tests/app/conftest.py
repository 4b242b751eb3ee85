"""Fixtures for the desktop application's tests: isolated user folders and settings."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """Garbage is collected in the GUI thread only, as in the application (see
    ``app.main_window.install_gui_thread_gc``): a collection started by a job's worker thread
    that destroys leftover widgets of earlier tests can deadlock Qt."""
    from app.main_window import install_gui_thread_gc

    install_gui_thread_gc(qapp)
    yield
    from app.main_window import forget_plot_views

    forget_plot_views()  # no noise from pyqtgraph's view registry while the interpreter exits


@pytest.fixture(autouse=True)
def collect_garbage_after_test():
    yield
    import gc

    gc.collect()  # in the GUI thread, before the next test starts worker threads


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user's data, log and config folders at a temporary folder for each test."""
    home = tmp_path / "user"
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(home / sub))
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(home / "config"))
    return home


@pytest.fixture
def settings(tmp_path: Path):
    from app.settings import AppSettings

    return AppSettings(tmp_path / "settings.ini")


@pytest.fixture
def runner(qtbot):
    """A JobRunner that is shut down (every job cancelled, thread joined) after the test."""
    from app.jobs import JobRunner

    r = JobRunner()
    yield r
    assert r.shutdown(timeout_s=5.0), "a job did not stop after cancel"


@pytest.fixture
def close_error_dialogs(qtbot):
    """Close every error dialog a test opened, so none is left open."""
    yield
    from app.errors import open_error_dialogs

    for d in open_error_dialogs():
        d.done(0)


def write_measurement(folder: Path, n: int = 3, shape: tuple[int, int] = (32, 40), name: str = "",
                      dtype=None, seed: int = 0, **meta) -> Path:
    """Write a small valid measurement folder (docs/formats.md §1): fringes as holograms, TIFF files."""
    import json

    import numpy as np
    import tifffile

    dtype = dtype or np.uint16
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sample").mkdir(exist_ok=True)
    (folder / "background").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        phase = 0.6 * np.exp(-((x - shape[1] / 2) ** 2 + (y - shape[0] / 2) ** 2) / (0.08 * shape[0] * shape[1]))
        fringes = 1 + 0.8 * np.cos(2 * np.pi * (x / 4.0 + y / 7.0) + phase * (i + 1))
        img = (fringes * 2000 + rng.normal(0, 20, shape)).clip(0, 65535).astype(dtype)
        bg = ((1 + 0.8 * np.cos(2 * np.pi * (x / 4.0 + y / 7.0))) * 2000).astype(dtype)
        tifffile.imwrite(folder / "sample" / f"{i:03d}.tif", img)
        tifffile.imwrite(folder / "background" / f"{i:03d}.tif", bg)
    md = {"format": "odt-measurement/1", "wavelength_um": 0.532, "medium_index": 1.337,
          "na_objective": 1.2, "pixel_size_um": 0.1, "sample": {"name": name or folder.name}}
    md.update(meta)
    (folder / "measurement.json").write_text(json.dumps(md))
    return folder


@pytest.fixture
def measurements_root(tmp_path: Path) -> Path:
    """A folder with two valid measurements and one whose measurement.json is broken."""
    root = tmp_path / "acquisitions"
    write_measurement(root / "cell_01", n=3, name="HeLa cell 1")
    write_measurement(root / "nested" / "cell_02", n=4, shape=(24, 24), name="HeLa cell 2")
    bad = write_measurement(root / "cell_03_bad", n=2)
    (bad / "measurement.json").write_text('{"format": "odt-measurement/1", "wavelength_um": 0.532}')
    return root


@pytest.fixture
def make_measurement():
    """The :func:`write_measurement` helper, for tests that build their own folders."""
    return write_measurement
