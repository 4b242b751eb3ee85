"""A tiny (raw, TV) training pair for the learned-regulariser tests (shared by two test modules)."""

from __future__ import annotations

import numpy as np

from engine.training.deep_regularizer import TrainingPair


def tiny_pair(seed: int) -> TrainingPair:
    """A 16³ bead-like box of Δn 0.01–0.03 in n_m 1.337; ``raw`` has 0.004 Gaussian noise, ``tv`` = truth."""
    rng = np.random.default_rng(seed)
    truth = np.full((16, 16, 16), 1.337, np.float32)
    truth[4:12, 5:11, 4:12] += np.float32(rng.uniform(0.01, 0.03))
    raw = truth + np.float32(0.004) * rng.standard_normal(truth.shape).astype(np.float32)
    return TrainingPair(raw=raw, tv=truth, truth=truth, medium_index=1.337, voxel_size_um=(0.1,) * 3,
                        kind="beads", seed=seed, setup="test", objects=[])
