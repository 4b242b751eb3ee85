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
shown beside the views and used as the bottom of the colour range.

Objects: *Find objects* segments the volume on screen and measures every object
(:func:`engine.analysis.segment_objects`, :func:`engine.analysis.measure_objects`) in the job
runner; the labels are drawn over the slices (one colour each), listed in a table linked both
ways to the views (a row moves the crosshair to the object's centroid; a click on an object
selects its row), exported as CSV (:func:`engine.analysis.write_measurements_csv`, the columns of
``odt-studio batch --measure``) and stored in the result file as ``tomogram/labels``
(:func:`engine.store.results.update_result`). Labels already in a result file are measured when
it is opened.

Exports: any volume of the result — ``ri``, ``ri_tv``, ``ri_deep``, ``n_e``, ``n_o``, ``dn``,
``labels`` — as OME-TIFF, OME-Zarr or ImageJ TIFF with voxel size and origin
(:func:`engine.store.export.export_result`, what ``odt-studio export`` does; a result not yet in a
file is written to a temporary one first), or the whole ``.odt.h5`` result file.
Warnings of the processing (e.g. the sample's phase is mostly negative,
:func:`engine.pipeline.process.contrast_warnings`) are shown in a banner above the views.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
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
from engine.store import export as volume_export
from engine.store.folders import read_tcf
from engine.store.results import BirefringenceResult, TomogramResult, is_complete_result, read_result, \
    update_result, write_result

from ..jobs import Job, JobRunner
from ..settings import AppSettings
from ..widgets.warning_banner import WarningBanner
from ..widgets.objects_panel import ObjectControls, ObjectTable, label_colors
from ..widgets.plots import LineProfilePlot
from ..widgets.slice_view import OrthoSliceView

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

#: Display names of the volumes a reconstruction can hold, in display order.
VOLUME_LABELS = {"raw": "Raw", "tv": "TV-regularised", "deep": "Learned regulariser", "tcf": "TCF"}
DEEP_MISSING = ("The learned regulariser (DeepRegularizer) is not installed: its weights "
                "(deep_regularizer.safetensors) are not in resources/models.")
#: Smallest TV weight the form offers (a zero weight would be no TV at all)
MIN_TV_WEIGHT = 1e-5
#: Display key of a volume → its name in the result file and in ``odt-studio export``.
ENGINE_VOLUME = {"raw": "ri", "tv": "ri_tv", "deep": "ri_deep", "tcf": "ri"}
#: Export choices: engine volume name → what the menu says.
EXPORT_VOLUME_LABELS = {"ri": "RI (raw)", "ri_tv": "RI, TV-regularised", "ri_deep": "RI, learned regulariser",
                        "n_e": "n_e", "n_o": "n_o", "dn": "Δn = n_e − n_o", "labels": "Object labels"}
EXPORT_FORMAT_LABELS = {"ome-tiff": "OME-TIFF", "ome-zarr": "OME-Zarr", "imagej": "ImageJ TIFF"}


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
    birefringence : object or None
        ``n_e``, ``n_o`` (Z, Y, X), ``director`` (Z, Y, X, 3), ``tensor`` of a birefringent result
        (the pipeline's tensor tomogram or the file's :class:`BirefringenceResult`).
    objects : ObjectsFound or None
        The objects found in it (*Find objects*, or the labels of its result file).
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
    birefringence: Any = None
    objects: Optional["ObjectsFound"] = None

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
                     retrieval=result.retrieval, warnings=list(result.warnings), sideband=sideband,
                     birefringence=result.birefringence)


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
    """The result file's ``tomogram`` group of ``vs`` (a TCF volume is stored as ``ri``), with the
    labels of the objects found."""
    group = TomogramResult.from_tomogram(vs.tomogram)
    if vs.objects is not None:
        group.labels = vs.objects.labels
    return group


def _birefringence_group(vs: VolumeSet) -> Optional[BirefringenceResult]:
    """The result file's ``birefringence`` group of ``vs``, or None."""
    b = vs.birefringence
    if b is None:
        return None
    if hasattr(b, "result_datasets"):
        return BirefringenceResult(**b.result_datasets())
    return BirefringenceResult(**{k: getattr(b, k, None) for k in ("n_e", "n_o", "director", "tensor")})


