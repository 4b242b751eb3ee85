"""Benchmark: leave-one-family-out of a network *or* a defect-free anomaly rule (issue #19, item 2).

Run (after ``bench_screening_residual_input.py prepare`` and one ``train --leave-out F --logits
LOGITS/lofo-F.npz`` per family F, optionally ``train --logits LOGITS/all.npz`` with every family)::

    .venv/bin/python tests/benchmarks/bench_screening_hybrid_lofo.py --logits LOGITS [--json OUT.json]

A network trained without a defect family rarely catches it (single networks: 48–58 % of the worst
left-out family). The measurement-consistency features (:mod:`engine.screening.consistency`) are
never trained on a defect: each is a field's robust z-score against its nearest illuminations. So
the *anomaly rule* — a field is noisy when any feature exceeds the level that a fraction ``a`` of
the **validation clean fields** exceed, the same level for every feature — cannot have learned any
family, and its catch rate of a family is the same whether that family was trained on or not.

Here each left-out network is combined with that rule by *or* (noisy if either says so), and its
left-out family's catch rate, the clean fields kept and the accuracy are reported on generator 2's
held-out measurements for several false-alarm levels ``a`` (the rule's only parameter, fitted on
clean validation fields: no defect label is used). With ``all.npz`` the same is reported for the
network trained on every family (what the rule costs where nothing was left out).

Beside it, the consistency *stage* as the shipped card builds it (``screening_consistency``: a
logistic regression of the network's logit and the five features, strength by grouped
cross-validation), here fitted on the validation measurements **without** the left-out family, on
the left-out network's logits: ``stage`` alone and ``stage_or_anomaly_a``.

Labels: 1 = noisy. Numbers only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.screening.crops import CropSet
from engine.simulate.defects import DEFECT_FAMILIES
from engine.screening.consistency import stage_probability
from engine.training.screening_consistency import choose_strength, fit_logistic, measurement_features
from engine.training.screening_families import DEFAULT_CACHE_DIR, protocol_splits

CACHE = DEFAULT_CACHE_DIR / "families" / "families-chamber-110-20261206.npz"
FALSE_ALARMS = (0.01, 0.02, 0.03, 0.05)


def anomaly_level(clean_features: np.ndarray, false_alarm: float) -> float:
    """The one level ``t`` such that a fraction ``false_alarm`` of clean fields has some feature above ``t``."""
    return float(np.quantile(np.nanmax(clean_features, axis=1), 1.0 - false_alarm))


def summary(noisy_pred: np.ndarray, y: np.ndarray, d: np.ndarray, family: str | None) -> dict:
    right = noisy_pred == (y > 0.5)
    out = {"accuracy": round(float(right.mean()), 4), "clean_kept": round(float(right[d == ""].mean()), 4)}
    if family is not None:
        out["left_out_caught"] = round(float(right[np.isin(d, DEFECT_FAMILIES[family])].mean()), 4)
    return out


def _stage_without(family: str | None, val_logits: np.ndarray, f_val: np.ndarray, val: CropSet) -> dict:
    """The consistency stage fitted on the validation fields without ``family``, on these logits."""
    keep = ~np.isin(np.array(val.defect), DEFECT_FAMILIES[family]) if family else np.ones(len(val), bool)
    x = np.column_stack([val_logits, f_val])
    keep &= np.all(np.isfinite(x), axis=1)
    y = val.noisy[keep].astype(np.float64)
    strength, _ = choose_strength(x[keep], y, val.measurement[keep])
    return fit_logistic(x[keep], y, strength)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--split-seed", type=int, default=20261206)
    p.add_argument("--logits", type=Path, required=True, help="folder of lofo-FAMILY.npz (and all.npz)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    _, val, held_out = protocol_splits(CropSet.load(args.cache), args.split_seed)
    f_val, f_test = measurement_features(val), measurement_features(held_out)
    y, d = held_out.noisy.astype(np.float64), np.array(held_out.defect)
    clean_val = f_val[(val.noisy == 0) & np.all(np.isfinite(f_val), axis=1)]
    report: dict = {"anomaly_rule_alone": {}, "families": {}}
    levels = {a: anomaly_level(clean_val, a) for a in FALSE_ALARMS}
    largest = np.nan_to_num(f_test, nan=-np.inf).max(axis=1)
    flagged_at = {a: largest > t for a, t in levels.items()}  # the rule's decisions, the same for every network
    for a, t in levels.items():
        flagged = flagged_at[a]
        report["anomaly_rule_alone"][str(a)] = {"level": round(t, 3), **summary(flagged, y, d, None),
                                                "caught": {fam: round(float(flagged[np.isin(d, types)].mean()), 4)
                                                           for fam, types in DEFECT_FAMILIES.items()}}
    runs = {path.stem.removeprefix("lofo-"): path for path in sorted(args.logits.glob("*.npz"))}
    for name, path in runs.items():
        family = name if name in DEFECT_FAMILIES else None
        logits = np.load(path)
        z = logits["held_out"]
        row = {"network_alone": summary(z > 0, y, d, family)}
        stage = _stage_without(family, logits["validation"], f_val, val)
        x_test = np.column_stack([z, f_test])
        known = np.all(np.isfinite(x_test), axis=1)
        by_stage = np.where(known, stage_probability(stage, np.where(known[:, None], x_test, 0.0)) > 0.5, z > 0)
        row["stage"] = summary(by_stage, y, d, family)
        for a, flagged in flagged_at.items():
            row[f"or_anomaly_{a}"] = summary((z > 0) | flagged, y, d, family)
            row[f"stage_or_anomaly_{a}"] = summary(by_stage | flagged, y, d, family)
        report["families"][name] = row
        print(name, json.dumps(row))
    for variant in ["network_alone", "stage"] + [f"{v}_{a}" for v in ("or_anomaly", "stage_or_anomaly") for a in FALSE_ALARMS]:
        caught = {k: v[variant]["left_out_caught"] for k, v in report["families"].items() if k in DEFECT_FAMILIES}
        if caught:
            worst = min(caught, key=lambda k: caught[k])
            report.setdefault("worst_left_out", {})[variant] = [worst, caught[worst]]
            print(f"{variant}: worst left-out family {worst} {caught[worst]:.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
