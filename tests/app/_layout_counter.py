"""Count Qt layout requests of given widgets while the event loop runs (shared by the slice-view tests)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication


class _LayoutRequests(QObject):
    def __init__(self, ids: set[int]) -> None:
        super().__init__()
        self.ids = ids
        self.n = 0

    def eventFilter(self, obj, ev):  # noqa: ANN001, N802 - Qt override
        if ev.type() == QEvent.Type.LayoutRequest and id(obj) in self.ids:
            self.n += 1
        return False


def layouts_during(qtbot, widgets, ms: int) -> int:  # noqa: ANN001 - pytest-qt fixture, Qt widgets
    """How many ``LayoutRequest`` events ``widgets`` receive during ``ms`` milliseconds of the event loop."""
    counter = _LayoutRequests({id(w) for w in widgets})
    app = QApplication.instance()
    app.installEventFilter(counter)
    try:
        qtbot.wait(ms)
    finally:
        app.removeEventFilter(counter)
    return counter.n
