"""A warning banner: a dark-amber label, hidden while it has nothing to say.

Used by the review and reconstruction tabs for the engine's warnings (e.g. a sample whose phase
is mostly negative, fields excluded because their retrieval failed). Readable on the dark theme
and not by colour alone: the text starts with "⚠".
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

#: dark amber, readable on the dark theme
WARNING_STYLE = ("QLabel { background: #3d3200; color: #ffd866; border: 1px solid #a88a00; "
                 "border-radius: 4px; padding: 5px 8px; }")


class WarningBanner(QLabel):
    """A word-wrapped, selectable amber label; :meth:`show_warnings` shows or hides it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.setObjectName("warningBanner")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setStyleSheet(WARNING_STYLE)
        self.setVisible(False)

    def show_warnings(self, warnings: Sequence[str]) -> None:
        """One "⚠" line per warning (plain text, escaped); hidden and empty when there are none."""
        self.setText("<br>".join(f"⚠ {html.escape(w, quote=False)}" for w in warnings))
        self.setVisible(bool(warnings))
