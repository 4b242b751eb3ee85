"""The main window: tabs, menus, status bar, projects, demo, dialogs, run_gui."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

import engine
from app import demo as demo_module
from app.errors import open_error_dialogs
from app.jobs import JobState
from app.main_window import TAB_TITLES, MainWindow, run_gui
from app.settings import AppSettings
from app.tabs.import_tab import ImportTab
from app.tabs.birefringence_tab import BirefringenceTab
from app.tabs.reconstruction_tab import ReconstructionTab
from app.tabs.screening_tab import ScreeningTab
from engine.backend import device_description


@pytest.fixture
def window(qtbot, settings):
    w = MainWindow(settings=settings, restore_layout=False)
    qtbot.addWidget(w)
    yield w
    w.runner.shutdown(5.0)


def _menu_texts(menu) -> list[str]:
    return [a.text().replace("&", "") for a in menu.actions() if not a.isSeparator()]


def test_four_tabs_with_the_mission_names(window):
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == list(TAB_TITLES) == ["Acquisition import", "Screening review", "Reconstruction",
                                          "Birefringence viewer"]
    assert isinstance(window.tabs.widget(0), ImportTab)


def test_every_tab_is_its_real_view(window):
    assert isinstance(window.tabs.widget(1), ScreeningTab)
    assert isinstance(window.tabs.widget(2), ReconstructionTab)
    assert isinstance(window.tabs.widget(3), BirefringenceTab)


def test_menus_and_shortcuts(window):
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Help"]
    file_items = _menu_texts(window.file_menu)
    for item in ("New project…", "Open project…", "Open Recent", "Quit"):
        assert item in file_items
    assert window.recent_menu.menuAction() in window.file_menu.actions()
    assert _menu_texts(window.help_menu)[0] == "Keyboard shortcuts"
    assert "About ODT Studio" in _menu_texts(window.help_menu)
    keys = dict(window.shortcut_list())
    assert keys["Open project"] == "Ctrl+O" and keys["New project"] == "Ctrl+N"
    assert keys["Quit"] == "Ctrl+Q" and keys["Keyboard shortcuts"] == "F1"
    assert keys["Show Reconstruction"] == "Ctrl+3"
    window.tab_actions[2].trigger()
    assert window.tabs.currentIndex() == 2


def test_status_bar_shows_the_compute_device(window):
    assert window.device_label.text() == f"Compute: {device_description()}"
    assert window.device_label.text().startswith(("Compute: CPU", "Compute: CUDA"))
    assert window.project_label.text() == "No project"


def test_about_shows_version_and_device(qtbot, window):
    box = window.show_about()
    try:
        assert box.isVisible()
        assert f"ODT Studio {engine.__version__}" in box.text()
        assert device_description() in box.text()
    finally:
        box.done(0)


def test_shortcuts_dialog_lists_the_shortcuts(qtbot, window):
    dlg = window.show_shortcuts()
    try:
        from PySide6.QtWidgets import QTableWidget

        table = dlg.findChild(QTableWidget)
        rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
        assert rows["Open project"] == "Ctrl+O" and rows["Quit"] == "Ctrl+Q"
    finally:
        dlg.done(0)


def test_open_project_remembers_it_and_fills_the_recent_menu(qtbot, window, tmp_path, settings):
    proj = tmp_path / "my project"
    assert window.open_project(proj, create=True)
    assert window.windowTitle() == "my project — ODT Studio"
    assert window.project_label.text() == "Project: my project"
    assert settings.last_project == str(proj.resolve())
    assert settings.recent_projects()[0] == str(proj.resolve())
    window._fill_recent_menu()
    recent = [a for a in window.recent_menu.actions() if a.data()]
    assert [a.data() for a in recent] == [str(proj.resolve())]
    assert window.project is not None and (proj / "project.sqlite").exists()
    # opening it again (through the recent menu) works too
    window._open_recent(str(proj.resolve()))
    assert window.project_path == proj.resolve()


def test_opening_a_missing_project_shows_an_error(qtbot, window, tmp_path, close_error_dialogs):
    assert not window.open_project(tmp_path / "nope")
    boxes = open_error_dialogs()
    assert len(boxes) == 1 and "nope" in boxes[0].text()
    assert window.project_path is None


def test_closing_saves_the_layout_and_a_new_window_restores_it(qtbot, tmp_path):
    s = AppSettings(tmp_path / "layout.ini")
    w = MainWindow(settings=s, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(780, 560)
    w.show()
    w.close()
    w2 = MainWindow(settings=AppSettings(tmp_path / "layout.ini"))
    qtbot.addWidget(w2)
    assert (w2.width(), w2.height()) == (780, 560)
    w2.runner.shutdown()


def test_job_status_shows_the_running_job(qtbot, window):
    window.show()

    def slow(progress=None, cancel=None):
        for i in range(200):
            cancel.raise_if_cancelled()
            time.sleep(0.01)
            progress(i / 200, f"slice {i}")

    with qtbot.waitSignal(window.runner.job_started, timeout=5000):
        job = window.runner.submit("Reconstructing", slow)
    qtbot.waitUntil(lambda: window.job_status.bar.value() > 0, timeout=5000)
    assert window.job_status.isVisible()
    assert window.job_status.label.text().startswith("Reconstructing")
    window.job_status.cancel_button.click()
    assert window.runner.wait(2.0)
    assert job.state is JobState.CANCELLED and not window.job_status.isVisible()
    assert "cancelled" in window.statusBar().currentMessage()


def _fake_demo_builder(make_measurement, steps: int = 5):
    """A stand-in for ensure_demo_project: progress, cancel checks, then a one-measurement project."""
    from engine.pipeline.demo_project import DemoProject
    from engine.store.project import Project

    calls = []

    def ensure(folder, force=False, progress=None, cancel=None):
        calls.append(Path(folder))
        for i in range(steps):
            cancel.raise_if_cancelled()
            progress(i / steps, "simulating")
            time.sleep(0.01)
        folder = Path(folder)
        m = make_measurement(folder / "measurements" / "bacteria_000", n=4, name="simulated bacterium")
        proj = folder / "project"
        if not (proj / "project.sqlite").exists():
            with Project.create(proj) as p:
                mid = p.add_measurement(m)
        else:
            mid = 1
        return DemoProject(folder=folder, project_path=proj, measurements_dir=folder / "measurements",
                           measurements={"bacteria": {"id": mid, "name": "bacteria_000", "folder": str(m),
                                                      "result": str(proj / "results" / "bacteria_000.odt.h5")}},
                           built=len(calls) == 1)

    return ensure, calls


def test_demo_project_is_prepared_in_a_job_and_opened(qtbot, window, monkeypatch, make_measurement,
                                                      isolated_user_dirs, settings):
    import app.main_window as main_window

    fake, calls = _fake_demo_builder(make_measurement)
    monkeypatch.setattr(demo_module, "demo_available", lambda: True)
    monkeypatch.setattr(main_window, "_demo_builder", lambda: fake)
    with qtbot.waitSignal(window.demo_ready, timeout=15000) as blocker:
        job = window.start_demo()
        assert "Preparing the demo project" in window.import_tab.empty.text()
        assert window.import_tab.left_stack.currentWidget() is window.import_tab.empty
    assert job is not None and job.state is JobState.FINISHED
    demo_dir = isolated_user_dirs / "data" / "odt-studio" / "demo-project"
    assert calls == [demo_dir]
    assert blocker.args[0].built
    assert window.project_path == (demo_dir / "project").resolve()
    assert window.import_tab.root == demo_dir / "measurements"
    assert settings.first_run_done
    assert "Demo project ready" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.demo_ready, timeout=15000) as again:
        window.start_demo()
    assert not again.args[0].built


def test_a_cancelled_demo_puts_back_the_empty_state(qtbot, window, monkeypatch, make_measurement):
    import app.main_window as main_window

    fake, _calls = _fake_demo_builder(make_measurement, steps=500)
    monkeypatch.setattr(demo_module, "demo_available", lambda: True)
    monkeypatch.setattr(main_window, "_demo_builder", lambda: fake)
    job = window.start_demo()
    qtbot.waitUntil(lambda: job.state is JobState.RUNNING, timeout=5000)
    window.runner.cancel(job)
    assert window.runner.wait(2.0) and job.state is JobState.CANCELLED
    assert "No folder chosen" in window.import_tab.empty.text()
    assert window.project is None


def test_without_the_simulator_the_demo_says_so(qtbot, window, monkeypatch):
    monkeypatch.setattr(demo_module, "demo_available", lambda: False)
    assert window.start_demo() is None
    assert "not part of this build" in window.statusBar().currentMessage()
    assert window.runner.current is None


def test_open_path_of_a_folder_scans_it(qtbot, window, measurements_root):
    with qtbot.waitSignal(window.import_tab.scan_finished, timeout=10000) as blocker:
        window.open_path(measurements_root)
    assert len(blocker.args[0]) == 3


def test_main_window_renders_offscreen(qtbot, window, tmp_path):
    from app.theme import apply_theme

    apply_theme(QApplication.instance())
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    img = window.grab().toImage()
    assert (img.width(), img.height()) == (1280, 800)
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(800, img.bytesPerLine() // 4, 4)[:, :1280, :3]
    packed = (arr[..., 0].astype(np.uint32) << 16) | (arr[..., 1].astype(np.uint32) << 8) | arr[..., 2]
    assert len(np.unique(packed)) > 50, "the window drew real content"
    assert arr.mean() < 100, "the dark theme is applied"


def test_run_gui_runs_the_event_loop_and_quits(qtbot, monkeypatch, isolated_user_dirs, measurements_root):
    """run_gui end to end: settings, log file, excepthook, window, event loop, clean exit."""
    from app import errors, logs

    monkeypatch.setattr(demo_module, "demo_available", lambda: False)
    old_sigint = signal.getsignal(signal.SIGINT)
    seen = {}

    def close_soon():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["windows"] = windows
        if windows:
            seen["title"] = windows[0].windowTitle()
            seen["root"] = windows[0].import_tab.root
            windows[0].close()
        QApplication.instance().quit()

    QTimer.singleShot(1500, close_soon)
    try:
        code = run_gui(open_path=str(measurements_root), reset_settings=True)
    finally:
        signal.signal(signal.SIGINT, old_sigint)
        errors.uninstall_excepthook()
        log_file = logs.current_log_file()
        logs.shutdown_logging()
    assert code == 0
    assert len(seen["windows"]) == 1 and seen["title"] == "ODT Studio"
    assert seen["root"] == measurements_root
    assert log_file is not None and log_file.parent == isolated_user_dirs / "state" / "odt-studio" / "log"
    text = log_file.read_text()
    assert "session started" in text and "main window closed" in text
    assert AppSettings().value("window/geometry") is not None


def test_opening_a_result_file_shows_it_in_the_right_tabs(qtbot, window, tmp_path):
    import numpy as np

    from engine.store.results import write_result

    ri = np.full((8, 16, 16), 1.337, np.float32)
    ri[4, 8, 8] = 1.40
    tomogram = {"ri": ri, "voxel_size_um": (0.2, 0.1, 0.1), "origin_um": (-0.8, -0.8, -0.8),
                "medium_index": 1.337, "method": "rytov"}
    plain = write_result(tmp_path / "plain.odt.h5", measurement_json="{}", tomogram=tomogram)
    window.open_path(plain)
    assert window.tabs.currentWidget() is window.reconstruction_tab
    qtbot.waitUntil(lambda: window.reconstruction_tab.current_volume() is not None, timeout=10000)
    assert float(np.max(window.reconstruction_tab.current_volume())) == pytest.approx(1.40)

    director = np.zeros(ri.shape + (3,), np.float32)
    director[..., 2] = 1.0
    biref = write_result(tmp_path / "lc.odt.h5", measurement_json="{}", tomogram=tomogram,
                         birefringence={"n_e": ri + 0.05, "n_o": ri, "director": director})
    window.open_path(biref)
    assert window.tabs.currentWidget() is window.birefringence_tab
    qtbot.waitUntil(lambda: window.runner.wait(0.1), timeout=10000)


def test_file_open_events_queue_until_a_handler_then_go_to_it(qtbot):
    """macOS hands documents over as QEvent.FileOpen, possibly before the window exists."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QFileOpenEvent

    from app.main_window import create_application, file_open_filter

    app = create_application()
    opener = file_open_filter(app)
    assert opener is not None and file_open_filter(create_application()) is opener  # installed once
    opened: list[str] = []
    try:
        QCoreApplication.sendEvent(app, QFileOpenEvent("/data/first.odt.h5"))
        assert opener.pending == ["/data/first.odt.h5"]
        opener.set_handler(opened.append)
        QCoreApplication.sendEvent(app, QFileOpenEvent("/data/second"))
        assert opened == ["/data/first.odt.h5", "/data/second"] and opener.pending == []
    finally:
        opener.set_handler(None)
        opener.pending.clear()


def test_run_gui_opens_a_folder_the_desktop_sent_at_launch(qtbot, monkeypatch, isolated_user_dirs,
                                                           measurements_root):
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtGui import QFileOpenEvent

    from app import errors, logs
    from app.main_window import create_application

    monkeypatch.setattr(demo_module, "demo_available", lambda: False)
    old_sigint = signal.getsignal(signal.SIGINT)
    QCoreApplication.sendEvent(create_application(), QFileOpenEvent(str(measurements_root)))
    seen = {}

    def close_soon():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["root"] = windows[0].import_tab.root if windows else None
        for w in windows:
            w.close()
        QApplication.instance().quit()

    QTimer.singleShot(1500, close_soon)
    try:
        code = run_gui(reset_settings=True)
    finally:
        signal.signal(signal.SIGINT, old_sigint)
        errors.uninstall_excepthook()
        logs.shutdown_logging()
    assert code == 0
    assert seen["root"] == measurements_root
