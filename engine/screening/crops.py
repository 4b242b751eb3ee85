"""Labelled screening crops: simulated measurements → retrieved fields → crops, and their augmentation.

This is the part of the screening data code the product itself needs: the fine-tuning on a
lab's overrides (:mod:`engine.screening.retrain`, ``odt-studio train-screening``) regenerates
a replay set from the base model's training distribution (:func:`training_specs`,
:func:`generate_crops`) and augments its batches (:func:`augment_batch`). The training-only
parts (cached data sets, splits, the training script) live in :mod:`engine.training`.

Conventions (``docs/formats.md``): µm, cycles/µm, images (y, x), ratio fields
``U_sample/U_background`` with ``exp(+i(k·r − ωt))`` (positive phase for n > n_m), centre
pixel ``n//2``. Labels here: **1 = noisy**, 0 = clean.

Two sources of fields:

* ``"simulator"`` (the real training data): :func:`engine.simulate.holograms.simulate_measurement`
  makes holograms by multi-slice beam propagation with camera noise and labelled defects;
  :func:`engine.holography.retrieval.retrieve_fields` retrieves the fields exactly as the
  application does; the centre 128 × 128 crop of each field is kept.
* ``"synthetic"``: a fast field-level generator (:func:`synthesize_measurement`) that writes
  band-limited ratio fields of blob-like samples and adds the same families of defects
  directly to the field. It is used by the tests (seconds, not minutes) and as a fallback
  when the simulator is not installed; a model card always says which source was used.

A :class:`CropSet` saves to and loads from ``.npz`` (complex64 crops, labels, measurement
ids, defect types, setup names); the training script caches them outside the repository.

References
----------
D. Ryu et al., "Deep learning-based optical field screening for robust optical diffraction
tomography", Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x — clean/noisy
labels, centre crop, elastic augmentation, cross-setup test on another cell type.
P. Y. Simard, D. Steinkraus, J. C. Platt, "Best practices for convolutional neural networks
applied to visual document analysis", ICDAR (2003) — elastic deformation.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import CancelToken, check_cancel, report
from .network import CROP_SIZE, _centre_crop, _pad_to

__all__ = [
    "CropSet",
    "MeasurementSpec",
    "SYNTHETIC_DEFECTS",
    "synthesize_measurement",
    "simulate_crops",
    "simulate_measurement_for",
    "synthetic_crops",
    "generate_crops",
    "elastic_deform",
    "augment_batch",
    "simulator_available",
    "training_specs",
    "CROSS_SETUP",
    "GENERATOR_VERSION",
]

GENERATOR_VERSION = "screening-dataset/1"
SYNTHETIC_DEFECTS = ("parasitic_fringes", "dmd_artifact", "dust", "blank", "saturation")
CROSS_SETUP = dict(kind="cells", n_angles=45, na=1.0, noise=2.0)


# --------------------------------------------------------------------------- containers
@dataclass
class CropSet:
    """Labelled field crops.

    Attributes
    ----------
    fields : ndarray (M, c, c) complex64
        Centre crops of the ratio fields.
    noisy : ndarray (M,) uint8
        1 = noisy, 0 = clean.
    measurement : ndarray (M,) int32
        Measurement id (unique within a data set): splits never separate a measurement.
    defect : list[str]
        Per-frame defect type ("" for clean frames).
    setup : list[str]
        Per-frame setup name (e.g. ``"bacteria-71-na1.2"``).
    pixel_size_um, wavelength_um : ndarray (M,) float32
        Per-frame optics, for the rule metric.
    unwrapped_phase : ndarray (M, c, c) float32 or None
    """

    fields: np.ndarray
    noisy: np.ndarray
    measurement: np.ndarray
    defect: list = field(default_factory=list)
    setup: list = field(default_factory=list)
    pixel_size_um: Optional[np.ndarray] = None
    wavelength_um: Optional[np.ndarray] = None
    unwrapped_phase: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.fields.shape[0])

    def subset(self, idx: np.ndarray) -> "CropSet":
        idx = np.asarray(idx)
        return CropSet(
            fields=self.fields[idx], noisy=self.noisy[idx], measurement=self.measurement[idx],
            defect=[self.defect[i] for i in idx], setup=[self.setup[i] for i in idx],
            pixel_size_um=None if self.pixel_size_um is None else self.pixel_size_um[idx],
            wavelength_um=None if self.wavelength_um is None else self.wavelength_um[idx],
            unwrapped_phase=None if self.unwrapped_phase is None else self.unwrapped_phase[idx])

    @staticmethod
    def concatenate(sets: Sequence["CropSet"]) -> "CropSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            raise ValueError("nothing to concatenate")
        offset, meas = 0, []
        for s in sets:  # keep measurement ids unique across sets
            meas.append(s.measurement.astype(np.int64) + offset)
            offset = int(meas[-1].max()) + 1
        uw = None
        if all(s.unwrapped_phase is not None for s in sets):
            uw = np.concatenate([s.unwrapped_phase for s in sets])
        return CropSet(
            fields=np.concatenate([s.fields for s in sets]), noisy=np.concatenate([s.noisy for s in sets]),
            measurement=np.concatenate(meas).astype(np.int32),
            defect=sum((list(s.defect) for s in sets), []), setup=sum((list(s.setup) for s in sets), []),
            pixel_size_um=np.concatenate([s.pixel_size_um for s in sets]),
            wavelength_um=np.concatenate([s.wavelength_um for s in sets]), unwrapped_phase=uw)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.unwrapped_phase is None else {"unwrapped_phase": self.unwrapped_phase}
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, fields=self.fields, noisy=self.noisy, measurement=self.measurement,
                 defect=np.array(self.defect, dtype="U32"), setup=np.array(self.setup, dtype="U64"),
                 pixel_size_um=self.pixel_size_um, wavelength_um=self.wavelength_um, **extra)
        tmp.replace(path)
        return path

    @staticmethod
    def load(path: str | Path) -> "CropSet":
        with np.load(path, allow_pickle=False) as z:
            return CropSet(fields=z["fields"], noisy=z["noisy"], measurement=z["measurement"],
                           defect=[str(s) for s in z["defect"]], setup=[str(s) for s in z["setup"]],
                           pixel_size_um=z["pixel_size_um"], wavelength_um=z["wavelength_um"],
                           unwrapped_phase=z["unwrapped_phase"] if "unwrapped_phase" in z.files else None)


@dataclass(frozen=True)
class MeasurementSpec:
    """What to simulate for one measurement.

    Attributes
    ----------
    kind : str
        Phantom kind: ``"beads"``, ``"bacteria"``, ``"cells"``.
    n_angles : int
        45, 49 or 71 illuminations.
    na : float
        Objective (and condenser) NA.
    noise : float
        Relative camera noise level (read noise multiplier; 1 = the setup's default).
    defect_rate : float
        Fraction of frames made noisy (about half in training).
    seed : int
    """

    kind: str
    n_angles: int
    na: float
    noise: float
    defect_rate: float
    seed: int

    @property
    def setup_name(self) -> str:
        return f"{self.kind}-{self.n_angles}-na{self.na:.2f}-noise{self.noise:.1f}"


def simulator_available() -> bool:
    """True when the physics simulator and field retrieval modules are importable."""
    try:
        return (importlib.util.find_spec("engine.simulate.holograms") is not None
                and importlib.util.find_spec("engine.holography.retrieval") is not None)
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- simulator source
#: Per-kind acquisition used for training data: camera image (H, W) at 0.1 µm pixels and the
#: phantom depth (µm). 160² images keep the 128² centre crop away from the field's border at
#: a quarter of the cost of the 256² demo images.
SIM_IMAGE_SHAPE = (160, 160)
SIM_DEPTH_UM = {"beads": 6.0, "bacteria": 4.0, "cells": 8.0}


def simulate_measurement_for(spec: MeasurementSpec, *, image_shape: tuple[int, int] = SIM_IMAGE_SHAPE,
                             device: str = "cpu", imperfection_rate: float = 0.3):
    """Run the physics simulator for one :class:`MeasurementSpec`.

    The setup is the simulator's default microscope (λ 0.532 µm, n_m 1.337, 0.1 µm pixels)
    with ``spec.n_angles`` illuminations, objective NA ``spec.na``, condenser NA
    ``0.92·spec.na``, read noise ``4 e⁻ × spec.noise`` and exposure ``0.4 / spec.noise``
    (more noise = fewer photons); clean frames get mild imperfections (extra noise, slight
    defocus) with probability ``imperfection_rate``.

    Returns
    -------
    engine.simulate.holograms.SimulatedMeasurement
    """
    from ..simulate import holograms, phantoms

    setup = holograms.Setup(n_angles=int(spec.n_angles), na_objective=float(spec.na),
                            na_condenser=float(0.92 * spec.na), read_noise_e=4.0 * float(spec.noise),
                            exposure=0.4 / max(float(spec.noise), 0.25), image_shape=tuple(image_shape))
    rng = np.random.default_rng(spec.seed)
    depth = SIM_DEPTH_UM.get(spec.kind, 6.0)
    phantom = phantoms.make_phantom(spec.kind, setup.phantom_shape(depth), setup.voxel_size_um,
                                    setup.medium_index, rng)
    return holograms.simulate_measurement(phantom, setup, int(spec.seed), defect_rate=float(spec.defect_rate),
                                          device=device, imperfection_rate=imperfection_rate,
                                          name=spec.setup_name)


def simulate_crops(spec: MeasurementSpec, measurement_id: int = 0, *, crop: int = CROP_SIZE,
                   device: str = "cpu", image_shape: tuple[int, int] = SIM_IMAGE_SHAPE) -> CropSet:
    """Simulate one measurement, retrieve its fields as the application does, keep the centre crops.

    Parameters
    ----------
    spec : MeasurementSpec
    measurement_id : int
        Id written into every frame's ``measurement`` entry.
    crop : int
        Centre crop size, pixels.
    device : str
        Simulator/retrieval device.
    image_shape : (H, W)
        Camera image size of the simulation.

    Returns
    -------
    CropSet with ``len == spec.n_angles``; labels from the measurement's ``labels``.
    """
    from ..holography.retrieval import retrieve_fields

    sim = simulate_measurement_for(spec, image_shape=image_shape, device=device)
    meas = sim.measurement
    md = meas.metadata
    ret = retrieve_fields(meas.holograms, meas.backgrounds, md, device=device, unwrap=False)
    f = _pad_to(_centre_crop(np.asarray(ret.field), crop), crop).astype(np.complex64)
    labels = md.labels or ["noisy" if d else "clean" for d in sim.defect_types]
    noisy = np.array([1 if lab == "noisy" else 0 for lab in labels], np.uint8)
    n = f.shape[0]
    px = float(getattr(ret, "pixel_size_um", md.pixel_size_um))
    return CropSet(fields=f, noisy=noisy, measurement=np.full(n, measurement_id, np.int32),
                   defect=[str(d) for d in sim.defect_types], setup=[spec.setup_name] * n,
                   pixel_size_um=np.full(n, px, np.float32),
                   wavelength_um=np.full(n, md.wavelength_um, np.float32))


# --------------------------------------------------------------------------- synthetic source
def _illuminations(n: int, na: float, n_m: float, wl: float, rng: np.random.Generator) -> np.ndarray:
    """n illumination frequencies (cycles/µm) on a spiral within 0.9·NA/λ, the first at 0."""
    k = np.arange(n)
    r = 0.9 * na / wl * np.sqrt(k / max(n - 1, 1))
    a = k * np.pi * (3 - np.sqrt(5)) + rng.uniform(0, 2 * np.pi)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _sample_phase(kind: str, shape: tuple[int, int], px: float, illum: np.ndarray, n_m: float, wl: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Projected phase (rad) of blob-like objects for each illumination, (N, H, W) float32.

    Objects are ellipsoids (cells with a nucleus, rod bacteria, beads) at depths z; tilted
    illumination shifts each object's projection by z·tanθ (a thin-object approximation —
    this generator is only a fast stand-in for the beam-propagation simulator).
    """
    h, w = shape
    y = (np.arange(h) - h // 2)[:, None] * px
    x = (np.arange(w) - w // 2)[None, :] * px
    fov = min(h, w) * px
    objs = []  # (cx, cy, z, a, b, angle, thickness, dn)
    if kind == "cells":
        a = rng.uniform(0.35, 0.6) * fov
        objs.append((rng.normal(0, 0.08) * fov, rng.normal(0, 0.08) * fov, 0.0, a, a * rng.uniform(0.6, 1.0),
                     rng.uniform(0, np.pi), rng.uniform(3, 6), rng.uniform(0.015, 0.03)))
        objs.append((objs[0][0] + rng.normal(0, 0.05) * fov, objs[0][1] + rng.normal(0, 0.05) * fov, 0.0,
                     a * 0.35, a * 0.3, rng.uniform(0, np.pi), rng.uniform(2, 4), rng.uniform(0.01, 0.03)))
        for _ in range(rng.integers(3, 10)):
            objs.append((rng.normal(0, 0.2) * fov, rng.normal(0, 0.2) * fov, rng.normal(0, 1.5), 0.3, 0.3, 0.0,
                         0.6, rng.uniform(0.02, 0.06)))
    elif kind == "bacteria":
        for _ in range(rng.integers(1, 4)):
            ln = rng.uniform(1.5, 4.0)
            objs.append((rng.uniform(-0.3, 0.3) * fov, rng.uniform(-0.3, 0.3) * fov, rng.normal(0, 0.5),
                         ln / 2, 0.45, rng.uniform(0, np.pi), 0.9, rng.uniform(0.03, 0.07)))
    else:  # beads
        for _ in range(rng.integers(1, 3)):
            r = rng.uniform(1.0, 2.5)
            objs.append((rng.uniform(-0.25, 0.25) * fov, rng.uniform(-0.25, 0.25) * fov, rng.normal(0, 0.5),
                         r, r, 0.0, 2 * r, rng.uniform(0.01, 0.1)))
    n = illum.shape[0]
    sin = np.clip(illum * wl / n_m, -0.95, 0.95)
    tan = sin / np.sqrt(1 - (sin ** 2).sum(1, keepdims=True))
    phase = np.zeros((n, h, w), np.float32)
    for cx, cy, z, a, b, ang, t, dn in objs:
        sx, sy = cx + z * tan[:, 0], cy + z * tan[:, 1]
        dx = x[None] - sx[:, None, None]
        dy = y[None] - sy[:, None, None]
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        rr = 1 - (u / a) ** 2 - (v / b) ** 2
        phase += (2 * np.pi / wl * dn * t * np.sqrt(np.clip(rr, 0, None))).astype(np.float32)
    return phase


def _bandlimit(u: np.ndarray, illum: np.ndarray, na: float, wl: float, px: float) -> np.ndarray:
    """Keep the ratio field's spectrum inside the pupil |ν + ν_ill| < NA/λ (shifted pupil)."""
    n, h, w = u.shape
    fy = np.fft.fftfreq(h, d=px)[None, :, None]
    fx = np.fft.fftfreq(w, d=px)[None, None, :]
    mask = (fx + illum[:, 0, None, None]) ** 2 + (fy + illum[:, 1, None, None]) ** 2 < (na / wl) ** 2
    return np.fft.ifft2(np.fft.fft2(u) * mask).astype(np.complex64)


def _add_defect(u: np.ndarray, kind: str, px: float, na: float, wl: float, rng: np.random.Generator) -> np.ndarray:
    """Apply one defect to one ratio field (H, W) complex64."""
    h, w = u.shape
    y = (np.arange(h) - h // 2)[:, None] * px
    x = (np.arange(w) - w // 2)[None, :] * px
    if kind == "parasitic_fringes":
        nu = rng.uniform(0.3, 0.95) * na / wl
        th = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.04, 0.3)
        u = u * (1 + amp * np.exp(2j * np.pi * nu * (x * np.cos(th) + y * np.sin(th)) + 1j * rng.uniform(0, 6.3)))
    elif kind == "dmd_artifact":
        pitch = rng.uniform(0.25, 0.6) * wl / na * 3
        th = rng.uniform(0, np.pi)
        amp = rng.uniform(0.05, 0.25)
        grid = np.cos(2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / pitch) * np.cos(
            2 * np.pi * (-x * np.sin(th) + y * np.cos(th)) / pitch)
        u = u * (1 + amp * grid * np.exp(1j * rng.uniform(0, 6.3)))
    elif kind == "dust":
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(-0.4, 0.4, 2) * w * px
            r = rng.uniform(0.5, 2.5)
            d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
            ring = np.exp(-((d - r) / (0.15 * r + 0.1)) ** 2)
            core = (d < r).astype(np.float32)
            u = u * (1 - rng.uniform(0.3, 0.95) * core) * np.exp(1j * rng.uniform(-3, 3) * ring)
    elif kind == "blank":
        level = rng.uniform(0.0, 0.2)
        u = level * u + (rng.normal(0, 0.3, u.shape) + 1j * rng.normal(0, 0.3, u.shape))
    elif kind == "saturation":
        a = np.abs(u)
        clip = rng.uniform(0.85, 1.0)
        band = np.abs(x * np.cos(rng.uniform(0, 6.3)) + y * np.sin(rng.uniform(0, 6.3))) < rng.uniform(1, 4)
        scale = np.where(band, np.minimum(a, clip) / np.maximum(a, 1e-6), 1.0)
        u = u * scale * np.exp(1j * band * rng.uniform(-1.5, 1.5))
    else:
        raise ValueError(f"unknown synthetic defect {kind!r}")
    return u.astype(np.complex64)


def synthesize_measurement(spec: MeasurementSpec, *, shape: tuple[int, int] = (CROP_SIZE, CROP_SIZE),
                           pixel_size_um: float = 0.1, wavelength_um: float = 0.532,
                           medium_index: float = 1.337) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Fast field-level stand-in for the simulator: ratio fields of one measurement.

    Parameters
    ----------
    spec : MeasurementSpec
    shape : (H, W)
    pixel_size_um, wavelength_um, medium_index : float

    Returns
    -------
    fields : ndarray (N, H, W) complex64
        Band-limited ratio fields with complex Gaussian noise; noisy frames carry one defect.
    illumination_per_um : ndarray (N, 2)
    noisy : ndarray (N,) uint8
    defect : list[str] ("" for clean frames)
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.n_angles
    illum = _illuminations(n, spec.na, medium_index, wavelength_um, rng)
    phase = _sample_phase(spec.kind, shape, pixel_size_um, illum, medium_index, wavelength_um, rng)
    absorb = np.exp(-0.02 * phase / max(float(phase.max()), 1e-6))
    u = _bandlimit((absorb * np.exp(1j * phase)).astype(np.complex64), illum, spec.na, wavelength_um, pixel_size_um)
    # imperfect clean frames: a little defocus-like blur of the phase, mild noise
    sigma = 0.01 * spec.noise * rng.uniform(0.5, 2.0)
    u = u + (sigma * (rng.normal(size=u.shape) + 1j * rng.normal(size=u.shape))).astype(np.complex64)
    noisy = (rng.random(n) < spec.defect_rate).astype(np.uint8)
    defect = [""] * n
    for i in np.flatnonzero(noisy):
        defect[i] = str(rng.choice(SYNTHETIC_DEFECTS))
        u[i] = _add_defect(u[i], defect[i], pixel_size_um, spec.na, wavelength_um, rng)
    return u.astype(np.complex64), illum, noisy, defect


def synthetic_crops(spec: MeasurementSpec, measurement_id: int = 0, *, crop: int = CROP_SIZE,
                    pixel_size_um: float = 0.1, wavelength_um: float = 0.532) -> CropSet:
    """:func:`synthesize_measurement` packed as a :class:`CropSet` (fields already crop-sized)."""
    f, _, noisy, defect = synthesize_measurement(spec, shape=(crop, crop), pixel_size_um=pixel_size_um,
                                                 wavelength_um=wavelength_um)
    n = f.shape[0]
    return CropSet(fields=f, noisy=noisy, measurement=np.full(n, measurement_id, np.int32), defect=defect,
                   setup=[spec.setup_name] * n, pixel_size_um=np.full(n, pixel_size_um, np.float32),
                   wavelength_um=np.full(n, wavelength_um, np.float32))


def generate_crops(specs: Iterable[MeasurementSpec], *, source: str = "auto", crop: int = CROP_SIZE,
                   device: str = "cpu", log: Optional[Callable[[str], None]] = None,
                   progress: Optional[Callable[..., None]] = None,
                   cancel: Optional[CancelToken] = None) -> CropSet:
    """Generate crops for many measurements (ids 0, 1, 2, ... in order of ``specs``).

    Parameters
    ----------
    specs : iterable of MeasurementSpec
    source : {"auto", "simulator", "synthetic"}
        ``"auto"`` uses the simulator when :func:`simulator_available`, else the synthetic one.
    crop : int
    device : str
    log : callable, optional
        Receives one line per measurement.
    progress, cancel : see :mod:`engine.progress`

    Returns
    -------
    CropSet
    """
    specs = list(specs)
    if source == "auto":
        source = "simulator" if simulator_available() else "synthetic"
    out = []
    for i, spec in enumerate(specs):
        check_cancel(cancel)
        if source == "simulator":
            cs = simulate_crops(spec, i, crop=crop, device=device)
        elif source == "synthetic":
            cs = synthetic_crops(spec, i, crop=crop)
        else:
            raise ValueError(f"source must be 'auto', 'simulator' or 'synthetic', got {source!r}")
        out.append(cs)
        if log is not None:
            log(f"measurement {i + 1}/{len(specs)} {spec.setup_name} seed {spec.seed}: "
                f"{len(cs)} frames, {int(cs.noisy.sum())} noisy ({source})")
        report(progress, (i + 1) / len(specs), f"simulated {i + 1} of {len(specs)} measurements")
    cs = CropSet.concatenate(out)
    cs.measurement = np.concatenate([np.full(len(o), k, np.int32) for k, o in enumerate(out)])
    return cs


# --------------------------------------------------------------------------- data plans
def training_specs(n_measurements: int, seed: int, *, defect_rate: float = 0.5) -> list[MeasurementSpec]:
    """Mixed training/validation/test measurements: kinds × angles × NA × noise (no cross setup).

    The cross-setup configuration (:data:`CROSS_SETUP`) is excluded so it stays unseen.
    """
    rng = np.random.default_rng(seed)
    kinds = ("bacteria", "cells", "beads")
    angles = (71, 49, 45)
    nas = (1.2, 1.1, 1.0)
    noises = (0.5, 1.0, 2.0)
    specs = []
    while len(specs) < n_measurements:
        k, a, na, nz = (str(rng.choice(kinds)), int(rng.choice(angles)), float(rng.choice(nas)),
                        float(rng.choice(noises)))
        if (k, a, na, nz) == tuple(CROSS_SETUP.values()):
            continue
        specs.append(MeasurementSpec(k, a, na, nz, defect_rate, int(rng.integers(1 << 31))))
    return specs


# --------------------------------------------------------------------------- augmentation
def elastic_deform(x: torch.Tensor, *, alpha_px: float = 4.0, sigma_px: float = 8.0,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Elastic deformation of a batch of images (Simard et al. 2003), vectorised.

    A random displacement field (uniform in [-1, 1] per pixel) is smoothed with a Gaussian
    of width ``sigma_px`` and scaled so its RMS is about ``alpha_px`` pixels, then each image
    is resampled bilinearly (border values repeated).

    Parameters
    ----------
    x : Tensor (B, C, H, W) float
    alpha_px : float
        RMS displacement, pixels.
    sigma_px : float
        Smoothness of the displacement field, pixels.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor (B, C, H, W), same dtype and device.
    """
    b, _, h, w = x.shape
    dev = x.device
    # smooth noise at low resolution, upsampled: cheap and equivalent to a wide Gaussian blur
    lo = (max(2, int(round(h / sigma_px))), max(2, int(round(w / sigma_px))))
    d = torch.rand((b, 2) + lo, generator=generator, device="cpu").to(dev) * 2 - 1
    d = F.interpolate(d, size=(h, w), mode="bicubic", align_corners=False)
    d = d / d.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-6) * alpha_px
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev),
                            indexing="ij")
    grid = torch.stack([xx[None] + d[:, 0] * 2 / (w - 1), yy[None] + d[:, 1] * 2 / (h - 1)], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def augment_batch(x: torch.Tensor, *, generator: Optional[torch.Generator] = None,
                  elastic_probability: float = 0.5) -> torch.Tensor:
    """Random flips, 90° rotations and (with probability ``elastic_probability``) elastic deformation.

    Flips and rotations keep the physics (a mirrored field is a valid field of the mirrored
    sample); sign of the phase is never flipped (positive phase = denser than the medium).
    """
    b = x.shape[0]
    out = x
    k = int(torch.randint(0, 4, (1,), generator=generator))
    out = torch.rot90(out, k, dims=(2, 3))
    flip = torch.rand(b, generator=generator) < 0.5
    if flip.any():
        out = out.clone()
        out[flip.to(out.device)] = torch.flip(out[flip.to(out.device)], dims=(3,))
    if elastic_probability > 0:
        sel = torch.rand(b, generator=generator) < elastic_probability
        if sel.any():
            out = out.clone()
            idx = sel.to(out.device)
            out[idx] = elastic_deform(out[idx], generator=generator)
    return out
