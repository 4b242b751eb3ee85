"""Off-axis holograms of exact-Mie fields under the conditions that broke retrieval (issue #16).

Shared by the retrieval tests and benchmarks. The fields come from an exact code
(:func:`engine.simulate.mie.mie_fields` here; the benchmarks can pass fields from miepython or
qpsphere instead); this module only adds what a camera does to them:

* the illuminations reach 0.8 of the objective pupil (steep angles);
* a Gaussian illumination envelope in space (the beam is not flat) and an illumination power
  that falls with the angle (less light, so lower SNR, at steep angles);
* shot noise (Poisson), read noise, 16-bit (or 8-bit) ADC.

Conventions as in ``docs/formats.md``: µm, cycles/µm, (y, x), pixel j at (j − n//2)·pixel; the
object side band sits at ``+carrier`` (reference ``exp(−2πi c·r)``).
"""

from __future__ import annotations

import numpy as np

from engine.metadata import MeasurementMetadata
from engine.simulate.holograms import illumination_pattern
from engine.simulate.mie import mie_fields

LAM, NM, NA, PX = 0.532, 1.337, 1.2, 0.1


def weak_sphere_fields(n: int = 128, n_angles: int = 49, radius_um: float = 2.5, n_sphere: float = 1.36,
                       pupil_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Exact-Mie fields (N, n, n) of a sphere and their illuminations (N, 2), cycles/µm."""
    ill = illumination_pattern(n_angles, pupil_fraction * NA, LAM, "ring")
    fields = mie_fields(radius_um, n_sphere, NM, LAM, (n, n), PX, ill, na=NA)
    return fields.astype(np.complex64), ill


def camera_holograms(fields: np.ndarray, ill: np.ndarray, *, carrier=(2.2, 2.0), photons: float = 2000.0,
                     steep_power: float = 0.06, envelope_um: float = 8.0, read_noise_e: float = 6.0,
                     bits: int = 16, seed: int = 0, reference_ratio: float = 1.0):
    """Sample and background holograms (N, H, W) of ``fields`` through a noisy camera.

    Parameters
    ----------
    fields : (N, H, W) complex
        Sample field / incident field, per illumination.
    ill : (N, 2)
        Illumination frequencies, cycles/µm.
    carrier : (c_x, c_y)
        Side-band position, cycles/µm.
    photons : float
        Mean photo-electrons per pixel of the reference beam.
    steep_power : float
        Illumination power at the pupil edge relative to normal incidence (Gaussian fall-off).
    envelope_um : float
        1/e radius of the Gaussian illumination envelope in the image, µm.
    read_noise_e, bits, seed
        Camera read noise (electrons), ADC bits, random seed.
    """
    rng = np.random.default_rng(seed)
    n, h, w = fields.shape
    y = (np.arange(h) - h // 2)[:, None] * PX
    x = (np.arange(w) - w // 2)[None, :] * PX
    env = np.exp(-(x**2 + y**2) / (2 * envelope_um**2))
    ref = reference_ratio * np.exp(-2j * np.pi * (carrier[0] * x + carrier[1] * y))
    full = 2**bits - 1
    fmax = NA / LAM
    holo = np.empty((n, h, w), np.uint16 if bits > 8 else np.uint8)
    bg = np.empty_like(holo)
    for i, (fx, fy) in enumerate(ill):
        power = steep_power ** ((fx**2 + fy**2) / fmax**2)
        beam = np.sqrt(power) * env * np.exp(2j * np.pi * (fx * x + fy * y))
        for out, obj in ((holo, fields[i] * beam), (bg, beam)):
            intensity = np.abs(obj + ref) ** 2
            e = rng.poisson(intensity * photons / (1 + reference_ratio**2)).astype(float)
            e += rng.normal(0, read_noise_e, e.shape)
            scale = full / (4.0 * photons)
            out[i] = np.clip(np.round(e * scale), 0, full)
    return holo, bg


def metadata(ill: np.ndarray | None = None, carrier=None) -> MeasurementMetadata:
    d = {"format": "odt-measurement/1", "wavelength_um": LAM, "medium_index": NM, "na_objective": NA,
         "pixel_size_um": PX}
    if ill is not None:
        d["illumination_per_um"] = np.asarray(ill).tolist()
    if carrier is not None:
        d["carrier_per_um"] = list(carrier)
    return MeasurementMetadata.from_dict(d)
