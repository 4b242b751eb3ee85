"""Reconstruction tab: choose the method, run it in the background, browse and export the tomogram.

The tab does no science. A reconstruction is one call of the engine pipeline,
:func:`engine.pipeline.process.process_measurement`, run in the :class:`app.jobs.JobRunner` —
the same call ``odt-studio batch`` makes — with a :class:`engine.pipeline.process.ProcessOptions`
built from the form. The tab hands it what the session knows: the project's screening
decisions with the manual overrides (:func:`engine.pipeline.project_screening.project_screening_record`),
the fields retrieved by the last run of the same measurement (a run with other parameters skips
the retrieval), the project's side-band setting, and a callback that shows the raw tomogram as
soon as it exists while TV or the learned regulariser still runs. The pipeline writes the
project's result file (``docs/formats.md`` §2, with ``retrieval/`` and the ``warnings``
attribute). Result files are read with :mod:`engine.store.results`, Tomocube TCF files with
:func:`engine.store.folders.read_tcf`.

Physical units everywhere: axes in µm, values as refractive index (RI), the medium index n_m
shown beside the views and used as the bottom of the colour range. Exports: an ImageJ
hyperstack TIFF with its voxel size in µm, a ``.npy`` volume, or the ``.odt.h5`` result file.
Warnings of the processing (e.g. the sample's phase is mostly negative,
:func:`engine.pipeline.process.contrast_warnings`) are shown in a banner above the views.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import tifffile
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
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
import engine.tomography.reconstruct  # noqa: F401
import engine.tomography.tv  # noqa: F401
from engine.pipeline.process import (
    ProcessOptions,
    ProcessResult,
    learned_regularizer_available,
    process_measurement,
)
from engine.pipeline.project_screening import project_screening_record, project_sideband, sideband_description, \
    stored_retrieval
from engine.progress import check_cancel, report
from engine.store.folders import read_tcf
from engine.store.results import TomogramResult, is_complete_result, read_result, write_result

from ..jobs import Job, JobRunner
from ..settings import AppSettings
from ..widgets.plots import LineProfilePlot
from ..widgets.slice_view import OrthoSliceView

__all__ = [
    "VolumeSet",
    "VOLUME_LABELS",
    "deep_regularizer_available",
    "volume_set_from_result",
    "load_volume_file",
    "export_tiff",
    "export_npy",
    "export_result",
    "ReconstructionTab",
]

log = logging.getLogger(__name__)

#: Display names of the volumes a reconstruction can hold, in display order.
VOLUME_LABELS = {"raw": "Raw", "tv": "TV-regularised", "deep": "Learned regulariser", "tcf": "TCF"}
#: A warning banner: dark amber, readable on the dark theme; the text starts with "⚠".
WARNING_STYLE = ("QLabel { background: #3d3200; color: #ffd866; border: 1px solid #a88a00; "
                 "border-radius: 4px; padding: 5px 8px; }")
DEEP_MISSING = ("The learned regulariser (DeepRegularizer) is not installed: its weights "
                "(deep_regularizer.safetensors) are not in resources/models.")
#: Smallest TV weight the form offers (a zero weight would be no TV at all)
MIN_TV_WEIGHT = 1e-5


# ====================================================================== display container
#: display key → attribute of the engine's tomogram container
_VOLUME_ATTRS = (("raw", "ri"), ("tv", "ri_tv"), ("deep", "ri_deep"))


@dataclass
class VolumeSet:
    """What the tab shows: one engine tomogram and where it came from.

    The volumes and their geometry live in ``tomogram``, the engine's container
    (:class:`engine.store.results.TomogramResult`, or the
    :class:`engine.tomography.reconstruct.Tomogram` of a pipeline run); the properties below
    only name them for display. Everything else is provenance for the info line, the banner
    and a re-save.

    Attributes
    ----------
    name : str
        Measurement name.
    tomogram : TomogramResult or Tomogram
        ``ri`` (after non-negativity when asked), optional ``ri_tv``, ``ri_deep`` (Z, Y, X) RI;
        ``voxel_size_um``, ``origin_um`` (z, y, x) µm; ``medium_index``; ``method`` (``"tcf"``
        for a Tomocube file).
    source : Path or None
        Measurement folder or file it came from.
    measurement_json : str
        The measurement's metadata (for the result file).
    fields, illumination_per_um : arrays or None
        Retrieved fields (N, H, W) complex64 and (N, 2) cycles/µm.
    screening : object or None
        The screening record (``score``, ``rule_peak``, ``decision``, ``source``), kept when re-saving.
    out_path : Path or None
        The result file written by the job, if any.
    fields_used : int or None
        Fields the reconstruction used (those the screening kept).
    retrieval : dict or None
        ``{"quality": ..., "attrs": ...}``: the result file's ``retrieval/`` group.
    warnings : list of str
        Warnings of the processing, shown in a banner.
    sideband : str or None
        The side-band setting the fields were retrieved with here (None: not retrieved here).
    preview : bool
        Only the raw tomogram of a run whose regularisation is still going on.
    """

    name: str
    tomogram: Any
    source: Optional[Path] = None
    measurement_json: str = ""
    fields: Optional[np.ndarray] = None
    illumination_per_um: Optional[np.ndarray] = None
    screening: Any = None
    out_path: Optional[Path] = None
    fields_used: Optional[int] = None
    timings_s: dict = field(default_factory=dict)
    retrieval: Optional[dict] = None
    warnings: list = field(default_factory=list)
    sideband: Optional[str] = None
    preview: bool = False

    @property
    def volumes(self) -> dict:
        """Display key (:data:`VOLUME_LABELS`) → (Z, Y, X) RI volume, those the tomogram holds."""
        t = self.tomogram
        if str(t.method) == "tcf":
            return {"tcf": t.ri}
        return {k: getattr(t, a) for k, a in _VOLUME_ATTRS if getattr(t, a, None) is not None}

    @property
    def voxel_size_um(self) -> tuple:
        return tuple(float(v) for v in self.tomogram.voxel_size_um)

    @property
    def origin_um(self) -> tuple:
        return tuple(float(v) for v in self.tomogram.origin_um)

    @property
    def medium_index(self) -> float:
        return float(self.tomogram.medium_index)

    @property
    def method(self) -> str:
        return str(self.tomogram.method)


def volume_set_from_result(result: ProcessResult, folder: Path, sideband: Optional[str] = None) -> VolumeSet:
    """What a pipeline run produced, as the tab shows and exports it."""
    s = result.screening
    screening = None if s is None else _screening_record(s)
    return VolumeSet(name=result.name, tomogram=result.tomogram,
                     source=Path(folder), measurement_json=result.metadata.to_json() if result.metadata else "",
                     fields=result.fields, illumination_per_um=result.illumination_per_um, screening=screening,
                     out_path=result.out_path, fields_used=result.fields_used, timings_s=dict(result.timings_s),
                     retrieval=result.retrieval, warnings=list(result.warnings), sideband=sideband)


def _screening_record(s: Any) -> dict:
    """The screening record of a pipeline run as ``write_result`` takes it."""
    model = f"{getattr(s, 'model_name', '')} {getattr(s, 'model_version', '')}".strip()
    return {"score": s.score, "rule_peak": s.rule_peak, "decision": s.decision, "source": s.source, "model": model}


def _preview_set(tomogram: Any, folder: Path, name: str) -> VolumeSet:
    """The raw tomogram of a running reconstruction (shown until the regularised one is ready)."""
    return VolumeSet(name=name, tomogram=tomogram, source=Path(folder), preview=True)


def deep_regularizer_available() -> bool:
    """True when the learned regulariser's weights and card are shipped in ``resources/models``."""
    return learned_regularizer_available()


