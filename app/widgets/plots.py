"""Small plots for the volume viewers: a refractive-index line profile (n against µm).

Values are refractive indices (RI), positions in µm; the medium index n_m is drawn as a dashed
reference line so that what lies above the medium reads at a glance. The widget does no
science: it plots the samples it is given.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

import pyqtgraph as pg

__all__ = ["LineProfilePlot", "PROFILE_COLOURS"]

#: Pen colours of the profiles, in the order they are added (raw first, then regularised).
PROFILE_COLOURS = ("#4aa3df", "#f0c674", "#b294bb", "#8abeb7")


class LineProfilePlot(pg.PlotWidget):
    """Refractive index along a line through the volume: ``n`` (RI) against position (µm).

    Several named profiles can be shown together (e.g. raw and regularised), each with its
    own colour, over a dashed line at the medium index.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("lineProfile")
        self.setBackground("k")
        item = self.getPlotItem()
        item.setLabel("left", "n", units="")
        item.setLabel("bottom", "position", units="µm")
        item.getAxis("bottom").enableAutoSIPrefix(False)  # never "mµm" for a short line
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setMenuEnabled(False)
        self._legend = item.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self._medium_line = pg.InfiniteLine(angle=0, movable=False,
                                            pen=pg.mkPen("#8b929c", width=1, style=Qt.PenStyle.DashLine))
        self._medium_line.setVisible(False)
        item.addItem(self._medium_line, ignoreBounds=True)
        self._cursor_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#ffffff55", width=1))
        self._cursor_line.setVisible(False)
        item.addItem(self._cursor_line, ignoreBounds=True)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self.medium_index: Optional[float] = None
        self.setMinimumHeight(120)

    @property
    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The profiles shown: name → (positions µm, n)."""
        out = {}
        for name, c in self._curves.items():
            x, y = c.getData()
            out[name] = (np.asarray(x), np.asarray(y))
        return out

    def set_axis_name(self, axis: str) -> None:
        """Label the horizontal axis with the coordinate the line runs along ("x", "y" or "z")."""
        self.getPlotItem().setLabel("bottom", axis, units="µm")

    def set_medium_index(self, n_m: Optional[float]) -> None:
        """Draw (or hide, with None) the dashed medium-index line."""
        self.medium_index = n_m
        if n_m is None:
            self._medium_line.setVisible(False)
            return
        self._medium_line.setPos(float(n_m))
        self._medium_line.setVisible(True)
        self._medium_line.setToolTip(f"medium index n_m = {n_m:.4f}")

    def set_cursor(self, position_um: Optional[float]) -> None:
        """Mark the crosshair's position on the profile (None hides the mark)."""
        if position_um is None:
            self._cursor_line.setVisible(False)
        else:
            self._cursor_line.setPos(float(position_um))
            self._cursor_line.setVisible(True)

    def set_profiles(self, positions_um: np.ndarray, profiles: dict[str, np.ndarray]) -> None:
        """Show ``profiles`` (name → values, RI) sampled at ``positions_um`` (µm).

        Curves whose name is no longer given are removed; existing ones are updated in place
        (cheap enough to call on every crosshair move).
        """
        x = np.asarray(positions_um, dtype=np.float64)
        for name in list(self._curves):
            if name not in profiles:
                c = self._curves.pop(name)
                self._legend.removeItem(c)
                self.getPlotItem().removeItem(c)
        for i, (name, values) in enumerate(profiles.items()):
            y = np.asarray(values, dtype=np.float64)
            if y.shape != x.shape:
                raise ValueError(f"profile {name!r} has {y.shape} samples for {x.shape} positions")
            if name in self._curves:
                self._curves[name].setData(x, y)
            else:
                colour = PROFILE_COLOURS[i % len(PROFILE_COLOURS)]
                self._curves[name] = self.getPlotItem().plot(x, y, pen=pg.mkPen(colour, width=1.5), name=name)

    def clear_profiles(self) -> None:
        self.set_profiles(np.zeros(0), {})
        self.set_cursor(None)
