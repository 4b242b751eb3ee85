"""Screening data with wide defect families, and an honest generalisation protocol (issue #19).

Run ``python -m engine.training.screening_families --help``. Sub-commands:

``generate``
    Simulate measurements whose noisy frames draw from *every* defect family of
    :mod:`engine.simulate.defects` (obstructions, parasitic fringes, camera effects, low SNR,
    DMD, blank) and whose clean frames get the broadened imperfections (faint obstructions,
    faint fringes, mild camera effects, dim and defocused frames), over random setups (sample
    kind, 45/49/71 angles, NA, noise, 8/12/16-bit camera, illumination power falling with the
    angle); retrieve the fields as the application does and cache the 128² crops (``.npz``,
    outside the repository). A cross-setup set (:data:`~engine.screening.crops.CROSS_SETUP`,
    never trained on) is generated beside it. ``--chamber`` (generator 2) gives every
    measurement the chamber's residual coherent noise and a focus offset
    (:mod:`engine.simulate.chamber`; caches ``*-chamber-*``); ``--wide-na N:SEED`` adds training
    sets whose objective NA spans 0.6–1.25 (the pupil sampled at 0.23–0.47 of Nyquist);
    ``--no-background N:SEED`` adds wide-NA training sets retrieved without their measured
    background (one synthesised ideal background, as for qpformat files that hold none);
    ``--large-cells-no-background N:SEED`` the same with cells up to ~13 µm across;
    ``--strong-cells N:SEED`` large cells whose phase reaches 3.5–6.5 rad (it wraps inside the
    crop, as the real HL60 cells' 4–5 rad do), half of them without a background.
``lofo``
    Leave-one-family-out: for each family, train a compact net from scratch on the training
    measurements *without that family's frames* (and choose its epoch on validation frames
    without it), then report the catch rate on that family's held-out frames and the clean
    frames kept. A reference run with every family, under the same budget, is reported beside.
``train``
    Train (or fine-tune from the shipped model) the compact net on every family, choose the
    epoch on validation, fit a temperature on validation (calibration), report held-out,
    cross-setup, per-family and expected calibration error, and write the model files to
    ``--out-dir`` — never over the shipped model unless ``--out-dir resources/models`` is given.

Splits are **by measurement** (every frame of a measurement in one split). Labels: 1 = noisy.
A frame's *family* is :func:`engine.simulate.defects.family_of` of its defect type.

References
----------
C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration of modern neural networks",
ICML (2017) — temperature scaling, expected calibration error.
D. Ryu et al., Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x — the screening task.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from ..backend import resolve_device
from ..metrics import expected_calibration_error, screening_metrics
from ..progress import CancelToken, check_cancel
from ..screening.crops import CROSS_SETUP, SIM_DEPTH_UM, CropSet
from ..screening.domain import NO_BACKGROUND_SUFFIX, training_domain
from ..screening.network import (CROP_SIZE, TEST_TIME_AUGMENTATIONS, CompactScreeningNet, _centre_crop, _pad_to,
                                 load_model, preprocess)
from ..simulate.defects import ALL_DEFECT_TYPES, ALL_IMPERFECTION_TYPES, DEFECT_FAMILIES, family_of
from .screening_augment import AugmentedFieldBatches
from .screening_data import DEFAULT_CACHE_DIR, split_by_measurement

if TYPE_CHECKING:
    from ..simulate.holograms import SimulatedMeasurement

__all__ = [
    "FAMILY_GENERATOR_VERSION",
    "FamilySpec",
    "RECIPES",
    "family_specs",
    "cross_family_specs",
    "simulate_family_crops",
    "load_or_generate_families",
    "families_of",
    "protocol_splits",
    "without_family",
    "fit_temperature",
    "calibrated_probabilities",
    "family_catch_rates",
    "evaluate_logits",
    "run_lofo",
    "main",
]

FAMILY_GENERATOR_VERSION = "screening-families/2"
#: camera field of view of a simulated measurement, µm (160 pixels of 0.1 µm)
FIELD_OF_VIEW_UM = 16.0
#: lateral grid of the simulated sample, µm (imaged onto the camera's pixels)
SIM_PIXEL_UM = 0.1
#: camera pixels (at the sample) drawn by ``--wide-pixel``, µm
WIDE_PIXEL_UM = (0.07, 0.15)
#: pupil radius / Nyquist frequency drawn by ``--wide-pixel``
WIDE_PUPIL_FRACTION = (0.2, 0.47)
#: wavelength of every simulated measurement, µm (``holograms.Setup``'s default)
WAVELENGTH_UM = 0.532
#: largest phase delay at normal incidence drawn by ``--strong-cells``, rad (the real HL60 cells
#: of tests/data span 4.1–5.1 rad across the screen's crop)
STRONG_PEAK_PHASE_RAD = (3.5, 6.5)
#: the most a phantom's index contrast is scaled up to reach its peak phase (cytoplasm 1.355–1.365
#: in 1.337 becomes at most 1.373–1.393, a dense but real cell)
MAX_CONTRAST_SCALE = 2.0


@dataclass(frozen=True)
class FamilySpec:
    """One simulated measurement of the wide-family data set.

    Attributes
    ----------
    kind : {"beads", "bacteria", "cells"}
    n_angles : int
    na : float
        Objective NA (condenser 0.92·NA).
    noise : float
        Read-noise multiplier (exposure 0.4/noise).
    defect_rate, imperfection_rate : float
        Fraction of frames made noisy; fraction of the clean frames given an imperfection.
    seed : int
    steep_power : float
        Illumination power at the condenser edge relative to normal incidence (1 = flat).
    bit_depth : int
    chamber_rms, chamber_near_fraction : float
        The chamber's residual coherent noise (:mod:`engine.simulate.chamber`) in every frame.
    focus_offset_um : float
        Every frame's sample this far from focus, µm.
    depth_um : float
        Depth of the simulated volume, µm (0: the kind's default, which caps a cell's diameter).
    textured : bool
        Give the sample's interior a heterogeneous index (:func:`_with_texture`): granular
        cytoplasm, whose defocused image mottles the amplitude as real cells' does.
    peak_phase_rad : float
        0: the phantom as drawn. Otherwise its index contrast (n − n_m everywhere) is scaled so that
        its largest phase delay at normal incidence is this, rad (:func:`_with_peak_phase`; scale
        at most :data:`MAX_CONTRAST_SCALE`).
    pixel_um : float
        Camera pixel at the sample, µm (:attr:`image_shape` pixels: a field of view of at least
        :data:`FIELD_OF_VIEW_UM` and at least 160 pixels, an even number of 0.1 µm simulation
        voxels). The network's 128-pixel crop then spans ``128 · pixel_um`` µm of the sample.
    synthetic_background : bool
        Retrieve without the measured background: one ideal fringe pattern of the detected
        carrier serves every frame (:func:`engine.store.qpformat_hdf5.synthesise_background`, as
        for qpformat files that hold none), so the beams' envelopes, the reference's curvature,
        the fixed stray fringes and the chamber residue stay in the field.
    """

    kind: str
    n_angles: int
    na: float
    noise: float
    defect_rate: float
    imperfection_rate: float
    seed: int
    steep_power: float = 1.0
    bit_depth: int = 12
    chamber_rms: float = 0.0
    chamber_near_fraction: float = 0.5
    focus_offset_um: float = 0.0
    depth_um: float = 0.0
    synthetic_background: bool = False
    pixel_um: float = 0.1
    peak_phase_rad: float = 0.0
    textured: bool = False

    @property
    def setup_name(self) -> str:
        base = f"{self.kind}-{self.n_angles}-na{self.na:.2f}-noise{self.noise:.1f}"
        if abs(self.pixel_um - 0.1) > 1e-9:
            base += f"-px{self.pixel_um:.4f}"
        return base + NO_BACKGROUND_SUFFIX if self.synthetic_background else base

    @property
    def image_shape(self) -> tuple[int, int]:
        """Camera pixels: the 16 µm field of view for pixels up to 0.1 µm, else 160 pixels."""
        n = max(160, int(round(FIELD_OF_VIEW_UM / self.pixel_um)))
        return (n, n)


def _with_chamber(specs: list[FamilySpec], seed: int) -> list[FamilySpec]:
    """The same measurements with a chamber residue and a focus offset (generator 2's ``--chamber``).

    Drawn from a stream of their own, so that every other parameter is generator 1's: residue RMS
    0 (15 %) or 0.02–0.35 (the real holograms' background texture lies inside, see
    :mod:`engine.simulate.chamber`), near share 0.2–0.9; focus within ±0.3 µm (half) or 0.5–2.5 µm
    either side.
    """
    out = []
    for i, s in enumerate(specs):
        r = np.random.default_rng([int(seed), 2, i])
        rms = 0.0 if r.random() < 0.15 else float(r.uniform(0.02, 0.35))
        focus = float(r.uniform(-0.3, 0.3)) if r.random() < 0.5 else float(r.choice([-1, 1]) * r.uniform(0.5, 2.5))
        out.append(replace(s, chamber_rms=rms, chamber_near_fraction=float(r.uniform(0.2, 0.9)),
                           focus_offset_um=focus))
    return out


def _with_wide_na(specs: list[FamilySpec], seed: int) -> list[FamilySpec]:
    """The same measurements with an objective NA drawn over 0.6–1.25 (condenser 0.92·NA).

    With 0.1 µm pixels at 532 nm the pupil then spans 0.23–0.47 of the Nyquist frequency (generator
    1: 0.38–0.45); real setups sample it coarser or finer (qpretrieve's HL60 hologram 0.23,
    qpformat's 0.32), and a screen trained on one sampling reads another as a defect.
    """
    return [replace(s, na=round(float(np.random.default_rng([int(seed), 3, i]).uniform(0.6, 1.25)), 3))
            for i, s in enumerate(specs)]


def _large_cell(spec: FamilySpec) -> FamilySpec:
    """The same measurement of a cell in a 14 µm deep volume: up to ~13 µm across, a few rad,
    filling the crop (the default 8 µm caps cells at ~7 µm; qpretrieve's HL60 cell is ~11 µm)."""
    return replace(spec, kind="cells", depth_um=14.0)


def _with_large_cells(specs: list[FamilySpec]) -> list[FamilySpec]:
    """The same measurements, every one of a large cell (:func:`_large_cell`)."""
    return [_large_cell(s) for s in specs]


def _with_strong_cells(specs: list[FamilySpec], seed: int) -> list[FamilySpec]:
    """Large cells (:func:`_large_cell`) whose largest phase delay is drawn over
    :data:`STRONG_PEAK_PHASE_RAD`: their phase wraps several times inside the crop, as the real
    HL60 cells' does (4–5 rad); half are retrieved with a synthesised background.

    The defect and imperfection rates stay those of the spec, so a strongly wrapped phase is no
    cue for "clean".
    """
    out = []
    for i, s in enumerate(specs):
        r = np.random.default_rng([int(seed), 7, i])
        peak = round(float(r.uniform(*STRONG_PEAK_PHASE_RAD)), 3)
        out.append(replace(_large_cell(s), peak_phase_rad=peak, synthetic_background=bool(r.random() < 0.5),
                           textured=True))
    return out


def _with_texture(phantom, rng: np.random.Generator):
    """``phantom`` with a smooth random index variation inside its objects (where n ≠ n_m):
    Gaussian-correlated, correlation length 0.3–1.2 µm, standard deviation 0.003–0.010 — the
    granular heterogeneity of real cytoplasm (refractive-index maps of cells vary by 0.005–0.01 on
    the micrometre scale; Park, Depeursinge and Popescu, Nat. Photonics 12, 578 (2018))."""
    from scipy.ndimage import gaussian_filter

    sigma_um, std = float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.003, 0.010))
    noise = gaussian_filter(rng.standard_normal(phantom.ri.shape).astype(np.float32),
                            [sigma_um / v for v in phantom.voxel_size_um])
    noise *= np.float32(std / max(float(noise.std()), 1e-12))
    inside = np.abs(phantom.ri - np.float32(phantom.medium_index)) > 1e-4
    return replace(phantom, ri=(phantom.ri + noise * inside).astype(np.float32))


def _with_peak_phase(phantom, peak_phase_rad: float, wavelength_um: float):
    """``phantom`` with its index contrast scaled so that its largest normal-incidence phase delay
    ``2π/λ · max_(y,x) Σ_z (n − n_m) dz`` is ``peak_phase_rad`` (scale capped at
    :data:`MAX_CONTRAST_SCALE`, never below 1)."""
    dn = phantom.ri - np.float32(phantom.medium_index)
    peak = 2 * np.pi / wavelength_um * float(dn.sum(axis=0).max()) * float(phantom.voxel_size_um[0])
    scale = float(np.clip(peak_phase_rad / max(peak, 1e-6), 1.0, MAX_CONTRAST_SCALE))
    return replace(phantom, ri=(np.float32(phantom.medium_index) + dn * np.float32(scale)).astype(np.float32))


def _with_wide_pixel(specs: list[FamilySpec], seed: int) -> list[FamilySpec]:
    """The same measurements with a camera pixel drawn over :data:`WIDE_PIXEL_UM` and a new NA.

    The 128-pixel crop the network sees then spans 9–19 µm of the sample, instead of always
    12.8 µm: real holograms crop a cell at other scales (qpformat's 10.8 µm). The objective NA
    follows from a pupil fraction ``2·pixel·NA/λ`` drawn over :data:`WIDE_PUPIL_FRACTION` (the
    side band must fit beside the carrier at a quarter of the sampling rate, so at most 0.5; the
    real holograms lie at 0.22–0.32), kept within NA 0.4–1.25; half the measurements are of
    cells up to ~13 µm across, and half are retrieved with a synthesised background.
    """
    out = []
    for i, s in enumerate(specs):
        r = np.random.default_rng([int(seed), 5, i])
        px = float(r.uniform(*WIDE_PIXEL_UM))
        # 16 µm on an even number of pixels below 0.1 µm; 160 pixels spanning an even number of 0.1 µm above
        px = (FIELD_OF_VIEW_UM / (2 * round(FIELD_OF_VIEW_UM / (2 * px))) if px <= 0.1
              else 2 * SIM_PIXEL_UM * round(160 * px / (2 * SIM_PIXEL_UM)) / 160)
        na = round(float(np.clip(r.uniform(*WIDE_PUPIL_FRACTION) * WAVELENGTH_UM / (2 * px), 0.4, 1.25)), 3)
        large, no_bg = r.random() < 0.5, r.random() < 0.5
        s = replace(s, pixel_um=px, na=na, synthetic_background=no_bg)
        out.append(_large_cell(s) if large else s)
    return out


def family_specs(n: int, seed: int, *, defect_rate: float = 0.5, imperfection_rate: float = 0.6,
                 chamber: bool = False, wide_na: bool = False, large_cells: bool = False,
                 no_background: bool = False, wide_pixel: bool = False,
                 strong_cells: bool = False) -> list[FamilySpec]:
    """Random setups (the cross setup excluded): kinds × angles × NA × noise × bits × steep power.

    ``chamber``: every measurement also gets a chamber residue and a focus offset (:func:`_with_chamber`);
    ``wide_na``: its NA is drawn over 0.6–1.25 (:func:`_with_wide_na`); ``large_cells``: every
    sample is a cell up to ~13 µm across (:func:`_with_large_cells`); ``no_background``: its
    fields are retrieved with a synthesised background (``FamilySpec.synthetic_background``);
    ``wide_pixel``: the camera pixel is drawn over 0.07–0.15 µm, with large cells and synthesised
    backgrounds in half the measurements each (:func:`_with_wide_pixel`; it replaces the NA);
    ``strong_cells``: every sample a large cell of 3.5–6.5 rad with a granular cytoplasm, half
    without a background (:func:`_with_strong_cells`).
    """
    rng = np.random.default_rng(seed)
    out: list[FamilySpec] = []
    while len(out) < n:
        k, a = str(rng.choice(["bacteria", "cells", "beads"])), int(rng.choice([71, 49, 45]))
        na, nz = float(rng.choice([1.2, 1.1, 1.0])), float(rng.choice([0.5, 1.0, 2.0]))
        if (k, a, na, nz) == tuple(CROSS_SETUP.values()):
            continue
        steep = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.15, 1.0))
        out.append(FamilySpec(k, a, na, nz, defect_rate, imperfection_rate, int(rng.integers(1 << 31)), steep,
                              int(rng.choice([8, 12, 16]))))
    if chamber:
        out = _with_chamber(out, seed)
    if wide_na:
        out = _with_wide_na(out, seed)
    if large_cells:
        out = _with_large_cells(out)
    if wide_pixel:
        out = _with_wide_pixel(out, seed)
    if strong_cells:
        out = _with_strong_cells(out, seed)
    return [replace(s, synthetic_background=True) for s in out] if no_background else out


