"""Compare the shipped screening models and the rule on measurements neither network saw in training.

Run on demand after ``python -m engine.screening.training`` has filled its crop cache::

    .venv/bin/python tests/benchmarks/compare_screening_models.py [--compact resources/models/screening-compact.safetensors]

The published net (phase input) was trained on the 70 % split of ``mixed-48-<seed>.npz`` and the
compact net (phase + amplitude input) on the 70 % split of ``mixed-96-<seed>.npz``. The
measurement specs of the 48 set are the first 48 of the 96 set (same seeds), so the fair held-out
set is the 96 set's test split minus the measurements the published net trained on. The
cross-setup set (cells, 45 angles, NA 1.0, noise 2) was seen by neither. Prints accuracy,
sensitivity (noisy caught), specificity (clean kept) and ROC AUC, and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.screening.dataset import DEFAULT_CACHE_DIR, CropSet, split_by_measurement
from engine.screening.metrics import screening_metrics
from engine.screening.network import MODELS_DIR, load_model
from engine.screening.training import evaluate_rule

KEYS = ("accuracy", "sensitivity", "specificity", "roc_auc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR / "simulator")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--published", default="screening-published")
    ap.add_argument("--compact", default=str(MODELS_DIR / "screening-compact.safetensors"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m48 = CropSet.load(a.cache / f"mixed-48-{a.seed}.npz")
    m96 = CropSet.load(a.cache / f"mixed-96-{a.seed}.npz")
    cross = CropSet.load(a.cache / f"cross-8-{a.seed + 1}.npz")
    tr48, _, _ = split_by_measurement(m48.measurement, (0.7, 0.15, 0.15), seed=a.seed)
    _, _, te96 = split_by_measurement(m96.measurement, (0.7, 0.15, 0.15), seed=a.seed)

    def setup_of(cs: CropSet, m: int) -> str:
        return cs.setup[int(np.flatnonzero(cs.measurement == m)[0])]

    # measurement ids follow the spec order, and training_specs(96)[:48] == training_specs(48)
    assert all(setup_of(m48, m) == setup_of(m96, m) for m in range(48)), "caches do not share their specs"
    seen_by_published = set(np.unique(m48.measurement[tr48]).tolist())
    test_ids = [int(m) for m in np.unique(m96.measurement[te96]) if int(m) not in seen_by_published]
    fair = m96.subset(np.flatnonzero(np.isin(m96.measurement, test_ids)))
    print(f"held-out measurements unseen by both nets: {len(test_ids)} ({len(fair)} frames, "
          f"{int(fair.noisy.sum())} noisy)")
    published = load_model(a.published, device="cpu")
    compact = load_model(a.compact, device="cpu")
    rule = compact.card["rule"]
    out: dict = {"held_out_frames": len(fair), "held_out_measurements": len(test_ids)}
    for name, cs in (("held_out_unseen_by_both", fair), ("cross_setup", cross)):
        res = {m.name: screening_metrics(cs.noisy, m.predict_fields(cs.fields), threshold=0.5)
               for m in (published, compact)}
        res["rule"] = evaluate_rule(cs, rule)
        out[name] = {k: {key: round(float(v[key]), 4) for key in KEYS} for k, v in res.items()}
        for k, v in out[name].items():
            print(f"{name:24s} {k:20s} " + ", ".join(f"{key} {v[key]:.4f}" for key in KEYS))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
