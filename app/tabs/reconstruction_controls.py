"""The Reconstruction tab's control boxes: small widgets, each bound to one thing it drives.

Like napari's ``_qt`` layer controls, each box owns its widgets and binds them to what they
change; the tab (:class:`app.tabs.reconstruction_tab.ReconstructionTab`) lays them out and joins
the signals that concern more than one box.

* :class:`SourceBox` — the project's measurements, the chosen folder, *Folder…*, *Open result…*;
* :class:`MethodBox` — bound to :class:`engine.pipeline.process.ProcessOptions`: the form shows
  one options object (:meth:`MethodBox.set_options`, e.g. a loaded result's) and builds one
  (:meth:`MethodBox.options`), with the cost estimate shown before a run; for a
  polarisation-resolved measurement (:meth:`MethodBox.set_polarised`) also the birefringence
  route (Auto, DTT, DTT refined, Learned; the engine's one-line summaries,
  :data:`engine.birefringence.routes.ROUTE_SUMMARIES`);
* :class:`DisplayBox` — the volume shown, side by side, MIP, colour range, line profile;
* :class:`ExportBox` — every volume as OME-TIFF, OME-Zarr or ImageJ TIFF, and the result file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.pipeline.process import DEFAULT_DEEP_DOMAIN_TOLERANCE, ProcessOptions
from engine.store import export as volume_export

from ..logic.reconstruction import EXPORT_FORMAT_LABELS, EXPORT_VOLUME_LABELS

__all__ = ["SourceBox", "MethodBox", "DisplayBox", "ExportBox", "MIN_TV_WEIGHT", "DEEP_MISSING"]

#: Smallest TV weight the form offers (a zero weight would be no TV at all)
MIN_TV_WEIGHT = 1e-5
DEEP_MISSING = ("The learned regulariser (DeepRegularizer) is not installed: its weights "
                "(deep_regularizer.safetensors) are not in resources/models.")
METHOD_TIPS = {
    "rytov": "First-order Rytov: cells, bacteria, weak beads (default; seconds)",
    "born": "First-order Born: only small phase delays",
    "multislice": "Multiple scattering (split-step non-paraxial model, iterative, started from Rytov): beads or "
                  "cells whose phase delay exceeds about 3 rad (silica or polystyrene beads of a few µm, dense "
                  "lipid droplets), which first-order methods underestimate and stretch along z. Minutes, not "
                  "seconds: see the estimate below. Written as ri_ms beside the Rytov tomogram.",
}
#: The birefringence routes the form offers (``ProcessOptions.birefringence_method``), in order
BIREFRINGENCE_ROUTE_LABELS = {"auto": "Auto", "dtt": "DTT", "dtt-refined": "DTT refined", "learned": "Learned"}


#: the multislice frame combo: (label, ProcessOptions.multislice_frame)
MS_FRAME_LABELS = (("Off (lab frame)", "lab"), ("Auto (dense samples, Δn > 0.2)", "auto"),
                   ("Always (illumination frame)", "illumination"))
MS_FRAME_TIPS = {
    "lab": "March every illumination along z (fast; phase lag for steep light in samples with Δn above ~0.1)",
    "auto": "The iterations along z, then 15 more along each illumination if the peak Δn exceeds 0.2",
    "illumination": "Every iteration along each illumination (about 5× the time; compact dense samples)",
}


def _spin(lo: int, hi: int, value: int, name: str, tip: str = "", suffix: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSuffix(suffix)
    s.setToolTip(tip)
    return s


def _dspin(lo: float, hi: float, value: float, name: str, decimals: int, step: float, tip: str = "") -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setObjectName(name)
    s.setDecimals(decimals)
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def _row(*widgets: QWidget, stretch: int = -1) -> QHBoxLayout:
    lay = QHBoxLayout()
    for i, w in enumerate(widgets):
        lay.addWidget(w, 1 if i == stretch else 0)
    return lay


class SourceBox(QGroupBox):
    """The "Measurement" box: the project's measurements, the chosen folder, and the two open buttons."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Measurement", parent)
        self.measurement_combo = QComboBox(self)
        self.measurement_combo.setObjectName("projectMeasurements")
        self.measurement_combo.setToolTip("Measurements of the open project")
        self.measurement_combo.setVisible(False)
        self.source_label = QLabel("No measurement chosen", self)
        self.source_label.setObjectName("sourceLabel")
        self.source_label.setWordWrap(True)
        self.choose_button = QPushButton("Folder…", self)
        self.choose_button.setToolTip("Choose a measurement folder to reconstruct")
        self.open_button = QPushButton("Open result…", self)
        self.open_button.setToolTip("Open a result file (.odt.h5) or a Tomocube TCF file")
        lay = QVBoxLayout(self)
        lay.addWidget(self.measurement_combo)
        lay.addWidget(self.source_label)
        lay.addLayout(_row(self.choose_button, self.open_button))

    def set_measurements(self, items: list[tuple[str, str]]) -> None:
        """Offer ``(name, folder)`` items (none: hide the list)."""
        self.measurement_combo.clear()
        if not items:
            self.measurement_combo.setVisible(False)
            return
        self.measurement_combo.addItem("— choose a measurement —", None)
        for name, path in items:
            self.measurement_combo.addItem(name, path)
        self.measurement_combo.setVisible(True)

    def show_folder(self, folder: Path) -> None:
        self.source_label.setText(f"<b>{folder.name}</b><br><span style='color:#8b929c'>{folder}</span>")
        self.source_label.setToolTip(str(folder))
        i = self.measurement_combo.findData(str(folder))
        if i >= 0:
            self.measurement_combo.setCurrentIndex(i)