def cross_family_specs(n: int, seed: int, *, defect_rate: float = 0.5, chamber: bool = False) -> list[FamilySpec]:
    """Measurements of the never-trained cross setup (cells, 45 angles, NA 1.0, noise ×2), all families."""
    rng = np.random.default_rng(seed)
    out = [FamilySpec(defect_rate=defect_rate, imperfection_rate=0.6, seed=int(rng.integers(1 << 31)),
                      steep_power=1.0 if rng.random() < 0.5 else float(rng.uniform(0.15, 1.0)),
                      bit_depth=int(rng.choice([8, 12, 16])), **CROSS_SETUP) for _ in range(n)]
    return _with_chamber(out, seed) if chamber else out


def simulate_family_measurement(spec: FamilySpec, *, image_shape: Optional[tuple[int, int]] = None,
                                device: str = "cpu", apply_defects: bool = True,
                                noise_draw: int = 0) -> "SimulatedMeasurement":
    """Simulate the holograms of one measurement with every defect family (no retrieval).

    The sample is simulated on a 0.1 µm grid (:data:`SIM_PIXEL_UM`) and imaged onto the spec's
    camera pixels; ``image_shape`` (camera pixels) defaults to the spec's 16 µm field of view.
    ``apply_defects`` and ``noise_draw`` as :func:`~engine.simulate.holograms.simulate_measurement`'s
    (the defect-free twin of the measurement, a new camera-noise realisation).

    Returns
    -------
    SimulatedMeasurement
        With each frame's defect type and the parameters it was drawn with (``defect_info``).
    """
    from ..simulate import holograms, phantoms

    setup = holograms.Setup(n_angles=spec.n_angles, na_objective=spec.na, na_condenser=0.92 * spec.na,
                            read_noise_e=4.0 * spec.noise, exposure=0.4 / max(spec.noise, 0.25),
                            image_shape=image_shape or spec.image_shape, pixel_size_um=spec.pixel_um,
                            sim_pixel_um=SIM_PIXEL_UM, steep_power=spec.steep_power, bit_depth=spec.bit_depth,
                            chamber_residue_rms=spec.chamber_rms, chamber_near_fraction=spec.chamber_near_fraction,
                            focus_offset_um=spec.focus_offset_um)
    rng = np.random.default_rng(spec.seed)
    depth = spec.depth_um or SIM_DEPTH_UM.get(spec.kind, 6.0)
    phantom = phantoms.make_phantom(spec.kind, setup.phantom_shape(depth), setup.voxel_size_um, setup.medium_index, rng)
    if spec.textured:
        phantom = _with_texture(phantom, np.random.default_rng([spec.seed, 11]))
    if spec.peak_phase_rad > 0:
        phantom = _with_peak_phase(phantom, spec.peak_phase_rad, setup.wavelength_um)
    return holograms.simulate_measurement(phantom, setup, spec.seed, defect_rate=spec.defect_rate,
                                          defect_types=ALL_DEFECT_TYPES, imperfection_rate=spec.imperfection_rate,
                                          imperfection_types=ALL_IMPERFECTION_TYPES, device=device,
                                          name=spec.setup_name, apply_defects=apply_defects,
                                          noise_draw=noise_draw)


