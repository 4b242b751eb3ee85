"""Exact scalar Mie field: coefficients, optical theorem, Weyl normalisation, sign, geometry."""

import numpy as np
import pytest

from engine.simulate.mie import (
    mie_coefficients,
    mie_field,
    mie_fields,
    mie_scattered_direct,
    scattering_amplitude,
)

LAM, NM = 0.532, 1.337


@pytest.mark.parametrize("radius,n_s", [(0.3, 1.40), (1.5, 1.46), (2.5, 1.36), (3.0, 1.59)])
def test_lossless_coefficients_are_unitary(radius, n_s):
    a = mie_coefficients(radius, n_s, NM, LAM)
    assert np.max(np.abs(np.abs(1 + 2 * a) - 1)) < 1e-10
    assert abs(a[-1]) < 1e-8  # enough terms: the last ones are negligible


@pytest.mark.parametrize("radius,n_s", [(0.5, 1.40), (1.5, 1.46)])
def test_optical_theorem(radius, n_s):
    """σ_ext = (4π/k) Im f(0) equals σ_sca = ∫|f|² dΩ for a lossless sphere."""
    a = mie_coefficients(radius, n_s, NM, LAM)
    k = 2 * np.pi * NM / LAM
    mu, w = np.polynomial.legendre.leggauss(400)
    f = scattering_amplitude(mu, a, k)
    sigma_sca = 2 * np.pi * np.sum(w * np.abs(f) ** 2)
    sigma_ext = 4 * np.pi / k * scattering_amplitude(np.array([1.0]), a, k)[0].imag
    assert sigma_sca == pytest.approx(sigma_ext, rel=1e-6)
    assert sigma_sca > 0


@pytest.mark.parametrize("fx", [0.0, 1.5])
def test_weyl_spectrum_matches_partial_wave_sum(fx):
    """The plane-wave expansion (with evanescent part) equals Σ (2l+1) i^l a_l h_l P_l beyond the sphere."""
    a, ns, z0, n, p = 1.0, 1.40, 2.0, 256, 0.1
    u = mie_field(a, ns, NM, LAM, (n, n), p, illumination_per_um=(fx, 0.0), focus_z_um=z0, evanescent=True)
    fz = np.sqrt((NM / LAM) ** 2 - fx ** 2)
    c = (np.arange(n) - n // 2) * p
    Y, X = np.meshgrid(c, c, indexing="ij")
    sl = slice(n // 2 - 30, n // 2 + 31)
    pts = np.stack([np.full_like(Y, z0), Y, X], -1)[sl, sl]
    direct = mie_scattered_direct(pts, a, ns, NM, LAM, direction=(fz, 0.0, fx))
    incident = np.exp(2j * np.pi * (fx * X + fz * z0))[sl, sl]
    weyl = (u[sl, sl] - 1) * incident
    # measured: 0.9 % (normal) and 1.2 % (tilted), from the periodic copies of the FFT grid
    assert np.max(np.abs(weyl - direct)) / np.max(np.abs(direct)) < 0.02


def test_weak_sphere_positive_phase_matches_projection():
    r, ns = 2.5, 1.36
    u = mie_field(r, ns, NM, LAM, shape=(128, 128), pixel_size_um=0.1, na=1.2)
    phase_centre = np.angle(u[64, 64])
    projection = 2 * np.pi * (ns - NM) / LAM * 2 * r
    assert phase_centre > 0
    assert phase_centre == pytest.approx(projection, rel=0.05)
    # and a sphere below the medium index gives negative phase
    v = mie_field(r, 1.32, NM, LAM, shape=(128, 128), pixel_size_um=0.1, na=1.2)
    assert np.angle(v[64, 64]) < 0
    # far from the sphere the field is ≈ the incident wave
    assert abs(u[5, 5] - 1) < 0.1


def test_vectorised_matches_single_and_shift_is_exact():
    illum = np.array([[0.0, 0.0], [8, -3], [-2, 11]]) / 6.4  # on the FFT grid: periodic
    args = (1.0, 1.42, NM, LAM, (64, 64), 0.1)
    many = mie_fields(*args, illum, na=1.2)
    for i, f in enumerate(illum):
        assert np.allclose(many[i], mie_field(*args, illumination_per_um=f, na=1.2), atol=1e-12)
    # a sphere 1.0 µm lower in y and 2.0 µm to the left appears 10 px down, 20 px left
    moved = mie_fields(*args, illum, na=1.2, center_um=(0.0, 1.0, -2.0))
    assert np.allclose(moved, np.roll(many, (10, -20), axis=(1, 2)), atol=1e-9)
    peak = np.unravel_index(np.argmax(np.angle(moved[0])), (64, 64))
    assert abs(peak[0] - 42) <= 1 and abs(peak[1] - 12) <= 1


def test_pupil_limits_spectrum():
    u = mie_field(1.5, 1.46, NM, LAM, (128, 128), 0.1, illumination_per_um=(13 / 12.8, 0.0), na=0.8)
    spec = np.fft.fft2(u * np.exp(2j * np.pi * 13 / 12.8 * (np.arange(128) - 64) * 0.1)[None, :])
    v = np.fft.fftfreq(128, d=0.1)
    outside = (v[:, None] ** 2 + v[None, :] ** 2) > (0.8 / LAM + 0.02) ** 2
    assert np.max(np.abs(spec[outside])) < 1e-8 * np.max(np.abs(spec))
