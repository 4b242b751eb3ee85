"""Off-axis hologram acquisition: DMD illumination sets, camera, backgrounds, defects.

Conventions (``docs/formats.md``)
-----------------------------------
* Lengths in µm, spatial frequencies in cycles/µm; images (y, x), pixel ``j`` of ``n`` at
  ``(j - n//2) * pixel``; spectra ``numpy.fft.fft2`` with ``fftfreq(n, d=pixel)``.
* Fields follow ``exp(+i(k·r - ωt))`` (positive phase for n > n_m).
* The camera records ``I = |O + R|²`` with the object beam ``O = β · u · exp(2πi f·r) · A_i``
  (``u`` the sample field divided by the incident wave, ``f`` the illumination, ``A_i`` the
  beam pattern: illumination envelope, image-plane aberrations and fixed stray fringes of
  illumination ``i``) and the reference ``R ∝ exp(-2πi c·r)``, so the object's side band
  ``O R*`` sits at **+c** (``carrier_per_um``) in ``fft2`` of the hologram. The background of
  illumination ``i`` is recorded with the same ``A_i`` and ``R`` but no sample (``u = 1``),
  with the same camera fixed-pattern gain, so dividing the retrieved sample field by the
  background field removes ``A_i`` — and not dividing leaves it in.
* Camera: photo-electrons ~ Poisson(gain × I × photons), Gaussian read noise (e⁻), a dark
  offset, conversion to ``bit_depth`` ADU and clipping at full scale (saturation).

References
----------
.. [1] E. Cuche, P. Marquet and C. Depeursinge, "Spatial filtering for zero-order and twin-
   image elimination in digital off-axis holography", Appl. Opt. 39, 4070 (2000).
.. [2] K. Lee et al., "Time-multiplexed structured illumination using a DMD for optical
   diffraction tomography", Opt. Lett. 42, 999 (2017); S. Shin et al., "Active illumination
   using a digital micromirror device for quantitative phase imaging", Opt. Lett. 40, 5407
   (2015) (DMD illumination sets).
.. [3] EMVA Standard 1288, release 4.0 (2021) (camera noise model: shot, read, PRNU, DSNU).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .. import __version__ as ENGINE_VERSION
from ..measurement import Measurement
from ..metadata import MeasurementMetadata
from ..progress import CancelToken, check_cancel, report, sub_progress
from .beam_propagation import propagate_scalar, propagate_vectorial, snap_illuminations
from .chamber import ChamberResidue, ChamberResidueModel
from .defects import (ALL_DEFECT_TYPES, ALL_IMPERFECTION_TYPES, DEFECT_TYPES, IMPERFECTION_TYPES, FrameContext,
                      apply_defect, apply_imperfection, refocus)
from .phantoms import Phantom

__all__ = [
    "Setup",
    "SimulatedMeasurement",
    "illumination_pattern",
    "simulate_measurement",
    "SIMULATOR_NAME",
    "SIMULATOR_VERSION",
]

SIMULATOR_NAME = "odt-studio engine.simulate (SSNP multi-slice)"
SIMULATOR_VERSION = "1.0"

# independent random streams, one per purpose (and per frame), derived from one seed
_STREAM_BEAM, _STREAM_CAMERA, _STREAM_CHOICE, _STREAM_SAMPLE, _STREAM_BACKGROUND, _STREAM_DEFECT, \
    _STREAM_IMPERFECT, _STREAM_CHAMBER = range(8)


@dataclass
class Setup:
    """An ODT microscope: optics, DMD illumination and camera.

    Attributes
    ----------
    wavelength_um : float
        Vacuum wavelength, µm.
    medium_index : float
        Immersion medium index n_m.
    na_objective, na_condenser : float
        Numerical apertures of the imaging objective and of the illumination (DMD) side.
    pixel_size_um : float
        Camera pixel at the sample, µm.
    image_shape : (H, W)
        Camera image size, pixels (even numbers).
    carrier_per_um : (fx, fy) or None
        Side-band position of the object field in ``fft2`` of the hologram; default
        ``(1/(4p), 1/(4p))`` (a quarter of the sampling rate along each axis).
    bit_depth : int
        ADC bits (8–16); images are uint8 for ≤ 8 bits, else uint16.
    full_well_e : float
        Full-well capacity, electrons.
    read_noise_e : float
        Read noise, electrons RMS.
    exposure : float
        Mean background-hologram level as a fraction of the full well.
    reference_ratio : float
        Reference to object-beam amplitude ratio |R|/|O| (1 gives the best fringe contrast).
    fixed_pattern_strength : float
        Strength of the fixed patterns shared by sample and background: stray-light fringes and
        speckle in the object beam (relative amplitude) and the camera's pixel gain (PRNU, half).
    aberration_rad : float
        RMS image-plane phase aberration of the object beam (rad), common to all illuminations,
        plus 25 % of it varying with the illumination.
    n_angles : int
        Number of illuminations (DMD patterns), the first at normal incidence.
    pattern : {"spiral", "ring"}
        Layout of the illuminations within the condenser NA.
    sim_pixel_um : float or None
        Lateral voxel of the simulation (phantom), µm; default the camera pixel. The simulated
        field of view equals the camera's, so ``image_shape × pixel / sim_pixel`` must be even
        integers; fields are resampled to the camera exactly (Fourier interpolation of the
        pupil-limited field). A coarser grid (e.g. 0.2 µm for a 0.1 µm camera pixel) is much
        faster and fine for smooth samples while ``sim_pixel < λ/(2 NA)``.
    voxel_z_um : float or None
        Slice thickness of the phantom; default the lateral voxel size (must be < λ/n_m).
    steep_power : float
        Illumination power at the condenser NA relative to normal incidence; in between it falls
        as ``steep_power ** (|f|/f_max)²`` (a Gaussian apodisation of the condenser pupil, as a
        DMD or galvo scan behind a condenser gives). Below 1 the steep illuminations have less
        light, weaker fringes and so a lower SNR: the condition that broke unwrapping on
        independent data (issue #16). Default 1 (flat).
    envelope_width : float or None
        1/e radius of the illumination's Gaussian envelope in the image, as a fraction of half the
        field of view; default None draws a wide one (1.5–2.5). Narrow values (0.6–1) leave the
        image corners dark and noisy.
    chamber_residue_rms, chamber_near_fraction : float
        The chamber's residual coherent noise (:mod:`engine.simulate.chamber`): dust and residue
        that differ between the sample and the background exposure; RMS of ``|T − 1|`` of the
        residual transmission and the share of the near (Fresnel-ring) part. Default 0 (none).
    focus_offset_um : float
        The sample's distance from the focal plane in every frame (a measurement focused a little
        off), µm; default 0.
    """

    wavelength_um: float = 0.532
    medium_index: float = 1.337
    na_objective: float = 1.2
    na_condenser: float = 1.1
    pixel_size_um: float = 0.1
    image_shape: tuple[int, int] = (256, 256)
    carrier_per_um: Optional[tuple[float, float]] = None
    bit_depth: int = 12
    full_well_e: float = 12000.0
    read_noise_e: float = 4.0
    exposure: float = 0.4
    reference_ratio: float = 1.0
    fixed_pattern_strength: float = 0.05
    aberration_rad: float = 0.6
    n_angles: int = 71
    pattern: str = "spiral"
    sim_pixel_um: Optional[float] = None
    voxel_z_um: Optional[float] = None
    steep_power: float = 1.0
    envelope_width: Optional[float] = None
    chamber_residue_rms: float = 0.0
    chamber_near_fraction: float = 0.5
    focus_offset_um: float = 0.0

    def __post_init__(self):
        if not 0 < self.steep_power <= 1:
            raise ValueError("steep_power must be in (0, 1]")
        if self.envelope_width is not None and self.envelope_width <= 0:
            raise ValueError("envelope_width must be positive")
        self.image_shape = (int(self.image_shape[0]), int(self.image_shape[1]))
        if self.image_shape[0] % 2 or self.image_shape[1] % 2:
            raise ValueError(f"image_shape {self.image_shape} must be even")
        if not (0 < self.na_condenser <= self.na_objective < self.medium_index):
            raise ValueError("need 0 < na_condenser <= na_objective < medium_index")
        if not 1 <= int(self.bit_depth) <= 16:
            raise ValueError("bit_depth must be 1..16")
        reach = max(abs(c) for c in self.carrier) + self.na_objective / self.wavelength_um
        if reach > 1 / (2 * self.pixel_size_um) + 1e-9:
            warnings.warn(f"the object side band (carrier {self.carrier} ± NA/λ = {self.na_objective / self.wavelength_um:.2f}"
                          f" cycles/µm) does not fit the camera's Nyquist limit {1 / (2 * self.pixel_size_um):.2f}"
                          " cycles/µm: the holograms alias (use a smaller pixel or NA)", stacklevel=3)

    @property
    def carrier(self) -> tuple[float, float]:
        if self.carrier_per_um is not None:
            return (float(self.carrier_per_um[0]), float(self.carrier_per_um[1]))
        c = 1.0 / (4.0 * self.pixel_size_um)
        # on the FFT grid of the image, so the side band is a clean shift
        H, W = self.image_shape
        return (round(c * W * self.pixel_size_um) / (W * self.pixel_size_um),
                round(c * H * self.pixel_size_um) / (H * self.pixel_size_um))

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        """Phantom voxel (dz, dy, dx) that this setup simulates with."""
        d = float(self.sim_pixel_um if self.sim_pixel_um is not None else self.pixel_size_um)
        return (float(self.voxel_z_um if self.voxel_z_um is not None else d), d, d)

    @property
    def sim_shape_yx(self) -> tuple[int, int]:
        """Lateral size (Y, X) of the simulation grid (same field of view as the camera)."""
        d = self.voxel_size_um[1]
        out = []
        for n in self.image_shape:
            m = n * self.pixel_size_um / d
            if abs(m - round(m)) > 1e-6 or int(round(m)) % 2:
                raise ValueError(f"image size {n} × pixel {self.pixel_size_um} µm is not an even number of "
                                 f"simulation voxels of {d} µm")
            out.append(int(round(m)))
        return (out[0], out[1])

    def phantom_shape(self, depth_um: float) -> tuple[int, int, int]:
        """Phantom shape (Z, Y, X) covering ``depth_um`` in z and the camera's field of view."""
        dz = self.voxel_size_um[0]
        Z = int(np.ceil(depth_um / dz - 1e-9))
        Z += Z % 2
        return (Z, *self.sim_shape_yx)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["carrier_per_um"] = list(self.carrier)
        return d