def simulate_family_crops(spec: FamilySpec, measurement_id: int = 0, *, image_shape: Optional[tuple[int, int]] = None,
                          device: str = "cpu", apply_defects: bool = True, noise_draw: int = 0) -> CropSet:
    """Simulate one measurement with every defect family, retrieve its fields, keep the centre crops.

    Arguments as :func:`simulate_family_measurement`'s.

    Returns
    -------
    CropSet
        ``defect`` holds the defect *type* ("" when clean); :func:`families_of` maps it to a family.
    """
    from ..holography.retrieval import retrieve_fields

    sim = simulate_family_measurement(spec, image_shape=image_shape, device=device, apply_defects=apply_defects,
                                      noise_draw=noise_draw)
    md = sim.measurement.metadata
    backgrounds = sim.measurement.backgrounds
    if spec.synthetic_background:
        from ..store.qpformat_hdf5 import synthesise_background

        backgrounds = synthesise_background(sim.measurement.holograms, md)[0]
    ret = retrieve_fields(sim.measurement.holograms, backgrounds, md, device=device, unwrap=False)
    f = _pad_to(_centre_crop(np.asarray(ret.field), CROP_SIZE), CROP_SIZE).astype(np.complex64)
    n = f.shape[0]
    return CropSet(fields=f, noisy=np.array([1 if d else 0 for d in sim.defect_types], np.uint8),
                   measurement=np.full(n, measurement_id, np.int32), defect=[str(d) for d in sim.defect_types],
                   setup=[spec.setup_name] * n, pixel_size_um=np.full(n, md.pixel_size_um, np.float32),
                   wavelength_um=np.full(n, md.wavelength_um, np.float32))


