"""Benchmark: simulating a 71-angle 256×256 bacterium measurement (fields per second), CPU and CUDA.

Run on demand (not collected by default)::

    .venv/bin/python -m pytest tests/benchmarks/bench_simulate.py -s
    .venv/bin/python tests/benchmarks/bench_simulate.py [--device cuda] [--repeats 3]
    .venv/bin/python tests/benchmarks/bench_simulate.py --accuracy   # Mie vs multi-slice table

Reports sizes, seconds and fields per second; asserts nothing about timings. ``--accuracy``
prints the phase/amplitude errors of the multi-slice models against the exact Mie field
(the numbers quoted in ``tests/engine/test_simulate_propagation.py``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import torch

from engine.backend import cuda_available
from engine.simulate.beam_propagation import propagate_scalar
from engine.simulate.demo import DEMO_DEFAULTS
from engine.simulate.holograms import illumination_pattern, simulate_measurement
from engine.simulate.phantoms import make_phantom


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(device: str = "cpu", repeats: int = 1, seed: int = 0, batch_size: int | None = None) -> dict:
    cfg = DEMO_DEFAULTS["bacteria"]
    st = cfg.setup
    phantom = make_phantom("bacteria", st.phantom_shape(cfg.depth_um), st.voxel_size_um, st.medium_index, seed)
    illum = illumination_pattern(st.n_angles, st.na_condenser, st.wavelength_um, st.pattern)
    active = np.flatnonzero(np.abs(phantom.ri - st.medium_index).max(axis=(1, 2)) > 1e-6)
    # warm-up (plans, caches, CUDA context)
    propagate_scalar(phantom, st.wavelength_um, illum[:2], st.na_objective, device=device)
    _sync(device)
    t_fields, t_total, cpu_fields, cpu_total, t_physics = [], [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        propagate_scalar(phantom, st.wavelength_um, illum, st.na_objective, device=device, batch_size=batch_size)
        _sync(device)
        t_fields.append(time.perf_counter() - t0)
        cpu_fields.append(time.process_time() - c0)
        marks = []

        def progress(frac, msg="", marks=marks):
            if frac >= 0.8 and not marks:  # simulate_measurement: propagation is its first 80 %
                marks.append(time.perf_counter())
        t0, c0 = time.perf_counter(), time.process_time()
        simulate_measurement(phantom, st, seed, defect_rate=cfg.defect_rate, imperfection_rate=cfg.imperfection_rate,
                             device=device, progress=progress)
        _sync(device)
        t_total.append(time.perf_counter() - t0)
        cpu_total.append(time.process_time() - c0)
        t_physics.append(marks[0] - t0)
    res = {
        "device": device if not device.startswith("cuda") else f"cuda ({torch.cuda.get_device_name()})",
        "torch_threads": torch.get_num_threads(),
        "angles": int(len(illum)),
        "image": st.image_shape,
        "volume": phantom.ri.shape,
        "active_slices": int(active.size),
        "fields_s": min(t_fields),
        "fields_per_s": len(illum) / min(t_fields),
        "fields_cpu_s": min(cpu_fields),
        "measurement_s": min(t_total),
        "measurement_cpu_s": min(cpu_total),
        "holograms_s": min(t - p for t, p in zip(t_total, t_physics)),
    }
    return res


def accuracy(device: str = "cpu") -> None:
    """RMS phase/amplitude error vs Mie over the sphere's disc, for SSNP and BPM, 4 illuminations."""
    from engine.simulate.beam_propagation import snap_illuminations
    from engine.simulate.mie import mie_fields
    from engine.simulate.phantoms import make_bead

    lam, nm, na, n, p = 0.532, 1.337, 1.2, 128, 0.1
    illum = snap_illuminations(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.6], [1.5, 1.5]]), (n, n), (p, p))
    na_ill = np.hypot(illum[:, 0], illum[:, 1]) * lam
    print(f"\n[accuracy] grid {n}² × {p} µm, dz {p} µm, NA {na}, λ {lam}, n_m {nm}; "
          f"illumination NA {np.round(na_ill, 2).tolist()}")
    for r, ns, Z in [(2.5, 1.36, 64), (1.5, 1.46, 40), (1.0, 1.598, 30)]:
        ph = make_bead((Z, n, n), (p, p, p), nm, 0, radius_um=r, index=ns, centre_um=(0, 0, 0))
        mie = mie_fields(r, ns, nm, lam, (n, n), p, illum, na=na)
        c = (np.arange(n) - n // 2) * p
        disc = np.hypot(c[:, None], c[None, :]) <= r
        for method, kw in (("ssnp", {}), ("bpm", {}), ("bpm-paraxial", {"tilt_correction": False})):
            t0 = time.perf_counter()
            f = propagate_scalar(ph, lam, illum, na, device=device, method=method.split("-")[0], **kw)
            dt = time.perf_counter() - t0
            dphi = np.sqrt(np.mean(np.angle(f / mie)[:, disc] ** 2, axis=1))
            damp = np.sqrt(np.mean((np.abs(f) - np.abs(mie))[:, disc] ** 2, axis=1))
            print(f"  sphere n={ns} r={r} µm  {method:13s} phase RMS {np.round(dphi, 4).tolist()} rad, "
                  f"amplitude RMS {np.round(damp, 4).tolist()}  ({dt:.1f} s)")


def _print(res: dict) -> None:
    print(f"\n[bench_simulate] device={res['device']} threads={res['torch_threads']} angles={res['angles']} "
          f"image={res['image']} volume={res['volume']} active slices={res['active_slices']}")
    print(f"  propagation (SSNP): {res['fields_s']:.2f} s wall, {res['fields_cpu_s']:.2f} s CPU "
          f"-> {res['fields_per_s']:.1f} fields/s")
    print(f"  whole measurement (propagation + holograms + camera + defects): {res['measurement_s']:.2f} s wall, "
          f"{res['measurement_cpu_s']:.2f} s CPU (holograms part {res['holograms_s']:.2f} s wall); "
          f"ratio to the 30 s target: {res['measurement_s'] / 30:.2f}")
    try:
        import os
        print(f"  load average while running: {os.getloadavg()[0]:.1f} (CPU seconds are the load-independent figure)")
    except OSError:
        pass


@pytest.mark.benchmark
def test_bench_cpu():
    _print(bench("cpu"))


@pytest.mark.benchmark
@pytest.mark.skipif(not cuda_available(), reason="no CUDA")
def test_bench_cuda():
    _print(bench("cuda", repeats=3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--accuracy", action="store_true", help="print the Mie comparison table instead")
    a = ap.parse_args()
    if a.accuracy:
        accuracy(a.device)
    else:
        _print(bench(a.device, a.repeats, batch_size=a.batch_size))
