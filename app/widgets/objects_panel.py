"""Objects of a tomogram: the segmentation controls and the table of their measurements.

The widgets do no science. :class:`ObjectControls` collects the parameters of
:func:`engine.analysis.segment_objects` (threshold: Otsu's or a Δn = n − n_m set by hand; the
smallest volume kept, µm³; splitting touching objects); :class:`ObjectTable` lists what
:func:`engine.analysis.measure_objects` found (:class:`engine.analysis.ObjectMeasurement`),
one row per label, sortable, with the label's overlay colour (:func:`label_colors`) beside it.
Units: volumes µm³, dry mass pg, positions µm in the tomogram's coordinates
(``docs/formats.md`` §2), indices as refractive index.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt, \
    QSortFilterProxyModel, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QWidget,
)

__all__ = ["OBJECT_COLUMNS", "BIREFRINGENCE_COLUMNS", "label_colors", "ObjectControls", "ObjectTableModel",
           "ObjectTable"]

#: (measurement field, header, format, tooltip) of the table's columns.
OBJECT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("label", "#", "d", "The object's label (its colour in the overlay); ⚠: it touches the volume's edge"),
    ("volume_um3", "Volume\nµm³", ".2f", "Number of voxels × voxel volume"),
    ("dry_mass_pg", "Dry mass\npg", ".3f", "Σ (n − n_m)·ΔV / α, α = 0.19 µm³/pg"),
    ("mean_ri", "Mean\nn", ".4f", "Mean refractive index inside the object"),
    ("max_ri", "Max\nn", ".4f", "Highest refractive index inside the object"),
    ("sphericity", "Sphe-\nricity", ".3f", "Sphericity π^(1/3) (6V)^(2/3) / A (1 = sphere)"),
    ("centroid_x_um", "x\nµm", "+.2f", "Centroid x (tomogram coordinates)"),
    ("centroid_y_um", "y\nµm", "+.2f", "Centroid y (tomogram coordinates)"),
    ("centroid_z_um", "z\nµm", "+.2f", "Centroid z (tomogram coordinates)"),
)
#: Extra columns of birefringent results.
BIREFRINGENCE_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("mean_birefringence", "Mean\nΔn", "+.4f", "Mean n_e − n_o inside the object"),
    ("order_parameter", "Order\nS", ".3f", "Director order parameter S = ⟨P2(cos θ)⟩ (1 = aligned, 0 = isotropic)"),
)
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Overlay opacity of an object, and of the selected one.
ALPHA, SELECTED_ALPHA = 80, 135


def label_colors(n_labels: int, selected: Optional[int] = None, alpha: int = ALPHA,
                 selected_alpha: int = SELECTED_ALPHA) -> np.ndarray:
    """RGBA uint8 colours (n_labels + 1, 4) for labels 0..n_labels: 0 transparent, the others
    well-separated hues (golden angle) from green through blue to magenta — away from the reds
    and yellows of the RI colour map — semi-transparent; ``selected`` more opaque and lighter."""
    k = np.arange(1, n_labels + 1)
    hue = 0.25 + 0.67 * ((0.1 + k * 0.618033988749895) % 1.0)
    out = np.zeros((n_labels + 1, 4), np.uint8)
    for i, h in zip(k, hue):
        c = QColor.fromHsvF(float(h), 0.85, 1.0)
        out[i] = (c.red(), c.green(), c.blue(), alpha)
    if selected is not None and 0 < selected <= n_labels:
        out[selected, :3] = (3 * out[selected, :3].astype(int) + 255) // 4
        out[selected, 3] = selected_alpha
    return out


class ObjectControls(QGroupBox):
    """"Objects" box: threshold, smallest volume, split touching, *Find objects*, overlay, CSV.

    Signals
    -------
    find_requested()
        *Find objects* was pressed (read :meth:`parameters`).
    overlay_toggled(bool)
        *Show labels* was switched.
    csv_requested()
        *Export CSV…* was pressed.
    """

    find_requested = Signal()
    overlay_toggled = Signal(bool)
    csv_requested = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__("Objects", parent)
        self.setObjectName("objectControls")
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.threshold_combo = QComboBox(self)
        self.threshold_combo.setObjectName("objectThreshold")
        self.threshold_combo.addItem("Automatic (Otsu)", "otsu")
        self.threshold_combo.addItem("Manual Δn", "manual")
        self.threshold_combo.setToolTip("Objects are the voxels with Δn = n − n_m above the threshold: Otsu's "
                                        "threshold of the voxels above n_m, or a Δn set by hand")
        self.dn_spin = QDoubleSpinBox(self)
        self.dn_spin.setObjectName("objectDn")
        self.dn_spin.setDecimals(4)
        self.dn_spin.setRange(0.0001, 1.0)
        self.dn_spin.setSingleStep(0.001)
        self.dn_spin.setValue(0.01)
        self.dn_spin.setToolTip("Δn = n − n_m above which a voxel belongs to an object (about half the "
                                "objects' Δn measures sharp objects best)")
        self.dn_spin.setEnabled(False)
        self.threshold_combo.currentIndexChanged.connect(
            lambda _i: self.dn_spin.setEnabled(self.threshold_combo.currentData() == "manual"))
        th = QHBoxLayout()
        th.addWidget(self.threshold_combo, 1)
        th.addWidget(self.dn_spin)
        form.addRow("Threshold", th)
        self.min_volume = QDoubleSpinBox(self)
        self.min_volume.setObjectName("objectMinVolume")
        self.min_volume.setDecimals(2)
        self.min_volume.setRange(0.0, 1e6)
        self.min_volume.setValue(0.1)
        self.min_volume.setSuffix(" µm³")
        self.min_volume.setToolTip("Smaller objects are dropped (noise specks)")
        form.addRow("Min. volume", self.min_volume)
        self.split_check = QCheckBox("Split touching objects", self)
        self.split_check.setObjectName("objectSplit")
        self.split_check.setToolTip("Watershed on the distance to the background: cut where two objects "
                                    "touch through a narrow neck")
        self.overlay_check = QCheckBox("Show labels", self)
        self.overlay_check.setObjectName("showLabels")
        self.overlay_check.setChecked(True)
        self.overlay_check.setToolTip("Draw each object in its colour over the slices")
        self.overlay_check.toggled.connect(self.overlay_toggled.emit)
        checks = QHBoxLayout()
        checks.addWidget(self.split_check, 1)
        checks.addWidget(self.overlay_check)
        form.addRow(checks)
        self.find_button = QPushButton("Find objects", self)
        self.find_button.setObjectName("findObjects")
        self.find_button.setToolTip("Segment the volume shown and measure every object (in the background)")
        self.find_button.clicked.connect(self.find_requested.emit)
        self.csv_button = QPushButton("Table CSV…", self)
        self.csv_button.setObjectName("objectsCsv")
        self.csv_button.setToolTip("Export the table as CSV (the columns of odt-studio batch --measure, "
                                   "units in the column names)")
        self.csv_button.clicked.connect(self.csv_requested.emit)
        row = QHBoxLayout()
        row.addWidget(self.find_button, 1)
        row.addWidget(self.csv_button)
        form.addRow(row)
        self.summary = QLabel("", self)
        self.summary.setObjectName("objectSummary")
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: #aeb4bd;")
        form.addRow(self.summary)
        self.set_have_objects(False)

    def parameters(self) -> dict[str, Any]:
        """Keyword arguments of :func:`engine.analysis.segment_objects`: ``threshold`` ("otsu" or a
        Δn), ``min_volume_um3``, ``split_touching``."""
        manual = self.threshold_combo.currentData() == "manual"
        return {"threshold": float(self.dn_spin.value()) if manual else "otsu",
                "min_volume_um3": float(self.min_volume.value()), "split_touching": self.split_check.isChecked()}

    def set_have_objects(self, have: bool) -> None:
        """Enable the overlay switch and the CSV export when there is a table."""
        self.overlay_check.setEnabled(have)
        self.csv_button.setEnabled(have)


def _fmt(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


class ObjectTableModel(QAbstractTableModel):
    """Rows: :class:`engine.analysis.ObjectMeasurement` objects; columns :data:`OBJECT_COLUMNS`
    (and :data:`BIREFRINGENCE_COLUMNS` when a row has them)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []
        self.columns: tuple[tuple[str, str, str, str], ...] = OBJECT_COLUMNS
        self.colors = label_colors(0)

    def set_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        bire = any(getattr(r, "mean_birefringence", None) is not None or getattr(r, "order_parameter", None)
                   is not None for r in self.rows)
        self.columns = OBJECT_COLUMNS + (BIREFRINGENCE_COLUMNS if bire else ())
        top = max((int(r.label) for r in self.rows), default=0)
        self.colors = label_colors(top)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section][1]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section][3]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        key, _h, fmt, _t = self.columns[index.column()]
        value = getattr(row, key, None)
        edge = bool(getattr(row, "touches_edge", False))
        if role == Qt.ItemDataRole.DisplayRole:
            text = _fmt(value, fmt)
            return f"{text} ⚠" if key == "label" and edge else text
        if role == SORT_ROLE:
            return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and key == "label":
            r, g, b, _a = (int(v) for v in self.colors[int(row.label)])
            return QColor(r, g, b)
        if role == Qt.ItemDataRole.ToolTipRole and key == "label" and edge:
            return "Touches the volume's edge: it may be cut off (volume and dry mass too small)"
        return None

    def row_of_label(self, label: int) -> int:
        return next((i for i, r in enumerate(self.rows) if int(r.label) == int(label)), -1)


