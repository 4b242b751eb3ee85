"""An independent set of defective ODT measurements for field screening (issue #19), benchmark-only.

Nothing here comes from the generator the screening models are trained on
(:mod:`engine.simulate.holograms`, :mod:`engine.simulate.defects`, multi-slice propagation):
the samples, the illumination pattern, the camera, the optics and every defect are written
anew in this file, so that a score on it measures how the screen generalises to data it has
never seen the like of. Only three things are shared with the product, on purpose: the exact
Mie code for the spheres' clean fields (:func:`engine.simulate.mie.mie_fields`, an analytic
solution, not the training simulator), the field retrieval the application runs
(:func:`engine.holography.retrieval.retrieve_fields`) and the screen under test.

The set mirrors the one quoted in issue #19: measurements of Mie spheres and rod bacteria,
49 illuminations, 8- and 16-bit cameras; defects are parasitic fringes, obstructions (dust
and bubbles), blank frames and DMD errors. Each defective frame carries one defect; its
*family* is one of :data:`FAMILIES`.

Conventions (``docs/formats.md``): µm, cycles/µm, images (y, x) with pixel ``j`` at
``(j − n//2)·pixel``; fields ``exp(+i(k·r − ωt))``; the object side band at ``+carrier``
(reference ``exp(−2πi c·r)``). Labels: 1 = noisy.

Defects (this file's own implementations)
-----------------------------------------
``parasitic``
    A third, stray beam reaches the camera, ``I = |O + R + S|²``; ``S`` is a plane wave whose
    cross term with the reference lands inside the object's side band (4–30 % of the object
    amplitude, log-uniform, any direction and period down to 0.05 NA/λ), over the whole field
    or, half of the time, a Gaussian patch of it (σ 3–8 µm).
``dust``
    1–6 absorbing specks (radius 0.3–5 µm, 50–100 % absorption) 3–60 µm from focus, in the sample frame
    only (the dust moved after the background was taken): Fresnel-propagated shadows with rings.
``bubble``
    An air bubble (a negative spherical phase, 2–10 rad, radius 1.5–6 µm), 0–15 µm from focus.
``blank``
    The object beam is off (0–5 % leaks): the hologram is the reference alone.
``dmd``
    The DMD shows a wrong pattern: the frame is lit from a neighbour's direction, plus a
    second, weaker order from the right one.

Clean frames get this generator's own imperfections: shot and read noise, a slowly drifting
global phase, a 0–0.6 µm refocus and, at steep angles, up to 4× fewer photons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.metadata import MeasurementMetadata
from engine.simulate.mie import mie_fields

FAMILIES = ("parasitic", "dust", "bubble", "blank", "dmd")
#: the issue's grouping: obstructions = dust + bubbles
REPORT_GROUPS = {"parasitic": ("parasitic",), "obstruction": ("dust", "bubble"), "blank": ("blank",),
                 "dmd": ("dmd",)}
SHAPE = (160, 160)
CROP = 128


@dataclass
class Optics:
    """One instrument of the independent set."""

    wavelength_um: float
    medium_index: float
    na: float
    pixel_size_um: float
    carrier_per_um: tuple[float, float]
    bits: int
    photons: float
    read_noise_e: float

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = SHAPE
        y = ((np.arange(h) - h // 2) * self.pixel_size_um)[:, None]
        x = ((np.arange(w) - w // 2) * self.pixel_size_um)[None, :]
        return x, y


@dataclass
class IndependentSet:
    """Retrieved, centre-cropped fields of the set with their labels.

    Attributes
    ----------
    fields : (M, 128, 128) complex64
    noisy : (M,) uint8
    family : list of str ("" when clean)
    measurement : (M,) int32
    bits : (M,) int32
    kind : list of str ("mie" or "rod")
    pixel_size_um, wavelength_um : (M,) float32 or None
        Each field's retrieved pixel and vacuum wavelength, µm (for measurement-wise features).
    illumination_per_um : (M, 2) float64 or None
        Each field's retrieved illumination frequency, cycles/µm.
    na_objective, medium_index : (M,) float32 or None
        Each field's objective NA and medium index (for the tomographic consistency input).
    """

    fields: np.ndarray
    noisy: np.ndarray
    family: list
    measurement: np.ndarray
    bits: np.ndarray
    kind: list
    pixel_size_um: np.ndarray | None = None
    wavelength_um: np.ndarray | None = None
    illumination_per_um: np.ndarray | None = None
    na_objective: np.ndarray | None = None
    medium_index: np.ndarray | None = None


def draw_optics(rng: np.random.Generator, bits: int) -> Optics:
    """An instrument unlike the training simulator's (other λ, NA, pixel, carrier, camera)."""
    lam = float(rng.choice([0.532, 0.561, 0.633]))
    na = float(rng.uniform(0.95, 1.25))
    px = float(rng.uniform(0.085, 0.115))
    f_pupil = na / lam
    c = min(0.95 * 0.5 / px - f_pupil, 1.6 * f_pupil)  # per axis: the side band inside Nyquist
    sx, sy = rng.choice([-1, 1], 2)
    return Optics(lam, float(rng.choice([1.333, 1.337, 1.34])), na, px, (float(sx * c), float(sy * c * 0.97)),
                  bits, float(rng.uniform(800, 4000)), float(rng.uniform(2.0, 8.0)))