def load_or_generate_families(path: Path, specs: list[FamilySpec], *, device: str = "cpu",
                              log: Callable[[str], None] = print,
                              cancel: Optional[CancelToken] = None) -> CropSet:
    """Cached crops at ``path`` (``.npz``), or simulate ``specs`` (ids 0, 1, …) and cache them."""
    path = Path(path)
    if path.exists():
        cs = CropSet.load(path)
        log(f"loaded {len(cs)} cached crops from {path}")
        return cs
    t0, parts = time.time(), []
    for i, spec in enumerate(specs):
        check_cancel(cancel)
        parts.append(simulate_family_crops(spec, i, device=device))
        if (i + 1) % 10 == 0 or i + 1 == len(specs):
            log(f"  simulated {i + 1}/{len(specs)} measurements ({time.time() - t0:.0f} s)")
    cs = CropSet.concatenate(parts)
    cs.save(path)
    log(f"generated {len(cs)} crops ({int(cs.noisy.sum())} noisy) in {time.time() - t0:.0f} s -> {path}")
    return cs


def families_of(cs: CropSet) -> np.ndarray:
    """Family of every frame (``""`` when clean), (M,) str."""
    return np.array([family_of(d) for d in cs.defect], dtype="U16")


def protocol_splits(cs: CropSet, seed: int) -> tuple[CropSet, CropSet, CropSet]:
    """Train / validation / held-out test (70 / 15 / 15 % of the measurements)."""
    tr, va, te = split_by_measurement(cs.measurement, (0.7, 0.15, 0.15), seed=seed)
    if set(cs.measurement[tr]) & set(cs.measurement[te]) or set(cs.measurement[va]) & set(cs.measurement[te]):
        raise AssertionError("a measurement is split across train/validation and test")
    return cs.subset(tr), cs.subset(va), cs.subset(te)


