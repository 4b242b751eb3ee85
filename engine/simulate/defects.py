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

Defect families with wide parameter ranges (issue #19)
------------------------------------------------------
The five types above are the original, narrow set (the simulator's default, kept bit-identical).
:data:`EXTRA_DEFECT_TYPES` widen them; :data:`DEFECT_FAMILIES` groups every type into a family,
so that a screen can be trained without one family and tested on it (:func:`family_of`):

``"obstruction"`` (family ``obstruction``)
    1–12 particles — dust (amplitude), bubbles (phase lens), debris (irregular, both) —
    amplitude-only, phase-only or both; radius 0.15 µm to a quarter of the field's area; at
    the centre or the edge; in focus or 1–60 µm out of focus (angular-spectrum propagation of
    the screen: Airy rings, shadows with fringes). Its strength is set so that the
    perturbation energy ``E = Σ|t − 1|² · pixel²`` of the transmission ``t`` inside the field
    is at least :data:`OBSTRUCTION_NOISY_UM2`; its clean twin ``"faint-obstruction"`` has
    ``E ≤`` :data:`OBSTRUCTION_CLEAN_UM2` (a ×10 gap: no frame sits on the boundary).
``"parasitic-fringes"`` (family ``fringes``)
    A stray wave — a tilted plane wave (a tilted reference or a wedge) or a spherical wave
    (a second reflection, curved fringes) — of any orientation, period (0.03–0.97 of the
    pupil radius in frequency) and amplitude 5–45 % of the object beam; moving between frames
    (new phase, slightly new tilt) or fixed (same geometry in every affected frame of the
    measurement). Clean twin ``"faint-fringes"``: amplitude 0.3–1.2 %.
``"hot-pixels"``, ``"row-noise"``, ``"partial-saturation"`` (family ``camera``)
    Applied to the camera image: 0.3–3 % hot pixels at 40–100 % of full scale; per-row gain
    jitter 6–20 % with row offsets (rolling read-out); a local glint 4–15× brighter that
    clips at full scale over 1.5–5 µm. Clean twin ``"camera-mild"``: ≤ 0.02 % hot pixels,
    row gain jitter ≤ 0.4 %.
``"low-snr"`` (family ``low-snr``)
    A steep, dim illumination: 50–300× fewer photons in the sample *and* background frame
    and 2–4× the read noise, so the phase is noise near ±π and unwrapping fails. Clean twin
    ``"dim"``: 2–8× fewer photons.

:data:`EXTRA_IMPERFECTION_TYPES` (clean): ``"faint-obstruction"``, ``"faint-fringes"``,
``"camera-mild"``, ``"dim"``, ``"defocus-wide"`` (±0.2–1.5 µm). The parameters each defect
drew are written to ``ctx.info`` (a dict) for tests and data cards.

References
----------
.. [1] G. Ryu et al., "Deep learning-based optical field screening for robust optical
   diffraction tomography", Sci. Rep. 9, 15239 (2019) — defect classes in real ODT data.
.. [2] K. Lee et al., "Time-multiplexed structured illumination using a DMD for optical
   diffraction tomography", Opt. Lett. 42, 999 (2017) — DMD diffraction orders.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

__all__ = [
    "ALL_DEFECT_TYPES",
    "ALL_IMPERFECTION_TYPES",
    "DEFECT_FAMILIES",
    "DEFECT_TYPES",
    "EXTRA_DEFECT_TYPES",
    "EXTRA_IMPERFECTION_TYPES",
    "IMPERFECTION_TYPES",
    "OBSTRUCTION_CLEAN_UM2",
    "OBSTRUCTION_NOISY_UM2",
    "Particle",
    "family_of",
    "obstruction_transmission",
    "FrameContext",
    "apply_defect",
    "apply_imperfection",
    "propagate_field",
]

DEFECT_TYPES = ("fringes", "dmd", "dust", "blank", "saturation")
IMPERFECTION_TYPES = ("mild-noise", "defocus")
EXTRA_DEFECT_TYPES = ("obstruction", "parasitic-fringes", "hot-pixels", "row-noise", "partial-saturation",
                      "low-snr")
EXTRA_IMPERFECTION_TYPES = ("faint-obstruction", "faint-fringes", "camera-mild", "dim", "defocus-wide")
ALL_DEFECT_TYPES = DEFECT_TYPES + EXTRA_DEFECT_TYPES
ALL_IMPERFECTION_TYPES = IMPERFECTION_TYPES + EXTRA_IMPERFECTION_TYPES
DEFECT_FAMILIES = {
    "obstruction": ("dust", "obstruction"),
    "fringes": ("fringes", "parasitic-fringes"),
    "camera": ("saturation", "hot-pixels", "row-noise", "partial-saturation"),
    "low-snr": ("low-snr",),
    "dmd": ("dmd",),
    "blank": ("blank",),
}
#: Perturbation energy Σ|t − 1|²·pixel² (µm²) of an obstruction inside the central 80 % of the
#: field (the part the screen sees): at least this for a noisy frame (an opaque disc of radius
#: 0.8 µm), at most the clean value for a faint one.
OBSTRUCTION_NOISY_UM2 = 2.0
OBSTRUCTION_CLEAN_UM2 = 0.1


def family_of(kind: str) -> str:
    """Family (key of :data:`DEFECT_FAMILIES`) of a defect type; ``""`` for a clean frame."""
    if not kind:
        return ""
    for fam, kinds in DEFECT_FAMILIES.items():
        if kind in kinds:
            return fam
    raise ValueError(f"unknown defect type {kind!r}: one of {ALL_DEFECT_TYPES}")


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
        #: seed shared by every frame of the measurement ("fixed" parasitic fringes)
        self.measurement_seed = 0
        #: (image (H, W) float ADU, full scale) -> image; applied to the sample hologram only
        self.camera_effects: list[Callable[[np.ndarray, float], np.ndarray]] = []
        #: what the defect or imperfection drew (for tests and data cards)
        self.info: dict = {}

    def apply_camera_effects(self, image: np.ndarray, bit_depth: int) -> np.ndarray:
        """Apply :attr:`camera_effects` to a camera image (uint ADU); same dtype, clipped to full scale."""
        if not self.camera_effects:
            return image
        full = float(2 ** int(bit_depth) - 1)
        out = image.astype(np.float64)
        for effect in self.camera_effects:
            out = effect(out, full)
        return np.clip(np.round(out), 0, full).astype(image.dtype)

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


# --------------------------------------------------------------------------- wide families (#19)
class Particle:
    """One obstruction in the object beam (a plane conjugate to the camera, before defocus).

    Attributes
    ----------
    centre_um : (x, y)
        Centre, µm (camera coordinates).
    radius_um : float
        Radius, µm (debris: the radius of its bounding disc).
    kind : {"dust", "bubble", "debris"}
        Disc of absorption; a phase lens (a sphere's optical path); an irregular blob.
    absorption : float
        1 − |t| at the centre (0 = transparent, 1 = opaque).
    phase_rad : float
        Phase delay at the centre, rad (negative for a bubble: lower index than the medium).
    """

    def __init__(self, centre_um, radius_um, kind="dust", absorption=1.0, phase_rad=0.0):
        self.centre_um = (float(centre_um[0]), float(centre_um[1]))
        self.radius_um = float(radius_um)
        self.kind = str(kind)
        self.absorption = float(absorption)
        self.phase_rad = float(phase_rad)


def _particle_screen(p: Particle, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    """Complex transmission (H, W) of one particle in focus (soft edge of one pixel)."""
    r = np.hypot(ctx.x - p.centre_um[0], ctx.y - p.centre_um[1]) / p.radius_um
    if p.kind == "debris":  # an irregular outline: radius modulated by a few random harmonics
        ang = np.arctan2(ctx.y - p.centre_um[1], ctx.x - p.centre_um[0])
        mod = 1 + sum(rng.uniform(0, 0.25) * np.cos(m * ang + rng.uniform(0, 2 * np.pi)) for m in (2, 3, 5))
        r = r / np.clip(mod, 0.4, None)
    inside = np.clip(0.5 - (r - 1.0) * p.radius_um / ctx.pixel_size_um, 0, 1)
    profile = np.sqrt(np.clip(1 - r ** 2, 0, 1)) if p.kind == "bubble" else inside
    return (1 - p.absorption * inside) * np.exp(1j * p.phase_rad * profile)


def obstruction_transmission(particles, defocus_um: float, ctx: FrameContext,
                             rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Transmission (H, W) complex of particles defocused by ``defocus_um`` and seen through the pupil.

    The screen ``t`` (product of the particles' transmissions) is propagated as ``1 + (t − 1)``
    with the deviation zero-padded to twice the field (no wrap-around of far-defocused
    shadows), then low-passed by the objective's pupil ``|ν| ≤ NA/λ``.

    Parameters
    ----------
    particles : sequence of Particle
    defocus_um : float
        Distance from the plane conjugate to the camera, µm (0 = in focus).
    ctx : FrameContext
    rng : Generator, optional
        Only debris outlines use it.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    t = np.ones(ctx.shape, dtype=np.complex128)
    for p in particles:
        t = t * _particle_screen(p, ctx, rng)
    H, W = ctx.shape
    dev = np.zeros((2 * H, 2 * W), np.complex128)
    dev[H // 2:H // 2 + H, W // 2:W // 2 + W] = t - 1
    vy = np.fft.fftfreq(2 * H, d=ctx.pixel_size_um)[:, None]
    vx = np.fft.fftfreq(2 * W, d=ctx.pixel_size_um)[None, :]
    spec = np.fft.fft2(dev) * (vx ** 2 + vy ** 2 <= ctx.pupil_radius ** 2)
    if defocus_um:
        k2 = (ctx.medium_index / ctx.wavelength_um) ** 2 - vx ** 2 - vy ** 2
        spec = spec * np.exp(2j * np.pi * np.sqrt(np.clip(k2, 0, None)) * float(defocus_um)) * (k2 > 0)
    return 1 + np.fft.ifft2(spec)[H // 2:H // 2 + H, W // 2:W // 2 + W]


def _draw_particles(ctx: FrameContext, rng: np.random.Generator) -> tuple[list, str, str]:
    """Random particles: count, kind, mode (amplitude/phase/both), size and place."""
    H, W = ctx.shape
    side = min(H, W) * ctx.pixel_size_um
    r_max = np.sqrt(0.25 * side ** 2 / np.pi)  # a quarter of the field's area
    n = 1 if rng.random() < 0.5 else int(rng.integers(2, 13))
    mode = str(rng.choice(["amplitude", "phase", "both"]))
    place = str(rng.choice(["centre", "edge", "anywhere"]))
    parts = []
    for _ in range(n):
        kind = str(rng.choice(["dust", "bubble", "debris"]))
        radius = float(np.exp(rng.uniform(np.log(0.15), np.log(r_max / max(1.0, np.sqrt(n) / 1.5)))))
        if place == "centre":
            c = rng.uniform(-0.15, 0.15, 2) * side
        elif place == "edge":
            c = rng.uniform(0.3, 0.5, 2) * side * rng.choice([-1, 1], 2) * (rng.random(2) < 0.7)
        else:
            c = rng.uniform(-0.45, 0.45, 2) * side
        absorption = 0.0 if mode == "phase" else rng.uniform(0.3, 1.0)
        phase = 0.0 if mode == "amplitude" else rng.choice([-1, 1]) * rng.uniform(0.5, 12.0)
        if kind == "bubble" and mode != "amplitude":
            phase = -abs(phase)
        parts.append(Particle(c, radius, kind, absorption, phase))
    return parts, mode, place


def _draw_defocus(rng: np.random.Generator) -> float:
    if rng.random() < 0.35:
        return float(rng.uniform(-0.3, 0.3))  # in focus
    return float(rng.choice([-1, 1]) * np.exp(rng.uniform(np.log(1.0), np.log(60.0))))


def _energy_um2(t: np.ndarray, ctx: FrameContext) -> float:
    """Σ|t − 1|²·pixel² (µm²) over the central 80 % of the field."""
    H, W = ctx.shape
    dy, dx = H // 10, W // 10
    return float(np.sum(np.abs(t[dy:H - dy, dx:W - dx] - 1) ** 2) * ctx.pixel_size_um ** 2)


def _obstruction(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator,
                 faint: bool = False) -> np.ndarray:
    for _ in range(30):
        parts, mode, place = _draw_particles(ctx, rng)
        dz = _draw_defocus(rng)
        t = obstruction_transmission(parts, dz, ctx, rng)
        e = _energy_um2(t, ctx)
        if faint or e >= OBSTRUCTION_NOISY_UM2:
            break
    if faint:  # a weaker, more transparent particle: scale the deviation into the clean range
        target = rng.uniform(0.1, 1.0) * OBSTRUCTION_CLEAN_UM2
        t = 1 + (t - 1) * np.sqrt(target / max(e, 1e-12))
        e = _energy_um2(t, ctx)
    elif e < OBSTRUCTION_NOISY_UM2:  # rare: 30 weak draws; make the last one strong enough
        t = 1 + (t - 1) * np.sqrt(OBSTRUCTION_NOISY_UM2 / max(e, 1e-12))
        e = _energy_um2(t, ctx)
    ctx.info.update(particles=len(parts), mode=mode, place=place, defocus_um=dz, energy_um2=e,
                    kinds=sorted({p.kind for p in parts}))
    return obj * t


def _stray_wave(ctx: FrameContext, rng: np.random.Generator, moving: bool) -> tuple[np.ndarray, dict]:
    """Unit-amplitude stray wave: tilted plane wave or spherical wave (second reflection)."""
    geo = rng if moving else np.random.default_rng([int(ctx.measurement_seed), 19_001])
    source = str(geo.choice(["tilted", "reflection"]))
    rho = geo.uniform(0.03, 0.97) * ctx.pupil_radius
    ang = geo.uniform(0, 2 * np.pi)
    if moving:  # the stray path drifts between frames: a slightly new tilt as well as a new phase
        rho *= 1 + rng.normal(0, 0.02)
    phase = 2 * np.pi * rho * (np.cos(ang) * ctx.x + np.sin(ang) * ctx.y)
    info = dict(source=source, frequency_per_um=float(rho), angle_rad=float(ang), moving=bool(moving))
    if source == "reflection":
        radius = geo.choice([-1, 1]) * np.exp(geo.uniform(np.log(15.0), np.log(800.0)))
        x0, y0 = geo.uniform(-0.5, 0.5, 2) * np.array(ctx.shape[::-1]) * ctx.pixel_size_um
        phase = phase + np.pi * ((ctx.x - x0) ** 2 + (ctx.y - y0) ** 2) / (ctx.wavelength_um * radius)
        info["curvature_radius_um"] = float(radius)
    offset = rng.uniform(0, 2 * np.pi) if moving else geo.uniform(0, 2 * np.pi)
    return np.exp(1j * (phase + offset)), info


def _parasitic_fringes(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator,
                       faint: bool = False) -> np.ndarray:
    moving = bool(rng.random() < 0.5)
    stray, info = _stray_wave(ctx, rng, moving)
    amp = rng.uniform(0.003, 0.012) if faint else float(np.exp(rng.uniform(np.log(0.05), np.log(0.45))))
    env = _smooth_envelope(ctx, rng) if rng.random() < 0.4 else 1.0
    scale = np.sqrt(np.mean(np.abs(obj) ** 2))
    ctx.info.update(info, amplitude=float(amp))
    return obj + scale * amp * env * stray


def _hot_pixels(density: tuple[float, float], level: tuple[float, float], rng: np.random.Generator):
    dens = float(np.exp(rng.uniform(np.log(density[0]), np.log(density[1]))))
    seed = int(rng.integers(1 << 31))

    def effect(img: np.ndarray, full: float) -> np.ndarray:
        r = np.random.default_rng(seed)
        hot = r.random(img.shape) < dens
        out = img.copy()
        out[hot] = np.maximum(out[hot], r.uniform(*level, size=int(hot.sum())) * full)
        return out
    return effect, dens


def _row_noise(gain_sigma: float, offset_sigma: float, rng: np.random.Generator):
    seed = int(rng.integers(1 << 31))

    def effect(img: np.ndarray, full: float) -> np.ndarray:
        r = np.random.default_rng(seed)
        h = img.shape[0]
        gain = 1 + gain_sigma * r.normal(size=(h, 1))
        offset = offset_sigma * float(np.mean(img)) * r.normal(size=(h, 1))
        return img * gain + offset
    return effect


def _camera_defect(kind: str, ctx: FrameContext, rng: np.random.Generator) -> None:
    if kind == "hot-pixels":
        effect, dens = _hot_pixels((0.003, 0.03), (0.4, 1.0), rng)
        ctx.info.update(hot_fraction=dens)
    elif kind == "row-noise":
        g = float(rng.uniform(0.06, 0.2))
        effect = _row_noise(g, rng.uniform(0.01, 0.05), rng)
        ctx.info.update(row_gain_sigma=g)
    else:  # partial saturation: a local glint, clipped at full scale
        cx, cy = rng.uniform(-0.3, 0.3, 2) * np.array(ctx.shape[::-1]) * ctx.pixel_size_um
        w = float(rng.uniform(1.5, 5.0))
        g = float(rng.uniform(4.0, 15.0))
        blob = np.exp(-((ctx.x - cx) ** 2 + (ctx.y - cy) ** 2) / w ** 2)

        def effect(img: np.ndarray, full: float) -> np.ndarray:
            return np.minimum(img * (1 + (g - 1) * blob), full)
        ctx.info.update(glint_radius_um=w, glint_gain=g)
    ctx.camera_effects.append(effect)


def _hot(obj, sample_field, ctx, rng):
    _camera_defect("hot-pixels", ctx, rng)
    return obj


def _rows(obj, sample_field, ctx, rng):
    _camera_defect("row-noise", ctx, rng)
    return obj


def _glint(obj, sample_field, ctx, rng):
    _camera_defect("partial-saturation", ctx, rng)
    return obj


def _low_snr(obj: np.ndarray, sample_field: np.ndarray, ctx: FrameContext, rng: np.random.Generator) -> np.ndarray:
    loss = float(np.exp(rng.uniform(np.log(50.0), np.log(300.0))))
    ctx.shared_exposure_gain /= loss
    ctx.read_noise_gain *= rng.uniform(2.0, 4.0)
    ctx.info.update(photon_loss=loss)
    return obj


_DEFECTS: dict[str, Callable] = {
    "fringes": _fringes,
    "dmd": _dmd,
    "dust": _dust,
    "blank": _blank,
    "saturation": _saturation,
    "obstruction": _obstruction,
    "parasitic-fringes": _parasitic_fringes,
    "hot-pixels": _hot,
    "row-noise": _rows,
    "partial-saturation": _glint,
    "low-snr": _low_snr,
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
        raise ValueError(f"unknown defect type {kind!r}: one of {ALL_DEFECT_TYPES}")
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
        return refocus(sample_field, float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.8)), ctx)
    if kind == "defocus-wide":
        return refocus(sample_field, float(rng.choice([-1, 1]) * rng.uniform(0.2, 1.5)), ctx)
    if kind == "dim":
        ctx.shared_exposure_gain /= rng.uniform(2.0, 8.0)
        return sample_field
    if kind in ("faint-obstruction", "faint-fringes"):  # applied to u: same geometry as on the beam
        fn = _obstruction if kind == "faint-obstruction" else _parasitic_fringes
        return fn(sample_field, sample_field, ctx, rng, faint=True)
    if kind == "camera-mild":
        effect, dens = _hot_pixels((1e-5, 2e-4), (0.3, 1.0), rng)
        ctx.camera_effects += [effect, _row_noise(float(rng.uniform(0.0, 0.004)), 0.002, rng)]
        ctx.info.update(hot_fraction=dens)
        return sample_field
    raise ValueError(f"unknown imperfection {kind!r}: one of {ALL_IMPERFECTION_TYPES}")


def refocus(sample_field: np.ndarray, dz: float, ctx: FrameContext) -> np.ndarray:
    """The sample field (divided by the incident wave) refocused by ``dz`` µm."""
    fx, fy = ctx.illumination_per_um
    tilt = ctx.tilt(fx, fy)
    fz = np.sqrt((ctx.medium_index / ctx.wavelength_um) ** 2 - fx ** 2 - fy ** 2)
    moved = propagate_field((sample_field * tilt).astype(np.complex64), dz, ctx.pixel_size_um,
                            ctx.medium_index, ctx.wavelength_um)
    ctx.info.update(defocus_um=float(dz))
    return moved / tilt * np.exp(-2j * np.pi * fz * dz)
