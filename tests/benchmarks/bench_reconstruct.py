"""Speed benchmark: 71 holograms of 512×512 → refractive-index tomogram, and TV on 256×256×128.

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_reconstruct.py [--device cpu|cuda] [--repeats 3]
    .venv/bin/python -m pytest tests/benchmarks/bench_reconstruct.py -s

Reports sizes and seconds per stage (median of ``--repeats``); asserts nothing about time.
The holograms are synthetic off-axis holograms of a smooth phase object (speed does not depend
on the content; accuracy is tested in tests/engine against exact Mie fields).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from engine.backend import device_description, resolve_device
from engine.holography import retrieve_fields
from engine.metadata import MeasurementMetadata
from engine.tomography import reconstruct, regularize_tv
from engine.tomography.fourier_mapping import FourierData

LAM, NM, NA = 0.532, 1.337, 1.2


def make_holograms(n: int = 71, size: int = 512, px: float = 0.05):
    """Off-axis holograms (uint16-like float32) of a smooth phase object under a ring scan."""
    bin_ = 1.0 / (size * px)
    carrier = np.round(np.array([6.9, 6.9]) / bin_) * bin_
    a = np.linspace(0, 2 * np.pi, n - 1, endpoint=False)
    ill = np.vstack([[0, 0], np.stack([np.cos(a), np.sin(a)], 1) * (0.9 / LAM)])
    y = ((np.arange(size) - size // 2) * px)[:, None].astype(np.float32)
    x = ((np.arange(size) - size // 2) * px)[None, :].astype(np.float32)
    phase = (2.0 * np.exp(-(x**2 + y**2) / 4.0**2)).astype(np.float32)
    ref = np.exp(-2j * np.pi * (carrier[0] * x + carrier[1] * y)).astype(np.complex64)
    holo = np.empty((n, size, size), np.float32)
    bg = np.empty((n, size, size), np.float32)
    for i, f in enumerate(ill):
        pw = np.exp(2j * np.pi * (f[0] * x + f[1] * y)).astype(np.complex64)
        holo[i] = np.abs(pw * np.exp(1j * phase) + ref) ** 2
        bg[i] = np.abs(pw + ref) ** 2
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=px,
                             carrier_per_um=tuple(carrier), illumination_per_um=[tuple(p) for p in ill])
    return holo, bg, md


def _load() -> str:
    try:
        import os

        return "%.1f" % os.getloadavg()[0]
    except OSError:
        return "?"


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def bench_pipeline(device="auto", repeats=3, unwrap_method="fourier", shape_z=None):
    dev = resolve_device(device)
    holo, bg, md = make_holograms()
    n, h, w = holo.shape
    rows = []
    for _ in range(repeats + 1):  # the first run warms up (FFT plans, allocator)
        _sync(dev)
        c0 = time.process_time()
        t0 = time.perf_counter()
        r = retrieve_fields(holo, bg, md, unwrap=True, unwrap_method=unwrap_method, device=dev)
        _sync(dev)
        t1 = time.perf_counter()
        tm = reconstruct(r.field, r.illumination_per_um, md, unwrapped_phase=r.unwrapped_phase,
                         shape_z=shape_z, device=dev)
        _sync(dev)
        t2 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1, t2 - t0, tm.timings_s, time.process_time() - c0))
    rows = rows[1:]
    med = lambda k: statistics.median(r_[k] for r_ in rows)  # noqa: E731
    print(f"\n[{device_description(dev)}] {n} holograms {h}x{w} -> tomogram {tm.ri.shape} (Z,Y,X), "
          f"voxel {tm.voxel_size_um} µm, unwrap={unwrap_method}")
    print(f"  retrieval+unwrap {med(0):.2f} s | reconstruction {med(1):.2f} s | total {med(2):.2f} s "
          f"(median of {repeats}); stages {({k: round(v, 3) for k, v in rows[-1][3].items()})}")
    print(f"  process CPU time {med(4):.2f} s on {torch.get_num_threads()} threads (≈ wall time x threads when "
          f"the machine is not shared; load average now {_load()})")
    return med(2)


def bench_tv(device="auto", shape=(128, 256, 256), outer=3, inner=20):
    dev = resolve_device(device)
    rng = np.random.default_rng(0)
    spec = torch.fft.fftn(torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(dev) * 1e-3)
    support = torch.from_numpy(rng.random(shape) < 0.05).to(dev)
    data = FourierData(spectrum=torch.where(support, spec, torch.zeros_like(spec)), support=support,
                       voxel_size_um=(0.1, 0.1, 0.1), medium_index=NM, wavelength_um=LAM)
    regularize_tv(data, outer_iterations=1, inner_iterations=2)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    regularize_tv(data, outer_iterations=outer, inner_iterations=inner)
    _sync(dev)
    dt = time.perf_counter() - t0
    per_outer = dt / outer
    print(f"[{device_description(dev)}] TV on {shape} (Z,Y,X): {outer} outer x {inner} inner in {dt:.2f} s "
          f"= {per_outer:.2f} s per outer iteration -> default 30x20 ≈ {30 * per_outer:.0f} s")
    return per_outer


def test_benchmark_reconstruct():
    bench_pipeline(repeats=1, unwrap_method="fourier")
    bench_pipeline(repeats=1, unwrap_method="herraez")
    bench_tv()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shape-z", type=int, default=None)
    args = ap.parse_args()
    for m in ("fourier", "herraez"):
        bench_pipeline(args.device, args.repeats, m, args.shape_z)
    bench_tv(args.device)
