"""What the Reconstruction tab shows and the jobs behind it, without Qt.

* :class:`VolumeSet` — one engine tomogram (``ri``, ``ri_tv``, ``ri_deep``, ``ri_ms``) and its
  provenance, named for display (:data:`VOLUME_LABELS`);
* jobs for :class:`app.jobs.JobRunner` (``progress`` and ``cancel`` as in :mod:`engine.progress`):
  :func:`run_reconstruction` (the pipeline call, :func:`engine.pipeline.process.process_measurement`,
  keeping a cancelled multislice run's last iterate), :func:`load_volume_file` (a result file or a
  Tomocube TCF), :func:`find_objects`, :func:`write_objects_csv`, :func:`export_volume`,
  :func:`export_result`, :func:`calibrate_cost`;
* the text the tab writes: :func:`volume_info`, :func:`multislice_summary`, :func:`cost_text`.

Units: axes in µm, values as refractive index (RI); volumes (Z, Y, X). Nothing here imports Qt.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine.pipeline.process import OPTIONS_ATTR, ProcessOptions, ProcessResult, learned_regularizer_available, \
    process_measurement, recorded_options
from engine.pipeline.project_screening import stored_retrieval
from engine.progress import Cancelled, check_cancel, report
from engine.store import export as volume_export
from engine.store.folders import read_tcf
from engine.store.results import BirefringenceResult, TomogramResult, read_result, update_result, write_result

__all__ = [
    "VOLUME_LABELS", "ENGINE_VOLUME", "EXPORT_VOLUME_LABELS", "EXPORT_FORMAT_LABELS", "VolumeSet",
    "volume_set_from_result", "preview_set", "deep_regularizer_available", "tomogram_group",
    "birefringence_group", "export_volumes", "load_volume_file", "ObjectsFound", "load_analysis", "find_objects",
    "write_objects_csv", "export_volume", "export_result", "default_delta", "PartialKeeper", "run_reconstruction",
    "shown_pair", "refined_keys", "volume_info", "multislice_summary", "MeasurementSize", "measurement_size", "calibrate_cost",
    "cost_text",
]

log = logging.getLogger(__name__)

#: Display names of the volumes a reconstruction can hold, in display order.
VOLUME_LABELS = {"raw": "Raw", "tv": "TV-regularised", "deep": "Learned regulariser", "ms": "Multislice",
                 "tcf": "TCF"}
#: Display key of a volume → its name in the result file and in ``odt-studio export``.
ENGINE_VOLUME = {"raw": "ri", "tv": "ri_tv", "deep": "ri_deep", "ms": "ri_ms", "tcf": "ri"}
#: Export choices: engine volume name → what the menu says.
EXPORT_VOLUME_LABELS = {"ri": "RI (raw)", "ri_tv": "RI, TV-regularised", "ri_deep": "RI, learned regulariser",
                        "ri_ms": "RI, multislice (multiple scattering)", "n_e": "n_e", "n_o": "n_o",
                        "dn": "Δn = n_e − n_o", "labels": "Object labels"}
EXPORT_FORMAT_LABELS = {"ome-tiff": "OME-TIFF", "ome-zarr": "OME-Zarr", "imagej": "ImageJ TIFF"}
#: display key → attribute of the engine's tomogram container
_VOLUME_ATTRS = (("raw", "ri"), ("tv", "ri_tv"), ("deep", "ri_deep"), ("ms", "ri_ms"))
#: the volumes shown beside the raw one, best first
_REFINED = ("ms", "deep", "tv")


# ====================================================================== what is shown
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
    options : ProcessOptions or None
        The options it was made with (a run's, or those its result file records or implies).
    cancelled : bool
        The last iterate of a cancelled multislice run: shown and savable, but not saved.
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
    options: Optional[ProcessOptions] = None
    cancelled: bool = False

    @property
    def volumes(self) -> dict:
        """Display key (:data:`VOLUME_LABELS`) → (Z, Y, X) RI volume, those the tomogram holds."""
        t = self.tomogram
        if str(t.method) == "tcf":
            return {"tcf": t.ri}
        return {k: getattr(t, a) for k, a in _VOLUME_ATTRS if getattr(t, a, None) is not None}

    @property
    def misfit(self) -> list:
        """Relative data misfit of each multislice iteration ([] without a multislice volume)."""
        rec = getattr(self.tomogram, "ri_ms_record", None) or {}
        return [float(m) for m in rec.get("misfit", [])]

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


def volume_set_from_result(result: ProcessResult, folder: Path, sideband: Optional[str] = None,
                           cancelled: bool = False) -> VolumeSet:
    """What a pipeline run produced (``cancelled``: a cancelled run's last iterate), as the tab shows
    and exports it."""
    s = result.screening
    screening = None if s is None else screening_record(s)
    return VolumeSet(name=result.name, tomogram=result.tomogram,
                     source=Path(folder), measurement_json=result.metadata.to_json() if result.metadata else "",
                     fields=result.fields, illumination_per_um=result.illumination_per_um, screening=screening,
                     out_path=result.out_path, fields_used=result.fields_used, timings_s=dict(result.timings_s),
                     retrieval=result.retrieval, warnings=list(result.warnings), sideband=sideband,
                     birefringence=result.birefringence, options=result.options, cancelled=cancelled)


def screening_record(s: Any) -> dict:
    """The screening record of a pipeline run as ``write_result`` takes it."""
    model = f"{getattr(s, 'model_name', '')} {getattr(s, 'model_version', '')}".strip()
    return {"score": s.score, "rule_peak": s.rule_peak, "decision": s.decision, "source": s.source, "model": model}


def preview_set(tomogram: Any, folder: Path, name: str) -> VolumeSet:
    """The raw tomogram of a running reconstruction (shown until the regularised one is ready)."""
    return VolumeSet(name=name, tomogram=tomogram, source=Path(folder), preview=True)


def deep_regularizer_available() -> bool:
    """True when the learned regulariser's weights and card are shipped in ``resources/models``."""
    return learned_regularizer_available()


def tomogram_group(vs: VolumeSet) -> TomogramResult:
    """The result file's ``tomogram`` group of ``vs`` (a TCF volume is stored as ``ri``), with the
    labels of the objects found."""
    group = TomogramResult.from_tomogram(vs.tomogram)
    if vs.objects is not None:
        group.labels = vs.objects.labels
    return group


def birefringence_group(vs: VolumeSet) -> Optional[BirefringenceResult]:
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
                     out_path=path, birefringence=res.birefringence, options=recorded_options(res))


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


