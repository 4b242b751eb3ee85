"""One measurement end to end: import → retrieve → screen → reconstruct → regularise → write.

:func:`process_measurement` is the single engine entry point: the GUI's Reconstruction tab,
the headless ``odt-studio batch``, Dask workers and the tests all call it, with one options
type, :class:`ProcessOptions`. Beside the options it takes what a desktop session already
has: a screening decision made elsewhere (the project's, with manual overrides), fields
retrieved earlier (a re-reconstruction with other options does not retrieve again) and a
callback that receives the raw tomogram as soon as it exists, before a long regularisation.
:func:`process_folder` is its picklable ``(folder, out_path) -> dict`` form for
:func:`engine.pipeline.batch.run_batch`, and :func:`run_batch_command` implements the
``batch`` subcommand of ``docs/formats.md`` §3.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..measurement import Measurement
from ..metadata import MeasurementMetadata
from ..progress import Cancelled, CancelToken, check_cancel, report, sub_progress

__all__ = [
    "BIREFRINGENCE_METHODS",
    "MULTISLICE_FRAMES",
    "ProcessOptions",
    "ProcessResult",
    "process_measurement",
    "process_folder",
    "run_batch_command",
    "fields_reusable",
    "stored_fields",
    "learned_regularizer_available",
    "recorded_options",
    "OPTIONS_ATTR",
]

#: file attribute of a result file holding the options it was processed with (JSON, docs/formats.md §2)
OPTIONS_ATTR = "processing_options"

#: Birefringence routes (``ProcessOptions.birefringence_method``, ``batch --birefringence-method``): chosen
#: from the measurement (default, :func:`engine.birefringence.routes.choose_route`), first-order DTT, DTT with
#: simulate-and-correct steps, the learned generator.
BIREFRINGENCE_METHODS = ("auto", "dtt", "dtt-refined", "learned")

#: SSNP marching frames of the multislice method (:class:`engine.tomography.multislice.MultisliceOptions`)
MULTISLICE_FRAMES = ("lab", "auto", "illumination")

#: How far (relative excess of any quantity beyond its trained range, :func:`engine.tomography.deep_regularizer.
#: domain_excess`) a measurement may lie outside the learned regulariser's training domain before TV runs in its
#: place (``ProcessOptions.deep_domain_tolerance``). Measured on exact-Mie weak spheres (miepython, 49 ring
#: illuminations ending at 0.80 / 0.76 / 0.72 / 0.64 / 0.56 of NA 1.2, i.e. 0 / 5 / 10 / 20 / 30 % below the
#: trained 0.8–0.95): mean index inside, learned − TV, −0.0010 / −0.0022 / −0.0029 / −0.0042 / −0.0059 (the
#: issue's bound: 0.002), axial FWHM −10 / +1 / +5 / +13 / +20 % of TV's (``tests/benchmarks/
#: bench_deep_regularizer_mie.py --spheres 1 --screen none --na-fraction 0.8 0.76 0.72 0.64 0.56``): the bound is
#: crossed at about 4 %. A card may weight a quantity it is less sensitive to (``domain_excess_weights``): 2.2.0's
#: counts the number of illuminations ×0.2, the wavelength ×0.25 and the objective NA ×0.4
#: (``tests/benchmarks/bench_deep_regularizer_setup_scan.py``: 20 % fewer illuminations or 10 % less objective NA
#: move learned − TV about as much as 4 % of illumination NA; a wavelength 16 % below its range, not at all).
DEFAULT_DEEP_DOMAIN_TOLERANCE = 0.04

#: TV outer (FISTA) and inner (FGP) iterations by default (as ``engine.tomography.reconstruct``)
DEFAULT_TV_OUTER_ITERATIONS = 30
DEFAULT_TV_INNER_ITERATIONS = 20


def _multislice_default(name: str) -> Callable[[], Any]:
    """A default of :class:`engine.tomography.multislice.MultisliceOptions` (imported late: PyTorch)."""
    def default() -> Any:
        from ..tomography.multislice import MultisliceOptions

        return getattr(MultisliceOptions(), name)

    return default


def _default_tv_weight() -> float:
    """``engine.tomography.reconstruct.DEFAULT_TV_WEIGHT`` (imported late: it pulls in PyTorch)."""
    from ..tomography.reconstruct import DEFAULT_TV_WEIGHT

    return float(DEFAULT_TV_WEIGHT)


@dataclass(frozen=True)
class ProcessOptions:
    """What to do with one measurement: the one options type of the batch, the GUI and the tests.

    Attributes
    ----------
    screen : {"model", "rule", "none"}
        Field screening when no decision is given to :func:`process_measurement`: the shipped
        CNN, the rule-based Fourier-peak metric, or keep all (fields whose retrieval failed
        outright are excluded whatever the screen, :func:`failed_retrievals`).
    regularize : {"none", "tv", "deep"}
        Missing-cone regularisation written beside the raw tomogram (``ri_tv``, ``ri_deep``).
    deep_domain_tolerance : float or None
        With ``regularize="deep"``: when the measurement (with the fields the screen kept) lies
        further than this outside the learned regulariser's training domain — the largest relative
        excess of any quantity beyond its trained range, e.g. 0.25 for illuminations ending at 0.6
        of the NA against 0.8–0.95 — TV runs instead (``ri_tv``), with a warning saying why, and
        the result records ``regularize_route="tv"``. Default
        :data:`DEFAULT_DEEP_DOMAIN_TOLERANCE`; None: always the learned step (it still warns).
    deep_polish_iterations : int or None
        With ``regularize="deep"``: TV iterations that follow the network, started from its
        volume (:func:`engine.tomography.deep_regularizer.polish_tv`; they restore the measured
        Fourier values and bring the volume closer to TV's). None (default): the model card's
        ``inference.tv_polish``; 0: the network alone.
    birefringence : bool
        Also reconstruct n_e, n_o and the director (polarisation-resolved data only).
    birefringence_method : {"auto", "dtt", "dtt-refined", "learned"}
        The birefringence route (:data:`BIREFRINGENCE_METHODS`): ``"auto"`` (default) chooses one
        of the others from the measurement (:func:`engine.birefringence.routes.choose_route`; the
        choice and its reason are logged and recorded, ``birefringence_route``); physics (first-order
        dielectric tensor tomography), DTT corrected by simulate-and-correct steps with the
        vectorial multi-slice (:func:`engine.birefringence.refine.refine_tensor`: a more accurate
        Δn on strong droplets, 7–20× slower), or the learned generator (n_e, n_o from the network,
        the director from DTT; only for the setup the model was trained at). The route that made
        the volume is recorded as ``tomogram/method`` (``"dtt-rytov"``, ``"dtt-refined"``,
        ``"learned-generator…"``).
    device : {"auto", "cpu", "cuda"}
    method : {"rytov", "born", "multislice"}
        Scattering approximation. ``"multislice"``: ``tomogram/ri`` is the first-order Rytov
        tomogram (its start) and ``tomogram/ri_ms`` the iterative multiple-scattering inversion of
        :mod:`engine.tomography.multislice` (SSNP forward model), with its record.
    multislice_iterations, multislice_batch : int
        Multislice FISTA iterations and illuminations per iteration (a random subset).
    multislice_tv_weight : float
        TV weight of the multislice proximal step, in units of Δn (0: no TV, bounds only).
    multislice_step : float
        Multislice gradient step (units of the data term's Lipschitz bound; 1 is safe).
    multislice_frame : {"lab", "auto", "illumination"}
        SSNP marching direction (``MultisliceOptions.frame``). ``"lab"`` (default): along z.
        ``"illumination"``: every iteration marches along each illumination (steep light in dense
        samples; about 5× the cost per iteration). ``"auto"``: the asked iterations in the lab
        frame, then 15 more in the illumination frame if the iterate's peak Δn exceeds 0.2.
    non_negativity : bool or int
        Gerchberg–Papoulis n ≥ n_m on ``tomogram/ri``: True for the engine's default number of
        iterations (50), an int for that many, False or 0 for none.
    tv_weight : float
        TV weight τ in units of the scattering potential ``(n/n_m)² − 1``; must be > 0
        (default ``engine.tomography.reconstruct.DEFAULT_TV_WEIGHT``, 5e-4).
    tv_outer_iterations, tv_inner_iterations : int
        FISTA iterations and TV-proximal (FGP) iterations per FISTA iteration (30 × 20).
    shape_z : int or None
        Axial voxels (default: the reconstruction's own default).
    threshold : float
        Screening decision threshold on the model's noisy-probability.
    screen_consistency : bool, optional
        With ``screen="model"``: decide by the model's consistency stage (each field against the
        fields of nearest illumination, :mod:`engine.screening.consistency`) instead of the network
        alone (:func:`engine.screening.network.screen_fields` ``consistency``). None (the default): as
        the model's card says (on for the shipped 3.4.0).
    sideband : {"auto", "as-given"}
        Side band of a detected carrier: the twin that gives the sample a positive phase, or the
        peak with f_x > 0 (for samples less dense than their medium). A ``carrier_per_um`` in
        measurement.json is always honoured (:func:`engine.holography.retrieval.retrieve_fields`).
    """

    screen: str = "model"
    regularize: str = "none"
    deep_domain_tolerance: Optional[float] = DEFAULT_DEEP_DOMAIN_TOLERANCE
    deep_polish_iterations: Optional[int] = None
    birefringence: bool = False
    birefringence_method: str = "auto"
    device: str = "auto"
    method: str = "rytov"
    non_negativity: bool | int = True
    shape_z: Optional[int] = None
    threshold: float = 0.5
    screen_consistency: Optional[bool] = None
    sideband: str = "auto"
    tv_weight: float = field(default_factory=_default_tv_weight)
    tv_outer_iterations: int = DEFAULT_TV_OUTER_ITERATIONS
    tv_inner_iterations: int = DEFAULT_TV_INNER_ITERATIONS
    multislice_iterations: int = field(default_factory=_multislice_default("iterations"))
    multislice_batch: int = field(default_factory=_multislice_default("batch"))
    multislice_tv_weight: float = field(default_factory=_multislice_default("tv_weight"))
    multislice_step: float = field(default_factory=_multislice_default("step"))
    multislice_frame: str = "lab"

    def __post_init__(self) -> None:
        choices = {"sideband": ("auto", "as-given"), "screen": ("model", "rule", "none"),
                   "birefringence_method": BIREFRINGENCE_METHODS, "regularize": ("none", "tv", "deep"),
                   "method": ("rytov", "born", "multislice"),
                   "multislice_frame": MULTISLICE_FRAMES}
        for name, allowed in choices.items():
            v = getattr(self, name)
            if v not in allowed:
                raise ValueError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {v!r}")
        tol = self.deep_domain_tolerance
        if tol is not None and not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"deep_domain_tolerance must be >= 0 (or None: never TV instead), got {tol!r}")
        if self.deep_polish_iterations is not None and int(self.deep_polish_iterations) < 0:
            raise ValueError(f"deep_polish_iterations must be >= 0 (or None: the model card's), "
                             f"got {self.deep_polish_iterations!r}")
        if not (np.isfinite(self.tv_weight) and self.tv_weight > 0):
            raise ValueError(f"tv_weight must be > 0 (a zero weight is no TV at all), got {self.tv_weight!r}")
        if min(int(self.tv_outer_iterations), int(self.tv_inner_iterations)) < 1:
            raise ValueError("tv_outer_iterations and tv_inner_iterations must be >= 1")
        if int(self.non_negativity) < 0:
            raise ValueError(f"non_negativity must be a bool or an iteration count >= 0, got {self.non_negativity!r}")
        if self.shape_z is not None and int(self.shape_z) < 2:
            raise ValueError(f"shape_z must be >= 2 (or None), got {self.shape_z!r}")
        if min(int(self.multislice_iterations), int(self.multislice_batch)) < 1:
            raise ValueError("multislice_iterations and multislice_batch must be >= 1")
        if not (self.multislice_tv_weight >= 0 and self.multislice_step > 0):
            raise ValueError("multislice_tv_weight must be >= 0 and multislice_step > 0")

    @property
    def non_negativity_iterations(self) -> int:
        """Gerchberg–Papoulis iterations asked for (0 = off)."""
        if self.non_negativity is True:
            from ..tomography.constraints import DEFAULT_NON_NEGATIVITY_ITERATIONS

            return int(DEFAULT_NON_NEGATIVITY_ITERATIONS)
        return int(self.non_negativity or 0)

    def describe(self) -> str:
        """Short label for a person, e.g. ``"Rytov + TV"``."""
        reg = {"none": "", "tv": " + TV", "deep": " + learned"}[self.regularize]
        return f"{self.method.capitalize()}{reg}"

    def record(self) -> dict:
        """The options as the result file records them (``processing_options``, JSON-ready);
        ``non_negativity`` as its iteration count."""
        d = dataclasses.asdict(self)
        d["non_negativity"] = self.non_negativity_iterations
        return d

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "ProcessOptions":
        """Options from :meth:`record` (keys this version does not know are ignored).

        Raises
        ------
        ValueError
            A recorded value is not allowed.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(record).items() if k in known})


