"""The convergence of an iterative reconstruction: relative data misfit against iteration.

The misfit is ``‖P(u − d)‖² / ‖P(d − 1)‖²`` of each multislice iteration (0: the volume explains
the measured fields; 1: no better than an empty volume; :mod:`engine.tomography.multislice`),
drawn on a log scale as it comes in. The widget does no science: it plots the numbers it is given.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PySide6.QtWidgets import QWidget

import pyqtgraph as pg

__all__ = ["MisfitPlot"]


class MisfitPlot(pg.PlotWidget):
    """Data misfit per iteration (log scale), appended live or set whole."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("misfitPlot")
        self.setBackground("k")
        item = self.getPlotItem()
        item.setLabel("left", "data misfit")
        item.setLabel("bottom", "iteration")
        item.setLogMode(x=False, y=True)
        for name in ("left", "bottom"):
            item.getAxis(name).enableAutoSIPrefix(False)
        item.getAxis("left").setWidth(56)  # fixed: log tick labels of changing width do not move the plot
        item.getAxis("bottom").setTickSpacing(major=5, minor=1)
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setMenuEnabled(False)
        self._curve = item.plot([], [], pen=pg.mkPen("#f0c674", width=2), symbol="o", symbolSize=5,
                                symbolBrush="#f0c674", symbolPen=None)
        self._values: list[float] = []
        self.setMinimumSize(220, 120)

    @property
    def values(self) -> list[float]:
        """The misfit of each iteration shown, in order."""
        return list(self._values)

    def set_values(self, misfit: Sequence[float]) -> None:
        """Show a whole history (e.g. the record of a result file)."""
        self._values = [float(m) for m in misfit]
        self._redraw()

    def append(self, iteration: int, misfit: float) -> None:
        """Add iteration ``iteration`` (0-based); an earlier index starts a new history."""
        if iteration < len(self._values):
            self._values = self._values[:iteration]
        self._values.append(float(misfit))
        self._redraw()

    def clear_values(self) -> None:
        self._values = []
        self._redraw()

    def _redraw(self) -> None:
        v = np.asarray(self._values, float)
        ok = np.isfinite(v) & (v > 0)  # the log axis takes positive values only
        x = np.arange(1, len(v) + 1)[ok]
        self._curve.setData(x, v[ok])
        self.getPlotItem().getAxis("left").setTicks(_log_ticks(v[ok]) if ok.any() else None)


def _log_ticks(values: np.ndarray) -> list:
    """Major ticks 1·10^k, minor 2·10^k and 5·10^k, around ``values``, as log-mode axis ticks
    (positions log10 v, labels v): readable where pyqtgraph labels every minor tick of a decade."""
    lo, hi = np.floor(np.log10(values.min())), np.ceil(np.log10(values.max()))
    major, minor = [], []
    for k in range(int(lo), int(hi) + 1):
        major.append((float(k), f"{10.0 ** k:g}"))
        minor += [(float(np.log10(m * 10.0 ** k)), f"{m * 10.0 ** k:g}") for m in (2, 5) if hi - lo <= 2]
    return [major, minor]
