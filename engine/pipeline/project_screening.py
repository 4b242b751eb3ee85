"""Screen one measurement of a project: fields, screening run, database and result file.

This is the engine side of the screening review (the GUI's Screening tab runs it as a
background job) and of any script that screens a project's measurements:

1. the fields come from the measurement's result file (``<project>/results/<name>.odt.h5``)
   when it holds them, else they are retrieved from the holograms;
2. if the project has no screening run for the measurement yet (or ``rescreen`` is set),
   the fields are screened (network, or the rule when no network is installed) and the run
   is recorded in the project database (:meth:`engine.store.project.Project.add_screening`:
   score, rule peak, decision, source, model name and version, threshold);
3. the result file's ``screening/...`` datasets are written from the database's *current*
   decisions (manual overrides included), as ``docs/formats.md`` says: ``score``,
   ``rule_peak``, ``decision`` (1 = clean, used), ``source`` (0 model, 1 rule, 2 manual) and
   the ``screening/model`` attribute. A tomogram or birefringence group written earlier is
   kept.

Nothing here imports Qt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..progress import CancelToken, check_cancel, report, sub_progress

__all__ = ["ProjectScreening", "load_screening_model", "screen_project_measurement", "NO_MODEL_NOTE",
           "SOURCE_MODEL", "SOURCE_RULE", "SOURCE_MANUAL"]

log = logging.getLogger(__name__)

SOURCE_MODEL, SOURCE_RULE, SOURCE_MANUAL = 0, 1, 2
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


def screen_project_measurement(
    project: Any,
    measurement_id: int,
    *,
    model: Any = "default",
    threshold: float = 0.5,
    rescreen: bool = False,
    device: str = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> ProjectScreening:
    """Fields and screening of one project measurement, recorded in the database and result file.

    Parameters
    ----------
    project : engine.store.project.Project
    measurement_id : int
    model : ScreeningModel, name or path (``"default"``), or None (the rule)
    threshold : float
        Threshold on the model's noisy-probability for a new run.
    rescreen : bool
        Screen again even if the project has a run (e.g. after adopting a retrained model).
    device : {"auto", "cpu", "cuda"}
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
    from ..holography.retrieval import retrieve_fields
    from ..metadata import MeasurementMetadata
    from ..screening.network import screen_fields
    from ..store.folders import load_measurement
    from ..store.results import read_result, update_result, write_result

    timings: dict[str, float] = {}
    rec = project.get_measurement(measurement_id)
    report(progress, 0.0, f"{rec.name}: loading the screening model")
    model, note = load_screening_model(model, device)
    check_cancel(cancel)
    meta = MeasurementMetadata.from_json(rec.metadata_json) if rec.metadata_json else None
    path = Path(project.result_path(measurement_id))
    fields = illum = unwrapped = None
    t = time.perf_counter()
    if path.exists():
        try:
            res = read_result(path, groups=["fields"])
            fields, illum = res.fields, res.illumination_per_um
        except (ValueError, OSError, KeyError) as exc:
            log.warning("result file %s unreadable, fields are retrieved again: %s", path, exc)
    new_fields = fields is None
    if new_fields:
        report(progress, 0.05, f"{rec.name}: reading the holograms")
        m = load_measurement(rec.path)
        meta = m.metadata
        check_cancel(cancel)
        r = retrieve_fields(m.holograms, m.backgrounds, meta, unwrap=model is not None, device=device,
                            progress=sub_progress(progress, 0.1, 0.75, "retrieving fields: "), cancel=cancel)
        fields, illum, unwrapped = r.field, r.illumination_per_um, r.unwrapped_phase
    if meta is None:
        raise ValueError(f"{rec.name}: the project holds no metadata for this measurement")
    timings["fields"] = time.perf_counter() - t
    check_cancel(cancel)

    t = time.perf_counter()
    db = project.screening(measurement_id)
    new_run = db["run"] == 0 or rescreen
    if new_run:
        report(progress, 0.8, f"{rec.name}: screening {len(fields)} fields")
        res = screen_fields(fields, illum, meta, model=model, method="model" if model is not None else "rule",
                            threshold=threshold, unwrapped_phase=unwrapped, device=device,
                            progress=sub_progress(progress, 0.8, 0.92), cancel=cancel)
        project.add_screening(measurement_id, res.decision, score=res.score, rule_peak=res.rule_peak,
                              source=res.source, model_name=res.model_name, model_version=res.model_version,
                              threshold=res.rule_threshold if model is None else res.threshold)
        db = project.screening(measurement_id)
    timings["screen"] = time.perf_counter() - t
    score = np.asarray(db["score"], np.float32)
    use_rule = bool(np.all(np.asarray(db["auto_source"]) == SOURCE_RULE)) or not np.isfinite(score).any()
    decision, source = project.decisions(measurement_id)
    model_label = f"{db['model_name']} {db['model_version']}".strip()

    if new_fields or new_run:
        report(progress, 0.94, f"{rec.name}: writing the result file")
        screening = {"score": score, "rule_peak": db["rule_peak"], "decision": decision, "source": source,
                     "model": model_label}
        if path.exists() and not new_fields:
            update_result(path, screening=screening)
        else:
            extra = {}
            if path.exists():
                try:  # keep a tomogram written earlier
                    old = read_result(path, groups=["tomogram", "birefringence"])
                    extra = {"tomogram": old.tomogram, "birefringence": old.birefringence}
                except (ValueError, OSError):
                    extra = {}
            write_result(path, measurement_json=rec.metadata_json or meta.to_json(), fields=fields,
                         illumination_per_um=illum, screening=screening, **extra)
    report(progress, 1.0, f"{rec.name}: {int(decision.sum())} of {len(decision)} fields clean")
    thr = db["threshold"]
    return ProjectScreening(
        measurement_id=int(measurement_id), name=rec.name, metadata=meta, fields=np.asarray(fields),
        illumination_per_um=np.asarray(illum), score=score, rule_peak=np.asarray(db["rule_peak"], np.float32),
        auto_decision=np.asarray(db["auto_decision"], np.uint8), auto_source=np.asarray(db["auto_source"], np.uint8),
        decision=np.asarray(decision, np.uint8), source=np.asarray(source, np.uint8), use_rule=use_rule,
        threshold=None if thr is None else float(thr), model_label=model_label, model=model,
        model_note=note if model is None else "", run=int(db["run"]), result_path=path, timings_s=timings)