@dataclass
class SimulatedMeasurement:
    """The output of :func:`simulate_measurement`.

    Attributes
    ----------
    measurement : Measurement
        Holograms (N, H, W), backgrounds (N, H, W) and metadata (illuminations, carrier,
        labels, ``frames`` when polarisation-resolved; ``extra`` keys ``defects``,
        ``imperfections`` and ``simulator``).
    fields_true : ndarray (N, H, W) complex64
        The clean sample field divided by the incident wave of each image (before defects,
        imperfections and camera), at the focal plane, after the pupil.
    defect_types : list of str
        Per image: one of :data:`~engine.simulate.defects.DEFECT_TYPES`, or ``""`` when clean.
    phantom : Phantom
        The phantom simulated.
    imperfections : list of str
        Per image: ``""``, ``"mild-noise"`` or ``"defocus"`` (clean frames only).
    jones_true : ndarray (N_ill, 2, 2, H, W) complex64 or None
        For anisotropic phantoms: the Jones field J[out, in] per illumination.
    defect_info : list of dict
        Per image: the parameters its defect was drawn with (``FrameContext.info`` of
        :mod:`engine.simulate.defects`, e.g. an obstruction's ``energy_um2``, ``mode``, ``place``,
        ``defocus_um``); ``{}`` for a clean frame or when the defects were not applied.
    seed : int
        The seed every random stream was derived from.
    setup : Setup
    """

    measurement: Measurement
    fields_true: np.ndarray
    defect_types: list
    phantom: Phantom
    imperfections: list = field(default_factory=list)
    jones_true: Optional[np.ndarray] = None
    seed: int = 0
    setup: Optional[Setup] = None
    defect_info: list = field(default_factory=list)