def load_analysis() -> None:
    """Import the segmentation's modules (scikit-image, lazily loaded) in the calling thread.

    Called in the GUI thread before the first job: a first import inside the worker thread holds
    the GIL for a long stretch and would freeze the window meanwhile (0.3 s here).
    """
    from skimage.filters import threshold_otsu  # noqa: F401
    from skimage.measure import label, marching_cubes, mesh_surface_area  # noqa: F401
    from skimage.morphology import h_maxima  # noqa: F401
    from skimage.segmentation import expand_labels, relabel_sequential, watershed  # noqa: F401

    import engine.analysis.objects
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
            tmp = write_result(Path(d) / f"{vs.name}.odt.h5", measurement_json=meta, tomogram=tomogram_group(vs),
                               birefringence=birefringence_group(vs))
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
    attrs = {"warnings": json.dumps(list(vs.warnings))} if vs.warnings else {}
    if vs.options is not None:
        attrs[OPTIONS_ATTR] = json.dumps(vs.options.record(), sort_keys=True)
    out = write_result(path, measurement_json=meta, fields=vs.fields, illumination_per_um=vs.illumination_per_um,
                       screening=vs.screening, tomogram=tomogram_group(vs), birefringence=birefringence_group(vs),
                       retrieval=vs.retrieval if vs.fields is not None else None, extra_attrs=attrs or None)
    report(progress, 1.0, "written")
    return out


