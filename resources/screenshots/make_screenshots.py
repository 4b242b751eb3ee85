"""Screenshots of a first launch: ``odt-studio --demo`` on a fresh user account, under Xvfb.

Usage (from the repository root; it starts ``xvfb-run`` itself when there is no display)::

    .venv/bin/python resources/screenshots/make_screenshots.py [--out-dir DIR] [--keep-home]

What it does, as a new user would see it:

1. makes a temporary home (``HOME`` and every ``XDG_*`` folder): no settings, no demo project;
2. runs the real entry point, ``app.cli.main(["--demo"])``, so the window builds the demo
   project in the background (:mod:`engine.pipeline.demo_project`) and saves
   ``first_launch.png`` while that job runs;
3. waits for the demo project and for every tab to show its part, then grabs the screen's
   pixels of the window (``QScreen.grabWindow``: what the X server shows, OpenGL/VTK included)
   for each tab: ``main_window.png`` (Acquisition import), ``screening_tab.png``,
   ``reconstruction_tab.png``, ``birefringence_tab.png``;
4. records the review workflow as one figure, ``review_workflow.png``: the field grid, an
   override made with the keyboard (``N``), and the audit trail it left in ``project.sqlite``;
5. shows, in ``screening_against_neighbours.png``, a field in the view's "Against neighbours" mode
   (key ``D``): the one most unlike its nearest illuminations (largest consistency z-score) among those
   the network kept, if one stands out (z > 3), else among all.

The window is 1280 × 800 (the application's default size). Timings go to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TAB_FILES = ("main_window.png", "screening_tab.png", "reconstruction_tab.png", "birefringence_tab.png")
SCREEN = "1920x1200x24"


def _fresh_home() -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="odt-first-launch-"))
    os.environ["HOME"] = str(tmp / "home")
    for var, sub in (("XDG_DATA_HOME", ".local/share"), ("XDG_CONFIG_HOME", ".config"),
                     ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        path = tmp / "home" / sub
        path.mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(path)
    return tmp


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Driver:
    """Drives the running application from inside its event loop (started by a zero-delay timer)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.window = None
        self.ready = None
        self.t0 = time.perf_counter()
        self.failed = ""

    # ------------------------------------------------------------------ helpers
    def spin(self, seconds: float) -> None:
        from PySide6.QtWidgets import QApplication

        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            QApplication.processEvents()
            time.sleep(0.01)

    def wait(self, condition, timeout: float, what: str) -> bool:
        t_end = time.perf_counter() + timeout
        while time.perf_counter() < t_end:
            if condition():
                return True
            self.spin(0.1)
        self.failed = f"timed out waiting for {what}"
        _log(self.failed)
        return False

    def grab(self):
        w = self.window
        return w.screen().grabWindow(w.winId())

    def save(self, name: str, pixmap=None) -> Path:
        path = self.out_dir / name
        pm = pixmap if pixmap is not None else self.grab()
        if not pm.save(str(path)):
            raise OSError(f"could not write {path}")
        _log(f"{path}: {pm.width()}×{pm.height()} ({time.perf_counter() - self.t0:.0f} s after launch)")
        return path

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - report, then close the window anyway
            import traceback

            traceback.print_exc()
            self.failed = f"{type(exc).__name__}: {exc}"
        if self.window is not None:
            self.window.close()

    def _run(self) -> None:
        from PySide6.QtWidgets import QApplication

        from app.main_window import MainWindow

        if not self.wait(lambda: any(isinstance(w, MainWindow) and w.isVisible()
                                     for w in QApplication.topLevelWidgets()), 30, "the main window"):
            return
        w = self.window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow))
        w.demo_ready.connect(lambda demo: setattr(self, "ready", demo))
        # the first launch: the build job runs, its progress in the status bar
        self.wait(lambda: self.ready is not None or (w.runner.current is not None
                                                      and w.runner.current.fraction >= 0.2), 120,
                  "the demo build to get going")
        self.failed = ""
        self.save("first_launch.png")
        if not self.wait(lambda: self.ready is not None, 600, "the demo project"):
            return
        _log(f"demo project ready after {time.perf_counter() - self.t0:.0f} s "
             f"(built in {self.ready.seconds:.0f} s)")
        if not self.wait(lambda: (w.screening_tab.data is not None and w.reconstruction_tab.result is not None
                                  and w.birefringence_tab.data is not None
                                  and w.import_tab.viewer.data is not None and w.runner.current is None),
                         180, "every tab to show the demo"):
            return
        self.spin(1.0)
        self._tabs()
        self._review_workflow()
        self._against_neighbours()

    def _tabs(self) -> None:
        w = self.window
        view = w.import_tab.viewer.image_view
        n = w.import_tab.viewer.data.shape[0]
        if n > 1:
            view.setCurrentIndex(n // 2)
        st = w.screening_tab
        overridden = [i for i, m in enumerate(st.grid_model.manual) if m is not None]
        if overridden:
            st.select_field(overridden[0])
        for i, name in enumerate(TAB_FILES):
            w.tabs.setCurrentIndex(i)
            self.spin(2.0)
            self.save(name)

    def _review_workflow(self) -> None:
        """Three panels: the grid with a field chosen, the override by key N, the audit trail."""
        from PySide6.QtCore import QEvent, QPoint, QRect, Qt
        from PySide6.QtGui import QKeyEvent
        from PySide6.QtWidgets import QApplication

        w = self.window
        st = w.screening_tab
        w.tabs.setCurrentWidget(st)
        manual = st.grid_model.manual
        # a field a reviewer looks at next: one the model kept, not yet decided by hand
        order = st.field_order()
        candidates = [i for row, i in enumerate(order)
                      if manual[i] is None and st.grid_model.decision(i) == 1 and 4 <= row < 12]
        field = candidates[-1] if candidates else order[0]  # in the rows the panel shows
        st.select_field(field)
        st.setFocus()
        self.spin(1.5)
        # the part of the window that tells the story: grid, field view and its details
        x0 = st.grid.mapTo(w, QPoint(0, 0)).x() - 8
        y0 = st.mapTo(w, QPoint(0, 0)).y()
        y1 = st.details.mapTo(w, QPoint(0, st.details.height())).y() + 8
        crop = QRect(x0, y0, w.width() - x0, y1 - y0)
        panels = [self.grab().copy(crop)]
        for etype in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(st, QKeyEvent(etype, Qt.Key.Key_N, Qt.KeyboardModifier.NoModifier, "n"))
        st.select_field(field)  # stay on it to show the new decision
        self.spin(1.5)
        panels.append(self.grab().copy(crop))
        panels.append(self._audit_trail_panel(width=1700))
        compose_review_figure(panels, self.out_dir / "review_workflow.png",
                              ("1  Review: every field framed clean (C) or noisy (N), with its score",
                               f"2  Override: key N marks field {field} noisy, saved at once (M)",
                               "3  The audit trail in the project database (project.sqlite): who, when, "
                               "old → new, why — the demo reviewer's rows, then this override"))
        _log(f"{self.out_dir / 'review_workflow.png'} written")

    def _against_neighbours(self) -> None:
        """A field unlike its neighbours (by the consistency features), shown against them (key D)."""
        import numpy as np
        from PySide6.QtCore import QPoint, QRect

        from app.logic.screening import unlike_neighbours

        w = self.window
        st = w.screening_tab
        w.tabs.setCurrentWidget(st)
        d = st.data
        if d is None or d.consistency is None:
            _log("no consistency features: screening_against_neighbours.png not written")
            return
        z = np.nan_to_num(unlike_neighbours(d), nan=-1.0)
        kept = (d.auto_decision == 1) & (z > 3)
        field = int(np.flatnonzero(kept)[np.argmax(z[kept])]) if kept.any() else int(np.argmax(z))
        st.select_field(field)
        st.view.mode.setCurrentIndex(3)
        if not self.wait(lambda: st.view._difference is not None, 60, "the field against its neighbours"):
            return
        self.spin(1.0)
        x0 = st.view.mapTo(w, QPoint(0, 0)).x() - 8
        y0 = st.mapTo(w, QPoint(0, 0)).y()
        y1 = st.details.mapTo(w, QPoint(0, st.details.height())).y() + 8
        self.save("screening_against_neighbours.png", self.grab().copy(QRect(x0, y0, w.width() - x0, y1 - y0)))
        st.view.mode.setCurrentIndex(0)

    def _audit_trail_panel(self, width: int):
        from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

        w = self.window
        project = w.project
        names = {r.id: r.name for r in project.list_measurements()}
        rows = project.override_history()
        word = {None: "automatic", 0: "noisy", 1: "clean"}
        table = QTableWidget(len(rows), 6)
        table.setWindowTitle("Audit trail")
        table.setHorizontalHeaderLabels(["time (UTC)", "user", "measurement", "field", "old → new", "reason"])
        for r, h in enumerate(rows):
            cells = (h.time[:19].replace("T", " "), h.user, names.get(h.measurement_id, str(h.measurement_id)),
                     str(h.field_index), f"{word[h.old_decision]} → {word[h.new_decision]}", h.reason or "—")
            for c, text in enumerate(cells):
                table.setItem(r, c, QTableWidgetItem(text))
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.resize(width, table.horizontalHeader().height() + sum(table.rowHeight(r) for r in range(len(rows))) + 4)
        table.selectRow(len(rows) - 1)
        table.show()
        self.spin(1.0)
        pm = table.screen().grabWindow(table.winId())
        table.close()
        return pm


def compose_review_figure(pixmaps, out: Path, captions) -> None:
    """Panels 1 → 2 side by side (scaled to fit), panel 3 under them, a caption above each."""
    from PySide6.QtCore import QPoint, QRect, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

    one, two, three = pixmaps
    margin, gap, cap = 16, 56, 34
    width = three.width() + 2 * margin
    pw = (width - 2 * margin - gap) // 2
    ph = int(one.height() * pw / one.width())
    height = cap + ph + cap + three.height() + margin
    img = QImage(width, height, QImage.Format.Format_RGB32)
    img.fill(QColor("#1b1e23"))
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    font = QFont()
    font.setPixelSize(16)
    font.setBold(True)
    p.setFont(font)
    places = [QRect(margin, cap, pw, ph), QRect(margin + pw + gap, cap, pw, ph),
              QRect(margin, 2 * cap + ph, three.width(), three.height())]
    for pm, caption, r in zip(pixmaps, captions, places):
        p.setPen(QColor("#e6e9ee"))
        p.drawText(QRect(r.x(), r.y() - cap + 4, width, cap - 8),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, caption)
        p.drawPixmap(r, pm.scaled(r.width(), r.height(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation))
    p.setPen(QPen(QColor("#4aa3df"), 4))
    y = cap + ph // 2
    a, b = QPoint(margin + pw + 10, y), QPoint(margin + pw + gap - 10, y)
    p.drawLine(a, b)
    p.drawLine(b, QPoint(b.x() - 10, y - 8))
    p.drawLine(b, QPoint(b.x() - 10, y + 8))
    p.end()
    if not img.save(str(out)):
        raise OSError(f"could not write {out}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=HERE, help="where the PNG files go (default: this folder)")
    ap.add_argument("--keep-home", action="store_true", help="keep the temporary home (and its demo project)")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("ODT_SHOTS_UNDER_XVFB"):
        if shutil.which("xvfb-run") is None:
            _log("no display and no xvfb-run: install xvfb (apt-get install xvfb)")
            return 2
        env = dict(os.environ, ODT_SHOTS_UNDER_XVFB="1")
        return subprocess.call(["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, __file__, *argv],
                               env=env)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    tmp = _fresh_home()
    sys.path.insert(0, str(ROOT))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QTimer

    from app.cli import main as odt_studio
    from app.main_window import create_application

    create_application()
    driver = Driver(args.out_dir)
    QTimer.singleShot(0, driver.run)
    code = odt_studio(["--demo"])
    if not args.keep_home:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        _log(f"temporary home kept: {tmp}")
    if driver.failed:
        _log(f"failed: {driver.failed}")
        return 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
