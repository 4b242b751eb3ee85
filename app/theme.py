"""Look of the application: Qt's Fusion style with a dark, neutral palette and one accent.

A dark neutral background suits image work (holograms and refractive-index maps are read
against it without glare) and matches pyqtgraph's black plot background.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["ACCENT", "dark_palette", "STYLE_SHEET", "apply_theme"]

ACCENT = "#4aa3df"

_COLORS = {
    "window": "#202328",
    "base": "#17191d",
    "alt": "#1d2025",
    "button": "#2b2f36",
    "text": "#e3e5e8",
    "dim": "#8b929c",
    "border": "#3a3f47",
}


def dark_palette() -> QPalette:
    """The application palette (active/inactive and disabled colour groups)."""
    c = {k: QColor(v) for k, v in _COLORS.items()}
    p = QPalette()
    R = QPalette.ColorRole
    p.setColor(R.Window, c["window"])
    p.setColor(R.WindowText, c["text"])
    p.setColor(R.Base, c["base"])
    p.setColor(R.AlternateBase, c["alt"])
    p.setColor(R.ToolTipBase, QColor("#2d3138"))
    p.setColor(R.ToolTipText, c["text"])
    p.setColor(R.PlaceholderText, c["dim"])
    p.setColor(R.Text, c["text"])
    p.setColor(R.Button, c["button"])
    p.setColor(R.ButtonText, c["text"])
    p.setColor(R.BrightText, QColor("#ff6b6b"))
    p.setColor(R.Link, QColor(ACCENT))
    p.setColor(R.Highlight, QColor("#2f6f9f"))
    p.setColor(R.HighlightedText, QColor("#ffffff"))
    p.setColor(R.Light, QColor("#3b4048"))
    p.setColor(R.Midlight, QColor("#33373e"))
    p.setColor(R.Mid, QColor("#2a2d33"))
    p.setColor(R.Dark, QColor("#141619"))
    p.setColor(R.Shadow, QColor("#0b0c0e"))
    dis = QPalette.ColorGroup.Disabled
    for role in (R.WindowText, R.Text, R.ButtonText):
        p.setColor(dis, role, QColor("#6b717a"))
    p.setColor(dis, R.Highlight, QColor("#3a3f47"))
    return p


STYLE_SHEET = f"""
QMainWindow::separator {{ width: 4px; height: 4px; }}
QTabWidget::pane {{ border: 1px solid {_COLORS['border']}; border-radius: 4px; top: -1px; }}
QTabBar::tab {{ padding: 7px 18px; margin-right: 2px; border: 1px solid {_COLORS['border']};
    border-bottom: none; border-top-left-radius: 4px; border-top-right-radius: 4px;
    background: {_COLORS['button']}; color: {_COLORS['dim']}; }}
QTabBar::tab:selected {{ background: {_COLORS['window']}; color: {_COLORS['text']};
    border-top: 2px solid {ACCENT}; }}
QTabBar::tab:hover:!selected {{ color: {_COLORS['text']}; }}
QStatusBar {{ border-top: 1px solid {_COLORS['border']}; }}
QStatusBar QLabel#deviceLabel, QStatusBar QLabel#projectLabel {{ color: {_COLORS['dim']}; padding: 0 6px; }}
QHeaderView::section {{ background: {_COLORS['button']}; color: {_COLORS['text']}; padding: 4px 6px;
    border: none; border-right: 1px solid {_COLORS['border']}; }}
QTableView {{ gridline-color: {_COLORS['border']}; selection-background-color: #2f6f9f; }}
QLabel#sectionTitle {{ font-weight: 600; font-size: 11pt; }}
QLabel#fieldLabel, QLabel#scanSummary {{ color: {_COLORS['dim']}; }}
QLabel#dropZone {{ border: 2px dashed {_COLORS['border']}; border-radius: 10px; color: {_COLORS['dim']};
    padding: 24px; }}
QLabel#hologramPlaceholder {{ background: #000000; color: {_COLORS['dim']}; padding: 24px; }}
QFrame#detailsBox {{ background: {_COLORS['alt']}; border: 1px solid {_COLORS['border']}; border-radius: 4px;
    padding: 6px; }}
QFrame#comingSoonCard {{ background: {_COLORS['alt']}; border: 1px solid {_COLORS['border']};
    border-radius: 10px; }}
QLabel#comingSoonBadge {{ background: #4a3b16; color: #f0c674; border-radius: 9px; padding: 2px 10px;
    font-weight: 600; }}
QLabel#comingSoonPlan {{ color: {_COLORS['dim']}; }}
QLabel#comingSoonItem {{ color: {_COLORS['text']}; }}
QProgressBar {{ border: 1px solid {_COLORS['border']}; border-radius: 3px; background: {_COLORS['base']};
    max-height: 12px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 2px; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style, the dark palette and the small style sheet above."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLE_SHEET)
