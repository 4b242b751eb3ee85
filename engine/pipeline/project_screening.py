"""Screen one measurement of a project: fields, screening run, database and result file.

This is the engine side of the screening review (the GUI's Screening tab runs it as a
background job) and of any script that screens a project's measurements:

1. the fields come from the measurement's result file (``<project>/results/<name>.odt.h5``)
   when it holds them, else they are retrieved from the holograms;
2. if the project has no screening run for the measurement yet (or ``rescreen`` is set),
   the fields are screened (network, or the rule when no network is installed; with the project
   setting ``screening_consistency`` and a model that has one, its consistency stage decides, and
   the run's model version gets :data:`CONSISTENCY_SUFFIX`) and the run is recorded in the project
   database (:meth:`engine.store.project.Project.add_screening`:
   score, rule peak, decision, source, model name and version, threshold);
3. the result file's ``screening/...`` datasets are written from the database's *current*
   decisions (manual overrides included), as ``docs/formats.md`` says: ``score``,
   ``rule_peak``, ``decision`` (1 = clean, used), ``source`` (0 model, 1 rule, 2 manual) and
   the ``screening/model`` attribute. A tomogram or birefringence group written earlier is
   kept.

Fields are retrieved with the project's side-band setting
(:attr:`engine.store.project.Project.sideband`, ``"auto"`` or ``"as-given"``) and always
unwrapped, so every field gets its retrieval quality numbers; the side-band choice and those
numbers go to the result file's ``retrieval/`` group, and a warning about a mostly negative
sample phase (:func:`engine.pipeline.process.contrast_warnings`) to its ``warnings``
attribute (docs/formats.md §2). Stored fields are retrieved again when the file has no
``retrieval/`` record (written before the side band was chosen by physics) or when it was
retrieved under the other side-band setting; the measurement is then screened again (a new
run; manual decisions are kept). A ``carrier_per_um`` in measurement.json is always honoured.

Nothing here imports Qt.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..progress import CancelToken, check_cancel, report, sub_progress

__all__ = ["ProjectScreening", "load_screening_model", "screen_project_measurement", "NO_MODEL_NOTE",
           "sideband_description", "project_sideband", "project_screening_model", "stored_retrieval",
           "project_screening_record", "project_screening_consistency", "measurement_consistency",
           "CONSISTENCY_SUFFIX",
           "SOURCE_MODEL", "SOURCE_RULE", "SOURCE_MANUAL"]

log = logging.getLogger(__name__)

SOURCE_MODEL, SOURCE_RULE, SOURCE_MANUAL = 0, 1, 2
#: Appended to the model version a run records when the model's consistency stage decided (the project
#: setting ``screening_consistency``), e.g. ``"3.1.0+consistency"``.
CONSISTENCY_SUFFIX = "+consistency"
NO_MODEL_NOTE = ("No screening network is installed (resources/models holds no screening weights), "
                 "so fields are screened by the rule-based Fourier-peak metric.")


@dataclass
class ProjectScreening:
    """One project measurement's fields and its screening as the database holds it.

    Attributes
    ----------
    measurement_id : int
    name : str
    metadata : engine.metadata.MeasurementMetadata
    fields : ndarray (N, H, W) complex64
        Sample/background ratio fields at the sample plane.
    illumination_per_um : ndarray (N, 2)
    score : ndarray (N,) float32
        Model noisy-probability (NaN when screened by the rule).
    rule_peak : ndarray (N,) float32
        Rule metric, log10.
    auto_decision, auto_source : ndarray (N,) uint8
        The latest run's decisions (1 = clean) and sources (0 model, 1 rule).
    decision, source : ndarray (N,) uint8
        Current decisions with manual overrides applied, and their sources (2 = manual).
    use_rule : bool
        The run was decided by the rule (its threshold applies to ``rule_peak``).
    threshold : float or None
        The run's threshold as recorded (None if not recorded).
    model_label : str
        ``"<model name> <version>"`` of the run.
    model : ScreeningModel or None
        The network used for a new run (None: the rule).
    model_note : str
        Why the rule was used, when it was because no network could be loaded.
    run : int
        Screening run number in the project.
    result_path : Path
    timings_s : dict
        Seconds spent on ``"fields"`` and ``"screen"``.
    retrieval : dict or None
        ``{"quality": {name: (N,) float32}, "attrs": {...}}`` as in the result file's
        ``retrieval/`` group (:func:`engine.pipeline.process.retrieval_record`); None when the
        fields came from a file without it and could not be retrieved again.
    warnings : list of str
        Warnings about the retrieved fields (e.g. the sample's phase is mostly negative).
    sideband_setting : str
        The project's side-band setting the fields were (or would be) retrieved with.
    crop_origin : (int, int)
        First row and column of the crop the screen takes from every field
        (:func:`engine.screening.sample_crop.screening_crop_origin`).
    consistency : ndarray (N, 5) float32 or None
        Each field against its nearest illuminations (:mod:`engine.screening.consistency`), when the
        model has a consistency stage and the measurement enough fields.
    consistency_score : ndarray (N,) float32 or None
        That stage's noisy-probability; it is ``score`` when the run's model version ends with
        :data:`CONSISTENCY_SUFFIX` (the stage decided).
    """

    measurement_id: int
    name: str
    metadata: Any
    fields: np.ndarray
    illumination_per_um: np.ndarray
    score: np.ndarray
    rule_peak: np.ndarray
    auto_decision: np.ndarray
    auto_source: np.ndarray
    decision: np.ndarray
    source: np.ndarray
    use_rule: bool
    threshold: Optional[float]
    model_label: str
    model: Any = None
    model_note: str = ""
    run: int = 0
    result_path: Optional[Path] = None
    timings_s: dict = field(default_factory=dict)
    retrieval: Optional[dict] = None
    warnings: list = field(default_factory=list)
    sideband_setting: str = "auto"
    crop_origin: tuple = (0, 0)
    consistency: Optional[np.ndarray] = None
    consistency_score: Optional[np.ndarray] = None

    @property
    def sideband_description(self) -> str:
        """One line for a technician: how the side band of these fields was chosen."""
        return sideband_description(self.retrieval, self.sideband_setting)

    @property
    def manual(self) -> list:
        """Per field: the manual decision (0 or 1), or None where there is none."""
        return [int(d) if s == SOURCE_MANUAL else None for d, s in zip(self.decision, self.source)]


def load_screening_model(model: Any = "default", device: str = "auto") -> tuple[Any, str]:
    """Load a screening network by name or path.

    Returns
    -------
    (model, note)
        ``model`` is the loaded :class:`~engine.screening.network.ScreeningModel`, or ``None``
        with ``note`` saying why (no weights installed, or a file that fails its checks) — the
        caller then screens by the rule. A model object (or ``None``) passed in is returned as is.
    """
    from ..screening.network import ModelFileError, load_model

    if model is None or not isinstance(model, (str, Path)):
        return model, ""
    try:
        return load_model(model, device=device), ""
    except (ModelFileError, FileNotFoundError) as exc:
        log.warning("no screening model: %s", exc)
        return None, NO_MODEL_NOTE + f"\n({exc})"


def project_screening_model(project: Any, model: Any = "default") -> Any:
    """The model to screen a project's measurements with: ``model``, or the project's own.

    ``"default"`` becomes the project's adopted fine-tuned model file
    (:attr:`engine.store.project.Project.screening_model`, an absolute path) when the project
    has one that is still there; any other value (a name, a path, a loaded model, None) is
    returned unchanged, as is ``"default"`` for a project without one (the shipped model).
    """
    if not (isinstance(model, str) and model == "default"):
        return model
    try:
        own = project.screening_model
    except Exception:  # noqa: BLE001 - a project object without settings: the shipped model
        return model
    return own if own is not None else model


def project_screening_consistency(project: Any, model: Any = None) -> bool:
    """Whether the consistency stage decides for this project: its setting, else (unset, or a project object
    that cannot say) the screening ``model``'s card default (a loaded model, a name or a path; None: the
    project's adopted model, else the shipped one; :func:`engine.screening.network.consistency_by_default`)."""
    from ..screening.network import consistency_by_default

    try:
        v = project.screening_consistency
    except Exception:  # noqa: BLE001 - a project object without settings: the default
        v = None
    if isinstance(v, bool):
        return v
    if model is None:
        model = project_screening_model(project)
    if isinstance(model, (str, Path)):
        return consistency_by_default(model)
    stage = getattr(model, "consistency", None)
    return stage is not None and bool(stage["by_default"])


def project_sideband(project: Any) -> str:
    """The project's side-band setting (``"auto"`` when the project has none or cannot say)."""
    try:
        v = project.sideband
    except Exception:  # noqa: BLE001 - a project object without settings: the default
        return "auto"
    return v if v in ("auto", "as-given") else "auto"


def project_screening_record(project: Any, measurement_id: int) -> Optional[Any]:
    """The project's screening of a measurement as the result file stores it, or None if never screened.

    Returns
    -------
    engine.store.results.ScreeningResult or None
        ``score`` and ``rule_peak`` of the latest run (None when there are only manual decisions), ``decision`` and ``source`` with the manual
        overrides applied (:meth:`engine.store.project.Project.decisions`), ``model`` the run's
        model name and version: what :func:`engine.pipeline.process.process_measurement` takes as
        ``screening=`` so that a reconstruction follows the review.
    """
    from ..store.results import ScreeningResult

    db = project.screening(measurement_id)
    decision, source = (np.asarray(a, np.uint8) for a in project.decisions(measurement_id))
    if not db["run"]:
        if not (source == SOURCE_MANUAL).any():
            return None
        # manual decisions only: the pipeline fills in the rule metric (and no model score)
        return ScreeningResult(score=None, rule_peak=None, decision=decision, source=source, model="manual")
    return ScreeningResult(score=np.asarray(db["score"], np.float32), rule_peak=np.asarray(db["rule_peak"], np.float32),
                           decision=decision, source=source, model=f"{db['model_name']} {db['model_version']}".strip())


def sideband_description(retrieval: Optional[dict], setting: str = "auto") -> str:
    """How the side band of stored fields was chosen, in one line for a technician.

    Parameters
    ----------
    retrieval : dict or None
        ``{"attrs": ...}`` of a result file's ``retrieval/`` group (or a
        :class:`engine.store.results.RetrievalResult`); None when there is none.
    setting : {"auto", "as-given"}
        The project's setting, named when nothing was recorded yet.
    """
    attrs = _attrs(retrieval)
    text = str(attrs.get("sideband_description", "") or "")
    if text:
        return text
    rule = ("automatic: the twin that gives the sample a positive phase" if setting == "auto"
            else "as given: the peak with f_x > 0")
    if retrieval is None:
        return f"side band: decided when the fields are retrieved ({rule})"
    return f"side band: not recorded with these fields (the project setting is {rule})"


def _attrs(retrieval: Any) -> dict:
    if retrieval is None:
        return {}
    if isinstance(retrieval, dict):
        return dict(retrieval.get("attrs") or {})
    return dict(getattr(retrieval, "attrs", None) or {})


def stored_retrieval(res: Any) -> tuple[Optional[dict], list]:
    """``(retrieval, warnings)`` of a :class:`engine.store.results.ResultFile` (None, [] if absent)."""
    retrieval = None
    if getattr(res, "retrieval", None) is not None:
        retrieval = {"quality": dict(res.retrieval.quality), "attrs": dict(res.retrieval.attrs)}
    return retrieval, _warnings_attr(getattr(res, "attrs", {}) or {})


def _warnings_attr(attrs: dict) -> list:
    raw = attrs.get("warnings")
    if raw is None:
        return []
    try:
        w = json.loads(raw) if isinstance(raw, str) else list(raw)
    except (TypeError, ValueError):
        return [str(raw)]
    return [str(x) for x in w] if isinstance(w, list) else [str(w)]


def _needs_new_retrieval(retrieval: Optional[dict], sideband: str) -> bool:
    """Stored fields must be retrieved again: no side-band record, or one made under the other setting."""
    if retrieval is None:
        return True
    source = str(_attrs(retrieval).get("sideband_source", "") or "")
    if source in ("metadata", "argument") or not source:
        return False  # an explicit carrier (the setting does not apply), or a record that cannot say
    return (source == "as-given") != (sideband == "as-given")


@dataclass
class _Fields:
    """Fields of a measurement and where they came from (internal)."""

    meta: Any
    fields: Any = None
    illum: Any = None
    unwrapped: Any = None
    retrieved: Any = None  # RetrievedFields when retrieved now
    retrieval: Optional[dict] = None
    warnings: list = field(default_factory=list)
    replaced: bool = False  # stored fields were replaced because of the side-band setting


def _load_fields(project: Any, rec: Any, path: Path, sideband: str, *, device: str,
                 progress: Optional[Callable[..., None]], cancel: Optional[CancelToken]) -> _Fields:
    """Fields from the result file, or retrieved (with unwrapping and quality numbers) from the holograms."""
    from ..holography.retrieval import retrieve_fields
    from ..metadata import MeasurementMetadata
    from ..store.folders import load_measurement
    from ..store.results import read_result
    from .process import retrieval_record

    meta = MeasurementMetadata.from_json(rec.metadata_json) if rec.metadata_json else None
    out = _Fields(meta=meta)
    if path.exists():
        try:
            res = read_result(path, groups=["fields", "retrieval"])
            out.fields, out.illum = res.fields, res.illumination_per_um
            out.retrieval, out.warnings = stored_retrieval(res)
        except (ValueError, OSError, KeyError) as exc:
            log.warning("result file %s unreadable, fields are retrieved again: %s", path, exc)
    stored = out.fields is not None
    if stored and not _needs_new_retrieval(out.retrieval, sideband):
        return out
    report(progress, 0.05, f"{rec.name}: reading the holograms")
    try:
        m = load_measurement(rec.path)
    except Exception as exc:  # noqa: BLE001 - stored fields are still better than none
        if not stored:
            raise
        log.warning("%s: holograms unreadable, the stored fields are kept (%s)", rec.name, exc)
        return out
    check_cancel(cancel)
    r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, unwrap=True, sideband=sideband, device=device,
                        progress=sub_progress(progress, 0.1, 0.75, "retrieving fields: "), cancel=cancel)
    return _Fields(meta=m.metadata, fields=r.field, illum=r.illumination_per_um, unwrapped=r.unwrapped_phase,
                   retrieved=r, retrieval=retrieval_record(r), replaced=stored)