def illumination_pattern(n_angles: int, na_condenser: float, wavelength_um: float,
                         pattern: str = "spiral") -> np.ndarray:
    """Transverse frequencies (N, 2) = (f_x, f_y), cycles/µm, of a DMD illumination set.

    The first illumination is normal incidence; the others fill the condenser NA:
    ``"spiral"``: a Fermat (golden-angle) spiral, radius ∝ sqrt(k); ``"ring"``: concentric
    rings at NA·i/R with a number of angles ∝ the ring radius (e.g. 71 = 1 + 7 + 14 + 21 + 28,
    49 = 1 + 8 + 16 + 24); ``"circle"``: one ring at the full condenser NA.

    References
    ----------
    .. [1] Shin et al., Opt. Lett. 40, 5407 (2015); Lee et al., Opt. Lett. 42, 999 (2017).
    """
    n = int(n_angles)
    if n < 1:
        raise ValueError("n_angles must be >= 1")
    rmax = na_condenser / wavelength_um
    pts = [(0.0, 0.0)]
    m = n - 1
    if m > 0:
        if pattern == "spiral":
            golden = np.pi * (3 - np.sqrt(5))
            k = np.arange(1, m + 1)
            r = rmax * np.sqrt(k / m)
            a = k * golden
            pts += list(zip(r * np.cos(a), r * np.sin(a)))
        elif pattern == "ring":
            R = max(1, int(round(np.sqrt(m / 3.5))))
            weights = np.arange(1, R + 1, dtype=float)
            counts = np.floor(m * weights / weights.sum()).astype(int)
            counts[-1] += m - counts.sum()
            for i, c in enumerate(counts, start=1):
                a = 2 * np.pi * (np.arange(c) + 0.5 * (i % 2)) / max(c, 1)
                pts += list(zip(rmax * i / R * np.cos(a), rmax * i / R * np.sin(a)))
        elif pattern == "circle":
            a = 2 * np.pi * np.arange(m) / m
            pts += list(zip(rmax * np.cos(a), rmax * np.sin(a)))
        else:
            raise ValueError(f"unknown illumination pattern {pattern!r}: 'spiral', 'ring' or 'circle'")
    return np.asarray(pts, dtype=np.float64)