class _RawRelay(QObject):
    """Carries the raw tomogram from the pipeline's worker thread to the GUI thread (queued signal)."""

    raw_ready = Signal(object)


def _tomogram_group(vs: VolumeSet) -> TomogramResult:
    """The result file's ``tomogram`` group of ``vs`` (a TCF volume is stored as ``ri``)."""
    return TomogramResult.from_tomogram(vs.tomogram)


def load_volume_file(path: str | Path, progress: Optional[Callable[..., None]] = None,
                     cancel=None) -> VolumeSet:
    """Read a result file (``.odt.h5``) or a Tomocube ``.TCF`` into a :class:`VolumeSet` (a job).

    Raises
    ------
    ValueError
        The file is neither, or holds no tomogram.
    """
    path = Path(path)
    report(progress, 0.0, f"reading {path.name}")
    check_cancel(cancel)
    if path.suffix.lower() == ".tcf":
        tcf = read_tcf(path)
        volume = np.asarray(tcf.ri, dtype=np.float32)
        # TCF files carry no medium index: take the background level (the most common value)
        medium = float(np.median(volume[:, :4, :].ravel())) if volume.size else 1.337
        report(progress, 1.0, "loaded")
        tomogram = TomogramResult(ri=volume, voxel_size_um=tuple(tcf.voxel_size_um), origin_um=tuple(tcf.origin_um),
                                  medium_index=medium, method="tcf")
        return VolumeSet(name=path.stem, tomogram=tomogram, source=path)
    res = read_result(path)
    t = res.tomogram
    if t is None or t.ri is None:
        raise ValueError(f"'{path}' holds no tomogram (tomogram/ri) yet: reconstruct the measurement first")
    name = path.name[: -len(".odt.h5")] if path.name.endswith(".odt.h5") else path.stem
    retrieval, warnings = stored_retrieval(res)
    report(progress, 1.0, "loaded")
    return VolumeSet(name=name, tomogram=t, retrieval=retrieval, warnings=warnings, source=path,
                     measurement_json=res.measurement_json,
                     fields=res.fields, illumination_per_um=res.illumination_per_um, screening=res.screening,
                     out_path=path)


