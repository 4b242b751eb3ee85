"""Each field against its prediction from the rest of the measurement by the Fourier diffraction theorem (issue #19):
:mod:`engine.screening.tomographic`.

The test sample is thick on purpose: two small phase blobs 6 µm apart in depth, whose projections move
apart as the illumination tilts (each by ``z · tan θ``). A pixel-by-pixel comparison with the neighbours sees
that motion as a difference; the tomographic prediction, which knows at which axial frequency each field
samples the object, does not. A bubble in one field is in no other field's cap and stands out.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.screening.consistency import neighbour_difference
from engine.screening.tomographic import tomographic_difference, tomographic_residual, tomographic_scores
from engine.simulate.holograms import illumination_pattern

N_PX, PX, LAM, NM, NA = 96, 0.1, 0.532, 1.337, 1.0
ILL = illumination_pattern(40, 0.92 * NA, LAM, "spiral")


def _pupil(u: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """The ratio field as the objective passes it: its spectrum inside |μ + k| ≤ NA/λ."""
    f = np.fft.fftfreq(N_PX, PX)
    mx, my = np.meshgrid(f, f)
    return np.fft.ifft2(np.fft.fft2(u) * ((mx + fx) ** 2 + (my + fy) ** 2 <= (NA / LAM) ** 2))


def measurement(bubble_in: int | None = None, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[:N_PX, :N_PX] - N_PX / 2) * PX
    out = []
    for k, (fx, fy) in enumerate(ILL):
        nz = np.sqrt((NM / LAM) ** 2 - fx ** 2 - fy ** 2)
        phase = np.zeros((N_PX, N_PX))
        for z, x0 in ((-3.0, -1.0), (3.0, 1.0)):  # µm: each blob's projection moves by z·tan θ
            sx, sy = x0 + z * fx / nz, z * fy / nz
            phase += 0.6 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * 0.5 ** 2))
        if k == bubble_in:
            phase -= 0.8 * np.exp(-((x - 2.5) ** 2 + (y + 2.0) ** 2) / (2 * 0.4 ** 2))
        u = _pupil(np.exp(1j * phase), fx, fy)
        out.append(u + noise * (rng.normal(size=u.shape) + 1j * rng.normal(size=u.shape)))
    return np.asarray(out, np.complex64)


def test_a_thick_sample_is_predicted_and_a_bubble_in_one_field_stands_out():
    f = measurement(bubble_in=17)
    z = tomographic_residual(f, PX, LAM, ILL, NA, NM)
    assert int(np.argmax(z)) == 17 and z[17] > 3 and z[17] > 2 * np.max(np.delete(z, 17))
    assert np.median(np.delete(z, 17)) < 1
    # the same bubble against the pixel-wise neighbour median: the moving blobs hide it far more
    pixelwise = np.array([neighbour_difference(f, ILL, k).max() for k in range(len(f))])
    tomo = tomographic_scores(f, PX, LAM, ILL, NA, NM)
    assert tomo[17] / np.median(tomo) > 5 * pixelwise[17] / np.median(pixelwise)
    assert np.sum(pixelwise > pixelwise[17]) >= 1  # pixel by pixel, another (clean) field looks worse


def test_against_the_nearest_illuminations_the_bubble_still_stands_out():
    f = measurement(bubble_in=17)
    z = tomographic_residual(f, PX, LAM, ILL, NA, NM, relative=True)  # as the 3.3 card's stage computes it
    assert int(np.argmax(z)) == 17 and z[17] > 3 and z[17] > 2 * np.max(np.delete(z, 17))


def test_clean_fields_score_low_and_the_network_clean_spread_is_used():
    f = measurement()
    z_all = tomographic_residual(f, PX, LAM, ILL, NA, NM)
    assert np.percentile(z_all, 90) < 3
    keep_few = np.ones(len(f))
    keep_few[:5] = 0.0  # fewer than 8 fields kept: the spread comes from every field
    np.testing.assert_array_equal(tomographic_residual(f, PX, LAM, ILL, NA, NM, keep_few), z_all)


def test_bad_input_is_refused():
    f = measurement()
    with pytest.raises(ValueError, match="one illumination each"):
        tomographic_scores(f, PX, LAM, ILL[:-1], NA, NM)
    with pytest.raises(ValueError, match="N >"):
        tomographic_scores(f[:4], PX, LAM, ILL[:4], NA, NM)


def test_the_difference_image_shows_the_bubble_where_it_is_and_the_sample_cancels():
    f = measurement(bubble_in=17)
    d = tomographic_difference(f, PX, LAM, ILL, NA, NM, 17)
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    assert abs(x - (N_PX // 2 + 25)) <= 2 and abs(y - (N_PX // 2 - 20)) <= 2  # the bubble at (2.5, -2.0) µm
    clean = tomographic_difference(f, PX, LAM, ILL, NA, NM, 16)
    pixelwise = neighbour_difference(f, ILL, 16)
    assert clean.max() < 0.5 * d.max() and np.percentile(clean, 99) < np.percentile(pixelwise, 99)
    with pytest.raises(ValueError, match="not one of"):
        tomographic_difference(f, PX, LAM, ILL, NA, NM, len(f))


def test_the_residual_images_are_what_the_scores_and_the_difference_image_reduce():
    """The complex residual images: their smoothed squared modulus's largest value is the score, their modulus
    the review's difference image, and the bubble is in the phase (imaginary) part, negative, where it was put."""
    from scipy.ndimage import gaussian_filter

    from engine.screening.tomographic import SMOOTH_PX, tomographic_residual_images

    f = measurement(bubble_in=17)
    r = tomographic_residual_images(f, PX, LAM, ILL, NA, NM)
    assert r.shape == f.shape and r.dtype == np.complex64
    scores = gaussian_filter(np.abs(r) ** 2, (0, SMOOTH_PX, SMOOTH_PX), mode="nearest").max(axis=(1, 2))
    np.testing.assert_allclose(scores, tomographic_scores(f, PX, LAM, ILL, NA, NM), rtol=1e-4)
    np.testing.assert_allclose(np.abs(r[17]), tomographic_difference(f, PX, LAM, ILL, NA, NM, 17), rtol=1e-4,
                               atol=1e-6)
    row, col = np.unravel_index(np.argmax(np.abs(r[17])), r[17].shape)
    assert abs((col - N_PX / 2) * PX - 2.5) < 0.5 and abs((row - N_PX / 2) * PX + 2.0) < 0.5
    assert r[17].imag[row, col] < -0.3
