"""Which birefringence route suits a measurement: the ``auto`` choice of ``batch --birefringence``.

Three routes reconstruct n_e, n_o and the director of a polarisation-resolved measurement
(``ProcessOptions.birefringence_method``, ``odt-studio batch --birefringence-method``):

* ``"dtt"`` — first-order dielectric tensor tomography (:func:`.tensor_tomography.reconstruct_tensor`);
* ``"dtt-refined"`` — DTT plus simulate-and-correct steps with the vectorial multi-slice
  (:func:`.refine.refine_tensor`), 7–20× the time of DTT (measured, below);
* ``"learned"`` — the learned generator for n_e and n_o, the director from DTT
  (:func:`.generator.reconstruct_tensor_learned`), valid only inside its model card's domain.

``"auto"`` (the default) asks :func:`choose_route`, from facts about the measurement only: its
setup (λ, n_m, NA, number of illuminations, image size; ``measurement.json``) and two numbers
measured on the Jones fields of its most nearly normal illumination before the reconstruction
(:func:`measure_sample`; well under a second at 256²): the peak phase delay of the sample and the radius of
its largest object. The choice never depends on the speed of the computer, so a result is
reproducible on another machine.

The rule and the measurements behind it
---------------------------------------
1. **learned** when the measurement lies inside the generator's domain (:func:`generator_domain`,
   from its card ``resources/models/birefringence-generator.json``): λ, n_m and NA within the
   card's tolerance of its training setup (2 %, as :func:`.generator.reconstruct_tensor_learned`
   checks), the number of illuminations it was trained with, and the largest object no larger than
   its training radii (1.0–2.4 µm for the shipped card). Inside that domain the network beats both
   physics routes by far. Measured on 12 droplets of the training distribution with seeds no
   training step used (own Jones multi-slice simulator — the one it was trained on, so this is
   not an independent test —, 25 illuminations of 32² at 0.2 µm, mean over droplets of the mean
   |error| inside the droplet; ``bench_birefringence_routes.py --in-domain 12``, one thread):
   |n_e error| DTT 0.106, refined 0.095, learned 0.018; |n_o error| 0.018, 0.024, 0.010; |Δn
   error| 67 %, 57 %, 14 %. Outside the domain it is never chosen (the radius is unknown when no
   fields were measured: then neither). The object radius is measured to ±8 % (1 s.d.; mean
   ratio 1.02 on 16 such droplets).
2. **dtt-refined** when the sample is *strong*: peak phase delay ≥ :data:`STRONG_PHASE_RAD`
   (3 rad, the bound above which first-order scalar tomography also fails, ``engine.tomography.
   multislice``), up to :data:`REFINED_MAX_WORK` illuminations × pixels (25 of 256²). On held-out
   droplets simulated by dtmm (``tests/benchmarks/bench_birefringence_dtmm.py``; strong: n_m
   1.45, r 3.2–3.8 µm, λ 0.633 µm, peak phase 6.1–7.2 rad by :func:`measure_sample` on the dtmm
   fields of seeds 0–5) first-order DTT finds Δn 35 % low, refined 8.3 % (every droplet within
   20 %), |n_e error| 0.0087 → 0.0058, background |Δn| 0.0045 → 0.0001 (its object support),
   the director unchanged (13.4°); in the seed's setting (λ 0.532 µm, n_m 1.45, r 2.7–3.2 µm, peak phase 6.1–7.1 rad)
   Δn 38 % → 13 %. That error is too large to trade for speed.
3. **dtt** for *weak* samples (peak phase < 3 rad, e.g. the dtmm droplets in n_m 1.53: 1.0–1.3
   rad, so the 3 rad bound sits with a wide margin between the kinds). There the director is
   the same (11.9° DTT, 12.0° refined) and refined only halves the Δn error (39 % → 21 %, still
   outside 20 %; |n_e| 0.0104 → 0.0070, |n_o| 0.0025 → 0.0005) at 7–20× the time: measured 325 s
   vs ~45 s at 128² (dtmm bench) and 1151 s vs 57 s for 25 illuminations of 256² onto 128 × 256²
   voxels (``tests/benchmarks/bench_birefringence_routes.py``, 2-core CPU at load ~5.5).
4. **dtt** for strong measurements larger than :data:`REFINED_MAX_WORK` (refined would take
   tens of minutes on such a CPU), with a reason saying so; the user can ask for it explicitly.

When no fields were measured (``facts=None``) the contrast and the radius are unknown: **dtt**,
and the reason says so.

References
----------
.. [1] S. Shin et al., Nat. Mater. 21, 317 (2022) (DTT); J. Kim et al., Sci. Rep. 14 (2024)
   (learned generator).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

__all__ = [
    "ROUTES",
    "AUTO",
    "ROUTE_SUMMARIES",
    "STRONG_PHASE_RAD",
    "REFINED_MAX_WORK",
    "SETUP_TOLERANCE",
    "ROUTE_ATTR",
    "SampleFacts",
    "RouteChoice",
    "generator_domain",
    "measure_sample",
    "axial_voxels",
    "AXIAL_MARGIN_UM",
    "choose_route",
]

log = logging.getLogger(__name__)

#: the routes ``auto`` chooses among (``ProcessOptions.birefringence_method`` also takes ``auto``)
ROUTES = ("dtt", "dtt-refined", "learned")
AUTO = "auto"
#: file attribute of a result file recording the route choice (JSON, docs/formats.md §2)
ROUTE_ATTR = "birefringence_route"
#: peak phase delay (rad) from which a sample counts as strong (first-order methods fail)
STRONG_PHASE_RAD = 3.0
#: illuminations × pixels up to which ``auto`` refines strong samples (25 illuminations of 256²)
REFINED_MAX_WORK = 25 * 256 * 256
#: relative tolerance on λ, n_m and NA against the generator's training setup (as the generator checks)
SETUP_TOLERANCE = 0.02
#: one line per route for a person (the GUI's route control and the CLI help)
ROUTE_SUMMARIES = {
    AUTO: "Chosen per measurement: learned inside the generator's domain, else DTT refined for strong samples "
          "(phase ≥ 3 rad, up to 25 illuminations of 256²), else DTT; the choice and why are recorded.",
    "dtt": "First-order dielectric tensor tomography: the physics route, about a minute for 25 illuminations of "
           "256²; Δn ~35–40 % low on droplets.",
    "dtt-refined": "DTT corrected by 3 simulate-and-correct steps with the vectorial multi-slice: Δn within "
                   "~10–20 % on strong droplets, at 7–20× the time of DTT (minutes to tens of minutes).",
    "learned": "Learned generator for n_e and n_o (director from DTT): fast and best inside its training domain "
               "(λ 0.532 µm, n_m 1.46, NA 1.2, 25 illuminations, droplets r ≤ 2.4 µm); refused outside.",
}


@dataclass(frozen=True)
class SampleFacts:
    """What :func:`measure_sample` measured on the fields.

    Attributes
    ----------
    phase_delay_rad : float
        Peak (3×3 median-filtered) |mean eigenphase| of the Jones matrix of the most nearly normal
        illumination, ``|arg det J| / 2`` unwrapped, rad.
    radius_um : float
        Equivalent radius of the largest connected region whose phase exceeds a quarter of the
        peak, corrected to a sphere's radius (÷ 0.968), µm; 0 when the peak is below 0.3 rad.
    """

    phase_delay_rad: float
    radius_um: float


@dataclass(frozen=True)
class RouteChoice:
    """A birefringence route and why.

    Attributes
    ----------
    method : {"dtt", "dtt-refined", "learned"}
        The route that runs.
    reason : str
        One sentence for a person (logged, recorded in the result file).
    requested : str
        What was asked (``"auto"`` or the explicit route).
    facts : dict
        The measured facts the choice used (``phase_delay_rad``, ``radius_um``, ``work``).
    """

    method: str
    reason: str
    requested: str = AUTO
    facts: dict = field(default_factory=dict)

    def record(self) -> dict:
        """JSON-ready dict (the ``birefringence_route`` attribute of a result file)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.record(), sort_keys=True)