def export_volumes(vs: VolumeSet) -> list[str]:
    """The volumes of ``vs`` that :func:`export_volume` can write (``odt-studio export --volume`` names)."""
    names = [ENGINE_VOLUME[k] for k in vs.volumes]
    b = vs.birefringence
    if b is not None and getattr(b, "n_e", None) is not None and getattr(b, "n_o", None) is not None:
        names += ["n_e", "n_o", "dn"]
    return list(dict.fromkeys(names + ["labels"]))


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
                     out_path=path, birefringence=res.birefringence)


@dataclass
class ObjectsFound:
    """The objects of one tomogram and their measurements (what :func:`find_objects` returns).

    Attributes
    ----------
    labels : (Z, Y, X) int array
        0 = background, 1..K = objects.
    measurements : list of engine.analysis.ObjectMeasurement
        One per label, in label order (positions in µm, tomogram coordinates).
    volume : str
        The volume segmented and measured (``ri``, ``ri_tv``, ``ri_deep``).
    threshold_dn : float or None
        The Δn threshold used (None: the labels came from the result file).
    saved : bool
        The labels are in the result file (``tomogram/labels``).
    save_error : str
        Why they could not be stored there ("" if they were, or there is no file).
    """

    labels: np.ndarray
    measurements: list
    volume: str
    threshold_dn: Optional[float] = None
    saved: bool = False
    save_error: str = ""

    def measurement(self, label: int) -> Any:
        return next((m for m in self.measurements if int(m.label) == int(label)), None)


def _load_analysis() -> None:
    """Import the segmentation's modules (scikit-image, lazily loaded) in the calling thread.

    Called in the GUI thread before the first job: a first import inside the worker thread holds
    the GIL for a long stretch and would freeze the window meanwhile (0.3 s here).
    """
    from skimage.filters import threshold_otsu  # noqa: F401
    from skimage.measure import label, marching_cubes, mesh_surface_area  # noqa: F401
    from skimage.morphology import h_maxima  # noqa: F401
    from skimage.segmentation import expand_labels, relabel_sequential, watershed  # noqa: F401

    import engine.analysis.objects  # noqa: F401
    import engine.pipeline.measure  # noqa: F401


def find_objects(ri: np.ndarray, medium_index: float, voxel_size_um: tuple, origin_um: tuple, *,
                 volume: str = "ri", threshold: Any = "otsu", min_volume_um3: float = 0.1,
                 split_touching: bool = False, labels: Optional[np.ndarray] = None, birefringence: Any = None,
                 save_to: Optional[Path] = None, progress: Optional[Callable[..., None]] = None,
                 cancel=None) -> ObjectsFound:
    """Segment ``ri`` (unless ``labels`` are given) and measure its objects (a job).

    Calls :func:`engine.analysis.dn_threshold`, :func:`~engine.analysis.segment_objects` and
    :func:`~engine.analysis.measure_objects` (with the birefringence volumes when given); with
    ``save_to`` (a result file) the new labels are stored there as ``tomogram/labels``
    (:func:`engine.store.results.update_result`); a failure to store them is reported in
    :attr:`ObjectsFound.save_error`, not raised.
    """
    from engine.analysis.objects import dn_threshold, measure_objects, segment_objects

    check_cancel(cancel)
    th: Optional[float] = None
    if labels is None:
        report(progress, 0.05, "segmenting")
        th = dn_threshold(ri, medium_index, threshold)
        if np.isfinite(th):
            labels = segment_objects(ri, medium_index, voxel_size_um, threshold=th, min_volume_um3=min_volume_um3,
                                     split_touching=split_touching)
        else:  # nothing above the medium
            labels = np.zeros(ri.shape, np.int32)
    check_cancel(cancel)
    report(progress, 0.4, f"measuring {int(labels.max(initial=0))} objects")
    found = measure_objects(ri, labels, medium_index, voxel_size_um, origin_um,
                            threshold=th if th is not None and np.isfinite(th) else None,
                            birefringence=birefringence)
    out = ObjectsFound(labels=np.asarray(labels), measurements=found, volume=volume,
                       threshold_dn=th if th is not None and np.isfinite(th) else None)
    if save_to is not None:
        check_cancel(cancel)
        report(progress, 0.8, f"storing the labels in {Path(save_to).name}")
        try:
            update_result(save_to, labels=out.labels)
            out.saved = True
        except Exception as e:  # e.g. a read-only file: the objects are still shown
            log.warning("could not store the labels in %s: %s", save_to, e)
            out.save_error = f"{type(e).__name__}: {e}"
    report(progress, 1.0, f"{len(found)} objects")
    return out


