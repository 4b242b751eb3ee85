"""Histogram of a measurement's screening metric with a draggable threshold line (pyqtgraph).

Bars left of the threshold (clean) are drawn in the clean colour, bars right of it (noisy)
in the noisy colour of :mod:`app.widgets.field_grid`; dragging the line emits
``threshold_changed``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

import pyqtgraph as pg

from .field_grid import CLEAN_COLOR, NOISY_COLOR

__all__ = ["ScoreHistogram"]


class ScoreHistogram(QWidget):
    """Histogram of per-field values (model score 0..1, or rule log10 peak) and the threshold.

    Signals
    -------
    threshold_changed(float)
        The user dragged the threshold line.
    """

    threshold_changed = Signal(float)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("scoreHistogram")
        self.plot_widget = pg.PlotWidget(self)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("left", "fields")
        self.clean_bars = pg.BarGraphItem(x=[], height=[], width=0.02, brush=CLEAN_COLOR, pen=None)
        self.noisy_bars = pg.BarGraphItem(x=[], height=[], width=0.02, brush=NOISY_COLOR, pen=None)
        self.plot.addItem(self.clean_bars)
        self.plot.addItem(self.noisy_bars)
        self.line = pg.InfiniteLine(pos=0.5, angle=90, movable=True, pen=pg.mkPen("#ffffff", width=2),
                                    hoverPen=pg.mkPen("#4aa3df", width=3))
        self.plot.addItem(self.line)
        self.line.sigPositionChanged.connect(self._line_moved)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot_widget)
        self._values = np.zeros(0, np.float32)
        self._range = (0.0, 1.0)
        self._bins = 20
        self._setting = False
        self.counts = np.zeros(0, np.int64)

    def set_values(self, values: np.ndarray, value_range: tuple[float, float], label: str,
                   threshold: float, bins: int = 20) -> None:
        """Show the histogram of ``values`` (NaN ignored) over ``value_range`` and the threshold."""
        v = np.asarray(values, np.float64)
        self._values = v[np.isfinite(v)]
        self._range = (float(value_range[0]), float(value_range[1]))
        self._bins = int(bins)
        self.plot.setLabel("bottom", label)
        self._setting = True
        try:
            self.line.setBounds(self._range)
        finally:
            self._setting = False
        self.plot.setXRange(*self._range, padding=0.02)
        self.set_threshold(threshold)

    def set_threshold(self, threshold: float) -> None:
        """Move the line and recolour the bars (does not emit ``threshold_changed``)."""
        self._setting = True
        try:
            self.line.setValue(float(threshold))
        finally:
            self._setting = False
        self._draw(float(threshold))

    def _draw(self, threshold: float) -> None:
        lo, hi = self._range
        counts, edges = np.histogram(self._values, bins=self._bins, range=(lo, hi))
        self.counts = counts
        centres = 0.5 * (edges[1:] + edges[:-1])
        width = (hi - lo) / self._bins * 0.9
        noisy = centres > threshold
        self.clean_bars.setOpts(x=centres[~noisy], height=counts[~noisy], width=width)
        self.noisy_bars.setOpts(x=centres[noisy], height=counts[noisy], width=width)
        self.plot.setYRange(0, max(1, int(counts.max()) if counts.size else 1) * 1.1, padding=0)

    def _line_moved(self) -> None:
        t = float(self.line.value())
        self._draw(t)
        if not self._setting:
            self.threshold_changed.emit(t)