def _default_card() -> Optional[dict]:
    from ..models import MODELS_DIR
    from .generator import DEFAULT_GENERATOR_NAME

    path = Path(MODELS_DIR) / f"{DEFAULT_GENERATOR_NAME}.json"
    weights = path.with_suffix(".safetensors")
    if not (path.is_file() and weights.is_file()):
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("unreadable generator card %s: %s", path, exc)
        return None


def _radius_range(card: dict) -> Optional[tuple[float, float]]:
    """Training radii from the card's ``training.data`` text (``"radius 1.0-2.4 um"``), or None."""
    text = str(card.get("training", {}).get("data", ""))
    m = re.search(r"radius\s+([0-9.]+)\s*[-–]\s*([0-9.]+)\s*(?:um|µm)", text)
    return (float(m.group(1)), float(m.group(2))) if m else None


def generator_domain(card: Optional[dict]) -> Optional[dict]:
    """The measurement domain of a generator card: ``{key: (lo, hi)}`` or None (no card).

    Keys: ``wavelength_um``, ``medium_index``, ``na_objective``, ``n_illuminations``,
    ``radius_um`` (missing when the card does not say). A card's own ``domain`` entry (ranges
    ``[lo, hi]`` under these keys) is used as it is; otherwise the domain is the training setup
    ``input.setup`` ± :data:`SETUP_TOLERANCE` (the exact number of illuminations) and the training
    radii parsed from ``training.data``.
    """
    if not card:
        return None
    if isinstance(card.get("domain"), dict):
        return {k: (float(v[0]), float(v[1])) for k, v in card["domain"].items()
                if isinstance(v, (list, tuple)) and len(v) == 2}
    setup = card.get("input", {}).get("setup", {})
    out: dict = {}
    for key in ("wavelength_um", "medium_index", "na_objective"):
        if setup.get(key) is not None:
            v = float(setup[key])
            out[key] = (v * (1 - SETUP_TOLERANCE), v * (1 + SETUP_TOLERANCE))
    if setup.get("n_illuminations") is not None:
        out["n_illuminations"] = (float(setup["n_illuminations"]),) * 2
    radii = _radius_range(card)
    if radii is not None:
        out["radius_um"] = radii
    return out


