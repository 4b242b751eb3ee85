"""Director lines drawn over a slice view, and the colour-wheel legend that explains their colours.

Conventions: segments come from :func:`engine.birefringence.director.director_lines` (µm, in a
slice's (horizontal, vertical) frame; the science of the lines lives there). Here they are only
drawn. The colour of a line encodes its orientation **on the screen**: the angle ψ in [0, π)
measured counter-clockwise from the screen's rightward direction, through the engine's cyclic map
(:func:`engine.birefringence.director.cyclic_colours`, so ψ = 0 and ψ = π meet). The legend wheel
draws each hue at its own ψ, so it reads the same in every view, whatever the axis directions.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPicture
from PySide6.QtWidgets import QWidget

import pyqtgraph as pg

from engine.birefringence.director import cyclic_colours

from ..logic.display import screen_angles

__all__ = ["DirectorOverlay", "ColourWheelLegend", "screen_angles"]


class DirectorOverlay(pg.GraphicsObject):
    """Coloured line segments in a plot's data coordinates (µm).

    Attributes
    ----------
    segments : ndarray, shape (M, 2, 2)
        End points ``[m, end, (horizontal, vertical)]`` in µm, as drawn.
    colours : ndarray, shape (M, 4)
        RGBA 0..1 of each segment.
    """

    def __init__(self, width: float = 2.0) -> None:
        super().__init__()
        self.segments = np.zeros((0, 2, 2), dtype=np.float32)
        self.colours = np.zeros((0, 4), dtype=np.float32)
        self.width = float(width)
        self._picture = QPicture()
        self._bounds = QRectF()
        self.setZValue(5)  # above the image, below the crosshair

    def set_segments(self, segments: np.ndarray, colours: np.ndarray) -> None:
        """Replace the drawn segments (M, 2, 2) µm and their RGBA colours (M, 4)."""
        seg = np.asarray(segments, dtype=np.float32).reshape(-1, 2, 2)
        col = np.asarray(colours, dtype=np.float32).reshape(-1, 4)
        if seg.shape[0] != col.shape[0]:
            raise ValueError(f"{seg.shape[0]} segments but {col.shape[0]} colours")
        self.prepareGeometryChange()
        self.segments, self.colours = seg, col
        pic = QPicture()
        p = QPainter(pic)
        pen = QPen()
        pen.setCosmetic(True)
        pen.setWidthF(self.width)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        for (a, b), c in zip(seg.tolist(), col.tolist()):
            pen.setColor(QColor.fromRgbF(*c))
            p.setPen(pen)
            p.drawLine(QPointF(a[0], a[1]), QPointF(b[0], b[1]))
        p.end()
        self._picture = pic
        if len(seg):
            lo, hi = seg.reshape(-1, 2).min(0), seg.reshape(-1, 2).max(0)
            self._bounds = QRectF(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        else:
            self._bounds = QRectF()
        self.update()

    def clear(self) -> None:
        self.set_segments(np.zeros((0, 2, 2)), np.zeros((0, 4)))

    def __len__(self) -> int:
        return int(self.segments.shape[0])

    def paint(self, painter: QPainter, *args) -> None:  # noqa: ANN002 - Qt signature
        painter.drawPicture(0, 0, self._picture)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return QRectF(self._bounds)


class ColourWheelLegend(QWidget):
    """A small wheel of bars, each drawn at its on-screen orientation ψ in its cyclic colour.

    Tells how to read the director lines' colours: a line's colour is the colour of the bar
    parallel to it.
    """

    def __init__(self, parent: Optional[QWidget] = None, bars: int = 24) -> None:
        super().__init__(parent)
        self.setObjectName("colourWheelLegend")
        self._bars = int(bars)
        self.setToolTip("Director line colour = its orientation on the screen (0° and 180° meet)")
        self.setMinimumSize(72, 72)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(84, 84)

    def bar_colours(self) -> tuple[np.ndarray, np.ndarray]:
        """(angles ψ in [0, π), RGBA 0..1) of the bars drawn."""
        psi = np.arange(self._bars) * np.pi / self._bars
        return psi, cyclic_colours(psi)

    def paintEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        side = min(self.width(), self.height())
        cx, cy = self.width() / 2, self.height() / 2
        r_out, r_in = 0.46 * side, 0.14 * side
        pen = QPen()
        pen.setWidthF(max(2.0, side / 28))
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        psi, colours = self.bar_colours()
        for a, c in zip(psi, colours):
            pen.setColor(QColor.fromRgbF(*(float(v) for v in c)))
            p.setPen(pen)
            for sgn in (1.0, -1.0):  # an axis: both directions
                ux, uy = sgn * np.cos(a), -sgn * np.sin(a)  # screen y grows downwards
                p.drawLine(QPointF(cx + r_in * ux, cy + r_in * uy), QPointF(cx + r_out * ux, cy + r_out * uy))
        p.end()
