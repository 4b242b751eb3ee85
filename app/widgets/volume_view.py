"""Embedded VTK 3-D view of a scalar volume: volume rendering, an iso-surface, director glyphs.

Conventions (``docs/formats.md``): volumes are (z, y, x) NumPy arrays with voxel ``j`` of an
axis at ``origin + j·d`` (µm); directors are (Z, Y, X, 3) unit axes in (z, y, x) components.
In VTK the world axes are (x, y, z) in µm: the C-ordered (z, y, x) array is exactly VTK's
x-fastest point order, so it is handed over without a copy of the layout, with spacing
(dx, dy, dz) and origin (x0, y0, z0).

The view is a ``QVTKRenderWindowInteractor`` (``vtkmodules.qt``). Where VTK cannot create an
OpenGL context (no GPU driver, no OSMesa, a broken EGL), or when ``ODT_STUDIO_NO_VTK=1`` is set,
the widget shows a plain message instead of the view and every method becomes a no-op: the
rest of the application keeps working. Under Qt's offscreen platform VTK's default (EGL) window
renders garbage silently, so there the view uses OSMesa (``vtkOSOpenGLRenderWindow``) or, when
libOSMesa is missing, shows the message.

What is drawn (each part can be switched on and off):

* volume rendering (``vtkGPUVolumeRayCastMapper``; software OpenGL is fine) with a colour map
  and an opacity ramp from the iso threshold to the maximum;
* an iso-surface (``vtkFlyingEdges3D``) at a threshold;
* director glyphs: line segments (or thin tubes, ``vtkTubeFilter``) centred on subsampled voxels,
  coloured by their azimuth in the xy plane with the cyclic map of
  :func:`engine.birefringence.director.cyclic_colours`;
* a bounding box, and orientation axes (``vtkOrientationMarkerWidget``).

References
----------
VTK User's Guide, 11th ed. (Kitware, 2010), ch. 7 "Volume rendering".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget

import pyqtgraph as pg

from engine.birefringence.director import cyclic_colours

from ..logic.display import director_glyph_segments

__all__ = ["VolumeView", "vtk_disabled", "director_glyph_segments"]

log = logging.getLogger(__name__)

NO_VTK_ENV = "ODT_STUDIO_NO_VTK"


def vtk_disabled() -> bool:
    """True when the user asked for no 3-D view (environment ``ODT_STUDIO_NO_VTK=1``)."""
    return os.environ.get(NO_VTK_ENV, "").strip() not in ("", "0")


def _prefer_osmesa_offscreen() -> None:
    """Under Qt's offscreen platform VTK's default (EGL) window renders garbage without an error
    (``shared/ENVIRONMENT.md``): use OSMesa there, or refuse when OSMesa is missing."""
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() != "offscreen" or os.environ.get("VTK_DEFAULT_OPENGL_WINDOW"):
        return
    import ctypes.util

    if ctypes.util.find_library("OSMesa") is None:
        raise RuntimeError("Qt runs offscreen and libOSMesa is not installed")
    os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkOSOpenGLRenderWindow"


def _lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) float RGB 0..1 of a pyqtgraph colour map."""
    cmap = pg.colormap.get(name)
    return np.asarray(cmap.getLookupTable(0.0, 1.0, n, alpha=False), dtype=np.float64)[:, :3] / 255.0


