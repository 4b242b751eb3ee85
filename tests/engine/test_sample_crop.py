"""Where the screen looks (engine.screening.sample_crop): the centre crop unless the sample lies
mostly outside it, then a crop centred on the sample, the same from the fields alone."""

from __future__ import annotations

import numpy as np

from engine.screening.sample_crop import centre_origin, crop_at, screening_crop_origin

CROP = 128


def _measurement(shape=(400, 300), centre=(300, 150), radius=30.0, phase=2.0, n=20, seed=0,
                 tilt=(0.0, 0.0), curvature=0.0) -> np.ndarray:
    """``n`` noisy ratio fields (n, h, w) of a round phase object (a spherical cap) at ``centre``
    (row, column), on a background with a phase tilt (rad per pixel) and curvature."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(float)
    r2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    obj = phase * np.sqrt(np.clip(1 - r2 / radius**2, 0, None))
    bg = tilt[0] * yy + tilt[1] * xx + curvature * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)
    f = np.exp(1j * (obj + bg))[None] * np.ones((n, 1, 1))
    f = f * (1 + rng.normal(0, 0.03, f.shape)) * np.exp(1j * rng.normal(0, 0.03, f.shape))
    return f.astype(np.complex64)


def test_an_off_centre_sample_gets_a_crop_around_it():
    f = _measurement(centre=(320, 150))
    y0, x0 = screening_crop_origin(f, CROP)
    assert abs(y0 + CROP // 2 - 320) <= 3 and abs(x0 + CROP // 2 - 150) <= 3
    assert centre_origin(f.shape, CROP) == (136, 86)


def test_a_sample_the_centre_crop_holds_keeps_the_centre_crop():
    f = _measurement(centre=(215, 160))  # 15 px off the middle: inside the centre crop
    assert screening_crop_origin(f, CROP) == centre_origin(f.shape, CROP)


def test_no_sample_or_a_small_field_keeps_the_centre_crop():
    assert screening_crop_origin(_measurement(phase=0.0), CROP) == centre_origin((400, 300), CROP)
    small = _measurement(shape=(120, 120), centre=(100, 100), radius=15)
    assert screening_crop_origin(small, CROP) == (0, 0)


def test_the_crop_stays_inside_the_field_and_ignores_tilt_curvature_and_one_bad_field():
    f = _measurement(centre=(385, 290), radius=12, tilt=(0.05, -0.03), curvature=6.0)
    f[3] = 0.01  # a blank frame
    f[5] *= np.exp(1j * 3.0 * np.sin(np.arange(300) / 3.0))[None, :]  # strong fringes in one field
    y0, x0 = screening_crop_origin(f, CROP)
    assert (y0, x0) == (400 - CROP, 300 - CROP)  # pushed into the corner, not past it
    assert crop_at(f, (y0, x0), CROP).shape == (20, CROP, CROP)


def test_every_field_of_a_measurement_gets_the_same_crop_in_the_screen():
    from engine.metadata import MeasurementMetadata
    from engine.screening import screen_fields

    f = _measurement(centre=(320, 150))
    md = MeasurementMetadata.from_dict({"format": "odt-measurement/1", "wavelength_um": 0.532, "medium_index": 1.337,
                                        "na_objective": 1.0, "pixel_size_um": 0.1})
    s = screen_fields(f, None, md, method="rule")
    assert s.crop_origin == screening_crop_origin(f, CROP)
    assert len(s.rule_peak) == len(f)


def test_a_centred_sample_larger_than_the_crop_keeps_the_centre_crop():
    """qpformat's hologram: a cell ~170 px across, slightly off the middle; no crop holds all of
    it, and the centre crop holds nearly as much as one centred on the cell: it stays."""
    f = _measurement(shape=(294, 280), centre=(155, 142), radius=85)
    assert screening_crop_origin(f, CROP) == centre_origin(f.shape, CROP)
