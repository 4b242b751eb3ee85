"""Acquisition defects and imperfections of ODT frames, applied to camera-plane fields.

Conventions (``docs/formats.md``)
-----------------------------------
* Images are (y, x) arrays; pixel ``j`` of ``n`` sits at ``(j - n//2) * pixel`` (µm);
  spatial frequencies in cycles/µm; fields follow ``exp(+i(k·r - ωt))`` and propagate by +z
  with ``exp(+2πi ν_z z)`` in the angular spectrum.
* A *defect* makes a frame unusable for tomography (label ``"noisy"``); an *imperfection*
  degrades a frame that is still usable (label ``"clean"``), so that clean and noisy frames
  are not trivially separable.

Each defect acts on one frame only and draws from its own random generator, so frames
without defects are bit-identical whatever the other frames received.

Defect types (:data:`DEFECT_TYPES`)
-----------------------------------
``"fringes"``
    Parasitic interference: a stray, slightly divergent wave (reflection from an optical
    surface, or laser instability) adds tilted fringes of 10–35 % amplitude to the object beam.
``"dmd"``
    DMD diffraction artefacts: neighbouring diffraction orders of the DMD grating illuminate
    the sample at other angles, adding shifted ghost copies of the object field, plus a weak
    grid-like modulation from the micromirror pitch.
``"dust"``
    Dust or an air bubble in the beam path: opaque/phase discs defocused by several µm give
    diffraction rings with zeros of amplitude and phase vortices (phase unwrapping fails).
``"blank"``
    No signal: the object beam is blocked (shutter, DMD off); only the reference reaches the camera.
``"saturation"``
    Over-exposure: the sample hologram is 3–8× brighter, large areas clip at full scale.

Imperfections (:data:`IMPERFECTION_TYPES`): ``"mild-noise"`` (3–7× fewer photons),
``"defocus"`` (sample field refocused by 0.2–0.8 µm).

References
----------
.. [1] G. Ryu et al., "Deep learning-based optical field screening for robust optical
   diffraction tomography", Sci. Rep. 9, 15239 (2019) — defect classes in real ODT data.
.. [2] K. Lee et al., "Time-multiplexed structured illumination using a DMD for optical
   diffraction tomography", Opt. Lett. 42, 999 (2017) — DMD diffraction orders.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "DEFECT_TYPES",
    "IMPERFECTION_TYPES",
    "FrameContext",
    "apply_defect",
    "apply_imperfection",
    "propagate_field",
]

DEFECT_TYPES = ("fringes", "dmd", "dust", "blank", "saturation")
IMPERFECTION_TYPES = ("mild-noise", "defocus")


class FrameContext:
    """What a defect needs to know about a frame.

    Attributes
    ----------
    x, y : ndarray (1, W), (H, 1)
        Pixel coordinates, µm.
    pixel_size_um, wavelength_um, medium_index, na_objective : float
        Optics.
    illumination_per_um : (fx, fy)
        This frame's illumination.
    exposure_gain : float
        Multiplier of the sample hologram's photon count (``"saturation"`` raises it).
    shared_exposure_gain : float
        Multiplier of the photon count of both the sample and the background hologram of this
        frame (``"mild-noise"``: a DMD pattern of lower diffraction efficiency).
    read_noise_gain : float
        Multiplier of the read noise.
    """

    def __init__(self, shape, pixel_size_um, wavelength_um, medium_index, na_objective, illumination_per_um):
        H, W = shape
        self.shape = (int(H), int(W))
        self.pixel_size_um = float(pixel_size_um)
        self.wavelength_um = float(wavelength_um)
        self.medium_index = float(medium_index)
        self.na_objective = float(na_objective)
        self.illumination_per_um = (float(illumination_per_um[0]), float(illumination_per_um[1]))
        self.y = ((np.arange(H) - H // 2) * pixel_size_um)[:, None]
        self.x = ((np.arange(W) - W // 2) * pixel_size_um)[None, :]
        self.exposure_gain = 1.0
        self.shared_exposure_gain = 1.0
        self.read_noise_gain = 1.0

    @property
    def pupil_radius(self) -> float:
        return self.na_objective / self.wavelength_um

    def tilt(self, fx: float, fy: float) -> np.ndarray:
        return np.exp(2j * np.pi * (fx * self.x + fy * self.y))


def propagate_field(field: np.ndarray, distance_um: float, pixel_size_um: float, medium_index: float,
                    wavelength_um: float) -> np.ndarray:
    """Angular-spectrum propagation of a (…, H, W) field by ``distance_um`` (exact, evanescent dropped).

    The one free-space kernel of the program, :func:`engine.holography.propagate.propagate`,
    on the CPU (NumPy in, NumPy out).
    """
    from ..holography.propagate import propagate

    out = propagate(field, float(distance_um), pixel_size_um, wavelength_um, medium_index, device="cpu")
    return np.asarray(out).astype(field.dtype, copy=False)


def _smooth_envelope(ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    H, W = ctx.shape
    cy, cx = rng.uniform(-0.5, 0.5, 2) * np.array([H, W]) * ctx.pixel_size_um
    w = rng.uniform(0.4, 1.0) * max(H, W) * ctx.pixel_size_um
    return np.exp(-((ctx.x - cx) ** 2 + (ctx.y - cy) ** 2) / w ** 2)


def _random_in_pupil(ctx: FrameContext, rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    rho = rng.uniform(lo, hi) * ctx.pupil_radius
    phi = rng.uniform(0, 2 * np.pi)
    return rho * np.cos(phi), rho * np.sin(phi)


def _fringes(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    fx, fy = _random_in_pupil(ctx, rng, 0.15, 0.9)
    amp = rng.uniform(0.10, 0.35)
    stray = amp * _smooth_envelope(ctx, rng) * ctx.tilt(fx, fy) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:  # a second reflection
        fx2, fy2 = _random_in_pupil(ctx, rng, 0.15, 0.9)
        stray = stray + 0.6 * amp * ctx.tilt(fx2, fy2) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    scale = np.sqrt(np.mean(np.abs(obj) ** 2))
    return obj + scale * stray


def _dmd(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    fx0, fy0 = ctx.illumination_per_um
    out = obj.copy()
    n_orders = int(rng.integers(1, 3))
    base_dir = rng.uniform(0, 2 * np.pi)
    for k in range(n_orders):
        # ghost illumination: neighbouring order, kept inside the pupil
        for _ in range(20):
            g = rng.uniform(0.3, 1.2) * ctx.pupil_radius
            ang = base_dir + k * np.pi + rng.normal(0, 0.2)
            gx, gy = fx0 + g * np.cos(ang), fy0 + g * np.sin(ang)
            if np.hypot(gx, gy) < 0.95 * ctx.pupil_radius:
                break
        eps = rng.uniform(0.15, 0.45)
        # the sample under another illumination, approximated by the same transmission: the
        # object beam re-tilted from (fx0, fy0) to (gx, gy)
        ghost = eps * obj * ctx.tilt(gx - fx0, gy - fy0) * np.exp(1j * rng.uniform(0, 2 * np.pi))
        out = out + ghost
    pitch = rng.uniform(4, 10) * ctx.pixel_size_um
    grid = 1 + rng.uniform(0.03, 0.08) * (np.cos(2 * np.pi * ctx.x / pitch) + np.cos(2 * np.pi * ctx.y / pitch))
    return out * grid


def _dust(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    H, W = ctx.shape
    t = np.ones(ctx.shape, dtype=np.complex128)
    n_part = int(rng.integers(1, 4))
    half = np.array([H, W]) * ctx.pixel_size_um / 2
    for i in range(n_part):
        cy, cx = rng.uniform(-0.7, 0.7, 2) * half
        r = rng.uniform(1.0, 4.0)
        rho2 = ((ctx.x - cx) ** 2 + (ctx.y - cy) ** 2) / r ** 2
        inside = np.clip(1.5 - 2.0 * (np.sqrt(rho2) - 1.0) * r / ctx.pixel_size_um, 0, 1)  # soft disc
        inside = np.minimum(inside, 1.0)
        if i == 0 or rng.random() < 0.5:  # opaque dust
            t = t * (1 - rng.uniform(0.85, 1.0) * inside)
        else:  # air bubble: a strong negative lens
            t = t * np.exp(-1j * rng.uniform(15, 40) * (1 - np.minimum(rho2, 1.0)) * inside)
    dz = rng.choice([-1, 1]) * rng.uniform(2.0, 8.0)
    t = propagate_field(t.astype(np.complex64), float(dz), ctx.pixel_size_um, ctx.medium_index, ctx.wavelength_um)
    # the dust's shadow is imaged through the objective: keep what the pupil passes
    vy = np.fft.fftfreq(H, d=ctx.pixel_size_um)[:, None]
    vx = np.fft.fftfreq(W, d=ctx.pixel_size_um)[None, :]
    t = np.fft.ifft2(np.fft.fft2(t) * (vx ** 2 + vy ** 2 <= (0.5 * ctx.pupil_radius) ** 2))
    return obj * t


def _blank(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    leak = rng.uniform(0.0, 0.03)
    return obj * leak


def _saturation(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    ctx.exposure_gain *= rng.uniform(3.0, 8.0)
    return obj


_DEFECTS: dict[str, Callable] = {
    "fringes": _fringes,
    "dmd": _dmd,
    "dust": _dust,
    "blank": _blank,
    "saturation": _saturation,
}


def apply_defect(kind: str, object_field: np.ndarray, sample_field: np.ndarray, ctx: FrameContext,
                 rng: np.random.Generator) -> np.ndarray:
    """Return the camera-plane object field of one frame with defect ``kind`` applied.

    Parameters
    ----------
    kind : str
        One of :data:`DEFECT_TYPES`.
    object_field : ndarray (H, W) complex
        The object beam at the camera (sample field × illumination tilt × beam pattern).
    sample_field : ndarray (H, W) complex
        The sample's field divided by the incident wave (used by ``"dmd"`` ghosts).
    ctx : FrameContext
        Frame geometry; ``ctx.exposure_gain`` may be changed (``"saturation"``).
    rng : Generator
        This frame's random source.
    """
    if kind not in _DEFECTS:
        raise ValueError(f"unknown defect type {kind!r}: one of {DEFECT_TYPES}")
    return _DEFECTS[kind](object_field, sample_field, ctx, rng)


def apply_imperfection(kind: str, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    """Return the sample field (divided by the incident wave) of a clean-but-imperfect frame.

    ``"mild-noise"`` lowers ``ctx.shared_exposure_gain`` (0.15–0.35: a dim DMD pattern, same in
    the background) and raises the read noise;
    ``"defocus"`` refocuses the sample field by ±0.2–0.8 µm.
    """
    if kind == "mild-noise":
        ctx.shared_exposure_gain *= rng.uniform(0.15, 0.35)
        ctx.read_noise_gain *= rng.uniform(1.2, 2.0)
        return sample_field
    if kind == "defocus":
        dz = float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.8))
        fx, fy = ctx.illumination_per_um
        tilt = ctx.tilt(fx, fy)
        fz = np.sqrt((ctx.medium_index / ctx.wavelength_um) ** 2 - fx ** 2 - fy ** 2)
        moved = propagate_field((sample_field * tilt).astype(np.complex64), dz, ctx.pixel_size_um,
                                ctx.medium_index, ctx.wavelength_um)
        return moved / tilt * np.exp(-2j * np.pi * fz * dz)
    raise ValueError(f"unknown imperfection {kind!r}: one of {IMPERFECTION_TYPES}")
