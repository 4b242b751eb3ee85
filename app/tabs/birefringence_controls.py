"""The Birefringence tab's control boxes: small widgets, each bound to one thing it drives.

Like napari's ``_qt`` layer controls, each box owns its widgets and binds them to what they
change; the tab (:class:`app.tabs.birefringence_tab.BirefringenceTab`) only lays them out and
joins the few signals that concern more than one box.

* :class:`ResultBox` — the open file's name, *Open result…*, *Open truth…*;
* :class:`SliceControls` — the quantity shown, the colour map, the director lines (on/off, step,
  minimum |Δn|) and the colour-wheel legend;
* :class:`View3DControls` — bound to a :class:`app.widgets.volume_view.VolumeView`: parts shown,
  iso-surface level (Δn), opacities, glyph step and tubes, reset view;
* :class:`ExportBox` — the two PNG exports.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..logic.birefringence import COLORMAPS, QUANTITIES
from ..widgets.director_overlay import ColourWheelLegend
from ..widgets.volume_view import VolumeView

__all__ = ["ResultBox", "SliceControls", "View3DControls", "ExportBox"]

#: Steps of the iso-level slider between 0 and the largest Δn.
SLIDER_STEPS = 1000


def _spin(lo: int, hi: int, value: int, suffix: str = "", tip: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSuffix(suffix)
    s.setToolTip(tip)
    return s


def _slider(hi: int, value: int) -> QSlider:
    """A horizontal slider 0..hi that reports on release (the 3-D view takes a moment to update)."""
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(0, hi)
    s.setValue(value)
    s.setTracking(False)
    return s


class ResultBox(QGroupBox):
    """The open result: its name, the route that made it, and the buttons that open a result or a simulator's truth."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Result", parent)
        self.file_label = QLabel("No result open")
        self.file_label.setWordWrap(True)
        self.file_label.setObjectName("sectionTitle")
        self.route_label = QLabel("")
        self.route_label.setObjectName("birefringenceRoute")
        self.route_label.setWordWrap(True)
        self.route_label.setToolTip("The reconstruction that made these volumes (the result file's tomogram/method; "
                                    "odt-studio batch --birefringence-method)")
        self.open_button = QPushButton("Open result…")
        self.truth_button = QPushButton("Open truth…")
        self.truth_button.setToolTip("Open a simulator's truth.h5 (true n_e, n_o, director) for comparison")
        lay = QVBoxLayout(self)
        lay.addWidget(self.file_label)
        lay.addWidget(self.route_label)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.truth_button)
        lay.addLayout(row)


class SliceControls(QGroupBox):
    """What the slices show: quantity, colour map, director lines.

    Signals
    -------
    quantity_chosen(str)
        "n_e", "n_o" or "delta_n" picked in the combo.
    colormap_chosen(str)
    lines_changed()
        Director lines switched, or their step or minimum |Δn| changed.
    """

    quantity_chosen = Signal(str)
    colormap_chosen = Signal(str)
    lines_changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Slices", parent)
        self.quantity_combo = QComboBox()
        for key, label in QUANTITIES.items():
            self.quantity_combo.addItem(label, key)
        self.quantity_combo.currentIndexChanged.connect(
            lambda _i: self.quantity_chosen.emit(self.quantity_combo.currentData()))
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.currentTextChanged.connect(self.colormap_chosen)
        self.lines_check = QCheckBox("Director lines")
        self.lines_check.setChecked(True)
        self.step_spin = _spin(1, 32, 4, " vox", "One director line every this many voxels")
        self.min_dn_spin = QDoubleSpinBox()
        self.min_dn_spin.setDecimals(4)
        self.min_dn_spin.setRange(0.0, 1.0)
        self.min_dn_spin.setSingleStep(0.002)
        self.min_dn_spin.setValue(0.01)
        self.min_dn_spin.setToolTip("Lines only where |Δn| is at least this")
        self.lines_check.toggled.connect(lambda _on: self.lines_changed.emit())
        self.step_spin.valueChanged.connect(lambda _v: self.lines_changed.emit())
        self.min_dn_spin.valueChanged.connect(lambda _v: self.lines_changed.emit())
        self.legend = ColourWheelLegend()
        self._lay_out()

    def _lay_out(self) -> None:
        form = QFormLayout(self)
        form.addRow("Show", self.quantity_combo)
        form.addRow("Colour map", self.colormap_combo)
        form.addRow(self.lines_check)
        form.addRow("Line step", self.step_spin)
        form.addRow("Min Δn", self.min_dn_spin)
        legend_row = QHBoxLayout()
        legend_row.addWidget(self.legend)
        legend_text = QLabel("Line colour =\norientation\non screen;\nlength = in-plane\npart of the\ndirector")
        legend_text.setObjectName("hint")
        legend_row.addWidget(legend_text, 1)
        form.addRow(legend_row)

    def show_quantity(self, quantity: str) -> bool:
        """Select ``quantity`` in the combo; True when that changed the selection (and emitted)."""
        i = self.quantity_combo.findData(quantity)
        if i == self.quantity_combo.currentIndex():
            return False
        self.quantity_combo.setCurrentIndex(i)
        return True

    def show_colormap(self, name: str) -> None:
        if self.colormap_combo.currentText() != name:
            self.colormap_combo.setCurrentText(name)

    def set_min_delta_n(self, value: float) -> None:
        """Set the lines' minimum |Δn| without emitting :attr:`lines_changed`."""
        self.min_dn_spin.blockSignals(True)
        self.min_dn_spin.setValue(value)
        self.min_dn_spin.blockSignals(False)


