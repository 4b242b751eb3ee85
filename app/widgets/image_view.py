"""Image-stack viewer for holograms: pyqtgraph's ImageView with axes in µm.

Arrays are (N, H, W) or (H, W) in NumPy order (row = y, column = x). Row 0 is drawn at the
top, as cameras and microscopy software show it. Pixel ``j`` of ``n`` sits at
``(j - n//2) * pixel_size_um``, so the axes read µm with 0 at the image centre
(``docs/formats.md``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

import pyqtgraph as pg

__all__ = ["HologramView"]


class HologramView(QWidget):
    """Shows a stack of images with a frame slider, histogram/levels and µm axes.

    Until :meth:`set_stack` is called, a short message (``placeholder``) is shown instead.
    """

    def __init__(self, placeholder: str = "No image", parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("hologramView")
        self.plot = pg.PlotItem()
        self.plot.setLabel("bottom", "x", units="µm")
        self.plot.setLabel("left", "y", units="µm")
        for side in ("bottom", "left"):  # never "mµm", "kµm" or "kpx": positions read in µm (or px)
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.image_view = pg.ImageView(view=self.plot)
        self.image_view.ui.roiBtn.hide()
        self.image_view.ui.menuBtn.hide()
        self.message = QLabel(placeholder)
        self.message.setObjectName("hologramPlaceholder")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.image_view)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.stack)
        self._data: Optional[np.ndarray] = None

    @property
    def data(self) -> Optional[np.ndarray]:
        """The array shown, (N, H, W) or (H, W), or None."""
        return self._data

    def set_stack(self, images: np.ndarray, pixel_size_um: float | None = None) -> None:
        """Show ``images`` ((N, H, W) or (H, W)); axes in µm when ``pixel_size_um`` is given."""
        images = np.asarray(images)
        if images.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (N, H, W) images, got shape {images.shape}")
        h, w = images.shape[-2:]
        px = float(pixel_size_um) if pixel_size_um else 1.0
        units = "µm" if pixel_size_um else "px"
        self.plot.setLabel("bottom", "x", units=units)
        self.plot.setLabel("left", "y", units=units)
        axes = {"t": 0, "y": 1, "x": 2} if images.ndim == 3 else {"y": 0, "x": 1}
        self._data = images
        self.image_view.setImage(images, axes=axes, autoRange=True, autoLevels=True,
                                 pos=(-(w // 2) * px, -(h // 2) * px), scale=(px, px))
        self.image_view.ui.roiPlot.setVisible(images.ndim == 3 and images.shape[0] > 1)
        self.stack.setCurrentWidget(self.image_view)

    def show_message(self, text: str) -> None:
        """Replace the image with a message (e.g. "Loading…" or an error)."""
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    def clear(self, text: str | None = None) -> None:
        self._data = None
        self.image_view.clear()
        self.show_message(text if text is not None else self.message.text())
