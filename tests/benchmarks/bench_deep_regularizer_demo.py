"""Benchmark: the learned regulariser against TV on whole volumes of demo-size measurements (issue #22).

Run: ``.venv/bin/python tests/benchmarks/bench_deep_regularizer_demo.py [--kinds bacteria beads cells] [--polish card 0]``.
Each demo measurement (``engine.simulate.demo.write_demo``, 256² fields, the demo's own setup) goes
through :func:`engine.pipeline.process.process_measurement` twice, with ``regularize="tv"`` and
``regularize="deep"``; reported per kind: the Gaussian SSIM of the learned volume against TV's
(σ 1.5 voxels, TV's data range, Wang et al. 2004), the mean index inside the objects (TV above
n_m + 0.005) learned − TV, the seconds of each regularisation step (``timings_s``) and their ratio
(#22's target: ≥ 10×), and each whole run's seconds. ``--polish``: the TV iterations after the
network (``card``: the model card's; 0: the network alone). Numbers only, no assertion: the issue's
targets are SSIM ≥ 0.98 and |mean inside| ≤ 0.002.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence



def _phase_delay(folder: Path) -> float:
    """The demo truth's largest bead phase delay 2π·Δn·2r/λ (rad; 0 without beads): above 3 rad a
    bead is no TV-imitation target (#22's decision), and its row is read apart."""
    import h5py

    from engine.metadata import MeasurementMetadata
    from engine.training.deep_regularizer_data import max_phase_delay

    with h5py.File(folder / "truth.h5", "r") as f:
        params, nm = json.loads(f.attrs["params"]), float(f.attrs["medium_index"])
    lam = MeasurementMetadata.load(folder / "measurement.json").wavelength_um
    beads = [o for o in params.get("objects", []) if o.get("type") == "bead"]
    return round(max_phase_delay(beads, nm, lam), 2)


def run(kinds: list[str], seed: int = 0, polish: Sequence[Optional[int]] = (None,)) -> list[dict]:
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.simulate.demo import write_demo
    from engine.tomography.deep_regularizer import learned_step_record
    from engine.training.deep_regularizer_data import ssim_gaussian

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            folder = write_demo(Path(tmp) / kind, kind=kind, count=1, seed=seed, device="cpu")[0]
            t0 = time.perf_counter()
            tv_res = process_measurement(folder, None, ProcessOptions(regularize="tv", device="cpu"))
            tv_run = time.perf_counter() - t0
            tv = tv_res.tomogram.ri_tv
            nm = float(tv_res.tomogram.medium_index)
            inside = tv > nm + 0.005
            for n in polish:
                t0 = time.perf_counter()
                # the learned step itself, even where the pipeline would run TV in its place
                res = process_measurement(folder, None, ProcessOptions(regularize="deep", device="cpu",
                                                                       deep_domain_tolerance=None,
                                                                       deep_polish_iterations=n))
                deep_run = time.perf_counter() - t0
                deep = res.tomogram.ri_deep
                step_tv, step_deep = tv_res.timings_s["regularize_tv"], res.timings_s["regularize_deep"]
                row = {"kind": kind, "shape": list(tv.shape), **learned_step_record(n),
                       "largest_phase_delay_rad": _phase_delay(folder),
                       "ssim_deep_vs_tv": ssim_gaussian(deep, tv),
                       "mean_inside_deep_minus_tv": float(deep[inside].mean() - tv[inside].mean()) if inside.any() else None,
                       "seconds_tv_step": round(step_tv, 2), "seconds_deep_step": round(step_deep, 2),
                       "step_speed_ratio": round(step_tv / step_deep, 1),
                       "seconds_tv_run": round(tv_run, 1), "seconds_deep_run": round(deep_run, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", nargs="+", default=["bacteria"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--polish", nargs="+", default=["card"],
                    help="TV iterations after the network: 'card' (the model card's) or a number (0: the network alone)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    rows = run(a.kinds, a.seed, [None if p == "card" else int(p) for p in a.polish])
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
