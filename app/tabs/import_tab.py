"""Acquisition import tab: choose a root folder, list its measurement folders, preview one.

A thin widget: its jobs and the text it shows are in :mod:`app.logic.importing` (no Qt), the
measurement table (Qt model and view) in :mod:`app.widgets.measurement_table`.

The tab does no science and reads no file itself: finding and checking measurement
folders (:func:`engine.store.folders.discover_measurements`,
:func:`~engine.store.folders.inspect_measurement`) and loading holograms
(:func:`~engine.store.folders.load_measurement`) are engine calls, run in the
:class:`app.jobs.JobRunner` so a slow disk never freezes the window. A folder can be
chosen with the button or dropped onto the tab.

With a project open (:meth:`ImportTab.set_project`), "Import selected into project" adds the
selected folders to the project's catalogue (:meth:`engine.store.project.Project.add_measurement`)
in the job runner, with progress and cancel; a folder that fails is reported and the others
go on; folders already in the project are marked in the table.

Folders of images without ``measurement.json`` (and folders that cannot be listed) are listed
as failed rows that say so (``discover_measurements``' ``on_unrecognised`` and ``on_error``),
so a forgotten metadata file is never skipped silently.

The open project's side-band setting (:attr:`engine.store.project.Project.sideband`: automatic,
for samples denser than their medium, or "as given", the peak with f_x > 0, for samples less
dense than their medium) is chosen here. The preview says how the selected measurement's side
band was chosen: from its result file's ``retrieval/`` record when the project has processed
it, else that it is decided when the fields are retrieved
(:func:`app.logic.importing.sideband_status`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.measurement import Measurement
from engine.pipeline.project_screening import project_sideband
from engine.store.folders import MeasurementInfo

from ..jobs import Job, JobRunner
from ..logic.importing import (ImportOutcome, import_into_project, import_summary, load_preview,
                               measurement_details, scan_measurements, scan_summary, sideband_status)
from ..settings import AppSettings
from ..widgets.image_view import HologramView
from ..widgets.measurement_table import MeasurementTable
from .import_controls import MeasurementDetails, RootFolderBar, SidebandSetting

__all__ = ["ImportTab"]

log = logging.getLogger(__name__)


class ImportTab(QWidget):
    """The "Acquisition import" tab.

    Parameters
    ----------
    runner : JobRunner
        Runs the folder scan and the hologram loading.
    settings : AppSettings, optional
        Remembers the last root folder.

    Signals
    -------
    scan_finished(list)
        The list of MeasurementInfo found by the last scan.
    measurement_loaded(object)
        The :class:`engine.measurement.Measurement` shown in the preview.
    """

    scan_finished = Signal(list)
    measurement_loaded = Signal(object)
    imported = Signal(list)  # list of ImportOutcome
    sideband_changed = Signal(str)  # the project's new side-band setting ("auto" or "as-given")
    sideband_shown = Signal(str)  # the side-band line of the previewed measurement

    def __init__(self, runner: JobRunner, settings: Optional[AppSettings] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("importTab")
        self.runner = runner
        self.settings = settings
        self.root: Optional[Path] = None
        self._scan_job: Optional[Job] = None
        self._preview_job: Optional[Job] = None
        self._select_after_scan: Optional[Path] = None
        self.measurement: Optional[Measurement] = None
        self.project: Any = None
        self._import_job: Optional[Job] = None
        self._sideband_job: Optional[Job] = None
        self.setAcceptDrops(True)
        self._build()

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        """Root-folder bar on top; the measurement table (left) and the preview (right) below."""
        top, left, right = self._build_top_bar(), self._build_table_side(), self._build_preview_side()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("importSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setChildrenCollapsible(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 8)
        lay.setSpacing(10)
        lay.addWidget(top)
        lay.addWidget(self.splitter, 1)
        self._update_import_button()
        self._show_sideband_setting()

    def _build_top_bar(self) -> RootFolderBar:
        """The root folder: path, *Choose folder…*, *Rescan*."""
        self.root_bar = RootFolderBar(self)
        self.root_edit, self.rescan_button = self.root_bar.root_edit, self.root_bar.rescan_button
        self.root_bar.choose_button.clicked.connect(self.choose_root)
        self.rescan_button.clicked.connect(self.rescan)
        return self.root_bar

    def _build_table_side(self) -> QWidget:
        """The measurement table (or its empty state), the summary, import and side-band setting."""
        self.table = MeasurementTable(self)
        self.model, self.proxy = self.table.measurements, self.table.proxy
        self.table.selectionModel().currentRowChanged.connect(self._current_row_changed)

        self.empty = QLabel(self)
        self.empty.setObjectName("dropZone")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.left_stack = QStackedWidget(self)
        self.left_stack.addWidget(self.empty)
        self.left_stack.addWidget(self.table)
        self.show_empty_message()
        self.summary = QLabel("", self)
        self.summary.setObjectName("scanSummary")
        self.summary.setWordWrap(True)
        self.import_button = QPushButton("Import selected into project", self)
        self.import_button.setObjectName("importSelected")
        self.import_button.clicked.connect(lambda: self.import_selected())
        self.import_summary = QLabel("", self)
        self.import_summary.setObjectName("importSummary")
        self.import_summary.setWordWrap(True)
        self.import_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        import_row = QHBoxLayout()
        import_row.addWidget(self.import_button)
        import_row.addWidget(self.import_summary, 1)
        self.sideband_setting = SidebandSetting(self)
        self.sideband_setting.chosen.connect(self._sideband_chosen)
        self.sideband_combo = self.sideband_setting.combo
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(6)
        ll.addWidget(self.left_stack, 1)
        ll.addWidget(self.summary)
        ll.addLayout(import_row)
        ll.addWidget(self.sideband_setting)
        return left

    def _build_preview_side(self) -> QWidget:
        """The hologram preview and the measurement's metadata."""
        self.preview_title = QLabel("Preview", self)
        self.preview_title.setObjectName("sectionTitle")
        self.which = QComboBox(self)
        self.which.setObjectName("previewWhich")
        self.which.addItems(["Sample holograms", "Background holograms"])
        self.which.setEnabled(False)
        self.which.currentIndexChanged.connect(self._show_measurement)
        head = QHBoxLayout()
        head.addWidget(self.preview_title, 1)
        head.addWidget(self.which)
        self.viewer = HologramView("Select a measurement to see its holograms.", self)
        self.details = MeasurementDetails(self)
        self._detail_labels = self.details.labels
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(6)
        rl.addLayout(head)
        rl.addWidget(self.viewer, 1)
        rl.addWidget(self.details)
        return right

    # ---------------------------------------------------------------- empty state
    NO_FOLDER = ("No folder chosen",
                 "Choose a folder with <b>Choose folder…</b> or drop one here.<br>"
                 "Every measurement folder under it (one with a <code>measurement.json</code> or "
                 "<code>measurement.h5</code>) is listed and checked.")

    def show_empty_message(self, title: str | None = None, body: str | None = None) -> None:
        """Show the big empty-state message (default: how to choose a folder) instead of the table."""
        if title is None:
            title, body = self.NO_FOLDER
        self.empty.setText(f"<p style='font-size:15pt'>{title}</p><p>{body or ''}</p>")
        self.left_stack.setCurrentWidget(self.empty)

    # ---------------------------------------------------------------- root folder
    @Slot()
    def choose_root(self) -> None:
        start = str(self.root) if self.root else (self.settings.import_root if self.settings else "") or ""
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of measurements", start)
        if path:
            self.set_root(path)

    def set_root(self, path: str | Path, select: str | Path | None = None) -> Optional[Job]:
        """Scan ``path`` for measurements (in the job runner); select ``select`` afterwards."""
        path = Path(path).expanduser()
        if not path.is_dir():
            self.summary.setText(f"'{path}' is not a folder.")
            return None
        self.root = path
        self.root_bar.show_root(str(path))
        if self.settings is not None:
            self.settings.import_root = path
        self._select_after_scan = Path(select) if select else None
        return self.rescan()

    @Slot()
    def rescan(self) -> Optional[Job]:
        if self.root is None:
            return None
        if self._scan_job is not None and not self._scan_job.done:
            self.runner.cancel(self._scan_job)
        if self._select_after_scan is None:  # a rescan keeps the selected measurement selected
            current = self.selected_path()
            if current is not None and self.root in (current, *current.parents):
                self._select_after_scan = current
        self.summary.setText(f"Scanning {self.root} …")
        self._scan_job = self.runner.submit(
            f"Scanning {self.root.name or self.root}", scan_measurements, self.root,
            on_result=self._scan_done, on_error=self._scan_failed, show_errors=False)
        return self._scan_job

    def _scan_done(self, infos: list[MeasurementInfo]) -> None:
        self.model.set_rows(infos)
        self.refresh_in_project()
        self._update_import_button()
        if infos:
            self.left_stack.setCurrentWidget(self.table)
        else:
            self.show_empty_message(
                "No measurement folders found",
                f"Nothing under <code>{self.root}</code> holds a <code>measurement.json</code> "
                "or <code>measurement.h5</code>.<br>Choose another folder or drop one here.")
        self.summary.setText(scan_summary(infos, sum(self.model.in_project(i) for i in infos)))
        target = self._select_after_scan
        self._select_after_scan = None
        if target is not None:
            self.select_measurement(target)
        elif infos and not self.table.selectionModel().hasSelection():
            first_valid = next((i for i in infos if i.valid), infos[0])
            self.select_measurement(first_valid.path)
        self.scan_finished.emit(infos)

    # ---------------------------------------------------------------- import into the project
    def set_project(self, project: Any) -> None:
        """The open :class:`engine.store.project.Project` (or None): selected folders can be imported into it."""
        self.project = project
        self.refresh_in_project()
        self._update_import_button()
        self._show_sideband_setting()
        info = self._current_info()
        if info is not None:
            self._request_sideband(info)

    def _show_sideband_setting(self) -> None:
        """The combo shows the open project's setting (disabled without a project)."""
        setting = project_sideband(self.project) if self.project is not None else "auto"
        self.sideband_setting.show_setting(setting, enabled=self.project is not None)

    def set_sideband_setting(self, value: str) -> bool:
        """Store the project's side-band setting (``"auto"`` or ``"as-given"``); False without a project."""
        if self.project is None:
            return False
        if project_sideband(self.project) != value:
            self.project.set_setting("sideband", value)
            self.sideband_changed.emit(value)
        self._show_sideband_setting()
        info = self._current_info()
        if info is not None:
            self._request_sideband(info)
        return True

    @Slot(str)
    def _sideband_chosen(self, value: str) -> None:
        if not self.set_sideband_setting(value):
            self._show_sideband_setting()

    def refresh_in_project(self) -> None:
        """Mark the rows the project already holds."""
        paths: set[str] = set()
        if self.project is not None:
            try:
                paths = {str(Path(r.path).resolve()) for r in self.project.list_measurements()}
            except Exception:  # noqa: BLE001 - a closed project marks nothing
                log.exception("listing the project's measurements failed")
        self.model.set_in_project(paths)

    def _update_import_button(self) -> None:
        has_project = self.project is not None
        self.import_button.setEnabled(has_project and bool(self.model.rows()))
        self.import_button.setToolTip(
            "Add the selected measurement folders to the open project (Ctrl+A selects all)" if has_project
            else "Open or create a project first (File ▸ New project… / Open project…)")

    def selected_infos(self) -> list[MeasurementInfo]:
        """The selected rows' MeasurementInfo, in table order."""
        return self.table.selected_infos()

    def import_selected(self) -> Optional[Job]:
        """Import the selected folders into the open project (a job with progress and cancel)."""
        if self.project is None:
            self.import_summary.setText("Open or create a project first (File ▸ New project…).")
            return None
        infos = self.selected_infos()
        if not infos:
            self.import_summary.setText("Select the measurements to import (Ctrl+A selects all).")
            return None
        if self._import_job is not None and not self._import_job.done:
            return self._import_job
        self.import_summary.setText(f"Importing {len(infos)} measurement(s)…")
        self.import_button.setEnabled(False)
        self._import_job = self.runner.submit(
            f"Importing {len(infos)} measurement(s)", import_into_project, self.project,
            [i.path for i in infos], on_result=self._import_done, on_error=self._import_failed,
            on_cancelled=self._import_cancelled, show_errors=False)
        return self._import_job

    def _import_done(self, outcomes: list[ImportOutcome]) -> None:
        self.import_summary.setText(import_summary(outcomes))
        self.refresh_in_project()
        self._update_import_button()
        self.imported.emit(outcomes)

    def _import_failed(self, exc: BaseException) -> None:
        self.import_summary.setText(f"Import failed: {type(exc).__name__}: {exc}")
        self.refresh_in_project()
        self._update_import_button()

    def _import_cancelled(self) -> None:
        self.import_summary.setText("Import cancelled; the folders imported before the cancel stay in the project.")
        self.refresh_in_project()
        self._update_import_button()

    def _scan_failed(self, exc: BaseException) -> None:
        self.model.set_rows([])
        self.left_stack.setCurrentWidget(self.empty)
        self.summary.setText(f"Could not scan {self.root}: {exc}")

    # ---------------------------------------------------------------- selection and preview
    def infos(self) -> list[MeasurementInfo]:
        return self.model.rows()

    def selected_path(self) -> Optional[Path]:
        """The folder of the selected measurement, or None."""
        return self.table.selected_path()

    def select_measurement(self, path: str | Path) -> bool:
        """Select the row of measurement folder ``path``; False if it is not listed."""
        return self.table.select_path(path)

    @Slot(QModelIndex, QModelIndex)
    def _current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self.runner.closed:  # e.g. a scan that ends while the window closes
            return
        self.preview(self.table.info_at(current))

    def preview(self, info: MeasurementInfo) -> Optional[Job]:
        """Show the details of ``info`` and load its holograms in the background."""
        if self._preview_job is not None and not self._preview_job.done:
            self.runner.cancel(self._preview_job)
        self.measurement = None
        self.which.setEnabled(False)
        self.preview_title.setText(f"Preview — {info.name}")
        self._set_details(info)
        self._request_sideband(info)
        if not info.valid:
            self.viewer.clear(f"This folder cannot be imported:\n\n{info.error}")
            return None
        self.viewer.show_message(f"Loading {info.name} …")
        self._preview_job = self.runner.submit(
            f"Loading {info.name}", load_preview, info.path,
            on_result=self._preview_loaded, on_error=self._preview_failed, show_errors=False)
        return self._preview_job

    def _current_info(self) -> Optional[MeasurementInfo]:
        return self.table.current_info()

    def _request_sideband(self, info: MeasurementInfo) -> Optional[Job]:
        """Find out (a job: it may read the result file) how ``info``'s side band was chosen."""
        label = self._detail_labels["Side band"]
        if not info.valid:
            label.setText("–")
            return None
        if self._sideband_job is not None and not self._sideband_job.done:
            self.runner.cancel(self._sideband_job)
        label.setText("…")
        path = Path(info.path)

        def shown(text: str) -> None:
            try:
                current = self._current_info()
            except RuntimeError:  # the tab was destroyed while the job ran
                return
            if current is not None and Path(current.path) == path:
                label.setText(text.removeprefix("side band: "))
                label.setToolTip(text)
                self.sideband_shown.emit(text)

        self._sideband_job = self.runner.submit(f"Side band of {info.name}", sideband_status, self.project, path,
                                                on_result=shown, show_errors=False)
        return self._sideband_job

    def _set_details(self, info: MeasurementInfo) -> None:
        self.details.show_details(measurement_details(info))

    def _preview_loaded(self, m: Measurement) -> None:
        self.measurement = m
        self.which.setEnabled(True)
        self._show_measurement()
        self.measurement_loaded.emit(m)

    def _preview_failed(self, exc: BaseException) -> None:
        self.viewer.clear(f"Could not load the holograms:\n\n{exc}")

    @Slot()
    def _show_measurement(self) -> None:
        m = self.measurement
        if m is None:
            return
        data = m.holograms if self.which.currentIndex() == 0 else m.backgrounds
        self.viewer.set_stack(data, pixel_size_um=m.metadata.pixel_size_um)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        """Coming back to the tab: the side band may have been decided meanwhile (screening, reconstruction)."""
        super().showEvent(event)
        info = self._current_info()
        if info is not None and info.valid and self.project is not None:
            self._request_sideband(info)

    # ---------------------------------------------------------------- drag and drop
    @staticmethod
    def _dropped_folder(event: QDragEnterEvent | QDropEvent) -> Optional[Path]:
        md = event.mimeData()
        if md is None or not md.hasUrls():
            return None
        for url in md.urls():
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                if p.is_dir():
                    return p
                if p.is_file() and p.parent.is_dir():  # a file inside a measurement: its folder
                    return p.parent
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802, ANN001 - Qt API
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        folder = self._dropped_folder(event)
        if folder is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.set_root(folder)
