"""Benchmark: screening models side by side on cached evaluation sets, and how stable their score is
under turning and mirroring the field (issue #19).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_candidates.py --model default CANDIDATE.safetensors
--set NAME=CACHE.npz ... [--flips-set NAME] [--json OUT.json]``.

The caches are ``screening_families generate`` sets never trained on (e.g. ``nobg=…families-nobg-
chamber-20-20261219.npz``, ``widepx=…families-widepx-chamber-20-20261224.npz``); a set named
``validation`` (or ``held_out``) is taken from the default mixed cache's protocol split instead
when given as ``validation=MIXED.npz`` (``protocol_splits`` with ``--seed``). For each model and set:
accuracy, ROC AUC, ECE, sensitivity and specificity with the model's own calibration and
test-time augmentation. For ``--flips-set``: the share of fields whose decision changes between
any two of the 8 orientations (:func:`engine.screening.network.dihedral_views`), and the median
and 90th percentile of the score spread over them. Numbers only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.screening.crops import CropSet
from engine.screening.network import dihedral_views, load_model, preprocess
from engine.training.screening_families import evaluate_logits, protocol_splits


def _set(spec: str, seed: int) -> tuple[str, CropSet]:
    name, _, path = spec.partition("=")
    cs = CropSet.load(path)
    if name in ("validation", "held_out"):
        _, val, test = protocol_splits(cs, seed)
        cs = val if name == "validation" else test
    return name, cs


def _inputs(m, cs: CropSet) -> torch.Tensor:
    return preprocess(cs.fields, input_kind=m.input_kind, crop=m.crop)


def _orientation_logits(m, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    """(8, N) logits of the 8 orientations of inputs ``x``."""
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            out.append(torch.stack([m.net.logits(v.to(m.device)) for v in dihedral_views(x[s:s + batch])]).cpu())
    return torch.cat(out, dim=1).numpy()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="*", default=["default"])
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=CACHE.npz")
    p.add_argument("--flips-set", default="", help="the set (by NAME) whose orientation stability is measured")
    p.add_argument("--seed", type=int, default=20261206, help="protocol split seed of a validation/held_out set")
    p.add_argument("--combine-min", action="store_true",
                   help="also score 'noisy only if every model says so': the least of the models' calibrated "
                        "noisy-probabilities (an AND of their decisions; not recalibrated)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sets = dict(_set(s, a.seed) for s in a.set)
    report: dict = {}
    probs: dict = {}  # model -> set -> calibrated logits (logit / T), for --combine-min
    for name in a.model:
        m = load_model(name, device="cpu")
        m.net.eval()
        entry: dict = {"label": m.label}
        for sname, cs in sets.items():
            x = _inputs(m, cs)
            views = _orientation_logits(m, x)
            logits = views.mean(axis=0) if m.test_time_augmentation == "d8" else views[0]
            r = evaluate_logits(logits, cs, m.temperature)
            probs.setdefault(name, {})[sname] = logits / m.temperature
            entry[sname] = {k: r[k] for k in ("accuracy", "roc_auc", "ece", "sensitivity", "specificity")}
            if sname == a.flips_set:
                prob = 1 / (1 + np.exp(-views / m.temperature))
                dec = prob > 0.5
                spread = prob.max(axis=0) - prob.min(axis=0)
                entry[sname]["orientation_flips"] = float(np.mean(dec.any(axis=0) & ~dec.all(axis=0)))
                entry[sname]["score_spread_median_p90"] = [float(np.median(spread)), float(np.percentile(spread, 90))]
            print(f"{m.label} {sname} ({len(cs)} fields): " + "  ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry[sname].items()), flush=True)
        report[name] = entry
    if a.combine_min and len(a.model) > 1:
        report["min"] = {"label": "min(" + ", ".join(report[n]["label"] for n in a.model) + ")"}
        for sname, cs in sets.items():
            logit = np.min([probs[n][sname] for n in a.model], axis=0)
            r = evaluate_logits(logit, cs, 1.0)
            report["min"][sname] = {k: r[k] for k in ("accuracy", "roc_auc", "ece", "sensitivity", "specificity")}
            print(f"{report['min']['label']} {sname}: " + "  ".join(
                f"{k} {v:.3f}" for k, v in report["min"][sname].items()), flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
