"""Simulated measurements with a realistic defect rate, from generator 2's caches and their defect-free twins (#19).

Generator 2's measurements (:mod:`engine.training.screening_families`) are half defective, so that a
network sees as many noisy frames as clean ones. A real measurement has far fewer, and every score
that compares a field with the rest of its measurement (:mod:`engine.screening.consistency`) depends
on how many of the others are defective: a robust spread measured on a half-defective measurement is
wider, so its z-scores are lower. A stage fitted there over-reacts on a mostly clean measurement.

This module makes measurements of any defect rate without a new simulation of the sample: the
simulator's *defect-free twin* of a measurement
(:func:`~engine.training.screening_families.simulate_family_crops` with ``apply_defects=False``) has
the same frames, imperfections and camera noise, so a measurement with fewer defects is the twin with
a chosen subset of its frames replaced by the acquired, defective ones (:func:`mix_measurement`). The
twins of the frames left clean are clean frames with no imperfection.

The cache names are those of ``screening_families`` (``families[-chamber]-N-SEED.npz``): the name
gives the specs (:func:`specs_of_cache`), and a measurement's id in the cache gives its spec (the
cache numbers measurements in spec order). Twins are cached beside the cache
(``twins-<name>.npz``, measurement ids as keys).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..screening.crops import CropSet
from .screening_families import FamilySpec, family_specs, simulate_family_crops

__all__ = ["specs_of_cache", "twin_fields", "mix_measurement", "mixtures"]

_MIXED_CACHE = re.compile(r"^families(-chamber)?-(\d+)-(\d+)\.npz$")


def specs_of_cache(path: str | Path) -> list[FamilySpec]:
    """The specs a generator-2 mixed cache (``families[-chamber]-N-SEED.npz``) was simulated from.

    ValueError for another name (the extra training sets draw other setups).
    """
    match = _MIXED_CACHE.match(Path(path).name)
    if match is None:
        raise ValueError(f"{Path(path).name}: not a generator-2 mixed cache (families[-chamber]-N-SEED.npz)")
    return family_specs(int(match.group(2)), int(match.group(3)), chamber=bool(match.group(1)))


def twin_fields(cache: str | Path, cs: CropSet, measurements: Sequence[int], *,
                log: Callable[[str], None] = print) -> dict[int, np.ndarray]:
    """The defect-free twins' crops (n, c, c) complex64 of the given measurement ids of the cache ``cs``.

    Simulated (≈ 1.5 s per measurement) and kept in ``twins-<cache name>.npz`` beside the cache. A
    RuntimeError if a twin's clean frames differ from the cache's (another simulator version).
    """
    cache = Path(cache)
    store = cache.with_name(f"twins-{cache.name}")
    have = dict(np.load(store)) if store.exists() else {}
    specs, ids = specs_of_cache(cache), list(np.unique(cs.measurement))
    out, added = {}, False
    for mid in measurements:
        key = str(int(mid))
        if key not in have:
            i = ids.index(mid)
            have[key] = simulate_family_crops(specs[i], i, apply_defects=False).fields
            added = True
        rows = np.flatnonzero(cs.measurement == mid)
        clean = cs.noisy[rows] == 0
        if have[key].shape != cs.fields[rows].shape or not np.array_equal(have[key][clean], cs.fields[rows][clean]):
            raise RuntimeError(f"{cache.name}: the twin of measurement {mid} does not match its clean frames")
        out[int(mid)] = have[key]
    if added:
        tmp = store.with_name(store.stem + ".tmp.npz")
        np.savez(tmp, **have)
        tmp.replace(store)
        log(f"defect-free twins of {len(have)} measurements in {store}")
    return out


def mix_measurement(acquired: CropSet, twin: np.ndarray, rate: float, rng: np.random.Generator) -> CropSet:
    """One measurement with ``round(rate · n)`` of its defective frames kept (at most all of them).

    Parameters
    ----------
    acquired : CropSet
        The frames of one measurement as acquired (about half defective).
    twin : ndarray (n, c, c) complex
        Its defect-free twin's crops.
    rate : float
        The fraction of the measurement's frames to keep defective, in [0, 1].
    rng : Generator
        Which defective frames are kept.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"a defect rate must lie in [0, 1], got {rate}")
    if len(np.unique(acquired.measurement)) != 1 or twin.shape != acquired.fields.shape:
        raise ValueError("mix_measurement needs one measurement's frames and its twin, alike in shape")
    noisy = np.flatnonzero(acquired.noisy)
    keep = np.zeros(len(acquired), bool)
    keep[rng.choice(noisy, min(int(round(rate * len(acquired))), noisy.size), replace=False)] = True
    out = acquired.subset(np.arange(len(acquired)))
    out.fields = np.where(keep[:, None, None], acquired.fields, twin).astype(acquired.fields.dtype)
    out.noisy = keep.astype(np.uint8)
    out.defect = [d if k else "" for d, k in zip(acquired.defect, keep)]
    return out


def mixtures(cs: CropSet, twins: dict[int, np.ndarray], rates: Sequence[float], seed: int = 0) -> CropSet:
    """Every measurement of ``cs`` at every defect rate (one new measurement id per pair)."""
    parts = []
    for k, rate in enumerate(rates):
        for mid in np.unique(cs.measurement):
            m = cs.subset(np.flatnonzero(cs.measurement == mid))
            mixed = mix_measurement(m, twins[int(mid)], rate, np.random.default_rng([seed, int(mid), k]))
            mixed.measurement = np.zeros(len(mixed), np.int32)
            parts.append(mixed)
    return CropSet.concatenate(parts)
