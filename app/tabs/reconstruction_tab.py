"""Reconstruction tab: choose the method, run it in the background, browse and export the tomogram.

The tab does no science and little else: it lays out small control boxes
(:mod:`app.tabs.reconstruction_controls`: measurement, method, display, export, objects), the
linked slice views, the line profile and the multislice convergence plot, and joins their
signals. What it shows and the jobs behind it are plain Python in
:mod:`app.logic.reconstruction`.

A reconstruction is one call of the engine pipeline,
:func:`engine.pipeline.process.process_measurement`, run in the :class:`app.jobs.JobRunner` —
the same call ``odt-studio batch`` makes — with the :class:`engine.pipeline.process.ProcessOptions`
of the *Method* box. The tab hands it what the session knows: the project's screening decisions
with the manual overrides (:func:`engine.pipeline.project_screening.project_screening_record`;
a loose folder, outside any project, is screened by the shipped model as ``odt-studio batch``
does by default),
the fields retrieved by the last run of the same measurement (a run with other parameters skips
the retrieval), the project's side-band setting, and callbacks that show the raw tomogram as soon
as it exists (while TV, the learned regulariser or the multislice iterations still run) and the
data misfit of every multislice iteration. Before a run the *Method* box shows its estimated time
(:mod:`engine.pipeline.cost`, calibrated once on this computer). A multislice run cancelled during
its iterations keeps its last iterate: shown, marked as not saved, and savable with *Result file…*.
A loaded result sets the *Method* box to the options it was made with (``processing_options``,
``docs/formats.md`` §2).

Physical units everywhere: axes in µm, values as refractive index (RI), the medium index n_m
shown beside the views and used as the bottom of the colour range.

Objects: *Find objects* segments the volume on screen and measures every object in the job
runner; the labels are drawn over the slices, listed in a table linked both ways to the views,
exported as CSV (the columns of ``odt-studio batch --measure``) and stored in the result file as
``tomogram/labels``. Labels already in a result file are measured when it is opened.
Exports: any volume of the result — ``ri``, ``ri_tv``, ``ri_deep``, ``ri_ms``, ``n_e``, ``n_o``,
``dn``, ``labels`` — as OME-TIFF, OME-Zarr or ImageJ TIFF with voxel size and origin, or the whole
``.odt.h5`` result file. Warnings of the processing are shown in a banner above the views.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

# The pipeline imports its steps lazily. They are imported here, in the GUI thread at start-up,
# not in the job: a first import inside the worker thread holds the GIL for a long stretch and
# would freeze the window meanwhile.
import engine.holography.retrieval  # noqa: F401
import engine.screening  # noqa: F401
import engine.tomography.multislice  # noqa: F401
import engine.tomography.reconstruct  # noqa: F401
import engine.tomography.tv  # noqa: F401
from engine.pipeline.process import ProcessOptions, ProcessResult
from engine.pipeline.project_screening import project_screening_record, project_sideband, sideband_description
from engine.store.results import is_complete_result

from ..jobs import Job, JobRunner
from ..logic.reconstruction import (
    ENGINE_VOLUME,
    EXPORT_FORMAT_LABELS,
    EXPORT_VOLUME_LABELS,
    VOLUME_LABELS,
    ObjectsFound,
    PartialKeeper,
    VolumeSet,
    birefringence_group,
    calibrate_cost,
    cost_text,
    deep_regularizer_available,
    default_delta,
    export_result,
    export_volume,
    export_volumes,
    find_objects,
    load_analysis,
    load_volume_file,
    measurement_size,
    preview_set,
    refined_keys,
    run_reconstruction,
    shown_pair,
    volume_info,
    volume_set_from_result,
    write_objects_csv,
)
from ..settings import AppSettings
from ..widgets.misfit_plot import MisfitPlot
from ..widgets.objects_panel import ObjectControls, ObjectTable, label_colors
from ..widgets.plots import LineProfilePlot
from ..widgets.slice_view import OrthoSliceView
from ..widgets.warning_banner import WarningBanner
from .reconstruction_controls import DisplayBox, ExportBox, MethodBox, SourceBox

__all__ = [
    "VolumeSet",
    "VOLUME_LABELS",
    "deep_regularizer_available",
    "volume_set_from_result",
    "load_volume_file",
    "ObjectsFound",
    "find_objects",
    "write_objects_csv",
    "export_volumes",
    "export_volume",
    "export_result",
    "ReconstructionTab",
]

log = logging.getLogger(__name__)


def _learned_step_text(result: ProcessResult) -> str:
    """The status line's account of the learned step (e.g. "Learned step: deep_regularizer 2.3.0, then
    5x3 TV iterations.", with a leading space) when it made the volume; "" otherwise (TV in its place)."""
    opts = getattr(result, "options", None)
    if opts is None or opts.regularize != "deep" or getattr(result, "regularize_route", None) is not None:
        return ""
    from engine.tomography.deep_regularizer import learned_step_record

    rec = learned_step_record(opts.deep_polish_iterations)
    polish = rec.get("deep_polish", "0x0")
    then = "the network alone" if polish == "0x0" else f"then {polish} TV iterations"
    return f" Learned step: {rec['deep_model']}, {then}."

