"""The demo project through the real engine: built as a background job of the window, then shown
in all four tabs.

The builder is the engine's (``engine.pipeline.demo_project.ensure_demo_project``) with its tiny
samples (64×64 pixels, a few illuminations: seconds) instead of the first-launch default.
"""

from __future__ import annotations

import functools
import time

import pytest

import app.main_window as main_window
from app.jobs import JobState
from app.main_window import MainWindow

dp = pytest.importorskip("engine.pipeline.demo_project")


@pytest.fixture
def window(qtbot, settings, monkeypatch):
    monkeypatch.setattr(main_window, "_demo_builder", lambda: functools.partial(
        dp.ensure_demo_project, samples=dp.tiny_demo_samples(), device="cpu"))
    w = MainWindow(settings=settings, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.runner.shutdown(10.0)
    w.close()


def test_the_window_builds_the_demo_project_and_every_tab_shows_it(qtbot, window, isolated_user_dirs):
    progress = []
    window.runner.job_progress.connect(lambda job, f, m: progress.append((f, m)))
    with qtbot.waitSignal(window.demo_ready, timeout=120_000) as ready:
        job = window.start_demo()
        assert "Preparing the demo project" in window.import_tab.empty.text()
    assert job.state is JobState.FINISHED, job.error
    demo = ready.args[0]
    folder = isolated_user_dirs / "data" / "odt-studio" / "demo-project"
    assert demo.built and demo.folder == folder and (folder / dp.MARKER).is_file()
    assert progress and all(msg for _, msg in progress), progress
    assert window.settings.first_run_done
    assert window.project_path == demo.project_path.resolve()

    # import tab: the demo's measurement folders, every one in the project
    qtbot.waitUntil(lambda: len(window.import_tab.infos()) == 4, timeout=30_000)
    assert window.import_tab.root == demo.measurements_dir
    # screening tab: the bacteria's fields with the demo reviewer's two overrides
    qtbot.waitUntil(lambda: window.screening_tab.data is not None, timeout=60_000)
    data = window.screening_tab.data
    assert data.name == demo.measurements["bacteria"]["name"]
    assert sum(m is not None for m in data.manual) == 2
    # reconstruction tab: the saved tomogram (raw and TV), the crosshair on the sample
    qtbot.waitUntil(lambda: window.reconstruction_tab.result is not None, timeout=60_000)
    rt = window.reconstruction_tab
    assert {"raw", "tv"} <= set(rt.result.volumes)
    assert rt.right_stack.currentIndex() == 1
    vol = rt.view.volume
    assert vol[rt.view.crosshair] > rt.result.medium_index + 0.3 * (vol.max() - rt.result.medium_index)
    # birefringence tab: the droplet, the views shown (no placeholder)
    qtbot.waitUntil(lambda: window.birefringence_tab.data is not None, timeout=60_000)
    assert window.birefringence_tab.right_stack.currentIndex() == 1

    # a second start reuses the project: no rebuild
    with qtbot.waitSignal(window.demo_ready, timeout=30_000) as again:
        window.start_demo()
    assert not again.args[0].built


def test_cancel_stops_the_real_build(qtbot, window):
    with qtbot.waitSignal(window.runner.job_progress, timeout=30_000):
        job = window.start_demo()
    t0 = time.perf_counter()
    window.job_status.cancel_button.click()
    assert window.runner.wait(10.0)
    dt = time.perf_counter() - t0
    print(f"\nreal demo build stopped {dt * 1000:.0f} ms after cancel")
    assert job.state is JobState.CANCELLED
    assert "No folder chosen" in window.import_tab.empty.text()
    assert window.project is None