def ring_illuminations(n: int, na: float, wavelength_um: float) -> np.ndarray:
    """n = 1 + 8 + 16 + 24 illuminations (cycles/µm): normal incidence and three rings up to 0.85 NA/λ."""
    if n != 49:
        raise ValueError("the independent set uses 49 illuminations")
    out = [(0.0, 0.0)]
    for k, m in enumerate((8, 16, 24)):
        r = 0.85 * na / wavelength_um * (k + 1) / 3
        a = 2 * np.pi * np.arange(m) / m + 0.3 * k
        out += list(zip(r * np.cos(a), r * np.sin(a)))
    return np.asarray(out)


def _pupil_filter(u: np.ndarray, ill: np.ndarray, o: Optics) -> np.ndarray:
    """Band-limit fields divided by the incident wave to the shifted pupil |ν + ν_ill| ≤ NA/λ."""
    h, w = u.shape[-2:]
    fy = np.fft.fftfreq(h, d=o.pixel_size_um)[None, :, None]
    fx = np.fft.fftfreq(w, d=o.pixel_size_um)[None, None, :]
    mask = (fx + ill[:, 0, None, None]) ** 2 + (fy + ill[:, 1, None, None]) ** 2 <= (o.na / o.wavelength_um) ** 2
    return np.fft.ifft2(np.fft.fft2(u) * mask)


def rod_fields(ill: np.ndarray, o: Optics, rng: np.random.Generator) -> np.ndarray:
    """Rod bacteria (spherocylinders) in the projection approximation, (N, H, W) complex.

    Each rod (length 2–5 µm, radius 0.35–0.6 µm, Δn 0.02–0.06, at depth z) is projected along
    the illumination direction (a lateral shift ``z·tanθ``), its phase ``2π/λ·Δn·thickness``.
    """
    x, y = o.grid()
    n_m, lam = o.medium_index, o.wavelength_um
    sin = ill * lam / n_m
    tan = sin / np.sqrt(1 - (sin ** 2).sum(1, keepdims=True))
    phase = np.zeros((len(ill),) + SHAPE)
    for _ in range(int(rng.integers(1, 4))):
        length, rad = rng.uniform(2.0, 5.0), rng.uniform(0.35, 0.6)
        cx, cy = rng.uniform(-2.5, 2.5, 2)
        z, ang, dn = rng.normal(0, 0.6), rng.uniform(0, np.pi), rng.uniform(0.02, 0.06)
        for i in range(len(ill)):
            dx, dy = x - cx - z * tan[i, 0], y - cy - z * tan[i, 1]
            u = dx * np.cos(ang) + dy * np.sin(ang)
            v = -dx * np.sin(ang) + dy * np.cos(ang)
            axial = np.clip(np.abs(u) - (length / 2 - rad), 0, None)  # 0 along the cylinder
            thick = 2 * np.sqrt(np.clip(rad ** 2 - v ** 2 - axial ** 2, 0, None))
            phase[i] += 2 * np.pi / lam * dn * thick
    return _pupil_filter(np.exp(1j * phase - 0.01 * phase), ill, o)


def sphere_fields(ill: np.ndarray, o: Optics, rng: np.random.Generator) -> np.ndarray:
    """Exact Mie fields of one sphere (radius 1.5–4 µm, n 1.35–1.42), (N, H, W) complex."""
    r = float(rng.uniform(1.5, 4.0))
    n_s = float(o.medium_index + rng.uniform(0.012, 0.07))
    centre = (0.0, float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5)))
    focus = float(rng.uniform(-0.4, 0.4))
    return mie_fields(r, n_s, o.medium_index, o.wavelength_um, SHAPE, o.pixel_size_um, ill, na=o.na,
                      focus_z_um=focus, center_um=centre)


