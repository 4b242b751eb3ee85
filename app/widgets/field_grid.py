"""Grid of a measurement's fields as phase thumbnails, framed by their screening decision.

A :class:`FieldGridModel` (one row per field) holds the thumbnails as ready-made
``QImage`` objects, the model score, the rule metric, the automatic decision at the current
threshold, the manual override and the retrieval quality numbers
(:mod:`engine.holography.quality`) and how unlike its nearest illuminations each field is (the largest
of its consistency z-scores, :mod:`engine.screening.consistency`); a :class:`FieldFilterProxy` sorts by
field order, by uncertainty (metric nearest the threshold first), by one retrieval quality number
(worst first) or by how unlike its neighbours a field is (most unlike first) and can show overrides
only; a
:class:`FieldDelegate` paints each cell without creating widgets, so 150 fields scroll
and repaint in a few milliseconds; :class:`FieldGridView` is the ``QListView`` (icon mode)
that passes the review keys (C, N, Space, U, ?, undo/redo) up to the screening tab.

Decision codes follow ``docs/formats.md``: 1 = clean (used), 0 = noisy (excluded).
Colours are from the Okabe–Ito colour-blind-safe palette, and every decision also carries a
letter (C / N) and a frame style (solid for clean, dashed for noisy), so colour is never the
only cue.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from ..logic.screening import QUALITY_LABELS, QUALITY_SHORT, THUMB, format_quality, phase_thumbnails, quality_text

__all__ = [
    "CLEAN_COLOR",
    "NOISY_COLOR",
    "MANUAL_COLOR",
    "FieldGridModel",
    "FieldFilterProxy",
    "FieldDelegate",
    "FieldGridView",
    "UNLIKE_NEIGHBOURS",
    "phase_thumbnails",
    "QUALITY_LABELS",
    "quality_text",
]

#: Sort key of the fields most unlike their nearest illuminations first (largest consistency z-score).
UNLIKE_NEIGHBOURS = "unlike_neighbours"

#: Okabe–Ito bluish green, vermillion and yellow: told apart with every common colour-vision deficiency.
CLEAN_COLOR = QColor("#009E73")
NOISY_COLOR = QColor("#D55E00")
MANUAL_COLOR = QColor("#F0E442")


class FieldGridModel(QAbstractListModel):
    """One row per field: thumbnail, score, rule metric, automatic and manual decision.

    The automatic decision is recomputed from the metric and :attr:`threshold` (noisy when
    the metric is above it): the model's noisy-probability, or the rule's log10 peak when
    the measurement is screened by rule.
    """

    IndexRole = Qt.ItemDataRole.UserRole + 1
    ScoreRole = Qt.ItemDataRole.UserRole + 2
    RuleRole = Qt.ItemDataRole.UserRole + 3
    AutoRole = Qt.ItemDataRole.UserRole + 4
    ManualRole = Qt.ItemDataRole.UserRole + 5
    DecisionRole = Qt.ItemDataRole.UserRole + 6
    UncertaintyRole = Qt.ItemDataRole.UserRole + 7
    ImageRole = Qt.ItemDataRole.UserRole + 8
    QualityRole = Qt.ItemDataRole.UserRole + 9

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._images: list[QPixmap] = []
        self._thumbs: Optional[np.ndarray] = None
        self.score = np.zeros(0, np.float32)
        self.rule_peak = np.zeros(0, np.float32)
        self.manual: list[Optional[int]] = []
        self.use_rule = False
        self.threshold = 0.5
        self.quality: dict[str, np.ndarray] = {}
        #: (N,) the largest consistency z-score of each field, or None when not computed
        self.unlike: Optional[np.ndarray] = None

    # ---------------------------------------------------------------- Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.manual)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        i = index.row()
        if role == Qt.ItemDataRole.DisplayRole:
            return f"#{i}"
        if role == self.IndexRole:
            return i
        if role == self.ScoreRole:
            return float(self.score[i])
        if role == self.RuleRole:
            return float(self.rule_peak[i])
        if role == self.AutoRole:
            return self.auto_decision(i)
        if role == self.ManualRole:
            return self.manual[i]
        if role == self.DecisionRole:
            return self.decision(i)
        if role == self.UncertaintyRole:
            return self.uncertainty(i)
        if role == self.ImageRole:
            return self._images[i]
        if role == self.QualityRole:
            return self.quality_row(i)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(i)
        return None

    # ---------------------------------------------------------------- own API
    def set_fields(self, thumbnails: np.ndarray, score: Sequence[float], rule_peak: Sequence[float],
                   manual: Sequence[Optional[int]], *, use_rule: bool, threshold: float,
                   quality: Optional[dict] = None, unlike_neighbours: Optional[Sequence[float]] = None) -> None:
        """Show a new measurement. ``thumbnails`` is uint8 (N, h, w) (see :func:`phase_thumbnails`);
        ``quality`` maps retrieval quality names to (N,) arrays (None or {}: none recorded);
        ``unlike_neighbours`` (N,) is each field's largest consistency z-score (None: not computed)."""
        self.beginResetModel()
        self._thumbs = np.ascontiguousarray(thumbnails, dtype=np.uint8)
        n = len(self._thumbs)
        self._images = []
        for k in range(n):
            t = self._thumbs[k]
            img = QImage(t.data, t.shape[1], t.shape[0], t.strides[0], QImage.Format.Format_Grayscale8)
            # converted once to the screen's pixel format: painting 150 cells then costs no conversion
            self._images.append(QPixmap.fromImage(img.copy()))
        self.score = np.asarray(score, np.float32).reshape(n)
        self.rule_peak = np.asarray(rule_peak, np.float32).reshape(n)
        self.manual = list(manual)
        self.use_rule = bool(use_rule)
        self.threshold = float(threshold)
        self.quality = {str(k): np.asarray(v, np.float32).reshape(n) for k, v in (quality or {}).items()
                        if np.asarray(v).size == n}
        u = None if unlike_neighbours is None else np.asarray(unlike_neighbours, np.float32).reshape(-1)
        self.unlike = u if u is not None and u.size == n else None
        self.endResetModel()

    def clear(self) -> None:
        self.beginResetModel()
        self._images, self._thumbs, self.manual = [], None, []
        self.score = np.zeros(0, np.float32)
        self.rule_peak = np.zeros(0, np.float32)
        self.quality = {}
        self.unlike = None
        self.endResetModel()

    @property
    def metric(self) -> np.ndarray:
        """The value the threshold applies to: rule peak (rule mode) or model score."""
        return self.rule_peak if self.use_rule else self.score

    def auto_decisions(self, threshold: Optional[float] = None) -> np.ndarray:
        """Automatic decisions (N,) uint8 at ``threshold`` (default: the current one); NaN → clean."""
        t = self.threshold if threshold is None else float(threshold)
        m = self.metric
        return np.where(np.isfinite(m) & (m > t), 0, 1).astype(np.uint8)

    def auto_decision(self, i: int) -> int:
        m = float(self.metric[i])
        return 0 if np.isfinite(m) and m > self.threshold else 1

    def decision(self, i: int) -> int:
        """Final decision of field ``i``: the manual one if any, else the automatic one."""
        return self.manual[i] if self.manual[i] is not None else self.auto_decision(i)

    def decisions(self) -> np.ndarray:
        auto = self.auto_decisions()
        return np.array([a if m is None else m for a, m in zip(auto, self.manual)], np.uint8)

    def uncertainty(self, i: int) -> float:
        """Distance of the metric from the threshold (smaller = less certain); NaN sorts last."""
        m = float(self.metric[i])
        return abs(m - self.threshold) if np.isfinite(m) else float("inf")

    def counts(self, threshold: Optional[float] = None) -> tuple[int, int]:
        """(clean, noisy) counts of the final decisions at ``threshold`` (manual decisions kept)."""
        auto = self.auto_decisions(threshold)
        final = np.array([a if m is None else m for a, m in zip(auto, self.manual)], np.uint8)
        n_clean = int(final.sum())
        return n_clean, len(final) - n_clean

    def set_threshold(self, threshold: float) -> None:
        self.threshold = float(threshold)
        if self.manual:
            self.dataChanged.emit(self.index(0), self.index(len(self.manual) - 1))

    def set_manual(self, i: int, value: Optional[int]) -> None:
        self.manual[i] = value
        idx = self.index(i)
        self.dataChanged.emit(idx, idx)

    def quality_row(self, i: int) -> dict[str, float]:
        """Retrieval quality numbers of field ``i`` ({} when none were recorded)."""
        return {k: float(v[i]) for k, v in self.quality.items()}

    def quality_value(self, key: str, i: int) -> float:
        """One retrieval quality number of field ``i``, or with :data:`UNLIKE_NEIGHBOURS` its largest
        consistency z-score (NaN when not recorded)."""
        v = self.unlike if key == UNLIKE_NEIGHBOURS else self.quality.get(key)
        return float("nan") if v is None else float(v[i])

    def tooltip(self, i: int) -> str:
        d = self.decision(i)
        parts = [f"Field {i}: {'clean' if d else 'noisy'}"
                 + (" (manual)" if self.manual[i] is not None else " (automatic)")]
        if np.isfinite(self.score[i]):
            parts.append(f"model score {self.score[i]:.3f}")
        parts.append(f"rule peak {self.rule_peak[i]:.2f}")
        if self.unlike is not None and np.isfinite(self.unlike[i]):
            parts.append(f"unlike its neighbours z {self.unlike[i]:.1f}")
        text = " · ".join(parts)
        if self.quality:
            text += "\nretrieval: " + quality_text(self.quality_row(i))
        return text