def default_delta(volume: np.ndarray, medium_index: float) -> float:
    """Colour range above n_m: the 99.9th percentile of Δn, rounded up to 0.005 (at least 0.005)."""
    sample = volume[:: max(1, volume.shape[0] // 32)]
    d = float(np.percentile(sample, 99.9)) - medium_index
    return max(0.005, float(np.ceil(d / 0.005) * 0.005))


# ====================================================================== the run
class PartialKeeper:
    """Where :func:`run_reconstruction` leaves a cancelled run's last iterate (a ``ProcessResult``),
    read in the GUI thread once the job is cancelled. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial: Optional[ProcessResult] = None

    def keep(self, partial: Optional[ProcessResult]) -> None:
        with self._lock:
            self._partial = partial

    def take(self) -> Optional[ProcessResult]:
        """The partial result (once; None when there is none)."""
        with self._lock:
            p, self._partial = self._partial, None
            return p


def run_reconstruction(folder: Path, out_path: Optional[Path], options: ProcessOptions, *,
                       keeper: Optional[PartialKeeper] = None, progress: Optional[Callable[..., None]] = None,
                       cancel=None, **kwargs: Any) -> ProcessResult:
    """:func:`engine.pipeline.process.process_measurement` as the tab runs it (a job): the same call
    as ``odt-studio batch``; a multislice run cancelled during its iterations leaves its last iterate
    in ``keeper`` (not written) before :class:`engine.progress.Cancelled` goes on up."""
    try:
        return process_measurement(folder, out_path, options, progress=progress, cancel=cancel, **kwargs)
    except Cancelled as exc:
        if keeper is not None:
            keeper.keep(getattr(exc, "partial", None))
        raise


def shown_pair(vs: VolumeSet, key: Optional[str], side_by_side: bool) -> tuple[str, Optional[str]]:
    """Display keys of the left and right view: ``key`` alone, or the raw volume beside the chosen
    refined one (or the best one there is when the raw one is chosen)."""
    key = key if key in vs.volumes else next(iter(vs.volumes))
    if not side_by_side:
        return key, None
    return "raw", key if key != "raw" else next(k for k in _REFINED if k in vs.volumes)


def refined_keys(vs: VolumeSet) -> list[str]:
    """The refined volumes ``vs`` holds (multislice, learned, TV), best first."""
    return [k for k in _REFINED if k in vs.volumes]


def multislice_summary(vs: VolumeSet) -> str:
    """One line on the multislice volume: iterations (and those in the illumination frame), final
    misfit, time; '' without one."""
    rec = getattr(vs.tomogram, "ri_ms_record", None)
    if not rec or getattr(vs.tomogram, "ri_ms", None) is None:
        return ""
    misfit = vs.misfit
    done, asked = int(rec.get("iterations", len(misfit))), int(rec.get("iterations_asked", len(misfit)))
    parts = [f"multislice {done}/{asked} iterations" if done != asked else f"multislice {done} iterations"]
    in_frame = int(rec.get("frame_iterations") or 0)
    if in_frame:
        parts[0] += f" ({in_frame} in the illumination frame)" if in_frame < done else " (illumination frame)"
    if misfit:
        parts.append(f"data misfit {misfit[0]:.3f} → {misfit[-1]:.3f}")
    if rec.get("seconds") is not None:
        parts.append(f"{float(rec['seconds']):.1f} s")
    if rec.get("cancelled"):
        parts.append("cancelled: last iterate")
    return ", ".join(parts)


def volume_info(vs: VolumeSet) -> str:
    """The info line above the views (rich text)."""
    shown = next(iter(vs.volumes.values()))
    dz, dy, dx = vs.voxel_size_um
    z, y, x = shown.shape
    used = (f" — {vs.fields_used} of {vs.fields.shape[0]} fields" if vs.fields_used is not None
            and vs.fields is not None else "")
    ms = multislice_summary(vs)
    unsaved = " — <b>not saved</b> (Export ▸ Result file… saves it)" if vs.cancelled else ""
    return (f"<b>{vs.name}</b> — {vs.method}{f' + {ms}' if ms else ''}{used} — {x} × {y} × {z} voxels of "
            f"{dx:.3f} × {dy:.3f} × {dz:.3f} µm (x × y × z) — medium n_m = {vs.medium_index:.4f}{unsaved}")


# ====================================================================== cost estimate
@dataclass(frozen=True)
class MeasurementSize:
    """What the cost of reconstructing a measurement depends on: its image size (H, W), its number of
    fields and its metadata (wavelength, n_m, pixel size: the grid and the SSNP sub-steps)."""

    image_shape: tuple
    n_fields: int
    metadata: Any


def measurement_size(folder: Path) -> Optional[MeasurementSize]:
    """Image size, field count and metadata of a measurement folder, without reading its pixels
    (None when it cannot be read)."""
    from engine.store.folders import inspect_measurement

    try:
        info = inspect_measurement(folder, thumbnail=False)
    except Exception as exc:  # noqa: BLE001 - no estimate is not an error
        log.info("no size for %s: %s", folder, exc)
        return None
    if info.metadata is None or not info.image_shape or not info.n_images:
        return None
    n = info.n_images // 4 if info.metadata.polarised else info.n_images
    return MeasurementSize(image_shape=tuple(info.image_shape), n_fields=int(n), metadata=info.metadata)


def calibrate_cost(device: str = "cpu", progress: Optional[Callable[..., None]] = None, cancel=None) -> Any:
    """Time this computer's kernels once (:func:`engine.pipeline.cost.calibrate`; a job, ≈ 1 s)."""
    from engine.pipeline.cost import calibrate

    report(progress, 0.0, "timing this computer once, for the cost estimates")
    check_cancel(cancel)
    return calibrate(device)


def cost_text(size: Optional[MeasurementSize], options: ProcessOptions, n_used: Optional[int] = None,
              calibration: Any = None, reuse_fields: bool = False) -> str:
    """The estimate shown before a run, e.g. ``"≈ 42 s (multislice 38 s) for 32 × 64 × 64 voxels, 15 fields"``."""
    from engine.pipeline.cost import estimate_seconds, problem_size

    if size is None:
        return "Cost: choose a measurement"
    if getattr(size.metadata, "polarised", False):
        # engine.pipeline.cost models the scalar path only; a scalar figure would mislead here
        return ("Estimated time: not modelled for birefringence (learned fastest; DTT refined takes "
                "7–20× DTT)")
    if calibration is None:
        return "Cost: timing this computer …"
    shape, substeps = problem_size(size.metadata, size.image_shape, options.shape_z)
    est = estimate_seconds(options, shape, n_used if n_used else size.n_fields, substeps, calibration,
                           retrieve=not reuse_fields)
    return f"Estimated time {est.describe()}"
