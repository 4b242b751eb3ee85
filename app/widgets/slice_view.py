"""Linked orthogonal slice views (xy, xz, yz) of a refractive-index volume, in µm.

Conventions (``docs/formats.md``): volumes are (z, y, x) NumPy arrays; voxel ``j`` of an axis
of ``n`` voxels sits at ``origin + j·d`` (``origin = −(n//2)·d`` for the program's own
tomograms, so x = y = z = 0 at index n//2); lengths in µm; values are refractive indices.

Layout: the xy slice top left (x right, y down, as cameras show it), the yz slice to its right
(z right, sharing the y axis), the xz slice below it (x right, z up, sharing the x axis), and a
colour bar (RI) on the right. Every image is placed with its voxel size, and every plot has its
aspect ratio locked, so anisotropic voxels look right. A crosshair (the current voxel) is drawn
in all three views: click anywhere or drag a crosshair line to move it; the other views follow.
Moving the mouse shows the position (µm) and the refractive index under the cursor.
An optional overlay (:meth:`OrthoSliceView.set_overlay`: an integer volume such as object labels,
one RGBA colour per value) is drawn over the slices and follows the crosshair and MIP mode.

The widget does no science: slices and maximum-intensity projections are NumPy indexing and
``max``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

import pyqtgraph as pg

from ..logic.display import sample_voxel

__all__ = ["OrthoSliceView", "VIEW_AXES", "DEFAULT_COLORMAP", "sample_voxel"]

#: For each view: (horizontal axis, vertical axis) as volume axis names.
VIEW_AXES = {"xy": ("x", "y"), "xz": ("x", "z"), "yz": ("z", "y")}
_AXIS = {"z": 0, "y": 1, "x": 2}
DEFAULT_COLORMAP = "inferno"
_CROSS_PEN = pg.mkPen("#4aa3df", width=1)
_CROSS_HOVER = pg.mkPen("#9fd3ff", width=2)


#: width (px) of every slice view's left axis: room for labels like "-12.5" and the axis title
AXIS_WIDTH_PX = 46


def _fmt_n(v: float) -> str:
    return f"{v:.4f}"


class OrthoSliceView(QWidget):
    """Three orthogonal slices (or maximum-intensity projections) with a shared crosshair.

    Parameters
    ----------
    title : str
        Shown above the views (e.g. "Raw" or "TV-regularised").
    show_colorbar : bool
        Draw the RI colour bar at the right.

    Signals
    -------
    crosshair_moved(int, int, int)
        The crosshair's voxel (z, y, x) changed (by the user or by :meth:`set_crosshair`).
    cursor_moved(object)
        ``(z_um, y_um, x_um, n)`` under the mouse, or None when it left the images.
    levels_changed(float, float)
        The colour range (RI) changed (:meth:`set_levels`).
    """

    crosshair_moved = Signal(int, int, int)
    cursor_moved = Signal(object)
    levels_changed = Signal(float, float)

    def __init__(self, title: str = "", show_colorbar: bool = True, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("orthoSliceView")
        self.volume: Optional[np.ndarray] = None
        self.voxel_size_um = (1.0, 1.0, 1.0)
        self.origin_um = (0.0, 0.0, 0.0)
        self.medium_index: Optional[float] = None
        self._cross = [0, 0, 0]
        self._mip = False
        self._mips: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._updating = False
        self._levels = (0.0, 1.0)
        self._overlay: Optional[np.ndarray] = None  # (Z, Y, X) ints drawn over the slices
        self._overlay_colors = np.zeros((1, 4), np.uint8)  # value -> RGBA
        self._overlay_mips: Optional[dict[str, np.ndarray]] = None

        self.title = QLabel(title, self)
        self.title.setObjectName("sectionTitle")
        self.title.setVisible(bool(title))
        self.glw = pg.GraphicsLayoutWidget(self)
        self.glw.setBackground("k")
        self.glw.ci.setContentsMargins(2, 2, 2, 2)
        self.glw.ci.setSpacing(4)
        self.plots: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.lines: dict[str, tuple[pg.InfiniteLine, pg.InfiniteLine]] = {}
        self.overlays: dict[str, pg.ImageItem] = {}
        for name, (row, col) in {"xy": (0, 0), "yz": (0, 1), "xz": (1, 0)}.items():
            self._add_plane(name, row, col)
        self.colorbar: Optional[pg.ColorBarItem] = None
        if show_colorbar:
            self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(DEFAULT_COLORMAP),
                                            label=None, interactive=False, width=16, rounding=1e-4)
            self.colorbar.axis.setWidth(62)  # tick values and the label beside them
            self.colorbar.axis.setLabel("n (RI)")
            self.colorbar.setImageItem(list(self.images.values()))
            self.glw.addItem(self.colorbar, row=0, col=2, rowspan=2)
        else:
            cmap = pg.colormap.get(DEFAULT_COLORMAP)
            for img in self.images.values():
                img.setColorMap(cmap)
        self.glw.scene().sigMouseMoved.connect(self._mouse_moved)
        self.glw.scene().sigMouseClicked.connect(self._mouse_clicked)

        self.readout = QLabel("", self)
        self.readout.setObjectName("sliceReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cursor_label = QLabel("", self)
        self.cursor_label.setObjectName("cursorReadout")
        for lbl in (self.title, self.readout, self.cursor_label):
            # long readouts must not widen the window: they are clipped, not laid out
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.glw, 1)
        lay.addWidget(self.readout)
        lay.addWidget(self.cursor_label)
        self._set_stretch()

    def _add_plane(self, name: str, row: int, col: int) -> None:
        """One slice plot at (row, col) of the layout: image, label overlay, movable crosshair lines."""
        h, v = VIEW_AXES[name]
        p = self.glw.addPlot(row=row, col=col)
        p.setMenuEnabled(False)
        p.hideButtons()
        p.setAspectLocked(True)
        p.setLabel("bottom", h, units="µm")
        p.setLabel("left", v, units="µm")
        for side in ("bottom", "left"):  # never "mµm" or "kµm": positions read in µm
            p.getAxis(side).enableAutoSIPrefix(False)
        # a fixed axis width: with the aspect locked, tick labels that change width as the range
        # changes would re-layout the plot, change the range again, and so on without end (a
        # flat volume's short xz view did: hundreds of layouts a second)
        p.getAxis("left").setWidth(AXIS_WIDTH_PX)
        p.setRange(xRange=(-5.0, 5.0), yRange=(-5.0, 5.0), padding=0.0)  # empty: a plain ±5 µm
        p.setTitle(f"<span style='color:#8b929c'>{name}</span>", size="9pt")
        if v == "y":
            p.invertY(True)  # row 0 at the top, as cameras show it
        img = pg.ImageItem(axisOrder="row-major")
        p.addItem(img)
        ov = pg.ImageItem(axisOrder="row-major")
        ov.setZValue(5)  # above the slice, below the crosshair
        ov.setVisible(False)
        p.addItem(ov)
        self.overlays[name] = ov
        vline = pg.InfiniteLine(angle=90, movable=True, pen=_CROSS_PEN, hoverPen=_CROSS_HOVER)
        hline = pg.InfiniteLine(angle=0, movable=True, pen=_CROSS_PEN, hoverPen=_CROSS_HOVER)
        for ln, axis in ((vline, h), (hline, v)):
            ln.setZValue(10)
            ln.sigPositionChanged.connect(lambda line, a=axis: self._line_moved(a, line))
            p.addItem(ln, ignoreBounds=True)
        self.plots[name], self.images[name], self.lines[name] = p, img, (vline, hline)

    # ------------------------------------------------------------------ data
    def set_volume(self, volume: np.ndarray, voxel_size_um: tuple[float, float, float],
                   origin_um: Optional[tuple[float, float, float]] = None,
                   medium_index: Optional[float] = None, keep_crosshair: bool = True,
                   auto_range: bool = True) -> None:
        """Show ``volume`` (Z, Y, X) of refractive index with voxel size (dz, dy, dx) µm.

        ``origin_um`` is the position of voxel (0, 0, 0) (default: the FFT-centre convention).
        The crosshair keeps its voxel when the shape is unchanged (``keep_crosshair``), else it
        goes to the sample (:func:`sample_voxel`: the largest object, not the empty centre).
        """
        vol = np.asarray(volume)
        if vol.ndim != 3:
            raise ValueError(f"expected a (Z, Y, X) volume, got shape {vol.shape}")
        if not np.issubdtype(vol.dtype, np.floating):
            vol = vol.astype(np.float32)
        same = self.volume is not None and self.volume.shape == vol.shape
        self.volume = vol
        self.voxel_size_um = tuple(float(d) for d in voxel_size_um)  # type: ignore[assignment]
        self.origin_um = tuple(float(o) for o in origin_um) if origin_um is not None else \
            tuple(-(n // 2) * d for n, d in zip(vol.shape, self.voxel_size_um))  # type: ignore[assignment]
        self.medium_index = medium_index
        self._mips = None
        if not (same and keep_crosshair):
            self._cross = list(sample_voxel(vol))
        self._refresh_images()
        self._place_images()  # after the images: setRect scales by the image's size in pixels
        self._set_stretch()
        self._refresh_lines()
        if auto_range:
            for p in self.plots.values():
                p.autoRange(padding=0.0)
        self._update_readout()

    def clear(self) -> None:
        self.volume = None
        self._mips = None
        for img in self.images.values():
            img.clear()
        self.readout.setText("")
        self.cursor_label.setText("")

    def go_to_sample(self) -> None:
        """Move the crosshair onto the sample (:func:`sample_voxel`)."""
        if self.volume is not None:
            self.set_crosshair(*sample_voxel(self.volume))

    def set_title(self, text: str) -> None:
        self.title.setText(text)
        self.title.setVisible(bool(text))

    # ------------------------------------------------------------------ geometry
    def coordinates_um(self, axis: str) -> np.ndarray:
        """Voxel-centre coordinates (µm) along ``axis`` ("z", "y" or "x")."""
        a = _AXIS[axis]
        n = self.volume.shape[a] if self.volume is not None else 0
        return self.origin_um[a] + self.voxel_size_um[a] * np.arange(n)

    def index_of(self, axis: str, position_um: float) -> int:
        """Nearest voxel index along ``axis`` for a position in µm (clipped to the volume)."""
        a = _AXIS[axis]
        n = self.volume.shape[a] if self.volume is not None else 1
        j = int(round((position_um - self.origin_um[a]) / self.voxel_size_um[a]))
        return int(min(max(j, 0), n - 1))

    def position_um(self, axis: str, index: int) -> float:
        a = _AXIS[axis]
        return self.origin_um[a] + self.voxel_size_um[a] * index

    def _extent(self, axis: str) -> tuple[float, float]:
        """(start, length) in µm of the pixel edges along ``axis``."""
        a = _AXIS[axis]
        n = self.volume.shape[a] if self.volume is not None else 1
        d = self.voxel_size_um[a]
        return self.origin_um[a] - d / 2, n * d

    def _place_images(self) -> None:
        for name, img in self.images.items():
            h, v = VIEW_AXES[name]
            (h0, hl), (v0, vl) = self._extent(h), self._extent(v)
            img.setRect(QRectF(h0, v0, hl, vl))
            self.overlays[name].setRect(QRectF(h0, v0, hl, vl))

    def _set_stretch(self) -> None:
        """Give each row and column room in proportion to its physical extent (µm)."""
        if self.volume is None:
            ext = {"z": 1.0, "y": 2.0, "x": 2.0}
        else:
            ext = {a: self._extent(a)[1] for a in "zyx"}
        lay = self.glw.ci.layout
        scale = 100.0 / max(ext.values())
        lay.setColumnStretchFactor(0, max(1, int(ext["x"] * scale)))
        lay.setColumnStretchFactor(1, max(1, int(ext["z"] * scale)))
        lay.setRowStretchFactor(0, max(1, int(ext["y"] * scale)))
        lay.setRowStretchFactor(1, max(1, int(ext["z"] * scale)))

    # ------------------------------------------------------------------ display
    @property
    def mip(self) -> bool:
        """True when the views show maximum-intensity projections instead of slices."""
        return self._mip

    def set_mip(self, on: bool) -> None:
        """Show maximum-intensity projections along z, y and x (True) or slices (False)."""
        self._mip = bool(on)
        for name, p in self.plots.items():
            p.setTitle(f"<span style='color:#8b929c'>{name}{' MIP' if on else ''}</span>", size="9pt")
        self._refresh_images()

    def view_image(self, name: str) -> Optional[np.ndarray]:
        """The 2-D array shown in view ``name`` ("xy", "xz", "yz"), rows = vertical axis."""
        vol = self.volume
        if vol is None:
            return None
        z, y, x = self._cross
        if self._mip:
            if self._mips is None:
                self._mips = (vol.max(axis=0), vol.max(axis=1), vol.max(axis=2).T)
            return {"xy": self._mips[0], "xz": self._mips[1], "yz": self._mips[2]}[name]
        return {"xy": vol[z], "xz": vol[:, y, :], "yz": vol[:, :, x].T}[name]

    def _refresh_images(self, which: tuple[str, ...] = ("xy", "xz", "yz")) -> None:
        if self.volume is None:
            return
        lo, hi = self.levels()
        for name in which:
            self.images[name].setImage(self.view_image(name), autoLevels=False, levels=(lo, hi))
        self._refresh_overlay(which)

    # ------------------------------------------------------------------ overlay
    @property
    def overlay(self) -> Optional[np.ndarray]:
        """The integer (Z, Y, X) volume drawn over the slices, or None."""
        return self._overlay

    def set_overlay(self, values: Optional[np.ndarray], colors: Optional[np.ndarray] = None) -> None:
        """Draw ``values`` (Z, Y, X) integers ≥ 0, e.g. object labels, over the slices, value v in
        ``colors[v]`` (RGBA uint8, shape (K + 1, 4); alpha 0 = not drawn). None removes the overlay.

        In MIP mode the overlay shows the largest value along the projected axis.
        """
        self._overlay = None if values is None else np.asarray(values)
        if colors is not None:
            self._overlay_colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 4)
        self._overlay_mips = None
        self._refresh_overlay(("xy", "xz", "yz"))

    def overlay_value_at(self, z: int, y: int, x: int) -> int:
        """The overlay's value at voxel (z, y, x) (0 without an overlay)."""
        ov = self._overlay
        if ov is None or self.volume is None or ov.shape != self.volume.shape:
            return 0
        return int(ov[z, y, x])

    def overlay_image(self, name: str) -> Optional[np.ndarray]:
        """The 2-D overlay values shown in view ``name`` (as :meth:`view_image`), or None."""
        ov = self._overlay
        if ov is None or self.volume is None or ov.shape != self.volume.shape:
            return None
        if self._mip:
            if self._overlay_mips is None:
                self._overlay_mips = {"xy": ov.max(axis=0), "xz": ov.max(axis=1), "yz": ov.max(axis=2).T}
            return self._overlay_mips[name]
        z, y, x = self._cross
        return {"xy": ov[z], "xz": ov[:, y, :], "yz": ov[:, :, x].T}[name]

    def _refresh_overlay(self, which: tuple[str, ...]) -> None:
        colors = self._overlay_colors
        for name in which:
            img = self.overlay_image(name)
            item = self.overlays[name]
            if img is None:
                item.setVisible(False)
                continue
            rgba = colors[np.clip(img, 0, len(colors) - 1)]
            item.setImage(np.ascontiguousarray(rgba), autoLevels=False, levels=(0, 255))
            h, v = VIEW_AXES[name]
            (h0, hl), (v0, vl) = self._extent(h), self._extent(v)
            item.setRect(QRectF(h0, v0, hl, vl))  # after setImage: the rect scales by its size in pixels
            item.setVisible(True)

    def levels(self) -> tuple[float, float]:
        """The colour range (RI): values ≤ low are drawn darkest, ≥ high brightest."""
        if self.colorbar is not None:
            lo, hi = self.colorbar.levels()
            return float(lo), float(hi)
        return self._levels

    def set_levels(self, low: float, high: float) -> None:
        """Set the colour range in RI (e.g. ``n_m`` .. ``n_m + Δn``)."""
        low, high = float(low), float(high)
        if high <= low:
            high = low + 1e-4
        changed = (low, high) != self.levels()
        self._levels = (low, high)
        if self.colorbar is not None:
            self.colorbar.setLevels((low, high))
        else:
            for img in self.images.values():
                img.setLevels((low, high))
        if changed:
            self.levels_changed.emit(low, high)

    def set_colorbar_label(self, text: str) -> None:
        if self.colorbar is not None:
            self.colorbar.axis.setLabel(text)

    # ------------------------------------------------------------------ crosshair
    @property
    def crosshair(self) -> tuple[int, int, int]:
        """The crosshair voxel (z, y, x)."""
        return tuple(self._cross)  # type: ignore[return-value]

    @property
    def crosshair_um(self) -> tuple[float, float, float]:
        """The crosshair position (z, y, x) in µm."""
        return tuple(self.position_um(a, self._cross[_AXIS[a]]) for a in "zyx")  # type: ignore[return-value]

    def value_at(self, z: int, y: int, x: int) -> float:
        """Refractive index of voxel (z, y, x)."""
        if self.volume is None:
            raise ValueError("no volume shown")
        return float(self.volume[z, y, x])

    def crosshair_value(self) -> Optional[float]:
        return None if self.volume is None else self.value_at(*self._cross)

    def set_crosshair(self, z: int, y: int, x: int) -> None:
        """Move the crosshair to voxel (z, y, x) (clipped to the volume) in all three views."""
        if self.volume is None:
            self._cross = [int(z), int(y), int(x)]
            return
        new = [int(min(max(int(v), 0), n - 1)) for v, n in zip((z, y, x), self.volume.shape)]
        if new == self._cross:
            return
        changed = [a for a in "zyx" if new[_AXIS[a]] != self._cross[_AXIS[a]]]
        self._cross = new
        if not self._mip:
            # only the views cutting through a changed axis need a new slice
            views = tuple(v for v, cut in (("xy", "z"), ("xz", "y"), ("yz", "x")) if cut in changed)
            self._refresh_images(views)
        self._refresh_lines()
        self._update_readout()
        self.crosshair_moved.emit(*self._cross)

    def go_to_maximum(self) -> None:
        """Move the crosshair to the voxel of highest refractive index."""
        if self.volume is not None:
            self.set_crosshair(*np.unravel_index(int(np.argmax(self.volume)), self.volume.shape))

    def _refresh_lines(self) -> None:
        self._updating = True
        try:
            for name, (vline, hline) in self.lines.items():
                h, v = VIEW_AXES[name]
                vline.setPos(self.position_um(h, self._cross[_AXIS[h]]))
                hline.setPos(self.position_um(v, self._cross[_AXIS[v]]))
        finally:
            self._updating = False

    def _line_moved(self, axis: str, line: pg.InfiniteLine) -> None:
        if self._updating or self.volume is None:
            return
        new = list(self._cross)
        new[_AXIS[axis]] = self.index_of(axis, float(line.value()))
        if new == self._cross:
            self._refresh_lines()  # snap the line to the voxel centre
            return
        self.set_crosshair(*new)

    def _view_at(self, scene_pos: QPointF) -> Optional[tuple[str, float, float]]:
        """(view name, horizontal µm, vertical µm) under a scene position, or None."""
        for name, p in self.plots.items():
            if p.vb.sceneBoundingRect().contains(scene_pos):
                pt = p.vb.mapSceneToView(scene_pos)
                return name, float(pt.x()), float(pt.y())
        return None

    def _voxel_from_view(self, name: str, hpos: float, vpos: float) -> list[int]:
        h, v = VIEW_AXES[name]
        new = list(self._cross)
        new[_AXIS[h]] = self.index_of(h, hpos)
        new[_AXIS[v]] = self.index_of(v, vpos)
        return new

    def _mouse_clicked(self, event) -> None:  # noqa: ANN001 - pyqtgraph event
        if self.volume is None or event.button() != Qt.MouseButton.LeftButton:
            return
        hit = self._view_at(event.scenePos())
        if hit is None:
            return
        self.set_crosshair(*self._voxel_from_view(*hit))

    def click_view(self, name: str, h_um: float, v_um: float) -> None:
        """What a left click at (horizontal, vertical) µm in view ``name`` does (for tests and keys)."""
        self.set_crosshair(*self._voxel_from_view(name, h_um, v_um))

    # ------------------------------------------------------------------ readout
    def describe_voxel(self, z: int, y: int, x: int) -> str:
        """``x …  y …  z … µm   n = …  (Δn …)`` for voxel (z, y, x) (positions in µm, n in RI)."""
        zu, yu, xu = (self.position_um(a, i) for a, i in zip("zyx", (z, y, x)))
        n = self.value_at(z, y, x)
        text = f"x {xu:+.2f}  y {yu:+.2f}  z {zu:+.2f} µm   n = {_fmt_n(n)}"
        if self.medium_index is not None:
            text += f"  (Δn {n - self.medium_index:+.4f})"
        return text

    def _update_readout(self) -> None:
        if self.volume is None:
            self.readout.setText("")
            return
        self.readout.setText("Crosshair:  " + self.describe_voxel(*self._cross))

    def cursor_at(self, name: str, h_um: float, v_um: float) -> Optional[tuple[float, float, float, float]]:
        """(z, y, x µm, n) of the voxel under (h, v) µm in view ``name``; None outside the image.

        In MIP mode, n is the projection's value (the maximum along the projected axis).
        """
        if self.volume is None:
            return None
        h, v = VIEW_AXES[name]
        for axis, pos in ((h, h_um), (v, v_um)):
            s, length = self._extent(axis)
            if not s <= pos < s + length:
                return None
        vox = self._voxel_from_view(name, h_um, v_um)
        if self._mip:
            img = self.view_image(name)
            n = float(img[vox[_AXIS[v]], vox[_AXIS[h]]])
        else:
            n = self.value_at(*vox)
        zu, yu, xu = (self.position_um(a, vox[_AXIS[a]]) for a in "zyx")
        return zu, yu, xu, n

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        hit = self._view_at(scene_pos)
        info = self.cursor_at(*hit) if hit is not None else None
        if info is None:
            self.cursor_label.setText("")
        else:
            zu, yu, xu, n = info
            mode = " (max)" if self._mip else ""
            self.cursor_label.setText(
                f"Cursor:  x {xu:+.2f}  y {yu:+.2f}  z {zu:+.2f} µm   n{mode} = {_fmt_n(n)}")
        self.cursor_moved.emit(info)

    # ------------------------------------------------------------------ profile
    def profile(self, axis: str) -> tuple[np.ndarray, np.ndarray]:
        """Refractive index along the crosshair line parallel to ``axis``: (positions µm, n)."""
        if self.volume is None:
            return np.zeros(0), np.zeros(0)
        z, y, x = self._cross
        line = {"x": self.volume[z, y, :], "y": self.volume[z, :, x], "z": self.volume[:, y, x]}[axis]
        return self.coordinates_um(axis), np.asarray(line, dtype=np.float64)
