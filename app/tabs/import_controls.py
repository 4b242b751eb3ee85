"""The Acquisition import tab's small controls, each owning its widgets.

* :class:`RootFolderBar` — the measurements folder: its path, *Choose folder…*, *Rescan*;
* :class:`SidebandSetting` — the open project's side-band rule (automatic / as given);
* :class:`MeasurementDetails` — the selected measurement's metadata and side-band line.

The tab (:class:`app.tabs.import_tab.ImportTab`) joins them; the text they show comes from
:mod:`app.logic.importing`.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from ..logic.importing import SIDEBAND_ITEMS

__all__ = ["RootFolderBar", "SidebandSetting", "MeasurementDetails", "DETAIL_KEYS"]

#: The rows of :class:`MeasurementDetails`.
DETAIL_KEYS = ("Wavelength", "Medium index", "Objective NA", "Pixel size", "Geometry", "Images", "Side band")


class RootFolderBar(QWidget):
    """"Measurements folder" [path] *Choose folder…* *Rescan* (enabled once a folder is chosen)."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.root_edit = QLineEdit(self)
        self.root_edit.setObjectName("rootEdit")
        self.root_edit.setReadOnly(True)
        self.root_edit.setPlaceholderText("Choose a folder of measurements, or drop one here")
        self.choose_button = QPushButton("Choose folder…", self)
        self.choose_button.setObjectName("chooseFolder")
        self.choose_button.setDefault(True)
        self.rescan_button = QPushButton("Rescan", self)
        self.rescan_button.setObjectName("rescan")
        self.rescan_button.setEnabled(False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(8)
        lbl = QLabel("Measurements folder", self)
        lbl.setObjectName("fieldLabel")
        lay.addWidget(lbl)
        lay.addWidget(self.root_edit, 1)
        lay.addWidget(self.choose_button)
        lay.addWidget(self.rescan_button)

    def show_root(self, path: str) -> None:
        self.root_edit.setText(path)
        self.rescan_button.setEnabled(True)


class SidebandSetting(QWidget):
    """The project's side-band rule, one of :data:`app.logic.importing.SIDEBAND_ITEMS`.

    Signals
    -------
    chosen(str)
        The user picked ``"auto"`` or ``"as-given"``.
    """

    chosen = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox(self)
        self.combo.setObjectName("sidebandSetting")
        for k, (value, text, tip) in enumerate(SIDEBAND_ITEMS):
            self.combo.addItem(text, value)
            self.combo.setItemData(k, tip, Qt.ItemDataRole.ToolTipRole)
        self.combo.setToolTip("The project's side-band rule, used whenever fields are retrieved "
                              "(unless measurement.json gives carrier_per_um, which is always honoured)")
        self.combo.currentIndexChanged.connect(lambda i: self.combo.itemData(i) and self.chosen.emit(self.combo.itemData(i)))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lbl = QLabel("Side band (project setting)", self)
        lbl.setObjectName("fieldLabel")
        lay.addWidget(lbl)
        lay.addWidget(self.combo)
        lay.addStretch(1)

    def show_setting(self, value: str, enabled: bool) -> None:
        """Show ``value`` (without emitting :attr:`chosen`); enabled only with a project."""
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(0, self.combo.findData(value)))
        self.combo.blockSignals(False)
        self.combo.setEnabled(enabled)


class MeasurementDetails(QFrame):
    """A form of the selected measurement's metadata (:data:`DETAIL_KEYS`), "–" where unknown."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailsBox")
        form = QFormLayout(self)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(2)
        self.labels: dict[str, QLabel] = {}
        for key in DETAIL_KEYS:
            v = QLabel("–", self)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            v.setWordWrap(key == "Side band")
            self.labels[key] = v
            form.addRow(key, v)

    def show_details(self, details: dict[str, str]) -> None:
        """Write ``{key: text}`` (e.g. :func:`app.logic.importing.measurement_details`)."""
        for key, text in details.items():
            self.labels[key].setText(text)