#: axial margin (µm) on each side of the largest object in :func:`axial_voxels`
AXIAL_MARGIN_UM = 1.5


def axial_voxels(facts: Optional[SampleFacts], pixel_size_um: float, image_shape: Sequence[int]) -> Optional[int]:
    """Axial voxel count for DTT: the largest object's diameter plus :data:`AXIAL_MARGIN_UM` each side.

    DTT maps each illumination's Jones–Rytov spectrum to its nearest Fourier voxel, with no
    density compensation: each of the few (25) caps fills one voxel in k_z, so a finer k_z grid
    (a deeper volume) leaves a larger share of the measured band empty and the contrast comes out
    diluted. Measured on a strong dtmm droplet (seed 2, 128² of 0.125 µm): |n_e error| 0.013 with
    62–76 axial voxels (7.8–9.5 µm, about the droplet's 7 µm plus margins), 0.015 with 96 and
    0.026 with the default 128 (16 µm); the benchmark's Jones-field tables use this same rule
    with the true radius. Here the radius is the one :func:`measure_sample` measured (1.02× the
    true one on average, ±8 %).

    Parameters
    ----------
    facts : SampleFacts or None
        Measured sample; None or a radius of 0 (nothing found) gives None.
    pixel_size_um : float
        Lateral pixel (= axial voxel) size, µm.
    image_shape : (H, W)
        Field size in pixels.

    Returns
    -------
    int or None
        Even voxel count, at least 16 and at most DTT's default ``min(H, W) // 2`` (it only ever
        tightens the volume), or None to keep DTT's default.
    """
    if facts is None or facts.radius_um <= 0:
        return None
    default = max(2, (min(int(image_shape[-2]), int(image_shape[-1])) // 2) // 2 * 2)
    wanted = int(math.ceil((2 * facts.radius_um + 2 * AXIAL_MARGIN_UM) / pixel_size_um / 2) * 2)
    return int(min(default, max(16, wanted)))


def measure_sample(jones: Any) -> SampleFacts:
    """Peak phase delay and largest-object radius from the most nearly normal illumination.

    Parameters
    ----------
    jones : JonesFields
        ``field`` (N, 2, 2, H, W) background-normalised Jones fields, ``illumination_per_um``
        (N, 2) cycles/µm, ``pixel_size_um`` µm.

    Returns
    -------
    SampleFacts
    """
    from scipy import ndimage

    from ..holography.unwrap import unwrap_phase

    illum = np.asarray(jones.illumination_per_um, dtype=np.float64).reshape(-1, 2)
    i = int(np.argmin(np.hypot(illum[:, 0], illum[:, 1])))
    j = np.asarray(jones.field[i], dtype=np.complex64)
    det = j[0, 0] * j[1, 1] - j[0, 1] * j[1, 0]
    phase = np.abs(np.asarray(unwrap_phase(det, "herraez", device="cpu"), dtype=np.float32)) / 2
    smooth = ndimage.median_filter(phase, size=3)
    peak = float(smooth.max())
    if peak < 0.3:
        return SampleFacts(phase_delay_rad=peak, radius_um=0.0)
    labels, n = ndimage.label(smooth > 0.25 * peak)
    area = float(np.bincount(labels.ravel())[1:].max()) if n else 0.0
    radius = math.sqrt(area / math.pi) * float(jones.pixel_size_um) / math.sqrt(1 - 0.25 ** 2)
    return SampleFacts(phase_delay_rad=peak, radius_um=radius)


_DOMAIN_LABELS = {"wavelength_um": ("λ", " µm"), "medium_index": ("n_m", ""), "na_objective": ("NA", ""),
                  "n_illuminations": ("illuminations", ""), "radius_um": ("largest object r", " µm")}


def _outside(domain: dict, values: dict) -> list[str]:
    """What of ``values`` lies outside ``domain``, for a person (e.g. ``"illuminations 9, trained 25"``)."""
    out = []
    for key, v in values.items():
        if key not in domain:
            continue
        lo, hi = domain[key]
        if v is None or not (lo - 1e-9 <= float(v) <= hi + 1e-9):
            label, unit = _DOMAIN_LABELS.get(key, (key, ""))
            have = "unknown" if v is None else f"{float(v):.3g}{unit}"
            trained = f"{lo:.3g}{unit}" if lo == hi else f"{lo:.3g}–{hi:.3g}{unit}"
            out.append(f"{label} {have}, trained {trained}")
    return out


def _learned_check(metadata: Any, n_illuminations: int, facts: Optional[SampleFacts],
                   card: Optional[dict]) -> tuple[bool, str]:
    """(inside the generator's domain, why not)."""
    domain = generator_domain(card)
    if domain is None:
        return False, "the learned generator is not installed"
    if "radius_um" not in domain:
        return False, "the generator's card states no droplet radii"
    values = {"wavelength_um": metadata.wavelength_um, "medium_index": metadata.medium_index,
              "na_objective": metadata.na_objective, "n_illuminations": n_illuminations,
              "radius_um": None if facts is None else facts.radius_um}
    bad = _outside(domain, values)
    if facts is not None and facts.radius_um <= 0:
        bad.append("no object found in the fields")
    return (not bad), "; ".join(bad)


def choose_route(metadata: Any, image_shape: Sequence[int], n_illuminations: int, *,
                 facts: Optional[SampleFacts] = None, card: Any = "default",
                 requested: str = AUTO) -> RouteChoice:
    """The birefringence route for a measurement (the rule of the module docstring).

    Parameters
    ----------
    metadata : MeasurementMetadata
        λ (µm), n_m, objective NA.
    image_shape : (H, W)
        Field size in pixels.
    n_illuminations : int
        Illuminations that enter the reconstruction (after screening).
    facts : SampleFacts, optional
        :func:`measure_sample` of the fields; None when not measured (contrast and radius unknown).
    card : dict, None or "default"
        The learned generator's card (``"default"``: the shipped one, None: no generator).
    requested : str
        ``"auto"``, or an explicit route, returned as it is (with the reason "asked for").

    Returns
    -------
    RouteChoice
    """
    h, w = (int(s) for s in tuple(image_shape)[-2:])
    work = int(n_illuminations) * h * w
    recorded = {"work": work}
    if facts is not None:
        recorded.update(phase_delay_rad=round(facts.phase_delay_rad, 3), radius_um=round(facts.radius_um, 3))
    if requested != AUTO:
        if requested not in ROUTES:
            raise ValueError(f"birefringence route must be 'auto' or one of {ROUTES}, got {requested!r}")
        return RouteChoice(requested, "asked for", requested, recorded)
    card = _default_card() if isinstance(card, str) and card == "default" else card
    inside, why_not = _learned_check(metadata, n_illuminations, facts, card)
    if inside:
        radius = recorded.get("radius_um", 0.0)
        return RouteChoice("learned", f"inside the learned generator's domain (largest object r {radius:.1f} µm, "
                                      f"{n_illuminations} illuminations)", AUTO, recorded)
    size = f"{n_illuminations} illuminations of {h}×{w}"
    tail = f"; not learned: {why_not}"
    if facts is None or facts.phase_delay_rad < STRONG_PHASE_RAD:
        contrast = ("contrast not measured" if facts is None
                    else f"weak sample (peak phase {facts.phase_delay_rad:.1f} rad)")
        return RouteChoice("dtt", f"{contrast}, {size}: first-order DTT (the director as good as refined; Δn "
                                  f"~40 % low, dtt-refined halves that at 7–20× the time){tail}", AUTO, recorded)
    contrast = f"strong sample (peak phase {facts.phase_delay_rad:.1f} rad)"
    if work <= REFINED_MAX_WORK:
        return RouteChoice("dtt-refined", f"{contrast}, {size}: DTT refined (first-order DTT finds Δn 35–40 % "
                                          f"low){tail}", AUTO, recorded)
    return RouteChoice("dtt", f"{contrast}, {size}: too large to refine by default (7–20× the DTT time), "
                              f"first-order DTT (Δn ~35–40 % low; ask for dtt-refined to correct it){tail}",
                       AUTO, recorded)