class ObjectTable(QTableView):
    """The objects, one row each, sortable; selecting a row emits :attr:`label_selected`.

    Signals
    -------
    label_selected(int)
        The user selected the row of this label (0: the selection was cleared).
    """

    label_selected = Signal(int)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("objectTable")
        self.table_model = ObjectTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(False)
        self._quiet = False
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def set_measurements(self, rows: Sequence[Any]) -> None:
        """Show these measurements (one per object), sorted by label."""
        self._quiet = True
        try:
            self.table_model.set_rows(rows)
            self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        finally:
            self._quiet = False
        self.fit_columns()

    def fit_columns(self) -> None:
        """Each column as wide as its values and the longest line of its header, no wider."""
        header = self.horizontalHeader()
        fm = header.fontMetrics()
        for c in range(self.table_model.columnCount()):
            text = str(self.table_model.headerData(c, Qt.Orientation.Horizontal) or "")
            head = max(fm.horizontalAdvance(line) for line in text.split("\n")) + 18
            header.resizeSection(c, max(self.sizeHintForColumn(c), head))

    @property
    def colors(self) -> np.ndarray:
        """The labels' overlay colours (:func:`label_colors`), as the table shows them."""
        return self.table_model.colors

    def content_width(self) -> int:
        """Width (px) that shows every column without scrolling."""
        return self.horizontalHeader().length() + 2 * self.frameWidth() + self.verticalScrollBar().sizeHint().width()

    def row_count(self) -> int:
        return self.table_model.rowCount()

    def view_row_of_label(self, label: int) -> int:
        """The row (as sorted on screen) of ``label``, or -1."""
        src = self.table_model.row_of_label(label)
        if src < 0:
            return -1
        return self.proxy.mapFromSource(self.table_model.index(src, 0)).row()

    def label_at_row(self, row: int) -> int:
        """The label of the on-screen ``row``."""
        src = self.proxy.mapToSource(self.proxy.index(row, 0)).row()
        return int(self.table_model.rows[src].label)

    def selected_label(self) -> int:
        """The label of the selected row, or 0."""
        rows = self.selectionModel().selectedRows()
        return self.label_at_row(rows[0].row()) if rows else 0

    def select_label(self, label: int) -> None:
        """Select (and scroll to) the row of ``label``; 0 or an unknown label clears the selection.
        Does not emit :attr:`label_selected`."""
        self._quiet = True
        try:
            row = self.view_row_of_label(label) if label else -1
            if row < 0:
                self.clearSelection()
                return
            idx = self.proxy.index(row, 0)
            self.selectionModel().select(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                         | QItemSelectionModel.SelectionFlag.Rows)
            self.scrollTo(idx)
        finally:
            self._quiet = False

    def _selection_changed(self, *_args: Any) -> None:
        if not self._quiet:
            self.label_selected.emit(self.selected_label())
