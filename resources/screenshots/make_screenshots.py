"""Render the main window to ``resources/screenshots/main_window.png`` (1280×800).

Usage (from the repository root)::

    .venv/bin/python resources/screenshots/make_screenshots.py            # offscreen, widget grab
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python resources/screenshots/make_screenshots.py --real

The window shows the built-in demo measurement in the Acquisition import tab, prepared the
way the application does it (File ▸ Open the demo measurement: simulated once with
:func:`engine.simulate.demo.write_demo` into the user's data folder, then reused);
``--fresh`` simulates it anew in a temporary folder and also saves ``first_launch.png``
while the job runs; ``--data DIR`` shows another folder of measurements instead. Offscreen, the picture is ``QWidget.grab()``; with
``--real`` under an X server (Xvfb) it is the screen's pixels (``QScreen.grabWindow``), which
also holds what OpenGL/VTK drew. Settings and logs are temporary.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def _spin(app, seconds: float) -> None:
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "main_window.png")
    ap.add_argument("--data", type=Path, default=None, help="folder of measurements to show instead of the demo")
    ap.add_argument("--fresh", action="store_true",
                    help="simulate the demo into a temporary data folder, as on a first launch, and also "
                         "save first_launch.png (next to --out) while the simulation job runs")
    ap.add_argument("--real", action="store_true", help="grab the real window from the X server")
    ap.add_argument("--frame", type=int, default=None, help="hologram index to show (default: middle)")
    args = ap.parse_args(argv)
    if not args.real:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    tmp = Path(tempfile.mkdtemp(prefix="odt-shot-"))
    # settings and logs are temporary; the demo goes where the application puts it
    # (the user's data folder, simulated once and reused) unless --fresh
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    if args.fresh:
        os.environ["XDG_DATA_HOME"] = str(tmp / "data")

    from PySide6.QtWidgets import QApplication

    from app import demo
    from app.main_window import MainWindow, create_application
    from app.settings import AppSettings

    app = create_application()
    window = MainWindow(settings=AppSettings(tmp / "settings.ini"), restore_layout=False)
    window.resize(1280, 800)
    window.show()
    loaded = []
    window.import_tab.measurement_loaded.connect(loaded.append)
    t0 = time.perf_counter()
    if args.data is not None:
        window.import_tab.set_root(args.data)
    else:
        if not demo.demo_available():
            print("the demo simulator (engine.simulate.demo) is not available; pass --data DIR", file=sys.stderr)
            return 2
        window.start_demo()
        if args.fresh:  # grab once the job is a third done (or after 30 s)
            t_end = time.perf_counter() + 30
            while time.perf_counter() < t_end and window.runner.current is not None \
                    and window.runner.current.fraction < 0.33:
                _spin(app, 0.1)
            first = args.out.with_name("first_launch.png")
            window.grab().save(str(first))
            print(f"{first}: the demo simulation job at {100 * window.runner.current.fraction:.0f} %"
                  if window.runner.current else f"{first}: (the job had already ended)")
    deadline = time.perf_counter() + 300
    while not loaded and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if not loaded:
        print("no measurement was loaded", file=sys.stderr)
        return 1
    print(f"measurement shown after {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    m = loaded[0]
    view = window.import_tab.viewer.image_view
    if m.holograms.shape[0] > 1:
        view.setCurrentIndex(args.frame if args.frame is not None else m.holograms.shape[0] // 2)
    _spin(app, 1.0 if args.real else 0.3)
    pixmap = window.screen().grabWindow(window.winId()) if args.real else window.grab()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pixmap.save(str(args.out))
    print(f"{args.out}: {pixmap.width()}×{pixmap.height()}")
    window.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
