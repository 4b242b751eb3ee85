"""Speed benchmark: physics route of 3-D birefringence (DTT) at the lc-droplets demo size.

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_birefringence.py [--device cpu|cuda] [--repeats 3]
    .venv/bin/python -m pytest tests/benchmarks/bench_birefringence.py -s

One simulated lc-droplets demo measurement (the demo's setup: 25 illuminations × 4 polarisation
images of 192×192 at 0.1 µm, NA 1.2) is made once (not timed); then the median of ``--repeats``
runs of (a) ``jones_fields`` (100 holograms → 25 Jones matrices of fields) and (b)
``reconstruct_tensor`` onto a 96×192×192 voxel grid (dz 0.1 µm), with its stage timings.
Reports sizes, wall seconds and the process's CPU seconds (wall time is inflated when other jobs
share the cores); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from engine.backend import device_description, resolve_device
from engine.birefringence import jones_fields, reconstruct_tensor
from engine.simulate.demo import simulate_demo


def _load() -> str:
    try:
        import os

        return "%.1f" % os.getloadavg()[0]
    except OSError:
        return "?"


def run(device: str = "cpu", repeats: int = 3, shape_z: int = 96) -> dict:
    dev = resolve_device(device)
    t = time.perf_counter()
    sim = simulate_demo("lc-droplets", seed=0, device=dev)
    t_sim = time.perf_counter() - t
    meas = sim.measurement
    print(f"device: {device_description(dev)}, load {_load()}; simulated the demo measurement in {t_sim:.1f} s "
          f"({meas.n_images} holograms of {meas.image_shape[0]}×{meas.image_shape[1]})")
    t_jones, t_rec, stages, cpu = [], [], [], []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        jones = jones_fields(meas, device=dev)
        t1 = time.perf_counter()
        tomo = reconstruct_tensor(jones, meas.metadata, shape_z=shape_z, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        t_jones.append(t1 - t0)
        t_rec.append(t2 - t1)
        stages.append(tomo.timings_s)
    res = {
        "jones_fields_s": statistics.median(t_jones),
        "reconstruct_tensor_s": statistics.median(t_rec),
        "total_s": statistics.median(a + b for a, b in zip(t_jones, t_rec)),
        "cpu_time_s": statistics.median(cpu),
        "stages_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "volume": tuple(tomo.n_e.shape),
        "n_illuminations": jones.n_illuminations,
        "anisotropic_fraction": tomo.anisotropic_fraction,
    }
    print(f"jones_fields: {res['jones_fields_s']:.2f} s; reconstruct_tensor: {res['reconstruct_tensor_s']:.2f} s "
          f"onto {res['volume']} ({res['n_illuminations']} illuminations); total {res['total_s']:.2f} s wall, "
          f"{res['cpu_time_s']:.2f} s CPU time of this process (all threads; a better measure on a shared machine)")
    print("stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in res["stages_s"].items()))
    obj = sim.phantom.params["objects"][0]
    axes = [(np.arange(n) - n // 2) * d for n, d in zip(tomo.n_e.shape, tomo.voxel_size_um)]
    c = np.asarray(obj["centre_um"])
    r = np.sqrt((axes[0][:, None, None] - c[0]) ** 2 + (axes[1][None, :, None] - c[1]) ** 2
                + (axes[2][None, None, :] - c[2]) ** 2)
    core = r < obj["radius_um"] - 0.4
    print(f"sample: {obj['configuration']} droplet, radius {obj['radius_um']:.2f} µm, n_o {obj['n_o']:.3f}, "
          f"n_e {obj['n_e']:.3f} (n_m {sim.phantom.medium_index}); DTT median inside: n_e "
          f"{np.median(tomo.n_e[core]):.3f}, n_o {np.median(tomo.n_o[core]):.3f}, Δn {np.median(tomo.delta_n[core]):.3f}")
    return res


def test_bench_birefringence():
    res = run("cpu", repeats=1)
    assert res["volume"] == (96, 192, 192)
    if torch.cuda.is_available():
        gpu = run("cuda", repeats=3)
        print(f"CPU / GPU ratio of the physics route: {res['total_s'] / gpu['total_s']:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shape-z", type=int, default=96)
    args = ap.parse_args()
    run(args.device, args.repeats, args.shape_z)
