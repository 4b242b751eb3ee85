"""A friendly panel for a tab whose feature has not landed yet: says what will be there."""

from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

__all__ = ["ComingSoonPanel"]


class ComingSoonPanel(QWidget):
    """States plainly that a feature is not available yet, and what it will do.

    Parameters
    ----------
    title : str
        The feature's name, e.g. ``"Screening review"``.
    summary : str
        One sentence: what the tab is for.
    planned : sequence of str
        What the tab will let the user do.
    """

    NOT_AVAILABLE = "Not available yet"
    CARD_WIDTH = 620

    def __init__(self, title: str, summary: str, planned: Sequence[str] = (),
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("comingSoon")
        self.title = title
        card = QFrame(self)
        card.setObjectName("comingSoonCard")
        card.setFrameShape(QFrame.Shape.StyledPanel)
        card.setFixedWidth(self.CARD_WIDTH)
        badge = QLabel(self.NOT_AVAILABLE, card)
        badge.setObjectName("comingSoonBadge")
        heading = QLabel(title, card)
        heading.setObjectName("comingSoonTitle")
        # fonts set here, not in a style sheet: a word-wrapped label computes its height from
        # its own font, and a style-sheet font-size arrives too late for that (clipped text)
        f = heading.font()
        f.setPointSizeF(f.pointSizeF() * 1.7)
        f.setWeight(QFont.Weight.DemiBold)
        heading.setFont(f)
        text = QLabel(summary, card)
        f = text.font()
        f.setPointSizeF(f.pointSizeF() * 1.15)
        text.setFont(f)
        text.setWordWrap(True)
        text.setObjectName("comingSoonSummary")
        intro = QLabel("When this part lands, this tab will let you:", card)
        intro.setObjectName("comingSoonPlan")
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(10)
        inner.addWidget(badge, 0, Qt.AlignmentFlag.AlignLeft)
        inner.addWidget(heading)
        inner.addWidget(text)
        inner.addSpacing(4)
        inner.addWidget(intro)
        for p in planned:
            item = QLabel(f"•  {p}", card)
            item.setObjectName("comingSoonItem")
            item.setWordWrap(True)
            item.setTextFormat(Qt.TextFormat.RichText)
            item.setContentsMargins(14, 0, 0, 0)
            inner.addWidget(item)
        inner.addSpacing(4)
        footer = QLabel("Nothing here works yet; the other tabs are not affected.", card)
        footer.setObjectName("comingSoonPlan")
        footer.setWordWrap(True)
        inner.addWidget(footer)
        # a word-wrapped label in a centred, fixed-width card is given its one-line size hint
        # height; reserve the height its text really needs at the card's inner width
        inner_width = self.CARD_WIDTH - 56
        for lbl in card.findChildren(QLabel):
            if lbl.wordWrap():
                lbl.setMinimumHeight(lbl.heightForWidth(inner_width - lbl.contentsMargins().left()))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.summary_text = summary
        self.planned = list(planned)

    def text(self) -> str:
        """All the panel's words as plain text (for tests and accessibility)."""
        return " ".join([self.NOT_AVAILABLE, self.title, self.summary_text, *self.planned])
