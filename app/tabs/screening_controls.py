"""The Screening review tab's small controls, each owning its widgets (as napari's ``_qt`` layer controls do).

* :class:`ReviewMeasurementList` — the project's measurements with their review counts;
* :class:`GridBar` — the grid's order (field order, most uncertain, worst retrieval number),
  "Overrides only", the key hint and the "?" button;
* :class:`ThresholdBar` — the threshold slider over a range (model score 0..1 or rule peak,
  log10), its value, the clean/noisy counts and "Apply threshold";
* :class:`RetrainReportDialog` — before/after metrics of a retraining, "Adopt" or "Keep".

The tab (:class:`app.tabs.screening_tab.ScreeningTab`) joins them; the text they show comes
from :mod:`app.logic.screening`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..logic.screening import QUALITY_LABELS, fmt_metric
from ..widgets.field_grid import FieldFilterProxy

__all__ = ["ReviewMeasurementList", "GridBar", "ThresholdBar", "RetrainReportDialog", "SLIDER_STEPS"]

#: Steps of the threshold slider over its range.
SLIDER_STEPS = 1000
_ID_ROLE = Qt.ItemDataRole.UserRole
_NAME_ROLE = Qt.ItemDataRole.UserRole + 1


class ReviewMeasurementList(QListWidget):
    """One row per measurement: its name and a status line (e.g. "12/72 reviewed · 2 overridden").

    Signals
    -------
    measurement_chosen(int)
        The user (or :meth:`select` with ``emit=True``) made this measurement id current.
    """

    measurement_chosen = Signal(int)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("screeningMeasurements")
        self.currentItemChanged.connect(
            lambda current, _previous: current is not None and self.measurement_chosen.emit(int(current.data(_ID_ROLE))))

    def fill(self, rows: Iterable[tuple[int, str]], status_of: Callable[[int], str]) -> None:
        """Replace the rows by ``(id, name)`` pairs, each with ``status_of(id)``; no signal is emitted."""
        self.blockSignals(True)
        self.clear()
        for mid, name in rows:
            item = QListWidgetItem()
            item.setData(_ID_ROLE, mid)
            item.setData(_NAME_ROLE, name)
            self.addItem(item)
            self.set_status(mid, status_of(mid))
        self.blockSignals(False)

    def item_of(self, mid: int) -> Optional[QListWidgetItem]:
        for r in range(self.count()):
            it = self.item(r)
            if int(it.data(_ID_ROLE)) == mid:
                return it
        return None

    def set_status(self, mid: int, status: str) -> None:
        """Write the status line of measurement ``mid`` (nothing if it is not listed)."""
        it = self.item_of(mid)
        if it is not None:
            name = it.data(_NAME_ROLE)
            it.setText(f"{name}\n{status}")
            it.setToolTip(f"{name}: {status}")

    def select(self, mid: int, emit: bool = True) -> bool:
        """Make ``mid`` current (emitting :attr:`measurement_chosen` only if ``emit``); False if not listed."""
        it = self.item_of(mid)
        if it is None:
            return False
        self.blockSignals(not emit)
        self.setCurrentItem(it)
        self.blockSignals(False)
        return True

    def current_id(self) -> Optional[int]:
        it = self.currentItem()
        return None if it is None else int(it.data(_ID_ROLE))


class GridBar(QWidget):
    """Order and filter of the field grid, the key hint and the "?" button.

    Signals
    -------
    sort_chosen(object)
        None (field order), :attr:`FieldFilterProxy.UNCERTAINTY`, :attr:`FieldFilterProxy.UNLIKE_NEIGHBOURS`
        or a quality number's name.
    """

    sort_chosen = Signal(object)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.sort_combo = QComboBox(self)
        self.sort_combo.setObjectName("sortOrder")
        self.sort_combo.addItem("Field order", None)
        self.sort_combo.addItem("Most uncertain first", FieldFilterProxy.UNCERTAINTY)
        self.sort_combo.addItem("Most unlike its neighbours first", FieldFilterProxy.UNLIKE_NEIGHBOURS)
        for key, (name, _unit) in QUALITY_LABELS.items():
            self.sort_combo.addItem(f"Retrieval: worst {name} first", key)
        self.sort_combo.setToolTip("Order of the fields: as measured, nearest the threshold first, most unlike "
                                   "the fields of nearest illumination first (largest consistency z-score), or by "
                                   "a retrieval quality number (0 for a perfect field; worst first)")
        self.sort_combo.currentIndexChanged.connect(lambda i: self.sort_chosen.emit(self.sort_combo.itemData(i)))
        self.overrides_only = QCheckBox("Overrides only", self)
        self.overrides_only.setObjectName("overridesOnly")
        self.help_button = QPushButton("?", self)
        self.help_button.setFixedWidth(28)
        self.help_button.setToolTip("Keyboard shortcuts (?)")
        hint = QLabel("C clean · N noisy · U auto", self)
        hint.setToolTip("C clean · N noisy (both advance) · Space toggle · U automatic · Ctrl+Z undo · "
                        "Ctrl+Shift+Z redo · ? all keys")
        hint.setObjectName("fieldLabel")
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.setSpacing(6)
        bar.addWidget(self.sort_combo)
        bar.addWidget(self.overrides_only)
        bar.addStretch(1)
        bar.addWidget(hint)
        bar.addWidget(self.help_button)

    def show_sort_key(self, key: Optional[str]) -> None:
        """Show ``key`` in the combo without emitting :attr:`sort_chosen`."""
        k = self.sort_combo.findData(key) if key is not None else 0
        if k >= 0 and self.sort_combo.currentIndex() != k:
            self.sort_combo.blockSignals(True)
            self.sort_combo.setCurrentIndex(k)
            self.sort_combo.blockSignals(False)

    def enable_quality_keys(self, keys: Iterable[str]) -> None:
        """Offer the "worst … first" orders (and "most unlike its neighbours") only for the numbers the shown
        fields have."""
        keys = set(keys)
        model = self.sort_combo.model()
        for i in range(2, self.sort_combo.count()):
            item = model.item(i) if hasattr(model, "item") else None
            if item is not None:
                item.setEnabled(self.sort_combo.itemData(i) in keys)


class ThresholdBar(QWidget):
    """The threshold: slider over (low, high), its value, the clean/noisy counts, "Apply threshold".

    Signals
    -------
    moved(float)
        The user moved the slider to this threshold.
    """

    moved = Signal(float)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.range = (0.0, 1.0)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("thresholdSlider")
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(140)
        self.slider.valueChanged.connect(self._slider_moved)
        self.value_label = QLabel("", self)
        self.value_label.setObjectName("thresholdLabel")
        self.counts_label = QLabel("", self)
        self.counts_label.setObjectName("countsLabel")
        self.apply_button = QPushButton("Apply threshold", self)
        self.apply_button.setToolTip("Record the automatic decisions at this threshold as a new screening run")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        lbl = QLabel("Threshold", self)
        lbl.setObjectName("fieldLabel")
        lay.addWidget(lbl)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.value_label)
        lay.addWidget(self.counts_label)
        lay.addWidget(self.apply_button)

    def configure(self, low: float, high: float, what: str) -> None:
        """The slider's range and what it thresholds (its tooltip)."""
        self.range = (low, high)
        self.slider.setToolTip(f"Threshold on the {what}: above it a field is noisy")

    def show_threshold(self, t: float, clean: int, noisy: int) -> None:
        """Put the slider at ``t`` (no signal) and write the value and counts."""
        lo, hi = self.range
        self.slider.blockSignals(True)
        self.slider.setValue(int(round((t - lo) / (hi - lo) * SLIDER_STEPS)))
        self.slider.blockSignals(False)
        self.show_counts(t, clean, noisy)

    def show_counts(self, t: float, clean: int, noisy: int) -> None:
        self.value_label.setText(f"{t:.2f}")
        self.counts_label.setText(f"<span style='color:#009E73'>■</span> {clean} clean · "
                                  f"<span style='color:#D55E00'>■</span> {noisy} noisy")

    def _slider_moved(self, v: int) -> None:
        lo, hi = self.range
        self.moved.emit(lo + (hi - lo) * v / SLIDER_STEPS)


