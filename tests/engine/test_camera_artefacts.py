"""Camera artefacts of raw holograms (engine.holography.camera) and the screen's camera alarm.

The synthetic holograms here are a sinusoidal fringe with a smooth phase object, Poisson noise and a
12-bit camera; the artefacts are planted with known parameters. The real holograms of ``tests/data``
(three cameras of another lab, ``tests/data/README.md``) are the independent check that a clean camera
reads clean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engine.holography.camera import camera_artefacts, fringe_frequencies
from engine.screening.camera_alarm import (ALARM_PROBABILITY, HOT_PIXEL_LEVEL, ROW_JITTER_LEVEL, camera_alarm,
                                           camera_reason, camera_warning)

FULL = 4095
FREQ = (0.23, 0.19)  # cycles/pixel


def _intensity(n: int = 128, peak: float = 3000.0, edge: bool = False) -> np.ndarray:
    """Expected counts of a hologram of a smooth phase bump (or, with ``edge``, a disc with a 2.5-rad step)."""
    y, x = np.mgrid[0:n, 0:n]
    r2 = ((x - n / 2) ** 2 + (y - n / 2) ** 2) / (n / 6) ** 2
    phase = 2.5 * (r2 < 1) if edge else 2.5 * np.exp(-r2)
    amp = 1 - 0.2 * np.exp(-r2)
    return peak / 4 * (1 + amp ** 2 + 1.8 * amp * np.cos(2 * np.pi * (FREQ[0] * x + FREQ[1] * y) + phase))


def _camera(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.poisson(np.clip(counts, 0, None)), 0, FULL).astype(np.uint16)


def _with_hot_pixels(img: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float64)
    hot = rng.random(img.shape) < density
    out[hot] = np.maximum(out[hot], rng.uniform(0.5, 1.0, hot.sum()) * FULL)
    return np.round(out).astype(np.uint16)


def test_fringe_frequency_is_the_side_band_peak():
    img = _camera(_intensity(), np.random.default_rng(0))
    assert np.allclose(fringe_frequencies(img)[0], FREQ, atol=1 / 128)


def test_clean_holograms_read_clean_even_clipped_or_with_steep_edges():
    rng = np.random.default_rng(1)
    frames = np.stack([_camera(_intensity(), rng),                      # no clipping
                       _camera(1.6 * _intensity(), rng),                # ~20 % of the pixels at full scale
                       _camera(_intensity(edge=True), rng)])            # a phase step: the local fringe fails there
    assert (frames[1] == FULL).mean() > 0.1
    c = camera_artefacts(frames, FULL)
    assert c.hot_pixel_fraction.shape == (3,) and c.hot_pixel_fraction.dtype == np.float32
    assert (c.hot_pixel_fraction < 0.2 * HOT_PIXEL_LEVEL).all()
    assert (c.row_jitter < 0.005).all()


def test_hot_pixels_are_counted():
    rng = np.random.default_rng(2)
    base = _intensity()
    frames = np.stack([_with_hot_pixels(_camera(base, rng), d, rng) for d in (0.003, 0.03)]
                      + [_with_hot_pixels(_camera(1.6 * base, rng), 0.003, rng)])
    c = camera_artefacts(frames, FULL)
    # a hot pixel shows where the fringe is darker than it, and isolated: a fraction of those planted
    assert 0.0015 < c.hot_pixel_fraction[0] <= 0.003
    assert 0.01 < c.hot_pixel_fraction[1] <= 0.03
    assert 0.001 < c.hot_pixel_fraction[2] <= 0.003       # also in a clipped frame
    assert (c.hot_pixel_fraction > HOT_PIXEL_LEVEL).all()


def test_hot_pixels_of_the_sensor_cancel_with_the_background():
    """A pixel hot in the background too (dark current: added to both) cancels in the ratio field: not counted."""
    rng = np.random.default_rng(5)
    base = _intensity()
    sensor = np.zeros(base.shape)
    sensor[rng.random(base.shape) < 0.005] = 0.4 * FULL
    tilt = np.roll(base, 3, axis=1)  # the background's fringe is elsewhere
    sample = np.clip(_camera(base, rng) + sensor, 0, FULL).astype(np.uint16)
    background = np.clip(_camera(tilt, rng) + sensor, 0, FULL).astype(np.uint16)
    transient = _with_hot_pixels(sample, 0.005, rng)  # and more, in the sample frame only
    alone = camera_artefacts(np.stack([sample, transient]), FULL)
    paired = camera_artefacts(np.stack([sample, transient]), FULL, backgrounds=background)
    assert (alone.hot_pixel_fraction > HOT_PIXEL_LEVEL).all()
    assert paired.hot_pixel_fraction[0] < 0.1 * alone.hot_pixel_fraction[0] < HOT_PIXEL_LEVEL
    assert paired.hot_pixel_fraction[1] > HOT_PIXEL_LEVEL
    per_frame = camera_artefacts(np.stack([sample, transient]), FULL, backgrounds=np.stack([background, background]))
    np.testing.assert_array_equal(per_frame.hot_pixel_fraction, paired.hot_pixel_fraction)
    with pytest.raises(ValueError, match="do not match"):
        camera_artefacts(sample, FULL, backgrounds=np.stack([background] * 3))


def test_row_jitter_measures_the_row_gain_spread():
    rng = np.random.default_rng(3)
    base = _intensity()
    gains = (0.004, 0.02, 0.1)
    frames = np.stack([_camera(base * (1 + g * rng.standard_normal((base.shape[0], 1))), rng) for g in gains])
    c = camera_artefacts(frames, FULL)
    assert c.row_jitter[0] < 0.01
    assert np.allclose(c.row_jitter[1:], gains[1:], rtol=0.3)
    assert c.row_jitter[2] > ROW_JITTER_LEVEL > c.row_jitter[1]
    assert (c.hot_pixel_fraction == 0).all()


def test_full_scale_is_found_and_bad_shapes_are_refused():
    rng = np.random.default_rng(4)
    img = _with_hot_pixels(_camera(1.6 * _intensity(), rng), 0.003, rng)
    assert camera_artefacts(img).hot_pixel_fraction[0] == camera_artefacts(img, FULL).hot_pixel_fraction[0]
    with pytest.raises(ValueError, match="shape"):
        camera_artefacts(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="too small"):
        camera_artefacts(np.zeros((4, 4)))


def test_frames_that_are_not_camera_counts_read_nan_and_raise_no_alarm():
    import warnings

    rng = np.random.default_rng(6)
    good = _camera(_intensity(), rng).astype(np.float64)
    frames = np.stack([good, good - good.mean(), np.zeros_like(good), np.where(rng.random(good.shape) < 0.01, np.nan, good)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings either
        c = camera_artefacts(frames)
    assert np.isfinite(c.hot_pixel_fraction[0]) and np.isnan(c.hot_pixel_fraction[1:]).all()
    assert np.isnan(c.row_jitter[1:]).all() and not camera_alarm(c, 4).any()


def test_real_holograms_of_three_cameras_read_clean():
    """Independent data: another lab's holograms (and backgrounds) raise no camera alarm."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import tifffile
    from _real_holograms import DATA
    from PIL import Image

    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    d = np.load(DATA / "hologram_cell.npz")
    stacks = [d["data"][None], d["bg_data"][None]]
    for name in ("single_hdf5_raw-oah.h5", "series_hdf5_raw-oah.h5"):
        stacks.append(read_qpformat_hdf5(DATA / name).holograms)
    with tifffile.TiffFile(DATA / "single_holo.tif") as t:
        stacks.append(t.pages[0].asarray()[None])
    stacks.append(np.asarray(Image.open(DATA / "hologram_cell_curved_bg.jpg"))[None])
    for h in stacks:
        c = camera_artefacts(h)
        assert camera_alarm(c, len(h)).sum() == 0
        assert (c.hot_pixel_fraction < 0.2 * HOT_PIXEL_LEVEL).all() and (c.row_jitter < 0.5 * ROW_JITTER_LEVEL).all()