def write_objects_csv(path: str | Path, vs: VolumeSet, progress: Optional[Callable[..., None]] = None,
                      cancel=None) -> Path:
    """Write the objects of ``vs`` as CSV, with the columns of ``odt-studio batch --measure``
    (``docs/formats.md`` §3, ``measurements.csv``), atomically."""
    from engine.analysis.objects import DEFAULT_ALPHA_UM3_PER_PG, write_measurements_csv
    from engine.pipeline.measure import MEASUREMENTS_COLUMNS

    check_cancel(cancel)
    obj = vs.objects
    if obj is None:
        raise ValueError("no objects found yet: press Find objects first")
    context = {"name": vs.name, "source_volume": obj.volume, "medium_index": vs.medium_index,
               "threshold_dn": obj.threshold_dn, "alpha_um3_per_pg": DEFAULT_ALPHA_UM3_PER_PG}
    out = write_measurements_csv(path, [{**context, **m.as_row()} for m in obj.measurements],
                                 columns=MEASUREMENTS_COLUMNS)
    report(progress, 1.0, "written")
    return out


def export_volume(vs: VolumeSet, volume: str, to: str, out: str | Path,
                  progress: Optional[Callable[..., None]] = None, cancel=None) -> Path:
    """Export one volume of ``vs`` with :func:`engine.store.export.export_result` (a job).

    From the result file when ``vs`` is in one (and, for ``labels``, the file holds the objects
    found here); otherwise the tomogram, birefringence and labels are written to a temporary
    result file first.
    """
    check_cancel(cancel)
    report(progress, 0.0, f"exporting {volume}")
    src = vs.out_path
    from_file = (src is not None and not vs.preview and str(src).endswith(".odt.h5") and Path(src).is_file()
                 and not (volume == "labels" and vs.objects is not None and not vs.objects.saved))
    if from_file:
        written = volume_export.export_result(src, to, volume, out=out)
    else:
        with tempfile.TemporaryDirectory(prefix="odt-export-") as d:
            meta = vs.measurement_json or json.dumps({"sample": {"name": vs.name}, "medium_index": vs.medium_index})
            tmp = write_result(Path(d) / f"{vs.name}.odt.h5", measurement_json=meta, tomogram=_tomogram_group(vs),
                               birefringence=_birefringence_group(vs))
            check_cancel(cancel)
            written = volume_export.export_result(tmp, to, volume, out=out)
    report(progress, 1.0, "written")
    return written