def screen_project_measurement(
    project: Any,
    measurement_id: int,
    *,
    model: Any = "default",
    threshold: float = 0.5,
    rescreen: bool = False,
    device: str = "auto",
    sideband: Optional[str] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> ProjectScreening:
    """Fields and screening of one project measurement, recorded in the database and result file.

    Parameters
    ----------
    project : engine.store.project.Project
    measurement_id : int
    model : ScreeningModel, name or path (``"default"``), or None (the rule)
        ``"default"`` is the project's adopted screening model when it has one
        (:attr:`engine.store.project.Project.screening_model`, set by ``odt-studio
        train-screening`` or the Screening tab's "Adopt the new model"), else the shipped one
        (:func:`project_screening_model`).
    threshold : float
        Threshold on the model's noisy-probability for a new run.
    rescreen : bool
        Screen again even if the project has a run (e.g. after adopting a retrained model).
    device : {"auto", "cpu", "cuda"}
    sideband : {"auto", "as-given"}, optional
        Side-band rule for retrieval; default the project's setting (module docstring).
    progress, cancel
        The :mod:`engine.progress` protocol.

    Returns
    -------
    ProjectScreening

    Raises
    ------
    ValueError
        The project holds no metadata for the measurement and no result file has fields.
    engine.progress.Cancelled
        ``cancel`` was set; the database and the result file are unchanged then.
    """
    timings: dict[str, float] = {}
    rec = project.get_measurement(measurement_id)
    sideband = sideband or project_sideband(project)
    report(progress, 0.0, f"{rec.name}: loading the screening model")
    model, note = load_screening_model(project_screening_model(project, model), device)
    check_cancel(cancel)
    path = Path(project.result_path(measurement_id))
    t = time.perf_counter()
    fl = _load_fields(project, rec, path, sideband, device=device, progress=progress, cancel=cancel)
    if fl.meta is None:
        raise ValueError(f"{rec.name}: the project holds no metadata for this measurement")
    timings["fields"] = time.perf_counter() - t
    check_cancel(cancel)

    t = time.perf_counter()
    new_run = project.screening(measurement_id)["run"] == 0 or rescreen or fl.replaced
    run_result = None
    if new_run:
        report(progress, 0.8, f"{rec.name}: screening {len(fl.fields)} fields")
        run_result = _new_run(project, measurement_id, fl, model, threshold, device,
                              sub_progress(progress, 0.8, 0.92), cancel)
        assert run_result.crop_origin is not None  # screen_fields always sets it
        crop_origin = run_result.crop_origin
    else:  # the recorded run's crop: a function of the fields alone
        from ..screening.network import CROP_SIZE
        from ..screening.sample_crop import screening_crop_origin

        crop_origin = screening_crop_origin(fl.fields, CROP_SIZE)
    db = project.screening(measurement_id)
    timings["screen"] = time.perf_counter() - t
    score = np.asarray(db["score"], np.float32)
    use_rule = bool(np.all(np.asarray(db["auto_source"]) == SOURCE_RULE)) or not np.isfinite(score).any()
    decision, source = project.decisions(measurement_id)
    model_label = f"{db['model_name']} {db['model_version']}".strip()
    if fl.retrieved is not None:
        from .process import contrast_warnings

        fl.warnings = contrast_warnings(rec.name, fl.retrieved, decision)
    fl.warnings += [w for w in _domain_warnings(rec.name, model, fl) if w not in fl.warnings]
    fl.warnings += [w for w in _camera_warnings(rec.name, fl, len(decision)) if w not in fl.warnings]
    decided = str(db["model_version"] or "").endswith(CONSISTENCY_SUFFIX)
    if run_result is not None and run_result.consistency is not None:  # computed by this run's screen
        features, stage_score = run_result.consistency, run_result.consistency_score
    else:
        features, stage_score = measurement_consistency(model, fl.fields, fl.illum, score, fl.meta, crop_origin,
                                                        stage_decided=decided)
    if fl.retrieved is not None or new_run:
        report(progress, 0.94, f"{rec.name}: writing the result file")
        screening = {"score": score, "rule_peak": db["rule_peak"], "decision": decision, "source": source,
                     "model": model_label, "consistency": features, "consistency_score": stage_score,
                     "consistency_used": decided}
        _write(path, rec, fl, screening)
    report(progress, 1.0, f"{rec.name}: {int(decision.sum())} of {len(decision)} fields clean")
    thr = db["threshold"]
    return ProjectScreening(
        measurement_id=int(measurement_id), name=rec.name, metadata=fl.meta, fields=np.asarray(fl.fields),
        illumination_per_um=np.asarray(fl.illum), score=score, rule_peak=np.asarray(db["rule_peak"], np.float32),
        auto_decision=np.asarray(db["auto_decision"], np.uint8), auto_source=np.asarray(db["auto_source"], np.uint8),
        decision=np.asarray(decision, np.uint8), source=np.asarray(source, np.uint8), use_rule=use_rule,
        threshold=None if thr is None else float(thr), model_label=model_label, model=model,
        model_note=note if model is None else "", run=int(db["run"]), result_path=path, timings_s=timings,
        retrieval=fl.retrieval, warnings=list(fl.warnings), sideband_setting=sideband, crop_origin=crop_origin,
        consistency=features, consistency_score=stage_score)


def measurement_consistency(model: Any, fields: np.ndarray, illumination_per_um: Optional[np.ndarray],
                            score: np.ndarray, metadata: Any, crop_origin: Optional[tuple], *,
                            stage_decided: bool = False) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """The consistency features (N, 5) of a measurement's fields on the screen's crop and the model's
    consistency-stage score (N,): from the network's ``score``, or ``score`` itself when the stage made it
    (``stage_decided``); (None, None) without a loaded model with a stage, a finite score, enough fields or an
    illumination-scan measurement
    (:mod:`engine.screening.consistency`)."""
    from ..screening.network import CROP_SIZE
    from ..screening.sample_crop import crop_at

    if getattr(model, "consistency", None) is None or not np.all(np.isfinite(score)):
        return None, None
    if getattr(metadata, "geometry", "illumination-scan") != "illumination-scan":
        return None, None  # as screen_fields: the stage compares illuminations of a still sample
    f = np.asarray(fields)
    crops = f if crop_origin is None else crop_at(f, tuple(crop_origin), CROP_SIZE)
    feats, stage_score = model.measurement_consistency(crops, float(metadata.pixel_size_um),
                                                       float(metadata.wavelength_um), illumination_per_um,
                                                       np.asarray(score, np.float32),
                                                       na_objective=getattr(metadata, "na_objective", None),
                                                       medium_index=getattr(metadata, "medium_index", None))
    return feats, (np.asarray(score, np.float32) if stage_decided and feats is not None else stage_score)


def _camera_warnings(name: str, fl: _Fields, n: int) -> list[str]:
    """The camera alarm's warning when it fires on many of the fields (:func:`engine.screening.camera_alarm.camera_warning`)."""
    from ..screening.camera_alarm import camera_warning

    w = camera_warning((fl.retrieval or {}).get("quality"), n)
    return [f"{name}: {w}"] if w else []


def _domain_warnings(name: str, model: Any, fl: _Fields) -> list[str]:
    """Where the measurement lies outside the screening model's training domain (none for the rule)."""
    from ..screening.domain import screening_domain_check

    if model is None or fl.meta is None:
        return []
    px = getattr(fl.retrieved, "pixel_size_um", None)
    return [f"{name}: {w}" for w in screening_domain_check(fl.meta, model.card, pixel_size_um=px,
                                                           field_shape=np.shape(fl.fields))]


def _new_run(project: Any, measurement_id: int, fl: _Fields, model: Any, threshold: float, device: str,
             progress: Optional[Callable[..., None]], cancel: Optional[CancelToken]) -> Any:
    """Screen the fields (network, or the rule without one) and record the run in the project;
    returns the :class:`~engine.screening.network.ScreeningResult` (its crop origin, consistency features)."""
    from ..screening.network import screen_fields

    stage = model is not None and model.consistency is not None and project_screening_consistency(project, model)
    res = screen_fields(fl.fields, fl.illum, fl.meta, model=model, method="model" if model is not None else "rule",
                        threshold=threshold, unwrapped_phase=fl.unwrapped, device=device, consistency=stage,
                        camera=(fl.retrieval or {}).get("quality"), progress=progress, cancel=cancel)
    version = res.model_version + (CONSISTENCY_SUFFIX if res.consistency_used else "")
    project.add_screening(measurement_id, res.decision, score=res.score, rule_peak=res.rule_peak,
                          source=res.source, model_name=res.model_name, model_version=version,
                          threshold=res.rule_threshold if model is None else res.threshold)
    return res


def _write(path: Path, rec: Any, fl: _Fields, screening: dict) -> None:
    """Write the screening (and newly retrieved fields with their ``retrieval/`` record) to the result file."""
    from ..store.results import read_result, update_result, write_result

    if path.exists() and fl.retrieved is None:
        update_result(path, screening=screening)
        return
    extra = {}
    if path.exists():
        try:  # keep a tomogram written earlier
            old = read_result(path, groups=["tomogram", "birefringence"])
            extra = {"tomogram": old.tomogram, "birefringence": old.birefringence}
        except (ValueError, OSError):
            extra = {}
    write_result(path, measurement_json=rec.metadata_json or fl.meta.to_json(), fields=fl.fields,
                 illumination_per_um=fl.illum, screening=screening, retrieval=fl.retrieval,
                 extra_attrs={"warnings": json.dumps(list(fl.warnings))} if fl.warnings else None, **extra)
