"""Training data for field screening: cached crop sets, data plans and splits by measurement.

The crop generator itself (simulated or synthetic measurements → retrieved fields → labelled
crops, augmentation) is :mod:`engine.screening.crops`, which the product's fine-tuning also
uses; its names are re-exported here so the training code has one data module to import.
This module adds what only the training script needs: the cache folder, the cross-setup and
paper-style data plans, cached generation and splits **by measurement** (every frame of a
measurement goes to the same split).

Labels: **1 = noisy**, 0 = clean. Crops are cached as ``.npz`` (complex64 crops, labels,
measurement ids, defect types, setup names) in a folder outside the repository (default
``/tmp/odt-screening-data``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..screening.crops import (CROSS_SETUP, GENERATOR_VERSION, SYNTHETIC_DEFECTS, CropSet, MeasurementSpec,
                               augment_batch, elastic_deform, generate_crops, simulate_crops, simulate_measurement_for,
                               simulator_available, synthesize_measurement, synthetic_crops, training_specs)

__all__ = [
    # re-exported from engine.screening.crops
    "CropSet",
    "MeasurementSpec",
    "SYNTHETIC_DEFECTS",
    "CROSS_SETUP",
    "GENERATOR_VERSION",
    "synthesize_measurement",
    "simulate_crops",
    "simulate_measurement_for",
    "synthetic_crops",
    "generate_crops",
    "elastic_deform",
    "augment_batch",
    "simulator_available",
    "training_specs",
    # training only
    "DEFAULT_CACHE_DIR",
    "cross_setup_specs",
    "bacteria71_specs",
    "load_or_generate",
    "split_by_measurement",
    "write_manifest",
]

DEFAULT_CACHE_DIR = Path("/tmp/odt-screening-data")


# --------------------------------------------------------------------------- data plans
def cross_setup_specs(n_measurements: int, seed: int, *, defect_rate: float = 0.5) -> list[MeasurementSpec]:
    """Measurements of the unseen cross setup: cells, 45 angles, NA 1.0, noise ×2."""
    rng = np.random.default_rng(seed)
    return [MeasurementSpec(defect_rate=defect_rate, seed=int(rng.integers(1 << 31)), **CROSS_SETUP)
            for _ in range(n_measurements)]


def bacteria71_specs(n_measurements: int, seed: int, *, defect_rate: float = 0.5) -> list[MeasurementSpec]:
    """Paper-style single-setup training data: bacteria, 71 angles, NA 1.2, noise ×1."""
    rng = np.random.default_rng(seed)
    return [MeasurementSpec("bacteria", 71, 1.2, 1.0, defect_rate, int(rng.integers(1 << 31)))
            for _ in range(n_measurements)]


def load_or_generate(path: Path, specs: list[MeasurementSpec], *, source: str, device: str,
                     log: Callable[[str], None]) -> CropSet:
    """Load cached crops from ``path`` or generate and cache them."""
    if path.exists():
        cs = CropSet.load(path)
        log(f"loaded {len(cs)} cached crops from {path}")
        return cs
    t0 = time.time()
    cs = generate_crops(specs, source=source, device=device, log=log)
    cs.save(path)
    log(f"generated {len(cs)} crops ({int(cs.noisy.sum())} noisy) from {len(specs)} measurements "
        f"in {time.time() - t0:.0f} s -> {path}")
    return cs


# --------------------------------------------------------------------------- splits
def split_by_measurement(measurement: np.ndarray, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                         seed: int = 0) -> list[np.ndarray]:
    """Split frame indices into groups so that no measurement is split across groups.

    Parameters
    ----------
    measurement : ndarray (M,)
        Measurement id of each frame.
    fractions : sequence of float
        Target fraction of **measurements** per group (normalised to 1).
    seed : int

    Returns
    -------
    list of ndarray
        Frame indices of each group, sorted.
    """
    ids = np.unique(measurement)
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    fr = np.asarray(fractions, np.float64)
    fr = fr / fr.sum()
    bounds = np.round(np.cumsum(fr) * len(ids)).astype(int)
    groups, start = [], 0
    for b in bounds:
        chosen = ids[start:b]
        groups.append(np.flatnonzero(np.isin(measurement, chosen)))
        start = b
    return groups


def write_manifest(path: str | Path, info: dict) -> None:
    """Write a small JSON manifest next to cached crops."""
    Path(path).write_text(json.dumps(info, indent=2), encoding="utf-8")
