"""Benchmark: screening one 71-field measurement end to end (crop, normalise, network, decision).

Run: ``.venv/bin/python tests/benchmarks/bench_screening.py [MODEL ...]`` (or with pytest ``-s``).
Reports seconds per measurement and fields per second for the published and the compact
(shipped default) models, and any ``MODEL`` given (a name or a ``.safetensors`` path, e.g. an
earlier version taken from git), on the CPU, and on CUDA when available (fp32 and bf16, large batches for the
throughput figure). Reports numbers only; never asserts timings.

Targets (issue "Field screening engine"): < 1 s per 71-field measurement on a 2-core CPU;
≥ 50,000 fields/s on an H100.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from engine.screening.network import (CompactScreeningNet, ScreeningModel, ScreeningNet, load_model,
                                      screen_fields)


class _Meta:  # with the NA and medium index, so that a stage's tomographic input runs as in the pipeline
    wavelength_um = 0.532
    pixel_size_um = 0.1
    na_objective = 1.2
    medium_index = 1.337


def _fields(n: int = 71, size: int = 256, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size // 2
    phase = 2.0 * np.exp(-(x ** 2 + y ** 2) / (2 * 30.0 ** 2))
    f = np.exp(1j * phase)[None] * (1 + 0.02 * rng.standard_normal((n, size, size)))
    return f.astype(np.complex64)


def _model(kind: str, device: str) -> ScreeningModel:
    try:
        return load_model(kind, device=device)
    except Exception:  # shipped weights absent: random weights time the same
        if kind not in ("published", "compact"):
            raise
        net = ScreeningNet(1) if kind == "published" else CompactScreeningNet(1)
        return ScreeningModel(net=net.eval(), card={"name": f"{kind}-random", "version": "0"},
                              device=torch.device("cpu")).to(device)


def time_measurement(kind: str, device: str, repeats: int = 5) -> dict:
    """Median seconds to screen one 71-field 256² measurement end to end (a consistency stage included, as
    ``screen_fields`` computes it whenever the card has one; it unwraps the crops' phase itself)."""
    from engine.simulate.holograms import illumination_pattern

    f = _fields()
    ill = illumination_pattern(len(f), 0.92 * _Meta.na_objective, _Meta.wavelength_um)
    m = _model(kind, device)
    screen_fields(f, ill, _Meta(), model=m, device=device)  # warm-up
    ts = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        screen_fields(f, ill, _Meta(), model=m, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    med = statistics.median(ts)
    return {"model": m.label, "device": device, "seconds_per_71": med,
            "fields_per_s": 71 / med}


def time_network_throughput(kind: str, device: str, batch: int = 4096, dtype=torch.bfloat16,
                            repeats: int = 10) -> dict:
    """Bare network throughput on preprocessed 128² inputs (GPU figure)."""
    net = (ScreeningNet(1) if kind == "published" else CompactScreeningNet(1)).eval().to(device)
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 128, 128, device=device).to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=dtype):
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            net(x)
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / repeats
    return {"model": kind, "device": device, "dtype": str(dtype), "batch": batch, "fields_per_s": batch / dt}


def run(extra: tuple[str, ...] = ()) -> list[dict]:
    rows = []
    for kind in ("published", "compact"):
        rows.append(time_measurement(kind, "cpu"))
    rows += [time_measurement(name, "cpu") for name in extra]
    if torch.cuda.is_available():
        for kind in ("published", "compact"):
            rows.append(time_measurement(kind, "cuda"))
            rows.append(time_network_throughput(kind, "cuda"))
    pub = rows[0]["seconds_per_71"]
    comp = rows[1]["seconds_per_71"]
    print(f"CPU threads: {torch.get_num_threads()}")
    for r in rows:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    print(f"compact/published CPU time ratio: {comp / pub:.3f} (speed-up x{pub / comp:.1f})")
    return rows


def test_bench_screening():
    rows = run()
    assert all(r["fields_per_s"] > 0 for r in rows)


if __name__ == "__main__":
    import sys

    run(tuple(sys.argv[1:]))