def without_family(cs: CropSet, family: str) -> CropSet:
    """The frames of ``cs`` that are clean or noisy from another family than ``family``."""
    if family not in DEFECT_FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {sorted(DEFECT_FAMILIES)}")
    return cs.subset(np.flatnonzero(families_of(cs) != family))


# --------------------------------------------------------------------------- calibration
def fit_temperature(logits: np.ndarray, noisy: np.ndarray) -> float:
    """Temperature T > 0 minimising the binary NLL of ``sigmoid(logits / T)`` (Guo et al. 2017).

    A 1-D search over log T on [0.05, 20] (coarse grid, then golden section); the accuracy at
    threshold 0.5 does not change (the sign of a logit does not).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(noisy, np.float64)
    if z.shape != y.shape or z.size == 0:
        raise ValueError("logits and labels must be non-empty and of the same shape")

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0, s) - y * s))

    grid = np.linspace(np.log(0.05), np.log(20.0), 61)
    k = int(np.argmin([nll(g) for g in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    g = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return float(np.exp(0.5 * (lo + hi)))


def calibrated_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``sigmoid(logits / temperature)``, float64."""
    return 1 / (1 + np.exp(-np.asarray(logits, np.float64) / float(temperature)))


def family_catch_rates(prob: np.ndarray, families: np.ndarray, threshold: float = 0.5) -> dict:
    """Per family: fraction of its frames scored noisy; ``"clean"``: fraction of clean frames kept."""
    p, fam = np.asarray(prob), np.asarray(families)
    out = {}
    for f in sorted(set(fam.tolist()) - {""}):
        sel = fam == f
        out[f] = {"caught": float(np.mean(p[sel] > threshold)), "n": int(sel.sum())}
    sel = fam == ""
    if sel.any():
        out["clean"] = {"kept": float(np.mean(p[sel] <= threshold)), "n": int(sel.sum())}
    return out


# --------------------------------------------------------------------------- protocol runs
#: input kind of the compact nets by their number of input channels
INPUT_KIND_BY_CHANNELS = {2: "phase-amplitude", 3: "phase-amplitude-spectrum"}


def _x(cs: CropSet, channels: int) -> torch.Tensor:
    return preprocess(cs.fields, input_kind=INPUT_KIND_BY_CHANNELS[channels])


#: ``--recipe``: the network options and training configuration of a run from scratch.
#: ``"2.x"``: the shipped 2.x compact net and its training (constant Adam, elastic deformation);
#: ``"3.x-plain"`` (issue #19): phase and amplitude inputs, a full-resolution first stage and mean+max
#: pooling, AdamW with warm-up and a cosine decay over the time budget, an EMA of the weights, flips and
#: 90° rotations only; ``"3.x"``: the same with half the training fields given a large sample, a
#: background tilt/curvature or an amplitude ripple (:mod:`.screening_augment`, labels kept);
#: ``"3.x-spectrum"``: 3.x-plain with the spectrum as a third input channel; ``"3.x-zoom"``: 3.x-plain with half
#: the training fields zoomed 1–2× (:func:`.screening_augment.pupil_zoom`: setups that sample the pupil finer);
#: ``"3.x-consistent"``: 3.x-plain trained on two orientations of every batch with a view-consistency
#: loss (:class:`.screening.TrainConfig` ``consistency_weight``), so that the score does not swing with
#: the field's orientation without paying test-time augmentation's 8 passes.
_RECIPE_3 = {"elastic_probability": 0.0, "schedule": "cosine", "warmup_steps": 200, "ema_decay": 0.998,
             "weight_decay": 1e-4, "weight_decay_decoupled": True}
_NET_3 = {"full_resolution": 1, "mean_pool": 1}
RECIPES: dict[str, dict] = {
    "2.x": {"channels": 2, "net": {}, "train": {"elastic_probability": 0.5}},
    "3.x-plain": {"channels": 2, "net": _NET_3, "train": _RECIPE_3},
    "3.x": {"channels": 2, "net": _NET_3, "train": _RECIPE_3, "field_augment": 0.5},
    "3.x-spectrum": {"channels": 3, "net": _NET_3, "train": _RECIPE_3},
    "3.x-zoom": {"channels": 2, "net": _NET_3, "train": _RECIPE_3, "zoom_augment": 0.5},
    "3.x-consistent": {"channels": 2, "net": _NET_3, "train": {**_RECIPE_3, "consistency_weight": 1.0}},
}


