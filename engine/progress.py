"""Progress reporting and cancellation for long engine calls.

Every long engine function takes two optional keyword arguments::

    def long_call(..., progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None) -> ...

``progress(fraction, message)`` is called with ``0 <= fraction <= 1`` and a short,
human-readable message. It may be called from a worker thread; receivers (the GUI job
runner) must marshal it to their own thread. ``cancel`` is polled between steps with
``cancel.raise_if_cancelled()``, which raises :class:`Cancelled`. Nothing here knows
about Qt, so the same calls run in the GUI, the CLI, tests and on Dask workers.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol

__all__ = [
    "Cancelled",
    "CancelToken",
    "ProgressCallback",
    "report",
    "check_cancel",
    "sub_progress",
]


class Cancelled(Exception):
    """Raised inside an engine call when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe flag that asks a running engine call to stop at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the running call to stop (idempotent, callable from any thread)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if :meth:`cancel` was called."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None: ...


def report(progress: Optional[Callable[..., None]], fraction: float, message: str = "") -> None:
    """Call ``progress(fraction, message)`` if a callback was given (fraction clipped to 0..1)."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def check_cancel(cancel: Optional[CancelToken]) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set; a no-op for ``None``."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def sub_progress(
    progress: Optional[Callable[..., None]], start: float, stop: float, prefix: str = ""
) -> Optional[Callable[..., None]]:
    """Map a sub-task's 0..1 progress onto ``[start, stop]`` of the parent's.

    Examples
    --------
    >>> seen = []
    >>> sub = sub_progress(lambda f, m="": seen.append((f, m)), 0.5, 1.0, "TV: ")
    >>> sub(0.5, "iteration 10")
    >>> seen
    [(0.75, 'TV: iteration 10')]
    """
    if progress is None:
        return None

    def _sub(fraction: float, message: str = "") -> None:
        f = min(1.0, max(0.0, float(fraction)))
        progress(start + (stop - start) * f, prefix + message)

    return _sub