class RetrainReportDialog(QDialog):
    """Before/after metrics of a retraining (an :class:`engine.screening.retrain` report).

    "Adopt the new model" is offered only when the new model is better and was saved; accepting
    the dialog calls ``adopt(report.model, report.saved_path)``.
    """

    ROWS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity (noisy found)"),
            ("specificity", "Specificity (clean kept)"), ("roc_auc", "ROC AUC"))

    def __init__(self, rep: Any, adopt: Callable[[Any, Any], None], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("retrainReport")
        self.setWindowTitle("Retrained screening model")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        table = QTableWidget(len(self.ROWS), 3, self)
        table.setHorizontalHeaderLabels(["Held-out overrides", "Before", "After"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for r, (k, name) in enumerate(self.ROWS):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, QTableWidgetItem(fmt_metric(rep.before.get(k))))
            table.setItem(r, 2, QTableWidgetItem(fmt_metric(rep.after.get(k))))
        verdict = ("The fine-tuned model is better on the held-out decisions."
                   if rep.improved else "The fine-tuned model is <b>not</b> better on the held-out decisions; "
                   "keep the current one.")
        text = QLabel(f"{verdict}<br>Trained on {rep.n_train} of your decisions (+{rep.n_replay} replayed "
                      f"training fields), evaluated on {rep.n_holdout} held out."
                      + (f"<br>Saved as <code>{rep.saved_path}</code>." if rep.saved_path else ""), self)
        text.setWordWrap(True)
        buttons = QDialogButtonBox(self)
        self.adopt_button = buttons.addButton("Adopt the new model", QDialogButtonBox.ButtonRole.AcceptRole)
        self.adopt_button.setEnabled(bool(rep.improved and rep.model is not None and rep.saved_path))
        buttons.addButton("Keep the current model", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.accepted.connect(lambda: adopt(rep.model, rep.saved_path))
        lay = QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(text)
        lay.addWidget(buttons)
        self.resize(480, 300)
