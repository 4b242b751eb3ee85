"""Birefringence tab: browse n_e, n_o, Δn and the director of a result file, in slices and in 3-D.

A thin widget. What it shows (:class:`app.logic.birefringence.BirefringenceVolumes`), the jobs
that read it (the ``birefringence`` group of a result file, ``docs/formats.md`` §2, or a
simulator's ``truth.h5`` for comparison), the readout text and the display levels are in
:mod:`app.logic.birefringence` (no Qt); the control boxes (result, slices, 3-D view, export) are
in :mod:`app.tabs.birefringence_controls`. The loaders run in the :class:`app.jobs.JobRunner`;
the director lines of each slice come from :func:`engine.birefringence.director.director_lines`.

Shown:

* the linked orthogonal slices (xy, xz, yz, in µm) of n_e, n_o or Δn = n_e − n_o
  (:class:`app.widgets.slice_view.OrthoSliceView`, used as is), with director lines overlaid
  (:class:`app.widgets.director_overlay.DirectorOverlay`: subsampled every *step* voxels, only
  where |Δn| ≥ *min Δn*, length ∝ the in-plane component, colour = on-screen orientation through
  a cyclic map, explained by a colour-wheel legend);
* which route made the volumes (DTT, DTT refined, the learned generator: the result file's
  ``tomogram/method``), under the file name;
* a readout of n_e, n_o, Δn and the director at the crosshair and under the mouse;
* a VTK 3-D view of Δn (:class:`app.widgets.volume_view.VolumeView`): volume rendering, an
  iso-surface at a threshold (slider), director glyphs (lines or thin tubes), orientation axes,
  colour map and opacity controls, reset view;
* PNG export of the slices and of the 3-D view.

Units: positions in µm, indices as refractive index (RI), Δn in RI units.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.birefringence.director import cyclic_colours, director_lines

from ..jobs import Job, JobRunner
from ..logic.birefringence import (COLORMAPS, QUANTITIES, BirefringenceVolumes, centred_origin,
                                   default_min_delta_n, describe_voxel, load_birefringence_result, load_truth,
                                   route_text, slice_levels, title_text)
from ..logic.display import screen_angles
from ..settings import AppSettings
from ..widgets.director_overlay import DirectorOverlay
from ..widgets.slice_view import OrthoSliceView
from ..widgets.volume_view import VolumeView
from .birefringence_controls import ExportBox, ResultBox, SliceControls, View3DControls

__all__ = ["BirefringenceTab"]

log = logging.getLogger(__name__)

#: slice-view plane → (director_lines plane, whether its (h, v) must be swapped to the view's)
_PLANE_MAP = {"xy": ("xy", False), "xz": ("xz", False), "yz": ("yz", True)}
_CUT_AXIS = {"xy": 0, "xz": 1, "yz": 2}


# ====================================================================== the tab
class BirefringenceTab(QWidget):
    """Viewer of n_e, n_o, Δn and the director: linked slices with director lines, and a 3-D view.

    Parameters
    ----------
    runner : JobRunner
        Runs the file loading in the background.
    settings : AppSettings, optional
        Remembers the last folder.
    parent : QWidget, optional

    Signals
    -------
    loaded(object)
        A :class:`BirefringenceVolumes` is shown.
    """

    loaded = Signal(object)

    def __init__(self, runner: JobRunner, settings: Optional[AppSettings] = None,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("birefringenceTab")
        self.runner = runner
        self.settings = settings
        self.data: Optional[BirefringenceVolumes] = None
        self.quantity = "n_e"
        self._build_views()
        self._build_controls()
        lay = QHBoxLayout(self)
        lay.addWidget(self._controls_scroll())
        lay.addWidget(self._build_right_side(), 1)
        self.set_colormap(COLORMAPS[0])

    def _build_views(self) -> None:
        """The linked slices with a director overlay on each plot, and the 3-D view."""
        self.slice_view = OrthoSliceView(title="")
        self.overlays: dict[str, DirectorOverlay] = {}
        for name, plot in self.slice_view.plots.items():
            ov = DirectorOverlay()
            plot.addItem(ov, ignoreBounds=True)
            self.overlays[name] = ov
        if self.slice_view.colorbar is not None:
            self.slice_view.colorbar.axis.enableAutoSIPrefix(False)  # Δn reads 0.04, not 40 (×0.001)
        self.slice_view.crosshair_moved.connect(self._crosshair_moved)
        self.slice_view.cursor_moved.connect(self._cursor_moved)
        # the slice view's own readouts show only "n"; ours say n_e, n_o, Δn and the director
        self.slice_view.readout.hide()
        self.slice_view.cursor_label.hide()
        self.volume_view = VolumeView()
        self.volume_view.setMinimumWidth(260)

    def _build_controls(self) -> None:
        """The four control boxes, joined to the tab."""
        self.result_box = ResultBox()
        self.result_box.open_button.clicked.connect(self._choose_result)
        self.result_box.truth_button.clicked.connect(self._choose_truth)
        self.slices = SliceControls()
        self.slices.quantity_chosen.connect(self.set_quantity)
        self.slices.colormap_chosen.connect(self.set_colormap)
        self.slices.lines_changed.connect(self._update_overlays)
        self.view3d = View3DControls(self.volume_view)
        self.export_box = ExportBox(self.volume_view.available)
        self.export_box.export_slices_button.clicked.connect(self._choose_export_slices)
        self.export_box.export_3d_button.clicked.connect(self._choose_export_3d)
        self._data_boxes = (self.slices, self.view3d, self.export_box)  # of no use until something is shown
        for box in self._data_boxes:
            box.setEnabled(False)

    def _controls_scroll(self) -> QScrollArea:
        controls = QWidget()
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 0, 0)
        for box in (self.result_box, *self._data_boxes):
            cl.addWidget(box)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(290)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return scroll

    def _build_right_side(self) -> QStackedWidget:
        """Title, slices | 3-D view, readouts; behind a message until a result is shown."""
        self.title_label = QLabel("Open a result file (.odt.h5) processed with --birefringence")
        self.title_label.setObjectName("sectionTitle")
        self.readout = QLabel("")
        self.readout.setObjectName("birefringenceReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cursor_readout = QLabel("")
        for lbl in (self.title_label, self.readout, self.cursor_readout):
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.slice_view)
        self.splitter.addWidget(self.volume_view)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([560, 400])
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.setSpacing(2)
        for w, stretch in ((self.title_label, 0), (self.splitter, 1), (self.readout, 0), (self.cursor_readout, 0)):
            rl.addWidget(w, stretch)
        # until a result is shown: a message, not empty axes and an unpainted 3-D area
        self.empty = QLabel()
        self.empty.setObjectName("dropZone")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.right_stack = QStackedWidget()
        self.right_stack.addWidget(self.empty)
        self.right_stack.addWidget(right)
        self.show_message("No birefringence result open",
                          "Open a result file (<code>.odt.h5</code>) of a polarisation-resolved measurement "
                          "processed with birefringence (<code>odt-studio batch --birefringence</code>), "
                          "or a simulator's <code>truth.h5</code>.")
        return self.right_stack

    def show_message(self, title: str, body: str = "") -> None:
        """Show a message instead of the views (nothing open yet, loading, an error)."""
        self.empty.setText(f"<p style='font-size:15pt'>{title}</p><p>{body}</p>")
        self.right_stack.setCurrentWidget(self.empty)

    # ------------------------------------------------------------------ opening
    def _last_dir(self) -> str:
        if self.settings is not None:
            return str(self.settings.value("birefringence/last_dir", "") or "")
        return ""

    def _remember_dir(self, path: Path) -> None:
        if self.settings is not None:
            self.settings.set_value("birefringence/last_dir", str(path.parent))

    def _choose_result(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a birefringence result", self._last_dir(),
                                              "ODT result (*.odt.h5 *.h5);;All files (*)")
        if path:
            self.open_result(Path(path))

    def _choose_truth(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a simulator truth file", self._last_dir(),
                                              "Simulator truth (truth.h5 *.h5);;All files (*)")
        if path:
            self.open_truth(Path(path))

    def open_result(self, path: Path) -> Job:
        """Load the birefringence group of result file ``path`` in the background; show it when read."""
        path = Path(path)
        self._remember_dir(path)
        self.result_box.file_label.setText(f"Opening {path.name}…")
        return self.runner.submit(f"Opening {path.name}", load_birefringence_result, path,
                                  on_result=self._show_data, on_error=self._load_failed)

    def open_truth(self, path: Path) -> Job:
        """Load a simulator ``truth.h5`` in the background (labelled as truth in the views)."""
        path = Path(path)
        self._remember_dir(path)
        self.result_box.file_label.setText(f"Opening {path.name}…")
        return self.runner.submit(f"Opening truth {path.name}", load_truth, path,
                                  on_result=self._show_data, on_error=self._load_failed)

    def _load_failed(self, exc: BaseException) -> None:
        self.result_box.file_label.setText(f"Could not open: {exc}")
        if self.data is None:
            self.show_message("Could not open the file", str(exc))

    # ------------------------------------------------------------------ showing
    def show_volumes(self, n_e: np.ndarray, n_o: np.ndarray, director: np.ndarray,
                     voxel_size_um: tuple[float, float, float],
                     origin_um: Optional[tuple[float, float, float]] = None,
                     medium_index: Optional[float] = None, label: str = "", is_truth: bool = False) -> None:
        """Show volumes held in memory: n_e, n_o (Z, Y, X) RI and director (Z, Y, X, 3), geometry in µm.

        ``origin_um`` defaults to docs/formats.md's centred origin ``−(n//2)·d``.
        """
        n_e = np.asarray(n_e, dtype=np.float32)
        if origin_um is None:
            origin_um = centred_origin(n_e.shape, voxel_size_um)
        self._show_data(BirefringenceVolumes(n_e, n_o, director, voxel_size_um, origin_um, medium_index,
                                             label=label, is_truth=is_truth))

    def _show_data(self, data: BirefringenceVolumes) -> None:
        self.data = data
        self.right_stack.setCurrentIndex(1)
        for box in self._data_boxes:
            box.setEnabled(True)
        self.result_box.file_label.setText(
            data.label + ("\nthe simulator's truth, not a reconstruction" if data.is_truth else ""))
        self.result_box.route_label.setText(route_text(data))
        self.title_label.setText(title_text(data))
        self.slices.set_min_delta_n(default_min_delta_n(data))  # lines where the anisotropy is significant
        self._show_quantity(keep_crosshair=False)
        dn3, dir3, vox3 = data.view3d  # type: ignore[misc]
        self.view3d.show_volume(dn3, dir3, vox3, data.origin_um)
        self.loaded.emit(data)

    def set_quantity(self, quantity: str) -> None:
        """Show "n_e", "n_o" or "delta_n" in the slices."""
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}")
        self.quantity = quantity
        if self.slices.show_quantity(quantity):
            return  # the combo calls back here once
        if self.data is not None:
            self._show_quantity(keep_crosshair=True)

    def _show_quantity(self, keep_crosshair: bool) -> None:
        data = self.data
        assert data is not None
        self.slice_view.set_volume(data.volume(self.quantity), data.voxel_size_um, data.origin_um,
                                   medium_index=None, keep_crosshair=keep_crosshair)
        lo, hi, label = slice_levels(data, self.quantity)
        self.slice_view.set_levels(lo, hi)
        self.slice_view.set_colorbar_label(label)
        self._update_overlays()
        self._update_readout()

    def set_colormap(self, name: str) -> None:
        """Colour map of the slices and of the 3-D view."""
        import pyqtgraph as pg

        cmap = pg.colormap.get(name)
        if self.slice_view.colorbar is not None:
            self.slice_view.colorbar.setColorMap(cmap)
        else:
            for img in self.slice_view.images.values():
                img.setColorMap(cmap)
        self.volume_view.set_colormap(name)
        self.slices.show_colormap(name)

    # ------------------------------------------------------------------ director lines
    def view_segments(self, view: str) -> tuple[np.ndarray, np.ndarray]:
        """Director segments of slice view ``view`` at the crosshair, in the view's (h, v) µm frame.

        Returns (segments (M, 2, 2), Δn at each segment (M,)).
        """
        data = self.data
        if data is None:
            return np.zeros((0, 2, 2), np.float32), np.zeros(0, np.float32)
        plane, swap = _PLANE_MAP[view]
        index = self.slice_view.crosshair[_CUT_AXIS[view]]
        lines = director_lines(data.director, data.delta_n, plane, index, step=self.slices.step_spin.value(),
                               min_delta_n=self.slices.min_dn_spin.value(), voxel_size_um=data.voxel_size_um,
                               origin_um=data.origin_um)
        seg = lines.segments[..., ::-1] if swap else lines.segments
        return np.ascontiguousarray(seg), lines.delta_n

    def _update_overlays(self) -> None:
        show = self.slices.lines_check.isChecked() and self.data is not None
        for name, ov in self.overlays.items():
            if not show:
                ov.clear()
                continue
            seg, _dn = self.view_segments(name)
            inverted = self.slice_view.plots[name].vb.state["yInverted"]
            ov.set_segments(seg, cyclic_colours(screen_angles(seg, inverted)))

    def _crosshair_moved(self, z: int, y: int, x: int) -> None:
        self._update_overlays()
        self._update_readout()

    # ------------------------------------------------------------------ readout
    def _update_readout(self) -> None:
        if self.data is None:
            self.readout.setText("")
            return
        self.readout.setText("Crosshair:  " + describe_voxel(self.data, *self.slice_view.crosshair))

    def _cursor_moved(self, info) -> None:  # noqa: ANN001 - (z, y, x µm, value) or None
        if info is None or self.data is None:
            self.cursor_readout.setText("")
            return
        zu, yu, xu, _v = info
        sv = self.slice_view
        vox = (sv.index_of("z", zu), sv.index_of("y", yu), sv.index_of("x", xu))
        self.cursor_readout.setText("Cursor:  " + describe_voxel(self.data, *vox))

    # ------------------------------------------------------------------ export
    def export_slices_png(self, path: str | Path) -> Path:
        """Write the three slices with their director lines and colour bar to a PNG file."""
        path = Path(path)
        if not self.slice_view.glw.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def export_3d_png(self, path: str | Path) -> Path:
        """Write the 3-D view to a PNG file (raises RuntimeError when the 3-D view is unavailable)."""
        return self.volume_view.export_png(path)

    def _choose_export_slices(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export slices", self._last_dir(), "PNG image (*.png)")
        if path:
            self.export_slices_png(path)

    def _choose_export_3d(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export 3-D view", self._last_dir(), "PNG image (*.png)")
        if path:
            self.export_3d_png(path)

    def shutdown(self) -> None:
        """Release the 3-D view's OpenGL context (call from the main window's closeEvent)."""
        self.volume_view.shutdown()

    def closeEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        self.shutdown()
        super().closeEvent(event)
