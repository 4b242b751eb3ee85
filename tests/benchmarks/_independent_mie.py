"""Exact fields of a sphere for oblique illumination from miepython (a code this project did not write).

miepython (Prahl; vector Mie theory after Wiscombe 1980 and Bohren & Huffman 1983) gives the
amplitude scattering functions S1(θ), S2(θ) of a sphere. For each illumination and each
detected plane wave inside the objective pupil, the scattering angle θ between them fixes the
scattered amplitude; the polarisation-averaged amplitude S = (S1 + S2)/2 is used (exact in the
forward direction; the difference between S1 and S2 stays below a few % of |S| up to NA 1.2 for
the weak spheres here). With the Bohren & Huffman far field ``E_s = E₀ S e^{ikr}/(−ikr)`` and
Weyl's expansion, the scattered field refocused to the sphere's centre plane has the angular
spectrum (cycles/µm)::

    û_s(ν) = −S(θ) / (k ν_z),   ν_z = sqrt((n_m/λ)² − |ν|²),

which is sampled on the image's FFT grid and divided by the incident plane wave. miepython
works in the exp(+iωt) convention (absorbing spheres have m = n − iκ), so its S is conjugated
here; its ``norm="wiscombe"`` amplitudes are Bohren & Huffman's S (checked: the forward
amplitude gives the same extinction by the optical theorem, Q_ext = 4 Re S(0)/x²). The only part
of this module that the project wrote is this synthesis; the sphere's physics is miepython's.
Conventions as ``docs/formats.md``: µm, cycles/µm, (y, x), pixel j at (j − n//2)·pixel,
fields exp(+i(k·r − ωt)).
"""

from __future__ import annotations

import numpy as np


def miepython_fields(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float,
                     shape: tuple[int, int], pixel_size_um: float, illuminations_per_um: np.ndarray,
                     na: float) -> np.ndarray:
    """Total field / incident field (N, H, W), complex128, in the sphere's centre plane."""
    import miepython

    h, w = shape
    k_cyc = n_medium / wavelength_um            # |k|/2π in the medium, cycles/µm
    k = 2 * np.pi * k_cyc                       # rad/µm
    m = n_sphere / n_medium
    x = k * radius_um                           # size parameter in the medium
    ny = np.fft.fftfreq(h, pixel_size_um)[:, None]
    nx = np.fft.fftfreq(w, pixel_size_um)[None, :]
    dnu2 = 1.0 / (h * pixel_size_um * w * pixel_size_um)
    out = np.empty((len(illuminations_per_um), h, w), np.complex128)
    # S(θ) on a fine grid of cos θ (its oscillations have a period ~π/x in θ: 20 000 samples
    # resolve them a hundredfold), interpolated per detected wave: one miepython call in all
    mu_grid = np.linspace(-1.0, 1.0, 20001)
    s1, s2 = miepython.S1_S2(m, x, mu_grid, norm="wiscombe")
    s_grid = np.conj(0.5 * (s1 + s2))  # miepython works in the exp(+iωt) convention
    for i, (fx, fy) in enumerate(np.asarray(illuminations_per_um, float)):
        fz = np.sqrt(k_cyc**2 - fx**2 - fy**2)
        vx, vy = fx + nx, fy + ny                # detected frequencies, relative to the incident wave
        vz2 = k_cyc**2 - vx**2 - vy**2
        keep = (vz2 > 0) & (vx**2 + vy**2 <= (na / wavelength_um) ** 2)
        vz = np.sqrt(np.clip(vz2, 1e-12, None))
        mu = np.clip((fx * vx + fy * vy + fz * vz) / k_cyc**2, -1, 1)
        s = np.interp(mu, mu_grid, s_grid.real) + 1j * np.interp(mu, mu_grid, s_grid.imag)
        spec = np.where(keep, -s / (k * vz), 0.0)
        # Σ_ν spec(ν) exp(2πi ν·r) Δν² on pixels r_j = (j − n//2)·pixel: an inverse FFT rolled by n//2
        us = np.fft.ifft2(spec) * (h * w) * dnu2
        out[i] = 1.0 + np.roll(us, (h // 2, w // 2), axis=(0, 1))
    return out
