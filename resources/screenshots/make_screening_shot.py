"""Render the Screening review tab on a simulated bacterium to resources/screenshots/screening_tab.png.

Run it on demand::

    QT_QPA_PLATFORM=offscreen .venv/bin/python resources/screenshots/make_screening_shot.py [MEASUREMENT_FOLDER]

Without an argument the bacteria demo measurement is simulated into a temporary folder
(:func:`engine.simulate.demo.write_demo`, kind "bacteria", seed 0: 71 fields of 256 × 256).
Two fields get manual decisions so the override marks show.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "resources" / "screenshots" / "screening_tab.png"


def main(argv: list[str]) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(REPO))
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    tmp = Path(tempfile.mkdtemp(prefix="odt-screening-shot-"))
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(tmp / sub)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "config"))
    from app.main_window import MainWindow, create_application
    from app.settings import AppSettings
    from engine.store.project import Project

    app = create_application()
    if len(argv) > 1:
        folder = Path(argv[1])
    else:
        from engine.simulate.demo import write_demo

        folder = write_demo(tmp / "acq", kind="bacteria", count=1, seed=0)[0]
    proj = Project.create(tmp / "project")
    proj.add_measurement(folder)
    proj.close()
    w = MainWindow(settings=AppSettings(tmp / "settings.ini"), restore_layout=False)
    w.resize(1280, 800)
    w.show()
    w.open_project(tmp / "project")
    w.tabs.setCurrentWidget(w.screening_tab)
    tab = w.screening_tab
    loop = QEventLoop()
    tab.data_ready.connect(lambda _d: loop.quit())
    QTimer.singleShot(180000, loop.quit)
    if tab.data is None:
        tab.measurement_list.setCurrentRow(0)
        loop.exec()
    if tab.data is None:
        print("the measurement could not be prepared", file=sys.stderr)
        return 1
    metric = tab.data.rule_peak if tab.data.use_rule else tab.data.score
    noisy = [i for i in range(len(metric)) if tab.grid_model.auto_decision(i) == 0]
    # two manual decisions so the marks show: one confirmation, one override
    tab.select_field(1)
    tab.mark(1)
    tab.select_field(2)
    tab.mark(0)
    tab.select_field(noisy[0] if noisy else 3)
    for _ in range(20):
        app.processEvents()
    if tab.data.model is not None:  # show where the network looked (Grad-CAM)
        sal = QEventLoop()
        tab.saliency_ready.connect(lambda _m: sal.quit())
        QTimer.singleShot(60000, sal.quit)
        tab.view.saliency.setCurrentIndex(1)
        sal.exec()
    w.runner.wait(30)
    for _ in range(20):
        app.processEvents()
    tab.grid.scrollTo(tab.grid.currentIndex(), tab.grid.ScrollHint.PositionAtCenter)
    for _ in range(5):
        app.processEvents()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    ok = w.grab().save(str(OUT))
    print(f"{'wrote' if ok else 'FAILED to write'} {OUT} ({w.width()}×{w.height()})")
    w.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
