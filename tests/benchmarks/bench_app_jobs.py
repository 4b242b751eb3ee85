"""Benchmark: the GUI job runner — event-loop latency while engine work runs, per-job overhead.

Run on demand (not collected by default)::

    .venv/bin/python -m pytest tests/benchmarks/bench_app_jobs.py -s
    .venv/bin/python tests/benchmarks/bench_app_jobs.py

Reports numbers; asserts nothing about timings. A 20 ms QTimer runs in the GUI thread while
a 2 s job runs in the worker thread, once with NumPy FFTs (which release the GIL) and once
with pure-Python arithmetic (which holds it and only yields at the interpreter's switch
interval, 5 ms by default). Also: the cost of one job (submit → result callback) and of a
progress callback called 100,000 times (throttled to one signal per 50 ms).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np


def _fft_job(seconds, progress=None, cancel=None):
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.complex64)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        cancel.raise_if_cancelled()
        a = np.fft.ifft2(np.fft.fft2(a)).astype(np.complex64)
        progress((time.perf_counter() - t0) / seconds)


def _python_job(seconds, progress=None, cancel=None):
    t0 = time.perf_counter()
    x = 0
    while time.perf_counter() - t0 < seconds:
        cancel.raise_if_cancelled()
        for i in range(20000):
            x += i * i % 7
        progress((time.perf_counter() - t0) / seconds)
    return x


def _trivial(progress=None, cancel=None):
    return 1


def _chatty(n, progress=None, cancel=None):
    for i in range(n):
        progress(i / n, "step")


def _latency(runner, fn, seconds=2.0):
    from PySide6.QtCore import QCoreApplication, QTimer

    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    runner.submit("bench", fn, seconds)
    runner.wait(seconds + 30)
    timer.stop()
    QCoreApplication.processEvents()
    late = np.diff(ticks) * 1000 - 20.0
    return np.median(late), np.percentile(late, 95), late.max(), len(ticks)


def run() -> dict:
    from PySide6.QtWidgets import QApplication

    from app.jobs import JobRunner

    app = QApplication.instance() or QApplication([])
    runner = JobRunner()
    out = {}
    for name, fn in (("numpy FFT job", _fft_job), ("pure-Python job", _python_job)):
        med, p95, mx, n = _latency(runner, fn)
        out[name] = (med, p95, mx)
        print(f"timer lateness during a 2 s {name}: median {med:.1f} ms, p95 {p95:.1f} ms, max {mx:.1f} ms "
              f"({n} ticks of 20 ms)")
    n_jobs = 200
    t0 = time.perf_counter()
    done = []
    for _ in range(n_jobs):
        runner.submit("trivial", _trivial, on_result=done.append)
    runner.wait(60)
    per_job = (time.perf_counter() - t0) / n_jobs * 1000
    out["per_job_ms"] = per_job
    print(f"{n_jobs} trivial jobs: {per_job:.2f} ms per job (thread start, signals, callback); "
          f"{len(done)} results")
    t_plain = time.perf_counter()
    _chatty(100_000, progress=lambda f, m="": None, cancel=None)
    t_plain = time.perf_counter() - t_plain
    seen = []
    runner.job_progress.connect(lambda j, f, m: seen.append(f))
    t0 = time.perf_counter()
    runner.submit("chatty", _chatty, 100_000)
    runner.wait(60)
    t_job = time.perf_counter() - t0
    out["progress_ratio"] = t_job / t_plain
    print(f"100,000 progress calls: {t_job * 1000:.0f} ms in the runner vs {t_plain * 1000:.0f} ms with a no-op "
          f"callback (ratio {t_job / t_plain:.1f}); {len(seen)} progress signals reached the GUI thread")
    runner.shutdown()
    del app
    return out


def test_bench_app_jobs(qapp):
    run()


if __name__ == "__main__":
    run()