def _train(cs_train: CropSet, cs_val: CropSet, *, minutes: float, seed: int, lr: float,
           init: Optional[str], log: Callable[[str], None], device: torch.device,
           epochs: int = 200, recipe: str = "2.x") -> tuple[CompactScreeningNet, dict]:
    """Train a compact net (from scratch, or from a model file / name ``init``); best validation epoch."""
    from .screening import TrainConfig, train_network

    if init:
        net = load_model(init, device="cpu").net.float()
        if not isinstance(net, CompactScreeningNet):
            raise ValueError(f"--init {init}: not a single CompactScreeningNet but a {type(net).__name__}; the "
                             "shipped 3.0.0 is a pair of networks (MinOfNetworks): start from one member's file "
                             "(its card's members_source says where each comes from)")
    else:
        net = CompactScreeningNet(RECIPES[recipe]["channels"], **RECIPES[recipe]["net"])
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=lr, seed=seed, max_minutes=minutes, distill_weight=0.0,
                      **RECIPES[recipe]["train"])
    c = net.in_channels
    p_aug = float(RECIPES[recipe].get("field_augment", 0.0))
    p_zoom = float(RECIPES[recipe].get("zoom_augment", 0.0))
    x_train = (AugmentedFieldBatches(cs_train.fields, INPUT_KIND_BY_CHANNELS[c], probability=p_aug, seed=seed,
                                     zoom_probability=p_zoom) if p_aug > 0 or p_zoom > 0 else _x(cs_train, c))
    info = train_network(net, x_train, cs_train.noisy, _x(cs_val, c), cs_val.noisy, cfg, device=device, log=log)
    info["config"] = cfg.as_dict()
    return net, info


def _logits(net: torch.nn.Module, cs: CropSet, device: torch.device, augmentation: str = "none") -> np.ndarray:
    from .screening import predict_logits

    return predict_logits(net, _x(cs, int(getattr(net, "in_channels", 2))), device=device,
                          augmentation=augmentation).astype(np.float64)


def evaluate_logits(logits: np.ndarray, cs: CropSet, temperature: float = 1.0, threshold: float = 0.5) -> dict:
    """Accuracy, sensitivity, specificity, AUC, ECE and per-family catch rates of calibrated logits."""
    p = calibrated_probabilities(logits, temperature)
    out = screening_metrics(cs.noisy, p, threshold)
    out["ece"] = expected_calibration_error(cs.noisy, p)
    out["families"] = family_catch_rates(p, families_of(cs), threshold)
    return out


def _fmt(name: str, m: dict) -> str:
    fam = ", ".join(f"{k} {v.get('caught', v.get('kept')):.3f}" for k, v in m.get("families", {}).items())
    return (f"{name}: accuracy {m['accuracy']:.4f}, sensitivity {m['sensitivity']:.4f}, specificity "
            f"{m['specificity']:.4f}, AUC {m['roc_auc']:.4f}, ECE {m.get('ece', float('nan')):.4f} "
            f"(n={m['n']}); {fam}")


def run_lofo(train: CropSet, val: CropSet, test: CropSet, *, families, minutes: float, seed: int,
             device: torch.device, log: Callable[[str], None], max_train_frames: int = 0,
             recipe: str = "2.x", lr: float = 1e-3) -> dict:
    """Leave-one-family-out: per family, train without it, test on its held-out frames.

    ``"all"`` (every family, same budget) is run first as the reference. Each result holds the
    catch rate of the left-out family, the clean frames kept and the full test metrics.
    """
    out = {}
    rng = np.random.default_rng(seed)
    for fam in ["all"] + list(families):
        tr = train if fam == "all" else without_family(train, fam)
        va = val if fam == "all" else without_family(val, fam)
        if max_train_frames and len(tr) > max_train_frames:
            tr = tr.subset(np.sort(rng.choice(len(tr), max_train_frames, replace=False)))
        log(f"LOFO {fam}: training on {len(tr)} frames ({int(tr.noisy.sum())} noisy), {minutes} min")
        net, info = _train(tr, va, minutes=minutes, seed=seed, lr=lr, init=None, log=log, device=device,
                           recipe=recipe)
        m = evaluate_logits(_logits(net, test, device), test)
        res = {"test": m, "best_epoch": info["best_epoch"], "epochs": len(info["history"]),
               "train_frames": len(tr)}
        if fam != "all":
            res["left_out_caught"] = m["families"].get(fam, {}).get("caught", float("nan"))
            log(f"LOFO {fam}: left-out family caught {res['left_out_caught']:.3f}, clean kept "
                f"{m['families']['clean']['kept']:.3f}")
        log(_fmt(f"LOFO {fam} test", m))
        out[fam] = res
    return out


