"""Birefringence tab: browse n_e, n_o, Δn and the director of a result file, in slices and in 3-D.

The tab does no science. It reads the ``birefringence`` group of a result file
(``docs/formats.md`` §2: ``n_e``, ``n_o`` (Z, Y, X), ``director`` (Z, Y, X, 3) in (z, y, x)
components) with :func:`engine.store.results.read_result`, or the simulator's ``truth.h5``
(:func:`engine.simulate.demo.write_truth`) for comparison, in the :class:`app.jobs.JobRunner`;
the director lines of each slice come from :func:`engine.birefringence.director.director_lines`.

Shown:

* the linked orthogonal slices (xy, xz, yz, in µm) of n_e, n_o or Δn = n_e − n_o
  (:class:`app.widgets.slice_view.OrthoSliceView`, used as is), with director lines overlaid
  (:class:`app.widgets.director_overlay.DirectorOverlay`: subsampled every *step* voxels, only
  where |Δn| ≥ *min Δn*, length ∝ the in-plane component, colour = on-screen orientation through
  a cyclic map, explained by a colour-wheel legend);
* a readout of n_e, n_o, Δn and the director at the crosshair and under the mouse;
* a VTK 3-D view of Δn (:class:`app.widgets.volume_view.VolumeView`): volume rendering, an
  iso-surface at a threshold (slider), director glyphs (lines or thin tubes), orientation axes,
  colour map and opacity controls, reset view;
* PNG export of the slices and of the 3-D view.

Units: positions in µm, indices as refractive index (RI), Δn in RI units.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import h5py
import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.birefringence.director import cyclic_colours, director_lines
from engine.progress import check_cancel, report
from engine.store.results import read_result

from ..jobs import Job, JobRunner
from ..settings import AppSettings
from ..widgets.director_overlay import ColourWheelLegend, DirectorOverlay, screen_angles
from ..widgets.slice_view import OrthoSliceView
from ..widgets.volume_view import VolumeView

__all__ = [
    "BirefringenceVolumes",
    "QUANTITIES",
    "COLORMAPS",
    "load_birefringence_result",
    "load_truth",
    "decimate_for_3d",
    "BirefringenceTab",
]

log = logging.getLogger(__name__)

#: Selector entries: key → label.
QUANTITIES = {"n_e": "n_e (extraordinary)", "n_o": "n_o (ordinary)", "delta_n": "Δn = n_e − n_o"}
COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo")
#: Largest edge (voxels) of the volume handed to the 3-D view; bigger volumes are subsampled.
MAX_3D_EDGE = 128
#: slice-view plane → (director_lines plane, whether its (h, v) must be swapped to the view's)
_PLANE_MAP = {"xy": ("xy", False), "xz": ("xz", False), "yz": ("yz", True)}
_CUT_AXIS = {"xy": 0, "xz": 1, "yz": 2}


# ====================================================================== data (job functions)
@dataclass
class BirefringenceVolumes:
    """What the tab shows: n_e, n_o, the director, their geometry, and a decimated 3-D copy.

    Attributes
    ----------
    n_e, n_o : ndarray, shape (Z, Y, X), float32
        Extraordinary and ordinary index (RI).
    director : ndarray, shape (Z, Y, X, 3), float32
        Unit optic axis, (z, y, x) components; zero where undefined.
    voxel_size_um, origin_um : (z, y, x) µm
    medium_index : float or None
    label : str
        Shown above the views, e.g. the file name, or "TRUTH (simulator)".
    source : Path or None
    is_truth : bool
        The volumes are the simulator's ground truth, not a reconstruction.
    delta_n : ndarray, shape (Z, Y, X), float32
        n_e − n_o.
    view3d : (delta_n, director, voxel_size_um) subsampled to at most :data:`MAX_3D_EDGE` per edge.
    """

    n_e: np.ndarray
    n_o: np.ndarray
    director: np.ndarray
    voxel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    medium_index: Optional[float] = None
    label: str = ""
    source: Optional[Path] = None
    is_truth: bool = False
    delta_n: Optional[np.ndarray] = None
    view3d: Optional[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]] = None

    def __post_init__(self) -> None:
        self.n_e = np.asarray(self.n_e, dtype=np.float32)
        self.n_o = np.asarray(self.n_o, dtype=np.float32)
        self.director = np.asarray(self.director, dtype=np.float32)
        if self.n_e.ndim != 3 or self.n_o.shape != self.n_e.shape or self.director.shape != self.n_e.shape + (3,):
            raise ValueError(f"n_e, n_o must be (Z, Y, X) and director (Z, Y, X, 3); got {self.n_e.shape}, "
                             f"{self.n_o.shape}, {self.director.shape}")
        self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)  # type: ignore[assignment]
        self.origin_um = tuple(float(v) for v in self.origin_um)  # type: ignore[assignment]
        if self.delta_n is None:
            self.delta_n = self.n_e - self.n_o
        if self.view3d is None:
            self.view3d = decimate_for_3d(self.delta_n, self.director, self.voxel_size_um)

    def volume(self, quantity: str) -> np.ndarray:
        """The (Z, Y, X) volume of ``quantity`` ("n_e", "n_o" or "delta_n")."""
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}: one of {tuple(QUANTITIES)}")
        return {"n_e": self.n_e, "n_o": self.n_o, "delta_n": self.delta_n}[quantity]


def decimate_for_3d(delta_n: np.ndarray, director: np.ndarray, voxel_size_um: tuple[float, float, float],
                    max_edge: int = MAX_3D_EDGE) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Subsample by an integer stride so that no edge exceeds ``max_edge`` voxels (origin unchanged).

    Returns (delta_n, director, voxel_size_um) of the subsampled grid.
    """
    stride = max(1, math.ceil(max(delta_n.shape) / max_edge))
    if stride == 1:
        return delta_n, director, tuple(voxel_size_um)  # type: ignore[return-value]
    return (np.ascontiguousarray(delta_n[::stride, ::stride, ::stride]),
            np.ascontiguousarray(director[::stride, ::stride, ::stride]),
            tuple(float(v) * stride for v in voxel_size_um))  # type: ignore[return-value]


