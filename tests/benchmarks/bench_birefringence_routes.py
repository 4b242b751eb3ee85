"""Speed benchmark: the three birefringence routes side by side on a 25-illumination 256² measurement (#20 item 5).

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_birefringence_routes.py [--repeats 3] [--routes learned dtt dtt-refined]
        [--no-process] [--threads N] [--device cpu|cuda] [--cache /tmp/odt-bench-routes]
    .venv/bin/python -m pytest tests/benchmarks/bench_birefringence_routes.py -s

The measurement: one simulated nematic droplet (``write_demo("lc-droplets")``, radius 2.0 µm, n_o 1.52,
n_e 1.62, centred) at the learned generator's training setup (λ 0.532 µm, n_m 1.46, objective NA 1.2,
condenser NA 1.0, 25 illuminations on the Fermat spiral), 4 polarisation images per illumination = 100
holograms of 256² at 0.1 µm, no defects. Written once under ``--cache``.

Timed, median of ``--repeats`` runs after one warm-up (which also loads the generator):

1. **route calls** (``dtt-refined``: one run, no warm-up): from the Jones fields (retrieved once,
   timed apart as ``jones_fields``) to the tensor volume — ``reconstruct_tensor`` (dtt),
   ``refine_tensor`` (dtt-refined) onto 128 × 256² voxels of 0.1 µm (the pipeline's default
   depth), ``reconstruct_tensor_learned(director="dtt")`` (learned: fields resampled to the
   model's 0.2 µm voxel, 32 × 128² voxels; its DTT director on that grid included);
2. **whole processes**: :func:`engine.pipeline.process.process_measurement` of the folder with
   ``ProcessOptions(birefringence=True, birefringence_method=route, screen="none")`` writing the
   result file — reading, Jones-field retrieval, the route, writing: what ``odt-studio batch``
   does per folder, less the screening network; and ``auto`` once, with its choice.

``--in-domain N``: instead, the accuracy of the three routes inside the learned generator's domain
(the evidence for ``auto``'s first rule, ``engine/birefringence/routes.py``): N droplets of its
training distribution with seeds no training step used (``[777, 5, i]``; own Jones multi-slice
simulator, 25 illuminations of 32² at 0.2 µm), each route onto the same 32³ grid, mean over
droplets of the mean |n_e error|, |n_o error| inside the droplet and |median Δn − true Δn| / true Δn.

The machine load (1-min load average, before and after every group), the CPU count, torch's
threads and ``OMP_NUM_THREADS`` are printed: on a shared CPU the times scale with the load. Asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.backend import device_description, resolve_device
from engine.birefringence import jones_fields, reconstruct_tensor
from engine.birefringence.generator import load_generator, reconstruct_tensor_learned
from engine.birefringence.refine import refine_tensor

SIZE, N_ILL, PIXEL = 256, 25, 0.1


def _load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def measurement_folder(cache: Path) -> Path:
    """The 256² polarisation-resolved droplet measurement (written once)."""
    from engine.simulate.demo import DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    folder = cache / "in" / "lc-droplets_000"
    if (folder / "measurement.json").is_file():
        return folder
    cfg = DemoConfig(Setup(image_shape=(SIZE, SIZE), pixel_size_um=PIXEL, sim_pixel_um=0.2, voxel_z_um=0.2,
                           medium_index=1.46, na_objective=1.2, na_condenser=1.0, n_angles=N_ILL, pattern="spiral"),
                     depth_um=6.4, phantom_kwargs={"radius_um": 2.0, "n_o": 1.52, "n_e": 1.62},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    t = time.perf_counter()
    out = write_demo(cache / "in", kind="lc-droplets", count=1, seed=11, config=cfg, device="cpu")[0]
    print(f"simulated the measurement in {time.perf_counter() - t:.0f} s: {out}", flush=True)
    return out


def _median_time(fn, dev, repeats: int):
    out, times = None, []
    for _ in range(max(1, repeats)):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times), times


def _route_calls(jf, md, gen, dev, routes, repeats: int) -> dict:
    calls = {
        "dtt": lambda: reconstruct_tensor(jf, md, device=dev),
        "dtt-refined": lambda: refine_tensor(jf, md, device=dev),
        "learned": lambda: reconstruct_tensor_learned(jf, md, model=gen, director="dtt", device=dev),
    }
    res = {}
    for route in routes:
        if route != "dtt-refined":  # refined: minutes of compute, no first-call overhead worth a warm-up
            print(f"  [{route}] warm-up … ({_load()})", flush=True)
            calls[route]()
        out, med, times = _median_time(calls[route], dev, 1 if route == "dtt-refined" else repeats)
        inside = out.delta_n[out.mean_index > md.medium_index + 0.03]  # inside the droplet
        res[route] = {"median_s": med, "runs_s": times, "volume": out.n_e.shape, "method": out.method,
                      "timings": {k: v for k, v in out.timings_s.items() if isinstance(v, float)}}
        print(f"  {route:12s} {med:7.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}) onto {out.n_e.shape}, "
              f"{out.method}; median Δn inside the droplet {np.median(inside) if inside.size else 0:.3f} "
              f"(true 0.10); {_load()}", flush=True)
        stages = {k: v for k, v in out.timings_s.items() if isinstance(v, float) and k != "total"}
        if stages:
            print("    last run: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()), flush=True)
    return res


def _processes(folder: Path, dev, routes, repeats: int, out_dir: Path) -> dict:
    from engine.pipeline.process import ProcessOptions, process_measurement

    res = {}
    for route in list(routes) + ["auto"]:
        opts = ProcessOptions(birefringence=True, birefringence_method=route, screen="none", device=str(dev))
        reps = 1 if route in ("auto", "dtt-refined") else repeats
        def once(route=route, opts=opts):
            return process_measurement(folder, out_dir / f"{route}.odt.h5", opts)

        r, med, times = _median_time(once, dev, reps)
        res[route] = {"median_s": med, "runs_s": times, "stages": dict(r.timings_s),
                      "chosen": r.birefringence_route.method, "reason": r.birefringence_route.reason}
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.timings_s.items())
        print(f"  {route:12s} {med:7.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}; {stages}) "
              f"→ {r.birefringence_route.method}; {_load()}", flush=True)
        if route == "auto":
            print(f"    auto's reason: {r.birefringence_route.reason}")
    return res


def run(device: str = "cpu", repeats: int = 3, routes=("learned", "dtt", "dtt-refined"), process: bool = True,
        cache: Path | None = None) -> dict:
    dev = resolve_device(device)
    cache = Path(cache or Path(tempfile.gettempdir()) / "odt-bench-routes")
    print(f"device: {device_description(dev)}; {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {_load()}", flush=True)
    folder = measurement_folder(cache)
    from engine.store.folders import load_measurement

    meas = load_measurement(folder)
    md = meas.metadata
    jf, t_jones, _ = _median_time(lambda: jones_fields(meas, device=dev), dev, 1)
    print(f"{meas.n_images} holograms of {meas.image_shape}: jones_fields {t_jones:.2f} s; {_load()}", flush=True)
    gen = load_generator("default", device=dev)
    print("route calls (Jones fields → tensor volume):", flush=True)
    res = {"jones_fields_s": t_jones, "calls": _route_calls(jf, md, gen, dev, routes, repeats)}
    if process:
        print("whole processes (folder → result file, screen none):", flush=True)
        res["process"] = _processes(folder, dev, routes, repeats, cache / "out")
    return res


def in_domain(n: int = 12) -> dict:
    """Accuracy of dtt, dtt-refined and learned on ``n`` held-out droplets of the generator's domain."""
    from engine.training.birefringence_generator import simulate_droplet, training_metadata

    md, gen = training_metadata(), load_generator("default", device="cpu")
    calls = {"dtt": lambda j: reconstruct_tensor(j, md, shape_z=32, device="cpu"),
             "dtt-refined": lambda j: refine_tensor(j, md, shape_z=32, device="cpu"),
             "learned": lambda j: reconstruct_tensor_learned(j, md, model=gen, director="dtt", device="cpu")}
    rows: dict = {k: [] for k in calls}
    for i in range(n):
        jones, truth, p = simulate_droplet(np.random.default_rng([777, 5, i]), "cpu")
        inside = np.abs(truth[1] - p["n_o"]) < 1e-6
        dn = p["n_e"] - p["n_o"]
        for route, fn in calls.items():
            r = fn(jones)
            rows[route].append((np.mean(np.abs(r.n_e[inside] - p["n_e"])), np.mean(np.abs(r.n_o[inside] - p["n_o"])),
                                abs(np.median(r.n_e[inside] - r.n_o[inside]) - dn) / dn))
        print(f"  droplet {i}: {p['configuration']} r {p['radius_um']:.2f} µm, Δn {dn:.3f}", flush=True)
    out = {}
    for route, v in rows.items():
        a = np.asarray(v)
        out[route] = {"n_e": float(a[:, 0].mean()), "n_o": float(a[:, 1].mean()), "delta_n_rel": float(a[:, 2].mean())}
        print(f"{route:12s} mean |n_e error| {a[:, 0].mean():.4f}, |n_o error| {a[:, 1].mean():.4f}, "
              f"|Δn error| {100 * a[:, 2].mean():.1f} %")
    return out


def test_bench_birefringence_routes():
    res = run("cpu", repeats=3)
    assert res["calls"]["learned"]["volume"][1:] == (128, 128)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--routes", nargs="+", default=["learned", "dtt", "dtt-refined"],
                    choices=["learned", "dtt", "dtt-refined"])
    ap.add_argument("--no-process", action="store_true", help="time only the route calls")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--in-domain", type=int, default=0, metavar="N",
                    help="instead: accuracy of the routes on N held-out droplets of the generator's domain")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.in_domain:
        in_domain(a.in_domain)
    else:
        run(a.device, a.repeats, a.routes, not a.no_process, a.cache)
