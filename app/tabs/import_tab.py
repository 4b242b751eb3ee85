"""Acquisition import tab: choose a root folder, list its measurement folders, preview one.

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
it, else that it is decided when the fields are retrieved (:func:`sideband_status`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QFont, QPainter, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.measurement import Measurement
from engine.pipeline.project_screening import project_sideband, sideband_description
from engine.progress import check_cancel, report
from engine.store.folders import (
    MeasurementInfo,
    discover_measurements,
    inspect_measurement,
    load_measurement,
)

from ..jobs import Job, JobRunner
from ..settings import AppSettings
from ..widgets.image_view import HologramView

__all__ = ["scan_measurements", "import_into_project", "sideband_status", "ImportOutcome", "MeasurementTableModel",
           "ImportTab", "SIDEBAND_ITEMS"]

log = logging.getLogger(__name__)

VALID_TEXT = "valid"
NO_METADATA = "no measurement.json"
NO_METADATA_TEXT = "no measurement.json (images only)"

#: The project side-band setting's choices: (value, text in the combo, tooltip).
SIDEBAND_ITEMS = (
    ("auto", "Automatic (sample denser than medium)",
     "Of the two twin side bands, take the one that gives the sample a positive phase, decided once per "
     "measurement on all its fields. Right for cells, bacteria, beads: anything denser than its medium."),
    ("as-given", "As given (f_x > 0)",
     "Always take the side-band peak with f_x > 0 (docs/formats.md). For samples less dense than their "
     "medium (e.g. droplets of a lower index), where the automatic rule would flip the sign."),
)


def scan_measurements(root: str | Path, progress: Optional[Callable[..., None]] = None,
                      cancel=None) -> list[MeasurementInfo]:
    """Find and check every measurement folder under ``root`` (a job for the runner).

    Parameters
    ----------
    root : path
        Folder to search recursively (``root`` itself may be a measurement).
    progress, cancel
        The :mod:`engine.progress` protocol.

    Returns
    -------
    list of MeasurementInfo
        One per folder found, in natural order; invalid ones carry their error text.
    """
    report(progress, 0.0, "looking for measurement folders")
    failed: list[MeasurementInfo] = []

    def not_a_measurement(folder: Path, message: str) -> None:
        failed.append(MeasurementInfo(name=Path(folder).name, path=Path(folder), valid=False, error=message))

    folders = discover_measurements(root, on_error=not_a_measurement, on_unrecognised=not_a_measurement)
    infos: list[MeasurementInfo] = []
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        report(progress, i / max(1, len(folders)), f"checking {folder.name}")
        infos.append(inspect_measurement(folder, thumbnail=False))
    report(progress, 1.0, f"{len(infos)} measurement(s) found"
           + (f", {len(failed)} folder(s) that cannot be read as one" if failed else ""))
    return infos + failed


def sideband_status(project: Any, folder: str | Path, progress: Optional[Callable[..., None]] = None,
                    cancel=None) -> str:
    """How the side band of measurement ``folder`` was (or will be) chosen, one line (a job).

    From the result file's ``retrieval/`` record when ``project`` holds the measurement and has
    processed it; else what will decide it: ``carrier_per_um`` in measurement.json (always
    honoured) or the project's side-band setting.
    """
    from engine.metadata import MeasurementMetadata
    from engine.store.results import read_result

    check_cancel(cancel)
    setting = project_sideband(project) if project is not None else "auto"
    target = Path(folder).resolve()
    rec = None
    if project is not None:
        rec = next((r for r in project.list_measurements() if Path(r.path).resolve() == target), None)
    if rec is not None:
        path = Path(project.result_path(rec))
        if path.is_file():
            try:
                res = read_result(path, groups=["retrieval"])
            except ValueError as exc:
                return f"side band: the result file cannot be read ({exc})"
            r = res.retrieval
            return sideband_description({"attrs": dict(r.attrs)} if r is not None else {}, setting)
        meta_json = rec.metadata_json
    else:
        meta_file = target / "measurement.json"
        meta_json = meta_file.read_text(encoding="utf-8") if meta_file.is_file() else ""
    try:
        carrier = MeasurementMetadata.from_json(meta_json).carrier_per_um if meta_json else None
    except Exception:  # noqa: BLE001 - an invalid folder has its own error in the table
        carrier = None
    if carrier is not None:
        return "side band: carrier_per_um from measurement.json (always honoured)"
    return sideband_description(None, setting)


def load_preview(folder: str | Path, progress: Optional[Callable[..., None]] = None,
                 cancel=None) -> Measurement:
    """Load one measurement's holograms for the preview (a job for the runner)."""
    check_cancel(cancel)
    report(progress, 0.0, f"reading {Path(folder).name}")
    m = load_measurement(folder)
    report(progress, 1.0, "loaded")
    return m


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one folder of an import: ``status`` "imported", "already" or "failed"."""

    path: Path
    status: str
    measurement_id: Optional[int] = None
    error: str = ""


def import_into_project(project: Any, folders: list[str | Path], progress: Optional[Callable[..., None]] = None,
                        cancel=None) -> list[ImportOutcome]:
    """Add measurement folders to a project's catalogue (a job for the runner).

    Each folder is checked again (:func:`engine.store.folders.inspect_measurement`); an invalid
    one, or one whose import raises, is reported as "failed" with the error and the others go
    on. A folder already in the project is reported as "already" (its id kept).

    Parameters
    ----------
    project : engine.store.project.Project
    folders : list of paths
    progress, cancel
        The :mod:`engine.progress` protocol (cancel stops before the next folder).

    Returns
    -------
    list of ImportOutcome, one per folder handled (fewer when cancelled).
    """
    known = {str(Path(r.path).resolve()): r.id for r in project.list_measurements()}
    out: list[ImportOutcome] = []
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        folder = Path(folder)
        report(progress, i / max(1, len(folders)), f"importing {folder.name} ({i + 1} of {len(folders)})")
        try:
            key = str(folder.resolve())
            if key in known:
                out.append(ImportOutcome(folder, "already", known[key]))
                continue
            info = inspect_measurement(folder, thumbnail=False)
            if not info.valid:
                out.append(ImportOutcome(folder, "failed", None, info.error))
                continue
            mid = project.add_measurement(folder, info)
            known[key] = mid
            out.append(ImportOutcome(folder, "imported", mid))
        except Exception as exc:  # noqa: BLE001 - one folder's error never stops the rest
            log.exception("import of %s failed", folder)
            out.append(ImportOutcome(folder, "failed", None, f"{type(exc).__name__}: {exc}"))
    report(progress, 1.0, f"{sum(o.status == 'imported' for o in out)} measurement(s) imported")
    return out


def _imported_icon() -> QPixmap:
    pm = QPixmap(14, 14)
    pm.fill(QColor(0, 0, 0, 0))
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setBrush(QColor("#4aa3df"))
    p.setPen(QColor("#4aa3df"))
    p.drawEllipse(1, 1, 12, 12)
    p.setPen(QColor("#ffffff"))
    f = QFont()
    f.setPixelSize(10)
    f.setBold(True)
    p.setFont(f)
    p.drawText(pm.rect(), int(Qt.AlignmentFlag.AlignCenter), "P")
    p.end()
    return pm


class MeasurementTableModel(QAbstractTableModel):
    """Rows of :class:`engine.store.folders.MeasurementInfo`: name, sample, images, size, status."""

    COLUMNS = ("Name", "Sample", "Images", "Image size", "Status")
    PathRole = Qt.ItemDataRole.UserRole + 1
    SortRole = Qt.ItemDataRole.UserRole + 2
    InProjectRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._rows: list[MeasurementInfo] = []
        self._in_project: set[str] = set()
        self._project_icon: Optional[QPixmap] = None
        style = parent.style() if parent is not None else None
        self._ok_icon = style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton) if style else None
        self._bad_icon = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical) if style else None

    # ---------------------------------------------------------------- Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        info = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(info, col)
        if role == self.SortRole:
            if col == 2:
                return info.n_images
            if col == 3:
                return (info.image_shape[0] * info.image_shape[1]) if info.image_shape else -1
            return self.cell_text(info, col).casefold()
        if role == self.PathRole:
            return str(info.path)
        if role == self.InProjectRole:
            return self.in_project(info)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 0:
                return str(info.path) + ("\n(already in the open project)" if self.in_project(info) else "")
            return (info.error or VALID_TEXT) if col == 4 else None
        if role == Qt.ItemDataRole.DecorationRole and col == 0 and self.in_project(info):
            if self._project_icon is None:
                self._project_icon = _imported_icon()
            return self._project_icon
        if role == Qt.ItemDataRole.FontRole and col == 0 and self.in_project(info):
            f = QFont()
            f.setItalic(True)
            return f
        if role == Qt.ItemDataRole.ForegroundRole and col == 4 and not info.valid:
            return QColor("#ff7b72")
        if role == Qt.ItemDataRole.DecorationRole and col == 4:
            return self._ok_icon if info.valid else self._bad_icon
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # ---------------------------------------------------------------- own API
    @staticmethod
    def cell_text(info: MeasurementInfo, col: int) -> str:
        if col == 0:
            return info.name
        if col == 1:
            return info.sample_name or info.name
        if col == 2:
            return str(info.n_images) if info.n_images else "–"
        if col == 3:
            return f"{info.image_shape[1]} × {info.image_shape[0]}" if info.image_shape else "–"
        if not info.valid and info.error.startswith(NO_METADATA):  # the start says it: keep it short
            return NO_METADATA_TEXT
        return VALID_TEXT if info.valid else info.error

    def set_rows(self, rows: list[MeasurementInfo]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[MeasurementInfo]:
        return list(self._rows)

    def in_project(self, info: MeasurementInfo) -> bool:
        return str(Path(info.path).resolve()) in self._in_project

    def set_in_project(self, paths: set[str]) -> None:
        """Mark the folders (resolved path strings) that the open project already holds."""
        self._in_project = set(paths)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0))

    def info(self, row: int) -> MeasurementInfo:
        return self._rows[row]


class _ElideLeftDelegate(QStyledItemDelegate):
    """Elides long text on the left, so the end of an error message (the problem) stays visible."""

    def initStyleOption(self, option: QStyleOptionViewItem,  # noqa: N802 - Qt API
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideLeft


def _fmt(v: Optional[float], unit: str = "", digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}{(' ' + unit) if unit else ''}"


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
        lay.addLayout(top)
        lay.addWidget(self.splitter, 1)
        self._update_import_button()
        self._show_sideband_setting()

    def _build_top_bar(self) -> QHBoxLayout:
        """The root folder: path, *Choose folder…*, *Rescan*."""
        self.root_edit = QLineEdit(self)
        self.root_edit.setObjectName("rootEdit")
        self.root_edit.setReadOnly(True)
        self.root_edit.setPlaceholderText("Choose a folder of measurements, or drop one here")
        self.choose_button = QPushButton("Choose folder…", self)
        self.choose_button.setObjectName("chooseFolder")
        self.choose_button.setDefault(True)
        self.rescan_button = QPushButton("Rescan", self)
        self.rescan_button.setObjectName("rescan")
        self.rescan_button.setEnabled(False)
        self.choose_button.clicked.connect(self.choose_root)
        self.rescan_button.clicked.connect(self.rescan)
        top = QHBoxLayout()
        top.setSpacing(8)
        lbl = QLabel("Measurements folder", self)
        lbl.setObjectName("fieldLabel")
        top.addWidget(lbl)
        top.addWidget(self.root_edit, 1)
        top.addWidget(self.choose_button)
        top.addWidget(self.rescan_button)
        return top

    def _build_table_side(self) -> QWidget:
        """The measurement table (or its empty state), the summary, import and side-band setting."""
        self.model = MeasurementTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(MeasurementTableModel.SortRole)
        self.table = QTableView(self)
        self.table.setObjectName("measurementTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        for c, mode in enumerate((QHeaderView.ResizeMode.Interactive, QHeaderView.ResizeMode.Interactive,
                                  QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents,
                                  QHeaderView.ResizeMode.Stretch)):
            hh.setSectionResizeMode(c, mode)
        hh.resizeSection(0, 170)
        hh.resizeSection(1, 150)
        self._status_delegate = _ElideLeftDelegate(self.table)
        self.table.setItemDelegateForColumn(4, self._status_delegate)
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
        self.sideband_combo = QComboBox(self)
        self.sideband_combo.setObjectName("sidebandSetting")
        for k, (value, text, tip) in enumerate(SIDEBAND_ITEMS):
            self.sideband_combo.addItem(text, value)
            self.sideband_combo.setItemData(k, tip, Qt.ItemDataRole.ToolTipRole)
        self.sideband_combo.setToolTip("The project's side-band rule, used whenever fields are retrieved "
                                       "(unless measurement.json gives carrier_per_um, which is always honoured)")
        self.sideband_combo.currentIndexChanged.connect(self._sideband_chosen)
        sb_row = QHBoxLayout()
        sb_lbl = QLabel("Side band (project setting)", self)
        sb_lbl.setObjectName("fieldLabel")
        sb_row.addWidget(sb_lbl)
        sb_row.addWidget(self.sideband_combo)
        sb_row.addStretch(1)
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.setSpacing(6)
        ll.addWidget(self.left_stack, 1)
        ll.addWidget(self.summary)
        ll.addLayout(import_row)
        ll.addLayout(sb_row)
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
        self.details = QFormLayout()
        self.details.setHorizontalSpacing(16)
        self.details.setVerticalSpacing(2)
        self._detail_labels: dict[str, QLabel] = {}
        for key in ("Wavelength", "Medium index", "Objective NA", "Pixel size", "Geometry", "Images", "Side band"):
            v = QLabel("–", self)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            v.setWordWrap(key == "Side band")
            self._detail_labels[key] = v
            self.details.addRow(key, v)
        details_box = QFrame(self)
        details_box.setObjectName("detailsBox")
        details_box.setLayout(self.details)
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(6)
        rl.addLayout(head)
        rl.addWidget(self.viewer, 1)
        rl.addWidget(details_box)
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
        self.root_edit.setText(str(path))
        self.rescan_button.setEnabled(True)
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
        n_meta = sum(not i.valid and i.error.startswith(NO_METADATA) for i in infos)
        n_found = len(infos) - n_meta
        n_bad = sum(not i.valid for i in infos) - n_meta
        n_in = sum(self.model.in_project(i) for i in infos)
        if infos:
            self.left_stack.setCurrentWidget(self.table)
            self.summary.setText(f"{n_found} measurement folder(s) found: {n_found - n_bad} valid"
                                 + (f", {n_bad} with errors (hover the status for details)" if n_bad else "") + "."
                                 + (f" {n_meta} folder(s) of images without measurement.json: not imported until "
                                    "one is added." if n_meta else "")
                                 + (f" {n_in} already in the project (marked P)." if n_in else ""))
        else:
            self.show_empty_message(
                "No measurement folders found",
                f"Nothing under <code>{self.root}</code> holds a <code>measurement.json</code> "
                "or <code>measurement.h5</code>.<br>Choose another folder or drop one here.")
            self.summary.setText("")
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
        self.sideband_combo.blockSignals(True)
        self.sideband_combo.setCurrentIndex(max(0, self.sideband_combo.findData(setting)))
        self.sideband_combo.blockSignals(False)
        self.sideband_combo.setEnabled(self.project is not None)

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

    @Slot(int)
    def _sideband_chosen(self, index: int) -> None:
        value = self.sideband_combo.itemData(index)
        if value and not self.set_sideband_setting(value):
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
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.info(self.proxy.mapToSource(self.proxy.index(r, 0)).row()) for r in rows]

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
        ok = [o for o in outcomes if o.status == "imported"]
        already = [o for o in outcomes if o.status == "already"]
        failed = [o for o in outcomes if o.status == "failed"]
        text = f"{len(ok)} imported"
        if already:
            text += f", {len(already)} already in the project"
        if failed:
            text += f", {len(failed)} failed: " + "; ".join(f"{o.path.name}: {o.error}" for o in failed)
        self.import_summary.setText(text + ".")
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
        idx = self.table.currentIndex()
        if not idx.isValid() or not self.table.selectionModel().hasSelection():
            return None
        return Path(self.proxy.data(self.proxy.index(idx.row(), 0), MeasurementTableModel.PathRole))

    def select_measurement(self, path: str | Path) -> bool:
        """Select the row of measurement folder ``path``; False if it is not listed."""
        p = Path(path)
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if Path(self.proxy.data(idx, MeasurementTableModel.PathRole)) == p:
                self.table.selectRow(r)
                self.table.setCurrentIndex(idx)
                self.table.scrollTo(idx)
                return True
        return False

    @Slot(QModelIndex, QModelIndex)
    def _current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        info = self.model.info(self.proxy.mapToSource(current).row())
        self.preview(info)

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
        idx = self.table.currentIndex()
        if not idx.isValid():
            return None
        return self.model.info(self.proxy.mapToSource(idx).row())

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
        m = info.metadata
        d = self._detail_labels
        d["Wavelength"].setText(_fmt(m.wavelength_um * 1000, "nm") if m else "–")
        d["Medium index"].setText(_fmt(m.medium_index) if m else "–")
        d["Objective NA"].setText(_fmt(m.na_objective) if m else "–")
        d["Pixel size"].setText(_fmt(m.pixel_size_um, "µm") if m else "–")
        geometry = m.geometry + (", polarisation-resolved" if m.polarised else "") if m else "–"
        d["Geometry"].setText(geometry)
        shape = f", {info.image_shape[1]} × {info.image_shape[0]} px" if info.image_shape else ""
        d["Images"].setText(f"{info.n_images}{shape} ({info.dtype})" if info.n_images else "–")

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