def _snap_unique(illum: np.ndarray, shape, pixel) -> np.ndarray:
    """Snap to the FFT grid; nudge duplicates to a free neighbouring grid point."""
    snapped = snap_illuminations(illum, shape, (pixel, pixel))
    step = np.array([1.0 / (shape[1] * pixel), 1.0 / (shape[0] * pixel)])
    seen = set()
    out = []
    for f in snapped:
        key = tuple(np.round(f / step).astype(int))
        ring = 1
        while key in seen:
            cands = [(key[0] + dx, key[1] + dy) for dx in range(-ring, ring + 1) for dy in range(-ring, ring + 1)]
            free = [c for c in cands if c not in seen]
            if free:
                key = min(free, key=lambda c: (c[0] * step[0]) ** 2 + (c[1] * step[1]) ** 2)
            ring += 1
        seen.add(key)
        out.append(np.array(key) * step)
    return np.asarray(out)


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(stream), int(index)])


def _low_order_phase(x, y, half_extent, rng, rms):
    """Random smooth phase (Zernike-like polynomial up to 3rd order) with a given RMS."""
    u, v = x / half_extent, y / half_extent
    terms = [u * u + v * v, u * u - v * v, u * v, u ** 3 + u * v * v, v ** 3 + u * u * v, u ** 3 - 3 * u * v * v]
    c = rng.normal(size=len(terms))
    ph = sum(ci * t for ci, t in zip(c, terms))
    ph = ph - ph.mean()
    s = ph.std()
    return ph * (rms / s) if s > 0 else ph


def _lowpass_noise(shape, rng, cutoff_frac):
    H, W = shape
    vy = np.fft.fftfreq(H)[:, None]
    vx = np.fft.fftfreq(W)[None, :]
    filt = np.exp(-(vx ** 2 + vy ** 2) / (2 * cutoff_frac ** 2))
    n = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape) + 1j * rng.normal(size=shape)) * filt)
    return n / (np.sqrt(np.mean(np.abs(n) ** 2)) + 1e-12)


