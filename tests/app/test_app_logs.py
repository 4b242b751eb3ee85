"""Session log files: one per session, in the user's log folder, the last ten kept."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from app import logs


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    logs.shutdown_logging()
    root.setLevel(level)
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)


def test_a_session_log_is_created_in_the_user_log_folder(isolated_user_dirs: Path):
    path = logs.setup_logging()
    assert path.parent == isolated_user_dirs / "state" / "odt-studio" / "log"
    assert path.name.startswith(logs.LOG_PREFIX) and path.suffix == ".log"
    assert logs.current_log_file() == path
    logging.getLogger("engine.tomography").warning("missing cone is large: %d%%", 42)
    logging.getLogger("app.x").info("hello from the app")
    text = path.read_text(encoding="utf-8")
    assert "session started" in text
    assert "missing cone is large: 42%" in text and "engine.tomography" in text
    assert "hello from the app" in text


def test_rotation_keeps_the_newest_ten(tmp_path: Path):
    d = tmp_path / "logs"
    d.mkdir()
    now = time.time()
    old = []
    for i in range(14):
        p = d / f"{logs.LOG_PREFIX}2026010{i // 10}-0000{i % 10}_1.log"
        p.write_text(f"old {i}")
        os.utime(p, (now - 1000 + i, now - 1000 + i))
        old.append(p)
    other = d / "unrelated.log"
    other.write_text("not ours")
    new = logs.setup_logging(d, keep=10)
    left = sorted(d.glob(f"{logs.LOG_PREFIX}*.log"))
    assert len(left) == 10
    assert new in left
    assert set(left) - {new} == set(old[-9:]), "the nine newest old logs stay, the rest go"
    assert other.exists()


def test_each_session_gets_its_own_file(tmp_path: Path):
    a = logs.setup_logging(tmp_path, keep=10)
    logging.getLogger("t").warning("first session")
    b = logs.setup_logging(tmp_path, keep=10)
    logging.getLogger("t").warning("second session")
    assert a != b
    assert "first session" in a.read_text() and "second session" not in a.read_text()
    assert "second session" in b.read_text()
    assert sum(isinstance(h, logging.FileHandler) and getattr(h, "_odt_session", False)
               for h in logging.getLogger().handlers) == 1


def test_qt_warnings_go_to_the_log(tmp_path: Path, qtbot):
    from PySide6.QtCore import qInstallMessageHandler, qWarning

    path = logs.setup_logging(tmp_path)
    logs.install_qt_message_handler()
    try:
        qWarning("a Qt warning for the log")
    finally:
        qInstallMessageHandler(None)
    assert "a Qt warning for the log" in path.read_text()