def export_tiff(path: str | Path, volume: np.ndarray, voxel_size_um: tuple[float, float, float],
                progress: Optional[Callable[..., None]] = None, cancel=None) -> Path:
    """Write ``volume`` (Z, Y, X) as an ImageJ hyperstack TIFF (float32 RI) with its voxel size in µm.

    ImageJ/Fiji reads the z step from ``spacing``, the pixel size from the X/Y resolution
    (pixels per µm) and the unit ``um``.
    """
    path = Path(path)
    check_cancel(cancel)
    report(progress, 0.0, f"writing {path.name}")
    dz, dy, dx = (float(v) for v in voxel_size_um)
    vol = np.ascontiguousarray(volume, dtype=np.float32)
    tifffile.imwrite(path, vol, imagej=True, resolution=(1.0 / dx, 1.0 / dy),
                     metadata={"spacing": dz, "unit": "um", "axes": "ZYX",
                               "min": float(vol.min()), "max": float(vol.max())})
    report(progress, 1.0, "written")
    return path


def export_npy(path: str | Path, volume: np.ndarray, progress: Optional[Callable[..., None]] = None,
               cancel=None) -> Path:
    """Write ``volume`` (Z, Y, X) float32 RI to a ``.npy`` file."""
    path = Path(path)
    check_cancel(cancel)
    report(progress, 0.0, f"writing {path.name}")
    np.save(path, np.asarray(volume, dtype=np.float32))
    report(progress, 1.0, "written")
    return path if path.suffix == ".npy" else path.with_name(path.name + ".npy")


def export_result(path: str | Path, vs: VolumeSet, progress: Optional[Callable[..., None]] = None,
                  cancel=None) -> Path:
    """Write ``vs`` as an ``.odt.h5`` result file (``docs/formats.md`` §2), atomically."""
    check_cancel(cancel)
    report(progress, 0.0, f"writing {Path(path).name}")
    meta = vs.measurement_json or json.dumps({"sample": {"name": vs.name}, "medium_index": vs.medium_index,
                                              "source": str(vs.source or "")})
    out = write_result(path, measurement_json=meta, fields=vs.fields, illumination_per_um=vs.illumination_per_um,
                       screening=vs.screening, tomogram=_tomogram_group(vs),
                       retrieval=vs.retrieval if vs.fields is not None else None,
                       extra_attrs={"warnings": json.dumps(list(vs.warnings))} if vs.warnings else None)
    report(progress, 1.0, "written")
    return out


