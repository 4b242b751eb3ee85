"""Benchmark: does one more network's logit help the shipped consistency stage, and how sure is each number? (#19)

Run (after ``bench_screening_residual_input.py train … --logits X.npz``; ~3 min on a shared 2-core CPU)::

    .venv/bin/python tests/benchmarks/bench_screening_stage_extra_input.py [X.npz ...] [--json OUT.json]

The shipped model's stage inputs (:func:`engine.training.screening_consistency.card_stage_inputs`: its
networks' logits, the consistency features, the tomographic residual) on generator 2's protocol validation,
held-out and cross-setup sets (the cached, half-defective measurements, as ``bench_screening_residual_input.py``
prepares them, so that its logits line up field by field). Reported:

* the **shipped card's stage** on held-out and cross-setup, with a 95 % interval from bootstrap resamples of
  whole measurements (a measurement's fields are not independent);
* a **refit** of a stage on the nine inputs on the validation set (classes weighted equally, strength by grouped
  cross-validation over measurements, as ``python -m engine.training.screening_consistency --balanced`` fits; but
  on the cached set, not its remakes at 5–50 % defects), and the same refit with each ``X.npz``'s logit as a
  tenth input or in member 1's place; each against the nine-input refit, field by field, with a paired
  bootstrap interval of the difference.

Labels: 1 = noisy. Numbers only; the held-out and cross-setup sets are never fitted on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.screening.consistency import stage_probability
from engine.screening.crops import CropSet
from engine.screening.network import load_model
from engine.training.screening_consistency import (balanced_weights, card_stage_inputs, choose_strength,
                                                   fit_logistic)
from engine.training.screening_families import DEFAULT_CACHE_DIR, protocol_splits

FAMILIES = DEFAULT_CACHE_DIR / "families"
#: the logits files' set names (bench_screening_residual_input.py) of the sets used here
SETS = ("validation", "held_out", "cross_setup")
MEMBER_1 = 8  # column of member 1's logit among the shipped card's nine stage inputs
RESAMPLES = 4000


def measurement_bootstrap(right: np.ndarray, measurement: np.ndarray, seed: int = 0) -> list[float]:
    """95 % interval of the mean of ``right`` (per field: 1 right, 0 wrong, or a paired difference in -1..1)
    from :data:`RESAMPLES` resamples of whole measurements."""
    ids, inverse = np.unique(measurement, return_inverse=True)
    sums, counts = np.bincount(inverse, weights=right), np.bincount(inverse)
    pick = np.random.default_rng(seed).integers(len(ids), size=(RESAMPLES, len(ids)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return [round(float(v), 4) for v in np.percentile(means, [2.5, 97.5])]


def _refit(x: dict, sets: dict) -> tuple[dict, dict]:
    """A stage fitted on validation; its decisions (M,) bool on the other sets (undecided rows: 0.5, kept)."""
    cs = sets["validation"]
    ok = np.all(np.isfinite(x["validation"]), axis=1)
    y = cs.noisy[ok].astype(float)
    sw = balanced_weights(y)
    strength, _ = choose_strength(x["validation"][ok], y, cs.measurement[ok].astype(np.int64), sample_weight=sw)
    stage = fit_logistic(x["validation"][ok], y, strength, sw)
    return stage, {name: _decide(stage, x[name]) for name in SETS[1:]}


def _decide(stage: dict, x: np.ndarray) -> np.ndarray:
    ok = np.all(np.isfinite(x), axis=1)
    p = np.full(len(x), 0.5)
    p[ok] = stage_probability(stage, x[ok])
    return p > 0.5


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logits", type=Path, nargs="*", help="bench_screening_residual_input.py --logits files")
    ap.add_argument("--split-seed", type=int, default=20261206)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    _, val, held_out = protocol_splits(CropSet.load(FAMILIES / "families-chamber-110-20261206.npz"), args.split_seed)
    sets = {"validation": val, "held_out": held_out,
            "cross_setup": CropSet.load(FAMILIES / "cross-chamber-8-20261207.npz")}
    model = load_model("default")
    base = {name: card_stage_inputs(model, cs)[1] for name, cs in sets.items()}
    report: dict = {"model": model.label, "shipped_stage": {}}
    for name in SETS[1:]:
        right = (_decide(model.consistency, base[name]) == sets[name].noisy.astype(bool)).astype(float)
        report["shipped_stage"][name] = {"accuracy": round(float(right.mean()), 4),
                                         "ci95": measurement_bootstrap(right, sets[name].measurement)}
    _, ref = _refit(base, sets)
    report["refit_nine_inputs"] = {n: round(float(np.mean(ref[n] == sets[n].noisy.astype(bool))), 4) for n in SETS[1:]}
    for path in args.logits:
        extra = np.load(path)
        variants = {"added": {n: np.column_stack([base[n], extra[n]]) for n in SETS},
                    "in_member_1's_place": {n: np.column_stack([base[n][:, :MEMBER_1], extra[n]]) for n in SETS}}
        for how, x in variants.items():
            _, dec = _refit(x, sets)
            row = {}
            for n in SETS[1:]:
                y = sets[n].noisy.astype(bool)
                diff = (dec[n] == y).astype(float) - (ref[n] == y).astype(float)
                row[n] = {"accuracy": round(float(np.mean(dec[n] == y)), 4), "difference": round(float(diff.mean()), 4),
                          "paired_ci95": measurement_bootstrap(diff, sets[n].measurement),
                          "fields_better": int((diff > 0).sum()), "fields_worse": int((diff < 0).sum())}
            report[f"{path.stem} {how}"] = row
            print(path.stem, how, json.dumps(row), flush=True)
    print(json.dumps({k: v for k, v in report.items() if k in ("shipped_stage", "refit_nine_inputs")}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
