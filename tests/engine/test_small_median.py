"""The sorting-network median of a few values (engine.screening.small_median) against np.median."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.screening.small_median import _network, median_of_few


@pytest.mark.parametrize("size", [2, 4, 8, 16])
def test_each_network_sorts_every_input_of_zeros_and_ones(size):
    """The 0-1 principle: a comparator network that sorts every 0/1 input sorts every input."""
    for bits in itertools.product((0, 1), repeat=size):
        x = list(bits)
        for i, j in _network(size):
            x[i], x[j] = min(x[i], x[j]), max(x[i], x[j])
        assert x == sorted(bits)


@pytest.mark.parametrize("n", range(1, 19))
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_the_median_is_numpys_for_any_count_and_axis(n, axis):
    rng = np.random.default_rng(n)
    shape = [5, 7, 3]
    shape[axis] = n
    v = rng.normal(size=shape)
    v[0, 0, 0] = v[-1, -1, -1]  # ties
    got = median_of_few(v, axis=axis)
    assert got.shape == np.median(v, axis=axis).shape
    np.testing.assert_allclose(got, np.median(v, axis=axis), rtol=0, atol=1e-15)


def test_float32_stays_float32_integers_become_float64_and_nan_propagates():
    v = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert median_of_few(v).dtype == np.float32 and np.allclose(median_of_few(v), np.median(v, axis=0))
    assert median_of_few(np.arange(8).reshape(8, 1)).dtype == np.float64
    w = np.ones((6, 3))
    w[2, 1] = np.nan
    assert np.isnan(median_of_few(w)[1]) and np.all(median_of_few(w)[[0, 2]] == 1)