# ====================================================================== the tab
def _default_delta(volume: np.ndarray, medium_index: float) -> float:
    """Colour range above n_m: the 99.9th percentile of Δn, rounded up to 0.005 (at least 0.005)."""
    sample = volume[:: max(1, volume.shape[0] // 32)]
    d = float(np.percentile(sample, 99.9)) - medium_index
    return max(0.005, float(np.ceil(d / 0.005) * 0.005))


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
        The :class:`VolumeSet` now on screen (a finished reconstruction or a file).
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
        self._relay = _RawRelay(self)
        self._relay.raw_ready.connect(self._raw_ready)
        self._build()
        self._update_enabled()
        self.runner.job_progress.connect(self._job_progress)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        # --- source
        src = QGroupBox("Measurement", self)
        self.measurement_combo = QComboBox(src)
        self.measurement_combo.setObjectName("projectMeasurements")
        self.measurement_combo.setToolTip("Measurements of the open project")
        self.measurement_combo.activated.connect(self._project_measurement_chosen)
        self.measurement_combo.setVisible(False)
        self.source_label = QLabel("No measurement chosen", src)
        self.source_label.setObjectName("sourceLabel")
        self.source_label.setWordWrap(True)
        self.choose_button = QPushButton("Folder…", src)
        self.choose_button.setToolTip("Choose a measurement folder to reconstruct")
        self.choose_button.clicked.connect(self._choose_folder)
        self.open_button = QPushButton("Open result…", src)
        self.open_button.setToolTip("Open a result file (.odt.h5) or a Tomocube TCF file")
        self.open_button.clicked.connect(self._choose_result)
        row = QHBoxLayout()
        row.addWidget(self.choose_button)
        row.addWidget(self.open_button)
        sl = QVBoxLayout(src)
        sl.addWidget(self.measurement_combo)
        sl.addWidget(self.source_label)
        sl.addLayout(row)

        # --- method and parameters (the engine's defaults)
        defaults = ProcessOptions()
        par = QGroupBox("Method", self)
        form = QFormLayout(par)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.method_combo = QComboBox(par)
        self.method_combo.setObjectName("method")
        self.method_combo.addItem("Rytov", "rytov")
        self.method_combo.addItem("Born", "born")
        self.method_combo.setItemData(0, "First-order Rytov: thick, weakly refracting samples (default)",
                                      Qt.ItemDataRole.ToolTipRole)
        self.method_combo.setItemData(1, "First-order Born: only small phase delays", Qt.ItemDataRole.ToolTipRole)
        form.addRow("Approximation", self.method_combo)
        self.nonneg_check = QCheckBox("n ≥ n_m", par)
        self.nonneg_check.setObjectName("nonNegativity")
        self.nonneg_check.setChecked(True)
        self.nonneg_check.setToolTip("Gerchberg–Papoulis non-negativity: fills the missing cone with n ≥ n_m")
        self.nonneg_iter = QSpinBox(par)
        self.nonneg_iter.setObjectName("nonNegativityIterations")
        self.nonneg_iter.setRange(1, 1000)
        self.nonneg_iter.setValue(defaults.non_negativity_iterations)
        self.nonneg_iter.setSuffix(" it.")
        self.nonneg_check.toggled.connect(self.nonneg_iter.setEnabled)
        nn = QHBoxLayout()
        nn.addWidget(self.nonneg_check)
        nn.addWidget(self.nonneg_iter, 1)
        form.addRow("Non-negativity", nn)
        self.reg_combo = QComboBox(par)
        self.reg_combo.setObjectName("regularization")
        self.reg_combo.addItem("None", "none")
        self.reg_combo.addItem("Total variation", "tv")
        self.reg_combo.addItem("Learned (DeepRegularizer)", "deep")
        self.reg_combo.currentIndexChanged.connect(self._update_enabled)
        form.addRow("Regulariser", self.reg_combo)
        self.tv_weight = QDoubleSpinBox(par)
        self.tv_weight.setObjectName("tvWeight")
        self.tv_weight.setDecimals(5)
        self.tv_weight.setRange(MIN_TV_WEIGHT, 10.0)
        self.tv_weight.setSingleStep(0.0001)
        self.tv_weight.setValue(defaults.tv_weight)
        self.tv_weight.setToolTip("Weight of the total-variation term, in units of the scattering potential "
                                  "(n/n_m)² − 1")
        form.addRow("TV weight", self.tv_weight)
        self.tv_outer = QSpinBox(par)
        self.tv_outer.setObjectName("tvOuter")
        self.tv_outer.setRange(1, 1000)
        self.tv_outer.setValue(defaults.tv_outer_iterations)
        self.tv_inner = QSpinBox(par)
        self.tv_inner.setObjectName("tvInner")
        self.tv_inner.setRange(1, 1000)
        self.tv_inner.setValue(defaults.tv_inner_iterations)
        tvi = QHBoxLayout()
        tvi.addWidget(self.tv_outer)
        tvi.addWidget(QLabel("×", par))
        tvi.addWidget(self.tv_inner)
        self.tv_iter_label = QLabel("TV iterations", par)
        self.tv_outer.setToolTip("Outer (data-consistency) iterations")
        self.tv_inner.setToolTip("Inner (TV denoising) iterations per outer iteration")
        form.addRow(self.tv_iter_label, tvi)
        self.shape_z = QSpinBox(par)
        self.shape_z.setObjectName("shapeZ")
        self.shape_z.setRange(0, 2048)
        self.shape_z.setSpecialValueText("auto")
        self.shape_z.setToolTip("Axial voxels (auto: half the image size)")
        form.addRow("Axial voxels", self.shape_z)
        self.device_combo = QComboBox(par)
        self.device_combo.setObjectName("device")
        for d in ("auto", "cpu", "cuda"):
            self.device_combo.addItem(d, d)
        form.addRow("Device", self.device_combo)
        self._deep_ok = deep_regularizer_available()
        self._set_deep_item()

        self.run_button = QPushButton("Run reconstruction", self)
        self.run_button.setObjectName("runReconstruction")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelReconstruction")
        self.cancel_button.clicked.connect(self.cancel)
        runrow = QHBoxLayout()
        runrow.addWidget(self.run_button, 1)
        runrow.addWidget(self.cancel_button)
        self.status = QLabel("", self)
        self.status.setObjectName("scanSummary")
        self.status.setWordWrap(True)

        # --- display
        disp = QGroupBox("Display", self)
        dform = QFormLayout(disp)
        self.volume_combo = QComboBox(disp)
        self.volume_combo.setObjectName("volumeChoice")
        self.volume_combo.currentIndexChanged.connect(self._show_current)
        dform.addRow("Volume", self.volume_combo)
        self.side_check = QCheckBox("Raw and regularised side by side", disp)
        self.side_check.setObjectName("sideBySide")
        self.side_check.toggled.connect(self._show_current)
        dform.addRow(self.side_check)
        self.mip_check = QCheckBox("Maximum-intensity projections", disp)
        self.mip_check.setObjectName("mip")
        self.mip_check.toggled.connect(self.set_mip)
        dform.addRow(self.mip_check)
        self.delta_spin = QDoubleSpinBox(disp)
        self.delta_spin.setObjectName("deltaN")
        self.delta_spin.setDecimals(3)
        self.delta_spin.setRange(0.001, 1.0)
        self.delta_spin.setSingleStep(0.005)
        self.delta_spin.setValue(0.05)
        self.delta_spin.setPrefix("medium + ")
        self.delta_spin.setToolTip("Colour range: from the medium index n_m up to n_m + Δn")
        self.delta_spin.valueChanged.connect(self._apply_levels)
        dform.addRow("Colour range", self.delta_spin)
        self.medium_label = QLabel("–", disp)
        self.medium_label.setObjectName("mediumLabel")
        dform.addRow("Medium n_m", self.medium_label)
        self.profile_axis = QComboBox(disp)
        self.profile_axis.setObjectName("profileAxis")
        for a in ("x", "y", "z"):
            self.profile_axis.addItem(f"along {a}", a)
        self.profile_axis.currentIndexChanged.connect(self._update_profile)
        self.peak_button = QPushButton("Go to peak", disp)
        self.peak_button.setToolTip("Move the crosshair to the highest refractive index")
        self.peak_button.clicked.connect(self._go_to_peak)
        pr = QHBoxLayout()
        pr.addWidget(self.profile_axis, 1)
        pr.addWidget(self.peak_button)
        dform.addRow("Line profile", pr)

        # --- export
        exp = QGroupBox("Export", self)
        el = QHBoxLayout(exp)
        self.tiff_button = QPushButton("TIFF…", exp)
        self.tiff_button.setToolTip("ImageJ hyperstack (float32 RI) with the voxel size in µm")
        self.tiff_button.clicked.connect(self._export_tiff_dialog)
        self.npy_button = QPushButton(".npy…", exp)
        self.npy_button.setToolTip("NumPy array (Z, Y, X) float32 RI")
        self.npy_button.clicked.connect(self._export_npy_dialog)
        self.h5_button = QPushButton("Result file…", exp)
        self.h5_button.setToolTip("The .odt.h5 result file (fields, tomograms, voxel size, n_m)")
        self.h5_button.clicked.connect(self._export_result_dialog)
        for b in (self.tiff_button, self.npy_button, self.h5_button):
            el.addWidget(b)

        controls = QWidget(self)
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 4, 0)
        cl.setSpacing(8)
        cl.addWidget(src)
        cl.addWidget(par)
        cl.addLayout(runrow)
        cl.addWidget(self.status)
        cl.addWidget(disp)
        cl.addWidget(exp)
        cl.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(controls.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        scroll.setMaximumWidth(scroll.minimumWidth() + 60)

        # --- views
        self.view = OrthoSliceView("", True, self)
        self.view.setObjectName("primaryView")
        self.view2 = OrthoSliceView("", True, self)
        self.view2.setObjectName("secondaryView")
        self.view2.setVisible(False)
        for a, b in ((self.view, self.view2), (self.view2, self.view)):
            a.crosshair_moved.connect(lambda z, y, x, b=b: self._link_crosshair(b, z, y, x))
            a.levels_changed.connect(lambda lo, hi, b=b: self._link_levels(b, lo, hi))
        self.view.crosshair_moved.connect(lambda *_: self._update_profile())
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
        self.view_splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.view_splitter.addWidget(views)
        self.view_splitter.addWidget(self.profile)
        self.view_splitter.setStretchFactor(0, 4)
        self.view_splitter.setStretchFactor(1, 1)
        self.view_splitter.setChildrenCollapsible(False)
        viewer = QWidget(self)
        vvl = QVBoxLayout(viewer)
        vvl.setContentsMargins(0, 0, 0, 0)
        vvl.setSpacing(4)
        self.warning_banner = QLabel("", self)
        self.warning_banner.setObjectName("warningBanner")
        self.warning_banner.setWordWrap(True)
        self.warning_banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_banner.setStyleSheet(WARNING_STYLE)
        self.warning_banner.setVisible(False)
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

        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 8)
        lay.setSpacing(10)
        lay.addWidget(scroll)
        lay.addWidget(self.right_stack, 1)

    def _set_deep_item(self) -> None:
        model = self.reg_combo.model()
        item = model.item(2) if isinstance(model, QStandardItemModel) else None
        if item is not None:
            item.setEnabled(self._deep_ok)
        self.reg_combo.setItemData(
            2, "3-D U-Net trained to imitate TV (Ryu et al., IEEE TMI 2021)" if self._deep_ok else DEEP_MISSING,
            Qt.ItemDataRole.ToolTipRole)
        if not self._deep_ok and self.reg_combo.currentIndex() == 2:
            self.reg_combo.setCurrentIndex(0)

    def show_message(self, title: str, body: str = "") -> None:
        """Show a big message instead of the views (no tomogram yet, loading, errors)."""
        self.empty.setText(f"<p style='font-size:15pt'>{title}</p><p>{body}</p>")
        self.right_stack.setCurrentWidget(self.empty)

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def _update_enabled(self) -> None:
        reg = self.reg_combo.currentData()
        for w in (self.tv_weight, self.tv_outer, self.tv_inner, self.tv_iter_label):
            w.setEnabled(reg == "tv")
        self.run_button.setEnabled(self.folder is not None and not self.running)
        self.cancel_button.setEnabled(self.running)
        have = self.result is not None
        for b in (self.tiff_button, self.npy_button, self.h5_button, self.peak_button):
            b.setEnabled(have)

    def options(self) -> ProcessOptions:
        """The pipeline options as chosen in the form.

        Fields are not screened here (``screen="none"``): a project measurement follows the
        project's review (its decisions are handed to the pipeline by :meth:`run`), and a loose
        folder uses every field whose retrieval did not fail.
        """
        return ProcessOptions(
            screen="none", method=self.method_combo.currentData(),
            non_negativity=self.nonneg_iter.value() if self.nonneg_check.isChecked() else 0,
            regularize=self.reg_combo.currentData(),
            tv_weight=self.tv_weight.value(), tv_outer_iterations=self.tv_outer.value(),
            tv_inner_iterations=self.tv_inner.value(),
            shape_z=self.shape_z.value() or None, device=self.device_combo.currentData(),
            sideband=project_sideband(self.project) if self.project is not None else "auto")

    # ------------------------------------------------------------------ project and sources
    def set_project(self, project: Any) -> None:
        """Use ``project`` (an ``engine.store.project.Project``, or None): its measurements are
        offered, its screening decisions used, its result files written."""
        self.project = project if project is not None and hasattr(project, "list_measurements") else None
        self.measurement_combo.clear()
        if self.project is None:
            self.measurement_combo.setVisible(False)
            return
        try:
            records = [r for r in self.project.list_measurements() if r.status != "invalid"]
        except Exception:
            log.exception("could not list the project's measurements")
            records = []
        self.measurement_combo.addItem("— choose a measurement —", None)
        for r in records:
            self.measurement_combo.addItem(r.name, str(r.path))
        self.measurement_combo.setVisible(bool(records))

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
        self.source_label.setText(f"<b>{folder.name}</b><br><span style='color:#8b929c'>{folder}</span>")
        self.source_label.setToolTip(str(folder))
        i = self.measurement_combo.findData(str(folder))
        if i >= 0:
            self.measurement_combo.setCurrentIndex(i)
        self._update_enabled()
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
    def run(self, options: Optional[ProcessOptions] = None) -> Optional[Job]:
        """Reconstruct the current measurement with ``options`` (default: the form) in the background.

        One call of :func:`engine.pipeline.process.process_measurement` in the job runner, with the
        project's screening, the fields of the last run of this measurement (if they serve), and
        the raw tomogram shown as soon as it exists when a regulariser follows.
        """
        if self.folder is None:
            self.status.setText("Choose a measurement first.")
            return None
        if self.running:
            return self.job
        opts = options or self.options()
        folder = self.folder
        out_path = self._project_result_path(folder)
        # the fields of the last run here, else those the project's result file holds (the pipeline
        # uses them only if they serve these options)
        retrieved = self._retrieved[1] if self._retrieved is not None and self._retrieved[0] == folder else out_path
        extra = {"on_raw": self._relay.raw_ready.emit} if opts.regularize != "none" else {}
        self.status.setText(f"Reconstructing {folder.name} ({opts.describe()}) …")
        self._run = (folder, opts.sideband)
        self.job = self.runner.submit(
            f"Reconstructing {folder.name}", process_measurement, folder, out_path, opts,
            screening=self._project_screening(folder), retrieved=retrieved, on_result=self._finished,
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
        """Cancel the running reconstruction (the engine stops at its next check)."""
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
        """The raw tomogram of the running reconstruction: shown until the regularised one replaces it."""
        job = self.job
        if job is None or job.done or job.token.cancelled or self._run is None:
            return
        folder = self._run[0]
        self.show_volumes(_preview_set(tomogram, folder, folder.name))
        self.view.set_title(f"{self.view.title.text()} — regularising, shown meanwhile …")
        self.status.setText(f"{folder.name}: raw tomogram shown; regularising …")

    def _finished(self, result: ProcessResult) -> None:
        folder, sideband = self._run if self._run is not None else (Path(result.name), None)
        self._retrieved = (folder, result.retrieved) if result.retrieved is not None else None
        vs = volume_set_from_result(result, folder, sideband)
        secs = self.job.seconds if self.job is not None else None
        saved = f"; saved to {vs.out_path.name}" if vs.out_path else ""
        warned = f" {len(vs.warnings)} warning(s): see above the views." if vs.warnings else ""
        self.status.setText(f"Done{f' in {secs:.1f} s' if secs else ''}{saved}.{warned}")
        self.show_volumes(vs)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Failed: {exc}")
        self._drop_preview("The reconstruction failed", str(exc))

    def _cancelled(self) -> None:
        self.status.setText("Cancelled.")
        self._drop_preview("Cancelled", "Run the reconstruction again, or choose another measurement.")

    def _drop_preview(self, title: str, body: str) -> None:
        """A raw preview of a run that did not finish is not a result (it was never saved): clear it."""
        if self.result is not None and self.result.preview:
            self.result = None
            self.show_message(title, body)
            self._update_enabled()

    # ------------------------------------------------------------------ display
    def show_volumes(self, vs: VolumeSet) -> None:
        """Show ``vs``: its volumes in the switch, raw and regularised side by side when both exist."""
        first = self.result is None or self.result.volumes.get("raw", np.zeros(0)).shape != \
            next(iter(vs.volumes.values())).shape
        self.result = vs
        if vs.source is not None and vs.source.is_dir():
            self.folder = vs.source
        self.volume_combo.blockSignals(True)
        self.volume_combo.clear()
        for key in VOLUME_LABELS:
            if key in vs.volumes:
                self.volume_combo.addItem(VOLUME_LABELS[key], key)
        regularised = [k for k in ("deep", "tv") if k in vs.volumes]
        self.volume_combo.setCurrentIndex(self.volume_combo.findData(regularised[0] if regularised else
                                                                     self.volume_combo.itemData(0)))
        self.volume_combo.blockSignals(False)
        self.side_check.setEnabled(bool(regularised) and "raw" in vs.volumes)
        self.side_check.blockSignals(True)
        self.side_check.setChecked(bool(regularised) and "raw" in vs.volumes)
        self.side_check.blockSignals(False)
        shown = vs.volumes.get(regularised[0] if regularised else next(iter(vs.volumes)))
        self.delta_spin.blockSignals(True)
        self.delta_spin.setValue(_default_delta(shown, vs.medium_index))
        self.delta_spin.blockSignals(False)
        self.medium_label.setText(f"{vs.medium_index:.4f}")
        dz, dy, dx = vs.voxel_size_um
        z, y, x = shown.shape
        used = (f" — {vs.fields_used} of {vs.fields.shape[0]} fields" if vs.fields_used is not None
                and vs.fields is not None else "")
        self.info.setText(f"<b>{vs.name}</b> — {vs.method}{used} — {x} × {y} × {z} voxels of "
                          f"{dx:.3f} × {dy:.3f} × {dz:.3f} µm (x × y × z) — medium n_m = {vs.medium_index:.4f}")
        self._show_warnings(vs)
        self.profile.set_medium_index(vs.medium_index)
        self.right_stack.setCurrentIndex(1)
        self._show_current(keep=not first)
        self._update_enabled()
        (self.raw_shown if vs.preview else self.volume_shown).emit(vs)

    def _show_warnings(self, vs: VolumeSet) -> None:
        """The banner with the processing warnings of ``vs`` (hidden when none) and its side-band line."""
        if vs.warnings:
            esc = [w.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for w in vs.warnings]
            self.warning_banner.setText("⚠ " + "<br>⚠ ".join(esc))
        self.warning_banner.setVisible(bool(vs.warnings))
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
        key = self.current_volume_key() or next(iter(vs.volumes))
        side = self.side_check.isChecked() and self.side_check.isEnabled()
        if side:
            left, right = "raw", (key if key != "raw" else next(k for k in ("deep", "tv") if k in vs.volumes))
        else:
            left, right = key, None
        cross = self.view.crosshair if keep and self.view.volume is not None else None
        self.view.set_volume(vs.volumes[left], vs.voxel_size_um, vs.origin_um, vs.medium_index)
        self.view.set_title(VOLUME_LABELS[left] + (f" ({vs.method})" if left == "raw" else ""))
        self.view2.setVisible(right is not None)
        if right is not None:
            self.view2.set_volume(vs.volumes[right], vs.voxel_size_um, vs.origin_um, vs.medium_index)
            self.view2.set_title(VOLUME_LABELS[right])
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
        if self.view2.isVisible() and self.view2.volume is not None:
            profiles[self.view2.title.text() or "n (2)"] = self.view2.profile(axis)[1]
        self.profile.set_axis_name(axis)
        self.profile.set_profiles(pos, profiles)
        self.profile.set_cursor(self.view.crosshair_um["zyx".index(axis)])

    # ------------------------------------------------------------------ export
    def _export_guard(self) -> Optional[np.ndarray]:
        vol = self.current_volume()
        if vol is None:
            self.status.setText("Nothing to export yet.")
        return vol

    def _suggest(self, suffix: str) -> str:
        name = self.result.name if self.result else "tomogram"
        key = self.current_volume_key() or "raw"
        base = self.folder.parent if self.folder else Path.home()
        return str(base / f"{name}_{key}{suffix}")

    def export_tiff(self, path: str | Path) -> Optional[Job]:
        """Write the volume on screen as an ImageJ hyperstack TIFF (voxel size in µm), in the background."""
        vol = self._export_guard()
        if vol is None:
            return None
        p = Path(path)
        return self.runner.submit(f"Exporting {p.name}", export_tiff, p, vol, self.result.voxel_size_um,
                                  on_result=lambda out: self.status.setText(f"Exported {Path(out).name}"))

    def export_npy(self, path: str | Path) -> Optional[Job]:
        """Write the volume on screen as a ``.npy`` (Z, Y, X) float32 RI array, in the background."""
        vol = self._export_guard()
        if vol is None:
            return None
        p = Path(path)
        return self.runner.submit(f"Exporting {p.name}", export_npy, p, vol,
                                  on_result=lambda out: self.status.setText(f"Exported {Path(out).name}"))

    def export_result(self, path: str | Path) -> Optional[Job]:
        """Write the whole reconstruction (all volumes, fields) as an ``.odt.h5`` result file."""
        if self.result is None:
            self.status.setText("Nothing to export yet.")
            return None
        p = Path(path)
        return self.runner.submit(f"Saving {p.name}", export_result, p, self.result,
                                  on_result=lambda out: self.status.setText(f"Saved {Path(out).name}"))

    def _export_tiff_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export TIFF (ImageJ hyperstack)", self._suggest(".tif"),
                                              "TIFF (*.tif *.tiff)")
        if path:
            self.export_tiff(path)

    def _export_npy_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export NumPy array", self._suggest(".npy"), "NumPy (*.npy)")
        if path:
            self.export_npy(path)

    def _export_result_dialog(self) -> None:
        name = self.result.name if self.result else "tomogram"
        base = self.folder.parent if self.folder else Path.home()
        path, _ = QFileDialog.getSaveFileName(self, "Save result file", str(base / f"{name}.odt.h5"),
                                              "ODT result (*.odt.h5)")
        if path:
            if not path.endswith(".odt.h5"):
                path += ".odt.h5"
            self.export_result(path)
