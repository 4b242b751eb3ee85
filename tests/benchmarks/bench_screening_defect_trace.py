"""Benchmark: are the defects the shipped screen misses ones that leave no trace? (issue #19)

Run: ``.venv/bin/python tests/benchmarks/bench_screening_defect_trace.py [--splits held_out validation]
[--json OUT.json]`` (≈ 3 s per measurement; needs generator 2's mixed cache of
``python -m engine.training.screening_families generate --chamber``, README "Training the models").

For every measurement of the protocol's held-out (and validation) split of generator 2
(``families-chamber-110-20261206.npz``, split seed 20261206), the simulator makes the measurement
again (checked bit-identical to the cache), its defect-free twin and the twin with new camera noise
(:func:`engine.training.screening_families.simulate_family_crops` with ``apply_defects=False`` /
``noise_draw=1``); :func:`engine.training.screening_severity.defect_trace` gives each noisy frame's trace
against its camera noise. The shipped screen (network alone, and with its consistency stage) scores
the crops as acquired. Reported per defect type and per bin of the local defect-to-noise ratio: how
many frames, the median ratios, how many the screen catches, and the ratio of the ones it misses.

If the misses were faint (a local ratio near 1), the labels — not the screen — would be at fault.
Numbers only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from engine.screening.consistency import stage_probability  # noqa: E402
from engine.screening.crops import CropSet  # noqa: E402
from engine.screening.network import load_model  # noqa: E402
from engine.training.screening_consistency import card_stage_inputs  # noqa: E402
from engine.training.screening_data import DEFAULT_CACHE_DIR  # noqa: E402
from engine.training.screening_families import protocol_splits, simulate_family_crops  # noqa: E402
from engine.training.screening_mixtures import specs_of_cache  # noqa: E402
from engine.training.screening_severity import defect_trace  # noqa: E402

SEED = 20261206
BINS = (0.0, 3.0, 10.0, 30.0, 100.0, 1e3, 1e4, np.inf)


def measure_split(cs: CropSet, part: CropSet, specs: list, model) -> dict[str, np.ndarray]:
    """Per-frame trace and scores of every measurement of ``part`` (a split of the mixed cache ``cs``)."""
    ids = list(np.unique(cs.measurement))  # the cache numbers its measurements in spec order
    rows: dict[str, list] = {k: [] for k in ("local", "global", "network", "stage", "noisy", "defect")}
    for mid in np.unique(part.measurement):
        i = ids.index(mid)
        m = cs.subset(np.flatnonzero(cs.measurement == mid))
        again = simulate_family_crops(specs[i], i)
        if not np.array_equal(again.fields, m.fields):
            raise RuntimeError(f"measurement {i} does not regenerate bit-identically: another simulator version?")
        twin = simulate_family_crops(specs[i], i, apply_defects=False)
        renoised = simulate_family_crops(specs[i], i, apply_defects=False, noise_draw=1)
        trace = defect_trace(m.fields, twin.fields, renoised.fields)
        p, x = card_stage_inputs(model, m)  # the inputs the card's stage takes
        q = p.copy()
        ok = np.all(np.isfinite(x), axis=1)
        q[ok] = stage_probability(model.consistency, x[ok])
        for key, v in (("local", trace.local_dnr), ("global", trace.global_dnr), ("network", p), ("stage", q),
                       ("noisy", m.noisy), ("defect", np.array(m.defect))):
            rows[key].append(v)
        print(f"  measurement {i}: {int(m.noisy.sum())} noisy of {len(m)}", flush=True)
    return {k: np.concatenate(v) for k, v in rows.items()}


def summarise(r: dict[str, np.ndarray]) -> dict:
    """Per defect type and per local-ratio bin: frames, median ratios, caught (network, with stage)."""
    noisy = r["noisy"].astype(bool)
    caught_net, caught = r["network"] > 0.5, r["stage"] > 0.5
    out: dict = {"frames": int(len(noisy)), "noisy": int(noisy.sum()),
                 "clean_kept_with_stage": round(float(np.mean(~caught[~noisy])), 4), "types": {}, "local_bins": []}
    for t in sorted(set(r["defect"][noisy])):
        s = r["defect"] == t
        miss = s & ~caught
        out["types"][t] = {"frames": int(s.sum()),
                           "local_dnr_median": round(float(np.median(r["local"][s])), 1),
                           "local_dnr_p10": round(float(np.percentile(r["local"][s], 10)), 1),
                           "global_dnr_median": round(float(np.median(r["global"][s])), 1),
                           "caught_network": round(float(np.mean(caught_net[s])), 3),
                           "caught_with_stage": round(float(np.mean(caught[s])), 3),
                           "missed_local_dnr_median": round(float(np.median(r["local"][miss])), 1) if miss.any() else None}
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        s = noisy & (r["local"] >= lo) & (r["local"] < hi)
        if s.any():
            out["local_bins"].append({"from": lo, "to": None if np.isinf(hi) else hi, "frames": int(s.sum()),
                                      "caught_with_stage": round(float(np.mean(caught[s])), 3)})
    missed = noisy & ~caught
    out["missed_with_local_dnr_below_10"] = int(np.sum(missed & (r["local"] < 10)))
    out["missed"] = int(missed.sum())
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR / "families" / f"families-chamber-110-{SEED}.npz")
    ap.add_argument("--splits", nargs="+", choices=("held_out", "validation"), default=["held_out", "validation"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    cs = CropSet.load(args.cache)
    _, val, test = protocol_splits(cs, SEED)
    specs = specs_of_cache(args.cache)
    model = load_model("default")
    report = {"model": model.name, "cache": args.cache.name}
    for name in args.splits:
        print(name, flush=True)
        report[name] = summarise(measure_split(cs, {"held_out": test, "validation": val}[name], specs, model))
        print(json.dumps(report[name], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