class View3DControls(QGroupBox):
    """Controls of the 3-D view of Δn, bound to ``view``.

    The iso-level slider runs from 0 (left) to the largest Δn of the shown volume (right,
    :attr:`VolumeView.value_range`); it applies on release and shows the level while dragging.
    Without a working 3-D view (no OpenGL) every control is disabled.
    """

    def __init__(self, view: VolumeView, parent: Optional[QWidget] = None) -> None:
        super().__init__("3-D view (Δn)", parent)
        self.view = view
        self.has_data = False
        self.volume_check, self.surface_check, self.glyph_check = (
            QCheckBox("Volume"), QCheckBox("Iso-surface"), QCheckBox("Glyphs"))
        for cb in (self.volume_check, self.surface_check, self.glyph_check):
            cb.setChecked(True)
            cb.toggled.connect(lambda _on: self.apply_parts())
        self.tubes_check = QCheckBox("as tubes")
        self.tubes_check.toggled.connect(lambda on: view.set_glyph_options(tubes=on))
        self.glyph_step_spin = _spin(1, 32, 4, " vox")
        self.glyph_step_spin.valueChanged.connect(lambda v: view.set_glyph_options(step=v))
        self.threshold_slider = _slider(SLIDER_STEPS, SLIDER_STEPS // 2)
        self.threshold_slider.valueChanged.connect(self._threshold_changed)
        self.threshold_slider.sliderMoved.connect(
            lambda _v: self.show_threshold(self.threshold_slider.sliderPosition()))
        self.threshold_label = QLabel("")
        self.opacity_slider = _slider(100, 30)
        self.opacity_slider.valueChanged.connect(lambda v: view.set_opacity(volume=v / 100.0))
        self.surface_opacity_slider = _slider(100, 50)
        self.surface_opacity_slider.valueChanged.connect(lambda v: view.set_opacity(surface=v / 100.0))
        self.reset_button = QPushButton("Reset view")
        self.reset_button.clicked.connect(view.reset_view)
        if not view.available:
            for w in (self.reset_button, self.threshold_slider, self.opacity_slider, self.surface_opacity_slider,
                      self.volume_check, self.surface_check, self.glyph_check, self.tubes_check,
                      self.glyph_step_spin):
                w.setEnabled(False)
        self._lay_out()

    def _lay_out(self) -> None:
        form = QFormLayout(self)
        parts = QHBoxLayout()
        for cb in (self.volume_check, self.surface_check, self.glyph_check):
            parts.addWidget(cb)
        form.addRow(parts)
        form.addRow("Iso Δn", self.threshold_slider)
        form.addRow("", self.threshold_label)
        form.addRow("Volume opacity", self.opacity_slider)
        form.addRow("Surface opacity", self.surface_opacity_slider)
        glyph_row = QHBoxLayout()
        glyph_row.addWidget(self.glyph_step_spin)
        glyph_row.addWidget(self.tubes_check)
        form.addRow("Glyph step", glyph_row)
        form.addRow(self.reset_button)

    def threshold_value(self, position: Optional[int] = None) -> float:
        """The slider's Δn (at ``position``, default the slider's value)."""
        hi = max(self.view.value_range[1], 0.0)
        pos = self.threshold_slider.value() if position is None else position
        return hi * pos / SLIDER_STEPS

    def show_threshold(self, position: Optional[int] = None) -> None:
        """Write the level under the slider (only with data and a working 3-D view)."""
        if self.has_data and self.view.available:
            self.threshold_label.setText(f"Δn ≥ {self.threshold_value(position):.4f}")

    def _threshold_changed(self, _v: int) -> None:
        if not self.has_data or not self.view.available:
            return
        self.view.set_threshold(self.threshold_value())
        self.show_threshold()

    def set_threshold(self, delta_n: float) -> None:
        """Iso-surface level in Δn (moves the slider to the nearest step)."""
        hi = max(self.view.value_range[1], 0.0)
        self.threshold_slider.setValue(int(round(SLIDER_STEPS * float(delta_n) / max(hi, 1e-12))))

    def apply_parts(self) -> None:
        self.view.set_visible_parts(volume=self.volume_check.isChecked(), surface=self.surface_check.isChecked(),
                                    glyphs=self.glyph_check.isChecked())

    def show_volume(self, delta_n, director, voxel_size_um, origin_um) -> None:  # noqa: ANN001 - arrays, µm
        """Hand a (decimated) Δn volume and its director to the view, at the slider's level, and draw it."""
        self.has_data = True
        if self.view.available:
            thr = max(float(delta_n.max()), 0.0) * self.threshold_slider.value() / SLIDER_STEPS
            self.view.set_volume(delta_n, voxel_size_um, origin_um, director, threshold=thr,
                                 glyph_step=self.glyph_step_spin.value())
            self.apply_parts()
            self.view.render()  # it was hidden until now: draw it at once
        self.show_threshold()


class ExportBox(QGroupBox):
    """*Export slices PNG…* and *Export 3-D PNG…* (the latter disabled without a 3-D view)."""

    def __init__(self, view3d_available: bool, parent: Optional[QWidget] = None) -> None:
        super().__init__("Export", parent)
        self.export_slices_button = QPushButton("Export slices PNG…")
        self.export_3d_button = QPushButton("Export 3-D PNG…")
        self.export_3d_button.setEnabled(view3d_available)
        lay = QVBoxLayout(self)
        lay.addWidget(self.export_slices_button)
        lay.addWidget(self.export_3d_button)
