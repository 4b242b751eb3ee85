"""Status-bar widget showing the running background job: name, progress bar, cancel button."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from app.jobs import Job, JobRunner

__all__ = ["JobStatusWidget"]


class JobStatusWidget(QWidget):
    """Follows a :class:`app.jobs.JobRunner`; hidden while no job runs.

    The cancel button calls :meth:`JobRunner.cancel` on the running job, which sets the
    engine's cancel token; the label says "Cancelling…" until the engine stops.
    """

    def __init__(self, runner: JobRunner, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("jobStatus")
        self.runner = runner
        self.label = QLabel(self)
        self.label.setObjectName("jobLabel")
        self.label.setMinimumWidth(160)
        self.bar = QProgressBar(self)
        self.bar.setObjectName("jobProgress")
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("jobCancel")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the running job")
        self.cancel_button.setAutoRaise(False)
        self.queue_label = QLabel(self)
        self.queue_label.setObjectName("jobQueue")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.setSpacing(8)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        lay.addWidget(self.queue_label)
        self.cancel_button.clicked.connect(self._cancel)
        runner.job_started.connect(self._started)
        runner.job_progress.connect(self._progress)
        runner.busy_changed.connect(self._busy)
        runner.queue_changed.connect(self._queue)
        self.setVisible(False)

    @Slot()
    def _cancel(self) -> None:
        job = self.runner.current
        if job is not None:
            self.label.setText(f"Cancelling {job.name}…")
            self.cancel_button.setEnabled(False)
            self.runner.cancel(job)

    @Slot(object)
    def _started(self, job: Job) -> None:
        self.label.setText(job.name + "…")
        self.label.setToolTip(job.name)
        self.bar.setRange(0, 0)  # busy indicator until the first progress report
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    @Slot(object, float, str)
    def _progress(self, job: Job, fraction: float, message: str) -> None:
        if self.bar.maximum() == 0:
            self.bar.setRange(0, 1000)
        self.bar.setValue(int(round(1000 * fraction)))
        text = f"{job.name}: {message}" if message else job.name
        if not self.cancel_button.isEnabled():
            return  # keep "Cancelling…" visible
        self.label.setText(text)
        self.bar.setToolTip(f"{100 * fraction:.0f} % after {job.seconds or 0.0:.0f} s")

    @Slot(bool)
    def _busy(self, busy: bool) -> None:
        self.setVisible(busy)
        if not busy:
            self.bar.setRange(0, 1000)
            self.bar.setValue(0)

    @Slot(int)
    def _queue(self, n: int) -> None:
        self.queue_label.setText(f"+{n} queued" if n else "")
        self.queue_label.setAlignment(Qt.AlignmentFlag.AlignVCenter)
