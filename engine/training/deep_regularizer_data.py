"""Training pairs of the learned regulariser across optical setups (generator ``deepreg-pairs/2``).

Run as ``python -m engine.training.deep_regularizer_data --help``.

Each sample draws its own microscope from wide ranges (:func:`draw_setup`): objective NA
1.0–1.4 (never above 0.97·n_m), condenser NA 0.8–0.95 of it, 25–100 illuminations on a Fermat
spiral or on concentric rings (:func:`engine.simulate.holograms.illumination_pattern`),
voxel 0.08–0.15 µm (below 0.95 of the objective's Nyquist λ/(2 NA)), medium index 1.33–1.52,
vacuum wavelength 0.45–0.65 µm and the field noise of a real camera (:func:`camera_field_noise`).
Samples (:data:`KINDS_V2`): bacteria (rods and cocci), coccus clusters, suspension and adherent
cells, and first-order beads (largest phase delay 2π·Δn·2r/λ below :data:`FIRST_ORDER_MAX_RAD`);
stronger beads (``beads-strong``, 3–8 rad) are simulated for the held-out report only.

Indices follow the medium: every phantom is drawn at n_m = 1.337 and shifted by
``n_m − 1.337`` (Δn kept, times a factor 0.7–1.3), so that a sample is never below its medium,
where TV's non-negativity would be wrong.

Split (by seed, as :func:`engine.training.deep_regularizer.split_of`): seed % 5 == 4 is
**held out** and its setup is drawn from the held-out bands (:data:`HELD_OUT_NA`,
:data:`HELD_OUT_NM`) that training and validation never see; seed % 5 == 3 is validation
(checkpoint choice) and the rest training, both outside those bands.

The physics and the target are those of ``deepreg-pairs/1``: multi-slice propagation
(:func:`engine.simulate.propagate_scalar`), plain Rytov tomogram (no constraint) as the input,
:func:`engine.tomography.regularize_tv` (τ = 5e-4, 30 × 20 iterations, non-negativity) as
the target. Conventions (``docs/formats.md``): µm, cycles/µm, volumes (z, y, x).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from .deep_regularizer import TrainingPair, save_pair, split_of

__all__ = ["GENERATOR_V2", "KINDS_V2", "TRAIN_KINDS_V2", "FIRST_ORDER_MAX_RAD", "HELD_OUT_NA", "HELD_OUT_NM",
           "RANGES", "DEFAULT_CACHE_V2", "camera_field_noise", "draw_setup", "in_held_out_band",
           "simulate_pair_v2", "generate_v2", "domain_of_ranges", "ssim_gaussian", "bead_fwhm",
           "score_against_tv", "report_kind", "summarise_scores", "evaluate_against_tv", "max_phase_delay", "main"]

GENERATOR_V2 = "deepreg-pairs/2"
DEFAULT_CACHE_V2 = Path("/tmp/odt-deepreg-cache-v2")
KINDS_V2 = ("bacteria", "clusters", "cells-suspension", "cells-adherent", "beads", "beads-strong")
TRAIN_KINDS_V2 = KINDS_V2[:-1]
FIRST_ORDER_MAX_RAD = 3.0
#: ranges drawn (uniformly unless stated); NA ≤ 0.97·n_m, voxel ≤ 0.95·λ/(2 NA)
RANGES: dict[str, Any] = {"na_objective": (1.0, 1.4), "condenser_fraction": (0.8, 0.95), "n_illuminations": (25, 100),
          "patterns": ("spiral", "ring"), "voxel_um": (0.08, 0.15), "medium_index": (1.33, 1.52),
          "wavelength_um": (0.45, 0.65), "field_noise": (0.006, 0.04)}
#: setups with an objective NA in this band, or a medium index in the next, are held out
HELD_OUT_NA = (1.15, 1.22)
HELD_OUT_NM = (1.40, 1.44)
PHANTOM_NM = 1.337


def camera_field_noise(rng: np.random.Generator) -> float:
    """RMS complex noise of a retrieved, background-normalised field (≈ phase noise, rad).

    Shot-noise-limited off-axis holography with reference and object of equal strength: a pixel
    holds ``N`` photo-electrons (full well 3,000–30,000 e⁻ filled to 15–70 %), the cross term is
    ``N/2``, the side-band filter keeps a fraction ``f`` (1/16–1/4) of the white shot noise, so the
    sample field's noise is ``sqrt(4 f / N)``; dividing by the background field (same noise)
    multiplies it by √2. Read noise (2–8 e⁻) adds ``4 f σ_r² / N²``. The result lies in about
    0.006–0.04 (:data:`RANGES`), what the project's retrieval reports on its simulated cameras.
    """
    full_well = rng.uniform(3000.0, 30000.0)
    n_e = full_well * rng.uniform(0.15, 0.7)
    f = rng.uniform(1 / 16, 1 / 3)
    read = rng.uniform(2.0, 8.0)
    var = 4 * f / n_e + 4 * f * read ** 2 / n_e ** 2
    lo, hi = RANGES["field_noise"]
    return float(np.clip(math.sqrt(2 * var), lo, hi))


def in_held_out_band(na_objective: float, medium_index: float) -> bool:
    """True for a setup inside a held-out band (objective NA or medium index)."""
    return HELD_OUT_NA[0] <= na_objective <= HELD_OUT_NA[1] or HELD_OUT_NM[0] <= medium_index <= HELD_OUT_NM[1]


def _draw_optics(rng: np.random.Generator) -> tuple[float, float]:
    nm = float(rng.uniform(*RANGES["medium_index"]))
    na = float(min(rng.uniform(*RANGES["na_objective"]), 0.97 * nm))
    return na, nm


def draw_setup(seed: int) -> dict:
    """The optical setup of sample ``seed``: held-out bands for the test split, outside them otherwise.

    Returns
    -------
    dict
        ``name``, ``wavelength_um``, ``medium_index``, ``na_objective``, ``na_condenser``,
        ``n_angles``, ``pattern``, ``voxel_um``, ``field_noise`` and ``held_out_band`` (bool).
    """
    rng = np.random.default_rng([seed, 104729])
    test = split_of(seed) == "test"
    for _ in range(1000):
        na, nm = _draw_optics(rng)
        if test:  # one quantity inside its band, the other drawn freely
            if rng.random() < 0.5:
                na = float(min(rng.uniform(*HELD_OUT_NA), 0.97 * nm))
            else:
                nm = float(rng.uniform(*HELD_OUT_NM))
                na = float(min(na, 0.97 * nm))
        if in_held_out_band(na, nm) == test:
            break
    lam = float(rng.uniform(*RANGES["wavelength_um"]))
    vox = float(min(rng.uniform(*RANGES["voxel_um"]), 0.95 * lam / (2 * na)))
    n_ang = int(rng.integers(RANGES["n_illuminations"][0], RANGES["n_illuminations"][1] + 1))
    pattern = str(rng.choice(RANGES["patterns"]))
    band = "NA" if HELD_OUT_NA[0] <= na <= HELD_OUT_NA[1] else "n_m" if HELD_OUT_NM[0] <= nm <= HELD_OUT_NM[1] else ""
    return {"name": f"na{na:.2f}-nm{nm:.3f}-{pattern}{n_ang}", "wavelength_um": lam, "medium_index": nm,
            "na_objective": na, "na_condenser": float(na * rng.uniform(*RANGES["condenser_fraction"])),
            "n_angles": n_ang, "pattern": pattern, "voxel_um": vox, "field_noise": camera_field_noise(rng),
            "held_out_band": band}


def _beads(shape, vox: float, lam: float, rng: np.random.Generator, strong: bool):
    """1–3 beads of Δn 0.01–0.12 whose largest phase delay is below 3 rad (or 3–8 rad if ``strong``)."""
    from ..simulate.phantoms import make_bead

    lo, hi = (FIRST_ORDER_MAX_RAD, 8.0) if strong else (0.5, FIRST_ORDER_MAX_RAD)
    half = 0.5 * min(shape) * vox
    dn = float(rng.uniform(0.01, 0.12))
    phi = float(rng.uniform(lo, hi))
    r = phi * lam / (4 * math.pi * dn)
    r_max = 0.3 * half
    if r > r_max:  # too big for the volume: raise Δn to keep the phase delay
        r, dn = r_max, phi * lam / (4 * math.pi * r_max)
    r = max(r, 2.5 * vox)
    count = 1 if strong else int(rng.integers(1, 4))
    return make_bead(shape, (vox,) * 3, PHANTOM_NM, rng, index=PHANTOM_NM + dn, material="generic",
                     radius_um=r, count=count)


def _phantom(kind: str, shape, vox: float, lam: float, rng: np.random.Generator):
    from ..simulate.phantoms import make_phantom

    if kind in ("beads", "beads-strong"):
        return _beads(shape, vox, lam, rng, kind == "beads-strong")
    if kind == "clusters":
        return make_phantom("bacteria", shape, (vox,) * 3, PHANTOM_NM, rng, morphology="cluster",
                            count=int(rng.integers(1, 3)))
    if kind == "bacteria":
        return make_phantom("bacteria", shape, (vox,) * 3, PHANTOM_NM, rng,
                            morphology=str(rng.choice(["rod", "rod", "coccus"])))
    return make_phantom("cells", shape, (vox,) * 3, PHANTOM_NM, rng, morphology=kind.split("-")[1])


def max_phase_delay(objects: Sequence[dict], medium_index: float, wavelength_um: float) -> float:
    """Largest 2π·(n − n_m)·2r/λ over the spherical objects (beads), rad; 0 when none."""
    return float(max((2 * math.pi * (o["index"] - medium_index) * 2 * o["radius_um"] / wavelength_um
                      for o in objects if "index" in o and "radius_um" in o), default=0.0))


def simulate_pair_v2(kind: str, seed: int, *, shape: Sequence[int] = (48, 48, 48),
                     setup: Optional[dict] = None, device: str = "cpu") -> TrainingPair:
    """One (raw Rytov → TV) pair of ``kind`` under the setup of ``seed`` (:func:`draw_setup`).

    Returns a :class:`~engine.training.deep_regularizer.TrainingPair` whose ``setup`` is the
    setup's name and whose ``setup_params`` holds the setup (and the bead phase delay).
    """
    from ..simulate.beam_propagation import propagate_scalar, snap_illuminations
    from ..simulate.holograms import illumination_pattern
    from ..tomography.fourier_mapping import map_fields_to_fourier, scattering_potential_to_ri
    from ..tomography.reconstruct import first_order_fields
    from ..tomography.tv import DEFAULT_TV_WEIGHT, regularize_tv

    if kind not in KINDS_V2:
        raise ValueError(f"unknown kind {kind!r}: one of {KINDS_V2}")
    s = dict(setup or draw_setup(seed))
    rng = np.random.default_rng([seed, KINDS_V2.index(kind), 15485863])
    z, y, x = (int(v) for v in shape)
    shape = (z, y, x)
    vox, lam, nm = s["voxel_um"], s["wavelength_um"], s["medium_index"]
    ph = _phantom(kind, shape, vox, lam, rng)
    contrast = float(rng.uniform(0.7, 1.3)) if not kind.startswith("beads") else 1.0
    ph.ri = (nm + contrast * (ph.ri - PHANTOM_NM)).astype(np.float32)
    ph.medium_index = nm
    objects = [dict(o) for o in ph.params.get("objects", [])]
    for o in objects:
        if "index" in o:
            o["index"] = nm + contrast * (o["index"] - PHANTOM_NM)
    ill = illumination_pattern(s["n_angles"], s["na_condenser"], lam, pattern=s["pattern"])
    ill = snap_illuminations(ill, (y, x), (vox, vox))
    fields = propagate_scalar(ph, lam, ill, s["na_objective"], device=device)
    noise = rng.standard_normal(fields.shape + (2,)).astype(np.float32) * np.float32(s["field_noise"] / math.sqrt(2))
    fields = fields + (noise[..., 0] + 1j * noise[..., 1]).astype(np.complex64)
    psi = first_order_fields(fields, "rytov", device=device)
    data = map_fields_to_fourier(psi, ill, wavelength_um=lam, medium_index=nm, na=s["na_objective"],
                                 pixel_size_um=vox, shape_z=shape[0], device=device)
    raw = scattering_potential_to_ri(torch.fft.ifftn(data.spectrum).real, nm).float().cpu().numpy()
    xt = regularize_tv(data, weight=DEFAULT_TV_WEIGHT, outer_iterations=30, inner_iterations=20, non_negativity=True)
    tv = scattering_potential_to_ri(xt, nm).float().cpu().numpy()
    s["phase_delay_rad"] = max_phase_delay(objects, nm, lam)
    s["generator"] = GENERATOR_V2
    return TrainingPair(raw=raw.astype(np.float32), tv=tv.astype(np.float32), truth=ph.ri.astype(np.float32),
                        medium_index=float(nm), voxel_size_um=(vox, vox, vox), kind=kind, seed=int(seed),
                        setup=s["name"], objects=objects, setup_params=s)


def generate_v2(cache: Path = DEFAULT_CACHE_V2, *, seeds: Sequence[int], kinds: Sequence[str] = TRAIN_KINDS_V2,
                shape: Sequence[int] = (48, 48, 48), minutes: Optional[float] = None,
                log: Callable[[str], None] = print) -> list[Path]:
    """Simulate the pairs (kind, seed) into ``cache`` (kinds interleaved; existing files kept).

    ``beads-strong`` is only simulated for held-out seeds. Stops after ``minutes`` if given.
    """
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    out: list[Path] = []
    for seed in seeds:
        for kind in kinds:
            if kind == "beads-strong" and split_of(seed) != "test":
                continue
            if minutes is not None and time.perf_counter() - t_start > 60 * minutes:
                log(f"[generate] time budget of {minutes} min spent")
                return out
            p = cache / f"{kind}_{seed:04d}.npz"
            if not p.exists():
                t0 = time.perf_counter()
                pair = simulate_pair_v2(kind, seed, shape=shape)
                save_pair(pair, p)
                sp = pair.setup_params
                log(f"[generate] {p.name} {split_of(seed)} {pair.setup} lambda={sp['wavelength_um']:.3f} "
                    f"voxel={sp['voxel_um']:.3f} noise={sp['field_noise']:.3f} band={sp['held_out_band'] or '-'} "
                    f"{time.perf_counter() - t0:.1f} s")
            out.append(p)
    return out


def domain_of_ranges() -> dict:
    """The model-card ``domain`` of a model trained on this generator's train/validation splits."""
    return {"generator": GENERATOR_V2,
            "na_objective": list(RANGES["na_objective"]), "illumination_na_fraction": list(RANGES["condenser_fraction"]),
            "n_illuminations": list(RANGES["n_illuminations"]), "illumination_patterns": list(RANGES["patterns"]),
            "voxel_um": list(RANGES["voxel_um"]), "medium_index": list(RANGES["medium_index"]),
            "wavelength_um": list(RANGES["wavelength_um"]), "field_noise": list(RANGES["field_noise"]),
            "sample_kinds": list(TRAIN_KINDS_V2), "bead_max_phase_delay_rad": FIRST_ORDER_MAX_RAD,
            "not_trained_on": {"na_objective": list(HELD_OUT_NA), "medium_index": list(HELD_OUT_NM),
                               "note": "bands held out for the test split (interpolation inside the ranges)"}}