class _Optics:
    """Fixed parts of the instrument for one measurement (beam patterns, reference, camera maps)."""

    def __init__(self, setup: Setup, illum: np.ndarray, seed: int):
        H, W = setup.image_shape
        p = setup.pixel_size_um
        self.y = ((np.arange(H) - H // 2) * p)[:, None]
        self.x = ((np.arange(W) - W // 2) * p)[None, :]
        half = 0.5 * max(H, W) * p
        rb = _rng(seed, _STREAM_BEAM)
        # illumination envelope (a wide Gaussian, slightly off-centre) and common aberration
        cy, cx = rb.uniform(-0.15, 0.15, 2) * half
        w = rb.uniform(1.5, 2.5) * half
        if setup.envelope_width is not None:
            w = float(setup.envelope_width) * half
        env = np.exp(-((self.x - cx) ** 2 + (self.y - cy) ** 2) / w ** 2)
        phase = _low_order_phase(self.x, self.y, half, rb, setup.aberration_rad)
        s = setup.fixed_pattern_strength
        stray = np.zeros((H, W), dtype=np.complex128)
        for _ in range(2):  # fixed fringes from reflections in the optics
            rho = rb.uniform(0.2, 0.8) * setup.na_objective / setup.wavelength_um
            a = rb.uniform(0, 2 * np.pi)
            stray += rb.uniform(0.5, 1.0) * np.exp(2j * np.pi * rho * (np.cos(a) * self.x + np.sin(a) * self.y)
                                                   + 1j * rb.uniform(0, 2 * np.pi))
        speckle = _lowpass_noise((H, W), rb, 0.03)
        self.common = env * np.exp(1j * phase) * (1 + s * (0.5 * stray + 0.5 * speckle))
        self.per_illum_rms = 0.25 * setup.aberration_rad
        self.half = half
        self.seed = seed
        c = setup.carrier
        ref_phase = _low_order_phase(self.x, self.y, half, rb, 0.3 * setup.aberration_rad)
        self.reference = setup.reference_ratio * np.exp(-2j * np.pi * (c[0] * self.x + c[1] * self.y) + 1j * ref_phase)
        rc = _rng(seed, _STREAM_CAMERA)
        self.prnu = 1 + 0.5 * s * rc.normal(size=(H, W))
        self.dark_e = 0.01 * setup.full_well_e * (1 + 0.2 * s * rc.normal(size=(H, W)))
        self.illum = illum

    def beam(self, i: int, setup: Setup) -> np.ndarray:
        """Object-beam pattern A_i times the illumination tilt (sample-free object beam)."""
        fx, fy = self.illum[i]
        r = _rng(self.seed, _STREAM_BEAM, 1 + i)
        ph = _low_order_phase(self.x, self.y, self.half, r, self.per_illum_rms) if self.per_illum_rms > 0 else 0.0
        beam = self.common * np.exp(1j * ph + 2j * np.pi * (fx * self.x + fy * self.y))
        if setup.steep_power < 1.0:
            rel = (fx**2 + fy**2) / (setup.na_condenser / setup.wavelength_um) ** 2
            beam = beam * np.sqrt(setup.steep_power ** rel)
        return beam


def _camera(intensity: np.ndarray, optics: _Optics, setup: Setup, rng: np.random.Generator,
            exposure_gain: float = 1.0, read_noise_gain: float = 1.0) -> np.ndarray:
    """Photo-electrons, noise, ADC: an image of ``bit_depth`` bits (uint8/uint16)."""
    mean_level = setup.reference_ratio ** 2 + 1.0  # mean |O + R|² of a background
    photons = intensity * (setup.exposure * setup.full_well_e / mean_level) * exposure_gain
    electrons = rng.poisson(np.clip(photons * optics.prnu, 0, None)).astype(np.float64)
    electrons += optics.dark_e + rng.normal(0.0, setup.read_noise_e * read_noise_gain, intensity.shape)
    full = 2 ** int(setup.bit_depth) - 1
    adu = np.clip(np.round(electrons / setup.full_well_e * full), 0, full)
    return adu.astype(np.uint8 if setup.bit_depth <= 8 else np.uint16)


def _resample(fields: np.ndarray, illum: np.ndarray, sim_pixel: float, shape: tuple[int, int],
              pixel: float) -> np.ndarray:
    """Fields divided by the incident wave, (N, …, Ys, Xs) on the simulation grid, resampled to the
    camera grid (H, W) by Fourier interpolation of the pupil-limited total field (exact)."""
    Ys, Xs = fields.shape[-2:]
    H, W = shape
    if (Ys, Xs) == (H, W):
        return fields

    def tilt(n_y, n_x, d):
        y = ((np.arange(n_y) - n_y // 2) * d)[:, None]
        x = ((np.arange(n_x) - n_x // 2) * d)[None, :]
        return np.exp(2j * np.pi * (illum[:, 0, None, None] * x + illum[:, 1, None, None] * y))

    extra = (1,) * (fields.ndim - 3)
    t_sim = tilt(Ys, Xs, sim_pixel).reshape((len(illum),) + extra + (Ys, Xs))
    spec = np.fft.fftshift(np.fft.fft2(fields * t_sim), axes=(-2, -1))
    out = np.zeros(fields.shape[:-2] + (H, W), dtype=np.complex128)
    hy, hx = min(H, Ys), min(W, Xs)
    oy, ox = (H - hy) // 2, (W - hx) // 2
    sy, sx = (Ys - hy) // 2, (Xs - hx) // 2
    out[..., oy:oy + hy, ox:ox + hx] = spec[..., sy:sy + hy, sx:sx + hx]
    res = np.fft.ifft2(np.fft.ifftshift(out, axes=(-2, -1))) * (H * W / (Ys * Xs))
    t_cam = tilt(H, W, pixel).reshape((len(illum),) + extra + (H, W))
    return (res / t_cam).astype(np.complex64)


def _choose_defects(n_frames: int, defect_rate: float, defect_types: Sequence[str], rng) -> list[str]:
    out = [""] * n_frames
    if defect_rate <= 0 or not defect_types:
        return out
    n_bad = int(round(defect_rate * n_frames))
    n_bad = min(max(n_bad, 1 if defect_rate > 0 else 0), n_frames)
    idx = rng.choice(n_frames, size=n_bad, replace=False)
    for k, i in enumerate(sorted(idx)):
        out[i] = str(defect_types[k % len(defect_types)] if k < len(defect_types) else rng.choice(list(defect_types)))
    return out


def _check_inputs(phantom: Phantom, setup: Setup, defect_types: tuple, imperfection_types: tuple,
                  defect_rate: float, imperfection_rate: float) -> None:
    """Raise ValueError unless the phantom fits the setup and the defect settings are known and in range."""
    for d in defect_types:
        if d not in ALL_DEFECT_TYPES:
            raise ValueError(f"unknown defect type {d!r}: one of {ALL_DEFECT_TYPES}")
    for d in imperfection_types:
        if d not in ALL_IMPERFECTION_TYPES:
            raise ValueError(f"unknown imperfection {d!r}: one of {ALL_IMPERFECTION_TYPES}")
    if not 0 <= defect_rate <= 1 or not 0 <= imperfection_rate <= 1:
        raise ValueError("defect_rate and imperfection_rate must lie in [0, 1]")
    exp_vox = setup.voxel_size_um
    if tuple(phantom.ri.shape[1:]) != setup.sim_shape_yx:
        raise ValueError(f"phantom lateral shape {phantom.ri.shape[1:]} must be the setup's simulation grid "
                         f"{setup.sim_shape_yx} (use setup.phantom_shape)")
    if not np.allclose(phantom.voxel_size_um[1:], exp_vox[1:], rtol=1e-6):
        raise ValueError(f"phantom voxel (dy, dx) = {phantom.voxel_size_um[1:]} must be the setup's {exp_vox[1:]}")
    if abs(phantom.medium_index - setup.medium_index) > 1e-9:
        raise ValueError(f"phantom medium index {phantom.medium_index} differs from the setup's {setup.medium_index}")


def _sample_fields(phantom: Phantom, setup: Setup, illum: np.ndarray, *, device: str, method: str,
                   progress: Optional[Callable[..., None]], cancel: Optional[CancelToken]):
    """The sample's fields on the camera grid, one per frame.

    Returns
    -------
    fields_true : (n_frames, H, W) complex64
        Field divided by the incident wave.
    jones : (N, 2, 2, H, W) complex or None
        The Jones fields [pol_out, pol_in] of an anisotropic phantom.
    frames : list of (illumination, pol_in, pol_out)
        For a polarised measurement, for each illumination pol_in x then y, for each pol_out x then y.
    """
    H, W = setup.image_shape
    p = setup.pixel_size_um
    sim_dx = setup.voxel_size_um[1]
    if phantom.anisotropic:
        jones = propagate_vectorial(phantom, setup.wavelength_um, illum, setup.na_objective, device=device,
                                    progress=progress, cancel=cancel, method=method)
        jones = _resample(jones, illum, sim_dx, (H, W), p)
        frames = [(i, pin, pout) for i in range(len(illum)) for pin in (0, 1) for pout in (0, 1)]
        fields_true = np.stack([jones[i, pout, pin] for i, pin, pout in frames]).astype(np.complex64)
        return fields_true, jones, frames
    fields_true = _resample(propagate_scalar(phantom, setup.wavelength_um, illum, setup.na_objective,
                                             device=device, progress=progress, cancel=cancel, method=method),
                            illum, sim_dx, (H, W), p).astype(np.complex64)
    return fields_true, None, [(i, 0, 0) for i in range(len(illum))]


def _choose_imperfections(seed: int, defects: list[str], rate: float, types: Sequence[str]) -> list[str]:
    """Imperfection of each frame ("" for none): drawn per frame, independently of the defects, never on a noisy one."""
    n_frames = len(defects)
    imperf = [""] * n_frames
    if rate > 0:
        for k in range(n_frames):
            r = _rng(seed, _STREAM_IMPERFECT, 100_000 + k)
            if r.random() < rate and not defects[k]:
                imperf[k] = str(r.choice(types))
    return imperf


def _noise_rng(seed: int, stream: int, k: int, noise_draw: int) -> np.random.Generator:
    """Camera-noise source of frame ``k``: draw 0 is the measurement's own, others are new realisations."""
    return _rng(seed, stream, k) if not noise_draw else np.random.default_rng([int(seed), stream, k, int(noise_draw)])


def _acquire(fields_true: np.ndarray, frames: list, illum: np.ndarray, optics: _Optics, setup: Setup, seed: int,
             defects: list[str], imperf: list[str], *, progress: Optional[Callable[..., None]],
             cancel: Optional[CancelToken], apply_defects: bool = True, noise_draw: int = 0,
             defect_info: Optional[list] = None) -> tuple[np.ndarray, np.ndarray]:
    """Holograms and backgrounds (n_frames, H, W) uint8/uint16 of the frames; reports progress 0.8 → 1.
    Each frame's defect parameters are appended to ``defect_info`` when given (``{}`` for none)."""
    H, W = setup.image_shape
    p = setup.pixel_size_um
    n_frames = len(frames)
    dtype = np.uint8 if setup.bit_depth <= 8 else np.uint16
    holos = np.empty((n_frames, H, W), dtype=dtype)
    backs = np.empty((n_frames, H, W), dtype=dtype)
    beams: dict[int, np.ndarray] = {}
    chamber = ChamberResidueModel(
        ChamberResidue(setup.chamber_residue_rms, setup.chamber_near_fraction,
                       int(_rng(seed, _STREAM_CHAMBER).integers(1 << 31))),
        (H, W), p, setup.wavelength_um, setup.medium_index, setup.na_objective) if setup.chamber_residue_rms else None
    for k, (i, pin, pout) in enumerate(frames):
        check_cancel(cancel)
        if i not in beams:
            beams.clear()
            beams[i] = optics.beam(i, setup)
        beam = beams[i]
        ctx = FrameContext((H, W), p, setup.wavelength_um, setup.medium_index, setup.na_objective, illum[i])
        ctx.measurement_seed = seed
        u = fields_true[k].astype(np.complex128)
        if setup.focus_offset_um:
            u = refocus(u, setup.focus_offset_um, ctx)
        if imperf[k]:
            u = apply_imperfection(imperf[k], u, ctx, _rng(seed, _STREAM_IMPERFECT, 1 + k))
        t_sample, t_back = chamber.transmissions(illum[i], k) if chamber is not None else (1.0, 1.0)
        obj = u * beam * t_sample
        if defects[k] and apply_defects:
            ctx.info.clear()  # the defect's own parameters only (the focus offset wrote its defocus there)
            obj = apply_defect(defects[k], obj, u, ctx, _rng(seed, _STREAM_DEFECT, k))
        if defect_info is not None:
            defect_info.append(dict(ctx.info) if defects[k] and apply_defects else {})
        holos[k] = _camera(np.abs(obj + optics.reference) ** 2, optics, setup,
                           _noise_rng(seed, _STREAM_SAMPLE, k, noise_draw),
                           ctx.exposure_gain * ctx.shared_exposure_gain, ctx.read_noise_gain)
        holos[k] = ctx.apply_camera_effects(holos[k], setup.bit_depth)  # hot pixels, row noise, glints
        bg_obj = beam * t_back if pin == pout else np.zeros_like(beam)  # crossed analyser: no background field
        backs[k] = _camera(np.abs(bg_obj + optics.reference) ** 2, optics, setup,
                           _noise_rng(seed, _STREAM_BACKGROUND, k, noise_draw),
                           ctx.shared_exposure_gain, ctx.read_noise_gain)
        report(progress, 0.8 + 0.2 * (k + 1) / n_frames, f"holograms: {k + 1}/{n_frames}")
    return holos, backs


def simulate_measurement(phantom: Phantom, setup: Setup, rng_or_seed: Union[np.random.Generator, int, None] = 0,
                         defect_rate: float = 0.0, defect_types: Optional[Sequence[str]] = None,
                         device: str = "auto", progress: Optional[Callable[..., None]] = None,
                         cancel: Optional[CancelToken] = None, *, imperfection_rate: float = 0.0,
                         method: str = "ssnp", name: str = "simulated",
                         illuminations_per_um: Optional[np.ndarray] = None,
                         imperfection_types: Optional[Sequence[str]] = None, apply_defects: bool = True,
                         noise_draw: int = 0) -> SimulatedMeasurement:
    """Simulate one multi-angle off-axis ODT acquisition of a phantom.

    Parameters
    ----------
    phantom : Phantom
        Lateral grid ``setup.sim_shape_yx`` with voxel ``setup.voxel_size_um``
        (use ``setup.phantom_shape`` and ``setup.voxel_size_um``); anisotropic phantoms
        (``epsilon``) give polarisation-resolved data (4 images per illumination: pol_in x then
        y, for each pol_out x then y).
    setup : Setup
        The microscope.
    rng_or_seed : Generator or int
        Randomness (an int seed, or a Generator from which a seed is drawn). All noise, beam
        patterns and defects derive from it: the same seed gives identical images.
    defect_rate : float
        Fraction of images made noisy (0..1); each noisy image gets one defect type.
    defect_types : sequence of str, optional
        Allowed defect types (default :data:`~engine.simulate.defects.DEFECT_TYPES`; any of
        :data:`~engine.simulate.defects.ALL_DEFECT_TYPES`, the wide families of issue #19);
        the first noisy frames cycle through them so each type appears.
    device : {"auto", "cpu", "cuda"}
        Torch device for the propagation.
    progress, cancel
        Progress callback and cancel token.
    imperfection_rate : float
        Fraction of the clean images given a mild imperfection (more noise, slight defocus).
    method : {"ssnp", "bpm"}
        Propagation model (see :func:`~engine.simulate.beam_propagation.propagate_scalar`).
    name : str
        Measurement name.
    illuminations_per_um : (N, 2), optional
        Illuminations to use instead of the setup's DMD pattern (snapped to the FFT grid).
    imperfection_types : sequence of str, optional
        Imperfections drawn for clean frames (default
        :data:`~engine.simulate.defects.IMPERFECTION_TYPES`; any of ``ALL_IMPERFECTION_TYPES``).
    apply_defects : bool
        False: choose the defects (and so every frame's imperfection) exactly as with True, but leave
        the defective frames without their defect — the *defect-free twin* of the same measurement,
        with the same camera noise, for measuring what each defect changes
        (:mod:`engine.training.screening_severity`). ``defect_types`` and the labels still name the
        defects that were drawn.
    noise_draw : int
        0: the measurement's own camera noise (shot, read, quantisation). Another value: a new, independent
        realisation of it in every sample and background frame, everything else unchanged.

    Returns
    -------
    SimulatedMeasurement
        Holograms, backgrounds, metadata with ``labels`` ("clean"/"noisy"), the clean fields,
        per-image defect types and imperfections.

    References
    ----------
    .. [1] Cuche, Marquet and Depeursinge, Appl. Opt. 39, 4070 (2000).
    .. [2] Ryu et al., Sci. Rep. 9, 15239 (2019) (defects of real ODT data).
    """
    if isinstance(rng_or_seed, np.random.Generator):
        seed = int(rng_or_seed.integers(0, 2 ** 63 - 1))
    else:
        seed = int(0 if rng_or_seed is None else rng_or_seed)
    defect_types = tuple(DEFECT_TYPES if defect_types is None else defect_types)
    imperfection_types = tuple(IMPERFECTION_TYPES if imperfection_types is None else imperfection_types)
    _check_inputs(phantom, setup, defect_types, imperfection_types, defect_rate, imperfection_rate)
    H, W = setup.image_shape
    exp_vox = setup.voxel_size_um
    p = setup.pixel_size_um
    illum0 = (illumination_pattern(setup.n_angles, setup.na_condenser, setup.wavelength_um, setup.pattern)
              if illuminations_per_um is None else np.atleast_2d(np.asarray(illuminations_per_um, float)))
    illum = _snap_unique(illum0, (H, W), p)  # the camera and simulation grids share the field of view

    # --- physics: the sample's fields (80 % of the progress)
    fields_true, jones, frames = _sample_fields(phantom, setup, illum, device=device, method=method,
                                                progress=sub_progress(progress, 0.0, 0.8, ""), cancel=cancel)
    polarised = jones is not None
    n_frames = len(frames)

    # --- acquisition
    optics = _Optics(setup, illum, seed)
    choice_rng = _rng(seed, _STREAM_CHOICE)
    defects = _choose_defects(n_frames, defect_rate, defect_types, choice_rng)
    imperf = _choose_imperfections(seed, defects, imperfection_rate, imperfection_types)
    defect_info: list[dict] = []
    holos, backs = _acquire(fields_true, frames, illum, optics, setup, seed, defects, imperf, progress=progress,
                            cancel=cancel, apply_defects=apply_defects, noise_draw=noise_draw, defect_info=defect_info)

    pol = ("x", "y")
    md = MeasurementMetadata(
        wavelength_um=float(setup.wavelength_um), medium_index=float(setup.medium_index),
        na_objective=float(setup.na_objective), pixel_size_um=float(p),
        carrier_per_um=tuple(float(c) for c in setup.carrier),
        illumination_per_um=[(float(a), float(b)) for a, b in illum],
        frames=None, labels=["noisy" if d else "clean" for d in defects],
        sample={"name": name, "kind": phantom.kind},
        extra={"defects": list(defects), "imperfections": list(imperf),
               "simulator": {"name": SIMULATOR_NAME, "version": SIMULATOR_VERSION, "engine_version": ENGINE_VERSION,
                             "seed": seed, "method": method, "na_condenser": setup.na_condenser,
                             "pattern": setup.pattern, "sim_voxel_um": list(exp_vox)}})
    if polarised:
        from ..metadata import Frame
        md.frames = [Frame(i, pol[pin], pol[pout]) for i, pin, pout in frames]
    meas = Measurement(metadata=md, holograms=holos, backgrounds=backs, name=name,
                       extra={"defects": list(defects), "imperfections": list(imperf)})
    report(progress, 1.0, "simulation done")
    return SimulatedMeasurement(measurement=meas, fields_true=fields_true, defect_types=list(defects),
                                phantom=phantom, imperfections=imperf,
                                jones_true=None if jones is None else jones.astype(np.complex64), seed=seed,
                                setup=setup, defect_info=defect_info)