class FieldFilterProxy(QSortFilterProxyModel):
    """Field order, uncertainty order or a retrieval quality number (worst first); optionally
    manual decisions only.

    :attr:`sort_key` is None (field order), ``"uncertainty"`` or a retrieval quality name
    (:data:`QUALITY_LABELS`); fields without the number sort last, ties in field order.
    """

    UNCERTAINTY = "uncertainty"
    UNLIKE_NEIGHBOURS = UNLIKE_NEIGHBOURS

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._sort_key: Optional[str] = None
        self._overrides_only = False
        self.setDynamicSortFilter(False)

    @property
    def by_uncertainty(self) -> bool:
        return self._sort_key == self.UNCERTAINTY

    @property
    def sort_key(self) -> Optional[str]:
        return self._sort_key

    def set_sort_by_uncertainty(self, on: bool) -> None:
        self.set_sort_key(self.UNCERTAINTY if on else None)

    def set_sort_key(self, key: Optional[str]) -> None:
        """Sort by ``key``: None (field order), ``"uncertainty"`` or a retrieval quality name."""
        self._sort_key = key or None
        self.invalidate()
        self.sort(0)

    @property
    def overrides_only(self) -> bool:
        return self._overrides_only

    def set_overrides_only(self, on: bool) -> None:
        self._overrides_only = bool(on)
        self.invalidate()

    def filterAcceptsRow(self, row: int, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        if not self._overrides_only:
            return True
        src = self.sourceModel()
        return src.index(row, 0, parent).data(FieldGridModel.ManualRole) is not None

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,  # noqa: N802
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        key = self._sort_key
        if key == self.UNCERTAINTY:
            a = left.data(FieldGridModel.UncertaintyRole)
            b = right.data(FieldGridModel.UncertaintyRole)
            if a != b:
                return a < b
        elif key is not None:
            src = self.sourceModel()
            a = src.quality_value(key, left.row())
            b = src.quality_value(key, right.row())
            a = -a if np.isfinite(a) else float("inf")  # worst (largest) first, missing last
            b = -b if np.isfinite(b) else float("inf")
            if a != b:
                return a < b
        return left.row() < right.row()

    def field_order(self) -> list[int]:
        """Field indices in display order."""
        return [self.index(r, 0).data(FieldGridModel.IndexRole) for r in range(self.rowCount())]


class FieldDelegate(QStyledItemDelegate):
    """Paints a thumbnail framed by its decision, a C/N badge, an M badge when manual, and the score."""

    def __init__(self, parent: Optional[QWidget] = None, cell: QSize = QSize(THUMB + 14, THUMB + 30)) -> None:
        super().__init__(parent)
        self.cell = cell
        self._badge_font = QFont()
        self._badge_font.setBold(True)
        self._badge_font.setPointSizeF(8.5)
        self._text_font = QFont()
        self._text_font.setPointSizeF(8.0)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:  # noqa: N802
        return self.cell

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,  # noqa: C901
              index: QModelIndex | QPersistentModelIndex) -> None:
        r: QRect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        decision = index.data(FieldGridModel.DecisionRole)
        manual = index.data(FieldGridModel.ManualRole)
        auto = index.data(FieldGridModel.AutoRole)
        colour = CLEAN_COLOR if decision == 1 else NOISY_COLOR
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillRect(r, QColor("#2f6f9f") if selected else QColor("#17191d"))
        img: QPixmap = index.data(FieldGridModel.ImageRole)
        side = min(r.width() - 10, r.height() - 26)
        target = QRect(r.x() + (r.width() - side) // 2, r.y() + 5, side, side)
        if img is not None and not img.isNull():
            painter.drawPixmap(target, img)
        pen = QPen(colour, 4)
        if decision == 0:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(target).adjusted(-1, -1, 1, 1))
        # decision badge (letter), top-left
        painter.setFont(self._badge_font)
        badge = QRectF(target.x() + 3, target.y() + 3, 17, 17)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(colour))
        painter.drawEllipse(badge)
        painter.setPen(QColor("#000000") if decision == 1 else QColor("#ffffff"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "C" if decision == 1 else "N")
        # manual badge, top-right: "M", with "!" when it differs from the automatic decision
        if manual is not None:
            text = "M!" if manual != auto else "M"
            mb = QRectF(target.right() - (26 if len(text) > 1 else 19), target.y() + 3, 24 if len(text) > 1 else 17, 17)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(MANUAL_COLOR))
            painter.drawRoundedRect(mb, 4, 4)
            painter.setPen(QColor("#000000"))
            painter.drawText(mb, Qt.AlignmentFlag.AlignCenter, text)
        # caption: field number and score (or rule metric)
        painter.setFont(self._text_font)
        painter.setPen(QColor("#ffffff") if selected else QColor("#c9ccd1"))
        score = index.data(FieldGridModel.ScoreRole)
        rule = index.data(FieldGridModel.RuleRole)
        value = f"p {score:.2f}" if score is not None and np.isfinite(score) else f"rule {rule:.2f}"
        key = getattr(index.model(), "sort_key", None)
        if key == UNLIKE_NEIGHBOURS:  # sorted by how unlike its neighbours: show the z-score
            z = index.model().sourceModel().quality_value(key, index.data(FieldGridModel.IndexRole))
            if np.isfinite(z):
                value = f"z {z:.1f}"
        elif key is not None and key != FieldFilterProxy.UNCERTAINTY:  # sorted by a quality number: show it
            q = (index.data(FieldGridModel.QualityRole) or {}).get(key)
            if q is not None:
                value = f"{QUALITY_SHORT.get(key, key)} {format_quality(key, q)}"
        caption = QRect(r.x() + 2, target.bottom() + 4, r.width() - 4, r.bottom() - target.bottom() - 4)
        painter.drawText(caption, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         f"#{index.data(FieldGridModel.IndexRole)}")
        painter.drawText(caption, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, value)
        painter.restore()


class FieldGridView(QListView):
    """Icon-mode list of fields. Arrow keys move; the review keys are left to the parent (the tab)."""

    #: Keys the view must not eat (QListView would select on Space and type-search on letters).
    REVIEW_KEYS = {Qt.Key.Key_C, Qt.Key.Key_N, Qt.Key.Key_U, Qt.Key.Key_Space, Qt.Key.Key_Question,
                   Qt.Key.Key_Z, Qt.Key.Key_Y, Qt.Key.Key_P, Qt.Key.Key_A, Qt.Key.Key_F, Qt.Key.Key_D}

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("fieldGrid")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(64)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(False)
        self.delegate = FieldDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setGridSize(self.delegate.cell + QSize(4, 4))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() in self.REVIEW_KEYS or event.text() == "?":
            event.ignore()  # handled by the screening tab
            return
        super().keyPressEvent(event)
