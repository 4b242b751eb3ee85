"""The ``odt-studio`` command (``docs/formats.md`` §3).

``odt-studio`` alone opens the desktop application. The headless subcommands — ``demo``,
``batch``, ``export``, ``train-screening`` and ``--self-test`` — never import Qt, so they run on servers
and Dask workers without a display (tested in ``tests/engine/test_boundary.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from engine import __version__

SUBCOMMANDS = ("demo", "batch", "train-screening", "export")
DEMO_KINDS = ("beads", "bacteria", "cells", "lc-droplets")


# ---------------------------------------------------------------------- terminal progress
class TerminalProgress:
    """A progress callback that prints one line per percent step (or per message change)."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._last = (-1, "")

    def __call__(self, fraction: float, message: str = "") -> None:
        pct = int(round(100 * fraction))
        if (pct // 5, message) != (self._last[0] // 5, self._last[1]) or pct == 100 and self._last[0] != 100:
            print(f"[{self.label}] {pct:3d}% {message}", file=self.stream, flush=True)
            self._last = (pct, message)


# ---------------------------------------------------------------------- parsers
def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="odt-studio",
        description="ODT Studio: optical diffraction tomography workstation. Without a subcommand it "
        "opens the desktop application. Subcommands: demo, batch, export, train-screening "
        "(see 'odt-studio SUBCOMMAND --help').",
    )
    p.add_argument("path", nargs="?", help="a result file (*.odt.h5) or measurement folder to open")
    p.add_argument("--project", help="open this project folder")
    p.add_argument("--demo", action="store_true", help="open the built-in simulated demo measurement")
    p.add_argument("--reset-settings", action="store_true",
                   help="forget window layout, recent projects and other saved settings, then start")
    p.add_argument("--self-test", action="store_true",
                   help="headless check of this installation; prints OK and exits 0 when all is well")
    p.add_argument("--version", action="version", version=f"odt-studio {__version__}")
    return p


def _demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="odt-studio demo",
                                description="Write simulated measurement folders (with labels and truth.h5).")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--kind", choices=DEMO_KINDS, default="bacteria")
    p.add_argument("--count", type=int, default=1, help="number of measurement folders (default 1)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="odt-studio batch",
        description="Process every measurement folder under IN_DIR to OUT_DIR/<name>.odt.h5 and write "
        "OUT_DIR/summary.csv. Exit status 0 only if every folder succeeded.")
    p.add_argument("in_dir", type=Path)
    p.add_argument("--out", type=Path, required=True, dest="out_dir")
    p.add_argument("--screen", choices=("model", "rule", "none"), default="model")
    p.add_argument("--regularize", choices=("none", "tv", "deep"), default="none")
    p.add_argument("--birefringence", action="store_true")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (without --scheduler)")
    p.add_argument("--force", action="store_true", help="re-process measurements that already have results")
    p.add_argument("--measure", action="store_true",
                   help="then segment and measure the objects of every result into OUT_DIR/measurements.csv "
                   "(volume, surface, dry mass, ... one row per object; default off)")
    p.add_argument("--sideband", choices=("auto", "as-given"), default="auto",
                   help="side band of a detected carrier: 'auto' takes the twin that gives the sample a "
                   "positive phase; 'as-given' the peak with f_x > 0, for samples less dense than their "
                   "medium. A carrier_per_um in measurement.json is always honoured (default auto)")
    return p


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="odt-studio export",
        description="Export one volume of a result file with its voxel size and origin (µm) as OME-TIFF, "
        "OME-Zarr (NGFF 0.4) or an ImageJ hyperstack TIFF. Prints the path written.")
    p.add_argument("result", type=Path, help="a result file RESULT.odt.h5")
    p.add_argument("--to", required=True, choices=("ome-tiff", "ome-zarr", "imagej"), help="output format")
    p.add_argument("--volume", default="ri", choices=("ri", "ri_tv", "ri_deep", "n_e", "n_o", "dn", "labels"),
                   help="which volume (default ri; dn = n_e - n_o; labels: stored, else segmented by Otsu)")
    p.add_argument("--out", type=Path, default=None,
                   help="output path (default beside the result: NAME.VOLUME.ome.tif, .ome.zarr or .tif)")
    return p


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="odt-studio train-screening",
                                description="Fine-tune the screening model on a project's manual overrides.")
    p.add_argument("project", type=Path)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return p


# ---------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from engine.simulate.demo import write_demo

    t0 = time.perf_counter()
    paths = write_demo(args.out_dir, kind=args.kind, count=args.count, seed=args.seed,
                       progress=TerminalProgress("demo"))
    for p in paths:
        print(p)
    print(f"wrote {len(paths)} measurement folder(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from engine.pipeline.process import run_batch_command

    return run_batch_command(
        args.in_dir, args.out_dir, screen=args.screen, regularize=args.regularize,
        birefringence=args.birefringence, device=args.device, scheduler=args.scheduler,
        workers=args.workers, force=args.force, measure=args.measure, sideband=args.sideband)


def cmd_export(args: argparse.Namespace) -> int:
    from engine.store.export import ExportError, export_result

    try:
        out = export_result(args.result, args.to, volume=args.volume, out=args.out)
    except ExportError as e:
        print(f"odt-studio export: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def cmd_train_screening(args: argparse.Namespace) -> int:
    from engine.screening.retrain import retrain_command

    return retrain_command(args.project, device=args.device)


def cmd_self_test() -> int:
    from engine.selftest import run_self_test

    ok = run_self_test(log=lambda s: print(s, file=sys.stderr))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        name, rest = argv[0], argv[1:]
        parser = {"demo": _demo_parser, "batch": _batch_parser, "train-screening": _train_parser,
                  "export": _export_parser}[name]()
        args = parser.parse_args(rest)
        try:
            return {"demo": cmd_demo, "batch": cmd_batch, "train-screening": cmd_train_screening,
                    "export": cmd_export}[name](args)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    args = _gui_parser().parse_args(argv)
    if args.self_test:
        return cmd_self_test()
    from app.main_window import run_gui  # Qt is imported only from here on

    return run_gui(project=args.project, open_path=args.path,
                   reset_settings=args.reset_settings, demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())
