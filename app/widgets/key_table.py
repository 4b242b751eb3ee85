"""A small non-modal dialog listing keyboard shortcuts as a two-column table."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

__all__ = ["key_table_dialog"]


def key_table_dialog(parent: QWidget, title: str, rows: Sequence[tuple[str, str]],
                     headers: tuple[str, str], object_name: str, stretch_column: int = 1) -> QDialog:
    """Open (non-modal, deleted on close) a dialog with ``rows`` of (first, second) column text."""
    dlg = QDialog(parent)
    dlg.setObjectName(object_name)
    dlg.setWindowTitle(title)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    table = QTableWidget(len(rows), 2, dlg)
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    table.horizontalHeader().setSectionResizeMode(1 - stretch_column, QHeaderView.ResizeMode.ResizeToContents)
    for r, (first, second) in enumerate(rows):
        table.setItem(r, 0, QTableWidgetItem(first))
        table.setItem(r, 1, QTableWidgetItem(second))
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dlg)
    buttons.rejected.connect(dlg.reject)
    lay = QVBoxLayout(dlg)
    lay.addWidget(table)
    lay.addWidget(buttons)
    dlg.resize(440, 360)
    dlg.open()
    return dlg
