"""The measurement table of the Acquisition import tab: a Qt model of measurement folders and its view.

:class:`MeasurementTableModel` holds :class:`engine.store.folders.MeasurementInfo` rows (name,
sample, images, image size, status; the text comes from :func:`app.logic.importing.cell_text`)
and marks the folders the open project already holds; :class:`MeasurementTable` is the sortable,
multi-select view over it, with the selection helpers the tab needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from engine.store.folders import MeasurementInfo

from ..logic.importing import COLUMNS, VALID_TEXT, cell_text

__all__ = ["MeasurementTableModel", "MeasurementTable"]


def _imported_icon() -> QPixmap:
    pm = QPixmap(14, 14)
    pm.fill(QColor(0, 0, 0, 0))
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setBrush(QColor("#4aa3df"))
    p.setPen(QColor("#4aa3df"))
    p.drawEllipse(1, 1, 12, 12)
    p.setPen(QColor("#ffffff"))
    f = QFont()
    f.setPixelSize(10)
    f.setBold(True)
    p.setFont(f)
    p.drawText(pm.rect(), int(Qt.AlignmentFlag.AlignCenter), "P")
    p.end()
    return pm


class MeasurementTableModel(QAbstractTableModel):
    """Rows of :class:`engine.store.folders.MeasurementInfo`: name, sample, images, size, status."""

    COLUMNS = COLUMNS
    PathRole = Qt.ItemDataRole.UserRole + 1
    SortRole = Qt.ItemDataRole.UserRole + 2
    InProjectRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._rows: list[MeasurementInfo] = []
        self._in_project: set[str] = set()
        self._project_icon: Optional[QPixmap] = None
        style = parent.style() if parent is not None else None
        self._ok_icon = style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton) if style else None
        self._bad_icon = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical) if style else None

    # ---------------------------------------------------------------- Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 - Qt API
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        info = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(info, col)
        if role == self.SortRole:
            if col == 2:
                return info.n_images
            if col == 3:
                return (info.image_shape[0] * info.image_shape[1]) if info.image_shape else -1
            return self.cell_text(info, col).casefold()
        if role == self.PathRole:
            return str(info.path)
        if role == self.InProjectRole:
            return self.in_project(info)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 0:
                return str(info.path) + ("\n(already in the open project)" if self.in_project(info) else "")
            return (info.error or VALID_TEXT) if col == 4 else None
        if role == Qt.ItemDataRole.DecorationRole and col == 0 and self.in_project(info):
            if self._project_icon is None:
                self._project_icon = _imported_icon()
            return self._project_icon
        if role == Qt.ItemDataRole.FontRole and col == 0 and self.in_project(info):
            f = QFont()
            f.setItalic(True)
            return f
        if role == Qt.ItemDataRole.ForegroundRole and col == 4 and not info.valid:
            return QColor("#ff7b72")
        if role == Qt.ItemDataRole.DecorationRole and col == 4:
            return self._ok_icon if info.valid else self._bad_icon
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # ---------------------------------------------------------------- own API
    @staticmethod
    def cell_text(info: MeasurementInfo, col: int) -> str:
        return cell_text(info, col)

    def set_rows(self, rows: list[MeasurementInfo]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def rows(self) -> list[MeasurementInfo]:
        return list(self._rows)

    def in_project(self, info: MeasurementInfo) -> bool:
        return str(Path(info.path).resolve()) in self._in_project

    def set_in_project(self, paths: set[str]) -> None:
        """Mark the folders (resolved path strings) that the open project already holds."""
        self._in_project = set(paths)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, 0))

    def info(self, row: int) -> MeasurementInfo:
        return self._rows[row]


class ElideLeftDelegate(QStyledItemDelegate):
    """Elides long text on the left, so the end of an error message (the problem) stays visible."""

    def initStyleOption(self, option: QStyleOptionViewItem,  # noqa: N802 - Qt API
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideLeft


class MeasurementTable(QTableView):
    """Sortable, multi-select view of a :class:`MeasurementTableModel` (``measurements``) through ``proxy``.

    The status column elides on the left, so the end of an error message (the problem) stays visible.
    """

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        # the models belong to the parent and are made before the view, so that when the parent is
        # destroyed they go first: a view deleted before its models would report row changes from
        # a half-destroyed window
        measurements = MeasurementTableModel(parent)
        proxy = QSortFilterProxyModel(parent)
        super().__init__(parent)
        self.setObjectName("measurementTable")
        self.measurements, self.proxy = measurements, proxy
        self.proxy.setSourceModel(self.measurements)
        self.proxy.setSortRole(MeasurementTableModel.SortRole)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        for c, mode in enumerate((QHeaderView.ResizeMode.Interactive, QHeaderView.ResizeMode.Interactive,
                                  QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.ResizeToContents,
                                  QHeaderView.ResizeMode.Stretch)):
            hh.setSectionResizeMode(c, mode)
        hh.resizeSection(0, 170)
        hh.resizeSection(1, 150)
        self._status_delegate = ElideLeftDelegate(self)
        self.setItemDelegateForColumn(4, self._status_delegate)

    def info_at(self, index: QModelIndex | QPersistentModelIndex) -> MeasurementInfo:
        """The row of a proxy index."""
        return self.measurements.info(self.proxy.mapToSource(index).row())

    def current_info(self) -> Optional[MeasurementInfo]:
        idx = self.currentIndex()
        return self.info_at(idx) if idx.isValid() else None

    def selected_infos(self) -> list[MeasurementInfo]:
        """The selected rows' MeasurementInfo, in table order."""
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.info_at(self.proxy.index(r, 0)) for r in rows]

    def selected_path(self) -> Optional[Path]:
        """The folder of the selected measurement, or None."""
        idx = self.currentIndex()
        if not idx.isValid() or not self.selectionModel().hasSelection():
            return None
        return Path(self.proxy.data(self.proxy.index(idx.row(), 0), MeasurementTableModel.PathRole))

    def select_path(self, path: str | Path) -> bool:
        """Select the row of measurement folder ``path``; False if it is not listed."""
        p = Path(path)
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if Path(self.proxy.data(idx, MeasurementTableModel.PathRole)) == p:
                self.selectRow(r)
                self.setCurrentIndex(idx)
                self.scrollTo(idx)
                return True
        return False
