"""Benchmark: import throughput and batch speed-up (1 → 2 local workers, Dask LocalCluster).

Run on demand (not collected by default)::

    .venv/bin/python -m pytest tests/benchmarks/bench_import.py -s
    .venv/bin/python tests/benchmarks/bench_import.py [--quick]

Reports sizes, rates and ratios; asserts nothing about timings. Numbers depend on the
machine's free cores: on a 2-core machine shared with other jobs the speed-up from 2
workers is bounded by what the other jobs leave. On Linux with ``sched_autogroup`` (the
default on desktops), all processes of one terminal session share one fair share of the
CPU, so while other sessions keep the cores busy, more workers cannot get more CPU; the
"of a core" column (process CPU time / wall time per task) shows when that happens.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _folders import make_measurement, process_cpu, process_slow

from engine.pipeline.batch import run_batch
from engine.store.folders import discover_measurements, inspect_measurement, load_measurement
from engine.store.project import Project


def _rate(label: str, n: int, seconds: float, extra: str = "") -> None:
    print(f"  {label:<38s} {n:5d} folders in {seconds:7.3f} s = {n / seconds:8.1f} folders/s {extra}")


def bench_import(root: Path, n_folders: int, n_images: int, shape: tuple[int, int], form: str) -> None:
    data = root / f"import_{form}_{n_images}x{shape[0]}"
    for i in range(n_folders):
        make_measurement(data, f"m{i:04d}", n=n_images, shape=shape, form=form, seed=i)
    mb = n_folders * 2 * n_images * shape[0] * shape[1] * 2 / 1e6
    print(f"\nimport: {n_folders} folders × {n_images} images {shape[0]}×{shape[1]} uint16 ({form}), "
          f"{mb:.1f} MB of pixels")
    t = time.perf_counter()
    folders = discover_measurements(data)
    _rate("discover_measurements", len(folders), time.perf_counter() - t)
    t = time.perf_counter()
    infos = [inspect_measurement(f, thumbnail=False) for f in folders]
    _rate("inspect_measurement (headers only)", len(folders), time.perf_counter() - t)
    t = time.perf_counter()
    infos = [inspect_measurement(f) for f in folders]
    _rate("inspect_measurement (+ thumbnail)", len(folders), time.perf_counter() - t)
    t = time.perf_counter()
    for f in folders:
        load_measurement(f)
    dt = time.perf_counter() - t
    _rate("load_measurement (all pixels)", len(folders), dt, f"({mb / dt:.0f} MB/s)")
    with Project.create(root / f"proj_{form}_{n_images}") as p:
        t = time.perf_counter()
        for f, i in zip(folders, infos):
            p.add_measurement(f, info=i)
        _rate("Project.add_measurement (catalogue)", len(folders), time.perf_counter() - t)
    assert all(i.valid for i in infos)


def bench_batch(root: Path, n_folders: int, repeats: int, sleep: bool = False) -> None:
    data = root / "batch_in"
    if not data.exists():
        for i in range(n_folders):
            make_measurement(data, f"b{i:03d}", n=8, shape=(256, 256), seed=i)
    folders = discover_measurements(data)
    if sleep:
        work = functools.partial(process_slow, delay=0.25)
        print(f"\nbatch: {n_folders} folders, latency-bound process_one (sleeps 0.25 s, then a tiny "
              f"result): shows the scheduling itself, whatever the free cores")
    else:
        work = functools.partial(process_cpu, repeats=repeats)
        print(f"\nbatch: {n_folders} folders × 8 images 256×256, CPU-heavy process_one "
              f"({repeats} FFT round trips each); cores visible: {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}")
    times, share = {}, {}

    def cpu_share(s) -> float:
        """CPU time / wall time of process_one, averaged: 1.0 means a core of its own."""
        return sum(it.info.get("cpu_seconds", 0.0) for it in s.items) / max(sum(it.seconds for it in s.items), 1e-9)

    for label, kw in (("local, 1 worker", dict(workers=1)), ("local, 2 workers", dict(workers=2))):
        t = time.perf_counter()
        s = run_batch(folders, root / f"out_local_{kw['workers']}", work, force=True, log=None, **kw)
        times[label] = time.perf_counter() - t
        share[label] = cpu_share(s)
        assert s.exit_code == 0
    try:
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            # warm the workers (imports) so the timing is the batch, as on a long-running cluster
            run_batch(folders[:2], root / "out_warm", work, scheduler=cluster.scheduler_address, log=None)
            t = time.perf_counter()
            s = run_batch(folders, root / "out_dask", work, scheduler=cluster.scheduler_address, force=True,
                          log=None)
            times["dask LocalCluster, 2×1"] = time.perf_counter() - t
            share["dask LocalCluster, 2×1"] = cpu_share(s)
            assert s.exit_code == 0
    except ImportError:
        print("  distributed not installed: Dask run skipped")
    base = times["local, 1 worker"]
    for label, dt in times.items():
        cpu = "" if sleep else f"  (each task got {share[label]:.0%} of a core)"
        print(f"  {label:<28s} {dt:7.2f} s  {n_folders / dt:6.2f} folders/s  speed-up ×{base / dt:.2f}{cpu}")
    print(f"  load average after: {os.getloadavg()[0]:.2f}")


def main(quick: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="odt-bench-") as tmp:
        root = Path(tmp)
        bench_import(root, 100 if quick else 300, 2, (8, 8), "tif")
        bench_import(root, 10 if quick else 30, 32, (256, 256), "tif")
        bench_import(root, 10 if quick else 30, 32, (256, 256), "multipage")
        bench_batch(root, 8 if quick else 16, 10 if quick else 25)
        bench_batch(root, 8 if quick else 16, 0, sleep=True)


def test_bench_import():
    main(quick=os.environ.get("ODT_BENCH_QUICK", "") == "1")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
