"""Background jobs: run any engine call on a QThread, never freezing the window.

An engine call follows the protocol of :mod:`engine.progress`::

    fn(*args, progress=callback, cancel=token, **kwargs) -> result

:class:`JobRunner` runs such calls one at a time, in submission order (a FIFO queue: a
job submitted while another runs waits its turn; queued jobs can be cancelled before they
start). Each job runs in a fresh ``QThread`` with a worker object moved to it (Qt's
worker-object pattern). Everything the worker reports — progress, result, error,
cancellation — crosses to the GUI thread as queued signals, so slots and callbacks run in
the GUI thread and may touch widgets.

* progress: the engine's ``progress(fraction, message)`` only stores the latest report (cheap,
  any rate); the GUI thread polls it every :data:`PROGRESS_INTERVAL_S` and emits
  ``job_progress`` when it changed, so the display is never flooded and never stale (the
  report made just before a long silent step is shown, and the last one always is);
* cancel: :meth:`JobRunner.cancel` calls the job's :class:`engine.progress.CancelToken`;
  the engine raises :class:`engine.progress.Cancelled` at its next check, which counts as
  cancelled, not as an error;
* errors: any other exception is written to the log with its traceback and shown in an
  error dialog with the traceback as details (unless the job asks not to), then the
  ``on_error`` callback and :attr:`JobRunner.job_failed` signal fire;
* results: the ``on_result`` callback and the :attr:`JobRunner.job_finished` signal.
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget

from engine.progress import Cancelled, CancelToken

from .errors import format_exception, show_error

__all__ = ["PROGRESS_INTERVAL_S", "JobState", "Job", "JobRunner"]

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.05
_ids = itertools.count(1)


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class Job:
    """One engine call and what became of it.

    Attributes
    ----------
    name : str
        Shown in the status bar, e.g. ``"Simulating the demo measurement"``.
    fn, args, kwargs
        The engine call; ``progress`` and ``cancel`` are added to ``kwargs``.
    on_result, on_error, on_cancelled : callables, optional
        Called in the GUI thread with the result / the exception / nothing.
    show_errors : bool
        Show failures in an error dialog (default True).
    state, result, error, fraction, message
        Current state, the return value, the exception, the last progress report.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    on_result: Optional[Callable[[Any], None]] = None
    on_error: Optional[Callable[[BaseException], None]] = None
    on_cancelled: Optional[Callable[[], None]] = None
    show_errors: bool = True
    id: int = field(default_factory=lambda: next(_ids))
    token: CancelToken = field(default_factory=CancelToken)
    state: JobState = JobState.QUEUED
    result: Any = None
    error: Optional[BaseException] = None
    fraction: float = 0.0
    message: str = ""
    started_at: Optional[float] = None
    ended_at: Optional[float] = None

    @property
    def done(self) -> bool:
        return self.state in (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)

    @property
    def seconds(self) -> Optional[float]:
        if self.started_at is None:
            return None
        return (self.ended_at or time.perf_counter()) - self.started_at

    def __repr__(self) -> str:
        return f"Job(#{self.id} {self.name!r}, {self.state.value})"


class _Worker(QObject):
    """Runs one job's callable in the worker thread and reports through signals."""

    succeeded = Signal(object)
    failed = Signal(object, str)  # exception, formatted traceback
    cancelled = Signal()

    def __init__(self, job: Job) -> None:
        super().__init__()
        self._job = job
        # the latest progress report, (count, fraction, message); replaced whole (atomic
        # under the GIL) by the worker thread, read by the GUI thread's poll
        self.latest: tuple[int, float, str] = (0, 0.0, "")

    def _progress(self, fraction: float, message: str = "") -> None:
        self.latest = (self.latest[0] + 1, float(fraction), str(message))

    @Slot()
    def run(self) -> None:
        job = self._job
        try:
            job.token.raise_if_cancelled()
            result = job.fn(*job.args, progress=self._progress, cancel=job.token, **job.kwargs)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - everything must reach the GUI thread
            self.failed.emit(exc, format_exception(exc))
        else:
            if job.token.cancelled:
                # the call finished although cancel was asked: the user no longer wants it
                self.cancelled.emit()
            else:
                self.succeeded.emit(result)


