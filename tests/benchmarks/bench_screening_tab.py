"""Benchmark: how fast the Screening review tab reacts, for 71 and 150 fields of 256 × 256.

Run on demand (not collected by default)::

    .venv/bin/python -m pytest tests/benchmarks/bench_screening_tab.py -s
    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/bench_screening_tab.py

Measures, offscreen, with synthetic fields: building the phase thumbnails, showing a
measurement, repainting the whole grid viewport, one review key press (N: the override
committed to SQLite with synchronous=FULL, the grid advanced, the large view redrawn),
moving the threshold slider and switching to uncertainty order. Reports milliseconds;
asserts nothing about timings (the machine is shared).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np


def run(sizes: tuple[int, ...] = (71, 150), presses: int = 30) -> list[dict]:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.jobs import JobRunner
    from app.main_window import create_application
    from app.tabs.screening_tab import ScreeningData, ScreeningTab
    from app.widgets.field_grid import phase_thumbnails
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_app_test_helpers", Path(__file__).resolve().parents[1] / "app" / "conftest.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    write_measurement = helpers.write_measurement
    from engine.store.project import Project

    app = create_application()
    rows = []
    for n in sizes:
        rng = np.random.default_rng(0)
        fields = np.exp(1j * rng.normal(0, 0.3, (n, 256, 256))).astype(np.complex64)
        t = time.perf_counter()
        thumbs = phase_thumbnails(fields)
        t_thumbs = time.perf_counter() - t
        tmp = Path(tempfile.mkdtemp(prefix="bench-screening-"))
        project = Project.create(tmp / "project")
        mid = project.add_measurement(write_measurement(tmp / "m", n=n, shape=(16, 16)))
        score = rng.random(n).astype(np.float32)
        project.add_screening(mid, (score <= 0.5).astype(np.uint8), score=score, threshold=0.5)
        runner = JobRunner()
        tab = ScreeningTab(runner)
        tab.resize(1280, 760)
        tab.show()
        tab.project = project
        data = ScreeningData(mid, "bench", fields, 0.1, thumbs, score, np.zeros(n, np.float32),
                             (score <= 0.5).astype(np.uint8), np.zeros(n, np.uint8), [None] * n, False, 0.5, 2.3,
                             "bench 1")
        t = time.perf_counter()
        tab._show_data(data)
        app.processEvents()
        t_show = time.perf_counter() - t
        t = time.perf_counter()
        tab.grid.viewport().grab()
        t_paint = time.perf_counter() - t
        lat = []
        for _ in range(presses):
            t = time.perf_counter()
            QTest.keyClick(tab.grid, Qt.Key.Key_N)
            app.processEvents()
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        tab.threshold_slider.setValue(300)
        app.processEvents()
        t_slider = time.perf_counter() - t
        t = time.perf_counter()
        tab.sort_combo.setCurrentIndex(1)
        app.processEvents()
        t_sort = time.perf_counter() - t
        row = {"fields": n, "thumbnails_ms": 1e3 * t_thumbs, "show_ms": 1e3 * t_show, "grid_paint_ms": 1e3 * t_paint,
               "key_median_ms": 1e3 * float(np.median(lat)), "key_max_ms": 1e3 * max(lat),
               "slider_ms": 1e3 * t_slider, "sort_ms": 1e3 * t_sort,
               "audit_rows": len(project.override_history(mid))}
        rows.append(row)
        print(f"N={n:4d}: thumbnails {row['thumbnails_ms']:.0f} ms, show {row['show_ms']:.0f} ms, "
              f"full grid repaint {row['grid_paint_ms']:.1f} ms, key N median {row['key_median_ms']:.1f} ms "
              f"(max {row['key_max_ms']:.1f}), slider {row['slider_ms']:.1f} ms, sort {row['sort_ms']:.1f} ms, "
              f"{row['audit_rows']} audit rows written")
        runner.shutdown()
        tab.close()
        project.close()
    return rows


def test_screening_tab_speed() -> None:
    rows = run()
    assert [r["fields"] for r in rows] == [71, 150]


if __name__ == "__main__":
    run()
