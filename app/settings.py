"""Persistent user settings (QSettings): window layout, last project, recent projects.

Everything the application remembers between sessions goes through :class:`AppSettings`,
so ``odt-studio --reset-settings`` (:func:`reset_settings`) forgets all of it at once.
Settings live where Qt puts them for organisation and application "ODT Studio" (on Linux
``~/.config/ODT Studio/ODT Studio.conf``); tests pass an explicit INI file instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

__all__ = ["ORGANISATION", "APPLICATION", "MAX_RECENT", "AppSettings", "reset_settings"]

ORGANISATION = "ODT Studio"
APPLICATION = "ODT Studio"
MAX_RECENT = 10


def _qsettings(path: str | Path | None) -> QSettings:
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


class AppSettings:
    """Typed access to the application's QSettings.

    Parameters
    ----------
    path : path, optional
        An INI file to use instead of the user's settings (tests, portable installs).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.qsettings = _qsettings(path)

    # ------------------------------------------------------------------ window layout
    def save_window(self, window: QMainWindow) -> None:
        """Remember the window's geometry and its toolbars/docks state."""
        self.qsettings.setValue("window/geometry", window.saveGeometry())
        self.qsettings.setValue("window/state", window.saveState())
        self.qsettings.sync()

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore what :meth:`save_window` stored; False when nothing was stored."""
        geom = self.qsettings.value("window/geometry")
        state = self.qsettings.value("window/state")
        ok = False
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            ok = window.restoreGeometry(geom)
        if isinstance(state, QByteArray) and not state.isEmpty():
            window.restoreState(state)
        return bool(ok)

    def set_value(self, key: str, value) -> None:
        self.qsettings.setValue(key, value)
        self.qsettings.sync()

    def value(self, key: str, default=None):
        return self.qsettings.value(key, default)

    # ------------------------------------------------------------------ projects
    @property
    def last_project(self) -> Optional[str]:
        v = self.qsettings.value("projects/last", "")
        return str(v) if v else None

    @last_project.setter
    def last_project(self, path: str | Path | None) -> None:
        self.qsettings.setValue("projects/last", str(path) if path else "")
        self.qsettings.sync()

    def recent_projects(self) -> list[str]:
        """Recently opened project folders, most recent first (at most :data:`MAX_RECENT`)."""
        v = self.qsettings.value("projects/recent", [])
        if v is None:
            return []
        if isinstance(v, str):  # QSettings returns a lone string for a one-element list
            v = [v]
        return [str(x) for x in v if x][:MAX_RECENT]

    def add_recent_project(self, path: str | Path) -> list[str]:
        """Put ``path`` first in the recent list (no duplicates) and make it the last project."""
        p = str(Path(path))
        recent = [p] + [r for r in self.recent_projects() if r != p]
        recent = recent[:MAX_RECENT]
        self.qsettings.setValue("projects/recent", recent)
        self.last_project = p
        return recent

    def remove_recent_project(self, path: str | Path) -> None:
        p = str(Path(path))
        self.qsettings.setValue("projects/recent", [r for r in self.recent_projects() if r != p])
        if self.last_project == p:
            self.last_project = None
        self.qsettings.sync()

    def clear_recent_projects(self) -> None:
        self.qsettings.setValue("projects/recent", [])
        self.qsettings.sync()

    # ------------------------------------------------------------------ misc
    @property
    def first_run_done(self) -> bool:
        v = self.qsettings.value("general/first_run_done", False)
        return v in (True, "true", "1", 1)

    @first_run_done.setter
    def first_run_done(self, done: bool) -> None:
        self.qsettings.setValue("general/first_run_done", bool(done))
        self.qsettings.sync()

    @property
    def import_root(self) -> Optional[str]:
        v = self.qsettings.value("import/root", "")
        return str(v) if v else None

    @import_root.setter
    def import_root(self, path: str | Path | None) -> None:
        self.qsettings.setValue("import/root", str(path) if path else "")
        self.qsettings.sync()

    def reset(self) -> None:
        """Forget everything stored."""
        self.qsettings.clear()
        self.qsettings.sync()

    @property
    def file_name(self) -> str:
        return self.qsettings.fileName()


def reset_settings(path: str | Path | None = None) -> str:
    """Forget all saved settings (``--reset-settings``); returns the settings file's name."""
    s = AppSettings(path)
    s.reset()
    return s.file_name
