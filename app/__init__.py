"""ODT Studio desktop application (PySide6 views over the Qt-free :mod:`engine`)."""

from engine import __version__

__all__ = ["__version__"]