def test_camera_alarm_reads_quality_records_and_explains():
    q = {"hot_pixel_fraction": np.array([0.0, 0.004, 0.0, np.nan]), "row_jitter": np.array([0.01, 0.0, 0.09, 0.0])}
    assert list(camera_alarm(q, 4)) == [False, True, True, False]
    assert camera_alarm(q, 5) is None and camera_alarm({"hot_pixel_fraction": q["hot_pixel_fraction"]}, 4) is None
    assert camera_alarm(None, 4) is None
    assert camera_reason(q, 4, 1) == "camera: 0.4 % hot pixels"
    assert camera_reason(q, 4, 2) == "camera: row jitter 9 %" and camera_reason(q, 4, 0) == ""
    assert camera_warning(q, 4).startswith("camera alarm on 2 of 4 fields (1 with hot pixels, 1 with row noise")
    assert camera_warning({k: np.r_[v, np.zeros(5)] for k, v in q.items()}, 9) == ""  # 2 of 9: a few frames


def test_screen_fields_takes_the_camera_alarm(tmp_path):
    from test_screening import Meta, _tiny_model, smooth_phase_field

    from engine.screening.network import load_model, screen_fields

    _tiny_model(tmp_path)
    model = load_model(tmp_path / "screening-test.safetensors")
    f = np.stack([smooth_phase_field(n=200, seed=s) for s in range(4)])
    ill = np.zeros((4, 2))
    q = {"hot_pixel_fraction": np.array([0.0, 0.002, 0.0, 0.0]), "row_jitter": np.array([0.0, 0.0, 0.0, 0.2])}
    plain = screen_fields(f, ill, Meta(), model=model, device="cpu")
    res = screen_fields(f, ill, Meta(), model=model, device="cpu", camera=q)
    assert plain.camera_alarm is None and list(res.camera_alarm) == [False, True, False, True]
    assert any(w.startswith("camera alarm on 2 of 4 fields") for w in res.warnings)
    assert list(res.decision[[1, 3]]) == [0, 0] and (res.score[[1, 3]] >= ALARM_PROBABILITY).all()
    assert np.array_equal(res.score[[0, 2]], plain.score[[0, 2]])
    rule = screen_fields(f, ill, Meta(), method="rule", rule_threshold=2.8, camera=q)
    assert list(rule.decision) == [1, 0, 1, 0] and list(rule.rule_decision) == [1, 1, 1, 1]
    assert rule.warnings == [w for w in res.warnings if w.startswith("camera alarm")]


def test_project_screening_warns_when_the_camera_alarm_is_widespread():
    from engine.pipeline.project_screening import _camera_warnings, _Fields

    many = {"quality": {"hot_pixel_fraction": np.full(8, 0.002), "row_jitter": np.zeros(8)}}
    few = {"quality": {"hot_pixel_fraction": np.r_[0.002, np.zeros(7)], "row_jitter": np.zeros(8)}}
    (w,) = _camera_warnings("cells_01", _Fields(meta=None, retrieval=many), 8)
    assert w.startswith("cells_01: camera alarm on 8 of 8 fields (8 with hot pixels, 0 with row noise")
    assert _camera_warnings("cells_01", _Fields(meta=None, retrieval=few), 8) == []
    assert _camera_warnings("cells_01", _Fields(meta=None, retrieval=None), 8) == []  # an older file: no numbers
