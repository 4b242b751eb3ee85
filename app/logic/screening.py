"""What the Screening review tab shows and the jobs that make it, without Qt.

* :class:`ScreeningData` — one measurement's fields and screening as the review shows them, made by
  the job :func:`prepare_screening` (:func:`engine.pipeline.project_screening.screen_project_measurement`
  plus the grid's phase thumbnails, :func:`phase_thumbnails`);
* :func:`compute_saliency` — a saliency map of one field (a job);
* :func:`compute_neighbour_difference` — how one field differs from the fields of nearest
  illumination, as an image (a job);
* :func:`compute_member_scores`, :func:`members_text` — for a model of several networks that must
  agree (the shipped 3.0.0), each network's own score of one field (a job) and the line that says so;
* :func:`project_model_file`, :func:`model_origin`, :func:`model_label_text` — which screening
  model a project uses (its adopted fine-tuned one or the shipped one) and how the tab says so;
* :func:`review_counts`, :func:`measurement_status` — how far the review of a measurement is;
* :func:`threshold_range`, :func:`field_details` — the threshold slider's range and a field's
  details line;
* :data:`QUALITY_LABELS`, :func:`quality_text` — the retrieval quality numbers
  (:mod:`engine.holography.quality`) as text.

Decisions (``docs/formats.md``): 1 = clean (used), 0 = noisy (excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from engine.pipeline.project_screening import CONSISTENCY_SUFFIX, SOURCE_MANUAL, screen_project_measurement
from engine.progress import check_cancel, report, sub_progress
from engine.screening.camera_alarm import camera_reason

__all__ = ["THUMB", "QUALITY_LABELS", "QUALITY_SHORT", "ScreeningData", "prepare_screening", "compute_saliency",
           "compute_neighbour_difference", "unlike_neighbours",
           "compute_member_scores", "members_text",
           "review_counts", "measurement_status", "phase_thumbnails", "quality_text", "format_quality",
           "fmt_metric", "threshold_range", "field_details", "project_model_file", "model_origin",
           "model_label_text"]

#: Edge (pixels) of the grid's phase thumbnails.
THUMB = 96


#: Names (short, for lists and tooltips) and units of the retrieval quality numbers of
#: :mod:`engine.holography.quality`; each is 0 for a perfect field and grows with trouble.
QUALITY_LABELS: dict[str, tuple[str, str]] = {
    "phase_noise_rad": ("phase noise", "rad"),
    "background_phase_std_rad": ("background phase std", "rad"),
    "residue_density": ("phase residues", "per px"),
    "unwrap_inconsistency": ("unwrapping inconsistency", "% of px"),
    "outside_pupil_energy": ("energy outside the pupil", "% of inside"),
    "hot_pixel_fraction": ("hot pixels", "% of px"),
    "row_jitter": ("row jitter", "% of mean"),
}


#: Short captions of the quality numbers, for grid cells sorted by one of them.
QUALITY_SHORT = {"phase_noise_rad": "noise", "background_phase_std_rad": "bg σ", "residue_density": "res",
                 "unwrap_inconsistency": "unw %", "outside_pupil_energy": "out %",
                 "hot_pixel_fraction": "hot %", "row_jitter": "rows %"}


def format_quality(key: str, v: float) -> str:
    """One quality number as the grid writes it ("–" when not finite; percentages for the ratios)."""
    if not np.isfinite(v):
        return "–"
    if key == "residue_density":
        return f"{v:.1e}" if v else "0"
    if key == "unwrap_inconsistency":
        return f"{100 * v:.2f}"
    if key in ("outside_pupil_energy", "hot_pixel_fraction", "row_jitter"):
        return f"{100 * v:.2g}"
    return f"{v:.3f}"


def quality_text(row: dict, sep: str = " · ") -> str:
    """One field's retrieval quality numbers (``{name: value}``) as text, in :data:`QUALITY_LABELS` order."""
    keys = [k for k in QUALITY_LABELS if k in row] + [k for k in row if k not in QUALITY_LABELS]
    parts = []
    for k in keys:
        name, unit = QUALITY_LABELS.get(k, (k, ""))
        value = format_quality(k, float(row[k]))
        unit = "" if value in ("–", "0") else f" {unit}"
        parts.append(f"{name} {value}{unit}")
    return sep.join(parts)


