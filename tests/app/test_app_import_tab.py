"""Acquisition import tab: folder scan in the job runner, table, preview, drag and drop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.jobs import JobRunner
from app.logic.importing import VALID_TEXT, scan_measurements
from app.tabs.import_tab import ImportTab
from app.widgets.measurement_table import MeasurementTableModel
from engine.progress import Cancelled, CancelToken
from engine.store.folders import inspect_measurement


@pytest.fixture
def tab(qtbot, runner: JobRunner, settings):
    t = ImportTab(runner, settings)
    qtbot.addWidget(t)
    t.resize(1100, 600)
    return t


def _scan(qtbot, tab: ImportTab, root: Path):
    with qtbot.waitSignal(tab.scan_finished, timeout=10000) as blocker:
        job = tab.set_root(root)
    assert job is not None
    return blocker.args[0]


def _table(tab: ImportTab) -> dict[str, list[str]]:
    rows = {}
    for r in range(tab.proxy.rowCount()):
        cells = [tab.proxy.index(r, c).data() for c in range(tab.proxy.columnCount())]
        rows[cells[0]] = cells
    return rows


def test_scan_lists_every_measurement_with_its_status(qtbot, tab, measurements_root, settings):
    started = []
    tab.runner.job_started.connect(lambda job: started.append(job.name))
    infos = _scan(qtbot, tab, measurements_root)
    assert any(name.startswith("Scanning") for name in started), "the scan runs in the job runner"
    assert len(infos) == 3
    rows = _table(tab)
    assert rows["cell_01"] == ["cell_01", "HeLa cell 1", "3", "40 × 32", VALID_TEXT]
    assert rows["cell_02"] == ["cell_02", "HeLa cell 2", "4", "24 × 24", VALID_TEXT]
    bad = rows["cell_03_bad"]
    expected_error = inspect_measurement(measurements_root / "cell_03_bad").error
    assert expected_error and bad[4] == expected_error, "the status is the exact validation error"
    assert "medium_index" in bad[4]
    assert tab.summary.text().startswith("3 measurement folder(s) found: 2 valid, 1 with errors")
    assert settings.import_root == str(measurements_root)


def test_selecting_a_measurement_previews_its_holograms(qtbot, tab, measurements_root):
    with qtbot.waitSignal(tab.measurement_loaded, timeout=10000) as blocker:
        _scan(qtbot, tab, measurements_root)  # the first valid measurement is selected and loaded
    m = blocker.args[0]
    assert m.name == "cell_01"
    expected = np.stack([tifffile.imread(p) for p in sorted((measurements_root / "cell_01" / "sample").glob("*.tif"))])
    np.testing.assert_array_equal(tab.viewer.data, expected)
    assert tab.viewer.stack.currentWidget() is tab.viewer.image_view
    assert tab._detail_labels["Wavelength"].text() == "532 nm"
    assert tab._detail_labels["Pixel size"].text() == "0.1 µm"
    tab.which.setCurrentIndex(1)
    np.testing.assert_array_equal(tab.viewer.data, m.backgrounds)

    with qtbot.waitSignal(tab.measurement_loaded, timeout=10000) as blocker:
        assert tab.select_measurement(measurements_root / "nested" / "cell_02")
    assert blocker.args[0].holograms.shape == (4, 24, 24)


def test_an_invalid_measurement_shows_its_error_instead_of_a_preview(qtbot, tab, measurements_root):
    _scan(qtbot, tab, measurements_root)
    tab.runner.wait(5)
    started = []
    tab.runner.job_started.connect(lambda job: started.append(job))
    assert tab.select_measurement(measurements_root / "cell_03_bad")
    assert tab.viewer.stack.currentWidget() is tab.viewer.message
    assert "cannot be imported" in tab.viewer.message.text()
    assert "medium_index" in tab.viewer.message.text()
    assert tab.viewer.data is None and not started
    assert not tab.which.isEnabled()


def test_an_empty_folder_says_nothing_was_found(qtbot, tab, tmp_path):
    (tmp_path / "empty").mkdir()
    assert _scan(qtbot, tab, tmp_path / "empty") == []
    assert tab.left_stack.currentWidget() is tab.empty
    assert "No measurement folders found" in tab.empty.text()


def test_dropping_a_folder_scans_it(qtbot, tab, measurements_root):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(measurements_root))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(tab, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(tab.scan_finished, timeout=10000) as blocker:
        QApplication.sendEvent(tab, drop)
    assert len(blocker.args[0]) == 3
    assert tab.root == measurements_root and tab.root_edit.text() == str(measurements_root)


def test_dropping_something_that_is_not_a_folder_is_refused(qtbot, tab, tmp_path):
    mime = QMimeData()
    mime.setText("just text")
    enter = QDragEnterEvent(QPoint(1, 1), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(tab, enter)
    assert not enter.isAccepted()


def test_scan_function_follows_the_progress_and_cancel_protocol(measurements_root):
    seen = []
    infos = scan_measurements(measurements_root, progress=lambda f, m="": seen.append((f, m)))
    assert [i.name for i in infos] == ["cell_01", "cell_03_bad", "cell_02"]
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0
    assert all(0.0 <= f <= 1.0 for f, _ in seen)
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        scan_measurements(measurements_root, cancel=tok)


def test_table_sorts_numerically_by_image_count(qtbot, tab, measurements_root):
    _scan(qtbot, tab, measurements_root)
    tab.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
    counts = [tab.proxy.index(r, 2).data() for r in range(tab.proxy.rowCount())]
    assert counts == ["4", "3", "–"]
    assert MeasurementTableModel.COLUMNS == ("Name", "Sample", "Images", "Image size", "Status")


def test_rescan_keeps_the_selected_measurement(qtbot, tab, measurements_root, make_measurement):
    _scan(qtbot, tab, measurements_root)
    with qtbot.waitSignal(tab.measurement_loaded, timeout=10000):
        tab.select_measurement(measurements_root / "nested" / "cell_02")
    make_measurement(measurements_root / "cell_00_new", n=2)
    with qtbot.waitSignal(tab.scan_finished, timeout=10000) as blocker:
        tab.rescan_button.click()
    assert len(blocker.args[0]) == 4
    assert tab.selected_path() == measurements_root / "nested" / "cell_02"


def test_selecting_a_row_after_the_runner_shut_down_starts_no_job(qtbot, tab, measurements_root):
    """A scan that ends while the window closes selects a row: that must not submit to a closed runner."""
    _scan(qtbot, tab, measurements_root)
    assert tab.runner.shutdown(timeout_s=5.0) and tab.runner.closed
    shown = tab.preview_title.text()
    other = next(r for r in range(tab.proxy.rowCount()) if tab.proxy.index(r, 0).data() != shown.split("— ")[-1])
    tab.table.selectRow(other)  # an exception in the slot would fail the test (pytest-qt)
    assert tab.preview_title.text() == shown


@pytest.mark.parametrize("pixel_size_um, unit", [(2e-4, "µm"), (40.0, "µm"), (None, "px")])
def test_hologram_axes_never_take_an_si_prefix(qtbot, pixel_size_um, unit):
    """No "mµm", "kµm" or "kpx" (issue #17): positions always read in µm, or in pixels."""
    from app.widgets.image_view import HologramView

    v = HologramView()
    qtbot.addWidget(v)
    v.resize(400, 400)
    v.show()
    v.set_stack(np.zeros((2, 64, 64), np.float32) + np.arange(64, dtype=np.float32), pixel_size_um=pixel_size_um)
    qtbot.wait(50)
    for side in ("bottom", "left"):
        label = v.plot.getAxis(side).labelString()
        assert f"({unit})" in label, label