def load_birefringence_result(path: str | Path, *, progress: Optional[Callable[..., None]] = None,
                              cancel=None) -> BirefringenceVolumes:  # noqa: ANN001 - CancelToken
    """Read the birefringence group (and the tomogram's geometry) of a result file ``<name>.odt.h5``.

    Raises
    ------
    ValueError
        The file has no ``birefringence`` group with n_e, n_o and director.
    """
    path = Path(path)
    report(progress, 0.05, f"Reading {path.name}")
    res = read_result(path, groups=("tomogram", "birefringence"))
    check_cancel(cancel)
    b = res.birefringence
    if b is None or b.n_e is None or b.n_o is None or b.director is None:
        raise ValueError(f"{path.name} holds no birefringence result (birefringence/n_e, n_o, director); "
                         "process polarisation-resolved data with --birefringence")
    if res.tomogram is not None:
        vox, origin, n_m = res.tomogram.voxel_size_um, res.tomogram.origin_um, res.tomogram.medium_index
    else:  # geometry from the measurement: lateral pixel, centred origin
        md = json.loads(res.measurement_json or "{}")
        p = float(md.get("pixel_size_um", 1.0))
        vox = (p, p, p)
        origin = tuple(-(n // 2) * p for n in b.n_e.shape)
        n_m = md.get("medium_index")
    report(progress, 0.6, "Preparing the views")
    vols = BirefringenceVolumes(b.n_e, b.n_o, b.director, vox, origin, n_m, label=path.name, source=path)
    report(progress, 1.0, "Loaded")
    return vols


def load_truth(path: str | Path, *, progress: Optional[Callable[..., None]] = None,
               cancel=None) -> BirefringenceVolumes:  # noqa: ANN001 - CancelToken
    """Read a simulator's ``truth.h5`` (n_o, n_e, director; voxel_size_um, origin_um attributes).

    Where the truth marks no anisotropy (n_e = n_o), the director is shown as zero.
    """
    path = Path(path)
    report(progress, 0.05, f"Reading {path.name}")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("n_e", "n_o", "director") if k not in f]
        if missing:
            raise ValueError(f"{path} is not a birefringent truth file (missing {', '.join(missing)})")
        n_e, n_o, director = f["n_e"][()], f["n_o"][()], f["director"][()]
        vox = tuple(float(v) for v in f.attrs["voxel_size_um"])
        origin = tuple(float(v) for v in f.attrs["origin_um"]) if "origin_um" in f.attrs else \
            tuple(-(n // 2) * d for n, d in zip(n_e.shape, vox))
        n_m = float(f.attrs["medium_index"]) if "medium_index" in f.attrs else None
    check_cancel(cancel)
    director = np.where((np.abs(n_e - n_o) > 0)[..., None], director, 0.0).astype(np.float32)
    vols = BirefringenceVolumes(n_e, n_o, director, vox, origin, n_m,  # type: ignore[arg-type]
                                label=f"TRUTH (simulator) — {path.parent.name}/{path.name}", source=path,
                                is_truth=True)
    report(progress, 1.0, "Loaded")
    return vols


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

        # ---------------------------------------------------------------- views
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
        self.volume_view = VolumeView()
        self.volume_view.setMinimumWidth(260)

        # ---------------------------------------------------------------- controls
        self.file_label = QLabel("No result open")
        self.file_label.setWordWrap(True)
        self.file_label.setObjectName("sectionTitle")
        self.open_button = QPushButton("Open result…")
        self.open_button.clicked.connect(self._choose_result)
        self.truth_button = QPushButton("Open truth…")
        self.truth_button.setToolTip("Open a simulator's truth.h5 (true n_e, n_o, director) for comparison")
        self.truth_button.clicked.connect(self._choose_truth)

        self.quantity_combo = QComboBox()
        for key, label in QUANTITIES.items():
            self.quantity_combo.addItem(label, key)
        self.quantity_combo.currentIndexChanged.connect(
            lambda _i: self.set_quantity(self.quantity_combo.currentData()))
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.currentTextChanged.connect(self.set_colormap)

        self.lines_check = QCheckBox("Director lines")
        self.lines_check.setChecked(True)
        self.lines_check.toggled.connect(lambda _on: self._update_overlays())
        self.step_spin = QSpinBox()
        self.step_spin.setRange(1, 32)
        self.step_spin.setValue(4)
        self.step_spin.setSuffix(" vox")
        self.step_spin.setToolTip("One director line every this many voxels")
        self.step_spin.valueChanged.connect(lambda _v: self._update_overlays())
        self.min_dn_spin = QDoubleSpinBox()
        self.min_dn_spin.setDecimals(4)
        self.min_dn_spin.setRange(0.0, 1.0)
        self.min_dn_spin.setSingleStep(0.002)
        self.min_dn_spin.setValue(0.01)
        self.min_dn_spin.setToolTip("Lines only where |Δn| is at least this")
        self.min_dn_spin.valueChanged.connect(lambda _v: self._update_overlays())
        self.legend = ColourWheelLegend()

        self.volume_check = QCheckBox("Volume")
        self.volume_check.setChecked(True)
        self.surface_check = QCheckBox("Iso-surface")
        self.surface_check.setChecked(True)
        self.glyph_check = QCheckBox("Glyphs")
        self.glyph_check.setChecked(True)
        for cb in (self.volume_check, self.surface_check, self.glyph_check):
            cb.toggled.connect(lambda _on: self._apply_parts())
        self.tubes_check = QCheckBox("as tubes")
        self.tubes_check.toggled.connect(lambda on: self.volume_view.set_glyph_options(tubes=on))
        self.glyph_step_spin = QSpinBox()
        self.glyph_step_spin.setRange(1, 32)
        self.glyph_step_spin.setValue(4)
        self.glyph_step_spin.setSuffix(" vox")
        self.glyph_step_spin.valueChanged.connect(lambda v: self.volume_view.set_glyph_options(step=v))
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 1000)
        self.threshold_slider.setValue(500)
        self.threshold_slider.valueChanged.connect(self._threshold_changed)
        # the 3-D update takes a fraction of a second: apply on release, show the value while dragging
        self.threshold_slider.setTracking(False)
        self.threshold_slider.sliderMoved.connect(lambda _v: self._threshold_label(self.threshold_slider.sliderPosition()))
        self.threshold_label = QLabel("")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(30)
        self.opacity_slider.setTracking(False)
        self.opacity_slider.valueChanged.connect(
            lambda v: self.volume_view.set_opacity(volume=v / 100.0))
        self.surface_opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.surface_opacity_slider.setRange(0, 100)
        self.surface_opacity_slider.setValue(50)
        self.surface_opacity_slider.setTracking(False)
        self.surface_opacity_slider.valueChanged.connect(
            lambda v: self.volume_view.set_opacity(surface=v / 100.0))
        self.reset_button = QPushButton("Reset view")
        self.reset_button.clicked.connect(self.volume_view.reset_view)
        self.export_slices_button = QPushButton("Export slices PNG…")
        self.export_slices_button.clicked.connect(self._choose_export_slices)
        self.export_3d_button = QPushButton("Export 3-D PNG…")
        self.export_3d_button.clicked.connect(self._choose_export_3d)
        if not self.volume_view.available:
            for w in (self.reset_button, self.export_3d_button, self.threshold_slider, self.opacity_slider,
                      self.surface_opacity_slider, self.volume_check, self.surface_check, self.glyph_check,
                      self.tubes_check, self.glyph_step_spin):
                w.setEnabled(False)

        file_box = QGroupBox("Result")
        fl = QVBoxLayout(file_box)
        fl.addWidget(self.file_label)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.truth_button)
        fl.addLayout(row)

        slice_box = QGroupBox("Slices")
        sf = QFormLayout(slice_box)
        sf.addRow("Show", self.quantity_combo)
        sf.addRow("Colour map", self.colormap_combo)
        sf.addRow(self.lines_check)
        sf.addRow("Line step", self.step_spin)
        sf.addRow("Min Δn", self.min_dn_spin)
        legend_row = QHBoxLayout()
        legend_row.addWidget(self.legend)
        legend_text = QLabel("Line colour =\norientation\non screen;\nlength = in-plane\npart of the\ndirector")
        legend_text.setObjectName("hint")
        legend_row.addWidget(legend_text, 1)
        sf.addRow(legend_row)

        view3d_box = QGroupBox("3-D view (Δn)")
        vf = QFormLayout(view3d_box)
        parts = QHBoxLayout()
        for cb in (self.volume_check, self.surface_check, self.glyph_check):
            parts.addWidget(cb)
        vf.addRow(parts)
        vf.addRow("Iso Δn", self.threshold_slider)
        vf.addRow("", self.threshold_label)
        vf.addRow("Volume opacity", self.opacity_slider)
        vf.addRow("Surface opacity", self.surface_opacity_slider)
        glyph_row = QHBoxLayout()
        glyph_row.addWidget(self.glyph_step_spin)
        glyph_row.addWidget(self.tubes_check)
        vf.addRow("Glyph step", glyph_row)
        vf.addRow(self.reset_button)

        export_box = QGroupBox("Export")
        ef = QVBoxLayout(export_box)
        ef.addWidget(self.export_slices_button)
        ef.addWidget(self.export_3d_button)

        self._data_boxes = (slice_box, view3d_box, export_box)  # of no use until something is shown
        for box in self._data_boxes:
            box.setEnabled(False)
        controls = QWidget()
        cl = QVBoxLayout(controls)
        cl.setContentsMargins(0, 0, 0, 0)
        for box in (file_box, slice_box, view3d_box, export_box):
            cl.addWidget(box)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(290)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.title_label = QLabel("Open a result file (.odt.h5) processed with --birefringence")
        self.title_label.setObjectName("sectionTitle")
        self.readout = QLabel("")
        self.readout.setObjectName("birefringenceReadout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cursor_readout = QLabel("")
        for lbl in (self.title_label, self.readout, self.cursor_readout):
            lbl.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # the slice view's own readouts show only "n"; ours say n_e, n_o, Δn and the director
        self.slice_view.readout.hide()
        self.slice_view.cursor_label.hide()

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
        rl.addWidget(self.title_label)
        rl.addWidget(self.splitter, 1)
        rl.addWidget(self.readout)
        rl.addWidget(self.cursor_readout)
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
        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addWidget(self.right_stack, 1)
        self.set_colormap(COLORMAPS[0])

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
        self.file_label.setText(f"Opening {path.name}…")
        return self.runner.submit(f"Opening {path.name}", load_birefringence_result, path,
                                  on_result=self._show_data, on_error=self._load_failed)

    def open_truth(self, path: Path) -> Job:
        """Load a simulator ``truth.h5`` in the background (labelled as truth in the views)."""
        path = Path(path)
        self._remember_dir(path)
        self.file_label.setText(f"Opening {path.name}…")
        return self.runner.submit(f"Opening truth {path.name}", load_truth, path,
                                  on_result=self._show_data, on_error=self._load_failed)

    def _load_failed(self, exc: BaseException) -> None:
        self.file_label.setText(f"Could not open: {exc}")
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
            origin_um = tuple(-(n // 2) * float(d) for n, d in zip(n_e.shape, voxel_size_um))  # type: ignore[assignment]
        self._show_data(BirefringenceVolumes(n_e, n_o, director, voxel_size_um, origin_um, medium_index,
                                             label=label, is_truth=is_truth))

    def _show_data(self, data: BirefringenceVolumes) -> None:
        self.data = data
        self.right_stack.setCurrentIndex(1)
        for box in self._data_boxes:
            box.setEnabled(True)
        self.file_label.setText(data.label + ("\nthe simulator's truth, not a reconstruction" if data.is_truth else ""))
        shape = "×".join(str(n) for n in data.n_e.shape[::-1])
        vox = "×".join(f"{v:g}" for v in data.voxel_size_um[::-1])
        self.title_label.setText(f"{data.label}   ({shape} voxels of {vox} µm, x×y×z)")
        dn = data.delta_n
        big = float(np.percentile(np.abs(dn), 99.5)) if dn.size else 0.0
        # default line threshold: the significant part of the anisotropy
        self.min_dn_spin.blockSignals(True)
        self.min_dn_spin.setValue(round(max(0.3 * big, 1e-4), 4))
        self.min_dn_spin.blockSignals(False)
        self._show_quantity(keep_crosshair=False)
        dn3, dir3, vox3 = data.view3d  # type: ignore[misc]
        if self.volume_view.available:
            thr = max(float(dn3.max()), 0.0) * self.threshold_slider.value() / 1000.0
            self.volume_view.set_volume(dn3, vox3, data.origin_um, dir3, threshold=thr,
                                        glyph_step=self.glyph_step_spin.value())
            self._apply_parts()
            self.volume_view.render()  # it was hidden until now: draw it at once
        self._threshold_label()
        self.loaded.emit(data)

    def set_quantity(self, quantity: str) -> None:
        """Show "n_e", "n_o" or "delta_n" in the slices."""
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}")
        self.quantity = quantity
        i = self.quantity_combo.findData(quantity)
        if i != self.quantity_combo.currentIndex():
            self.quantity_combo.setCurrentIndex(i)  # calls back here once
            return
        if self.data is not None:
            self._show_quantity(keep_crosshair=True)

    def _show_quantity(self, keep_crosshair: bool) -> None:
        data = self.data
        assert data is not None
        vol = data.volume(self.quantity)
        self.slice_view.set_volume(vol, data.voxel_size_um, data.origin_um,
                                   medium_index=None, keep_crosshair=keep_crosshair)
        if self.quantity == "delta_n":
            hi = float(np.percentile(np.abs(vol), 99.8)) or 1e-3
            self.slice_view.set_levels(-hi if vol.min() < -0.2 * hi else 0.0, hi)
            self.slice_view.set_colorbar_label("Δn")
        else:
            lo = data.medium_index if data.medium_index is not None else float(np.percentile(vol, 0.5))
            hi = float(np.percentile(vol, 99.9))
            self.slice_view.set_levels(min(lo, hi - 1e-3), hi)
            self.slice_view.set_colorbar_label("n_e" if self.quantity == "n_e" else "n_o")
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
        if self.colormap_combo.currentText() != name:
            self.colormap_combo.setCurrentText(name)

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
        lines = director_lines(data.director, data.delta_n, plane, index, step=self.step_spin.value(),
                               min_delta_n=self.min_dn_spin.value(), voxel_size_um=data.voxel_size_um,
                               origin_um=data.origin_um)
        seg = lines.segments[..., ::-1] if swap else lines.segments
        return np.ascontiguousarray(seg), lines.delta_n

    def _update_overlays(self) -> None:
        show = self.lines_check.isChecked() and self.data is not None
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
    def describe_voxel(self, z: int, y: int, x: int) -> str:
        """``x … y … z … µm  n_e …  n_o …  Δn …  director (x, y, z) …`` of voxel (z, y, x)."""
        d = self.data
        if d is None:
            return ""
        zu, yu, xu = (o + i * v for o, i, v in zip(d.origin_um, (z, y, x), d.voxel_size_um))
        dz, dy, dx = (float(c) for c in d.director[z, y, x])
        dn = float(d.delta_n[z, y, x])
        text = (f"x {xu:+.2f}  y {yu:+.2f}  z {zu:+.2f} µm   n_e = {d.n_e[z, y, x]:.4f}   "
                f"n_o = {d.n_o[z, y, x]:.4f}   Δn = {dn:+.4f}   ")
        if dx == dy == dz == 0.0:
            text += "director —"
        else:
            tilt = math.degrees(math.acos(min(1.0, abs(dz))))
            azim = math.degrees(math.atan2(dy, dx)) % 180.0
            text += f"director (x, y, z) = ({dx:+.2f}, {dy:+.2f}, {dz:+.2f}), azimuth {azim:.0f}°, tilt from z {tilt:.0f}°"
        return text

    def _update_readout(self) -> None:
        if self.data is None:
            self.readout.setText("")
            return
        self.readout.setText("Crosshair:  " + self.describe_voxel(*self.slice_view.crosshair))

    def _cursor_moved(self, info) -> None:  # noqa: ANN001 - (z, y, x µm, value) or None
        if info is None or self.data is None:
            self.cursor_readout.setText("")
            return
        zu, yu, xu, _v = info
        sv = self.slice_view
        vox = (sv.index_of("z", zu), sv.index_of("y", yu), sv.index_of("x", xu))
        self.cursor_readout.setText("Cursor:  " + self.describe_voxel(*vox))

    # ------------------------------------------------------------------ 3-D controls
    def _threshold_value(self, position: Optional[int] = None) -> float:
        """The slider's Δn: 0 (slider at the left) to the largest Δn (right)."""
        hi = max(self.volume_view.value_range[1], 0.0)
        pos = self.threshold_slider.value() if position is None else position
        return hi * pos / 1000.0

    def _threshold_label(self, position: Optional[int] = None) -> None:
        if self.data is not None and self.volume_view.available:
            self.threshold_label.setText(f"Δn ≥ {self._threshold_value(position):.4f}")

    def _threshold_changed(self, _v: int) -> None:
        if self.data is None or not self.volume_view.available:
            return
        self.volume_view.set_threshold(self._threshold_value())
        self._threshold_label()

    def set_threshold(self, delta_n: float) -> None:
        """Iso-surface level of the 3-D view in Δn (moves the slider to the nearest step)."""
        hi = max(self.volume_view.value_range[1], 0.0)
        self.threshold_slider.setValue(int(round(1000 * float(delta_n) / max(hi, 1e-12))))

    def _apply_parts(self) -> None:
        self.volume_view.set_visible_parts(volume=self.volume_check.isChecked(),
                                           surface=self.surface_check.isChecked(),
                                           glyphs=self.glyph_check.isChecked())

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
