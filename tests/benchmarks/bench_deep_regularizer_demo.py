"""Benchmark: the learned regulariser against TV on whole volumes of demo-size measurements (issue #22).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_deep_regularizer_demo.py [--kinds bacteria beads cells]``.
Each demo measurement (``engine.simulate.demo.write_demo``, 256² fields, the demo's own setup) goes
through :func:`engine.pipeline.process.process_measurement` twice, with ``regularize="tv"`` and
``regularize="deep"``; reported per kind: the Gaussian SSIM of the learned volume against TV's
(σ 1.5 voxels, TV's data range, Wang et al. 2004), the mean index inside the objects (TV above
n_m + 0.005) learned − TV, and each run's seconds. Numbers only, no assertion: the issue's
targets are SSIM ≥ 0.98 and |mean inside| ≤ 0.002.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path



def run(kinds: list[str], seed: int = 0) -> list[dict]:
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.simulate.demo import write_demo
    from engine.training.deep_regularizer_data import ssim_gaussian

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            folder = write_demo(Path(tmp) / kind, kind=kind, count=1, seed=seed, device="cpu")[0]
            out = {}
            for reg in ("tv", "deep"):
                t0 = time.perf_counter()
                # the learned step itself, even where the pipeline would run TV in its place
                res = process_measurement(folder, None, ProcessOptions(regularize=reg, device="cpu",
                                                                       deep_domain_tolerance=None))
                out[reg] = (res, time.perf_counter() - t0)
            tv = out["tv"][0].tomogram.ri_tv
            deep = out["deep"][0].tomogram.ri_deep
            nm = float(out["tv"][0].tomogram.medium_index)
            inside = tv > nm + 0.005
            row = {"kind": kind, "shape": list(tv.shape), "ssim_deep_vs_tv": ssim_gaussian(deep, tv),
                   "mean_inside_deep_minus_tv": float(deep[inside].mean() - tv[inside].mean()) if inside.any() else None,
                   "seconds_tv_run": round(out["tv"][1], 1), "seconds_deep_run": round(out["deep"][1], 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", nargs="+", default=["bacteria"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    rows = run(a.kinds, a.seed)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
