"""Benchmark: simulating a 71-angle 256×256 bacterium measurement (fields per second), CPU and CUDA.

Run on demand (not collected by default)::

    .venv/bin/python -m pytest tests/benchmarks/bench_simulate.py -s
    .venv/bin/python tests/benchmarks/bench_simulate.py [--device cuda] [--repeats 3]

Reports sizes, seconds and fields per second; asserts nothing about timings.
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
    t_fields, t_total = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        propagate_scalar(phantom, st.wavelength_um, illum, st.na_objective, device=device, batch_size=batch_size)
        _sync(device)
        t_fields.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        simulate_measurement(phantom, st, seed, defect_rate=cfg.defect_rate, imperfection_rate=cfg.imperfection_rate,
                             device=device)
        _sync(device)
        t_total.append(time.perf_counter() - t0)
    res = {
        "device": device if not device.startswith("cuda") else f"cuda ({torch.cuda.get_device_name()})",
        "torch_threads": torch.get_num_threads(),
        "angles": int(len(illum)),
        "image": st.image_shape,
        "volume": phantom.ri.shape,
        "active_slices": int(active.size),
        "fields_s": min(t_fields),
        "fields_per_s": len(illum) / min(t_fields),
        "measurement_s": min(t_total),
        "holograms_s": min(t_total) - min(t_fields),
    }
    return res


def _print(res: dict) -> None:
    print(f"\n[bench_simulate] device={res['device']} threads={res['torch_threads']} angles={res['angles']} "
          f"image={res['image']} volume={res['volume']} active slices={res['active_slices']}")
    print(f"  propagation (SSNP): {res['fields_s']:.2f} s -> {res['fields_per_s']:.1f} fields/s")
    print(f"  whole measurement (propagation + holograms + camera + defects): {res['measurement_s']:.2f} s "
          f"(holograms {res['holograms_s']:.2f} s); ratio to the 30 s target: {res['measurement_s'] / 30:.2f}")


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
    a = ap.parse_args()
    _print(bench(a.device, a.repeats, batch_size=a.batch_size))
