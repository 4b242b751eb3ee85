"""Measurements at a realistic defect rate from a measurement and its defect-free twin, and the class-balanced
stage fit (issue #19): :mod:`engine.training.screening_mixtures`, :mod:`engine.training.screening_consistency`."""

from __future__ import annotations

import numpy as np
import pytest

from engine.screening.consistency import stage_probability
from engine.screening.crops import CropSet
from engine.training.screening_consistency import balanced_weights, fit_logistic
from engine.training.screening_mixtures import mix_measurement, mixtures, specs_of_cache


def _measurement(n: int = 20, mid: int = 3, seed: int = 0) -> tuple[CropSet, np.ndarray]:
    rng = np.random.default_rng(seed)
    twin = (rng.normal(size=(n, 8, 8)) + 1j * rng.normal(size=(n, 8, 8))).astype(np.complex64)
    noisy = (np.arange(n) % 2).astype(np.uint8)
    acquired = np.where(noisy[:, None, None] == 1, twin + 5, twin).astype(np.complex64)
    cs = CropSet(fields=acquired, noisy=noisy, measurement=np.full(n, mid, np.int32),
                 defect=["obstruction" if k else "" for k in noisy], setup=["beads-20-na1.20-noise1.0"] * n,
                 pixel_size_um=np.full(n, 0.1, np.float32), wavelength_um=np.full(n, 0.532, np.float32))
    return cs, twin


def test_a_mixture_keeps_the_chosen_number_of_defects_and_cleans_the_rest():
    cs, twin = _measurement()
    out = mix_measurement(cs, twin, 0.2, np.random.default_rng(1))
    kept = np.flatnonzero(out.noisy)
    assert kept.size == 4 and set(kept) <= set(np.flatnonzero(cs.noisy))
    np.testing.assert_array_equal(out.fields[kept], cs.fields[kept])  # the acquired, defective frames
    rest = np.setdiff1d(np.arange(len(cs)), kept)
    np.testing.assert_array_equal(out.fields[rest], twin[rest])  # every other frame is its twin
    assert [out.defect[k] for k in kept] == ["obstruction"] * 4 and not any(out.defect[k] for k in rest)
    assert mix_measurement(cs, twin, 1.0, np.random.default_rng(1)).noisy.sum() == cs.noisy.sum()  # at most all
    assert mix_measurement(cs, twin, 0.0, np.random.default_rng(1)).noisy.sum() == 0


def test_mixtures_make_one_measurement_per_rate_and_bad_input_is_refused():
    a, ta = _measurement(mid=3)
    b, tb = _measurement(mid=8, seed=1)
    cs = CropSet.concatenate([a, b])
    ids = list(np.unique(cs.measurement))
    out = mixtures(cs, {ids[0]: ta, ids[1]: tb}, [0.1, 0.3])
    assert len(out) == 4 * 20 and len(np.unique(out.measurement)) == 4
    assert sorted(int(out.noisy[out.measurement == m].sum()) for m in np.unique(out.measurement)) == [2, 2, 6, 6]
    with pytest.raises(ValueError, match="defect rate"):
        mix_measurement(a, ta, 1.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="one measurement"):
        mix_measurement(cs, np.concatenate([ta, tb]), 0.1, np.random.default_rng(0))


def test_cache_names_give_their_specs_and_other_names_are_refused():
    from engine.training.screening_families import family_specs

    assert specs_of_cache("/somewhere/families-chamber-6-20261206.npz") == family_specs(6, 20261206, chamber=True)
    assert specs_of_cache("families-4-7.npz") == family_specs(4, 7)
    assert specs_of_cache("families-4-7.npz") != family_specs(4, 7, chamber=True)
    with pytest.raises(ValueError, match="not a generator-2 mixed cache"):
        specs_of_cache("families-widena-chamber-55-20261213.npz")


def test_balanced_weights_give_each_class_half_and_weighting_is_like_repeating():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 1.0])
    w = balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum()) and w.mean() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        balanced_weights(np.zeros(4))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] + 0.5 * rng.normal(size=60) > 0.8).astype(float)
    twice = np.where(y == 1, 2.0, 1.0)
    weighted = fit_logistic(x, y, 1e6, twice)
    repeated = fit_logistic(np.vstack([x, x[y == 1]]), np.concatenate([y, y[y == 1]]), 1e6)
    probe = rng.normal(size=(10, 2))
    # the standardisation differs (mean/scale of other rows), the fitted probabilities do not
    np.testing.assert_allclose(stage_probability(weighted, probe), stage_probability(repeated, probe), atol=2e-3)