class VolumeView(QWidget):
    """A VTK render window in the tab, or a message where VTK cannot render.

    Parameters
    ----------
    parent : QWidget, optional

    Attributes
    ----------
    available : bool
        False when the 3-D view could not be created (then :attr:`message` says why).
    renderer, render_window
        The VTK objects (None when unavailable).
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("volumeView")
        self.available = False
        self.renderer = None
        self.render_window = None
        self.vtk_widget = None
        self._image = None
        self._parts: dict[str, object] = {}
        self._range = (0.0, 1.0)
        self._threshold = 0.5
        self._colormap = "viridis"
        self._opacity = 0.3
        self._surface_opacity = 0.5
        self._glyph_tubes = False
        self._glyph_data: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._axes_widget = None
        self.message = QLabel("", self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setObjectName("placeholder")
        self._stack = QStackedLayout(self)
        self._stack.setContentsMargins(0, 0, 0, 0)
        self._stack.addWidget(self.message)
        if vtk_disabled():
            self._fail(f"The 3-D view is switched off ({NO_VTK_ENV} is set).")
            return
        try:
            self._build()
        except Exception as exc:  # noqa: BLE001 - any OpenGL/VTK failure: show a message instead
            log.warning("3-D view unavailable: %s", exc, exc_info=True)
            self._fail(f"The 3-D view is not available on this computer (no usable OpenGL): {exc}")

    # ------------------------------------------------------------------ construction
    def _fail(self, text: str) -> None:
        self.available = False
        self.message.setText(text)
        self._stack.setCurrentWidget(self.message)

    def _build(self) -> None:
        from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
        from vtkmodules.vtkRenderingCore import vtkRenderer
        # imported for their side effects (they all bind the name `vtkmodules`, so only the
        # last one counts as unused):
        import vtkmodules.vtkRenderingOpenGL2  # registers the OpenGL factories
        import vtkmodules.vtkRenderingVolumeOpenGL2
        import vtkmodules.vtkInteractionStyle
        import vtkmodules.vtkRenderingFreeType  # noqa: F401 - axis labels

        _prefer_osmesa_offscreen()
        widget = QVTKRenderWindowInteractor(self)
        rw = widget.GetRenderWindow()
        if rw is None:
            raise RuntimeError("VTK created no render window")
        if hasattr(rw, "SupportsOpenGL") and not rw.SupportsOpenGL():
            widget.setParent(None)
            widget.deleteLater()
            raise RuntimeError(f"{rw.GetClassName()} reports no OpenGL support")
        ren = vtkRenderer()
        ren.SetBackground(0.07, 0.08, 0.10)
        ren.SetBackground2(0.16, 0.18, 0.22)
        ren.GradientBackgroundOn()
        rw.AddRenderer(ren)
        self.vtk_widget, self.render_window, self.renderer = widget, rw, ren
        self._stack.addWidget(widget)
        self._stack.setCurrentWidget(widget)
        self.available = True
        self.message.setText("")
        self._add_orientation_axes()

    def _add_orientation_axes(self) -> None:
        from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
        from vtkmodules.vtkRenderingAnnotation import vtkAxesActor

        axes = vtkAxesActor()
        axes.SetTotalLength(1.0, 1.0, 1.0)
        for cap in (axes.GetXAxisCaptionActor2D(), axes.GetYAxisCaptionActor2D(), axes.GetZAxisCaptionActor2D()):
            cap.GetCaptionTextProperty().SetFontSize(14)
        w = vtkOrientationMarkerWidget()
        w.SetOrientationMarker(axes)
        w.SetInteractor(self.vtk_widget)
        w.SetViewport(0.0, 0.0, 0.2, 0.2)
        w.SetEnabled(1)
        w.InteractiveOff()
        self._axes_widget = w

    # ------------------------------------------------------------------ data
    def set_volume(self, volume: np.ndarray, voxel_size_um: Sequence[float], origin_um: Sequence[float],
                   director: Optional[np.ndarray] = None, *, threshold: Optional[float] = None,
                   glyph_step: int = 4, reset_camera: bool = True) -> None:
        """Show ``volume`` (Z, Y, X) with voxel size and origin (z, y, x) µm.

        ``director`` (Z, Y, X, 3), if given, is drawn as glyphs where ``|volume| >= threshold``
        (so pass Δn as the volume). ``threshold`` defaults to half the maximum.
        """
        if not self.available:
            return
        from vtkmodules.util.numpy_support import numpy_to_vtk
        from vtkmodules.vtkCommonDataModel import vtkImageData

        vol = np.ascontiguousarray(volume, dtype=np.float32)
        if vol.ndim != 3:
            raise ValueError(f"expected a (Z, Y, X) volume, got shape {vol.shape}")
        img = vtkImageData()
        img.SetDimensions(vol.shape[2], vol.shape[1], vol.shape[0])
        dz, dy, dx = (float(v) for v in voxel_size_um)
        z0, y0, x0 = (float(v) for v in origin_um)
        img.SetSpacing(dx, dy, dz)
        img.SetOrigin(x0, y0, z0)
        arr = numpy_to_vtk(vol.ravel(), deep=True)
        arr.SetName("values")
        img.GetPointData().SetScalars(arr)
        self._image = img
        self._volume = vol
        self._geometry = (tuple(voxel_size_um), tuple(origin_um))
        finite = vol[np.isfinite(vol)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-6
        self._range = (lo, hi)
        self._threshold = float(threshold) if threshold is not None else lo + 0.5 * (hi - lo)
        self._director = None if director is None else np.asarray(director, dtype=np.float32)
        self._glyph_step = int(glyph_step)
        self._rebuild(reset_camera)

    def clear(self) -> None:
        if not self.available:
            return
        for actor in self._parts.values():
            self._remove(actor)
        self._parts.clear()
        self._image = None
        self.render()

    def _remove(self, prop) -> None:  # noqa: ANN001 - a vtkProp
        if prop.IsA("vtkVolume"):
            self.renderer.RemoveVolume(prop)
        else:
            self.renderer.RemoveActor(prop)

    def _rebuild(self, reset_camera: bool = False) -> None:
        shown = {k: (v.GetVisibility() if v is not None else 1) for k, v in self._parts.items()}
        for actor in self._parts.values():
            self._remove(actor)
        self._parts = {}
        if self._image is None:
            return
        self._parts["volume"] = self._make_volume()
        self.renderer.AddVolume(self._parts["volume"])
        self._parts["surface"] = self._make_surface()
        self.renderer.AddActor(self._parts["surface"])
        self._parts["outline"] = self._make_outline()
        self.renderer.AddActor(self._parts["outline"])
        glyphs = self._make_glyphs()
        if glyphs is not None:
            self._parts["glyphs"] = glyphs
            self.renderer.AddActor(glyphs)
        for k, vis in shown.items():
            if k in self._parts:
                self._parts[k].SetVisibility(vis)
        if reset_camera:
            self.reset_view()
        else:
            self.render()

    def _make_volume(self):
        from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolume, vtkVolumeProperty
        from vtkmodules.vtkRenderingVolume import vtkGPUVolumeRayCastMapper

        lo, hi = self._range
        ctf = vtkColorTransferFunction()
        lut = _lut(self._colormap, 32)
        for i, rgb in enumerate(lut):
            ctf.AddRGBPoint(lo + (hi - lo) * i / (len(lut) - 1), *rgb)
        prop = vtkVolumeProperty()
        prop.SetColor(ctf)
        prop.SetScalarOpacity(self._opacity_function())
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOff()
        mapper = vtkGPUVolumeRayCastMapper()
        mapper.SetInputData(self._image)
        vol = vtkVolume()
        vol.SetMapper(mapper)
        vol.SetProperty(prop)
        return vol

    def _opacity_function(self):
        """Opacity ramp: transparent below half the threshold, ``opacity`` at the maximum."""
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction

        lo, hi = self._range
        t = min(max(self._threshold, lo), hi)
        otf = vtkPiecewiseFunction()
        otf.AddPoint(lo, 0.0)
        if t > lo:
            otf.AddPoint(lo + 0.5 * (t - lo), 0.0)
        otf.AddPoint(t, 0.25 * self._opacity)
        otf.AddPoint(hi, self._opacity)
        return otf

    def _surface_colour(self) -> np.ndarray:
        lo, hi = self._range
        frac = (self._threshold - lo) / (hi - lo)
        return _lut(self._colormap, 256)[int(np.clip(frac, 0, 1) * 255)]

    def _update_threshold_parts(self) -> None:
        """After a threshold or opacity change: update the parts in place (no new mappers)."""
        if "volume" not in self._parts:
            return self._rebuild()
        self._parts["volume"].GetProperty().SetScalarOpacity(self._opacity_function())
        self._iso_filter.SetValue(0, self._threshold)
        surf = self._parts["surface"].GetProperty()
        surf.SetColor(*self._surface_colour())
        surf.SetOpacity(self._surface_opacity)
        old = self._parts.pop("glyphs", None)
        if old is not None:
            self.renderer.RemoveActor(old)
        glyphs = self._make_glyphs()
        if glyphs is not None:
            glyphs.SetVisibility(old.GetVisibility() if old is not None else 1)
            self._parts["glyphs"] = glyphs
            self.renderer.AddActor(glyphs)
        self.render()

    def _make_surface(self):
        from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        iso = vtkFlyingEdges3D()
        iso.SetInputData(self._image)
        iso.SetValue(0, self._threshold)
        iso.ComputeNormalsOn()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(iso.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*self._surface_colour())
        actor.GetProperty().SetOpacity(self._surface_opacity)
        actor.GetProperty().SetSpecular(0.3)
        self._iso_filter = iso
        return actor

    def _make_outline(self):
        from vtkmodules.vtkFiltersSources import vtkOutlineSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        f = vtkOutlineSource()  # the box of the voxel centres
        f.SetBounds(*self._image.GetBounds())
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(f.GetOutputPort())
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.55, 0.57, 0.61)
        return actor

    def _make_glyphs(self):
        if self._director is None:
            self._glyph_data = None
            return None
        from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
        from vtkmodules.vtkFiltersCore import vtkTubeFilter
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        vox, org = self._geometry
        seg, azimuth = director_glyph_segments(self._director, self._volume, self._glyph_step,
                                               self._threshold, vox, org)
        self._glyph_data = (seg, azimuth)
        m = seg.shape[0]
        pts = vtkPoints()
        pts.SetData(numpy_to_vtk(seg.reshape(-1, 3).astype(np.float32), deep=True))
        conn = np.arange(2 * m, dtype=np.int64)
        offsets = np.arange(0, 2 * m + 1, 2, dtype=np.int64)
        cells = vtkCellArray()
        cells.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(conn, deep=True))
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetLines(cells)
        rgb = (cyclic_colours(np.repeat(azimuth, 2))[:, :3] * 255).astype(np.uint8)
        colours = numpy_to_vtk(rgb, deep=True)
        colours.SetName("colours")
        poly.GetPointData().SetScalars(colours)
        mapper = vtkPolyDataMapper()
        if self._glyph_tubes and m:
            tubes = vtkTubeFilter()
            tubes.SetInputData(poly)
            tubes.SetRadius(0.12 * self._glyph_step * float(min(vox)))
            tubes.SetNumberOfSides(8)
            mapper.SetInputConnection(tubes.GetOutputPort())
        else:
            mapper.SetInputData(poly)
        mapper.SetColorModeToDirectScalars()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetLineWidth(2.0)
        return actor

    # ------------------------------------------------------------------ controls
    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def value_range(self) -> tuple[float, float]:
        return self._range

    def glyph_count(self) -> int:
        """Number of director glyphs drawn (0 when none)."""
        return 0 if self._glyph_data is None else int(self._glyph_data[0].shape[0])

    def glyph_segments(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """The glyphs drawn: ((M, 2, 3) end points (x, y, z) µm, (M,) azimuths), or None."""
        return self._glyph_data

    def set_threshold(self, value: float) -> None:
        """Iso-surface level; also the start of the opacity ramp and the glyphs' minimum."""
        self._threshold = float(value)
        if self.available and self._image is not None:
            self._update_threshold_parts()

    def set_colormap(self, name: str) -> None:
        self._colormap = str(name)
        if self.available and self._image is not None:
            self._rebuild()

    def set_opacity(self, volume: Optional[float] = None, surface: Optional[float] = None) -> None:
        """Maximum opacity of the volume rendering and opacity of the iso-surface (0..1)."""
        if volume is not None:
            self._opacity = float(np.clip(volume, 0.0, 1.0))
        if surface is not None:
            self._surface_opacity = float(np.clip(surface, 0.0, 1.0))
        if self.available and self._image is not None:
            self._update_threshold_parts()

    def set_glyph_options(self, step: Optional[int] = None, tubes: Optional[bool] = None) -> None:
        if step is not None:
            self._glyph_step = max(1, int(step))
        if tubes is not None:
            self._glyph_tubes = bool(tubes)
        if self.available and self._image is not None:
            self._rebuild()

    def set_visible_parts(self, **parts: bool) -> None:
        """Switch parts on/off: ``volume=``, ``surface=``, ``glyphs=``, ``outline=``."""
        for name, on in parts.items():
            if name in self._parts:
                self._parts[name].SetVisibility(bool(on))
        self.render()

    def reset_view(self) -> None:
        """Oblique view from above (+z towards the viewer is up the screen), whole volume in view."""
        if not self.available:
            return
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(0.0, 0.0, 0.0)
        cam.SetPosition(0.0, 0.0, 1.0)
        cam.SetViewUp(0.0, -1.0, 0.0)  # y down, as in the xy slice
        cam.Elevation(-35.0)
        cam.Azimuth(30.0)
        cam.OrthogonalizeViewUp()
        self.renderer.ResetCamera()
        cam.Zoom(1.3)  # ResetCamera leaves a wide margin around the bounding box
        self.renderer.ResetCameraClippingRange()
        self.render()

    def render(self) -> None:
        if self.available and self.render_window is not None:
            self.render_window.Render()

    # ------------------------------------------------------------------ export
    def snapshot(self) -> Optional[np.ndarray]:
        """The rendered image as (H, W, 3) uint8 (row 0 at the top), or None when unavailable."""
        if not self.available:
            return None
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        self.render()
        f = vtkWindowToImageFilter()
        f.SetInput(self.render_window)
        f.SetInputBufferTypeToRGB()
        f.ReadFrontBufferOff()
        f.Update()
        out = f.GetOutput()
        w, h, _ = out.GetDimensions()
        arr = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)
        return np.ascontiguousarray(arr[::-1, :, :3])

    def export_png(self, path: str | Path) -> Path:
        """Write the 3-D view to a PNG file (vtkWindowToImageFilter + vtkPNGWriter)."""
        if not self.available:
            raise RuntimeError(self.message.text() or "the 3-D view is not available")
        from vtkmodules.vtkIOImage import vtkPNGWriter
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        path = Path(path)
        self.render()
        f = vtkWindowToImageFilter()
        f.SetInput(self.render_window)
        f.SetInputBufferTypeToRGB()
        f.ReadFrontBufferOff()
        f.Update()
        w = vtkPNGWriter()
        w.SetFileName(str(path))
        w.SetInputConnection(f.GetOutputPort())
        w.Write()
        if not path.is_file():
            raise OSError(f"could not write {path}")
        return path

    def shutdown(self) -> None:
        """Release the OpenGL context (call before the widget is destroyed; safe to call twice)."""
        if self.available and self.vtk_widget is not None and not getattr(self, "_shut", False):
            self._shut = True
            if self._axes_widget is not None:
                self._axes_widget.SetEnabled(0)
            self.render_window.Finalize()
            self.vtk_widget.close()
            self.available = False  # every later call is a no-op