# --------------------------------------------------------------------------- scoring (item 4 of #22)
def ssim_gaussian(a: np.ndarray, ref: np.ndarray) -> float:
    """SSIM of ``a`` against ``ref`` with a Gaussian window (σ = 1.5 voxels, Wang et al. 2004) and the
    data range of ``ref`` (the TV volume)."""
    from skimage.metrics import structural_similarity

    ref = np.asarray(ref, np.float64)
    return float(structural_similarity(np.asarray(a, np.float64), ref, data_range=max(float(np.ptp(ref)), 1e-12),
                                       gaussian_weights=True, sigma=1.5, use_sample_covariance=False))


def _fwhm_voxels(profile: np.ndarray, centre: int, background: float) -> float:
    """FWHM (voxels, linear interpolation) of the peak within ±1 voxel of ``centre``; NaN if none."""
    p = np.asarray(profile, np.float64) - background
    lo, hi = max(centre - 1, 0), min(centre + 2, p.size)
    c = lo + int(np.argmax(p[lo:hi]))
    half = p[c] / 2
    if p[c] <= 0:
        return math.nan
    i = c
    while i > 0 and p[i - 1] > half:
        i -= 1
    j = c
    while j < p.size - 1 and p[j + 1] > half:
        j += 1
    if i == 0 or j == p.size - 1:
        return math.nan
    left = i - (p[i] - half) / (p[i] - p[i - 1])
    right = j + (p[j] - half) / (p[j] - p[j + 1])
    return float(right - left)


