"""Screening review tab: review every field's clean/noisy decision fast, by keyboard, with overrides.

A thin widget: what it shows (:class:`app.logic.screening.ScreeningData`), the jobs that make it
and the text it writes are in :mod:`app.logic.screening` (no Qt); the grid, the field view and
the histogram are in :mod:`app.widgets`.

The tab does no science. Field retrieval (:func:`engine.holography.retrieval.retrieve_fields`),
screening (:func:`engine.screening.network.screen_fields`), saliency
(:mod:`engine.screening.saliency`) and fine-tuning
(:func:`engine.screening.retrain.retrain_from_overrides`) are engine calls run in the
:class:`app.jobs.JobRunner`; their results are cached in memory (the last few measurements)
and in the project: fields and screening in ``results/<name>.odt.h5``, screening runs and
every manual decision in the project's SQLite database.

Decisions (``docs/formats.md``): 1 = clean (used), 0 = noisy (excluded). A manual decision
is written with :meth:`engine.store.project.Project.set_override` the moment the key is
pressed (committed before the call returns, so it survives a crash). Undo and redo write
new audit rows restoring the previous value: the audit trail only grows.

When no screening network is installed (``resources/models`` holds no screening weights),
the tab says so and screens with the rule-based Fourier-peak metric instead.

Above the grid the tab says how the off-axis side band of the shown fields was chosen (the
result file's ``retrieval/`` record; the project's side-band setting decides it when the fields
are retrieved) and shows any warning of the retrieval (e.g. the sample's phase is mostly
negative) in a banner. Every field's retrieval quality numbers
(:mod:`engine.holography.quality`) are in its details and tooltip, and the grid can be sorted
by any of them, worst first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QKeyEvent, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFrame,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.pipeline.project_screening import (NO_MODEL_NOTE, SOURCE_MANUAL, SOURCE_MODEL, SOURCE_RULE,
                                               project_screening_consistency)
from engine.store.project import SCREENING_CONSISTENCY_SETTING

from ..errors import show_error
from ..jobs import Job, JobRunner
from ..logic.screening import (ScreeningData, compute_member_scores, compute_neighbour_difference, compute_saliency,
                               consistency_text, field_details, unlike_neighbours,
                               measurement_status, members_text, model_label_text, prepare_screening,
                               project_model_file, review_counts, threshold_range)
from ..settings import AppSettings
from ..widgets.warning_banner import WarningBanner
from ..widgets.key_table import key_table_dialog
from ..widgets.field_grid import FieldFilterProxy, FieldGridModel, FieldGridView
from ..widgets.saliency_view import FieldView
from .screening_controls import GridBar, RetrainReportDialog, ReviewMeasurementList, ThresholdBar
from ..widgets.score_histogram import ScoreHistogram

__all__ = ["ScreeningData", "OverrideCommand", "ScreeningTab", "SHORTCUTS"]

log = logging.getLogger(__name__)

CACHE_SIZE = 3


#: (key, what it does), shown by "?"
SHORTCUTS = (
    ("← → ↑ ↓", "move between fields"),
    ("C", "mark clean, go to the next field"),
    ("N", "mark noisy, go to the next field"),
    ("Space", "toggle clean / noisy"),
    ("U", "back to the automatic decision"),
    ("Ctrl+Z", "undo the last decision"),
    ("Ctrl+Shift+Z, Ctrl+Y", "redo"),
    ("P / A / F / D", "show phase / amplitude / log spectrum / difference from the nearest illuminations"),
    ("?", "this list"),
)


# ============================================================================ undo
class OverrideCommand(QUndoCommand):
    """One manual decision. redo writes ``new``, undo writes ``old`` (a new audit row each time)."""

    def __init__(self, tab: "ScreeningTab", measurement_id: int, field_index: int,
                 old: Optional[int], new: Optional[int], text: str) -> None:
        super().__init__(text)
        self.tab = tab
        self.measurement_id = measurement_id
        self.field_index = field_index
        self.old, self.new = old, new
        self._done_once = False

    def redo(self) -> None:
        reason = "review" if not self._done_once else "redo"
        if self.new is None and not self._done_once:
            reason = "back to automatic"
        self._done_once = True
        self.tab.write_override(self.measurement_id, self.field_index, self.new, reason)

    def undo(self) -> None:
        self.tab.write_override(self.measurement_id, self.field_index, self.old, "undo")


# ============================================================================ the tab
class ScreeningTab(QWidget):
    """The "Screening review" tab.

    Parameters
    ----------
    runner : JobRunner
    settings : AppSettings, optional
    device : str
        Compute device for the engine calls ("auto").

    Signals
    -------
    data_ready(object)
        A measurement's :class:`ScreeningData` is shown.
    override_written(int, int, object)
        (measurement id, field index, new manual decision or None) was saved.
    saliency_ready(str)
        A saliency map (method name) is shown.
    members_ready(int)
        The details of field (index) show each network's score (a model of several networks).
    difference_ready(int)
        The view shows field (index) against its nearest illuminations.
    """

    data_ready = Signal(object)
    override_written = Signal(int, int, object)
    saliency_ready = Signal(str)
    members_ready = Signal(int)
    difference_ready = Signal(int)

    def __init__(self, runner: JobRunner, settings: Optional[AppSettings] = None,
                 parent: Optional[QWidget] = None, device: str = "auto") -> None:
        super().__init__(parent)
        self.setObjectName("screeningTab")
        self.runner = runner
        self.settings = settings
        self.device = device
        self.project: Any = None
        self.data: Optional[ScreeningData] = None
        self.model: Any = "default"  # a name until loaded; None when none is installed
        self.model_note = ""
        self._cache: OrderedDict[int, ScreeningData] = OrderedDict()
        self._prepare_job: Optional[Job] = None
        self._saliency_job: Optional[Job] = None
        self._members_job: Optional[Job] = None
        self._difference_job: Optional[Job] = None
        #: the last member-scores line: (the data and field it belongs to, the line)
        self._members_line: tuple[Any, int, str] = (None, -1, "")
        self._retrain_job: Optional[Job] = None
        self.undo_stack = QUndoStack(self)
        #: extra keyword arguments for :func:`engine.screening.retrain.retrain_from_overrides` (e.g. epochs)
        self.retrain_options: dict[str, Any] = {}
        self._build()

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        """Measurements and model (left), review controls and the field grid (centre), the field (right)."""
        left, centre, right = self._build_measurement_side(), self._build_grid_side(), self._build_field_side()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("screeningSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 4)
        self.splitter.setSizes([170, 610, 480])
        self.splitter.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 8)
        lay.addWidget(self.splitter)
        self._set_enabled(False)
        self._update_model_label()
        self.view.show_message("Open a project and import measurements (Acquisition import tab) to review "
                               "their fields here.")

    def _build_measurement_side(self) -> QWidget:
        """The project's measurements with their review counts, the model, screen and retrain buttons."""
        title = QLabel("Measurements", self)
        title.setObjectName("sectionTitle")
        self.measurement_list = ReviewMeasurementList(self)
        self.measurement_list.measurement_chosen.connect(self.load_measurement)
        self.model_label = QLabel("", self)
        self.model_label.setObjectName("modelLabel")
        self.model_label.setWordWrap(True)
        self.consistency_box = QCheckBox("Compare with nearest illuminations", self)
        self.consistency_box.setObjectName("consistencyBox")
        self.consistency_box.setToolTip(
            "Let the model's consistency stage decide: each field is also compared with the 8 fields of nearest "
            "illumination and with its prediction from the other fields, weighed with each network's own score, so "
            "defects the networks were not trained on are caught more often (independent defect set 98.7 % against "
            "95.2 %; the project's simulated held-out sets 97.5 % and 92.7 % against 97.3 % and 89.1 %). On unless the "
            "project says otherwise with the shipped model (3.4.0); needs 8 fields or more. A project setting; the "
            "current measurement is screened again (manual decisions are kept).")
        self.consistency_box.toggled.connect(self.set_consistency)
        self.rescreen_button = QPushButton("Screen again", self)
        self.rescreen_button.setToolTip("Screen this measurement again with the current model (a new run; "
                                        "manual decisions are kept)")
        self.rescreen_button.clicked.connect(lambda: self.rescreen())
        self.retrain_button = QPushButton("Retrain from my overrides…", self)
        self.retrain_button.setObjectName("retrainButton")
        self.retrain_button.clicked.connect(lambda: self.retrain())
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(title)
        ll.addWidget(self.measurement_list, 1)
        ll.addWidget(self.model_label)
        ll.addWidget(self.consistency_box)
        ll.addWidget(self.rescreen_button)
        ll.addWidget(self.retrain_button)
        return left

    def _build_grid_side(self) -> QWidget:
        """The warning banner, side-band line, sort and filter controls and the field grid."""
        self.grid_bar = GridBar(self)
        self.grid_bar.sort_chosen.connect(self.set_sort_key)
        self.grid_bar.overrides_only.toggled.connect(self._filter_changed)
        self.grid_bar.help_button.clicked.connect(lambda: self.show_shortcuts())
        self.sort_combo, self.overrides_only = self.grid_bar.sort_combo, self.grid_bar.overrides_only
        self.threshold_bar = ThresholdBar(self)
        self.threshold_bar.moved.connect(self.set_threshold)
        self.threshold_bar.apply_button.clicked.connect(lambda: self.apply_threshold())
        self.threshold_slider, self.counts_label = self.threshold_bar.slider, self.threshold_bar.counts_label
        self.grid_model = FieldGridModel(self)
        self.proxy = FieldFilterProxy(self)
        self.proxy.setSourceModel(self.grid_model)
        self.grid = FieldGridView(self)
        self.grid.setModel(self.proxy)
        self.grid.selectionModel().currentChanged.connect(self._current_field_changed)
        self.grid_message = QLabel("", self)
        self.grid_message.setObjectName("scanSummary")
        self.grid_message.setWordWrap(True)
        self.warning_banner = WarningBanner(self)
        self.sideband_label = QLabel("", self)
        self.sideband_label.setObjectName("sidebandLabel")
        self.sideband_label.setWordWrap(True)
        self.sideband_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sideband_label.setStyleSheet("color: #aeb4bd;")
        centre = QWidget(self)
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.warning_banner)
        cl.addWidget(self.sideband_label)
        cl.addWidget(self.grid_bar)
        cl.addWidget(self.grid, 1)
        cl.addWidget(self.grid_message)
        return centre

    def _build_field_side(self) -> QWidget:
        """The selected field large (with saliency), its details, the threshold and score histogram."""
        self.view = FieldView(self)
        self.view.saliency_requested.connect(self._request_saliency)
        self.view.difference_requested.connect(self._request_difference)
        self.details = QLabel("", self)
        self.details.setObjectName("fieldDetails")
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setWordWrap(True)
        box = QFrame(self)
        box.setObjectName("detailsBox")
        bl = QVBoxLayout(box)
        bl.setContentsMargins(6, 4, 6, 4)
        bl.addWidget(self.details)
        self.histogram = ScoreHistogram(self)
        self.histogram.setMinimumHeight(120)
        self.histogram.threshold_changed.connect(self.set_threshold)
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.view, 5)
        rl.addWidget(box)
        rl.addWidget(self.threshold_bar)
        rl.addWidget(self.histogram, 2)
        return right

    def _set_enabled(self, on: bool) -> None:
        for w in (self.sort_combo, self.overrides_only, self.threshold_bar, self.rescreen_button):
            w.setEnabled(on)
        self.histogram.setVisible(on)  # no empty axes while nothing is shown

    # ---------------------------------------------------------------- project and list
    def set_project(self, project: Any) -> None:
        """Show the measurements of ``project`` (an :class:`engine.store.project.Project` or None)."""
        for job in (self._prepare_job, self._saliency_job, self._members_job, self._difference_job):
            if job is not None and not job.done:
                self.runner.cancel(job)
        self.project = project
        own = project_model_file(project)
        self.model = own if own is not None else "default"  # the project's adopted model, else the shipped one
        self.model_note = ""
        self._update_model_label()
        self.consistency_box.blockSignals(True)
        self.consistency_box.setChecked(project_screening_consistency(project, self.model))
        self.consistency_box.blockSignals(False)
        self.consistency_box.setEnabled(project is not None)
        self._cache.clear()
        self.undo_stack.clear()
        self.data = None
        self.grid_model.clear()
        self._set_enabled(False)
        self._show_retrieval(None)
        self.view.show_message("Select a measurement." if project is not None else
                               "Open a project to review its fields.")
        self.refresh_measurements()

    def refresh_measurements(self) -> None:
        """Rebuild the measurement list (keeping the selection)."""
        current = self.current_measurement_id()
        rows = [] if self.project is None else [(r.id, r.name) for r in self.project.list_measurements()
                                                 if r.status != "invalid"]
        self.measurement_list.fill(rows, self._measurement_status)
        if not rows:
            self.grid_message.setText("No measurements in this project yet: import some in the "
                                      "Acquisition import tab." if self.project is not None else "")
            return
        self.grid_message.setText("")
        if current is not None:
            self.measurement_list.select(current, emit=False)

    def _measurement_status(self, mid: int) -> str:
        try:
            return measurement_status(self.project, mid)
        except Exception:  # noqa: BLE001 - the list must show even if one row is odd
            log.exception("review counts of measurement %s", mid)
            return "0 fields · not screened yet"

    def _refresh_status(self, mid: int) -> None:
        self.measurement_list.set_status(mid, self._measurement_status(mid))

    def current_measurement_id(self) -> Optional[int]:
        return self.measurement_list.current_id()

    def select_measurement(self, measurement_id: int) -> Optional[Job]:
        """Select a measurement and show its fields (retrieved and screened in the runner if needed)."""
        if self.current_measurement_id() != measurement_id:
            if not self.measurement_list.select(measurement_id):
                return None
            return self._prepare_job if self._prepare_job is not None and not self._prepare_job.done else None
        return self.load_measurement(measurement_id)

    def load_measurement(self, measurement_id: int, rescreen: bool = False) -> Optional[Job]:
        """Show a measurement: from the memory cache, or by a job (fields from the result file or retrieved)."""
        if self.project is None:
            return None
        if self._prepare_job is not None and not self._prepare_job.done:
            self.runner.cancel(self._prepare_job)
        if not rescreen and measurement_id in self._cache:
            self._cache.move_to_end(measurement_id)
            self._show_data(self._cache[measurement_id])
            return None
        self.data = None
        self.grid_model.clear()
        self._set_enabled(False)
        self._show_retrieval(None)
        name = self.project.get_measurement(measurement_id).name
        self.view.show_message(f"Preparing {name}: retrieving and screening its fields…\n"
                               "(progress in the status bar)")
        self._prepare_job = self.runner.submit(
            f"Screening {name}", prepare_screening, self.project, measurement_id, model=self.model,
            rescreen=rescreen, device=self.device, on_result=self._prepared, on_error=self._prepare_failed,
            show_errors=False)
        return self._prepare_job

    def _prepared(self, data: ScreeningData) -> None:
        if self.project is None:
            return
        self.model = data.model
        self.model_note = data.model_note
        self._update_model_label()
        self._cache[data.measurement_id] = data
        self._cache.move_to_end(data.measurement_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._refresh_status(data.measurement_id)
        if self.current_measurement_id() == data.measurement_id:
            self._show_data(data)

    def _prepare_failed(self, exc: BaseException) -> None:
        self.view.show_message(f"Could not prepare this measurement:\n\n{type(exc).__name__}: {exc}")

    def _show_data(self, data: ScreeningData) -> None:
        self.data = data
        # manual decisions may have changed since the data was cached (undo on another measurement)
        decision, source = self.project.decisions(data.measurement_id)
        data.manual = [int(d) if s == SOURCE_MANUAL else None for d, s in zip(decision, source)]
        self.grid_model.set_fields(data.thumbnails, data.score, data.rule_peak, data.manual,
                                   use_rule=data.use_rule, threshold=data.threshold, quality=data.quality,
                                   unlike_neighbours=unlike_neighbours(data))
        self._configure_threshold(data)
        self._show_retrieval(data)
        self.proxy.invalidate()
        if self.proxy.sort_key is not None:
            self.proxy.sort(0)
        self._set_enabled(True)
        self.view.set_saliency_available(
            data.model is not None,
            "" if data.model is not None else "Saliency needs a screening network; none is installed.")
        if self.proxy.rowCount():
            self.set_current_row(0)
        self.grid.setFocus()
        self.data_ready.emit(data)

    def _show_retrieval(self, data: Optional[ScreeningData]) -> None:
        """The side-band line and the warning banner of ``data`` (cleared for None)."""
        if data is None:
            self.sideband_label.setText("")
            self.sideband_label.setToolTip("")
            self.warning_banner.show_warnings([])
            return
        text = data.sideband_description or "side band: not recorded"
        self.sideband_label.setText(f"<b>{data.name}</b> — {text}")
        self.sideband_label.setToolTip(
            "How the off-axis side band (which of the two twin images) was chosen when these fields were "
            "retrieved. The project's side-band setting (Acquisition import tab) decides it when measurement.json "
            "gives no carrier_per_um: automatic for samples denser than their medium, 'as given' (f_x > 0) for "
            "samples less dense than their medium.")
        self.grid_bar.enable_quality_keys(list(data.quality or ()) + (
            [FieldFilterProxy.UNLIKE_NEIGHBOURS] if data.consistency is not None else []))
        self.warning_banner.show_warnings(data.warnings or [])

    def sideband_setting_changed(self, setting: str = "") -> Optional[Job]:
        """The project's side-band setting changed: forget cached fields and show the current measurement
        again (its fields are retrieved again when they were retrieved under the other setting)."""
        self._cache.clear()
        mid = self.current_measurement_id()
        if self.project is None:
            return None
        if setting:
            self.grid_message.setText(f"Side-band setting: {setting}. Fields retrieved under the other setting "
                                      "are retrieved and screened again when shown (manual decisions are kept).")
        return None if mid is None else self.load_measurement(mid)

    def _update_model_label(self) -> None:
        if self.model is None:
            self.model_label.setText("<b>Model:</b> none installed — rule-based screening")
            self.model_label.setToolTip(self.model_note or NO_MODEL_NOTE)
            self.retrain_button.setEnabled(False)
            self.retrain_button.setToolTip("Retraining needs a screening network to start from; none is installed.")
        elif isinstance(self.model, (str, Path)):
            self.model_label.setText(model_label_text(self.project, self.model))
            self.model_label.setToolTip(str(self.model) if isinstance(self.model, Path) else "")
            self.retrain_button.setEnabled(self.project is not None)
        else:
            self.model_label.setText(model_label_text(self.project, self.model))
            self.model_label.setToolTip(str(self.model.card.get("path", "")))
            self.retrain_button.setEnabled(self.project is not None)
            self.retrain_button.setToolTip("Fine-tune the network on this project's manual decisions "
                                           "(in the background); you see before/after metrics first")

    # ---------------------------------------------------------------- threshold
    def _configure_threshold(self, data: ScreeningData) -> None:
        lo, hi = threshold_range(data)
        what = "rule peak (log10)" if data.use_rule else "model score (probability noisy)"
        self.histogram.set_values(data.rule_peak if data.use_rule else data.score, (lo, hi), what, data.threshold)
        self.threshold_bar.configure(lo, hi, what)
        self.threshold_bar.show_threshold(self.threshold, *self.counts())

    @property
    def threshold(self) -> float:
        return self.grid_model.threshold

    def set_threshold(self, t: float) -> None:
        """Preview the automatic decisions at threshold ``t`` (grid, counts, histogram); nothing is saved."""
        if self.data is None:
            return
        self.grid_model.set_threshold(t)
        self.threshold_bar.show_threshold(t, *self.counts())
        self.histogram.set_threshold(t)
        if self.proxy.by_uncertainty:
            self.proxy.invalidate()
            self.proxy.sort(0)
        self._threshold_display()
        self._show_details()

    def counts(self) -> tuple[int, int]:
        """(clean, noisy) final decisions at the current threshold."""
        return self.grid_model.counts()

    def _threshold_display(self) -> None:
        self.threshold_bar.show_counts(self.threshold, *self.counts())

    def apply_threshold(self) -> Optional[int]:
        """Record the automatic decisions at the current threshold as a new screening run; its number."""
        d = self.data
        if d is None or self.project is None:
            return None
        auto = self.grid_model.auto_decisions()
        run = self.project.add_screening(
            d.measurement_id, auto, score=d.score, rule_peak=d.rule_peak,
            source=SOURCE_RULE if d.use_rule else SOURCE_MODEL, model_name=d.model_name,
            model_version=d.model_version, threshold=self.threshold)
        d.threshold, d.auto_decision, d.run = self.threshold, auto, run
        self._refresh_status(d.measurement_id)
        return run

    def rescreen(self) -> Optional[Job]:
        mid = self.current_measurement_id()
        return None if mid is None else self.load_measurement(mid, rescreen=True)

    def set_consistency(self, on: bool) -> Optional[Job]:
        """Store the project's consistency-stage setting and screen the current measurement again with it."""
        if self.project is None:
            return None
        self.project.set_setting(SCREENING_CONSISTENCY_SETTING, bool(on))
        self._cache.clear()
        return self.rescreen()

    # ---------------------------------------------------------------- grid navigation
    def set_sort_by_uncertainty(self, on: bool) -> None:
        self.set_sort_key(FieldFilterProxy.UNCERTAINTY if on else None)

    def set_sort_key(self, key: Optional[str]) -> None:
        """Order the grid: None (field order), ``"uncertainty"`` or a retrieval quality name (worst first)."""
        i = self.current_field()
        self.proxy.set_sort_key(key)
        self.grid_bar.show_sort_key(key)
        if i is not None:
            self.select_field(i)

    def _filter_changed(self, on: bool) -> None:
        i = self.current_field()
        self.proxy.set_overrides_only(on)
        if i is None or not self.select_field(i):
            if self.proxy.rowCount():
                self.set_current_row(0)

    def field_order(self) -> list[int]:
        """Field indices in the order the grid shows them."""
        return self.proxy.field_order()

    def current_field(self) -> Optional[int]:
        idx = self.grid.currentIndex()
        return None if not idx.isValid() else int(idx.data(FieldGridModel.IndexRole))

    def set_current_row(self, row: int) -> None:
        idx = self.proxy.index(row, 0)
        if idx.isValid():
            self.grid.selectionModel().setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.grid.scrollTo(idx)

    def select_field(self, field_index: int) -> bool:
        src = self.grid_model.index(field_index)
        idx = self.proxy.mapFromSource(src)
        if not idx.isValid():
            return False
        self.set_current_row(idx.row())
        return True

    def advance(self) -> None:
        row = self.grid.currentIndex().row()
        if row + 1 < self.proxy.rowCount():
            self.set_current_row(row + 1)

    @Slot(QModelIndex, QModelIndex)
    def _current_field_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self.data is None:
            return
        i = int(current.data(FieldGridModel.IndexRole))
        self.view.set_field(self.data.fields[i], self.data.pixel_size_um, f"{self.data.name} · field {i}",
                            crop_origin=self.data.crop_origin)
        self._show_details()
        self._request_member_scores(i)

    def _show_details(self) -> None:
        d, i = self.data, self.current_field()
        if d is None or i is None:
            self.details.setText("")
            return
        m = self.grid_model
        text = field_details(d, i, decision=m.decision(i), auto=m.auto_decision(i), manual=m.manual[i],
                             threshold=self.threshold, quality=m.quality_row(i))
        line_data, line_field, line = self._members_line
        if line and line_data is d and line_field == i:
            text += "<br>" + line
        consistency = consistency_text(d, i)
        if consistency:
            text += "<br>" + consistency
        self.details.setText(text)

    def _request_member_scores(self, i: int) -> None:
        """Each network's score of field ``i`` in the details, when the model is several networks (a job)."""
        d = self.data
        if d is None or d.model is None or not getattr(d.model, "member_labels", None):
            return
        if self._members_job is not None and not self._members_job.done:
            self.runner.cancel(self._members_job)

        def done(scores: list) -> None:
            self._members_line = (d, i, members_text(scores))
            try:
                current = self.current_field()
            except RuntimeError:  # the tab was destroyed while the job ran
                return
            if self.data is d and current == i:
                self._show_details()
                self.members_ready.emit(i)

        self._members_job = self.runner.submit(f"Network scores of field {i}", compute_member_scores, d.model,
                                               d.fields[i], d.crop_origin, on_result=done, show_errors=False)

    # ---------------------------------------------------------------- decisions
    def mark(self, value: Optional[int], advance: bool = False) -> bool:
        """Set the current field's manual decision (1 clean, 0 noisy, None automatic); True if written."""
        d, i = self.data, self.current_field()
        if d is None or i is None:
            return False
        old = self.grid_model.manual[i]
        written = False
        if value != old:
            text = {1: "clean", 0: "noisy", None: "automatic"}[value]
            self.undo_stack.push(OverrideCommand(self, d.measurement_id, i, old, value, f"field {i} {text}"))
            written = True
        if advance:
            self.advance()
        return written

    def toggle(self) -> bool:
        i = self.current_field()
        if i is None:
            return False
        return self.mark(1 - self.grid_model.decision(i))

    def write_override(self, measurement_id: int, field_index: int, value: Optional[int], reason: str) -> None:
        """Save a manual decision to the project (committed at once) and show it."""
        try:
            self.project.set_override(measurement_id, field_index, value, reason=reason)
        except Exception as exc:  # noqa: BLE001 - say it, never lose it silently
            log.exception("override not saved")
            show_error(self, "Decision not saved", f"The decision for field {field_index} could not be saved:\n{exc}")
            return
        cached = self._cache.get(measurement_id)
        if cached is not None:
            cached.manual[field_index] = value
        if self.data is not None and self.data.measurement_id == measurement_id:
            self.grid_model.set_manual(field_index, value)
            if self.proxy.overrides_only:
                self.proxy.invalidate()
            self._threshold_display()
            if self.current_field() == field_index:
                self._show_details()
        self._refresh_status(measurement_id)
        self.override_written.emit(measurement_id, field_index, value)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
        if event.matches(QKeySequence.StandardKey.Undo) or (ctrl and not shift and key == Qt.Key.Key_Z):
            self.undo_stack.undo()
        elif (event.matches(QKeySequence.StandardKey.Redo) or (ctrl and shift and key == Qt.Key.Key_Z)
              or (ctrl and key == Qt.Key.Key_Y)):
            self.undo_stack.redo()
        elif event.text() == "?" or key == Qt.Key.Key_Question:
            self.show_shortcuts()
        elif ctrl:
            super().keyPressEvent(event)
        elif key == Qt.Key.Key_C:
            self.mark(1, advance=True)
        elif key == Qt.Key.Key_N:
            self.mark(0, advance=True)
        elif key == Qt.Key.Key_Space:
            self.toggle()
        elif key == Qt.Key.Key_U:
            self.mark(None)
        elif key in (Qt.Key.Key_P, Qt.Key.Key_A, Qt.Key.Key_F, Qt.Key.Key_D):
            self.view.mode.setCurrentIndex({Qt.Key.Key_P: 0, Qt.Key.Key_A: 1, Qt.Key.Key_F: 2, Qt.Key.Key_D: 3}[key])
        else:
            super().keyPressEvent(event)

    def show_shortcuts(self) -> QDialog:
        dlg = key_table_dialog(self, "Screening review: keyboard", SHORTCUTS, ("Key", "Does"),
                               "screeningShortcuts", stretch_column=1)
        self._shortcuts_dialog = dlg
        return dlg

    # ---------------------------------------------------------------- saliency
    def _show_if_still_shown(self, shown: Any, show: Callable[[], None]) -> bool:
        """Run ``show`` (a field job's result) if the view still shows the field ``shown``; False if it moved
        on, or if the tab was destroyed while the job ran."""
        try:
            if self.view.field is not shown:
                return False
            show()
        except RuntimeError:  # the tab was destroyed while the job ran
            return False
        return True

    @Slot(str)
    def _request_saliency(self, method: str) -> None:
        d, i = self.data, self.current_field()
        if d is None or i is None or d.model is None:
            return
        if self._saliency_job is not None and not self._saliency_job.done:
            self.runner.cancel(self._saliency_job)
        shown = self.view.field

        def done(m: np.ndarray) -> None:
            if self._show_if_still_shown(shown, lambda: self.view.set_saliency(method, m)):
                self.saliency_ready.emit(method)

        self._saliency_job = self.runner.submit(f"Saliency of field {i}", compute_saliency, d.model, d.fields[i],
                                                method, d.crop_origin, on_result=done, show_errors=False)

    @Slot()
    def _request_difference(self) -> None:
        """The shown field against its nearest illuminations (a job), for the view's "Against neighbours"."""
        d, i = self.data, self.current_field()
        if d is None or i is None:
            return
        if self._difference_job is not None and not self._difference_job.done:
            self.runner.cancel(self._difference_job)
        shown = self.view.field

        def done(image: np.ndarray) -> None:
            if self._show_if_still_shown(shown, lambda: self.view.set_difference(image)):
                self.difference_ready.emit(i)

        def failed(exc: BaseException) -> None:
            self._show_if_still_shown(shown, lambda: self.view.set_difference(None, str(exc)))

        self._difference_job = self.runner.submit(f"Field {i} against its neighbours", compute_neighbour_difference,
                                                  d.fields, d.illumination_per_um, i, pixel_size_um=d.pixel_size_um,
                                                  optics=d.optics, on_result=done, on_error=failed,
                                                  show_errors=False)

    # ---------------------------------------------------------------- retraining
    def retrain(self) -> Optional[Job]:
        """Fine-tune the network on the project's manual decisions (a job); a dialog shows the result."""
        if self.project is None:
            return None
        if self.model is None:
            show_error(self, "Cannot retrain", NO_MODEL_NOTE + "\n\nRetraining fine-tunes a network; "
                       "install the shipped screening model first.")
            return None
        from engine.screening.retrain import retrain_from_overrides

        n = sum(review_counts(self.project, r.id)[1] for r in self.project.list_measurements()
                if r.status != "invalid")
        if n < 10:
            show_error(self, "Not enough decisions yet",
                       f"This project has {n} manual decisions; fine-tuning needs at least 10 "
                       "(C / N on fields in the grid).")
            return None
        self._retrain_job = self.runner.submit(
            "Retraining the screening model from your overrides", retrain_from_overrides, self.project,
            base_model=self.model, device=self.device, on_result=self.show_retrain_report,
            **self.retrain_options)
        return self._retrain_job

    def show_retrain_report(self, rep: Any) -> QDialog:
        """Before/after metrics of a retraining; "Adopt" makes the new model the current one."""
        dlg = RetrainReportDialog(rep, self.adopt_model, self)
        dlg.open()
        self._retrain_dialog = dlg
        return dlg

    def adopt_model(self, model: Any, saved_path: Optional[Path] = None) -> None:
        """Use ``model`` from now on ("Screen again" re-screens a measurement with it).

        When its file (``saved_path``, else the card's ``path``) lies in the project folder it
        becomes the project's screening model (setting ``screening_model``, a path relative to
        the project), so the project uses it after a restart and in every screening.
        """
        from engine.store.project import SCREENING_MODEL_SETTING

        self.model = model
        self._cache.clear()
        path = saved_path or (model.card.get("path") if getattr(model, "card", None) else None)
        stored = False
        if self.project is not None and path:
            try:
                rel = Path(path).resolve().relative_to(Path(self.project.path).resolve())
            except ValueError:
                log.warning("adopted model %s is outside the project; not stored as its setting", path)
            else:
                model.card["path"] = str(Path(path).resolve())  # the file it is (a copied card may name its parent's)
                self.project.set_setting(SCREENING_MODEL_SETTING, rel.as_posix())
                stored = True
        self._update_model_label()
        self.grid_message.setText(f"Now using {model.label}" + (" for this project" if stored else "")
                                  + ". Press “Screen again” to re-screen a measurement "
                                  "with it (your manual decisions are kept).")
