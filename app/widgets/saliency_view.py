"""Large view of one optical field: phase, amplitude, log-spectrum or its difference from its neighbours,
with a saliency overlay.

Conventions (``docs/formats.md``): images (y, x), row 0 drawn at the top; pixel ``j`` of
``n`` sits at ``(j − n//2)·pixel``, so the image axes read µm with 0 at the image centre.
The spectrum is ``fftshift(fft2(U))`` with axes ``fftfreq(n, d=pixel)`` in cycles/µm
(index ``n//2`` after the shift is frequency 0). The phase is ``angle(U·e^{−i·arg ΣU})``
(the field's mean phase removed), in radians; n > n_m gives a positive phase.

A saliency map (0..1, from :mod:`engine.screening.saliency`) covers the network's crop of
``crop`` pixels starting at field pixel ``(y0, x0)`` (``crop_origin`` of :meth:`FieldView.set_field`;
by default the centre crop, ``y0 = n//2 − crop//2``): crop pixel ``j`` is field pixel ``y0 + j``,
i.e. it sits at ``(y0 + j − n//2)·pixel`` — the overlay is placed there, whatever the field size. It
is drawn with the "inferno" colour map, its alpha following the map value, times the
opacity slider.

"Against neighbours" shows how the field differs from what the other fields predict, relative to the field:
the modulus of its Rytov residual against the prediction from the fields whose Ewald caps pass next to its
own (:func:`engine.screening.tomographic.tomographic_difference`, when the optics are known), else
``|U_k − R_k| / median|R_k|`` with ``R_k`` the median of the fields of nearest illumination
(:func:`engine.screening.consistency.neighbour_difference`): 0 where the field is as predicted. The view asks
for it (``difference_requested``) and shows it when given (:meth:`FieldView.set_difference`).

This widget only displays arrays; it computes no saliency and no difference itself.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSlider, QStackedWidget, QVBoxLayout, QWidget

import pyqtgraph as pg

from ..logic.display import VIEW_MODES, field_image

__all__ = ["FieldView", "VIEW_MODES", "FIELD_VIEW_MODES", "NEIGHBOUR_MODE", "SALIENCY_CHOICES", "field_image"]

#: The view mode that compares the field with the fields of nearest illumination.
NEIGHBOUR_MODE = "Against neighbours"
#: The least top of the "Against neighbours" colour scale (a quarter of the field's amplitude).
DIFFERENCE_SCALE_FLOOR = 0.25
#: Every mode of the view, in menu order (keys P, A, F, D).
FIELD_VIEW_MODES = VIEW_MODES + (NEIGHBOUR_MODE,)

#: (label, engine method name or None)
SALIENCY_CHOICES = (("No overlay", None), ("Grad-CAM", "grad_cam"), ("Guided back-propagation", "guided_backprop"),
                    ("CAM", "cam"))


class FieldView(QWidget):
    """Phase / amplitude / log-spectrum of one field with µm (or cycles/µm) axes and a saliency overlay.

    Signals
    -------
    saliency_requested(str)
        The user chose a saliency method (engine name) that has no map yet for this field.
    difference_requested()
        The view shows "Against neighbours" and has no difference image yet for this field.
    """

    saliency_requested = Signal(str)
    difference_requested = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("fieldView")
        self.mode = QComboBox(self)
        self.mode.setObjectName("viewMode")
        self.mode.addItems(FIELD_VIEW_MODES)
        self.mode.setToolTip("What to show of the selected field (P / A / F / D keys); 'Against neighbours': how it "
                             "differs from what the other fields predict (0 = as predicted)")
        self.saliency = QComboBox(self)
        self.saliency.setObjectName("saliencyMethod")
        for label, _ in SALIENCY_CHOICES:
            self.saliency.addItem(label)
        self.saliency.setToolTip("Where the screening network looked (for the 'noisy' output)")
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("saliencyOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(60)
        self.opacity.setFixedWidth(110)
        self.opacity.setToolTip("Opacity of the saliency overlay")
        self.saliency_note = QLabel("", self)
        self.saliency_note.setObjectName("saliencyNote")
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.mode)
        top.addWidget(self.saliency)
        lbl = QLabel("Opacity", self)
        lbl.setObjectName("fieldLabel")
        top.addWidget(lbl)
        top.addWidget(self.opacity)
        top.addStretch(1)

        self.plot_widget = pg.PlotWidget(self)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(values=(-np.pi, np.pi), colorMap=pg.colormap.get("CET-L1"),
                                        interactive=False, width=12)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        # phases of a weak sample read 0.6 rad, not "600 (×0.001)"; positions read µm
        self.colorbar.axis.enableAutoSIPrefix(False)
        for side in ("bottom", "left"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.message = QLabel("Select a field.", self)
        self.message.setObjectName("hologramPlaceholder")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.plot_widget)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addLayout(top)
        lay.addWidget(self.stack, 1)
        lay.addWidget(self.saliency_note)

        self._field: Optional[np.ndarray] = None
        self._crop_origin: Optional[tuple[int, int]] = None
        self._px = 1.0
        self._maps: dict[str, np.ndarray] = {}
        self._difference: Optional[np.ndarray] = None
        self._difference_note = ""
        self._saliency_available = True
        self.mode.currentIndexChanged.connect(self._redraw)
        self.saliency.currentIndexChanged.connect(self._saliency_changed)
        self.opacity.valueChanged.connect(lambda v: self.overlay.setOpacity(v / 100.0))
        self.overlay.setOpacity(self.opacity.value() / 100.0)

    # ---------------------------------------------------------------- public API
    @property
    def field(self) -> Optional[np.ndarray]:
        return self._field

    @property
    def saliency_method(self) -> Optional[str]:
        return SALIENCY_CHOICES[self.saliency.currentIndex()][1]

    def set_saliency_available(self, available: bool, why: str = "") -> None:
        """Enable the overlay choice, or disable it with the reason shown (e.g. no model installed)."""
        self._saliency_available = bool(available)
        self.saliency.setEnabled(available)
        if not available:
            self.saliency.setCurrentIndex(0)
            self.saliency.setToolTip(why)
        self.saliency_note.setText("" if available else why)

    def set_field(self, field: np.ndarray, pixel_size_um: float, title: str = "",
                  crop_origin: Optional[tuple] = None) -> None:
        """Show a complex field (H, W) with pixel size in µm; forgets the previous field's saliency.
        ``crop_origin`` (y0, x0): where the network's crop starts (None: the centre crop)."""
        self._field = np.asarray(field)
        self._px = float(pixel_size_um)
        self._crop_origin = None if crop_origin is None else (int(crop_origin[0]), int(crop_origin[1]))
        self._maps = {}
        self._difference, self._difference_note = None, ""
        self.plot.setTitle(title)
        self.stack.setCurrentWidget(self.plot_widget)
        self._redraw()
        method = self.saliency_method
        if method is not None:
            self.saliency_requested.emit(method)

    def set_saliency(self, method: str, saliency_map: np.ndarray) -> None:
        """Give the map (crop, crop) in 0..1 of ``method`` for the field shown."""
        self._maps[method] = np.asarray(saliency_map, np.float32)
        self._draw_overlay()

    def set_difference(self, image: Optional[np.ndarray], why: str = "") -> None:
        """Give the field's difference from its neighbours (H, W), or None with the reason it has none."""
        self._difference = None if image is None else np.asarray(image, np.float32)
        self._difference_note = "" if image is not None else why
        if self.mode_name == NEIGHBOUR_MODE:
            self._redraw()

    @property
    def mode_name(self) -> str:
        return FIELD_VIEW_MODES[self.mode.currentIndex()]

    def show_message(self, text: str) -> None:
        self._field = None
        self._maps = {}
        self._difference = None
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    # ---------------------------------------------------------------- drawing
    def _redraw(self) -> None:
        f = self._field
        if f is None:
            return
        mode = self.mode_name
        self.saliency_note.setText(self._difference_note if mode == NEIGHBOUR_MODE else
                                   ("" if self._saliency_available else self.saliency.toolTip()))
        if mode == NEIGHBOUR_MODE and self._difference is None:
            if not self._difference_note:
                self.difference_requested.emit()
            img = np.zeros(f.shape, np.float32)  # until the difference arrives, or without one
        else:
            img = self._difference if mode == NEIGHBOUR_MODE else field_image(f, mode)
        h, w = img.shape
        if mode == "Log spectrum":
            dfx, dfy = 1.0 / (w * self._px), 1.0 / (h * self._px)
            rect = QRectF(-(w // 2) * dfx, -(h // 2) * dfy, w * dfx, h * dfy)
            self.plot.setLabel("bottom", "νx", units="cycles/µm")
            self.plot.setLabel("left", "νy", units="cycles/µm")
            lo, hi = np.percentile(img, (1, 99.9))
            cmap, label = pg.colormap.get("CET-L1"), "log10 |FFT|"
        else:
            rect = QRectF(-(w // 2) * self._px, -(h // 2) * self._px, w * self._px, h * self._px)
            self.plot.setLabel("bottom", "x (µm)")
            self.plot.setLabel("left", "y (µm)")
            if mode == "Phase":
                lo, hi = float(min(img.min(), -0.5)), float(max(img.max(), 0.5))
                cmap, label = pg.colormap.get("CET-L1"), "phase (rad)"
            elif mode == NEIGHBOUR_MODE:  # 0 (like the neighbours) dark, a defect bright; the scale reaches at least
                # DIFFERENCE_SCALE_FLOOR, so that a clean field's noise stays dim instead of filling the colours
                lo, hi = 0.0, float(max(np.percentile(img, 99.9), DIFFERENCE_SCALE_FLOOR))
                cmap, label = pg.colormap.get("inferno"), "|U − prediction| / |U|"
            else:
                lo, hi = np.percentile(img, (0.5, 99.5))
                cmap, label = pg.colormap.get("CET-L1"), "amplitude"
        if not hi > lo:
            hi = lo + 1.0
        self.image.setImage(img, autoLevels=False)
        self.image.setRect(rect)
        self.colorbar.setColorMap(cmap)
        self.colorbar.setLevels((float(lo), float(hi)))
        self.colorbar.axis.setLabel(label)
        self.plot.autoRange(padding=0.0)
        self._draw_overlay()

    def _saliency_changed(self) -> None:
        method = self.saliency_method
        if method is not None and self._field is not None and method not in self._maps:
            self.saliency_requested.emit(method)
        self._draw_overlay()

    def _draw_overlay(self) -> None:
        method = self.saliency_method
        mode = self.mode_name
        m = self._maps.get(method) if method else None
        if m is None or self._field is None or mode in ("Log spectrum", NEIGHBOUR_MODE):
            self.overlay.clear()
            self.overlay.setVisible(False)
            return
        rgba = pg.colormap.get("inferno").map(m.ravel(), mode="byte").reshape(m.shape + (4,))
        rgba[..., 3] = np.clip(m * 255.0 * 1.2, 0, 255).astype(np.uint8)
        h, w = self._field.shape
        c = m.shape[0]
        if h < c or w < c:  # the network saw the field zero-padded to the crop: keep the field's part
            y0, x0 = max(c // 2 - h // 2, 0), max(c // 2 - w // 2, 0)
            rgba = rgba[y0:y0 + min(h, c), x0:x0 + min(w, c)]
        c_y, c_x = rgba.shape[:2]
        px = self._px
        # first field pixel of the crop, relative to the image centre (pixel n//2 sits at 0)
        if self._crop_origin is not None and h >= c and w >= c:
            off_y, off_x = self._crop_origin[0] - h // 2, self._crop_origin[1] - w // 2
        else:
            off_y, off_x = -(c_y // 2), -(c_x // 2)
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.overlay.setRect(QRectF(off_x * px, off_y * px, c_x * px, c_y * px))
        self.overlay.setVisible(True)
