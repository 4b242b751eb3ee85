"""Peer-benchmark data: exact (vector) Mie fields from ``miepython``, off-axis hologram folders,
and the one scorer both programs are judged by.

Used by ``tests/benchmarks/bench_odtbrain.py``; needs ``miepython`` (a benchmark-only
dependency, not a test dependency). The sphere's scattering comes from code this project did
not write: ``miepython.S1_S2`` (amplitude functions; ``norm="wiscombe"``, conjugated to Bohren
& Huffman's time convention).

Conventions (``docs/formats.md``)
---------------------------------
* µm, cycles/µm, images (y, x), volumes (z, y, x), pixel ``j`` of ``n`` at ``(j − n//2)·d``.
* Fields ``exp(+i(k·r − ωt))`` (Bohren & Huffman's ``e^{−iωt}``: the same), so a sphere
  denser than the medium gives a positive phase.
* Sample rotation: view ``φ`` turns the sample by ``φ`` about +y (right-handed), so a point
  ``r0 = (z, y, x)`` of the sample sits in the lab at ``x_l = x cos φ + z sin φ``,
  ``z_l = −x sin φ + z cos φ`` (ODTbrain's ``x_D = x cos φ + z sin φ``).

Field of a sphere (x-polarised illumination, x-polarised detection)
--------------------------------------------------------------------
With ``k = 2π n_m/λ`` the far field is ``E_s = e^{ikr}/(−ikr)·(S2 cosφ ê_θ − S1 sinφ ê_φ)``
(Bohren & Huffman 1983, eq. 3.12/4.74), so its x component has the scalar amplitude
``f = (i/k)·(S2 cosθ cos²φ + S1 sin²φ)`` (µm, ``u_s → f e^{ikr}/r``). Weyl's expansion gives the
exact angular spectrum ``Û_s(ν) = i f(ν)/ν_z`` of the scattered field behind the sphere; it is
propagated back to the focal plane z = 0 (as a microscope focused there reports it, cf.
``engine.simulate.mie``), shifted to the sphere's centre, cut by the pupil ``|ν| ≤ NA/λ``,
computed on a grid ``pad`` times larger than the camera and cropped (a finite field of view,
not a periodic one).

References
----------
C. F. Bohren and D. R. Huffman, *Absorption and Scattering of Light by Small Particles*, Wiley
(1983), ch. 4; S. Prahl, miepython (https://github.com/scottprahl/miepython).
E. Cuche, P. Marquet and C. Depeursinge, Appl. Opt. 39, 4070 (2000) (off-axis holography).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["mie_field_miepython", "rotation_fields", "write_hologram_folder", "score_sphere",
           "lab_position"]


def lab_position(r0_zyx: Sequence[float], angle: float) -> tuple[float, float, float]:
    """Lab-frame (z, y, x) of the sample point ``r0`` after turning the sample by ``angle`` about +y."""
    z, y, x = (float(v) for v in r0_zyx)
    return (-x * np.sin(angle) + z * np.cos(angle), y, x * np.cos(angle) + z * np.sin(angle))


def mie_field_miepython(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float,
                        shape: tuple[int, int], pixel_um: float, center_um: Sequence[float] = (0, 0, 0),
                        na: float = 0.6, pad: int = 2) -> np.ndarray:
    """Total field / incident field (y, x) of a sphere at ``center_um`` (z, y, x), focal plane z = 0.

    Normal incidence along +z, x polarisation. Returns complex128.
    """
    import miepython

    hh, ww = shape
    H, W = hh * pad, ww * pad
    k_nu = n_medium / wavelength_um
    vy = np.fft.fftfreq(H, d=pixel_um)[:, None]
    vx = np.fft.fftfreq(W, d=pixel_um)[None, :]
    nu2 = vx ** 2 + vy ** 2
    keep = nu2 <= min((na / wavelength_um) ** 2, k_nu ** 2 * (1 - 1e-9))
    vz = np.sqrt(np.clip(k_nu ** 2 - nu2, 0, None))
    mu = np.clip(vz / k_nu, -1, 1)
    m = n_sphere / n_medium
    x = 2 * np.pi * radius_um * n_medium / wavelength_um
    # miepython follows Wiscombe (m = n − iκ, time factor e^{+iωt}): its S1, S2 with
    # norm="wiscombe" are the complex conjugates of Bohren & Huffman's (checked: the forward
    # amplitude then matches the scalar partial-wave series of engine.simulate.mie to 0.2 %)
    s1, s2 = (np.conj(s) for s in miepython.S1_S2(m, x, mu[keep], norm="wiscombe"))
    phi = np.arctan2(np.broadcast_to(vy, nu2.shape)[keep], np.broadcast_to(vx, nu2.shape)[keep])
    k = 2 * np.pi * k_nu
    f = (1j / k) * (s2 * mu[keep] * np.cos(phi) ** 2 + s1 * np.sin(phi) ** 2)  # µm
    cz, cy, cx = (float(c) for c in center_um)
    spec = np.zeros((H, W), np.complex128)
    # exp(2πi k_m cz): phase of the incident wave at the centre; propagate from cz back to z = 0;
    # pixel j sits at (j − n//2)·d
    shift = np.exp(2j * np.pi * (k_nu * cz - vz[keep] * cz
                                 - np.broadcast_to(vx, nu2.shape)[keep] * (cx + (W // 2) * pixel_um)
                                 - np.broadcast_to(vy, nu2.shape)[keep] * (cy + (H // 2) * pixel_um)))
    spec[keep] = 1j * f / vz[keep] * shift
    us = np.fft.ifft2(spec) / pixel_um ** 2  # Σ Û Δν² e^{...} with Δν² = 1/(H W d²)
    oy, ox = (H - hh) // 2, (W - ww) // 2
    return 1.0 + us[oy:oy + hh, ox:ox + ww]


def rotation_fields(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float, size: int,
                    pixel_um: float, na: float, n_angles: int, r0_zyx: Sequence[float]):
    """Fields (A, size, size) of a sphere at ``r0_zyx`` in the sample, turned through 360° in A steps."""
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    fields = np.stack([mie_field_miepython(radius_um, n_sphere, n_medium, wavelength_um, (size, size), pixel_um,
                                           lab_position(r0_zyx, a), na=na) for a in angles])
    return fields.astype(np.complex64), angles


def write_hologram_folder(folder: str | Path, fields: np.ndarray, meta: dict, *, noise: float = 0.01,
                          seed: int = 0) -> Path:
    """Write off-axis holograms of ``fields`` as an ``odt-measurement/1`` folder (float32 TIFFs).

    Object beam ``O = u`` (the field over the incident wave, unit background), reference
    ``R = exp(−2πi c·r)`` with the carrier ``c = (1/(4p), 1/(4p))`` on the FFT grid, so the
    object side band sits at +c (docs/formats.md); ``I = |O + R|²`` plus Gaussian noise of
    ``noise`` × the mean background level, independently drawn for sample and background.
    ``carrier_per_um`` is not written: both programs find it.
    """
    import tifffile

    folder = Path(folder)
    (folder / "sample").mkdir(parents=True, exist_ok=True)
    (folder / "background").mkdir(exist_ok=True)
    n, hh, ww = fields.shape
    p = float(meta["pixel_size_um"])
    c = (round(ww / 4) / (ww * p), round(hh / 4) / (hh * p))
    y = ((np.arange(hh) - hh // 2) * p)[:, None]
    x = ((np.arange(ww) - ww // 2) * p)[None, :]
    ref = np.exp(-2j * np.pi * (c[0] * x + c[1] * y))
    rng = np.random.default_rng(seed)
    level = 2.0  # mean |1 + R|²
    for i in range(n):
        for name, obj in (("sample", fields[i]), ("background", np.ones((hh, ww)))):
            img = np.abs(obj + ref) ** 2 + rng.normal(0.0, noise * level, (hh, ww))
            tifffile.imwrite(folder / name / f"{i:03d}.tif", img.astype(np.float32))
    (folder / "measurement.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def score_sphere(ri: np.ndarray, coords, r0_zyx, radius_um: float, n_sphere: float, n_medium: float) -> dict:
    """The one scorer for both programs: a volume (z, y, x) on axes ``coords`` (µm) vs the true sphere.

    Returns the relative error of the mean Δn inside (r < R − 0.3 µm), the RMSE against the
    true index in the box r < R + 1 µm, the background standard deviation (r > R + 1 µm),
    ``ring``: the largest |mean background Δn| on 0.1 µm shells around the sphere (R + 0.5 µm
    to 90 % of the volume's largest half-width: concentric ring artefacts), and the centre of the
    voxels above half the maximum Δn (a check of the conventions).
    """
    z, y, x = np.meshgrid(*coords, indexing="ij")
    r = np.sqrt((z - r0_zyx[0]) ** 2 + (y - r0_zyx[1]) ** 2 + (x - r0_zyx[2]) ** 2)
    truth = np.where(r <= radius_um, n_sphere, n_medium)
    box = r < radius_um + 1.0
    w = np.clip(ri - n_medium, 0, None)
    w = np.where(w > 0.5 * w.max(), w, 0)
    centre = [float((w * c).sum() / w.sum()) for c in (z, y, x)]
    dn_mean = float(ri[r < radius_um - 0.3].mean() - n_medium)
    # rings: the background averaged over shells of constant distance from the sphere's centre
    # (0.1 µm thick, from R + 0.5 µm to 90 % of the volume's largest half-width)
    half = 0.9 * max((c[-1] - c[0]) / 2 for c in coords)
    shell = (r > radius_um + 0.5) & (r < half)
    idx = np.floor(r[shell] / 0.1).astype(int)
    counts = np.bincount(idx)
    profile = np.bincount(idx, ri[shell] - n_medium)[counts > 0] / counts[counts > 0]
    return dict(dn_error_pct=100 * (dn_mean / (n_sphere - n_medium) - 1),
                rmse=float(np.sqrt(((ri - truth)[box] ** 2).mean())),
                bg_std=float(ri[r > radius_um + 1.0].std()), ring=float(np.abs(profile).max()),
                centre=np.round(centre, 2).tolist(), shape=list(ri.shape))