def bead_fwhm(volume: np.ndarray, centre_idx: Sequence[int], background: float) -> tuple[float, float]:
    """(axial FWHM along z, lateral FWHM along x) in voxels of a bead through its centre voxel."""
    z, y, x = (int(v) for v in centre_idx)
    return _fwhm_voxels(volume[:, y, x], z, background), _fwhm_voxels(volume[z, y, :], x, background)


def score_against_tv(pair: TrainingPair, deep: np.ndarray) -> dict:
    """SSIM (Gaussian σ 1.5, TV's data range) of deep and raw against TV, mean index inside the
    objects (truth > n_m + 0.002) deep − TV, and per bead the axial/lateral FWHM ratios deep/TV."""
    nm = pair.medium_index
    inside = pair.truth > nm + 0.002
    row = {"ssim_deep": ssim_gaussian(deep, pair.tv), "ssim_raw": ssim_gaussian(pair.raw, pair.tv),
           "mean_inside_diff": float(deep[inside].mean() - pair.tv[inside].mean()) if inside.any() else math.nan,
           "mean_inside_tv_minus_truth": float(pair.tv[inside].mean() - pair.truth[inside].mean()) if inside.any()
           else math.nan}
    if pair.kind.startswith("beads"):
        d = pair.voxel_size_um[0]
        ax, lat = [], []
        for o in pair.objects:
            c = [int(round(v / d)) + n // 2 for v, n in zip(o["centre_um"], pair.raw.shape)]
            (zd, xd), (zt, xt) = bead_fwhm(deep, c, nm), bead_fwhm(pair.tv, c, nm)
            ax.append(zd / zt)
            lat.append(xd / xt)
        row["fwhm_axial_ratio"] = float(np.nanmedian(ax)) if np.isfinite(ax).any() else math.nan
        row["fwhm_lateral_ratio"] = float(np.nanmedian(lat)) if np.isfinite(lat).any() else math.nan
    return row


def _group_summary(rows: list[dict]) -> dict:
    """Means of the scored metrics over ``rows`` (NaN-aware), with n, and the fraction of samples whose
    mean index inside is within 0.002 of TV's (#22's bound) and whose bead FWHM is within 10 %."""
    out: dict = {"n": len(rows)}
    for m in ("ssim_deep", "ssim_raw", "mean_inside_diff", "fwhm_axial_ratio", "fwhm_lateral_ratio"):
        v = np.array([r[m] for r in rows if m in r], float)
        if v.size and np.isfinite(v).any():
            out[m] = float(np.nanmean(v))
            if m == "mean_inside_diff":
                out["mean_inside_absdiff"] = float(np.nanmean(np.abs(v)))
                out["mean_inside_absdiff_max"] = float(np.nanmax(np.abs(v)))
                # the bound per sample: the means above can hide a spread
                out["mean_inside_within_0.002"] = float(np.mean(np.abs(v[np.isfinite(v)]) <= 0.002))
            if m.startswith("fwhm"):
                out[m + "_within_10pct"] = float(np.mean(np.abs(v[np.isfinite(v)] - 1) <= 0.1))
    if rows and "ssim_deep" in rows[0]:
        out["ssim_deep_min"] = float(min(r["ssim_deep"] for r in rows))
    return out


def report_kind(pair: TrainingPair) -> str:
    """The kind a pair is reported under: ``deepreg-pairs/1`` beads whose largest phase delay reaches
    :data:`FIRST_ORDER_MAX_RAD` count as ``beads-strong`` (that generator mixed them)."""
    from .deep_regularizer import bead_phase_delay

    if pair.kind == "beads" and bead_phase_delay(pair) >= FIRST_ORDER_MAX_RAD:
        return "beads-strong"
    return pair.kind


def summarise_scores(rows: list[dict]) -> dict:
    """Scored rows (``kind``, ``setup``, ``band``, ``pattern`` and :func:`score_against_tv`'s metrics)
    grouped: all first-order samples (no ``beads-strong``), per kind (all), and per setup, held-out
    band and illumination pattern (first-order); setups drawn per sample (more than 12) are not
    grouped."""
    first = [r for r in rows if r["kind"] != "beads-strong"]
    summary: dict = {"all_first_order": _group_summary(first), "per_kind": {}, "per_setup": {}, "per_band": {},
                     "per_pattern": {}}
    for key, field in (("per_kind", "kind"), ("per_setup", "setup"), ("per_band", "band"), ("per_pattern", "pattern")):
        src = rows if key == "per_kind" else first
        for value in sorted({r[field] for r in src}):
            summary[key][value or "-"] = _group_summary([r for r in src if r[field] == value])
    if len(summary["per_setup"]) > 12:  # setups drawn per sample: the bands and patterns are the groups
        summary["per_setup"] = {"note": "one setup per sample (see per_sample); grouped by band and pattern"}
    return summary


def evaluate_against_tv(pairs: Sequence[TrainingPair], model, *, log: Callable[[str], None] = print) -> dict:
    """Score ``model`` against TV on ``pairs``; per sample, and grouped by kind, setup and (for
    ``deepreg-pairs/2``) held-out band and illumination pattern (:func:`summarise_scores`). First-order
    groups leave out ``beads-strong`` (reported in a row of its own; ``deepreg-pairs/1`` beads whose
    largest phase delay reaches :data:`FIRST_ORDER_MAX_RAD` are counted there too, :func:`report_kind`)."""
    from ..tomography.deep_regularizer import regularize_deep

    rows = []
    for p in pairs:
        t0 = time.perf_counter()
        deep = regularize_deep(p.raw, p.medium_index, model=model, device="cpu")
        scale = 0.05  # the relative L2 of the training's checkpoint choice (normalised Δn)
        row = {"kind": report_kind(p), "seed": p.seed, "setup": p.setup, "deep_seconds": time.perf_counter() - t0,
               "mse_norm": float(np.mean(((deep - p.tv) / scale) ** 2)),
               "target_ms_norm": float(max(np.mean(((p.tv - p.medium_index) / scale) ** 2), 1e-4)),
               "band": p.setup_params.get("held_out_band", ""), "pattern": p.setup_params.get("pattern", "spiral"),
               **score_against_tv(p, deep)}
        rows.append(row)
        log(f"[score] {p.kind}_{p.seed:04d} {p.setup} SSIM deep {row['ssim_deep']:.4f} raw {row['ssim_raw']:.4f} "
            f"inside deep-TV {row['mean_inside_diff']:+.4f}"
            + (f" FWHM deep/TV axial {row['fwhm_axial_ratio']:.3f} lateral {row['fwhm_lateral_ratio']:.3f}"
               if "fwhm_axial_ratio" in row else ""))
    first = [r for r in rows if r["kind"] != "beads-strong"]
    summary = {**summarise_scores(rows), "per_sample": rows}
    w = np.array([1.0 / r["target_ms_norm"] for r in first])
    if w.size:
        summary["all_first_order"]["relative_l2"] = float(np.mean(np.array([r["mse_norm"] for r in first]) * w / w.mean()))
    return summary


def _score_command(a: argparse.Namespace) -> int:
    """``--score M1 M2 ...``: each model against TV on a split of the cache; one JSON for all."""
    from ..models import TrainingLog
    from ..tomography.deep_regularizer import load_deep_regularizer
    from .deep_regularizer import load_pairs

    pairs = load_pairs(a.cache, a.split, a.kinds)
    log = TrainingLog(None, append=True)
    out: dict = {"cache": str(a.cache), "split": a.split, "pairs": len(pairs),
                 "ssim": "Gaussian window sigma 1.5, data range of the TV volume", "models": {}}
    for m in a.score:
        reg = load_deep_regularizer(m, device="cpu")
        log(f"[score] model {reg.label} ({m}) on {len(pairs)} {a.split} pairs of {a.cache}")
        res = evaluate_against_tv(pairs, reg, log=log)
        out["models"][m] = {"label": reg.label, "sha256": reg.card.get("sha256"), **res}
        log(f"[score] {reg.label}: first-order " + json.dumps(res["all_first_order"], default=float))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=float), encoding="utf-8")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m engine.training.deep_regularizer_data --seeds 1000 1100 [--minutes M]``."""
    ap = argparse.ArgumentParser(prog="python -m engine.training.deep_regularizer_data",
                                 description="Simulate deepreg-pairs/2 (raw Rytov, TV) pairs across setups.")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE_V2)
    ap.add_argument("--seeds", type=int, nargs=2, default=[1000, 1040], help="first and last+1 seed")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS_V2))
    ap.add_argument("--size", type=int, default=48, help="cube side, voxels")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--setups", action="store_true", help="print the setups of the seeds and stop")
    ap.add_argument("--score", nargs="+", default=None, metavar="MODEL",
                    help="instead of generating: score these models (name or .safetensors path) against TV")
    ap.add_argument("--split", default="test", help="split to score (test, val, train)")
    ap.add_argument("--json", type=Path, default=None, help="write the scores here (with --score)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.score:
        return _score_command(a)
    seeds = range(a.seeds[0], a.seeds[1])
    if a.setups:
        for s in seeds:
            print(s, split_of(s), json.dumps(draw_setup(s)))
        return 0
    generate_v2(a.cache, seeds=seeds, kinds=a.kinds, shape=(a.size,) * 3, minutes=a.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