class JobRunner(QObject):
    """Runs engine calls on a background QThread, one at a time, in submission order.

    Parameters
    ----------
    parent : QObject, optional
    dialog_parent : callable returning a QWidget, optional
        Window error dialogs belong to.

    Signals
    -------
    job_started(Job), job_progress(Job, float, str), job_finished(Job, object),
    job_failed(Job, object), job_cancelled(Job), busy_changed(bool), queue_changed(int)
    """

    job_started = Signal(object)
    job_progress = Signal(object, float, str)
    job_finished = Signal(object, object)
    job_failed = Signal(object, object)
    job_cancelled = Signal(object)
    job_done = Signal(object)  # after any of finished / failed / cancelled
    busy_changed = Signal(bool)
    queue_changed = Signal(int)

    def __init__(self, parent: Optional[QObject] = None,
                 dialog_parent: Optional[Callable[[], Optional[QWidget]]] = None) -> None:
        super().__init__(parent)
        self._queue: list[Job] = []
        self._current: Optional[Job] = None
        self._thread: Optional[QThread] = None
        self._worker: Optional[_Worker] = None
        # finished jobs' (thread, worker) pairs, kept alive until the thread has really ended:
        # dropping a running QThread (or the worker inside it) would crash the process
        self._old_threads: list[tuple[QThread, _Worker]] = []
        self._dialog_parent = dialog_parent
        self._closing = False
        self._last_count = 0
        self._poll = QTimer(self)
        self._poll.setInterval(int(PROGRESS_INTERVAL_S * 1000))
        self._poll.timeout.connect(self._poll_progress)

    # ------------------------------------------------------------------ public API
    @property
    def current(self) -> Optional[Job]:
        """The running job, or None."""
        return self._current

    @property
    def queued(self) -> list[Job]:
        """Jobs waiting to run, in order."""
        return list(self._queue)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` was called: :meth:`submit` then raises."""
        return self._closing

    def submit(self, name: str, fn: Callable[..., Any], *args: Any,
               on_result: Optional[Callable[[Any], None]] = None,
               on_error: Optional[Callable[[BaseException], None]] = None,
               on_cancelled: Optional[Callable[[], None]] = None,
               show_errors: bool = True, **kwargs: Any) -> Job:
        """Queue ``fn(*args, progress=..., cancel=..., **kwargs)`` and return its :class:`Job`.

        It starts at once if nothing is running. Callbacks run in the GUI thread.
        """
        if self._closing:
            raise RuntimeError("the job runner is shut down")
        if "progress" in kwargs or "cancel" in kwargs:
            raise TypeError("progress and cancel are supplied by the job runner")
        job = Job(name=name, fn=fn, args=args, kwargs=kwargs, on_result=on_result,
                  on_error=on_error, on_cancelled=on_cancelled, show_errors=show_errors)
        self._queue.append(job)
        log.info("job #%d queued: %s", job.id, name)
        self.queue_changed.emit(len(self._queue))
        self._start_next()
        return job

    def has_live_threads(self) -> bool:
        """True while some job's thread still runs (e.g. a call that ignored cancel)."""
        threads = [t for t, _w in self._old_threads] + ([self._thread] if self._thread else [])
        return any(t.isRunning() for t in threads)

    def cancel(self, job: Optional[Job] = None) -> None:
        """Cancel ``job`` (default: the running one). A queued job is dropped at once."""
        job = job if job is not None else self._current
        if job is None or job.done:
            return
        job.token.cancel()
        if job in self._queue:
            self._queue.remove(job)
            self.queue_changed.emit(len(self._queue))
            self._finish(job, JobState.CANCELLED)
        else:
            log.info("job #%d cancel requested: %s", job.id, job.name)

    def cancel_all(self) -> None:
        """Cancel every queued job and the running one."""
        for job in list(self._queue):
            self.cancel(job)
        if self._current is not None:
            self.cancel(self._current)

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Process events until no job runs or waits (for tests and shutdown); True if idle."""
        def idle() -> bool:
            return self._current is None and not self._queue

        if not idle():
            loop = QEventLoop()
            timer = QTimer()
            timer.setSingleShot(True)
            timer.timeout.connect(loop.quit)

            def check(_job: Job) -> None:
                if idle():
                    loop.quit()

            self.job_done.connect(check)
            timer.start(max(0, int(timeout_s * 1000)))
            try:
                if not idle():
                    loop.exec()
            finally:
                timer.stop()
                self.job_done.disconnect(check)
        QCoreApplication.processEvents()
        return idle()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Cancel everything and wait for the worker thread to end (call before quitting).

        Returns False if a job ignored the cancel request for ``timeout_s``; its thread is
        then left to finish on its own (Python cannot kill a thread).
        """
        self._closing = True
        self.cancel_all()
        idle = self.wait(timeout_s)
        threads = [t for t, _w in self._old_threads] + ([self._thread] if self._thread else [])
        for t in threads:
            if t.isRunning():
                t.quit()
                t.wait(int(timeout_s * 1000))
        self._reap_threads()
        if not idle:
            log.warning("job %r did not stop within %.1f s of cancel", self._current, timeout_s)
        return idle

    # ------------------------------------------------------------------ internals
    def _start_next(self) -> None:
        if self._current is not None or not self._queue:
            return
        job = self._queue.pop(0)
        self.queue_changed.emit(len(self._queue))
        self._current = job
        job.state = JobState.RUNNING
        job.started_at = time.perf_counter()
        thread = QThread()
        thread.setObjectName(f"job-{job.id}")
        worker = _Worker(job)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        for sig in (worker.succeeded, worker.failed, worker.cancelled):
            sig.connect(thread.quit)
        thread.finished.connect(self._reap_threads)
        self._thread, self._worker = thread, worker
        self._last_count = 0
        self._poll.start()
        log.info("job #%d started: %s", job.id, job.name)
        self.busy_changed.emit(True)
        self.job_started.emit(job)
        thread.start()

    @Slot()
    def _poll_progress(self) -> None:
        """Emit ``job_progress`` if the running job reported something new since the last poll."""
        job, worker = self._current, self._worker
        if job is None or worker is None:
            return
        count, fraction, message = worker.latest
        if count != self._last_count:
            self._last_count = count
            job.fraction, job.message = fraction, message
            self.job_progress.emit(job, fraction, message)

    @Slot(object)
    def _on_succeeded(self, result: Any) -> None:
        job = self._current
        if job is None:
            return
        job.result = result
        self._finish(job, JobState.FINISHED)

    @Slot(object, str)
    def _on_failed(self, exc: BaseException, details: str) -> None:
        job = self._current
        if job is None:
            return
        job.error = exc
        log.error("job #%d failed: %s\n%s", job.id, job.name, details.rstrip())
        self._finish(job, JobState.FAILED, details)

    @Slot()
    def _on_cancelled(self) -> None:
        job = self._current
        if job is None:
            return
        self._finish(job, JobState.CANCELLED)

    def _finish(self, job: Job, state: JobState, details: str = "") -> None:
        job.state = state
        job.ended_at = time.perf_counter()
        if job is self._current:
            if state is JobState.FINISHED:
                self._poll_progress()  # the last report (usually 100 %) is always shown
            self._poll.stop()
            self._current = None
            thread, worker = self._thread, self._worker
            self._thread, self._worker = None, None
            if thread is not None and worker is not None:
                # the worker sent its last signal as the very last thing it did, so its thread
                # ends at once: join it here, so that no QThread outlives its job (a QThread
                # destroyed while running aborts the process)
                thread.quit()
                if not thread.wait(2000):
                    self._old_threads.append((thread, worker))
        try:
            if state is JobState.FINISHED:
                log.info("job #%d finished in %.2f s: %s", job.id, job.seconds or 0.0, job.name)
                if job.on_result is not None:
                    job.on_result(job.result)
                self.job_finished.emit(job, job.result)
            elif state is JobState.CANCELLED:
                log.info("job #%d cancelled: %s", job.id, job.name)
                if job.on_cancelled is not None:
                    job.on_cancelled()
                self.job_cancelled.emit(job)
            else:
                if job.show_errors and not self._closing:
                    exc = job.error
                    show_error(self._dialog_parent() if self._dialog_parent else None,
                               f"{job.name} failed",
                               f"{job.name} failed:\n{type(exc).__name__}: {exc}", details)
                if job.on_error is not None and job.error is not None:
                    job.on_error(job.error)
                self.job_failed.emit(job, job.error)
        finally:
            self.job_done.emit(job)
            if self._current is None:
                if self._queue and not self._closing:
                    self._start_next()
                else:
                    self.busy_changed.emit(False)

    @Slot()
    def _reap_threads(self) -> None:
        self._old_threads = [(t, w) for t, w in self._old_threads if not t.isFinished()]
