"""Error reporting: dialogs with details, and the hooks that catch unexpected exceptions.

:func:`install_excepthook` replaces :data:`sys.excepthook` and :data:`threading.excepthook`.
An unexpected exception is written to the log with its traceback and shown in a dialog
("details" holds the traceback) instead of passing silently to a terminal nobody reads or
killing the program. Exceptions raised in worker threads are marshalled to the GUI thread
through a queued Qt signal before any widget is touched.

Dialogs are opened non-blocking (``QMessageBox.open``), so a burst of errors never nests
event loops; at most :data:`MAX_OPEN_DIALOGS` are open at once, the rest go to the log only.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType
from typing import Callable, Optional

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

__all__ = [
    "MAX_OPEN_DIALOGS",
    "format_exception",
    "show_error",
    "open_error_dialogs",
    "install_excepthook",
    "uninstall_excepthook",
]

log = logging.getLogger(__name__)

MAX_OPEN_DIALOGS = 3
_open_dialogs: list[QMessageBox] = []


def format_exception(exc: BaseException) -> str:
    """The full traceback of ``exc`` as text (for a dialog's details and the log)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def open_error_dialogs() -> list[QMessageBox]:
    """Error dialogs currently open (tests use it to check and close them)."""
    return [d for d in _open_dialogs if d.isVisible()]


def _forget(box: QMessageBox) -> None:
    try:
        _open_dialogs.remove(box)
    except ValueError:
        pass


def show_error(parent: Optional[QWidget], title: str, message: str, details: str = "") -> Optional[QMessageBox]:
    """Show an error message box (non-blocking) and return it; None if too many are open.

    Parameters
    ----------
    parent : QWidget or None
        Window the dialog belongs to (defaults to the application's active window).
    title : str
        Window title, e.g. ``"Reconstruction failed"``.
    message : str
        One or two plain sentences for the user.
    details : str
        Technical details (traceback) behind the "Show Details…" button.
    """
    if QApplication.instance() is None:  # no GUI (should not happen): the log has it
        return None
    for d in list(_open_dialogs):
        if not d.isVisible():
            _forget(d)
    same = [d for d in _open_dialogs if d.text() == message and d.windowTitle() == title]
    if same:  # the same error again: don't stack identical dialogs
        same[0].raise_()
        return same[0]
    if len(_open_dialogs) >= MAX_OPEN_DIALOGS:
        log.warning("not showing another error dialog (%d open already): %s", len(_open_dialogs), message)
        return None
    parent = parent if parent is not None else QApplication.activeWindow()
    box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Close, parent)
    box.setObjectName("errorDialog")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    box.finished.connect(lambda _r, b=box: _forget(b))
    _open_dialogs.append(box)
    box.open()
    return box


class _ErrorBridge(QObject):
    """Lives in the GUI thread; receives exceptions from any thread through a queued signal."""

    raised = Signal(str, str, str)  # title, message, details

    def __init__(self, parent_getter: Callable[[], Optional[QWidget]]) -> None:
        super().__init__()
        self._parent_getter = parent_getter
        self.raised.connect(self._show, Qt.ConnectionType.QueuedConnection)

    @Slot(str, str, str)
    def _show(self, title: str, message: str, details: str) -> None:
        try:
            show_error(self._parent_getter(), title, message, details)
        except Exception:  # never let the error display raise into the hook again
            log.exception("could not show an error dialog")


_bridge: Optional[_ErrorBridge] = None
_previous_hooks: Optional[tuple] = None


def _handle(exc_type: type[BaseException], exc: BaseException, tb: Optional[TracebackType],
            where: str) -> None:
    if exc is None:
        exc = exc_type()
    if exc.__traceback__ is None and tb is not None:
        exc = exc.with_traceback(tb)
    details = format_exception(exc)
    log.error("unexpected error in %s:\n%s", where, details.rstrip())
    if _bridge is not None:
        message = (f"An unexpected error happened ({exc_type.__name__}: {exc}).\n\n"
                   "The program goes on, but the last action may not have completed. "
                   "The details are in the log file.")
        _bridge.raised.emit("Unexpected error", message, details)


def _sys_hook(exc_type, exc, tb) -> None:  # noqa: ANN001 - sys.excepthook signature
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _handle(exc_type, exc, tb, "the main thread")


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    _handle(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name!r}")


def install_excepthook(parent_getter: Callable[[], Optional[QWidget]] | None = None) -> None:
    """Log unexpected exceptions and show them in a dialog (main thread and other threads).

    Must be called in the GUI thread after the QApplication exists. ``parent_getter``
    returns the window dialogs should belong to (default: the active window).
    """
    global _bridge, _previous_hooks
    if _previous_hooks is None:
        _previous_hooks = (sys.excepthook, threading.excepthook)
    _bridge = _ErrorBridge(parent_getter or QApplication.activeWindow)
    sys.excepthook = _sys_hook
    threading.excepthook = _thread_hook


def uninstall_excepthook() -> None:
    """Put back the hooks that were there before :func:`install_excepthook`."""
    global _bridge, _previous_hooks
    if _previous_hooks is not None:
        sys.excepthook, threading.excepthook = _previous_hooks
    _previous_hooks = None
    if _bridge is not None:
        _bridge.deleteLater()
    _bridge = None