def _fresnel(u: np.ndarray, z_um: float, o: Optics) -> np.ndarray:
    """Paraxial (Fresnel) transfer function, zero-padded ×2 (this file's own propagator)."""
    h, w = u.shape
    pad = np.ones((2 * h, 2 * w), complex)
    pad[h // 2:h // 2 + h, w // 2:w // 2 + w] = u
    fy = np.fft.fftfreq(2 * h, d=o.pixel_size_um)[:, None]
    fx = np.fft.fftfreq(2 * w, d=o.pixel_size_um)[None, :]
    kern = np.exp(-1j * np.pi * o.wavelength_um / o.medium_index * z_um * (fx ** 2 + fy ** 2))
    return np.fft.ifft2(np.fft.fft2(pad) * kern)[h // 2:h // 2 + h, w // 2:w // 2 + w]


def _specks(o: Optics, rng: np.random.Generator, phase_bubble: bool) -> np.ndarray:
    x, y = o.grid()
    t = np.ones(SHAPE, complex)
    half = SHAPE[0] * o.pixel_size_um / 2
    for _ in range(int(rng.integers(1, 7))):
        cx, cy = rng.uniform(-0.6, 0.6, 2) * half
        rr = np.hypot(x - cx, y - cy)
        if phase_bubble:
            r = rng.uniform(1.5, 6.0)
            t = t * np.exp(-1j * rng.uniform(2, 10) * np.sqrt(np.clip(1 - (rr / r) ** 2, 0, 1)))
        else:
            r = rng.uniform(0.3, 5.0)
            t = t * (1 - rng.uniform(0.5, 1.0) * (rr < r))
    z = rng.uniform(0, 15) if phase_bubble else rng.uniform(3, 60)
    return _fresnel(t, float(rng.choice([-1, 1]) * z), o)


def _camera(intensity: np.ndarray, o: Optics, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """This set's camera: mean reference level at a quarter of full scale, Poisson + read noise."""
    full = 2 ** o.bits - 1
    e = rng.poisson(np.clip(intensity * o.photons * gain, 0, None)).astype(float)
    e += rng.normal(0, o.read_noise_e, e.shape)
    return np.clip(np.round(e * full / (4.0 * o.photons)), 0, full).astype(np.uint8 if o.bits == 8 else np.uint16)


def _frame(u_i: np.ndarray, ill_i, family: str, k: int, u_all: np.ndarray, ill: np.ndarray, o: Optics,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample and background hologram of one frame with ``family`` ("" = clean)."""
    x, y = o.grid()
    ref = np.exp(-2j * np.pi * (o.carrier_per_um[0] * x + o.carrier_per_um[1] * y))
    env = np.exp(-(x ** 2 + y ** 2) / (2 * 9.0 ** 2))
    steep = np.hypot(*ill_i) / (o.na / o.wavelength_um)
    gain = float(rng.uniform(0.25, 1.0)) if steep > 0.8 and not family else 1.0
    beam = env * np.exp(2j * np.pi * (ill_i[0] * x + ill_i[1] * y))
    obj = u_i * beam * np.exp(1j * rng.uniform(-np.pi, np.pi))
    stray = 0
    if family == "parasitic":
        f = rng.uniform(0.05, 0.9) * o.na / o.wavelength_um
        a = rng.uniform(0, 2 * np.pi)
        stray = np.exp(rng.uniform(np.log(0.04), np.log(0.3))) * np.exp(
            2j * np.pi * f * (np.cos(a) * x + np.sin(a) * y) + 1j * rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.5:  # the stray beam covers part of the field only
            cx, cy = rng.uniform(-4, 4, 2)
            stray = stray * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(3, 8) ** 2))
    elif family in ("dust", "bubble"):
        obj = obj * _specks(o, rng, family == "bubble")
    elif family == "blank":
        obj = obj * rng.uniform(0.0, 0.05)
    elif family == "dmd":
        j = int(np.clip(k + rng.choice([-3, -2, -1, 1, 2, 3]), 0, len(ill) - 1))
        wrong = env * np.exp(2j * np.pi * (ill[j, 0] * x + ill[j, 1] * y)) * u_all[j]
        obj = wrong + rng.uniform(0.2, 0.6) * obj
    holo = _camera(np.abs(obj + ref + stray) ** 2, o, rng, gain)
    back = _camera(np.abs(beam + ref) ** 2, o, rng, gain)
    return holo, back


def stage_scores(model, s: IndependentSet, prob: np.ndarray) -> np.ndarray:
    """A screening model's consistency-stage noisy-probability (M,) of every field of the set, measurement by
    measurement, as ``screen_fields`` computes it (the network's ``prob`` where the stage gives none)."""
    out = np.asarray(prob, np.float32).copy()
    for k in np.unique(s.measurement):
        i = np.flatnonzero(s.measurement == k)
        _, q = model.measurement_consistency(s.fields[i], float(s.pixel_size_um[i[0]]), float(s.wavelength_um[i[0]]),
                                             s.illumination_per_um[i], out[i], na_objective=float(s.na_objective[i[0]]),
                                             medium_index=float(s.medium_index[i[0]]))
        if q is not None:
            out[i] = q
    return out


def make_measurement(seed: int, kind: str, bits: int, defect_rate: float = 0.4):
    """One measurement: holograms, backgrounds (49, 160, 160), metadata, per-frame family."""
    rng = np.random.default_rng(seed)
    o = draw_optics(rng, bits)
    ill = ring_illuminations(49, 0.9 * o.na, o.wavelength_um)
    u = sphere_fields(ill, o, rng) if kind == "mie" else rod_fields(ill, o, rng)
    if rng.random() < 0.5:  # a slightly defocused acquisition (clean)
        u = np.stack([_fresnel(ui, float(rng.uniform(-0.6, 0.6)), o) for ui in u])
    n = len(ill)
    fam = [""] * n
    bad = rng.choice(n, size=int(round(defect_rate * n)), replace=False)
    for m, i in enumerate(sorted(bad)):
        fam[i] = FAMILIES[(m + seed) % len(FAMILIES)]
    holos, backs = zip(*(_frame(u[k], ill[k], fam[k], k, u, ill, o, rng) for k in range(n)))
    md = MeasurementMetadata.from_dict({
        "format": "odt-measurement/1", "wavelength_um": o.wavelength_um, "medium_index": o.medium_index,
        "na_objective": o.na, "pixel_size_um": o.pixel_size_um, "carrier_per_um": list(o.carrier_per_um),
        "illumination_per_um": ill.tolist()})
    return np.stack(holos), np.stack(backs), md, fam


def make_set(n_measurements: int = 20, seed: int = 19_000, *, device: str = "cpu",
             defect_rate: float = 0.4) -> IndependentSet:
    """Generate and retrieve the set: half Mie spheres, half rods; 8- and 16-bit alternating; ``defect_rate`` of
    each measurement's 49 frames defective (0.4: the set of the issue)."""
    from engine.holography.retrieval import retrieve_fields

    fields, noisy, family, meas, bits, kinds, px, lam, ill, na, nm = [], [], [], [], [], [], [], [], [], [], []
    for m in range(n_measurements):
        kind = "mie" if m % 2 == 0 else "rod"
        b = 8 if (m // 2) % 2 == 0 else 16
        holos, backs, md, fam = make_measurement(seed + m, kind, b, defect_rate)
        ret = retrieve_fields(holos, backs, md, device=device, unwrap=False)
        f = np.asarray(ret.field)
        h, w = f.shape[-2:]
        y0, x0 = h // 2 - CROP // 2, w // 2 - CROP // 2
        fields.append(f[:, y0:y0 + CROP, x0:x0 + CROP].astype(np.complex64))
        noisy += [1 if x else 0 for x in fam]
        family += fam
        meas += [m] * len(fam)
        bits += [b] * len(fam)
        kinds += [kind] * len(fam)
        px += [float(ret.pixel_size_um)] * len(fam)
        lam += [float(md.wavelength_um)] * len(fam)
        ill.append(np.asarray(ret.illumination_per_um, np.float64))
        na += [float(md.na_objective)] * len(fam)
        nm += [float(md.medium_index)] * len(fam)
    return IndependentSet(np.concatenate(fields), np.array(noisy, np.uint8), family, np.array(meas, np.int32),
                          np.array(bits, np.int32), kinds, np.array(px, np.float32), np.array(lam, np.float32),
                          np.concatenate(ill), np.array(na, np.float32), np.array(nm, np.float32))