def export_result(path: str | Path, vs: VolumeSet, progress: Optional[Callable[..., None]] = None,
                  cancel=None) -> Path:
    """Write ``vs`` as an ``.odt.h5`` result file (``docs/formats.md`` §2), atomically."""
    check_cancel(cancel)
    report(progress, 0.0, f"writing {Path(path).name}")
    meta = vs.measurement_json or json.dumps({"sample": {"name": vs.name}, "medium_index": vs.medium_index,
                                              "source": str(vs.source or "")})
    out = write_result(path, measurement_json=meta, fields=vs.fields, illumination_per_um=vs.illumination_per_um,
                       screening=vs.screening, tomogram=_tomogram_group(vs), birefringence=_birefringence_group(vs),
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
        self.runner.job_done.connect(self._objects_job_done)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        """The controls column (measurement, method, display, objects, export) and the views."""
        controls = self._build_controls([self._build_source(), *self._build_method(), self.status,
                                         self._build_display(), self._build_objects(), self._build_export()])
        self._build_views()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 8)
        lay.setSpacing(10)
        lay.addWidget(controls)
        lay.addWidget(self.right_stack, 1)

    def _build_source(self) -> QGroupBox:
        """The "Measurement" box: project measurements, folder and result-file buttons."""
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
        return src

    def _build_method(self) -> tuple[QGroupBox, QHBoxLayout]:
        """The "Method" box (the engine's defaults) and the run/cancel row."""
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
        return par, runrow

    def _build_display(self) -> QGroupBox:
        """The "Display" box: volume, side by side, MIP, colour range, line profile."""
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
        return disp

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

    def _build_export(self) -> QGroupBox:
        """The "Export" box: every volume as OME-TIFF, OME-Zarr or ImageJ, and the result file."""
        exp = QGroupBox("Export", self)
        ef = QFormLayout(exp)
        ef.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.export_volume_combo = QComboBox(exp)
        self.export_volume_combo.setObjectName("exportVolume")
        self.export_volume_combo.setToolTip("Object labels: those found here, else segmented automatically (Otsu)")
        ef.addRow("Volume", self.export_volume_combo)
        self.export_format_combo = QComboBox(exp)
        self.export_format_combo.setObjectName("exportFormat")
        for key, text in EXPORT_FORMAT_LABELS.items():
            self.export_format_combo.addItem(text, key)
        self.export_format_combo.setItemData(0, "OME-TIFF: PhysicalSize X/Y/Z in µm, plane positions = origin "
                                                "(Fiji/Bio-Formats, OMERO, napari)", Qt.ItemDataRole.ToolTipRole)
        self.export_format_combo.setItemData(1, "OME-Zarr (NGFF 0.4): scale = voxel size, translation = origin "
                                                "(napari, Python)", Qt.ItemDataRole.ToolTipRole)
        self.export_format_combo.setItemData(2, "ImageJ hyperstack: pixel size, z spacing, origin and display "
                                                "range from n_m (Fiji)", Qt.ItemDataRole.ToolTipRole)
        if importlib.util.find_spec("zarr") is None:  # the optional `export` extra
            model = self.export_format_combo.model()
            item = model.item(1) if isinstance(model, QStandardItemModel) else None
            if item is not None:
                item.setEnabled(False)
            self.export_format_combo.setItemData(
                1, f"OME-Zarr needs the optional package zarr: pip install 'odt-studio[{volume_export.ZARR_EXTRA}]'",
                Qt.ItemDataRole.ToolTipRole)
        ef.addRow("Format", self.export_format_combo)
        self.export_button = QPushButton("Export volume…", exp)
        self.export_button.setObjectName("exportVolumeButton")
        self.export_button.setToolTip("Write the chosen volume with its voxel size and origin in µm")
        self.export_button.clicked.connect(self._export_volume_dialog)
        self.h5_button = QPushButton("Result file…", exp)
        self.h5_button.setToolTip("The .odt.h5 result file (fields, tomograms, labels, voxel size, n_m)")
        self.h5_button.clicked.connect(self._export_result_dialog)
        er = QHBoxLayout()
        er.addWidget(self.export_button, 1)
        er.addWidget(self.h5_button)
        ef.addRow(er)
        return exp

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
        """The right side: warning banner, info lines, linked slice views, line profile, object table."""
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
        self.bottom_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.bottom_splitter.addWidget(self.profile)
        self.bottom_splitter.addWidget(self.objects_table)
        self.bottom_splitter.setStretchFactor(0, 1)
        self.bottom_splitter.setStretchFactor(1, 2)
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
        final = have and not self.result.preview
        for b in (self.export_button, self.export_volume_combo, self.export_format_combo, self.h5_button):
            b.setEnabled(final)
        self.peak_button.setEnabled(have)
        busy = self._objects_job is not None and not self._objects_job.done
        self.objects_box.find_button.setEnabled(final and not busy)
        self.objects_box.set_have_objects(final and self.result.objects is not None)

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
        self._fill_export_volumes(vs)
        self._show_objects()
        self._update_enabled()
        (self.raw_shown if vs.preview else self.volume_shown).emit(vs)
        stored = getattr(vs.tomogram, "labels", None)
        if stored is not None and vs.objects is None and not vs.preview:
            self.find_objects(labels=stored)  # the result file's labels: measured, shown, listed

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
        _load_analysis()
        what = "Measuring the stored objects" if labels is not None else f"Finding objects in {VOLUME_LABELS[key]}"
        self.objects_box.summary.setText(f"{what} …")
        self._objects_job = self.runner.submit(
            f"{what} of {vs.name}", find_objects, ri, vs.medium_index, vs.voxel_size_um, vs.origin_um,
            volume=volume, labels=labels, birefringence=_birefringence_group(vs), save_to=save_to,
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
        combo = self.export_volume_combo
        combo.clear()
        for name in export_volumes(vs):
            combo.addItem(EXPORT_VOLUME_LABELS[name], name)
        key = self.current_volume_key()
        i = combo.findData(ENGINE_VOLUME.get(key or "", "ri"))
        combo.setCurrentIndex(max(i, 0))

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
