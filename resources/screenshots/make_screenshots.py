"""Render the main window to ``resources/screenshots/main_window.png`` (1280×800).

Usage (from the repository root)::

    .venv/bin/python resources/screenshots/make_screenshots.py            # offscreen, widget grab
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python resources/screenshots/make_screenshots.py --real

The window shows the built-in demo measurement (simulated into a temporary folder with
:func:`engine.simulate.demo.write_demo`) in the Acquisition import tab; ``--data DIR`` shows
another folder of measurements instead. Offscreen, the picture is ``QWidget.grab()``; with
``--real`` under an X server (Xvfb) it is the screen's pixels (``QScreen.grabWindow``), which
also holds what OpenGL/VTK drew. Settings and user folders are temporary: nothing of the
user's is touched.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "main_window.png")
    ap.add_argument("--data", type=Path, default=None, help="folder of measurements to show")
    ap.add_argument("--real", action="store_true", help="grab the real window from the X server")
    ap.add_argument("--frame", type=int, default=None, help="hologram index to show (default: middle)")
    args = ap.parse_args(argv)
    if not args.real:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    tmp = Path(tempfile.mkdtemp(prefix="odt-shot-"))
    for var in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME"):
        os.environ[var] = str(tmp / var.lower())

    from PySide6.QtWidgets import QApplication

    from app import demo
    from app.main_window import MainWindow, create_application
    from app.settings import AppSettings

    app = create_application()
    data = args.data
    if data is None:
        if not demo.demo_available():
            print("the demo simulator (engine.simulate.demo) is not available; pass --data DIR", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        demo.ensure_demo_measurement(tmp / "demo")
        print(f"demo simulated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        data = tmp / "demo"
    window = MainWindow(settings=AppSettings(tmp / "settings.ini"), restore_layout=False)
    window.resize(1280, 800)
    window.show()
    loaded = []
    window.import_tab.measurement_loaded.connect(loaded.append)
    window.import_tab.set_root(data)
    deadline = time.perf_counter() + 120
    while not loaded and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    if not loaded:
        print("no measurement was loaded", file=sys.stderr)
        return 1
    m = loaded[0]
    view = window.import_tab.viewer.image_view
    if m.holograms.shape[0] > 1:
        view.setCurrentIndex(args.frame if args.frame is not None else m.holograms.shape[0] // 2)
    t_end = time.perf_counter() + (1.0 if args.real else 0.3)
    while time.perf_counter() < t_end:
        app.processEvents()
        time.sleep(0.01)
    if args.real:
        pixmap = window.screen().grabWindow(window.winId())
    else:
        pixmap = window.grab()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pixmap.save(str(args.out))
    print(f"{args.out}: {pixmap.width()}×{pixmap.height()}")
    window.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
