"""Benchmark: field screening on an independent set of defective measurements (issue #19).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_independent.py [--model PATH_OR_NAME ...]
[--combine-min] [--n 20] [--seed 19000] [--defect-rate 0.4] [--json OUT.json]``.

The set (:mod:`_independent_defects`, a generator that shares no code with the training
simulator): 20 measurements of Mie spheres and rod bacteria, 49 illuminations, 8- and 16-bit
cameras, 980 labelled fields; defects parasitic fringes, obstructions (dust, bubbles), blank
frames, DMD errors. For each model: accuracy, sensitivity, specificity, ROC AUC, expected
calibration error and the catch rate per defect family (obstruction = dust + bubble), the
clean fields kept per bit depth, and the rule metric beside it. A model with a consistency stage
(``engine.screening.consistency``) is reported twice: the network alone, and with the stage applied
measurement by measurement as ``screen_fields`` does. Reports numbers only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _independent_defects as ind

from engine.metrics import expected_calibration_error, screening_metrics

from engine.screening.network import load_model


def score_set(s: ind.IndependentSet, prob: np.ndarray, threshold: float = 0.5) -> dict:
    """Metrics, ECE and per-family catch rates of probabilities ``prob`` on set ``s``."""
    out = screening_metrics(s.noisy, prob, threshold)
    out["ece"] = expected_calibration_error(s.noisy, prob)
    fam = np.array(s.family)
    noisy_pred = prob > threshold
    out["caught"] = {}
    for group, members in {**ind.REPORT_GROUPS, **{f: (f,) for f in ind.FAMILIES}}.items():
        sel = np.isin(fam, members)
        out["caught"][group] = float(noisy_pred[sel].mean()) if sel.any() else float("nan")
    out["clean_kept"] = {str(b): float((~noisy_pred[(s.bits == b) & (s.noisy == 0)]).mean()) for b in (8, 16)}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="*", default=["default"])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--seed", type=int, default=19_000)
    p.add_argument("--combine-min", action="store_true",
                   help="also score the least of the models' noisy-probabilities (noisy only if every model says so)")
    p.add_argument("--defect-rate", type=float, default=0.4,
                   help="fraction of each measurement's frames made defective (0.4: the issue's set; a real "
                        "measurement has fewer, and a stage that compares fields with each other must hold there too)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    s = ind.make_set(a.n, a.seed, defect_rate=a.defect_rate)
    print(f"independent set: {len(s.noisy)} fields ({int(s.noisy.sum())} noisy) from {a.n} measurements, "
          f"generated and retrieved in {time.time() - t0:.0f} s")
    report = {"n_fields": int(len(s.noisy)), "n_noisy": int(s.noisy.sum()), "seed": a.seed,
              "defect_rate": a.defect_rate, "models": {}}
    probs = []
    for name in a.model:
        m = load_model(name)
        probs.append(m.predict_fields(s.fields))
        _report(report, f"{m.label} ({name})" + (", network alone" if m.consistency else ""), score_set(s, probs[-1]))
        if m.consistency:  # each field against the rest of its measurement, as screen_fields does
            _report(report, f"{m.label} ({name}) with its consistency stage", score_set(s, ind.stage_scores(m, s, probs[-1])))
    if a.combine_min and len(probs) > 1:  # noisy only if every model says so
        _report(report, "min(" + ", ".join(a.model) + ")", score_set(s, np.min(probs, axis=0)))
    if a.json is not None:
        a.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def _report(report: dict, label: str, r: dict) -> None:
    report["models"][label] = r
    fam = ", ".join(f"{k} {v:.3f}" for k, v in r["caught"].items())
    print(f"{label}: accuracy {r['accuracy']:.4f}, sensitivity {r['sensitivity']:.3f}, specificity "
              f"{r['specificity']:.3f}, AUC {r['roc_auc']:.4f}, ECE {r['ece']:.4f}; caught: {fam}; clean kept "
              f"8-bit {r['clean_kept']['8']:.3f}, 16-bit {r['clean_kept']['16']:.3f}")


if __name__ == "__main__":
    main()