class MethodBox(QGroupBox):
    """The "Method" box, bound to one :class:`ProcessOptions` (the engine's defaults at first).

    Signals
    -------
    changed()
        Any option changed (the tab updates the cost estimate).
    """

    changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None, deep_available: bool = True) -> None:
        super().__init__("Method", parent)
        d = ProcessOptions()
        self.form = QFormLayout(self)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._build_first_order(d)
        self._build_multislice(d)
        self._build_birefringence(d)
        self.shape_z = _spin(0, 2048, 0, "shapeZ", "Axial voxels (auto: half the image size)")
        self.shape_z.setSpecialValueText("auto")
        self.form.addRow("Axial voxels", self.shape_z)
        self.device_combo = QComboBox(self)
        self.device_combo.setObjectName("device")
        for dev in ("auto", "cpu", "cuda"):
            self.device_combo.addItem(dev, dev)
        self.form.addRow("Device", self.device_combo)
        self.cost_label = QLabel("", self)
        self.cost_label.setObjectName("costEstimate")
        self.cost_label.setWordWrap(True)
        self.cost_label.setStyleSheet("color: #aeb4bd;")
        self.cost_label.setToolTip("Estimated before the run from this computer's speed, timed once "
                                   "(engine.pipeline.cost); good to within about a factor of two")
        self.form.addRow(self.cost_label)
        self.set_deep_available(deep_available)
        for w in (self.method_combo, self.reg_combo, self.device_combo, self.route_combo, self.ms_frame):
            w.currentIndexChanged.connect(self._on_changed)
        for s in (self.nonneg_iter, self.tv_outer, self.tv_inner, self.ms_iterations, self.ms_batch, self.shape_z):
            s.valueChanged.connect(self._on_changed)
        for ds in (self.tv_weight, self.ms_tv_weight, self.ms_step):
            ds.valueChanged.connect(self._on_changed)
        self.nonneg_check.toggled.connect(self._on_changed)
        self.deep_fallback.toggled.connect(self._on_changed)
        self.update_enabled()

    def _build_first_order(self, d: ProcessOptions) -> None:
        """Approximation, non-negativity, regulariser and its TV settings."""
        self.method_combo = QComboBox(self)
        self.method_combo.setObjectName("method")
        for i, (text, key) in enumerate((("Rytov", "rytov"), ("Born", "born"),
                                         ("Multislice (multiple scattering)", "multislice"))):
            self.method_combo.addItem(text, key)
            self.method_combo.setItemData(i, METHOD_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        self.form.addRow("Approximation", self.method_combo)
        self.nonneg_check = QCheckBox("n ≥ n_m", self)
        self.nonneg_check.setObjectName("nonNegativity")
        self.nonneg_check.setChecked(True)
        self.nonneg_check.setToolTip("Gerchberg–Papoulis non-negativity: fills the missing cone with n ≥ n_m "
                                     "(multislice: also its lower bound)")
        self.nonneg_iter = _spin(1, 1000, d.non_negativity_iterations, "nonNegativityIterations", suffix=" it.")
        self.form.addRow("Non-negativity", _row(self.nonneg_check, self.nonneg_iter, stretch=1))
        self.reg_combo = QComboBox(self)
        self.reg_combo.setObjectName("regularization")
        self.reg_combo.addItem("None", "none")
        self.reg_combo.addItem("Total variation", "tv")
        self.reg_combo.addItem("Learned (DeepRegularizer)", "deep")
        self.deep_fallback = QCheckBox("TV outside its domain", self)
        self.deep_fallback.setObjectName("deepDomainFallback")
        self.deep_fallback.setChecked(d.deep_domain_tolerance is not None)
        self.deep_fallback.setToolTip(
            f"When the measurement (with the fields kept) lies more than "
            f"{100 * DEFAULT_DEEP_DOMAIN_TOLERANCE:.0f} % outside the setups the learned regulariser was "
            "trained on, run TV instead (slower, but right there); unchecked: the learned step always runs, "
            "with a warning")
        self.form.addRow("Regulariser", _row(self.reg_combo, self.deep_fallback, stretch=0))
        self.tv_weight = _dspin(MIN_TV_WEIGHT, 10.0, d.tv_weight, "tvWeight", 5, 0.0001,
                                "Weight of the total-variation term, in units of the scattering potential "
                                "(n/n_m)² − 1")
        self.form.addRow("TV weight", self.tv_weight)
        self.tv_outer = _spin(1, 1000, d.tv_outer_iterations, "tvOuter", "Outer (data-consistency) iterations")
        self.tv_inner = _spin(1, 1000, d.tv_inner_iterations, "tvInner",
                              "Inner (TV denoising) iterations per outer iteration")
        self.tv_iter_label = QLabel("TV iterations", self)
        self.form.addRow(self.tv_iter_label, _row(self.tv_outer, QLabel("×", self), self.tv_inner))

    def _build_multislice(self, d: ProcessOptions) -> None:
        """The multislice rows (shown for that method only)."""
        self.ms_iterations = _spin(1, 1000, d.multislice_iterations, "msIterations",
                                   "Multislice iterations (FISTA; each uses a random subset of the fields)")
        self.ms_batch = _spin(1, 1000, d.multislice_batch, "msBatch", "Fields per iteration (all when fewer)",
                              " fields")
        self.ms_tv_weight = _dspin(0.0, 1.0, d.multislice_tv_weight, "msTvWeight", 5, 0.00005,
                                   "TV weight of the multislice proximal step, in units of Δn = n − n_m (0: bounds only)")
        self.ms_step = _dspin(0.05, 2.0, d.multislice_step, "msStep", 2, 0.1,
                              "Gradient step (1 is safe: units of the data term's Lipschitz bound)")
        self.ms_frame = QComboBox(self)
        self.ms_frame.setObjectName("msFrame")
        for i, (text, key) in enumerate(MS_FRAME_LABELS):
            self.ms_frame.addItem(text, key)
            self.ms_frame.setItemData(i, MS_FRAME_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        self.ms_frame.setCurrentIndex(max(0, self.ms_frame.findData(d.multislice_frame)))
        self.ms_frame.setToolTip("March each illumination along its own direction: corrects steep light in dense "
                                 "samples (beads n ≈ 1.59), about 5× slower per iteration")
        self._ms_rows = []
        for label, field in (("Iterations", _row(self.ms_iterations, QLabel("of", self), self.ms_batch)),
                             ("Multislice TV", self.ms_tv_weight), ("Step", self.ms_step),
                             ("Steep light", self.ms_frame)):
            self.form.addRow(label, field)
            self._ms_rows.append(self.form.rowCount() - 1)

    def _build_birefringence(self, d: ProcessOptions) -> None:
        """The birefringence route row and its one-line explanation (polarisation-resolved data only)."""
        from engine.birefringence.routes import ROUTE_SUMMARIES

        self._route_tips = ROUTE_SUMMARIES
        self.polarised = False
        self.route_combo = QComboBox(self)
        self.route_combo.setObjectName("birefringenceRoute")
        for i, (key, text) in enumerate(BIREFRINGENCE_ROUTE_LABELS.items()):
            self.route_combo.addItem(text, key)
            self.route_combo.setItemData(i, ROUTE_SUMMARIES[key], Qt.ItemDataRole.ToolTipRole)
        self.route_combo.setCurrentIndex(max(0, self.route_combo.findData(d.birefringence_method)))
        self.route_tip = QLabel("", self)
        self.route_tip.setObjectName("birefringenceRouteTip")
        self.route_tip.setWordWrap(True)
        self.route_tip.setStyleSheet("color: #aeb4bd;")
        self.route_tip.setMinimumWidth(40)  # wraps to the form's width instead of widening it
        self.route_tip.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.form.addRow("Birefringence", self.route_combo)
        self._route_rows = [self.form.rowCount() - 1]
        self.form.addRow(self.route_tip)
        self._route_rows.append(self.form.rowCount() - 1)

    def set_polarised(self, polarised: bool) -> None:
        """A polarisation-resolved measurement is chosen (show the route; :meth:`options` asks for
        birefringence) or not (hide it)."""
        if bool(polarised) != self.polarised:
            self.polarised = bool(polarised)
            self.update_enabled()

    def set_deep_available(self, ok: bool) -> None:
        """Offer the learned regulariser only when its weights are shipped (else say why)."""
        self.deep_ok = bool(ok)
        model = self.reg_combo.model()
        item = model.item(2) if isinstance(model, QStandardItemModel) else None
        if item is not None:
            item.setEnabled(self.deep_ok)
        self.reg_combo.setItemData(
            2, "3-D U-Net trained to imitate TV (Ryu et al., IEEE TMI 2021), then a few TV iterations started "
               "from its volume (its model card says how many): close to TV in a tenth of the time"
               if self.deep_ok else DEEP_MISSING,
            Qt.ItemDataRole.ToolTipRole)
        if not self.deep_ok and self.reg_combo.currentIndex() == 2:
            self.reg_combo.setCurrentIndex(0)

    def _on_changed(self, *_args) -> None:
        self.update_enabled()
        self.changed.emit()

    def update_enabled(self) -> None:
        reg = self.reg_combo.currentData()
        scalar = not self.polarised  # a polarised measurement runs a birefringence route: no scalar options
        for w in (self.tv_weight, self.tv_outer, self.tv_inner, self.tv_iter_label):
            w.setEnabled(scalar and reg == "tv")
        self.deep_fallback.setEnabled(scalar and reg == "deep")
        for w in (self.method_combo, self.reg_combo, self.nonneg_check):
            w.setEnabled(scalar)
        self.nonneg_iter.setEnabled(scalar and self.nonneg_check.isChecked())
        ms = scalar and self.method_combo.currentData() == "multislice"
        for row in self._ms_rows:
            self.form.setRowVisible(row, ms)
        for row in self._route_rows:
            self.form.setRowVisible(row, self.polarised)
        self.route_tip.setText(self._route_tips.get(self.route_combo.currentData(), ""))

    def options(self, sideband: str = "auto") -> ProcessOptions:
        """The options the form shows. Fields are not screened here (``screen="none"``): a project
        measurement follows the project's review (its decisions go to the pipeline with the run);
        the tab screens a loose folder with the shipped model when it runs it."""
        return ProcessOptions(
            screen="none", method=self.method_combo.currentData(),
            non_negativity=self.nonneg_iter.value() if self.nonneg_check.isChecked() else 0,
            regularize=self.reg_combo.currentData(),
            deep_domain_tolerance=DEFAULT_DEEP_DOMAIN_TOLERANCE if self.deep_fallback.isChecked() else None,
            tv_weight=self.tv_weight.value(), tv_outer_iterations=self.tv_outer.value(),
            tv_inner_iterations=self.tv_inner.value(),
            multislice_iterations=self.ms_iterations.value(), multislice_batch=self.ms_batch.value(),
            multislice_tv_weight=self.ms_tv_weight.value(), multislice_step=self.ms_step.value(),
            multislice_frame=self.ms_frame.currentData(),
            shape_z=self.shape_z.value() or None, device=self.device_combo.currentData(), sideband=sideband,
            birefringence=self.polarised, birefringence_method=self.route_combo.currentData())

    def set_options(self, o: ProcessOptions) -> None:
        """Show ``o`` (e.g. the options a loaded result was made with); emits :attr:`changed` once."""
        widgets = (self.method_combo, self.reg_combo, self.deep_fallback, self.device_combo, self.nonneg_check,
                   self.nonneg_iter,
                   self.tv_weight, self.tv_outer, self.tv_inner, self.ms_iterations, self.ms_batch,
                   self.ms_tv_weight, self.ms_step, self.shape_z, self.route_combo, self.ms_frame)
        for w in widgets:
            w.blockSignals(True)
        try:
            for combo, value in ((self.method_combo, o.method), (self.reg_combo, o.regularize),
                                 (self.device_combo, o.device), (self.route_combo, o.birefringence_method),
                                 (self.ms_frame, o.multislice_frame)):
                i = combo.findData(value)
                if i >= 0:
                    combo.setCurrentIndex(i)
            if o.regularize == "deep" and not self.deep_ok:
                self.reg_combo.setCurrentIndex(0)
            self.deep_fallback.setChecked(o.deep_domain_tolerance is not None)
            n = o.non_negativity_iterations
            self.nonneg_check.setChecked(n > 0)
            if n > 0:
                self.nonneg_iter.setValue(n)
            self.tv_weight.setValue(max(MIN_TV_WEIGHT, float(o.tv_weight)))
            self.tv_outer.setValue(int(o.tv_outer_iterations))
            self.tv_inner.setValue(int(o.tv_inner_iterations))
            self.ms_iterations.setValue(int(o.multislice_iterations))
            self.ms_batch.setValue(int(o.multislice_batch))
            self.ms_tv_weight.setValue(float(o.multislice_tv_weight))
            self.ms_step.setValue(float(o.multislice_step))
            self.shape_z.setValue(int(o.shape_z or 0))
            self.polarised = bool(o.birefringence)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._on_changed()


class DisplayBox(QGroupBox):
    """The "Display" box: volume, side by side, MIP, colour range, medium index, line profile."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Display", parent)
        form = QFormLayout(self)
        self.volume_combo = QComboBox(self)
        self.volume_combo.setObjectName("volumeChoice")
        form.addRow("Volume", self.volume_combo)
        self.side_check = QCheckBox("Raw and refined side by side", self)
        self.side_check.setObjectName("sideBySide")
        self.side_check.setToolTip("The raw (first-order) tomogram beside the regularised or multislice one")
        form.addRow(self.side_check)
        self.mip_check = QCheckBox("Maximum-intensity projections", self)
        self.mip_check.setObjectName("mip")
        form.addRow(self.mip_check)
        self.delta_spin = _dspin(0.001, 1.0, 0.05, "deltaN", 3, 0.005,
                                 "Colour range: from the medium index n_m up to n_m + Δn")
        self.delta_spin.setPrefix("medium + ")
        form.addRow("Colour range", self.delta_spin)
        self.medium_label = QLabel("–", self)
        self.medium_label.setObjectName("mediumLabel")
        form.addRow("Medium n_m", self.medium_label)
        self.profile_axis = QComboBox(self)
        self.profile_axis.setObjectName("profileAxis")
        for a in ("x", "y", "z"):
            self.profile_axis.addItem(f"along {a}", a)
        self.peak_button = QPushButton("Go to peak", self)
        self.peak_button.setToolTip("Move the crosshair to the highest refractive index")
        form.addRow("Line profile", _row(self.profile_axis, self.peak_button, stretch=0))

    def set_volumes(self, items: list[tuple[str, str]], current: str, side_by_side: Optional[bool]) -> None:
        """Offer ``(label, key)`` items with ``current`` chosen; ``side_by_side`` None: not possible.
        No signal is emitted."""
        for w in (self.volume_combo, self.side_check):
            w.blockSignals(True)
        try:
            self.volume_combo.clear()
            for text, key in items:
                self.volume_combo.addItem(text, key)
            self.volume_combo.setCurrentIndex(max(0, self.volume_combo.findData(current)))
            self.side_check.setEnabled(side_by_side is not None)
            self.side_check.setChecked(bool(side_by_side))
        finally:
            for w in (self.volume_combo, self.side_check):
                w.blockSignals(False)

    def set_delta(self, delta: float) -> None:
        self.delta_spin.blockSignals(True)
        self.delta_spin.setValue(delta)
        self.delta_spin.blockSignals(False)


class ExportBox(QGroupBox):
    """The "Export" box: the chosen volume in the chosen format, or the whole result file."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Export", parent)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.export_volume_combo = QComboBox(self)
        self.export_volume_combo.setObjectName("exportVolume")
        self.export_volume_combo.setToolTip("Object labels: those found here, else segmented automatically (Otsu)")
        form.addRow("Volume", self.export_volume_combo)
        self.export_format_combo = QComboBox(self)
        self.export_format_combo.setObjectName("exportFormat")
        tips = ("OME-TIFF: PhysicalSize X/Y/Z in µm, plane positions = origin (Fiji/Bio-Formats, OMERO, napari)",
                "OME-Zarr (NGFF 0.4): scale = voxel size, translation = origin (napari, Python)",
                "ImageJ hyperstack: pixel size, z spacing, origin and display range from n_m (Fiji)")
        for i, (key, text) in enumerate(EXPORT_FORMAT_LABELS.items()):
            self.export_format_combo.addItem(text, key)
            self.export_format_combo.setItemData(i, tips[i], Qt.ItemDataRole.ToolTipRole)
        if importlib.util.find_spec("zarr") is None:  # the optional `export` extra
            model = self.export_format_combo.model()
            item = model.item(1) if isinstance(model, QStandardItemModel) else None
            if item is not None:
                item.setEnabled(False)
            self.export_format_combo.setItemData(
                1, f"OME-Zarr needs the optional package zarr: pip install 'odt-studio[{volume_export.ZARR_EXTRA}]'",
                Qt.ItemDataRole.ToolTipRole)
        form.addRow("Format", self.export_format_combo)
        self.export_button = QPushButton("Export volume…", self)
        self.export_button.setObjectName("exportVolumeButton")
        self.export_button.setToolTip("Write the chosen volume with its voxel size and origin in µm")
        self.h5_button = QPushButton("Result file…", self)
        self.h5_button.setObjectName("saveResultButton")
        self.h5_button.setToolTip("The .odt.h5 result file (fields, tomograms, labels, voxel size, n_m)")
        form.addRow(_row(self.export_button, self.h5_button, stretch=0))

    def set_volumes(self, names: list[str], current: str) -> None:
        """Offer the engine volume ``names`` (``odt-studio export --volume``), ``current`` chosen."""
        combo = self.export_volume_combo
        combo.clear()
        for name in names:
            combo.addItem(EXPORT_VOLUME_LABELS[name], name)
        combo.setCurrentIndex(max(combo.findData(current), 0))

    def set_enabled(self, on: bool) -> None:
        for w in (self.export_button, self.export_volume_combo, self.export_format_combo, self.h5_button):
            w.setEnabled(on)
