"""Render the Reconstruction tab on a real reconstruction of a simulated bacterium (1280×800 PNG).

Simulates a small bacteria acquisition (:mod:`engine.simulate.demo`), reconstructs it in the tab
through the job runner (Rytov + non-negativity + total variation), finds its objects (*Find objects*,
the first one selected in the table), and saves the tab's image to
``resources/screenshots/reconstruction_tab.png``. Runs headless (Qt offscreen)::

    .venv/bin/python resources/screenshots/make_reconstruction_shot.py [OUT.png] [--device cpu|cuda]

About 1–3 minutes on a 2-core CPU (the TV iterations dominate).
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def simulate(out: Path, device: str) -> Path:
    """One bacteria measurement: 128×128 px of 0.1 µm, 49 illuminations, no defects."""
    from engine.simulate.demo import DEMO_DEFAULTS, DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    base = DEMO_DEFAULTS["bacteria"]
    setup = Setup(image_shape=(128, 128), pixel_size_um=0.1, n_angles=49, pattern="spiral", na_condenser=1.1)
    cfg = DemoConfig(setup, depth_um=base.depth_um, phantom_kwargs={"morphology": "rod", "count": 2},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    return write_demo(out, kind="bacteria", count=1, seed=3, config=cfg, device=device)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).with_name("reconstruction_tab.png")))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from app.jobs import JobRunner
    from app.tabs.reconstruction_tab import ReconstructionTab
    from engine.pipeline.process import ProcessOptions
    from app.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    with tempfile.TemporaryDirectory(prefix="odt-shot-") as tmp:
        t = time.perf_counter()
        folder = simulate(Path(tmp), args.device)
        print(f"simulated {folder.name} in {time.perf_counter() - t:.1f} s", flush=True)
        runner = JobRunner()
        tab = ReconstructionTab(runner)
        tab.resize(1280, 800)
        tab.show()
        tab.show_measurement(folder)
        opts = ProcessOptions(screen="none", method="rytov", non_negativity=30, regularize="tv",
                              tv_weight=tab.tv_weight.value(), tv_outer_iterations=15,
                              tv_inner_iterations=20, shape_z=48, device=args.device)
        # show the parameters used in the form, as a user would have set them
        tab.reg_combo.setCurrentIndex(tab.reg_combo.findData("tv"))
        tab.nonneg_iter.setValue(opts.non_negativity_iterations)
        tab.tv_outer.setValue(opts.tv_outer_iterations)
        tab.tv_inner.setValue(opts.tv_inner_iterations)
        tab.shape_z.setValue(opts.shape_z)
        t = time.perf_counter()
        job = tab.run(opts)
        if not runner.wait(1200) or tab.result is None:
            print(f"reconstruction did not finish: {job}", file=sys.stderr)
            return 1
        print(f"reconstructed in {time.perf_counter() - t:.1f} s: {tab.result.timings_s}", flush=True)
        tab.objects_box.split_check.setChecked(True)
        tab.find_objects()
        if not runner.wait(300) or tab.result.objects is None:
            print("finding the objects did not finish", file=sys.stderr)
            return 1
        print(f"{len(tab.result.objects.measurements)} objects", flush=True)
        if tab.objects_table.row_count():
            tab.objects_table.selectRow(0)  # the views go to its centroid, drawn highlighted
        else:
            tab.view.go_to_maximum()
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tab.grab().save(str(out))
        print(f"wrote {out} ({tab.width()}×{tab.height()})")
        runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