class _Relay(QObject):
    """Carries what the pipeline reports from the worker thread to the GUI thread (queued signals):
    the raw tomogram, and the data misfit of each multislice iteration."""

    raw_ready = Signal(object)
    iteration = Signal(int, float)


class ReconstructionTab(QWidget):
    """The "Reconstruction" tab.

    Parameters
    ----------
    runner : JobRunner
        Runs reconstructions, file reading and exports.
    settings : AppSettings, optional
    parent : QWidget, optional

    Signals
    -------
    volume_shown(object)
        The :class:`VolumeSet` now on screen (a finished reconstruction, a cancelled run's last
        multislice iterate, or a file).
    raw_shown(object)
        The raw tomogram of a running reconstruction is on screen (a preview :class:`VolumeSet`).
    """

    volume_shown = Signal(object)
    raw_shown = Signal(object)

    def __init__(self, runner: JobRunner, settings: Optional[AppSettings] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("reconstructionTab")
        self.runner = runner
        self.settings = settings
        self.project: Any = None
        self.folder: Optional[Path] = None
        self.result: Optional[VolumeSet] = None
        self.job: Optional[Job] = None
        self._linking = False
        # (folder, RetrievedFields) of the last run: a run with other parameters reuses them
        self._retrieved: Optional[tuple[Path, Any]] = None
        # the folder and side-band setting of the running job (the user may choose another meanwhile)
        self._run: Optional[tuple[Path, str]] = None
        self._keeper = PartialKeeper()
        self._iterating = False  # the running job is a multislice run (a live misfit plot)
        self._size: Optional[tuple[Path, Any]] = None  # (folder, MeasurementSize) for the estimate
        self._calibration: Any = None
        self._calibrating: Optional[Job] = None
        self._relay = _Relay(self)
        self._relay.raw_ready.connect(self._raw_ready)
        self._relay.iteration.connect(self._iteration_done)
        self._build()
        self._update_enabled()
        self.update_estimate()
        self.runner.job_progress.connect(self._job_progress)
        self.runner.job_done.connect(self._objects_job_done)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        """The controls column (measurement, method, run row, display, objects, export) and the views."""
        self.source_box = SourceBox(self)
        self.source_box.measurement_combo.activated.connect(self._project_measurement_chosen)
        self.source_box.choose_button.clicked.connect(self._choose_folder)
        self.source_box.open_button.clicked.connect(self._choose_result)
        self.method_box = MethodBox(self, deep_regularizer_available())
        self.method_box.changed.connect(self._method_changed)
        self.display_box = DisplayBox(self)
        self.display_box.volume_combo.currentIndexChanged.connect(self._show_current)
        self.display_box.side_check.toggled.connect(self._show_current)
        self.display_box.mip_check.toggled.connect(self.set_mip)
        self.display_box.delta_spin.valueChanged.connect(self._apply_levels)
        self.display_box.profile_axis.currentIndexChanged.connect(self._update_profile)
        self.display_box.peak_button.clicked.connect(self._go_to_peak)
        self.export_box = ExportBox(self)
        self.export_box.export_button.clicked.connect(self._export_volume_dialog)
        self.export_box.h5_button.clicked.connect(self._export_result_dialog)
        self._alias_widgets()
        controls = self._build_controls([self.source_box, self.method_box, self._build_run_row(), self.status,
                                         self.display_box, self._build_objects(), self.export_box])
        self._build_views()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 12, 8, 8)
        lay.setSpacing(10)
        lay.addWidget(controls)
        lay.addWidget(self.right_stack, 1)

    def _alias_widgets(self) -> None:
        """The boxes' widgets under the tab's own names (what scripts and tests drive)."""
        for box, names in ((self.source_box, ("measurement_combo", "source_label", "choose_button", "open_button")),
                           (self.method_box, ("method_combo", "nonneg_check", "nonneg_iter", "reg_combo", "tv_weight",
                                              "tv_outer", "tv_inner", "tv_iter_label", "shape_z", "device_combo",
                                              "ms_iterations", "ms_batch", "ms_tv_weight", "ms_step", "cost_label")),
                           (self.display_box, ("volume_combo", "side_check", "mip_check", "delta_spin", "medium_label",
                                               "profile_axis", "peak_button")),
                           (self.export_box, ("export_volume_combo", "export_format_combo", "export_button",
                                              "h5_button"))):
            for name in names:
                setattr(self, name, getattr(box, name))

    def _build_run_row(self) -> QHBoxLayout:
        """*Run reconstruction* and *Cancel*, and the status line under them."""
        self.run_button = QPushButton("Run reconstruction", self)
        self.run_button.setObjectName("runReconstruction")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelReconstruction")
        self.cancel_button.setToolTip("Stop at the next check; a multislice run keeps its last iterate")
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.addWidget(self.run_button, 1)
        row.addWidget(self.cancel_button)
        self.status = QLabel("", self)
        self.status.setObjectName("scanSummary")
        self.status.setWordWrap(True)
        return row

    def _build_objects(self) -> ObjectControls:
        """The objects controls and table (engine.analysis through the job runner)."""
        self.objects_box = ObjectControls(self)
        self.objects_box.find_requested.connect(lambda: self.find_objects())
        self.objects_box.overlay_toggled.connect(lambda _on: self._apply_overlay())
        self.objects_box.csv_requested.connect(self._export_csv_dialog)
        self.objects_table = ObjectTable(self)
        self.objects_table.label_selected.connect(self.go_to_object)
        self._objects_job: Optional[Job] = None
        self._objects_of: Optional[VolumeSet] = None  # the tomogram of the objects job
        self._selected_label = 0
        self._going_to_object = False
        self._last_cross: Optional[tuple[int, int, int]] = None
        return self.objects_box

    def _build_controls(self, items: list) -> QScrollArea:
        """The controls column in a scroll area, as wide as its widest box."""
        controls = QWidget(self)
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 4, 0)
        cl.setSpacing(8)
        for item in items:
            if isinstance(item, QWidget):
                cl.addWidget(item)
            else:
                cl.addLayout(item)
        cl.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(controls.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        scroll.setMaximumWidth(scroll.minimumWidth() + 60)
        return scroll

    def _build_views(self) -> None:
        """The right side: warning banner, info lines, linked slice views, line profile, multislice
        convergence, object table."""
        self.view = OrthoSliceView("", True, self)
        self.view.setObjectName("primaryView")
        self.view2 = OrthoSliceView("", True, self)
        self.view2.setObjectName("secondaryView")
        self.view2.setVisible(False)
        for a, b in ((self.view, self.view2), (self.view2, self.view)):
            a.crosshair_moved.connect(lambda z, y, x, b=b: self._link_crosshair(b, z, y, x))
            a.levels_changed.connect(lambda lo, hi, b=b: self._link_levels(b, lo, hi))
        self.view.crosshair_moved.connect(lambda *_: self._update_profile())
        self.view.crosshair_moved.connect(self._crosshair_on_object)
        self.info = QLabel("", self)
        self.info.setObjectName("volumeInfo")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        views = QWidget(self)
        vl = QHBoxLayout(views)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.setSpacing(6)
        vl.addWidget(self.view, 1)
        vl.addWidget(self.view2, 1)
        self.profile = LineProfilePlot(self)
        self.misfit_plot = MisfitPlot(self)
        self.misfit_plot.setVisible(False)
        self.bottom_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.bottom_splitter.addWidget(self.profile)
        self.bottom_splitter.addWidget(self.misfit_plot)
        self.bottom_splitter.addWidget(self.objects_table)
        self.bottom_splitter.setStretchFactor(0, 1)
        self.bottom_splitter.setStretchFactor(1, 1)
        self.bottom_splitter.setStretchFactor(2, 2)
        self.bottom_splitter.setChildrenCollapsible(False)
        self.objects_table.setVisible(False)
        self.view_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.view_splitter.addWidget(views)
        self.view_splitter.addWidget(self.bottom_splitter)
        self.view_splitter.setStretchFactor(0, 4)
        self.view_splitter.setStretchFactor(1, 1)
        self.view_splitter.setChildrenCollapsible(False)
        viewer = QWidget(self)
        vvl = QVBoxLayout(viewer)
        vvl.setContentsMargins(0, 0, 0, 0)
        vvl.setSpacing(4)
        self.warning_banner = WarningBanner(self)
        self.sideband_label = QLabel("", self)
        self.sideband_label.setObjectName("sidebandLabel")
        self.sideband_label.setStyleSheet("color: #aeb4bd;")
        self.sideband_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        vvl.addWidget(self.warning_banner)
        vvl.addWidget(self.info)
        vvl.addWidget(self.sideband_label)
        vvl.addWidget(self.view_splitter, 1)
        self.empty = QLabel(self)
        self.empty.setObjectName("dropZone")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.right_stack = QStackedWidget(self)
        self.right_stack.addWidget(self.empty)
        self.right_stack.addWidget(viewer)
        self.show_message("No tomogram yet",
                          "Choose a measurement (from the project, or a folder) and press "
                          "<b>Run reconstruction</b>, or open a result file (<code>.odt.h5</code>).")
    def show_message(self, title: str, body: str = "") -> None:
        """Show a big message instead of the views (no tomogram yet, loading, errors)."""
        self.empty.setText(f"<p style='font-size:15pt'>{title}</p><p>{body}</p>")
        self.right_stack.setCurrentWidget(self.empty)

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def _update_enabled(self) -> None:
        self.method_box.update_enabled()
        self.run_button.setEnabled(self.folder is not None and not self.running)
        self.cancel_button.setEnabled(self.running)
        have = self.result is not None
        final = have and not self.result.preview
        self.export_box.set_enabled(final)
        self.peak_button.setEnabled(have)
        busy = self._objects_job is not None and not self._objects_job.done
        self.objects_box.find_button.setEnabled(final and not busy)
        self.objects_box.set_have_objects(final and self.result.objects is not None)

    def options(self) -> ProcessOptions:
        """The pipeline options as chosen in the *Method* box (with the project's side-band setting)."""
        return self.method_box.options(project_sideband(self.project) if self.project is not None else "auto")

    # ------------------------------------------------------------------ cost estimate
    def _method_changed(self) -> None:
        self.update_estimate()

    def update_estimate(self) -> str:
        """Show the estimated time of a run with the form's options on the current measurement.

        The first estimate times this computer once (a short job, :func:`calibrate_cost`); later
        ones are arithmetic on the measurement's size. Returns the text shown.
        """
        if self.folder is None:
            text = "Estimated time: choose a measurement"
        else:
            if self._size is None or self._size[0] != self.folder:
                self._size = (self.folder, measurement_size(self.folder))
            self.method_box.set_polarised(bool(self._size[1] is not None and self._size[1].metadata.polarised))
            if self._calibration is None:
                self._start_calibration()
            opts = self.options()
            reuse = self._retrieved is not None and self._retrieved[0] == self.folder
            text = cost_text(self._size[1], opts, self._fields_used_estimate(), self._calibration, reuse)
        self.cost_label.setText(text)
        return text

    def _fields_used_estimate(self) -> Optional[int]:
        """Fields the project's review keeps for the current measurement (None: all)."""
        screening = self._project_screening(self.folder) if self.folder is not None else None
        decision = getattr(screening, "decision", None)
        return int(np.count_nonzero(decision)) if decision is not None else None

    def _start_calibration(self) -> None:
        if self._calibrating is not None and not self._calibrating.done:
            return
        self._calibrating = self.runner.submit(
            "Timing this computer for the cost estimates", calibrate_cost, "cpu", show_errors=False,
            on_result=self._calibrated, on_error=lambda exc: self.cost_label.setText(f"No estimate: {exc}"))

    def _calibrated(self, calibration: Any) -> None:
        self._calibration = calibration
        self.update_estimate()

    # ------------------------------------------------------------------ project and sources
    def set_project(self, project: Any) -> None:
        """Use ``project`` (an ``engine.store.project.Project``, or None): its measurements are
        offered, its screening decisions used, its result files written."""
        self.project = project if project is not None and hasattr(project, "list_measurements") else None
        records = []
        if self.project is not None:
            try:
                records = [r for r in self.project.list_measurements() if r.status != "invalid"]
            except Exception:
                log.exception("could not list the project's measurements")
        self.source_box.set_measurements([(r.name, str(r.path)) for r in records])

    def _project_record(self, folder: Path) -> Any:
        if self.project is None:
            return None
        try:
            target = folder.resolve()
            for r in self.project.list_measurements():
                if Path(r.path).resolve() == target:
                    return r
        except Exception:
            log.exception("project lookup failed for %s", folder)
        return None

    def _project_result_path(self, folder: Path) -> Optional[Path]:
        rec = self._project_record(folder)
        if rec is None:
            return None
        try:
            return Path(self.project.result_path(rec))
        except Exception:
            log.exception("no result path for %s", folder)
            return None

    @Slot(int)
    def _project_measurement_chosen(self, index: int) -> None:
        path = self.measurement_combo.itemData(index)
        if path:
            self.show_measurement(Path(path))

    def show_measurement(self, folder: Path) -> Optional[Job]:
        """Make ``folder`` the measurement to reconstruct; show its saved tomogram if the project has one."""
        folder = Path(folder)
        if self._retrieved is not None and self._retrieved[0] != folder:
            self._retrieved = None  # another measurement's fields are of no use
        self.folder = folder
        self.source_box.show_folder(folder)
        self._update_enabled()
        self.update_estimate()
        out = self._project_result_path(folder)
        if out is not None and out.is_file():
            if is_complete_result(out, require=("tomogram",)):
                return self.open_result(out)
        if self.result is None or self.result.source != folder:
            self.show_message(f"{folder.name}", "No tomogram yet: choose the method and press "
                                                "<b>Run reconstruction</b>.")
        return None

    @Slot()
    def _choose_folder(self) -> None:
        start = str(self.folder.parent) if self.folder else (self.settings.import_root if self.settings else "")
        path = QFileDialog.getExistingDirectory(self, "Choose a measurement folder", start or "")
        if path:
            self.show_measurement(Path(path))

    @Slot()
    def _choose_result(self) -> None:
        start = str(self.folder.parent) if self.folder else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a tomogram", start,
                                              "Tomograms (*.odt.h5 *.h5 *.TCF *.tcf);;All files (*)")
        if path:
            self.open_result(Path(path))

    def open_result(self, path: Path) -> Job:
        """Read a result file (``.odt.h5``) or a Tomocube TCF in the background and show it."""
        path = Path(path)
        self.show_message(f"Reading {path.name} …")
        return self.runner.submit(f"Reading {path.name}", load_volume_file, path,
                                  on_result=self.show_volumes, on_error=self._load_failed)

    def _load_failed(self, exc: BaseException) -> None:
        self.show_message("Could not read the file", str(exc))

    # ------------------------------------------------------------------ run and cancel
    # ------------------------------------------------------------------ run and cancel
    def run(self, options: Optional[ProcessOptions] = None) -> Optional[Job]:
        """Reconstruct the current measurement with ``options`` (default: the form) in the background.

        One call of :func:`engine.pipeline.process.process_measurement` in the job runner
        (:func:`app.logic.reconstruction.run_reconstruction`), with the project's screening, the
        fields of the last run of this measurement (if they serve), the raw tomogram shown as soon
        as it exists when a regulariser or the multislice iterations follow, and the misfit of each
        multislice iteration plotted as it comes.
        """
        if self.folder is None:
            self.status.setText("Choose a measurement first.")
            return None
        if self.running:
            return self.job
        folder = self.folder
        screening = self._project_screening(folder)
        opts = options or self.options()
        if options is None and self._project_record(folder) is None:
            # a loose folder has no review: the shipped screen leaves out defective fields, as the batch
            # does by default (one fringe field left in draws a lattice through the whole tomogram)
            opts = dataclasses.replace(opts, screen="model")
        out_path = self._project_result_path(folder)
        # the fields of the last run here, else those the project's result file holds (the pipeline
        # uses them only if they serve these options)
        retrieved = self._retrieved[1] if self._retrieved is not None and self._retrieved[0] == folder else out_path
        multislice = opts.method == "multislice"
        extra: dict = {"on_raw": self._relay.raw_ready.emit} if opts.regularize != "none" or multislice else {}
        self._iterating = multislice
        if multislice:
            extra["on_iteration"] = self._relay.iteration.emit
            self.misfit_plot.clear_values()
        self.status.setText(f"Reconstructing {folder.name} ({opts.describe()}) …")
        self._run = (folder, opts.sideband)
        self._keeper.take()  # nothing left from an earlier run
        self.job = self.runner.submit(
            f"Reconstructing {folder.name}", run_reconstruction, folder, out_path, opts, keeper=self._keeper,
            screening=screening, retrieved=retrieved, on_result=self._finished,
            on_error=self._failed, on_cancelled=self._cancelled, **extra)
        self._update_enabled()
        self.runner.job_done.connect(self._job_done)
        return self.job

    def _project_screening(self, folder: Path) -> Any:
        """The project's screening of ``folder`` with its manual overrides, or None (never screened)."""
        rec = self._project_record(folder)
        if rec is None:
            return None
        try:
            return project_screening_record(self.project, rec.id)
        except Exception:
            log.exception("could not read the screening decisions of %s", folder)
            return None

    @Slot()
    def cancel(self) -> None:
        """Cancel the running reconstruction (the engine stops at its next check; a multislice run
        keeps its last iterate)."""
        if self.running:
            self.status.setText("Cancelling …")
            self.runner.cancel(self.job)

    def _job_progress(self, job: Job, fraction: float, message: str) -> None:
        if job is self.job and not job.token.cancelled:
            self.status.setText(f"{self.folder.name if self.folder else ''}: {message} ({fraction:.0%})")

    def _job_done(self, job: Job) -> None:
        if job is self.job:
            try:
                self.runner.job_done.disconnect(self._job_done)
            except (RuntimeError, TypeError):
                pass
            self._update_enabled()

    def _raw_ready(self, tomogram: Any) -> None:
        """The raw tomogram of the running reconstruction: shown until the refined one replaces it."""
        job = self.job
        if job is None or job.done or job.token.cancelled or self._run is None:
            return
        folder = self._run[0]
        self.show_volumes(preview_set(tomogram, folder, folder.name))
        doing = "multislice iterations running" if self._iterating else "regularising"
        self.view.set_title(f"{self.view.title.text()} — {doing}, shown meanwhile …")
        self.status.setText(f"{folder.name}: raw tomogram shown; {doing} …")
        if self._iterating:
            self._show_misfit(self.misfit_plot.values, running=True)

    @Slot(int, float)
    def _iteration_done(self, iteration: int, misfit: float) -> None:
        """One multislice iteration of the running job: its data misfit joins the live plot."""
        if self.job is None or self.job.done:
            return
        self.misfit_plot.append(iteration, misfit)
        self._show_misfit(self.misfit_plot.values, running=True)

    def _finished(self, result: ProcessResult) -> None:
        folder, sideband = self._run if self._run is not None else (Path(result.name), None)
        self._retrieved = (folder, result.retrieved) if result.retrieved is not None else None
        vs = volume_set_from_result(result, folder, sideband)
        secs = self.job.seconds if self.job is not None else None
        saved = f"; saved to {vs.out_path.name}" if vs.out_path else ""
        warned = f" {len(vs.warnings)} warning(s): see above the views." if vs.warnings else ""
        self.status.setText(f"Done{f' in {secs:.1f} s' if secs else ''}{saved}.{_learned_step_text(result)}{warned}")
        self.show_volumes(vs)
        self.update_estimate()  # the fields are reused now

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Failed: {exc}")
        self._drop_preview("The reconstruction failed", str(exc))

    def _cancelled(self) -> None:
        partial = self._keeper.take()
        if partial is not None and self._run is not None:
            # the multislice's last iterate: shown and savable (Result file…), not written anywhere
            vs = volume_set_from_result(partial, self._run[0], self._run[1], cancelled=True)
            rec = vs.tomogram.ri_ms_record or {}
            self.status.setText(f"Cancelled after {rec.get('iterations', '?')} of {rec.get('iterations_asked', '?')} "
                                "multislice iterations: the last iterate is shown, not saved "
                                "(Export ▸ Result file… saves it).")
            self.show_volumes(vs)
            return
        self.status.setText("Cancelled.")
        self._drop_preview("Cancelled", "Run the reconstruction again, or choose another measurement.")

    def _drop_preview(self, title: str, body: str) -> None:
        """A raw preview of a run that did not finish is not a result (it was never saved): clear it."""
        if self.result is not None and self.result.preview:
            self.result = None
            self.misfit_plot.setVisible(False)
            self.show_message(title, body)
            self._update_enabled()

    # ------------------------------------------------------------------ display
    def show_volumes(self, vs: VolumeSet) -> None:
        """Show ``vs``: its volumes in the switch, raw and refined side by side when both exist, the
        multislice convergence when it has one, and the options it was made with in the form."""
        first = self.result is None or self.result.volumes.get("raw", np.zeros(0)).shape != \
            next(iter(vs.volumes.values())).shape
        self.result = vs
        if vs.source is not None and vs.source.is_dir():
            self.folder = vs.source
        refined = refined_keys(vs)
        current = refined[0] if refined else next(iter(vs.volumes))
        both = bool(refined) and "raw" in vs.volumes
        self.display_box.set_volumes([(VOLUME_LABELS[k], k) for k in VOLUME_LABELS if k in vs.volumes], current,
                                     both if both else None)
        self.display_box.set_delta(default_delta(vs.volumes[current], vs.medium_index))
        self.medium_label.setText(f"{vs.medium_index:.4f}")
        self.info.setText(volume_info(vs))
        self._show_warnings(vs)
        self.profile.set_medium_index(vs.medium_index)
        self.right_stack.setCurrentIndex(1)
        self._show_current(keep=not first)
        if not vs.preview:
            self._show_misfit(vs.misfit)
            if vs.options is not None:
                self.method_box.set_options(vs.options)
        self._fill_export_volumes(vs)
        self._show_objects()
        self._update_enabled()
        (self.raw_shown if vs.preview else self.volume_shown).emit(vs)
        stored = getattr(vs.tomogram, "labels", None)
        if stored is not None and vs.objects is None and not vs.preview:
            self.find_objects(labels=stored)  # the result file's labels: measured, shown, listed

    def _show_misfit(self, misfit: list, running: bool = False) -> None:
        """The convergence plot: shown while a multislice run iterates and for a multislice result."""
        if not running:
            self.misfit_plot.set_values(misfit)
        show = bool(misfit) or running
        if show and not self.misfit_plot.isVisibleTo(self):  # room beside the line profile
            sizes = self.bottom_splitter.sizes()
            total = sum(sizes)
            self.misfit_plot.setVisible(True)
            self.bottom_splitter.setSizes([total - total // 3 - sizes[2], total // 3, sizes[2]])
        self.misfit_plot.setVisible(show)

    def _show_warnings(self, vs: VolumeSet) -> None:
        """The banner with the processing warnings of ``vs`` (hidden when none) and its side-band line."""
        self.warning_banner.show_warnings(vs.warnings or [])
        known = vs.retrieval is not None or vs.fields is not None
        self.sideband_label.setText(sideband_description(vs.retrieval, vs.sideband or "auto") if known else "")
        self.sideband_label.setVisible(known)

    def current_volume_key(self) -> Optional[str]:
        return self.volume_combo.currentData()

    def current_volume(self) -> Optional[np.ndarray]:
        """The volume chosen in the switch (RI, (Z, Y, X)), or None."""
        key = self.current_volume_key()
        return None if self.result is None or key is None else self.result.volumes.get(key)

    def _show_current(self, *_args: Any, keep: bool = True) -> None:
        vs = self.result
        if vs is None:
            return
        side = self.side_check.isChecked() and self.side_check.isEnabled()
        left, right = shown_pair(vs, self.current_volume_key(), side)
        cross = self.view.crosshair if keep and self.view.volume is not None else None
        self.view.set_volume(vs.volumes[left], vs.voxel_size_um, vs.origin_um, vs.medium_index)
        self.view.set_title(VOLUME_LABELS[left] + (f" ({vs.method})" if left == "raw" else ""))
        self.view2.setVisible(right is not None)
        if right is not None:
            self.view2.set_volume(vs.volumes[right], vs.voxel_size_um, vs.origin_um, vs.medium_index)
            self.view2.set_title(VOLUME_LABELS[right] + (" (last iterate, not saved)" if vs.cancelled and right == "ms"
                                                         else ""))
            self.view2.set_mip(self.mip_check.isChecked())
            self.view2.set_crosshair(*self.view.crosshair)
        if cross is not None:
            self.view.set_crosshair(*cross)
        self.view.set_mip(self.mip_check.isChecked())
        self._apply_levels()
        self._update_profile()

    @Slot()
    def _apply_levels(self) -> None:
        if self.result is None:
            return
        nm = self.result.medium_index
        for v in (self.view, self.view2):
            v.set_levels(nm, nm + self.delta_spin.value())
            v.set_colorbar_label(f"n (RI), from n_m = {nm:.4f}")

    def _link_levels(self, other: OrthoSliceView, lo: float, hi: float) -> None:
        if self._linking or not other.isVisible():
            return
        self._linking = True
        try:
            other.set_levels(lo, hi)
        finally:
            self._linking = False

    def _link_crosshair(self, other: OrthoSliceView, z: int, y: int, x: int) -> None:
        if self._linking:
            return
        self._linking = True
        try:
            if other.volume is not None:
                other.set_crosshair(z, y, x)
        finally:
            self._linking = False
        self._update_profile()

    @Slot(bool)
    def set_mip(self, on: bool) -> None:
        """Show maximum-intensity projections (True) or slices (False) in every view."""
        if self.mip_check.isChecked() != on:
            self.mip_check.setChecked(on)
            return
        self.view.set_mip(on)
        self.view2.set_mip(on)

    def _go_to_peak(self) -> None:
        self.view.go_to_maximum()

    def _update_profile(self) -> None:
        if self.result is None or self.view.volume is None:
            self.profile.clear_profiles()
            return
        axis = self.profile_axis.currentData()
        pos, values = self.view.profile(axis)
        profiles = {self.view.title.text() or "n": values}
        # isHidden, not isVisible: a result loaded while another tab is current must profile both
        if not self.view2.isHidden() and self.view2.volume is not None:
            profiles[self.view2.title.text() or "n (2)"] = self.view2.profile(axis)[1]
        self.profile.set_axis_name(axis)
        self.profile.set_profiles(pos, profiles)
        self.profile.set_cursor(self.view.crosshair_um["zyx".index(axis)])

    # ------------------------------------------------------------------ objects
    def find_objects(self, labels: Optional[np.ndarray] = None) -> Optional[Job]:
        """Segment the volume on screen with the *Objects* settings and measure every object, in the
        background (:func:`find_objects`); ``labels`` given (e.g. a result file's) are measured as
        they are. New labels are stored in the result file when the tomogram has one."""
        vs = self.result
        if vs is None or vs.preview or self.view.volume is None:
            self.status.setText("Nothing to segment yet.")
            return None
        if self._objects_job is not None and not self._objects_job.done and self._objects_of is vs:
            return self._objects_job
        self._objects_of = vs
        key = self.current_volume_key() or next(iter(vs.volumes))
        volume = ENGINE_VOLUME[key]
        ri = vs.volumes[key]
        params = self.objects_box.parameters()
        save_to = vs.out_path if labels is None and vs.out_path is not None and \
            str(vs.out_path).endswith(".odt.h5") and Path(vs.out_path).is_file() else None
        load_analysis()
        what = "Measuring the stored objects" if labels is not None else f"Finding objects in {VOLUME_LABELS[key]}"
        self.objects_box.summary.setText(f"{what} …")
        self._objects_job = self.runner.submit(
            f"{what} of {vs.name}", find_objects, ri, vs.medium_index, vs.voxel_size_um, vs.origin_um,
            volume=volume, labels=labels, birefringence=birefringence_group(vs), save_to=save_to,
            on_result=lambda found, vs=vs, stored=labels is not None: self._objects_found(vs, found, stored),
            on_error=lambda exc: self.objects_box.summary.setText(f"Failed: {exc}"),
            on_cancelled=lambda: self.objects_box.summary.setText("Cancelled."), **params)
        self._update_enabled()
        return self._objects_job

    def _objects_job_done(self, job: Job) -> None:
        if job is self._objects_job:
            self._update_enabled()

    def _objects_found(self, vs: VolumeSet, found: ObjectsFound, stored: bool = False) -> None:
        if vs is not self.result:  # another tomogram is shown now
            return
        found.saved = found.saved or (stored and vs.out_path is not None)  # the file's own labels
        vs.objects = found
        self._show_objects()
        self._update_enabled()

    def _show_objects(self) -> None:
        """The table, summary and overlay of the objects of the tomogram on screen (cleared without)."""
        vs = self.result
        obj = vs.objects if vs is not None else None
        self._selected_label = 0
        self.objects_table.set_measurements(obj.measurements if obj is not None else [])
        if obj is not None and not self.objects_table.isVisible():
            sizes = self.view_splitter.sizes()
            room = min(240, sum(sizes) // 3)
            if len(sizes) == 2 and sizes[1] < room:  # room for a few rows of the table
                self.view_splitter.setSizes([sum(sizes) - room, room])
        self.objects_table.setVisible(obj is not None)
        if obj is not None:  # the table as wide as its columns, the line profile at least 30 %
            total = sum(self.bottom_splitter.sizes())
            width = min(self.objects_table.content_width(), int(0.7 * total))
            self.bottom_splitter.setSizes([total - width, width])
        if obj is None:
            self.objects_box.summary.setText("")
        else:
            how = ("labels of the result file" if obj.threshold_dn is None and obj.measurements
                   else f"Δn > {obj.threshold_dn:.4f}" if obj.threshold_dn is not None else "nothing above n_m")
            total = sum(m.volume_um3 for m in obj.measurements)
            mass = sum(m.dry_mass_pg for m in obj.measurements)
            saved = (" Stored in the result file." if obj.saved else
                     f" Not stored in the result file ({obj.save_error})." if obj.save_error else "")
            self.objects_box.summary.setText(
                f"<b>{len(obj.measurements)}</b> objects in {obj.volume} ({how}): {total:.1f} µm³, "
                f"{mass:.2f} pg.{saved}")
        self._apply_overlay()

    def _apply_overlay(self) -> None:
        """Draw the labels over the slices (one colour each, the selected one brighter) or remove them."""
        vs = self.result
        obj = vs.objects if vs is not None else None
        on = obj is not None and self.objects_box.overlay_check.isChecked()
        for v in (self.view, self.view2):
            if on:
                v.set_overlay(obj.labels, label_colors(int(obj.labels.max(initial=0)), self._selected_label))
            elif v.overlay is not None:
                v.set_overlay(None)

    @Slot(int)
    def go_to_object(self, label: int) -> None:
        """Move the views to the centroid of object ``label`` and highlight it (0: no highlight)."""
        vs = self.result
        obj = vs.objects if vs is not None else None
        m = obj.measurement(label) if obj is not None and label else None
        self._selected_label = int(label) if m is not None else 0
        if m is not None and self.view.volume is not None:
            z, y, x = (self.view.index_of(a, getattr(m, f"centroid_{a}_um")) for a in "zyx")
            self._going_to_object = True
            try:
                self.view.set_crosshair(z, y, x)
            finally:
                self._going_to_object = False
        self._apply_overlay()

    def _crosshair_on_object(self, z: int, y: int, x: int) -> None:
        """A click (or any crosshair move) onto an object selects its row; onto the background, none.

        With maximum-intensity projections, a click moves the two coordinates of the view clicked
        and keeps the projected one: off an object there, the label the overlay shows (the largest
        along the projected line) is taken.
        """
        prev, self._last_cross = self._last_cross, (z, y, x)
        vs = self.result
        if self._going_to_object or vs is None or vs.objects is None:
            return
        labels = vs.objects.labels
        if labels.shape != self.view.volume.shape:
            return
        label = int(labels[z, y, x])
        kept = [a for a in range(3) if prev is not None and prev[a] == (z, y, x)[a]]
        if label == 0 and self.view.mip and len(kept) == 1:
            line: list[Any] = [z, y, x]
            line[kept[0]] = slice(None)
            label = int(labels[tuple(line)].max())
        if label != self._selected_label:
            self._selected_label = label
            self.objects_table.select_label(label)
            self._apply_overlay()

    def export_objects_csv(self, path: str | Path) -> Optional[Job]:
        """Write the table of objects as CSV (the columns of ``odt-studio batch --measure``), in the background."""
        if self.result is None or self.result.objects is None:
            self.status.setText("No objects yet: press Find objects first.")
            return None
        p = Path(path)
        return self.runner.submit(f"Exporting {p.name}", write_objects_csv, p, self.result,
                                  on_result=lambda out: self.status.setText(f"Exported {Path(out).name}"))

    def _export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the objects as CSV", self._suggest("objects", ".csv"),
                                              "CSV (*.csv)")
        if path:
            self.export_objects_csv(path if path.endswith(".csv") else path + ".csv")

    # ------------------------------------------------------------------ export
    def _fill_export_volumes(self, vs: VolumeSet) -> None:
        """Offer the volumes ``vs`` has, the one on screen first chosen."""
        self.export_box.set_volumes(export_volumes(vs), ENGINE_VOLUME.get(self.current_volume_key() or "", "ri"))

    def _suggest(self, volume: str, suffix: str) -> str:
        name = self.result.name if self.result else "tomogram"
        base = self.result.out_path.parent if self.result is not None and self.result.out_path is not None else \
            self.folder.parent if self.folder else Path.home()
        return str(base / f"{name}.{volume}{suffix}")

    def export_volume(self, volume: str, to: str, path: str | Path) -> Optional[Job]:
        """Write ``volume`` (``ri``, ``ri_tv``, ``ri_deep``, ``n_e``, ``n_o``, ``dn``, ``labels``) as ``to``
        (``ome-tiff``, ``ome-zarr``, ``imagej``) with its voxel size and origin, in the background
        (:func:`export_volume`)."""
        if self.result is None or self.result.preview:
            self.status.setText("Nothing to export yet.")
            return None
        p = Path(path)
        return self.runner.submit(f"Exporting {p.name}", export_volume, self.result, volume, to, p,
                                  on_result=lambda out: self.status.setText(f"Exported {Path(out).name}"),
                                  on_error=lambda exc: self.status.setText(f"Export failed: {exc}"))

    def _export_volume_dialog(self) -> None:
        volume = self.export_volume_combo.currentData()
        to = self.export_format_combo.currentData()
        if volume is None or to is None:
            return
        suffix = {"ome-tiff": ".ome.tif", "ome-zarr": ".ome.zarr", "imagej": ".tif"}[to]
        filt = {"ome-tiff": "OME-TIFF (*.ome.tif *.ome.tiff)", "ome-zarr": "OME-Zarr (*.ome.zarr *.zarr)",
                "imagej": "ImageJ TIFF (*.tif *.tiff)"}[to]
        path, _ = QFileDialog.getSaveFileName(self, f"Export {EXPORT_VOLUME_LABELS[volume]} as "
                                                    f"{EXPORT_FORMAT_LABELS[to]}", self._suggest(volume, suffix), filt)
        if path:
            if not any(path.endswith(x) for x in (suffix, ".tiff", ".zarr")):
                path += suffix
            self.export_volume(volume, to, path)

    def export_result(self, path: str | Path) -> Optional[Job]:
        """Write the whole reconstruction (all volumes, fields, labels, birefringence) as an ``.odt.h5`` result file."""
        if self.result is None:
            self.status.setText("Nothing to export yet.")
            return None
        p = Path(path)
        return self.runner.submit(f"Saving {p.name}", export_result, p, self.result,
                                  on_result=lambda out: self.status.setText(f"Saved {Path(out).name}"))

    def _export_result_dialog(self) -> None:
        name = self.result.name if self.result else "tomogram"
        base = self.folder.parent if self.folder else Path.home()
        path, _ = QFileDialog.getSaveFileName(self, "Save result file", str(base / f"{name}.odt.h5"),
                                              "ODT result (*.odt.h5)")
        if path:
            if not path.endswith(".odt.h5"):
                path += ".odt.h5"
            self.export_result(path)