def phase_thumbnails(fields: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Phase thumbnails of complex fields, uint8 (N, size, size), for the grid.

    The phase is taken after removing each field's mean phase (``angle(U·e^{−i·arg ΣU})``,
    radians) and shown on one grey scale common to all fields of the call, symmetric about
    0 (−a..a with ``a`` the 99.8th percentile of |phase|, at least 0.5 rad), so fields can be
    compared and a weak sample stays visible. Fields are subsampled by block averaging of
    the complex field first (no aliasing of fringes into the thumbnail).

    Parameters
    ----------
    fields : ndarray (N, H, W) complex
    size : int
        Thumbnail edge in pixels.

    Returns
    -------
    ndarray (N, size', size') uint8, size' <= size
    """
    f = np.asarray(fields)
    n, h, w = f.shape
    step = max(1, int(np.ceil(max(h, w) / size)))
    hh, ww = (h // step) * step, (w // step) * step
    small = f[:, :hh, :ww].reshape(n, hh // step, step, ww // step, step).mean(axis=(2, 4))
    ref = np.exp(-1j * np.angle(small.sum(axis=(1, 2))))[:, None, None]
    phase = np.angle(small * ref)
    a = max(0.5, float(np.percentile(np.abs(phase), 99.8))) if phase.size else np.pi
    return np.clip((phase + a) / (2 * a) * 255.0, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- jobs
@dataclass
class ScreeningData:
    """One measurement's fields and screening, as the tab shows them.

    Attributes
    ----------
    measurement_id : int
    name : str
    fields : ndarray (N, H, W) complex64
        Sample/background ratio fields at the sample plane.
    pixel_size_um : float
    thumbnails : ndarray (N, t, t) uint8
        Phase thumbnails for the grid.
    score : ndarray (N,) float32
        Model noisy-probability (NaN when screened by rule).
    rule_peak : ndarray (N,) float32
        Rule metric, log10.
    auto_decision, auto_source : ndarray (N,) uint8
        The latest screening run's decisions (1 = clean) and sources (0 model, 1 rule).
    manual : list of (None, 0 or 1)
        Current manual decision per field.
    use_rule : bool
        The run was decided by the rule (its threshold applies to ``rule_peak``).
    threshold : float
        The run's threshold (on ``score``, or on ``rule_peak`` when ``use_rule``).
    rule_threshold : float
    model_label : str
        ``"<model name> <version>"`` of the run (shown).
    model_name, model_version : str
        The run's model name and version as the project records them (``"rule"``, ``"1"`` for the rule).
    model : ScreeningModel or None
        The network used (None: none installed).
    model_note : str
        Why the rule was used, when it was.
    run : int
        Screening run number in the project.
    quality : dict of str → ndarray (N,) float32
        Retrieval quality numbers per field ({} when none were recorded).
    sideband_description : str
        How the side band of these fields was chosen, one line.
    warnings : list of str
        Warnings of the retrieval (shown in a banner).
    crop_origin : (int, int)
        First row and column of the crop the network sees in every field (``ProjectScreening.crop_origin``);
        the saliency overlay sits there.
    consistency : ndarray (N, 5) float32 or None
        Each field against its nearest illuminations (:mod:`engine.screening.consistency`), when the
        model has a consistency stage.
    consistency_score : ndarray (N,) float32 or None
        That stage's noisy-probability (shown, not deciding).
    illumination_per_um : ndarray (N, 2) or None
        Illumination frequencies, cycles/µm (which fields are a field's neighbours).
    optics : dict or None
        ``wavelength_um``, ``na_objective``, ``medium_index`` of the measurement (for the "Against
        neighbours" view's tomographic prediction); None when unknown.
    """

    measurement_id: int
    name: str
    fields: np.ndarray
    pixel_size_um: float
    thumbnails: np.ndarray
    score: np.ndarray
    rule_peak: np.ndarray
    auto_decision: np.ndarray
    auto_source: np.ndarray
    manual: list
    use_rule: bool
    threshold: float
    rule_threshold: float
    model_label: str
    model_name: str = ""
    model_version: str = ""
    model: Any = None
    model_note: str = ""
    run: int = 0
    timings_s: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    sideband_description: str = ""
    warnings: list = field(default_factory=list)
    crop_origin: tuple = (0, 0)
    consistency: Optional[np.ndarray] = None
    consistency_score: Optional[np.ndarray] = None
    illumination_per_um: Optional[np.ndarray] = None
    optics: Optional[dict] = None


def prepare_screening(project: Any, measurement_id: int, *, model: Any = "default", threshold: float = 0.5,
                      rescreen: bool = False, device: str = "auto", sideband: Optional[str] = None,
                      progress: Optional[Callable[..., None]] = None, cancel=None) -> ScreeningData:
    """Fields and screening of one project measurement, with grid thumbnails (a job for the runner).

    :func:`engine.pipeline.project_screening.screen_project_measurement` does the work and
    documents the parameters; this adds the phase thumbnails the grid shows.
    """
    from engine.screening.rule import DEFAULT_RULE_THRESHOLD

    ps = screen_project_measurement(project, measurement_id, model=model, threshold=threshold, rescreen=rescreen,
                                    device=device, sideband=sideband, progress=sub_progress(progress, 0.0, 0.95),
                                    cancel=cancel)
    thr = ps.threshold
    if thr is None:
        thr = DEFAULT_RULE_THRESHOLD if ps.use_rule else threshold
    report(progress, 0.97, "thumbnails")
    thumbs = phase_thumbnails(ps.fields)
    run = project.screening(measurement_id)
    report(progress, 1.0, f"{ps.name}: {int(ps.decision.sum())} of {len(ps.decision)} fields clean")
    return ScreeningData(
        measurement_id=ps.measurement_id, name=ps.name, fields=ps.fields,
        pixel_size_um=float(ps.metadata.pixel_size_um), thumbnails=thumbs, score=ps.score,
        rule_peak=ps.rule_peak, auto_decision=ps.auto_decision, auto_source=ps.auto_source, manual=ps.manual,
        use_rule=ps.use_rule, threshold=float(thr), rule_threshold=float(DEFAULT_RULE_THRESHOLD),
        model_label=ps.model_label, model_name=str(run["model_name"] or ""),
        model_version=str(run["model_version"] or ""), model=ps.model, model_note=ps.model_note, run=ps.run,
        timings_s=ps.timings_s, quality=dict((ps.retrieval or {}).get("quality") or {}),
        sideband_description=ps.sideband_description, warnings=list(ps.warnings),
        crop_origin=ps.crop_origin, consistency=ps.consistency, consistency_score=ps.consistency_score,
        illumination_per_um=ps.illumination_per_um, optics=_optics(ps.metadata))


def _optics(metadata: Any) -> Optional[dict]:
    """The measurement's wavelength, NA and medium index (µm, -, -), or None if one is missing."""
    out = {k: getattr(metadata, k, None) for k in ("wavelength_um", "na_objective", "medium_index")}
    return None if any(v is None for v in out.values()) else {k: float(v) for k, v in out.items()}


def consistency_text(data: "ScreeningData", i: int) -> str:
    """The details line (rich text) of field ``i``'s consistency with its nearest illuminations; "" if not computed."""
    if data.consistency is None or data.consistency_score is None:
        return ""
    c = data.consistency[i]
    parts = " · ".join(f"{name} {v:.1f}" for name, v in
                       zip(("amplitude", "phase", "fine structure", "stripes", "spectral peak"), c))
    return ("<span style='color:#aeb4bd'>unlike its 8 nearest illuminations (robust z, 0 = like them): " + parts
            + f" · consistency stage <b>{data.consistency_score[i]:.2f}</b> "
            + ("(deciding)" if data.model_version.endswith(CONSISTENCY_SUFFIX) else
               "(not deciding: tick “Compare with nearest illuminations” to let it)") + "</span>")


def unlike_neighbours(data: "ScreeningData") -> Optional[np.ndarray]:
    """Each field's largest consistency z-score (N,) float32 — how unlike its nearest illuminations it is, for
    the grid's "most unlike its neighbours first" order; None when the features were not computed."""
    c = data.consistency
    if c is None:
        return None
    c = np.asarray(c, np.float32)
    known = np.isfinite(c).any(axis=1)
    return np.where(known, np.max(np.where(np.isfinite(c), c, -np.inf), axis=1), np.nan).astype(np.float32)


def _screen_crop(field_: np.ndarray, crop_origin: Optional[tuple]) -> np.ndarray:
    """The crop of one field (H, W) the screen took from ``crop_origin`` (y0, x0); the field itself if None."""
    from engine.screening.network import CROP_SIZE
    from engine.screening.sample_crop import crop_at

    f = np.asarray(field_)
    return f if crop_origin is None else crop_at(f, tuple(crop_origin), CROP_SIZE)


def compute_neighbour_difference(fields: np.ndarray, illumination_per_um: Optional[np.ndarray], index: int,
                                 progress: Optional[Callable[..., None]] = None, cancel=None, *,
                                 pixel_size_um: Optional[float] = None,
                                 optics: Optional[dict] = None) -> np.ndarray:
    """Field ``index`` against what the rest of the measurement predicts, (H, W) float32 (a job).

    With the illuminations, the pixel and the ``optics`` (wavelength, NA, medium index): the engine's
    :func:`engine.screening.tomographic.tomographic_difference` (the sample predicted from the fields whose
    Ewald caps pass next to this one's, so it cancels even where it changes with the angle); else
    :func:`engine.screening.consistency.neighbour_difference` (the pixel-wise median of the nearest
    illuminations). Both are relative to the field (0.1 = a tenth of it). ValueError (with the reason) for a
    measurement of too few fields."""
    from engine.screening.consistency import MIN_FIELDS, neighbour_difference
    from engine.screening.tomographic import tomographic_difference

    report(progress, 0.0, f"field {index} against its neighbours")
    check_cancel(cancel)
    if illumination_per_um is not None and optics is not None and pixel_size_um and len(fields) >= MIN_FIELDS:
        out = tomographic_difference(fields, float(pixel_size_um), optics["wavelength_um"], illumination_per_um,
                                     optics["na_objective"], optics["medium_index"], index)
    else:
        out = neighbour_difference(fields, illumination_per_um, index)
    report(progress, 1.0, "difference done")
    return out


def compute_saliency(model: Any, field_: np.ndarray, method: str, crop_origin: Optional[tuple] = None,
                     progress: Optional[Callable[..., None]] = None, cancel=None) -> np.ndarray:
    """Saliency map (crop, crop) float32 0..1 of one field (H, W) for ``method`` (a job), on the
    crop the screen took from ``crop_origin`` (y0, x0) (None: the centre crop)."""
    from engine.screening.saliency import saliency_maps

    check_cancel(cancel)
    report(progress, 0.0, f"saliency ({method})")
    out = saliency_maps(model, _screen_crop(field_, crop_origin)[None], methods=(method,))[method][0]
    report(progress, 1.0, "saliency done")
    return out


def compute_member_scores(model: Any, field_: np.ndarray, crop_origin: Optional[tuple] = None,
                          progress: Optional[Callable[..., None]] = None, cancel=None) -> list[tuple[str, float]]:
    """``[(member label, its own noisy-probability), ...]`` of one field (H, W) (a job), on the crop the
    screen took from ``crop_origin``; [] when the model is one network."""
    from engine.screening.network import preprocess

    check_cancel(cancel)
    labels = model.member_labels
    if not labels:
        return []
    x = preprocess(_screen_crop(field_, crop_origin)[None], input_kind=model.input_kind, crop=model.crop)
    p = model.member_probabilities(x)
    report(progress, 1.0, "member scores done")
    return [(label, float(v)) for label, v in zip(labels, p[0])]


def members_text(scores: list[tuple[str, float]]) -> str:
    """The details line (rich text) of :func:`compute_member_scores`: each network's score and which decides."""
    if not scores:
        return ""
    least = min(range(len(scores)), key=lambda k: scores[k][1])
    parts = [f"{'<b>' if k == least else ''}{label} {p:.2f}{'</b>' if k == least else ''}"
             for k, (label, p) in enumerate(scores)]
    return ("<span style='color:#aeb4bd'>networks (noisy only if all lean that way; the least decides, "
            f"its saliency is shown): {' · '.join(parts)}</span>")


def review_counts(project: Any, measurement_id: int) -> tuple[int, int, int]:
    """(fields, reviewed, overridden) of a measurement: reviewed = manual decisions, overridden =
    manual decisions that differ from the automatic one of the latest run."""
    decision, source = project.decisions(measurement_id)
    auto = project.screening(measurement_id)["auto_decision"]
    manual = source == SOURCE_MANUAL
    if len(auto) == len(decision):
        over = int(np.sum(manual & (decision != auto)))
    else:
        over = int(manual.sum())
    return len(decision), int(manual.sum()), over


def fmt_metric(v: Any) -> str:
    """A metric or score with 3 decimals ("–" when missing or not finite)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else f"{v:.3f}"


def measurement_status(project: Any, measurement_id: int) -> str:
    """``"12/72 reviewed · 2 overridden"``, or ``"72 fields · not screened yet"``."""
    n, reviewed, over = review_counts(project, measurement_id)
    if project.screening(measurement_id)["run"] > 0:
        return f"{reviewed}/{n} reviewed · {over} overridden"
    return f"{n} fields · not screened yet"


def threshold_range(data: ScreeningData) -> tuple[float, float]:
    """Range of the threshold slider: 0..1 for the model score; for the rule metric (log10) the
    whole numbers around the finite values and the run's threshold, half a decade of margin."""
    if not data.use_rule:
        return 0.0, 1.0
    r = data.rule_peak[np.isfinite(data.rule_peak)]
    lo = float(np.floor(min(r.min() if r.size else 0.0, data.threshold) - 0.5))
    hi = float(np.ceil(max(r.max() if r.size else 1.0, data.threshold) + 0.5))
    return lo, hi


def field_details(data: ScreeningData, i: int, *, decision: int, auto: int, manual: Optional[int],
                  threshold: float, quality: dict) -> str:
    """The details line (rich text) of field ``i``: its decision and who made it, model score, rule
    peak and what the rule says, the camera alarm's reason if its raw hologram raised it
    (:mod:`engine.screening.camera_alarm`), and its retrieval quality numbers.

    ``decision``, ``auto`` and ``manual`` are the field's final, automatic (at ``threshold``) and
    manual (None: none) decisions; ``quality`` its ``{name: value}`` quality numbers ({} if none).
    """
    word = ("<span style='color:#009E73'><b>C</b> clean</span>" if decision else
            "<span style='color:#D55E00'><b>N</b> noisy</span>")
    rule_says = "noisy" if np.isfinite(data.rule_peak[i]) and data.rule_peak[i] > data.rule_threshold else "clean"
    if manual is not None:
        src = "manual" + (" (differs from automatic)" if manual != auto else " (confirms automatic)")
    else:
        src = "rule" if data.use_rule else "model"
    model_part = ("model: none installed" if data.use_rule and not np.isfinite(data.score[i])
                  else f"model score <b>{fmt_metric(data.score[i])}</b>"
                  + ("" if data.use_rule else f" (noisy above {threshold:.2f})"))
    grey = "<br><span style='color:#aeb4bd'>"
    quality_part = (f"{grey}retrieval: {quality_text(quality)}</span>" if quality else
                    f"{grey}retrieval quality: not recorded for these fields</span>")
    alarm = camera_reason({k: np.array([v]) for k, v in quality.items()}, 1, 0)
    alarm_part = f"<br><span style='color:#D55E00'>{alarm}: noisy whatever the model says</span>" if alarm else ""
    return (f"<b>Field {i}</b> — {word} · decided by {src}<br>"
            f"{model_part} · rule peak <b>{fmt_metric(data.rule_peak[i])}</b> "
            f"(noisy above {data.rule_threshold:.2f}: rule says {rule_says}){alarm_part}{quality_part}")


# ---------------------------------------------------------------------- which model
def project_model_file(project: Any) -> Optional[Path]:
    """The project's adopted fine-tuned screening model (absolute path), or None (the shipped one).

    :attr:`engine.store.project.Project.screening_model`; None also for no project or a project
    object without settings.
    """
    if project is None:
        return None
    try:
        return project.screening_model
    except Exception:  # noqa: BLE001 - a project object without settings: the shipped model
        return None


def _model_path(model: Any) -> Optional[Path]:
    """The file a model (a loaded ScreeningModel, a path, or a name) comes from, when known."""
    if isinstance(model, Path):
        return model
    if isinstance(model, str):
        return Path(model) if model.endswith(".safetensors") else None
    card = getattr(model, "card", None) or {}
    return Path(card["path"]) if card.get("path") else None


def model_origin(project: Any, model: Any) -> str:
    """``"project"`` when ``model`` is a fine-tuned model in the project's ``models/`` folder, else ``"shipped"``."""
    path = _model_path(model)
    if project is None or path is None:
        return "shipped"
    try:
        inside = path.resolve().parent == (Path(project.path) / "models").resolve()
    except (OSError, AttributeError):
        return "shipped"
    return "project" if inside else "shipped"


def model_label_text(project: Any, model: Any) -> str:
    """The Screening tab's model line (rich text) for ``model`` (a name or path before loading, a
    loaded model after; None is handled by the tab: no network installed)."""
    origin = model_origin(project, model)
    path = _model_path(model)
    if isinstance(model, (str, Path)):
        if origin == "project" and path is not None:
            return (f"<b>Model:</b> this project's fine-tuned model (models/{path.name}), "
                    "loaded with the first measurement")
        return "<b>Model:</b> the shipped model, loaded with the first measurement"
    label = getattr(model, "label", str(model))
    if origin == "project":
        return f"<b>Model:</b> {label} — this project's fine-tuned model"
    return f"<b>Model:</b> {label} — shipped"