@dataclass
class ProcessResult:
    """What :func:`process_measurement` produced (all arrays in memory).

    Attributes
    ----------
    name : str
        Measurement name (the folder's name).
    fields, illumination_per_um
        Retrieved fields (N, H, W) complex64 and their illumination (N, 2), cycles/µm.
    screening
        ``score``, ``rule_peak``, ``decision``, ``source``, ``model_name``, ``model_version``.
    tomogram : engine.tomography.reconstruct.Tomogram
        ``ri`` and, as asked, ``ri_tv`` or ``ri_deep``.
    fields_used : int
    timings_s : dict
        Seconds per stage (``read``, ``retrieve``, ``screen``, ``reconstruct``, ``regularize_tv`` …).
    out_path : Path or None
        The result file written.
    birefringence
        Dielectric tensor result (polarised data).
    retrieval : dict or None
        ``retrieval/`` of the result file (:func:`retrieval_record`).
    warnings : list of str
    metadata : MeasurementMetadata or None
    retrieved : RetrievedFields or None
        What the retrieval produced (scalar data); pass it back as ``retrieved=`` to reconstruct
        again with other options without retrieving again.
    reused_fields : bool
        The fields were given (``retrieved=``), not retrieved by this call.
    """

    name: str
    fields: np.ndarray
    illumination_per_um: np.ndarray
    screening: Any
    tomogram: Any
    fields_used: int
    timings_s: dict = field(default_factory=dict)
    out_path: Optional[Path] = None
    birefringence: Any = None
    retrieval: Any = None
    warnings: list = field(default_factory=list)
    metadata: Any = None
    retrieved: Any = None
    reused_fields: bool = False
    options: Optional[ProcessOptions] = None
    birefringence_route: Any = None  # engine.birefringence.routes.RouteChoice of polarised data
    regularize_route: Optional[tuple[str, str]] = None  # ("tv", why) when TV ran in the learned step's place


