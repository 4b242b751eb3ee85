"""The background job runner: responsiveness, cancel, errors, results, ordering."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QThread, QTimer

from app.errors import open_error_dialogs
from app.jobs import JobRunner, JobState
from app.widgets.job_status import JobStatusWidget
from engine.progress import check_cancel, report


def fft_work(seconds: float, size: int = 256, progress=None, cancel=None) -> int:
    """An engine-style long call: FFTs for ``seconds``, reporting progress, honouring cancel."""
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))).astype(np.complex64)
    t0 = time.perf_counter()
    n = 0
    while (elapsed := time.perf_counter() - t0) < seconds:
        check_cancel(cancel)
        a = np.fft.ifft2(np.fft.fft2(a)).astype(np.complex64)
        n += 1
        report(progress, elapsed / seconds, f"{n} FFT pairs")
    report(progress, 1.0, "done")
    return n


def sleepy(total_s: float, step_s: float = 0.01, progress=None, cancel=None) -> str:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < total_s:
        check_cancel(cancel)
        time.sleep(step_s)
        report(progress, (time.perf_counter() - t0) / total_s)
    return "slept"


def failing(progress=None, cancel=None):
    report(progress, 0.1, "about to fail")
    raise ValueError("the hologram has no side band")


def test_event_loop_serves_a_timer_while_a_2s_job_runs(qtbot, runner: JobRunner):
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    progress_threads: list[bool] = []
    runner.job_progress.connect(
        lambda job, f, m: progress_threads.append(QThread.currentThread() is qtbot_main_thread()))
    results = []
    timer.start()
    t0 = time.perf_counter()
    with qtbot.waitSignal(runner.job_finished, timeout=15000):
        job = runner.submit("FFT work", fft_work, 2.0, on_result=results.append)
    timer.stop()
    wall = time.perf_counter() - t0
    assert job.state is JobState.FINISHED and results == [job.result] and job.result > 0
    assert wall >= 2.0
    gaps_ms = np.diff(ticks) * 1000.0
    # latency beyond the 20 ms period; the machine is shared, so judge the 95th percentile
    # strictly and the worst case with margin
    late = gaps_ms - 20.0
    print(f"\ntimer during 2 s job: {len(ticks)} ticks, median gap {np.median(gaps_ms):.1f} ms, "
          f"p95 {np.percentile(gaps_ms, 95):.1f} ms, max {gaps_ms.max():.1f} ms")
    assert len(ticks) >= 0.5 * wall / 0.020
    assert np.percentile(late, 95) < 100.0
    assert late.max() < 250.0
    assert progress_threads and all(progress_threads), "progress must arrive in the GUI thread"


def qtbot_main_thread():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance().thread()


def test_cancel_button_stops_the_job_promptly(qtbot, runner: JobRunner, close_error_dialogs):
    widget = JobStatusWidget(runner)
    qtbot.addWidget(widget)
    cancelled = []
    with qtbot.waitSignal(runner.job_started, timeout=5000):
        job = runner.submit("Long job", sleepy, 30.0, on_cancelled=lambda: cancelled.append(True))
    assert widget.isVisibleTo(None) or not widget.isHidden()
    assert "Long job" in widget.label.text()
    qtbot.wait(300)
    assert job.state is JobState.RUNNING
    with qtbot.waitSignal(runner.job_cancelled, timeout=5000):
        t0 = time.perf_counter()
        widget.cancel_button.click()
    dt = time.perf_counter() - t0
    print(f"\ncancel to job_cancelled: {dt * 1000:.0f} ms")
    assert dt < 0.5
    assert job.state is JobState.CANCELLED and cancelled == [True]
    assert job.token.cancelled
    assert not open_error_dialogs(), "a cancelled job is not an error"
    assert runner.wait(2.0) and widget.isHidden()


def test_an_exception_in_a_job_reaches_the_error_dialog_and_the_log(qtbot, runner, caplog, close_error_dialogs):
    errors = []
    caplog.set_level(logging.ERROR, logger="app.jobs")
    with qtbot.waitSignal(runner.job_failed, timeout=5000):
        job = runner.submit("Field retrieval", failing, on_error=errors.append)
    assert job.state is JobState.FAILED
    assert isinstance(errors[0], ValueError) and job.error is errors[0]
    dialogs = open_error_dialogs()
    assert len(dialogs) == 1
    box = dialogs[0]
    assert "Field retrieval failed" in box.windowTitle()
    assert "the hologram has no side band" in box.text()
    assert "Traceback" in box.detailedText() and "failing" in box.detailedText()
    assert any("Field retrieval" in r.getMessage() and "ValueError" in r.getMessage() for r in caplog.records)
    # the runner is not broken: the next job runs
    with qtbot.waitSignal(runner.job_finished, timeout=5000):
        ok = runner.submit("next", sleepy, 0.05)
    assert ok.result == "slept"


def test_error_dialog_can_be_replaced_by_a_monkeypatched_message_box(qtbot, runner, monkeypatch):
    """The dialog goes through QMessageBox, so a patched QMessageBox sees the error (no window)."""
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "open", lambda self: shown.append((self.text(), self.detailedText())))
    with qtbot.waitSignal(runner.job_failed, timeout=5000):
        runner.submit("Bad job", failing)
    assert len(shown) == 1 and "no side band" in shown[0][0] and "ValueError" in shown[0][1]


def test_jobs_run_in_order_and_a_queued_job_can_be_cancelled(qtbot, runner: JobRunner):
    order = []
    lock = threading.Lock()

    def record(tag, progress=None, cancel=None):
        with lock:
            order.append(tag)
        time.sleep(0.05)
        return tag

    a = runner.submit("a", record, "a")
    b = runner.submit("b", record, "b")
    c = runner.submit("c", record, "c")
    assert runner.current is a and runner.queued == [b, c]
    runner.cancel(b)
    assert b.state is JobState.CANCELLED
    assert runner.wait(5.0)
    assert order == ["a", "c"]
    assert (a.result, c.result) == ("a", "c")
    assert a.ended_at <= c.started_at


def test_progress_is_throttled_but_the_last_report_arrives(qtbot, runner: JobRunner):
    def chatty(progress=None, cancel=None):
        for i in range(20001):
            report(progress, i / 20000, f"step {i}")
        return "ok"

    seen = []
    runner.job_progress.connect(lambda job, f, m: seen.append((f, m)))
    with qtbot.waitSignal(runner.job_finished, timeout=10000):
        runner.submit("chatty", chatty)
    assert 1 <= len(seen) < 2000
    assert seen[-1] == (1.0, "step 20000")


def test_shutdown_cancels_the_running_job_and_joins_its_thread(qtbot):
    r = JobRunner()
    job = r.submit("forever", sleepy, 60.0)
    qtbot.waitUntil(lambda: job.state is JobState.RUNNING, timeout=2000)
    t0 = time.perf_counter()
    assert r.shutdown(timeout_s=5.0)
    assert time.perf_counter() - t0 < 1.0
    assert job.state is JobState.CANCELLED
    with pytest.raises(RuntimeError):
        r.submit("after shutdown", sleepy, 0.1)


def test_submit_refuses_its_own_progress_and_cancel(runner: JobRunner):
    with pytest.raises(TypeError):
        runner.submit("x", sleepy, 0.1, progress=print)


def test_the_report_before_a_long_silent_step_is_shown(qtbot, runner: JobRunner):
    """Rapid reports are coalesced, but the latest one reaches the GUI even if none follows."""
    def bursty(progress=None, cancel=None):
        for i in range(50):
            report(progress, i / 100, f"quick {i}")
        report(progress, 0.5, "long step")
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            check_cancel(cancel)
            time.sleep(0.01)

    seen = []
    runner.job_progress.connect(lambda job, f, m: seen.append((time.perf_counter(), m)))
    t0 = time.perf_counter()
    runner.submit("bursty", bursty)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1][1] == "long step", timeout=800)
    assert seen[-1][0] - t0 < 0.8
    runner.cancel()


def test_a_job_that_ignores_cancel_is_reported_by_shutdown(qtbot):
    stop = threading.Event()
    started = threading.Event()

    def stubborn(progress=None, cancel=None):
        started.set()
        stop.wait(10.0)  # never looks at the cancel token

    r = JobRunner()
    job = r.submit("stubborn", stubborn)
    # wait for the function itself to run: under load the thread may start late, and a job
    # cancelled before it starts is (rightly) never run at all
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert job.state is JobState.RUNNING
    assert not r.shutdown(timeout_s=0.3)
    assert r.has_live_threads()
    stop.set()
    qtbot.waitUntil(lambda: not r.has_live_threads(), timeout=5000)
    assert job.state is JobState.CANCELLED
