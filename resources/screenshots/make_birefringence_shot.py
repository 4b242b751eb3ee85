"""Render the Birefringence tab on a simulated liquid-crystal droplet (1280×800 PNG).

Simulates one bipolar droplet (:mod:`engine.simulate.demo`, 128×128 px of 0.1 µm, 25
polarisation-resolved illuminations), reconstructs it with the pipeline's dielectric tensor
tomography (``process_measurement(..., ProcessOptions(birefringence=True))``), opens the result in
the tab through the job runner, and saves the tab to ``resources/screenshots/birefringence_tab.png``.
``--truth`` shows the simulator's truth.h5 instead (the window then says TRUTH).

Runs headless (Qt offscreen + VTK through OSMesa) or under a real X server
(``xvfb-run -a -s "-screen 0 1600x1000x24"``). A Qt grab shows the VTK area black offscreen,
so the VTK view's own image (vtkWindowToImageFilter) is pasted into the grab at the view's place::

    .venv/bin/python resources/screenshots/make_birefringence_shot.py [OUT.png] [--truth] [--work DIR]

About 30 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkOSOpenGLRenderWindow")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def simulate_and_process(work: Path, device: str) -> tuple[Path, Path]:
    """(result file, truth.h5) of one bipolar droplet, n_o 1.50, n_e 1.56 in n_m 1.46, radius 2.8 µm."""
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.simulate.demo import DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    result = work / "out" / "lc-droplets_000.odt.h5"
    truth = work / "in" / "lc-droplets_000" / "truth.h5"
    if result.is_file() and truth.is_file():
        return result, truth
    cfg = DemoConfig(Setup(image_shape=(128, 128), pixel_size_um=0.1, sim_pixel_um=0.2, voxel_z_um=0.2,
                           medium_index=1.46, na_objective=1.2, na_condenser=1.0, n_angles=25, pattern="spiral"),
                     depth_um=7.2, phantom_kwargs={"radius_um": 2.8, "configuration": "bipolar",
                                                   "n_o": 1.50, "n_e": 1.56},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    folder = write_demo(work / "in", kind="lc-droplets", count=1, seed=5, config=cfg, device=device)[0]
    process_measurement(folder, result, ProcessOptions(device=device, birefringence=True, screen="none"))
    return result, folder / "truth.h5"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).with_name("birefringence_tab.png")))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--truth", action="store_true", help="show the simulator's truth instead of the reconstruction")
    ap.add_argument("--work", default=None, help="keep the simulated data here (reused when present)")
    args = ap.parse_args(argv)

    import numpy as np
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication

    from app.jobs import JobRunner
    from app.tabs.birefringence_tab import BirefringenceTab
    from app.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    with tempfile.TemporaryDirectory(prefix="odt-shot-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        t = time.perf_counter()
        result, truth = simulate_and_process(work, args.device)
        print(f"data ready in {time.perf_counter() - t:.1f} s", flush=True)
        runner = JobRunner()
        tab = BirefringenceTab(runner)
        tab.setWindowTitle("ODT Studio — Birefringence")
        tab.resize(1280, 800)
        tab.show()
        job = tab.open_truth(truth) if args.truth else tab.open_result(result)
        while not job.done:
            app.processEvents()
            time.sleep(0.02)
        if job.error is not None:
            raise job.error
        data = tab.data
        dn = data.delta_n
        z, y, x = np.unravel_index(int(np.argmax(np.abs(dn) * (np.abs(dn) > 0))), dn.shape)
        tab.slice_view.set_crosshair(dn.shape[0] // 2, dn.shape[1] // 2, dn.shape[2] // 2)
        tab.set_quantity("delta_n")
        tab.step_spin.setValue(max(2, dn.shape[2] // 24))
        tab.glyph_step_spin.setValue(max(2, dn.shape[2] // 16))
        tab.threshold_slider.setValue(450)
        tab.tubes_check.setChecked(True)
        t_end = time.perf_counter() + 1.0
        while time.perf_counter() < t_end:
            app.processEvents()
            time.sleep(0.02)
        shot = tab.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
        vv = tab.volume_view
        if vv.available:
            arr = vv.snapshot()
            h, w, _ = arr.shape
            rgb = np.ascontiguousarray(arr)
            vimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            top_left = vv.mapTo(tab, QPoint(0, 0))
            vimg = vimg.scaled(vv.width(), vv.height())
            p = QPainter(shot)
            p.drawImage(top_left, vimg)
            p.end()
        out = Path(args.out)
        shot.save(str(out))
        print(f"wrote {out} ({shot.width()}×{shot.height()})", flush=True)
        tab.volume_view.shutdown()
        runner.shutdown(timeout_s=5.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