# --------------------------------------------------------------------------- command line
def _count_seed(text: str) -> tuple[int, int]:
    """``"55:20261208"`` → (55, 20261208)."""
    n, _, seed = text.partition(":")
    if not seed:
        raise argparse.ArgumentTypeError(f"expected N:SEED, got {text!r}")
    return int(n), int(seed)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.training.screening_families", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("generate", "lofo", "train", "calibrate"))
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR / "families")
    p.add_argument("--n-measurements", type=int, default=110)
    p.add_argument("--n-cross", type=int, default=8)
    p.add_argument("--seed", type=int, default=20261206)
    p.add_argument("--extra", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more generated sets (N measurements of seed SEED) joining the training split only")
    p.add_argument("--skip-cross", action="store_true", help="generate: the mixed set only")
    p.add_argument("--chamber", action="store_true",
                   help="every measurement with a chamber residue and a focus offset (caches named families-chamber-…)")
    p.add_argument("--wide-na", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets whose NA is drawn over 0.6–1.25 (with --chamber's residue if given)")
    p.add_argument("--large-cells", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets of cells up to ~13 µm across (wide NA; --chamber's residue if given)")
    p.add_argument("--no-background", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets retrieved with a synthesised background (wide NA; --chamber's residue if given)")
    p.add_argument("--large-cells-no-background", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets of large cells (as --large-cells) retrieved with a synthesised background")
    p.add_argument("--wide-pixel", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets whose camera pixel is drawn over 0.07–0.15 µm (NA from a pupil at "
                        "0.2–0.47 of Nyquist, half of them large cells, half without a background)")
    p.add_argument("--strong-cells", type=_count_seed, nargs="*", default=[], metavar="N:SEED",
                   help="more training sets of large cells whose phase reaches 3.5–6.5 rad (wrapping several "
                        "times in the crop, as real HL60 cells), half without a background")
    p.add_argument("--minutes", type=float, default=4.0, help="time budget per training run")
    p.add_argument("--families", nargs="*", default=sorted(DEFECT_FAMILIES), help="families to leave out (lofo)")
    p.add_argument("--max-train-frames", type=int, default=0, help="lofo: subsample the training frames (0: all)")
    p.add_argument("--init", default="", help="train: start from this model (name or .safetensors); '' = scratch")
    p.add_argument("--tta", choices=TEST_TIME_AUGMENTATIONS, default="none",
                   help="train/calibrate: test-time augmentation written to the card (d8: mean logit over the "
                        "8 rotations and mirror images); the temperature is fitted with it")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="3.x",
                   help="network options and training of a run from scratch (see RECIPES)")
    p.add_argument("--compare", default="default", help="train: baseline model scored on the same frames ('' = none)")
    p.add_argument("--out-dir", type=Path, default=Path("/tmp/odt-screening-models"),
                   help="train: where the model files and the log go")
    p.add_argument("--version", default="3.0.0")
    p.add_argument("--report", type=Path, default=None, help="write the metrics as JSON here")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    return p


def _data(args, log) -> tuple[CropSet, CropSet, CropSet, CropSet]:
    tag = "-chamber" if args.chamber else ""

    def load(stem: str, n: int, seed: int, specs_of=family_specs, **kw) -> CropSet:
        return load_or_generate_families(args.cache_dir / f"{stem}{tag}-{n}-{seed}.npz",
                                         specs_of(n, seed, chamber=args.chamber, **kw), log=log)

    mixed = load("families", args.n_measurements, args.seed)
    extra = [load("families", n, seed) for n, seed in args.extra]
    extra += [load("families-widena", n, seed, wide_na=True) for n, seed in args.wide_na]
    extra += [load("families-largecells", n, seed, wide_na=True, large_cells=True) for n, seed in args.large_cells]
    extra += [load("families-nobg", n, seed, wide_na=True, no_background=True) for n, seed in args.no_background]
    extra += [load("families-largecells-nobg", n, seed, wide_na=True, large_cells=True, no_background=True)
              for n, seed in args.large_cells_no_background]
    extra += [load("families-widepx", n, seed, wide_pixel=True) for n, seed in args.wide_pixel]
    extra += [load("families-strongcells", n, seed, wide_na=True, strong_cells=True) for n, seed in args.strong_cells]
    if args.command == "generate" and args.skip_cross:
        empty = mixed.subset(np.zeros(0, int))
        return mixed, empty, empty, empty
    cross = load("cross", args.n_cross, args.seed + 1, cross_family_specs)
    train, val, test = protocol_splits(mixed, args.seed)
    if extra:  # more simulated measurements (other seeds): training only, the splits above unchanged
        train = CropSet.concatenate([train, *extra])
        seeds = [seed for _, seed in args.extra + args.wide_na + args.large_cells + args.no_background
                 + args.large_cells_no_background + args.wide_pixel + args.strong_cells]
        log(f"extra training measurements: {sum(len(np.unique(e.measurement)) for e in extra)} "
            f"({sum(len(e) for e in extra)} frames) from seeds {seeds}")
    log(f"split by measurement: train {len(train)} frames / {len(np.unique(train.measurement))} measurements, "
        f"validation {len(val)} / {len(np.unique(val.measurement))}, held-out {len(test)} / "
        f"{len(np.unique(test.measurement))}, cross-setup {len(cross)} / {len(np.unique(cross.measurement))}")
    return train, val, test, cross


def _split_metrics(net: torch.nn.Module, val: CropSet, test: CropSet, cross: CropSet, dev: torch.device,
                   augmentation: str, log: Callable[[str], None]) -> tuple[float, dict]:
    """Temperature fitted on the validation logits (with ``augmentation``) and the metrics of every split."""
    lv = _logits(net, val, dev, augmentation)
    temp = fit_temperature(lv, val.noisy)
    log(f"temperature fitted on validation (test-time augmentation {augmentation}): T = {temp:.3f}")
    metrics = {"validation": evaluate_logits(lv, val, temp),
               "validation_uncalibrated": evaluate_logits(lv, val, 1.0),
               "held_out": evaluate_logits(_logits(net, test, dev, augmentation), test, temp),
               "cross_setup": evaluate_logits(_logits(net, cross, dev, augmentation), cross, temp)}
    for k, m in metrics.items():
        log(_fmt(k, m))
    return temp, metrics


def _calibrate_command(args, val, test, cross, dev, log) -> dict:
    """``calibrate``: a trained model (``--init``) with test-time augmentation ``--tta`` and the
    temperature refitted on the validation measurements; every other card entry is kept."""
    from ..screening.network import save_model

    if not args.init:
        raise SystemExit("calibrate needs --init MODEL")
    base = load_model(args.init, device=dev)
    temp, metrics = _split_metrics(base.net, val, test, cross, dev, args.tta, log)
    card = {k: v for k, v in base.card.items() if k not in ("architecture", "tensors", "sha256", "dtype", "date",
                                                             "parameters")}
    card["version"] = args.version
    card["input"] = {**card.get("input", {}), "test_time_augmentation": args.tta}
    card["calibration"] = {"method": "temperature scaling on the validation measurements", "temperature": temp,
                           "test_time_augmentation": args.tta, "from": f"{base.label} (sha256 "
                           f"{str(base.card.get('sha256', ''))[:12]}), weights unchanged",
                           "command": " ".join(sys.argv)}
    card["metrics"] = {**metrics, "before_calibration": base.card.get("metrics", {})}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(base.net.cpu(), args.out_dir / "screening-compact.safetensors", card)
    log(f"wrote {args.out_dir / 'screening-compact.safetensors'}")
    return metrics


def _train_command(args, train, val, test, cross, dev, log) -> dict:
    from ..screening.network import save_model
    from .screening import input_card_for

    net, info = _train(train, val, minutes=args.minutes, seed=args.seed + 7, lr=args.lr, init=args.init or None,
                       log=log, device=dev, recipe=args.recipe)
    temp, metrics = _split_metrics(net, val, test, cross, dev, args.tta, log)
    base = load_model(args.compare, device=dev) if args.compare else None
    if base is not None:  # the same frames through the model it would replace
        bt = base.temperature
        metrics["baseline"] = {"model": base.label, **{
            k: evaluate_logits(_logits(base.net, cs, dev, base.test_time_augmentation), cs, bt)
            for k, cs in (("validation", val), ("held_out", test), ("cross_setup", cross))}}
        for k in ("validation", "held_out", "cross_setup"):
            log(_fmt(f"baseline {base.label} {k}", metrics["baseline"][k]))
        better = metrics["validation"]["accuracy"] > metrics["baseline"]["validation"]["accuracy"]
        log(f"validation accuracy {metrics['validation']['accuracy']:.4f} against the baseline's "
            f"{metrics['baseline']['validation']['accuracy']:.4f}: {'better' if better else 'NOT better'}")
    card = {"name": "screening-compact", "version": args.version,
            "description": f"Compact field screening CNN ({INPUT_KIND_BY_CHANNELS[net.in_channels]} input"
                           + (", full-resolution first stage" if net.full_resolution else "")
                           + "), trained on wide defect families",
            "output": "calibrated probability that the field is noisy: sigmoid(logit / T); noisy if above threshold",
            "threshold": 0.5, "input": {**input_card_for(INPUT_KIND_BY_CHANNELS[net.in_channels]),
                                          "test_time_augmentation": args.tta}, "calibration": {
                "method": "temperature scaling on the validation measurements", "temperature": temp},
            "training_data": {"source": "simulator", "generator_version": FAMILY_GENERATOR_VERSION,
                              "chamber_residue": bool(args.chamber),
                              "seed": args.seed, "measurements": args.n_measurements, "cross_setup": args.n_cross,
                              "defect_types": list(ALL_DEFECT_TYPES), "imperfections": list(ALL_IMPERFECTION_TYPES),
                              "families": {k: list(v) for k, v in DEFECT_FAMILIES.items()},
                              "split": "by measurement, 70/15/15 % train/validation/held-out; cross setup never "
                                       "trained on", "frames": {"train": len(train), "validation": len(val),
                                                                "held_out": len(test), "cross_setup": len(cross)}},
            "training": {"init": args.init or "scratch", "recipe": args.recipe, "best_epoch": info["best_epoch"],
                         "extra_training_sets": [f"{n}:{seed}" for n, seed in args.extra],
                         "wide_na_training_sets": [f"{n}:{seed}" for n, seed in args.wide_na],
                         "large_cell_training_sets": [f"{n}:{seed}" for n, seed in args.large_cells],
                         "no_background_training_sets": [f"{n}:{seed}" for n, seed in args.no_background],
                         "large_cell_no_background_training_sets": [f"{n}:{seed}"
                                                                    for n, seed in args.large_cells_no_background],
                         "wide_pixel_training_sets": [f"{n}:{seed}" for n, seed in args.wide_pixel],
                         "strong_cell_training_sets": [f"{n}:{seed}" for n, seed in args.strong_cells],
                         "config": info["config"], "history": info["history"], "seconds": info["seconds"]},
            "metrics": metrics, "command": " ".join(sys.argv),
            "domain": training_domain(train.setup, train.pixel_size_um, train.wavelength_um)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_model(net.cpu(), args.out_dir / "screening-compact.safetensors", card)
    log(f"wrote {args.out_dir / 'screening-compact.safetensors'}")
    return metrics


def main(argv: Optional[list[str]] = None) -> int:
    from ..models import TrainingLog

    args = _parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    dev = resolve_device(args.device)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log = TrainingLog(args.out_dir / f"screening-families-{args.command}.log")
    log(f"ODT Studio screening families ({FAMILY_GENERATOR_VERSION}); command: {' '.join(sys.argv)}")
    train, val, test, cross = _data(args, log)
    report: dict = {}
    if args.command == "lofo":
        report = run_lofo(train, val, test, families=args.families, minutes=args.minutes, seed=args.seed,
                          device=dev, log=log, max_train_frames=args.max_train_frames, recipe=args.recipe,
                          lr=args.lr)
    elif args.command == "train":
        report = _train_command(args, train, val, test, cross, dev, log)
    elif args.command == "calibrate":
        report = _calibrate_command(args, val, test, cross, dev, log)
    if args.report is not None and report:
        args.report.write_text(json.dumps(report, indent=1), encoding="utf-8")
    log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
