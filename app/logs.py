"""Session logging: one log file per session in the user's log folder, the last ten kept.

:func:`setup_logging` attaches a file handler to the root logger, so messages from
``engine.*`` and ``app.*`` loggers alike land in the session's file, and routes Qt's own
warnings (``qWarning`` ...) into the ``qt`` logger. Files are named
``odt-studio_YYYYmmdd-HHMMSS_<pid>.log``; older ones beyond ``keep`` are deleted.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

from . import paths

__all__ = ["LOG_PREFIX", "setup_logging", "shutdown_logging", "current_log_file", "rotate_logs",
           "install_qt_message_handler"]

LOG_PREFIX = "odt-studio_"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(threadName)s]: %(message)s"

_handler: Optional[logging.Handler] = None
_log_file: Optional[Path] = None

log = logging.getLogger(__name__)


def current_log_file() -> Optional[Path]:
    """The file this session logs to, or None before :func:`setup_logging`."""
    return _log_file


def rotate_logs(log_dir: Path, keep: int = 10) -> list[Path]:
    """Delete all but the ``keep`` newest session logs in ``log_dir``; return the deleted paths.

    Only files named ``odt-studio_*.log`` are touched. Newest means latest modification time
    (ties broken by name, which embeds the start time).
    """
    files = [p for p in Path(log_dir).glob(f"{LOG_PREFIX}*.log") if p.is_file()]
    files.sort(key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    removed = []
    for old in files[max(0, keep):]:
        try:
            old.unlink()
            removed.append(old)
        except OSError:  # in use by another running session (Windows) or read-only: keep it
            pass
    return removed


def _new_log_path(log_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = log_dir / f"{LOG_PREFIX}{stamp}_{os.getpid()}.log"
    p, i = base, 1
    while p.exists():  # two sessions in the same second in the same process (tests)
        p = base.with_name(f"{base.stem}-{i}.log")
        i += 1
    return p


def setup_logging(log_dir: str | Path | None = None, keep: int = 10, level: int = logging.INFO,
                  console: bool = False) -> Path:
    """Start this session's log file and return its path.

    Parameters
    ----------
    log_dir : path, optional
        Folder for the log files; default :func:`app.paths.user_log_dir`. Created if missing.
    keep : int
        How many session logs to keep, this one included (default 10).
    level : int
        Root logger level.
    console : bool
        Also echo to stderr (warnings and above).

    Calling it again closes the previous session file and starts a new one.
    """
    global _handler, _log_file
    log_dir = Path(log_dir) if log_dir is not None else paths.user_log_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    path = _new_log_path(log_dir)
    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._odt_session = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if console and not any(getattr(h, "_odt_console", False) for h in root.handlers):
        ch = logging.StreamHandler(sys.stderr)
        ch.setLevel(logging.WARNING)
        ch.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ch._odt_console = True  # type: ignore[attr-defined]
        root.addHandler(ch)
    _handler, _log_file = handler, path
    rotate_logs(log_dir, keep=keep)
    from engine import __version__

    log.info("ODT Studio %s session started; Python %s on %s; log %s",
             __version__, platform.python_version(), platform.platform(), path)
    return path


def shutdown_logging() -> None:
    """Close this session's log file and detach it from the root logger."""
    global _handler, _log_file
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
    _handler, _log_file = None, None


def install_qt_message_handler() -> None:
    """Route Qt's diagnostic messages (qDebug/qWarning/qCritical) into the ``qt`` logger."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(mode, context, message):  # noqa: ANN001 - Qt signature
        qt_log.log(levels.get(mode, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)
