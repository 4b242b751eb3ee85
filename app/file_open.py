"""Files handed to the running application by the desktop (macOS Finder "Open with", a
double-clicked ``.odt.h5`` document, a folder dropped on the Dock icon).

macOS does not pass these on the command line: it sends a ``QEvent.FileOpen`` to the
``QApplication`` (also at launch, possibly before the main window exists). :class:`FileOpenFilter`
catches those events and hands each path to a callback, queuing the paths that arrive before a
callback is set. On Linux and Windows the desktop passes the path on the command line instead.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QFileOpenEvent

log = logging.getLogger(__name__)

__all__ = ["FileOpenFilter"]


class FileOpenFilter(QObject):
    """Application event filter for ``QEvent.FileOpen``.

    Parameters
    ----------
    parent : QObject
        Usually the ``QApplication`` the filter is installed on.
    """

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._handler: Optional[Callable[[str], None]] = None
        self.pending: list[str] = []

    def set_handler(self, handler: Optional[Callable[[str], None]]) -> None:
        """Deliver paths to ``handler`` from now on, first the ones that arrived before it."""
        self._handler = handler
        if handler is not None:
            queued, self.pending = self.pending, []
            for path in queued:
                handler(path)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = event.file() or event.url().toLocalFile()
            if path:
                log.info("file opened from the desktop: %s", path)
                if self._handler is None:
                    self.pending.append(path)
                else:
                    self._handler(path)
                return True
        return super().eventFilter(watched, event)