def _screen(fields, retrieved, meta, options: ProcessOptions, progress, cancel):
    from ..screening import screen_fields

    n = fields.shape[0]
    if options.screen == "none":
        res = screen_fields(fields, retrieved.illumination_per_um, meta, method="rule",
                            pixel_size_um=retrieved.pixel_size_um, device=options.device)
        res.decision = np.ones(n, np.uint8)
        res.source = np.zeros(n, np.uint8)
        res.model_name, res.model_version = "none", ""
        return res
    return screen_fields(fields, retrieved.illumination_per_um, meta, method=options.screen,
                         threshold=options.threshold, unwrapped_phase=retrieved.unwrapped_phase,
                         pixel_size_um=retrieved.pixel_size_um, device=options.device,
                         consistency=options.screen_consistency if options.screen == "model" else False,
                         camera=getattr(retrieved, "quality", None), progress=progress, cancel=cancel)


def process_measurement(
    measurement: Measurement | str | Path,
    out_path: Optional[str | Path] = None,
    options: Optional[ProcessOptions] = None,
    *,
    screening: Any = None,
    retrieved: Any = None,
    on_raw: Optional[Callable[[Any], None]] = None,
    on_iteration: Optional[Callable[[int, float], None]] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> ProcessResult:
    """Process one measurement and (optionally) write its result file.

    Parameters
    ----------
    measurement : Measurement or path
        An in-memory measurement or a measurement folder (read, never written).
    out_path : path, optional
        Where to write ``<name>.odt.h5`` (``docs/formats.md`` §2), atomically; an existing file
        is replaced whole.
    options : ProcessOptions, optional
        Default ``ProcessOptions()``.
    screening : ScreeningResult, mapping or object, optional
        A decision made elsewhere, used instead of ``options.screen`` (scalar data): ``decision``
        (N,) uint8 (1 = clean) and, optionally, ``score``, ``rule_peak``, ``source`` (default 2,
        manual) and ``model`` — e.g. a project's decisions with its manual overrides
        (:func:`engine.pipeline.project_screening.project_screening_record`). One of the wrong
        length is ignored with a warning. Fields whose retrieval failed are excluded anyway.
    retrieved : engine.holography.retrieval.RetrievedFields or path, optional
        Fields retrieved earlier from this measurement (``ProcessResult.retrieved``), or a result
        file of it whose fields to use (:func:`stored_fields`; ignored unless it holds fields with
        their ``retrieval/`` record): used as they are, unless they were retrieved under the other
        side-band setting (:func:`fields_reusable`). Only the metadata is read then.
    on_raw : callable, optional
        Called once, in the calling thread, with the raw tomogram (a ``Tomogram`` with ``ri``)
        as soon as it exists, before the regularisation (and before the multislice iterations);
        a GUI can show it meanwhile.
    on_iteration : callable, optional
        ``method="multislice"``: called in the calling thread after every iteration with its
        index (0-based) and relative data misfit (a live convergence plot).
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    ProcessResult

    Raises
    ------
    engine.store.folders.MeasurementError
        The folder breaks the measurement contract (the message names folder and file).
    ValueError
        Polarisation-resolved data without ``options.birefringence``, or every field screened out.
    engine.progress.Cancelled
        Cancelled during the multislice iterations, its ``partial`` is a ProcessResult (not
        written) whose tomogram holds ``ri`` and the last iterate as ``ri_ms`` (its record says
        ``cancelled``): a GUI can show it and save it.
    """
    options = options if options is not None else ProcessOptions()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    report(progress, 0.0, "reading the measurement")
    if isinstance(retrieved, (str, Path)):
        retrieved = _stored_or_none(Path(retrieved), sub_progress(progress, 0.0, 0.35, "stored fields: "), cancel)
    reuse = retrieved if retrieved is not None and fields_reusable(retrieved, options) else None
    measurement = _read(measurement, header_only=reuse is not None)
    meta = measurement.metadata
    timings["read"] = time.perf_counter() - t
    check_cancel(cancel)
    if meta.polarised:
        if not options.birefringence:
            raise ValueError(
                f"{measurement.name}: polarisation-resolved measurement ('frames' in measurement.json): "
                "process it with the birefringence option (odt-studio batch --birefringence)")
        if not isinstance(measurement, Measurement):
            measurement = _read(measurement.path, header_only=False)
        result = _process_polarised(measurement, options, timings, progress, cancel)
    else:
        try:
            result = _process_scalar(measurement, options, timings, progress, cancel, screening=screening,
                                     retrieved=reuse, on_raw=on_raw, on_iteration=on_iteration)
        except Cancelled as exc:
            if isinstance(getattr(exc, "partial", None), ProcessResult):
                exc.partial.metadata, exc.partial.options = meta, options
            raise
    result.metadata, result.options = meta, options
    if out_path is not None:
        check_cancel(cancel)
        report(progress, 0.97, "writing the result file")
        result.out_path = write_process_result(out_path, measurement, result)
    report(progress, 1.0, "done")
    return result


@dataclass
class _Header:
    """A measurement's name, metadata and folder, without its holograms (fields are reused)."""

    name: str
    metadata: MeasurementMetadata
    path: Optional[Path] = None


def _read(measurement: Measurement | _Header | str | Path, *, header_only: bool) -> Measurement | _Header:
    """The measurement (holograms and all), or only its metadata when the fields are reused."""
    from ..store.folders import load_measurement, read_metadata_text

    if isinstance(measurement, (Measurement, _Header)):
        return measurement
    path = Path(measurement)
    text = read_metadata_text(path) if header_only and path.is_dir() else ""
    if not text:
        return load_measurement(path)
    return _Header(name=path.name, metadata=MeasurementMetadata.from_json(text, path / "measurement.json"),
                   path=path)


def fields_reusable(retrieved: Any, options: ProcessOptions) -> bool:
    """Whether fields retrieved earlier serve ``options``: they exist, and their side band was not
    chosen by the other side-band rule (a carrier from measurement.json or the caller always serves)."""
    if retrieved is None or getattr(retrieved, "field", None) is None:
        return False
    sb = getattr(retrieved, "sideband", None)
    if sb is None or sb.source not in ("auto", "as-given"):
        return True
    return (sb.source == "as-given") == (options.sideband == "as-given")


def _process_scalar(measurement: Measurement | _Header, options: ProcessOptions, timings: dict,
                    progress, cancel, *, screening: Any = None, retrieved: Any = None,
                    on_raw: Optional[Callable[[Any], None]] = None,
                    on_iteration: Optional[Callable[[int, float], None]] = None) -> ProcessResult:
    meta = measurement.metadata
    t = time.perf_counter()
    if retrieved is None:
        from ..holography.retrieval import retrieve_fields

        retrieved = retrieve_fields(measurement.holograms, measurement.backgrounds, meta, device=options.device,
                                    sideband=options.sideband,
                                    progress=sub_progress(progress, 0.02, 0.35, "retrieval: "), cancel=cancel)
        reused = False
    else:
        report(progress, 0.35, "reusing the retrieved fields")
        reused = True
    timings["retrieve"] = time.perf_counter() - t

    t = time.perf_counter()
    report(progress, 0.35, "screening fields")
    given, warnings = _given_screening(screening, retrieved, meta, measurement.name, options)
    chosen = given if given is not None else _screen(retrieved.field, retrieved, meta, options,
                                                     sub_progress(progress, 0.35, 0.45, "screening: "), cancel)
    timings["screen"] = time.perf_counter() - t
    warnings += [f"{measurement.name}: {w}" for w in getattr(chosen, "warnings", None) or []]  # outside its domain
    warnings += _exclude_failed(chosen, retrieved, measurement.name)
    decision = np.asarray(chosen.decision, dtype=np.uint8)
    if decision.sum() == 0:
        raise ValueError(f"{measurement.name}: screening marked every field noisy; nothing to reconstruct")
    route = None
    if options.regularize == "deep":  # a measurement outside the learned regulariser's training setups
        from ..tomography.deep_regularizer import pipeline_domain_warnings

        warnings += pipeline_domain_warnings(measurement.name, meta, illumination_per_um=retrieved.illumination_per_um,
                                             used=decision)
        route = _deep_or_tv(meta, retrieved.illumination_per_um, decision, options)
        if route is not None:
            warnings.append(f"{measurement.name}: {route[1]}")
            options = dataclasses.replace(options, regularize="tv")  # the stages below run TV; the result keeps what was asked

    def result(tomogram: Any) -> ProcessResult:
        return ProcessResult(name=measurement.name, fields=retrieved.field,
                             illumination_per_um=np.asarray(retrieved.illumination_per_um),
                             screening=chosen, tomogram=tomogram, fields_used=int(decision.sum()),
                             timings_s=timings, retrieval=retrieval_record(retrieved),
                             warnings=warnings + contrast_warnings(measurement.name, retrieved, decision),
                             retrieved=retrieved, reused_fields=reused, regularize_route=route)

    try:
        tomogram = _reconstruct_stages(retrieved, meta, decision, options, timings, on_raw, progress, cancel,
                                       on_iteration=on_iteration)
    except Cancelled as exc:
        if getattr(exc, "partial", None) is not None:  # the multislice's last iterate, in its tomogram
            exc.partial = result(exc.partial)
        raise
    return result(tomogram)


def _deep_or_tv(meta: MeasurementMetadata, illumination_per_um: Any, decision: np.ndarray,
                options: ProcessOptions) -> Optional[tuple[str, str]]:
    """``("tv", why)`` when the measurement lies further outside the learned regulariser's
    training domain than ``options.deep_domain_tolerance`` (TV then runs in its place), else None."""
    from ..tomography.deep_regularizer import domain_excess, model_card

    if options.deep_domain_tolerance is None:
        return None
    try:
        card = model_card()
    except (OSError, ValueError):
        return None  # the learned step itself reports the missing model
    excess, what = domain_excess(meta, card, illumination_per_um=illumination_per_um, used=decision)
    if excess <= options.deep_domain_tolerance + 1e-9:  # at the tolerance itself: still inside
        return None
    return "tv", (f"the learned regulariser would run {100 * excess:.0f} % outside its training domain ({what}; "
                  f"tolerance {100 * options.deep_domain_tolerance:.0f} %): TV ran instead (tomogram/ri_tv)")


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _given_screening(screening: Any, retrieved: Any, meta: MeasurementMetadata, name: str,
                     options: ProcessOptions) -> tuple[Optional[SimpleNamespace], list[str]]:
    """A screening record (as :func:`_screen` returns) from a decision made elsewhere, or None."""
    if screening is None or _get(screening, "decision") is None:
        return None, []
    n = retrieved.field.shape[0]
    decision = np.asarray(_get(screening, "decision"), np.uint8).ravel()
    if decision.shape != (n,):
        return None, [f"{name}: the given screening has {decision.size} decisions for {n} fields; "
                      f"screened with '{options.screen}' instead"]

    def column(key: str, default: Callable[[], np.ndarray], dtype) -> np.ndarray:
        v = _get(screening, key)
        v = None if v is None else np.asarray(v, dtype).ravel()
        return v if v is not None and v.shape == (n,) else default().astype(dtype)

    def rule() -> np.ndarray:
        from ..screening.rule import rule_peak_metric

        return rule_peak_metric(retrieved.field, retrieved.illumination_per_um, retrieved.pixel_size_um,
                                meta.wavelength_um)

    model = _get(screening, "model")
    if model is None:
        model = f"{_get(screening, 'model_name') or ''} {_get(screening, 'model_version') or ''}".strip()
    return SimpleNamespace(score=column("score", lambda: np.full(n, np.nan), np.float32),
                           rule_peak=column("rule_peak", rule, np.float32), decision=decision,
                           source=column("source", lambda: np.full(n, 2), np.uint8),
                           model_name=str(model or "given"), model_version=""), []


def _exclude_failed(screening: Any, retrieved: Any, name: str) -> list[str]:
    """Exclude the fields whose retrieval failed outright (in place); a warning when there are any."""
    failed, why = failed_retrievals(retrieved)
    if not failed.any():
        return []
    screening.decision = np.where(failed, 0, screening.decision).astype(np.uint8)
    screening.source = np.where(failed & (np.asarray(screening.source) != 2), 1, screening.source).astype(np.uint8)
    return [f"{name}: {int(failed.sum())} field(s) excluded whatever the screening said, because their "
            f"retrieval failed: {why}"]


def _reconstruct_stages(retrieved: Any, meta: MeasurementMetadata, decision: np.ndarray, options: ProcessOptions,
                        timings: dict, on_raw: Optional[Callable[[Any], None]], progress, cancel, *,
                        on_iteration: Optional[Callable[[int, float], None]] = None):
    """Raw first-order tomogram (with non-negativity), handed to ``on_raw``; then the regularisation
    asked for; then, for ``method="multislice"``, the multiple-scattering inversion as ``ri_ms``."""
    from ..tomography.reconstruct import reconstruct

    reg, ms = options.regularize, options.method == "multislice"
    raw_end = 0.5 if ms else {"none": 0.97, "tv": 0.6, "deep": 0.9}[reg]
    reg_end = 0.6 if ms and reg != "none" else raw_end if ms else 0.97
    t = time.perf_counter()
    rec_field, rec_phase = _reconstruction_inputs(retrieved)
    tomogram = reconstruct(
        rec_field, retrieved.illumination_per_um, meta, method="rytov" if ms else options.method,
        shape_z=options.shape_z, decision=decision, non_negativity=options.non_negativity, regularization=None,
        unwrapped_phase=rec_phase, device=options.device, keep_fourier=reg != "none",
        field_noise_rad=_field_noise(retrieved),
        progress=sub_progress(progress, 0.45, raw_end, "reconstruction: "), cancel=cancel)
    timings["reconstruct"] = time.perf_counter() - t
    if on_raw is not None:
        on_raw(dataclasses.replace(tomogram, fourier=None, timings_s=dict(tomogram.timings_s)))
    check_cancel(cancel)
    if reg == "tv":
        t = time.perf_counter()
        tomogram.ri_tv = _tv_volume(tomogram, options, sub_progress(progress, raw_end, reg_end, "total variation: "),
                                    cancel)
        timings["regularize_tv"] = tomogram.timings_s["tv"] = time.perf_counter() - t
    elif reg == "deep":
        from ..tomography.deep_regularizer import regularize_deep_fourier

        t = time.perf_counter()
        # the network was trained on the plain Rytov volume, not on the constrained one
        tomogram.ri_deep = regularize_deep_fourier(
            tomogram.fourier, device=options.device, polish_outer=options.deep_polish_iterations,
            progress=sub_progress(progress, raw_end, reg_end, "learned regulariser: "), cancel=cancel)
        timings["regularize_deep"] = time.perf_counter() - t
    tomogram.fourier = None
    if ms:
        _multislice_stage(tomogram, rec_field, rec_phase, retrieved, meta, decision, options, timings,
                          on_iteration, sub_progress(progress, reg_end, 0.97, "multislice: "), cancel)
    return tomogram


def multislice_options(options: ProcessOptions) -> Any:
    """The :class:`engine.tomography.multislice.MultisliceOptions` of ``options``."""
    from ..tomography.multislice import MultisliceOptions

    return MultisliceOptions(iterations=int(options.multislice_iterations), batch=int(options.multislice_batch),
                             tv_weight=float(options.multislice_tv_weight), step=float(options.multislice_step),
                             frame=str(options.multislice_frame))


def _frame_iterations(opts: Any, done: int) -> int:
    """Of ``done`` multislice iterations, those run in the illumination frame (``opts.frame``:
    all of them for ``"illumination"``; for ``"auto"`` those past the asked lab-frame ones)."""
    if opts.frame == "illumination":
        return done
    return max(0, done - int(opts.iterations)) if opts.frame == "auto" else 0


def _multislice_stage(tomogram: Any, rec_field, rec_phase, retrieved: Any, meta: MeasurementMetadata,
                      decision: np.ndarray, options: ProcessOptions, timings: dict,
                      on_iteration: Optional[Callable[[int, float], None]], progress, cancel) -> None:
    """``tomogram.ri_ms`` and its record: the multislice inversion (its own Rytov start).

    Cancelled during the iterations, ``tomogram`` gets the last iterate (record ``cancelled``) and
    becomes the exception's ``partial``.
    """
    from ..tomography.multislice import reconstruct_multislice

    opts = multislice_options(options)
    t = time.perf_counter()

    def keep(ms: Any, cancelled: bool) -> None:
        timings["multislice"] = time.perf_counter() - t
        misfit = [float(m) for m in (ms.misfit or [])]
        tomogram.ri_ms = np.asarray(ms.ri, np.float32)
        tomogram.misfit = misfit
        frame_iterations = _frame_iterations(opts, len(misfit))
        refined = opts.frame == "auto" and frame_iterations > 0  # auto's refinement stage started
        tomogram.ri_ms_record = {
            "iterations": len(misfit), "iterations_asked": opts.iterations + (opts.refine_iterations if refined else 0),
            "batch": opts.batch, "step": opts.step, "tv_weight": opts.tv_weight, "forward_model": opts.model,
            "frame": opts.frame, "frame_iterations": frame_iterations, "misfit": misfit,
            "seconds": round(timings["multislice"], 3), "cancelled": cancelled}

    try:
        ms = reconstruct_multislice(rec_field, retrieved.illumination_per_um, meta, shape_z=tomogram.ri.shape[0],
                                    decision=decision, non_negativity=options.non_negativity,
                                    unwrapped_phase=rec_phase, options=opts, device=options.device,
                                    progress=progress, cancel=cancel, on_iteration=on_iteration)
    except Cancelled as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            keep(partial, True)
            exc.partial = tomogram
        raise
    keep(ms, False)


def _field_noise(retrieved: Any) -> Optional[np.ndarray]:
    """Per-field phase noise (rad, shape (N,)) from the retrieval quality numbers, for the
    noise-weighted Fourier mapping; None (the reconstruction measures it) when not known."""
    quality = getattr(retrieved, "quality", None)
    noise = getattr(quality, "phase_noise_rad", None)
    return None if noise is None else np.asarray(noise, np.float64)


def _tv_volume(tomogram: Any, options: ProcessOptions, progress, cancel) -> np.ndarray:
    """``ri_tv`` (Z, Y, X) float32: TV with non-negativity on the measured spectrum (what
    ``reconstruct(regularization="tv")`` computes, as a stage of its own)."""
    import torch

    from ..tomography.tv import regularize_tv

    x = regularize_tv(tomogram.fourier, weight=options.tv_weight, outer_iterations=options.tv_outer_iterations,
                      inner_iterations=options.tv_inner_iterations, progress=progress, cancel=cancel)
    # the same index read-out as ri (Rytov: linear in n − n_m; Born: the square root)
    return tomogram.fourier.to_ri(x).to(torch.float32).cpu().numpy()


#: a field whose median |U/U_bg| is outside this range holds no usable light (a blank or dropped frame)
AMPLITUDE_RANGE = (0.2, 5.0)
#: a field whose per-pixel phase noise exceeds this (rad) is noise (uniform noise: 1.65 rad)
MAX_PHASE_NOISE_RAD = 1.2


def failed_retrievals(retrieved) -> tuple[np.ndarray, str]:
    """Fields whose retrieval failed outright, whatever any screen says; (N,) bool and why.

    Not a screen (that judges defects in good data): a sanity check that a field holds a
    measurement at all — median |U/U_bg| within :data:`AMPLITUDE_RANGE` (a black, blank or
    dropped frame gives ~0, a dark background frame gives a huge ratio) and per-pixel phase noise
    below :data:`MAX_PHASE_NOISE_RAD`. Such a field, fed to Rytov, turns ``ln|u|`` into a large
    constant and spoils every voxel: one bad field must not cost the tomogram, even with
    screening off.
    """
    field = retrieved.field
    n = field.shape[0]
    amp = np.median(np.abs(field).reshape(n, -1), axis=1)
    bad_amp = ~np.isfinite(amp) | (amp < AMPLITUDE_RANGE[0]) | (amp > AMPLITUDE_RANGE[1])
    if retrieved.quality is not None:
        noise = np.asarray(retrieved.quality.phase_noise_rad)
    else:
        from ..holography.unwrap import phase_noise_rad

        noise = phase_noise_rad(field)
    bad_noise = ~np.isfinite(noise) | (noise > MAX_PHASE_NOISE_RAD)
    reasons = []
    if bad_amp.any():
        reasons.append(f"no light (median |U/U_bg| outside {AMPLITUDE_RANGE}) in field(s) "
                       f"{', '.join(str(i) for i in np.flatnonzero(bad_amp))}")
    if (bad_noise & ~bad_amp).any():
        reasons.append(f"phase is noise (> {MAX_PHASE_NOISE_RAD} rad per pixel) in field(s) "
                       f"{', '.join(str(i) for i in np.flatnonzero(bad_noise & ~bad_amp))}")
    return bad_amp | bad_noise, "; ".join(reasons)


def _reconstruction_inputs(retrieved):
    """Field and unwrapped phase for the reconstruction (dark, noise-only pixels denoised, if known)."""
    if retrieved.rytov_field is not None:
        return retrieved.rytov_field, retrieved.rytov_phase
    return retrieved.field, retrieved.unwrapped_phase


def retrieval_record(retrieved) -> dict:
    """``retrieval/`` of the result file (docs/formats.md §2) from a RetrievedFields."""
    sb = retrieved.sideband
    attrs = {"carrier_per_um": np.asarray(retrieved.carrier_per_um, np.float64),
             "unwrap_method": str(retrieved.unwrap_method or "")}
    if sb is not None:
        attrs.update(sideband_source=sb.source, sideband_flipped=bool(sb.flipped),
                     sideband_integrated_phase_rad_um2=float(sb.integrated_phase_rad_um2),
                     sideband_confidence=float(sb.confidence), sideband_ambiguous=bool(sb.ambiguous),
                     sideband_description=sb.describe())
    quality = retrieved.quality.as_dict() if retrieved.quality is not None else {}
    return {"quality": quality, "attrs": attrs}


def contrast_warnings(name: str, retrieved, decision: np.ndarray) -> list[str]:
    """A warning when the used fields show the sample mostly *below* its medium (negative phase).

    The integrated phase :func:`engine.holography.quality.integrated_phase` of each used field is the projection of
    ``Δn = n − n_m``; when it is negative in most fields, every tomogram voxel of the object comes
    out below n_m (and non-negativity then erases it). Names the likely causes.
    """
    phase = retrieved.unwrapped_phase
    if phase is None:
        return []
    used = np.flatnonzero(np.asarray(decision, bool))
    if used.size == 0:
        return []
    from ..holography.quality import integrated_phase

    s, sigma = integrated_phase(phase[used], retrieved.pixel_size_um)
    negative = (s < -3 * sigma).mean()
    if negative <= 0.5:
        return []
    sb = retrieved.sideband
    cause = ("carrier_per_um in measurement.json points at the conjugate side band"
             if sb is not None and sb.source in ("metadata", "argument") else
             "the side-band setting 'as given' took the conjugate side band" if sb is not None and sb.source == "as-given"
             else "the sample is less dense than its medium")
    return [f"{name}: the sample's phase is negative in {100 * negative:.0f} % of the used fields "
            f"(mean integrated phase {s.mean():+.3g} rad·µm²), so its refractive index comes out below "
            f"n_m and non-negativity would erase it; likely cause: {cause}. If the sample is denser "
            "than its medium, remove carrier_per_um or use the side-band setting 'auto'."]


def _process_polarised(measurement: Measurement, options: ProcessOptions, timings: dict,
                       progress, cancel) -> ProcessResult:
    """Polarisation-resolved data: Jones fields → dielectric tensor tomography.

    ``fields/field`` holds, for image i = (illumination, pol_in, pol_out), the Jones element
    J[out, in] of its illumination. Screening works per illumination on its co-polarised
    elements J_xx and J_yy, which look like the scalar fields the screening models know (the
    cross-polarised ones are ~0 outside anisotropic regions): an illumination is kept only if
    both are clean, and its four images share that decision (``score`` is NaN for the
    cross-polarised images). Defects that touch only a cross-polarised image are not detected.
    Only the kept illuminations enter the tensor reconstruction.
    ``tomogram/ri`` is the mean index sqrt(tr ε / 3).
    """
    from ..birefringence.jones import JonesFields, frame_table, jones_fields
    from ..birefringence.tensor_tomography import reconstruct_tensor
    from ..tomography.reconstruct import Tomogram

    meta = measurement.metadata
    t = time.perf_counter()
    jones = jones_fields(measurement, device=options.device,
                         progress=sub_progress(progress, 0.02, 0.3, "Jones fields: "), cancel=cancel)
    timings["retrieve"] = time.perf_counter() - t
    table = frame_table(meta, measurement.n_images)  # (N_ill, out, in) -> image index
    n = measurement.n_images
    h, w = jones.field.shape[-2:]
    fields = np.empty((n, h, w), np.complex64)
    illum = np.empty((n, 2), np.float64)
    for i_ill in range(table.shape[0]):
        for o in range(2):
            for i in range(2):
                fields[table[i_ill, o, i]] = jones.field[i_ill, o, i]
                illum[table[i_ill, o, i]] = jones.illumination_per_um[i_ill]
    t = time.perf_counter()
    screening = _screen_polarised(fields, illum, table, jones.pixel_size_um, meta, options,
                                  sub_progress(progress, 0.3, 0.35, "screening: "), cancel)
    timings["screen"] = time.perf_counter() - t
    keep = screening.decision[table[:, 0, 0]].astype(bool)  # per illumination
    if not keep.any():
        raise ValueError(f"{measurement.name}: screening marked every illumination noisy; nothing to reconstruct")
    if not keep.all():
        jones = JonesFields(field=jones.field[keep], illumination_per_um=jones.illumination_per_um[keep],
                            pixel_size_um=jones.pixel_size_um)
    route, shape_z = _birefringence_route(jones, meta, options)
    t = time.perf_counter()
    if route.method == "learned":
        from ..birefringence.generator import reconstruct_tensor_learned

        tensor = reconstruct_tensor_learned(jones, meta, shape_z=options.shape_z, director="dtt",
                                            device=options.device, cancel=cancel,
                                            progress=sub_progress(progress, 0.35, 0.97, "learned generator: "))
    elif route.method == "dtt-refined":
        from ..birefringence.refine import refine_tensor

        tensor = refine_tensor(jones, meta, shape_z=shape_z, device=options.device, cancel=cancel,
                               progress=sub_progress(progress, 0.35, 0.97, "refined tensor tomography: "))
    else:
        tensor = reconstruct_tensor(jones, meta, shape_z=shape_z, device=options.device,
                                    progress=sub_progress(progress, 0.35, 0.97, "tensor tomography: "), cancel=cancel)
    timings["reconstruct"] = time.perf_counter() - t
    tomogram = Tomogram(ri=tensor.mean_index.astype(np.float32), voxel_size_um=tuple(tensor.voxel_size_um),
                        origin_um=tuple(tensor.origin_um), medium_index=float(tensor.medium_index),
                        method=str(tensor.method))
    return ProcessResult(name=measurement.name, fields=fields, illumination_per_um=illum, screening=screening,
                         tomogram=tomogram, fields_used=int(screening.decision.sum()), timings_s=timings,
                         birefringence=tensor, birefringence_route=route)


def _birefringence_route(jones, meta, options: ProcessOptions):
    """The route of ``options.birefringence_method`` (``"auto"``: measured and chosen), logged, and the
    axial voxel count for the DTT routes: ``options.shape_z`` when given, else the measured largest
    object's diameter plus margins (:func:`engine.birefringence.routes.axial_voxels`; None keeps DTT's
    default)."""
    from ..birefringence.routes import AUTO, axial_voxels, choose_route, measure_sample

    measured = measure_sample(jones)
    facts = measured if options.birefringence_method == AUTO else None
    route = choose_route(meta, jones.field.shape[-2:], jones.n_illuminations, facts=facts,
                         requested=options.birefringence_method)
    shape_z = options.shape_z
    if shape_z is None:
        shape_z = axial_voxels(measured, float(jones.pixel_size_um), jones.field.shape[-2:])
    import logging

    logging.getLogger(__name__).info("birefringence route %s (%s): %s; axial voxels %s", route.method,
                                     route.requested, route.reason, shape_z or "default")
    return route, shape_z


def _screen_polarised(fields: np.ndarray, illum: np.ndarray, table: np.ndarray, pixel_size_um: float, meta,
                      options: ProcessOptions, progress, cancel):
    """Screen polarised images per illumination on the co-polarised Jones elements (see _process_polarised).

    Returns a screening record over all N images: ``score`` (NaN for cross-polarised images),
    ``rule_peak`` (every image), ``decision`` and ``source`` shared by the 4 images of an illumination.
    """
    from ..screening.rule import rule_peak_metric

    n = fields.shape[0]
    parts = []
    for k, co in enumerate((table[:, 0, 0], table[:, 1, 1])):  # J_xx of every illumination, then J_yy, each on its
        retrieved = SimpleNamespace(illumination_per_um=illum[co], pixel_size_um=pixel_size_um,  # own: a field is
                                    unwrapped_phase=None)  # compared with its own polarisation's neighbours
        parts.append(_screen(fields[co], retrieved, meta, options, sub_progress(progress, k / 2, (k + 1) / 2), cancel))
    res = SimpleNamespace(decision=np.concatenate([p.decision for p in parts]), model_name=parts[0].model_name,
                          score=np.concatenate([p.score for p in parts]), model_version=parts[0].model_version,
                          source=np.concatenate([p.source for p in parts]))
    co = np.concatenate([table[:, 0, 0], table[:, 1, 1]])
    n_ill = table.shape[0]
    clean = np.asarray(res.decision[:n_ill], bool) & np.asarray(res.decision[n_ill:], bool)
    score = np.full(n, np.nan, np.float32)
    score[co] = np.asarray(res.score, np.float32)
    rule = rule_peak_metric(fields, illum, pixel_size_um, meta.wavelength_um).astype(np.float32)
    decision = np.empty(n, np.uint8)
    source = np.empty(n, np.uint8)
    src = np.asarray(res.source, np.uint8)
    for i_ill in range(n_ill):
        images = table[i_ill].ravel()
        decision[images] = clean[i_ill]
        source[images] = max(src[i_ill], src[n_ill + i_ill])
    return SimpleNamespace(score=score, rule_peak=rule, decision=decision, source=source,
                           model_name=res.model_name, model_version=res.model_version)


def write_process_result(out_path: str | Path, measurement: Measurement, result: ProcessResult) -> Path:
    """Write ``result`` to ``out_path`` exactly as ``docs/formats.md`` §2 says (atomically)."""
    from ..store.results import ScreeningResult as StoredScreening
    from ..store.results import BirefringenceResult, TomogramResult, write_result
    from .project_screening import CONSISTENCY_SUFFIX

    s = result.screening
    used = bool(getattr(s, "consistency_used", False))  # the consistency stage decided (3.4.0: by default)
    model = f"{s.model_name} {s.model_version}{CONSISTENCY_SUFFIX if used else ''}".strip()
    tomo = result.tomogram
    attrs = {"warnings": json.dumps(list(result.warnings))} if result.warnings else {}
    route = result.birefringence_route
    if result.options is not None:
        rec = result.options.record()
        if route is not None:
            rec.update(birefringence_route=route.method, birefringence_route_reason=route.reason)
        if result.regularize_route is not None:
            rec.update(regularize_route=result.regularize_route[0], regularize_route_reason=result.regularize_route[1])
        elif result.options.regularize == "deep":
            from ..tomography.deep_regularizer import learned_step_record

            rec.update(learned_step_record(result.options.deep_polish_iterations))
        attrs[OPTIONS_ATTR] = json.dumps(rec, sort_keys=True)
    if route is not None:
        attrs["birefringence_route"] = route.to_json()
    return write_result(
        out_path,
        measurement_json=measurement.metadata.to_json(),
        fields=result.fields,
        illumination_per_um=result.illumination_per_um,
        screening=StoredScreening(score=s.score, rule_peak=s.rule_peak, decision=s.decision,
                                  source=s.source, model=model, consistency=getattr(s, "consistency", None),
                                  consistency_score=getattr(s, "consistency_score", None), consistency_used=used),
        tomogram=TomogramResult.from_tomogram(tomo),
        birefringence=(None if result.birefringence is None
                       else BirefringenceResult(**result.birefringence.result_datasets())),
        retrieval=result.retrieval,
        extra_attrs=attrs or None,
    )


def recorded_options(result: Any) -> ProcessOptions:
    """The options a result file (an :class:`engine.store.results.ResultFile`) was processed with.

    Its ``processing_options`` attribute when it has one; otherwise (files written before it)
    what the tomogram shows: the method (``tomogram/method``, ``ri_ms``), non-negativity
    (``+nonneg``, at the default count) and the regulariser (``ri_tv``, ``ri_deep``); the rest
    stays at the defaults.
    """
    attrs = getattr(result, "attrs", None) or {}
    text = attrs.get(OPTIONS_ATTR)
    if text:
        try:
            return ProcessOptions.from_record(json.loads(text))
        except (ValueError, TypeError) as exc:
            import logging

            logging.getLogger(__name__).warning("%s: unreadable %s (%s); inferred from the tomogram",
                                                getattr(result, "path", "?"), OPTIONS_ATTR, exc)
    t = getattr(result, "tomogram", None)
    if t is None:
        return ProcessOptions()
    method = str(t.method or "")
    name = "multislice" if t.ri_ms is not None or method.startswith("multislice") else \
        "born" if method.startswith("born") else "rytov"
    reg = "tv" if t.ri_tv is not None else "deep" if t.ri_deep is not None else "none"
    nonneg = "+nonneg" in method or name == "multislice"
    return ProcessOptions(method=name, regularize=reg, non_negativity=bool(nonneg))


def stored_fields(path: str | Path, *, progress: Optional[Callable[..., None]] = None,
                  cancel: Optional[CancelToken] = None) -> tuple[Any, MeasurementMetadata]:
    """Fields of a result file as a ``RetrievedFields`` (for ``process_measurement(retrieved=...)``).

    The file holds the fields (complex64, as retrieved) but not their unwrapped phase: it is
    computed again with the unwrapping the file records (``retrieval/unwrap_method``, the guided
    one by default, with its denoised Rytov inputs), so a tomogram from stored fields equals one
    from a fresh retrieval. Costs the unwrapping (≈ 1 s for 71 fields of 256²), not the retrieval.

    Returns
    -------
    (RetrievedFields, MeasurementMetadata)
        ``field``, ``illumination_per_um``, unwrapped phase (and Rytov inputs), the carrier, the
        side-band choice and the quality numbers as the file's ``retrieval/`` records them.

    Raises
    ------
    ValueError
        The file holds no fields.
    """
    from ..holography.quality import CAMERA_KEYS, QUALITY_KEYS, RetrievalQuality
    from ..holography.retrieval import RetrievedFields
    from ..holography.unwrap import DEFAULT_UNWRAP, unwrap_for_rytov, unwrap_phase
    from ..store.results import read_result

    res = read_result(path, groups=["fields", "retrieval"])
    if res.fields is None or res.illumination_per_um is None:
        raise ValueError(f"'{path}' holds no retrieved fields (fields/field)")
    meta = MeasurementMetadata.from_json(res.measurement_json, f"{path}: measurement_json")
    attrs = dict(res.retrieval.attrs) if res.retrieval is not None else {}
    quality = dict(res.retrieval.quality) if res.retrieval is not None else {}
    field_ = np.asarray(res.fields, np.complex64)
    method = str(attrs.get("unwrap_method") or DEFAULT_UNWRAP)
    report(progress, 0.0, "unwrapping the stored fields")
    rytov: tuple = (None, None)
    if method == "guided":
        unwrapped, *rytov = unwrap_for_rytov(field_, progress=progress, cancel=cancel)
    else:
        unwrapped = unwrap_phase(field_, method, progress=progress, cancel=cancel)
    return RetrievedFields(
        field=field_, illumination_per_um=np.asarray(res.illumination_per_um, np.float64),
        carrier_per_um=np.asarray(attrs.get("carrier_per_um", (np.nan, np.nan)), np.float64),
        pixel_size_um=float(meta.pixel_size_um), unwrapped_phase=unwrapped, sideband=_stored_sideband(attrs),
        quality=RetrievalQuality(**{k: quality[k] for k in QUALITY_KEYS + CAMERA_KEYS if k in quality})
        if set(QUALITY_KEYS) <= set(quality) else None, unwrap_method=method, rytov_field=rytov[0], rytov_phase=rytov[1]), meta


def _stored_or_none(path: Path, progress, cancel) -> Any:
    """:func:`stored_fields` of ``path``, or None when it holds no fields with a ``retrieval/`` record."""
    from ..store.results import is_complete_result

    if not is_complete_result(path, require=("fields/field", "retrieval")):
        return None
    try:
        return stored_fields(path, progress=progress, cancel=cancel)[0]
    except (ValueError, OSError, KeyError) as exc:
        import logging

        logging.getLogger(__name__).warning("%s: stored fields unusable, retrieving again (%s)", path, exc)
        return None


def _stored_sideband(attrs: Mapping) -> Any:
    """The ``SidebandChoice`` a ``retrieval/`` group records, or None."""
    from ..holography.retrieval import SidebandChoice

    if not attrs.get("sideband_source"):
        return None
    return SidebandChoice(
        source=str(attrs["sideband_source"]), flipped=bool(attrs.get("sideband_flipped", False)),
        integrated_phase_rad_um2=float(attrs.get("sideband_integrated_phase_rad_um2", np.nan)),
        confidence=float(attrs.get("sideband_confidence", np.nan)),
        ambiguous=bool(attrs.get("sideband_ambiguous", False)))


def learned_regularizer_available() -> bool:
    """True when the learned regulariser's weights and model card are shipped in ``resources/models``."""
    try:
        from ..tomography import deep_regularizer
    except Exception:  # noqa: BLE001 - a broken optional module: not available
        return False
    from ..resources import models_dir

    name = deep_regularizer.DEFAULT_MODEL_NAME
    d = models_dir()
    return (d / f"{name}.safetensors").is_file() and (d / f"{name}.json").is_file()


def process_folder(folder: Path, out_path: Path, *, screen: str = "model", regularize: str = "none",
                   birefringence: bool = False, device: str = "auto", sideband: str = "auto",
                   method: str = "rytov", non_negativity: bool = True, threshold: float = 0.5,
                   birefringence_method: str = "auto", multislice_frame: str = "lab",
                   deep_domain_tolerance: Optional[float] = DEFAULT_DEEP_DOMAIN_TOLERANCE,
                   screen_consistency: Optional[bool] = None, deep_polish_iterations: Optional[int] = None) -> dict:
    """Picklable ``(folder, out_path) -> dict`` form of :func:`process_measurement` for batches."""
    opts = ProcessOptions(screen=screen, regularize=regularize, birefringence=birefringence, device=device,
                          sideband=sideband, method=method, non_negativity=non_negativity, threshold=threshold,
                          birefringence_method=birefringence_method, multislice_frame=multislice_frame,
                          deep_domain_tolerance=deep_domain_tolerance, screen_consistency=screen_consistency,
                          deep_polish_iterations=deep_polish_iterations)
    res = process_measurement(folder, out_path, opts)
    info = {"fields_used": res.fields_used, "warnings": list(res.warnings)}
    route = getattr(res, "birefringence_route", None)
    if route is not None:
        info["birefringence_route"] = route.record()
    return info


def run_batch_command(in_dir: Path, out_dir: Path, *, screen: str = "model", regularize: str = "none",
                      birefringence: bool = False, device: str = "auto", scheduler: Optional[str] = None,
                      workers: int = 1, force: bool = False, measure: bool = False,
                      sideband: str = "auto", method: str = "rytov", non_negativity: bool = True,
                      threshold: float = 0.5, json_summary: bool = False, log_level: str = "info",
                      progress_bar: Optional[bool] = None, birefringence_method: str = "auto",
                      multislice_frame: str = "lab",
                      deep_domain_tolerance: Optional[float] = DEFAULT_DEEP_DOMAIN_TOLERANCE,
                      screen_consistency: Optional[bool] = None, deep_polish_iterations: Optional[int] = None) -> int:
    """``odt-studio batch``: process every measurement under ``in_dir``; exit 0 only if all succeeded.

    With ``measure``, the objects of every result are then measured into ``out_dir/measurements.csv``
    (:func:`engine.pipeline.measure.measure_results`); a result that cannot be measured makes the exit 1.
    Every folder processed gets ``out_dir/logs/<name>.log`` (with the traceback of a failure);
    ``log_level`` filters the terminal lines and those logs; ``json_summary`` prints the summary
    as JSON on stdout; ``progress_bar`` (default: when stderr is a terminal) shows a tqdm bar.
    ``birefringence_method`` is the route of ``birefringence`` and ``multislice_frame`` the SSNP
    frame of ``method="multislice"``, ``deep_domain_tolerance`` how far outside its domain the learned
    regulariser may run before TV replaces it, ``deep_polish_iterations`` the TV iterations after its
    network, ``screen_consistency`` whether the screening model's consistency stage decides
    (:class:`ProcessOptions`).
    """
    from ..store.folders import discover_measurements
    from .batch import LOG_DIR_NAME, BatchConsole, run_batch

    in_dir, out_dir = Path(in_dir), Path(out_dir)

    def give_up(message: str) -> int:
        print(f"odt-studio batch: {message}", file=sys.stderr)
        if json_summary:
            print(json.dumps({"out_dir": str(out_dir), "exit_code": 2, "error": message, "items": []}, indent=2))
        return 2

    if not in_dir.is_dir():
        return give_up(f"{in_dir}: no such folder")
    with BatchConsole(log_level, progress_bar=progress_bar) as console:
        problems: list[str] = []
        unrecognised: list[tuple[Path, str]] = []  # images without measurement.json: a failed row each
        folders = discover_measurements(in_dir, on_error=lambda p, msg: problems.append(f"{p}: {msg}"),
                                        on_unrecognised=lambda p, msg: unrecognised.append((p, msg)))
        for p in problems:
            console.warning(f"warning: {p}")
        if not folders and not unrecognised:
            return give_up(f"no measurement folders (measurement.json) under {in_dir}")
        console.info(f"{len(folders)} measurement folder(s) under {in_dir}" + (
            f", {len(unrecognised)} folder(s) of images without measurement.json" if unrecognised else ""))
        fn = functools.partial(process_folder, screen=screen, regularize=regularize,
                               birefringence=birefringence, device=device, sideband=sideband,
                               method=method, non_negativity=non_negativity, threshold=threshold,
                               birefringence_method=birefringence_method, multislice_frame=multislice_frame,
                               deep_domain_tolerance=deep_domain_tolerance, screen_consistency=screen_consistency,
                               deep_polish_iterations=deep_polish_iterations)
        console.start(len(folders) + len(unrecognised))
        summary = run_batch(folders, out_dir, fn, workers=workers, scheduler=scheduler, force=force,
                            logger=console.logger, progress=console.progress, unprocessable=unrecognised,
                            log_dir=out_dir / LOG_DIR_NAME, log_level=log_level)
        console.stop_bar()  # the lines below follow the finished bar
        console.info(f"done: {summary.n_ok} ok, {summary.n_failed} failed, {summary.n_skipped} skipped; "
                     f"summary in {out_dir / 'summary.csv'}")
        exit_code = summary.exit_code
        doc = summary.as_dict()
        if measure:
            from .measure import measure_results

            names = [it.name for it in summary.items if it.status in ("ok", "skipped")]
            measured = measure_results(out_dir, names, log=lambda s: print(s, file=sys.stderr, flush=True))
            print(f"measured {measured.n_objects} object(s); {measured.csv_path}", file=sys.stderr)
            exit_code = max(exit_code, 0 if measured.ok else 1)
            doc["measurements"] = {"csv": str(measured.csv_path), "objects": measured.n_objects, "ok": measured.ok}
    if json_summary:
        doc["exit_code"] = exit_code
        print(json.dumps(doc, indent=2))
    return exit_code
