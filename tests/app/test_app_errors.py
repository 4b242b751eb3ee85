"""The excepthook: unexpected exceptions are logged and shown in a dialog, not lost or fatal."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import QTimer

from app import errors
from app.errors import install_excepthook, open_error_dialogs, show_error, uninstall_excepthook


@pytest.fixture
def hook(qtbot, close_error_dialogs):
    before = sys.excepthook, threading.excepthook
    install_excepthook()
    yield
    uninstall_excepthook()
    assert (sys.excepthook, threading.excepthook) == before


def _raise(exc: BaseException):
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001
        return type(e), e, e.__traceback__


def test_excepthook_logs_and_shows_an_error(qtbot, hook, caplog):
    caplog.set_level(logging.ERROR, logger="app.errors")
    sys.excepthook(*_raise(KeyError("no such measurement")))
    qtbot.waitUntil(lambda: len(open_error_dialogs()) == 1, timeout=2000)
    box = open_error_dialogs()[0]
    assert box.windowTitle() == "Unexpected error"
    assert "KeyError" in box.text() and "no such measurement" in box.text()
    assert "Traceback" in box.detailedText() and "_raise" in box.detailedText()
    assert any("unexpected error" in r.getMessage() and "no such measurement" in r.getMessage()
               for r in caplog.records)


def test_exceptions_in_other_threads_reach_the_dialog(qtbot, hook):
    t = threading.Thread(target=lambda: 1 / 0, name="worker-x")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(open_error_dialogs()) == 1, timeout=2000)
    box = open_error_dialogs()[0]
    assert "ZeroDivisionError" in box.text()


@pytest.mark.qt_no_exception_capture
def test_an_exception_in_a_qt_slot_is_shown_not_fatal(qtbot, hook):
    def slot():
        raise RuntimeError("slot broke")

    QTimer.singleShot(0, slot)
    qtbot.waitUntil(lambda: len(open_error_dialogs()) == 1, timeout=2000)
    assert "slot broke" in open_error_dialogs()[0].text()


def test_identical_errors_share_a_dialog_and_a_flood_is_capped(qtbot, close_error_dialogs):
    a = show_error(None, "Oops", "same message", "details")
    b = show_error(None, "Oops", "same message", "details")
    assert a is b
    for i in range(10):
        show_error(None, "Oops", f"message {i}")
    assert len(open_error_dialogs()) == errors.MAX_OPEN_DIALOGS
    open_error_dialogs()[0].done(0)
    qtbot.waitUntil(lambda: len(open_error_dialogs()) == errors.MAX_OPEN_DIALOGS - 1, timeout=2000)
    assert show_error(None, "Oops", "one more") is not None


def test_keyboard_interrupt_is_not_turned_into_a_dialog(qtbot, hook, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "__excepthook__", lambda *a: seen.append(a[0]))
    sys.excepthook(*_raise(KeyboardInterrupt()))
    qtbot.wait(50)
    assert seen == [KeyboardInterrupt] and not open_error_dialogs()
