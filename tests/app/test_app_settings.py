"""Settings: window layout, last/recent projects, reset."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMainWindow

from app.settings import MAX_RECENT, AppSettings, reset_settings


def test_window_geometry_round_trips(qtbot, tmp_path: Path):
    ini = tmp_path / "s.ini"
    w = QMainWindow()
    qtbot.addWidget(w)
    w.resize(610, 407)  # inside the 800×600 offscreen screen
    w.move(33, 44)
    AppSettings(ini).save_window(w)
    w2 = QMainWindow()
    qtbot.addWidget(w2)
    assert AppSettings(ini).restore_window(w2)
    assert (w2.width(), w2.height()) == (610, 407)
    assert not AppSettings(tmp_path / "empty.ini").restore_window(QMainWindow())


def test_recent_projects_are_ordered_deduplicated_and_capped(tmp_path: Path):
    s = AppSettings(tmp_path / "s.ini")
    assert s.recent_projects() == [] and s.last_project is None
    for i in range(MAX_RECENT + 3):
        s.add_recent_project(tmp_path / f"p{i}")
    s.add_recent_project(tmp_path / "p5")
    again = AppSettings(tmp_path / "s.ini")  # a new session reads the same values
    recent = again.recent_projects()
    assert len(recent) == MAX_RECENT
    assert recent[0] == str(tmp_path / "p5") and recent.count(str(tmp_path / "p5")) == 1
    assert recent[1] == str(tmp_path / f"p{MAX_RECENT + 2}")
    assert again.last_project == str(tmp_path / "p5")
    again.remove_recent_project(tmp_path / "p5")
    assert str(tmp_path / "p5") not in again.recent_projects() and again.last_project is None


def test_single_recent_project_survives_a_reload(tmp_path: Path):
    AppSettings(tmp_path / "s.ini").add_recent_project("/data/one")
    assert AppSettings(tmp_path / "s.ini").recent_projects() == [str(Path("/data/one"))]


def test_reset_forgets_everything(tmp_path: Path, qtbot):
    ini = tmp_path / "s.ini"
    s = AppSettings(ini)
    s.add_recent_project(tmp_path / "proj")
    s.first_run_done = True
    s.import_root = tmp_path
    w = QMainWindow()
    qtbot.addWidget(w)
    s.save_window(w)
    assert reset_settings(ini) == str(ini)
    fresh = AppSettings(ini)
    assert fresh.recent_projects() == [] and fresh.last_project is None
    assert not fresh.first_run_done and fresh.import_root is None
    assert fresh.value("window/geometry") is None


def test_default_settings_live_in_the_user_config_folder(isolated_user_dirs: Path):
    s = AppSettings()
    assert Path(s.file_name).is_relative_to(isolated_user_dirs / "config")
    s.first_run_done = True
    assert Path(s.file_name).exists()
    reset_settings()
    assert not AppSettings().first_run_done
