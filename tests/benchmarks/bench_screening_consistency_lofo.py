"""Benchmark: leave-one-family-out of the measurement-consistency features (issue #19, item 2).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_consistency_lofo.py [--json OUT.json]``.

The consistency features (:mod:`engine.screening.consistency`) are never trained on a defect: each is
a field's statistic against the fields of nearest illumination. Two ways of deciding from them alone
(no network), measured on generator 2's held-out measurements (``screening_families`` protocol split):

* **no defect seen at all**: a field is noisy when any standardised feature exceeds the level that
  2 % of the validation *clean* fields exceed (a false-alarm rate, fitted on clean fields only), so
  every family is "left out";
* **leave one family out**: per family F, the logistic regression of the stage on the five features
  only, fitted on the validation measurements without F (strength by grouped cross-validation); the
  catch rate of F on the held-out measurements and the clean fields kept.

Numbers only. Needs the generator-2 caches in ``/tmp/odt-screening-data/families`` (see the README,
"Training the models").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.screening.crops import CropSet
from engine.screening.network import load_model
from engine.screening.consistency import stage_probability
from engine.training.screening_consistency import choose_strength, fit_logistic, stage_inputs
from engine.training.screening_families import DEFAULT_CACHE_DIR, families_of, protocol_splits

CACHE = DEFAULT_CACHE_DIR / "families" / "families-chamber-110-20261206.npz"
FALSE_ALARM = 0.02


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    _, val, held = protocol_splits(CropSet.load(a.cache), 20261206)
    model = load_model("default")
    xv, xh = stage_inputs(model, val)[1][:, 1:], stage_inputs(model, held)[1][:, 1:]  # features only
    fv, fh = families_of(val), families_of(held)
    clean_v, clean_h = val.noisy == 0, held.noisy == 0
    families = sorted(set(fh) - {"clean", ""})
    # 1. no defect seen: standardise by the clean validation fields, one false-alarm level
    mu, sd = xv[clean_v].mean(axis=0), xv[clean_v].std(axis=0) + 1e-9
    level = float(np.quantile(((xv[clean_v] - mu) / sd).max(axis=1), 1 - FALSE_ALARM))
    flag = ((xh - mu) / sd).max(axis=1) > level
    unseen = {f: float(flag[fh == f].mean()) for f in families}
    report = {"no_defect_seen": {"false_alarm_on_validation_clean": FALSE_ALARM, "caught": unseen,
                                 "clean_kept": float(1 - flag[clean_h].mean()),
                                 "accuracy": float(np.mean(flag == (held.noisy == 1)))}}
    print(f"no defect seen (clean-only level, {FALSE_ALARM:.0%} false alarms on validation): clean kept "
          f"{report['no_defect_seen']['clean_kept']:.3f}; " + ", ".join(f"{f} {v:.3f}" for f, v in unseen.items()))
    # 2. leave one family out: the stage's logistic regression on the features, fitted without F
    lofo = {}
    for fam in families:
        keep = fv != fam
        strength, _ = choose_strength(xv[keep], val.noisy[keep].astype(float), val.measurement[keep])
        stage = fit_logistic(xv[keep], val.noisy[keep].astype(float), strength)
        q = stage_probability(stage, xh) > 0.5
        lofo[fam] = {"left_out_caught": float(q[fh == fam].mean()), "clean_kept": float(1 - q[clean_h].mean()),
                     "accuracy": float(np.mean(q == (held.noisy == 1)))}
        print(f"without {fam:11s}: left-out caught {lofo[fam]['left_out_caught']:.3f}, clean kept "
              f"{lofo[fam]['clean_kept']:.3f}, accuracy {lofo[fam]['accuracy']:.3f}")
    report["leave_one_family_out_features_only"] = lofo
    worst = min(lofo, key=lambda f: lofo[f]["left_out_caught"])
    report["worst"] = [worst, lofo[worst]["left_out_caught"]]
    print(f"worst left-out family: {worst} {lofo[worst]['left_out_caught']:.3f}")
    if a.json is not None:
        a.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
