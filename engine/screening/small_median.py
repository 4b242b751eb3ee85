"""The median of a few values per element, by a sorting network (the screen's neighbour comparisons).

The consistency features and the tomographic prediction (:mod:`engine.screening.consistency`,
:mod:`engine.screening.tomographic`) take, at every pixel or frequency, the median of the 6 or 8 fields
nearest a field. ``np.median`` along a short axis of a large array partitions each slice one by one
and dominated the screen's time; a sorting network does the same with a dozen element-wise
``minimum``/``maximum`` passes over whole arrays (4–5× faster at 6–8 values).

Batcher's odd–even merge sort sorts ``2^m`` values; an even count ``n`` below it is padded with as many
−∞ as +∞ (the median is unchanged), the pads kept as scalars. Odd counts and more than 16 values fall
back to ``np.median``. NaN propagates as in ``np.median``.

References
----------
K. E. Batcher, "Sorting networks and their applications", AFIPS Spring Joint Computer Conference (1968).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import numpy as np

__all__ = ["median_of_few"]


def _merge(lo: int, hi: int, r: int) -> Iterator[tuple[int, int]]:
    step = r * 2
    if step < hi - lo:
        yield from _merge(lo, hi, step)
        yield from _merge(lo + r, hi, step)
        yield from ((i, i + r) for i in range(lo + r, hi - r, step))
    else:
        yield lo, lo + r


def _sort(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    if hi - lo >= 1:
        mid = lo + (hi - lo) // 2
        yield from _sort(lo, mid)
        yield from _sort(mid + 1, hi)
        yield from _merge(lo, hi, 1)


@lru_cache(maxsize=None)
def _network(size: int) -> tuple[tuple[int, int], ...]:
    """The comparators (i < j) that sort ``size`` (a power of 2) values ascending."""
    return tuple(_sort(0, size - 1))


def median_of_few(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The median of ``values`` along ``axis`` (a short axis: 2–16 values), as ``np.median`` gives it.

    Parameters
    ----------
    values : ndarray
        Real values; the median is taken along ``axis``.
    axis : int

    Returns
    -------
    ndarray
        ``values``' shape without ``axis``, its dtype (float64 for integers).
    """
    v = np.asarray(values)
    n = v.shape[axis]
    if n % 2 or not 2 <= n <= 16:
        return np.median(v, axis=axis)
    size = 1 << (n - 1).bit_length()
    pad = (size - n) // 2
    items: list = [-np.inf] * pad + list(np.moveaxis(v, axis, 0)) + [np.inf] * pad
    for i, j in _network(size):
        lo, hi = np.minimum(items[i], items[j]), np.maximum(items[i], items[j])
        items[i], items[j] = lo, hi
    middle = 0.5 * (items[size // 2 - 1] + items[size // 2])
    return np.asarray(middle, dtype=np.result_type(v.dtype, np.float16) if v.dtype.kind == "f" else np.float64)
