"""Benchmark: which obstructions the screen misses, by how strong they are (#19).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_obstruction_energy.py [--cache CACHE.npz]
[--split held_out|validation|both] [--model default] [--json OUT.json]`` (about 1 min; needs the
generator-2 mixed cache, ``python -m engine.training.screening_families generate --chamber``, README).

The protocol's held-out (and/or validation) measurements of the cache are simulated again from their
specs, now keeping the parameters each defect was drawn with
(:attr:`engine.simulate.holograms.SimulatedMeasurement.defect_info`); every frame's defect type is
checked against the cache's. Each obstruction frame (:mod:`engine.simulate.defects`, ``"obstruction"``)
gets the model's noisy-probability on the cached crops as the model decides: its consistency stage when
its card's stage decides by default (inputs as
:func:`engine.training.screening_consistency.card_stage_inputs` makes them), else its networks.
Reported: the fraction caught by the obstruction's perturbation energy ``E = Σ|t − 1|² · pixel²`` inside
the screen's crop (µm²; the generator's noisy floor is 2 µm², an opaque disc of 0.8 µm radius, its clean
twins ≤ 0.1 µm²), by mode (amplitude, phase, both),
by place, by defocus, by number of particles and by sample kind.

Numbers only.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from engine.screening.consistency import stage_probability
from engine.screening.crops import CropSet
from engine.screening.network import load_model
from engine.training.screening_consistency import card_stage_inputs, stage_inputs
from engine.training.screening_families import DEFAULT_CACHE_DIR, protocol_splits, simulate_family_measurement
from engine.training.screening_mixtures import specs_of_cache

CACHE = DEFAULT_CACHE_DIR / "families" / "families-chamber-110-20261206.npz"
ENERGY_BINS_UM2 = (2.0, 5.0, 20.0, 100.0, np.inf)
DEFOCUS_BINS_UM = (0.0, 0.5, 5.0, 20.0, np.inf)


def decision_probability(model, cs: CropSet) -> np.ndarray:
    """Noisy-probability (M,) of every crop as the model decides (its stage when the card says it decides)."""
    stage = model.consistency
    if stage is None or not stage["by_default"]:
        return stage_inputs(model, cs)[0]
    p, x = card_stage_inputs(model, cs)
    ok = np.all(np.isfinite(x), axis=1)  # a measurement of too few fields: the networks decide
    p = p.copy()
    p[ok] = stage_probability(stage, x[ok])
    return p


def obstruction_rows(cache: Path, cs: CropSet, part: CropSet, prob: np.ndarray) -> list[dict]:
    """One row per obstruction frame of ``part``: its drawn parameters, sample kind and whether it was caught."""
    specs, ids = specs_of_cache(cache), list(np.unique(cs.measurement))
    rows = []
    for mid in np.unique(part.measurement):
        idx = np.flatnonzero(part.measurement == mid)
        defects = [str(part.defect[i]) for i in idx]
        if "obstruction" not in defects:
            continue
        spec = specs[ids.index(mid)]
        sim = simulate_family_measurement(spec)
        if [str(d) for d in sim.defect_types] != defects:
            raise RuntimeError(f"{cache.name}: measurement {mid} simulated again differs from the cache")
        for j, i in enumerate(idx):
            if defects[j] == "obstruction":
                info = sim.defect_info[j]
                rows.append({"measurement": int(mid), "kind": spec.kind, "caught": bool(prob[i] > 0.5),
                             "energy_um2": float(info["energy_um2"]), "mode": info["mode"], "place": info["place"],
                             "defocus_um": abs(float(info["defocus_um"])), "particles": int(info["particles"])})
    return rows


def _binned(rows: list[dict], key: str, edges) -> dict:
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        c = [r["caught"] for r in rows if lo <= r[key] < hi]
        out[f"{lo:g}-{hi:g}"] = {"caught": round(float(np.mean(c)), 3) if c else None, "frames": len(c)}
    return out


def _grouped(rows: list[dict], key: str) -> dict:
    groups: dict = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r["caught"])
    return {k: {"caught": round(float(np.mean(v)), 3), "frames": len(v)} for k, v in sorted(groups.items())}


def summary(rows: list[dict]) -> dict:
    return {"frames": len(rows), "caught": round(float(np.mean([r["caught"] for r in rows])), 3) if rows else None,
            "by_energy_um2": _binned(rows, "energy_um2", ENERGY_BINS_UM2),
            "by_defocus_um": _binned(rows, "defocus_um", DEFOCUS_BINS_UM),
            "by_particles": _binned(rows, "particles", (1, 2, 5, 13)),
            "by_mode": _grouped(rows, "mode"), "by_place": _grouped(rows, "place"), "by_sample": _grouped(rows, "kind")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=CACHE, help="generator-2 mixed cache (families[-chamber]-N-SEED.npz)")
    ap.add_argument("--split-seed", type=int, default=20261206)
    ap.add_argument("--split", choices=("held_out", "validation", "both"), default="both")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    model = load_model(args.model)
    cs = CropSet.load(args.cache)
    _, val, held_out = protocol_splits(cs, args.split_seed)
    parts = {"validation": val, "held_out": held_out}
    names = list(parts) if args.split == "both" else [args.split]
    report: dict = {"model": model.label, "cache": args.cache.name}
    every = []
    for name in names:
        rows = obstruction_rows(args.cache, cs, parts[name], decision_probability(model, parts[name]))
        every += rows
        report[name] = summary(rows)
        print(name, json.dumps(report[name]), flush=True)
    if len(names) > 1:
        report["both"] = summary(every)
        print("both", json.dumps(report["both"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
