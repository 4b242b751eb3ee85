"""Benchmark: how far outside its trained setups the learned regulariser stays close to TV (#22).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_deep_regularizer_setup_scan.py
[--quantity n_illuminations|wavelength_um|medium_index|na_objective] [--values 25 20 16 12] [--seeds 1003 1008 ...]
[--polish card|N] [--json OUT.json]``.

Every sample kind of the training generator (``deepreg-pairs/2``: bacteria, clusters, suspension
and adherent cells, first-order beads; 48³ voxels) under the setup its seed draws
(:func:`engine.training.deep_regularizer_data.draw_setup`), with one quantity replaced by each value
asked, the rest kept (the voxel is lowered to 0.95·λ/(2 NA) if a shorter wavelength needs it, the
objective NA to 0.97·n_m if a lower medium index does; a new objective NA keeps the condenser's
fraction). For each: the learned regulariser's mean
index inside the objects minus TV's and the SSIM against TV (Gaussian σ 1.5, TV's data range), as the
held-out report computes them. The shipped model was trained on 25–100 illuminations (16 is 36 % and
12 is 52 % below), λ 0.45–0.65 µm and n_m 1.33–1.52. Default seeds: validation seeds
(seed % 5 == 3); ``--seeds 1004 1009 1014 1019`` gives held-out ones. Numbers only; the exact-Mie
counterpart is ``bench_deep_regularizer_mie.py --n-illuminations``. ``--polish``: the learned step as the pipeline runs
it (``card``: the network and the model card's TV iterations) or with N iterations (0: the network alone).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from engine.tomography.deep_regularizer import load_deep_regularizer, polish_iterations_of, polish_tv, regularize_deep
from engine.training.deep_regularizer_data import TRAIN_KINDS_V2, draw_setup, score_against_tv, simulate_pair_v2


def with_value(setup: dict, quantity: str, value: float) -> dict:
    """``setup`` with ``quantity`` set to ``value`` (the voxel and NA kept physical, see the module notes)."""
    s = dict(setup)
    if quantity == "n_illuminations":
        s["n_angles"] = int(value)
    elif quantity == "wavelength_um":
        s["wavelength_um"] = float(value)
        s["voxel_um"] = min(s["voxel_um"], 0.95 * float(value) / (2 * s["na_objective"]))
    elif quantity == "na_objective":  # the condenser keeps its fraction of the objective NA
        s["na_condenser"] = s["na_condenser"] * float(value) / s["na_objective"]
        s["na_objective"] = float(value)
        s["voxel_um"] = min(s["voxel_um"], 0.95 * s["wavelength_um"] / (2 * float(value)))
    else:
        s["medium_index"] = float(value)
        scale = min(1.0, 0.97 * float(value) / s["na_objective"])
        s["na_objective"], s["na_condenser"] = s["na_objective"] * scale, s["na_condenser"] * scale
    s["name"] = f"{setup['name']}->{quantity}={value:g}"
    return s


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1003, 1008, 1013, 1018])
    p.add_argument("--quantity", choices=("n_illuminations", "wavelength_um", "medium_index", "na_objective"),
                   default="n_illuminations")
    p.add_argument("--values", type=float, nargs="+", default=[25, 20, 16, 12])
    p.add_argument("--kinds", nargs="+", default=list(TRAIN_KINDS_V2))
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--polish", default="card",
                   help="TV iterations after the network: 'card' (the model card's, as the pipeline) or a number (0: alone)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    reg = load_deep_regularizer("default", device="cpu")
    outer, inner = polish_iterations_of(reg.card, None if a.polish == "card" else int(a.polish))
    rows = []
    for seed in a.seeds:
        base = draw_setup(seed)
        for n in a.values:
            setup = with_value(base, a.quantity, n)
            for kind in a.kinds:
                pair = simulate_pair_v2(kind, seed, shape=(a.size,) * 3, setup=setup)
                deep = regularize_deep(pair.raw, pair.medium_index, model=reg, device="cpu")
                if outer:  # the pipeline's learned step: TV iterations from the network's volume
                    from engine.training.deep_regularizer_polish import pair_fourier_data

                    deep = polish_tv(deep, pair_fourier_data(pair), outer_iterations=outer, inner_iterations=inner)
                r = score_against_tv(pair, deep)
                rows.append({"seed": seed, "kind": kind, "value": n, "setup": setup["name"],
                             "mean_inside_diff": r["mean_inside_diff"], "ssim_deep": r["ssim_deep"]})
                print(f"seed {seed} {kind:16s} {a.quantity} {n:g} ({setup['pattern']}): learned - TV inside "
                      f"{r['mean_inside_diff']:+.4f}, SSIM {r['ssim_deep']:.3f}", flush=True)
    summary = {}
    for n in a.values:
        sel = [r for r in rows if r["value"] == n]
        d = np.array([r["mean_inside_diff"] for r in sel])
        summary[str(n)] = {"mean_inside_diff_mean": float(np.nanmean(d)), "worst_abs": float(np.nanmax(np.abs(d))),
                           "within_0.002": float(np.mean(np.abs(d) <= 0.002)),
                           "ssim_mean": float(np.mean([r["ssim_deep"] for r in sel])),
                           "per_kind_mean_inside_diff": {k: float(np.nanmean([r["mean_inside_diff"] for r in sel
                                                                               if r["kind"] == k])) for k in a.kinds}}
        s = summary[str(n)]
        print(f"{a.quantity} {n:g}: learned - TV inside mean {s['mean_inside_diff_mean']:+.4f}, worst |.| {s['worst_abs']:.4f}, "
              f"{s['within_0.002']:.0%} within 0.002, SSIM {s['ssim_mean']:.3f}")
    report = {"model": reg.label, "polish": f"{outer}x{inner}",
              "quantity": a.quantity, "seeds": a.seeds, "size": a.size, "summary": summary,
              "rows": rows}
    if a.json is not None:
        a.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
