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
LOG_LEVELS = ("debug", "info", "warning", "error")  # engine.pipeline.batch.LOG_LEVELS (not imported: keep --help fast)
BIREFRINGENCE_METHODS = ("auto", "dtt", "dtt-refined", "learned")  # engine.pipeline.process.BIREFRINGENCE_METHODS (same)
MULTISLICE_FRAMES = ("lab", "auto", "illumination")  # engine.pipeline.process.MULTISLICE_FRAMES (same)
DEFAULT_DEEP_DOMAIN_TOLERANCE = 0.04  # engine.pipeline.process.DEFAULT_DEEP_DOMAIN_TOLERANCE (same)
GUI_EXTRA_MISSING = (
    "odt-studio: the desktop application needs the optional 'gui' packages, which are not installed "
    "({missing}).\nInstall them with:  pip install \"odt-studio[gui]\"\n"
    "The command line works without them: odt-studio batch|demo|export|train-screening|--self-test "
    "(see odt-studio --help).")


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows every option's default: ``(default: X)`` is appended to an option's help
    unless it already says its default, the option is required, or its default is None (then the
    help text itself says what happens without it). Flags show ``(default: off)``. Description and
    epilog keep their line breaks (each line is wrapped on its own)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                         if line.strip() else "" for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default in (None, argparse.SUPPRESS)
                or "default" in text):
            return text
        if action.nargs == 0 and isinstance(action.default, bool):
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


def _parser(prog: str, description: str, epilog: Optional[str] = None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                   formatter_class=HelpFormatter)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _tolerance(text: str) -> Optional[float]:
    """A fraction >= 0, or 'none' (None)."""
    if text.strip().lower() == "none":
        return None
    value = float(text)
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a fraction >= 0 or 'none', got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


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
    p = _parser(
        "odt-studio",
        "ODT Studio: optical diffraction tomography workstation. Without a subcommand it "
        "opens the desktop application (needs the 'gui' extra). Subcommands: demo, batch, export, "
        "train-screening (see 'odt-studio SUBCOMMAND --help'). Formats: docs/formats.md.",
    )
    p.add_argument("path", nargs="?", help="a result file (*.odt.h5) or measurement folder to open (default: none)")
    p.add_argument("--project", help="open this project folder (default: none)")
    p.add_argument("--demo", action="store_true",
                   help="open the built-in demo project (simulated measurements, screened and reconstructed; "
                   "built once in the user data folder, then reused)")
    p.add_argument("--reset-settings", action="store_true",
                   help="forget window layout, recent projects and other saved settings, then start")
    p.add_argument("--self-test", action="store_true",
                   help="headless check of this installation; prints OK and exits 0 when all is well")
    p.add_argument("--version", action="version", version=f"odt-studio {__version__}")
    return p


def _demo_parser() -> argparse.ArgumentParser:
    p = _parser("odt-studio demo", "Write simulated measurement folders (with labels, per-frame defects and "
                "truth.h5); prints the folders written.")
    p.add_argument("out_dir", type=Path, help="folder to write the measurement folders into (created if missing)")
    p.add_argument("--kind", choices=DEMO_KINDS, default="bacteria",
                   help="sample: silica beads, bacteria, adherent cells or liquid-crystal droplets "
                   "(lc-droplets: polarisation-resolved, for --birefringence)")
    p.add_argument("--count", type=_positive_int, default=1, help="number of measurement folders")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same folders)")
    return p


def _batch_parser() -> argparse.ArgumentParser:
    p = _parser(
        "odt-studio batch",
        "Process every measurement folder under IN_DIR to OUT_DIR/<name>.odt.h5 and write "
        "OUT_DIR/summary.csv (one row per folder) and OUT_DIR/logs/<name>.log (each folder's log, with the "
        "traceback of a failure). Progress goes to stderr (a progress bar on a terminal). Exit status 0 only "
        "if every folder succeeded, 1 if one failed, 2 if there was nothing to process.",
        epilog="examples:\n"
        "  odt-studio batch data/in --out data/out --screen rule --regularize tv\n"
        "  odt-studio batch data/in --out data/out --method born --non-negativity off --json > run.json\n"
        "  odt-studio batch /shared/in --out /shared/out --scheduler tcp://head:8786")
    p.add_argument("in_dir", type=Path, help="folder searched (recursively) for measurement folders")
    p.add_argument("--out", type=Path, required=True, dest="out_dir",
                   help="output folder (required; created if missing)")
    p.add_argument("--screen", choices=("model", "rule", "none"), default="model",
                   help="field screening: the shipped CNN, the rule-based Fourier-peak metric, or keep every field")
    p.add_argument("--threshold", type=_fraction, default=0.5,
                   help="with --screen model: a field is noisy when the network's noisy-probability is above this")
    p.add_argument("--screen-consistency", action=argparse.BooleanOptionalAction, default=None,
                   help="with --screen model: decide by the model's consistency stage, which also compares each field "
                        "with the fields of nearest illumination and its prediction from the others (or, with "
                        "--no-screen-consistency, by the networks alone); default: as the model's card says (on for "
                        "the shipped model from 3.4.0; see the README)")
    p.add_argument("--method", choices=("rytov", "born", "multislice"), default="rytov",
                   help="scattering approximation of the reconstruction (multislice: iterative multiple-"
                   "scattering inversion started from Rytov, for samples whose phase delay exceeds about 3 rad; "
                   "written as tomogram/ri_ms beside the first-order tomogram/ri)")
    p.add_argument("--multislice-frame", choices=MULTISLICE_FRAMES, default="lab",
                   help="multislice marching frame: 'illumination' follows each beam (dense samples, ~5x slower "
                   "per iteration), 'auto' adds 15 such iterations if peak delta-n > 0.2 (default: lab)")
    p.add_argument("--non-negativity", choices=("on", "off"), default="on",
                   help="Gerchberg-Papoulis constraint n >= n_m on tomogram/ri")
    p.add_argument("--regularize", choices=("none", "tv", "deep"), default="none",
                   help="missing-cone regularisation written beside the raw tomogram: total variation "
                   "(tomogram/ri_tv) or the learned regulariser (tomogram/ri_deep)")
    p.add_argument("--deep-domain-tolerance", type=_tolerance, default=DEFAULT_DEEP_DOMAIN_TOLERANCE, metavar="F",
                   help="with --regularize deep: how far (a fraction, e.g. 0.04 = 4 %%) a measurement may lie outside "
                   "the learned regulariser's training domain before TV runs in its place (tomogram/ri_tv, with a "
                   "warning); 'none' = always the learned step (default: %(default)s)")
    p.add_argument("--deep-polish-iterations", type=_non_negative_int, default=None, metavar="N",
                   help="with --regularize deep: TV iterations run after the network, from its volume (they restore "
                   "the measured Fourier values); 0 = the network alone (default: the model card's)")
    p.add_argument("--birefringence", action="store_true",
                   help="reconstruct n_e, n_o and the director (needed for polarisation-resolved folders)")
    p.add_argument("--birefringence-method", choices=BIREFRINGENCE_METHODS, default=None,
                   help="birefringence route (implies --birefringence): 'auto' (default) chooses from the "
                   "measurement's setup and fields (learned inside the generator's domain, else dtt-refined for "
                   "strong samples up to 25 illuminations of 256x256, else dtt; the choice and "
                   "its reason are logged and recorded); 'dtt' first-order dielectric tensor "
                   "tomography; 'dtt-refined' DTT plus 3 simulate-and-correct steps with the vectorial "
                   "multi-slice (a more accurate delta-n on strong droplets, 7-20x slower); 'learned' the "
                   "generator network for n_e, n_o with the DTT director (only at the setup it was trained for). "
                   "Recorded as tomogram/method")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the numerics run (auto: CUDA when available)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address (tcp://host:port): run on that cluster (needs the 'cluster' extra; "
                   "--out must be a folder every worker sees); default: this machine")
    p.add_argument("--workers", type=_positive_int, default=1, help="local worker processes (without --scheduler)")
    p.add_argument("--force", action="store_true", help="re-process measurements that already have results")
    p.add_argument("--measure", action="store_true",
                   help="then segment and measure the objects of every result into OUT_DIR/measurements.csv "
                   "(volume, surface, dry mass, ... one row per object)")
    p.add_argument("--sideband", choices=("auto", "as-given"), default="auto",
                   help="side band of a detected carrier: 'auto' takes the twin that gives the sample a "
                   "positive phase; 'as-given' the peak with f_x > 0, for samples less dense than their "
                   "medium. A carrier_per_um in measurement.json is always honoured (default: auto)")
    p.add_argument("--json", action="store_true", dest="json_summary",
                   help="print the summary as JSON on stdout (counts, exit code, and per folder: status, error, "
                   "fields used, seconds, warnings, log file)")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="least level of the lines printed to stderr and of the records kept in OUT_DIR/logs/<name>.log "
                   "(warning: only warnings and failures)")
    return p


def _export_parser() -> argparse.ArgumentParser:
    p = _parser(
        "odt-studio export",
        "Export one volume of a result file with its voxel size and origin (µm) as OME-TIFF, "
        "OME-Zarr (NGFF 0.4; needs the 'export' extra) or an ImageJ hyperstack TIFF. Prints the path written.")
    p.add_argument("result", type=Path, help="a result file RESULT.odt.h5")
    p.add_argument("--to", required=True, choices=("ome-tiff", "ome-zarr", "imagej"), help="output format (required)")
    p.add_argument("--volume", default="ri", choices=("ri", "ri_tv", "ri_deep", "ri_ms", "n_e", "n_o", "dn", "labels"),
                   help="which volume (dn = n_e - n_o; labels: stored, else segmented by Otsu)")
    p.add_argument("--out", type=Path, default=None,
                   help="output path (default beside the result: NAME.VOLUME.ome.tif, .ome.zarr or .tif)")
    return p


def _train_parser() -> argparse.ArgumentParser:
    p = _parser("odt-studio train-screening",
                "Fine-tune the screening model on a project's manual overrides; the new model is kept "
                "in the project only if it does better (never over the shipped one).")
    p.add_argument("project", type=Path, help="project folder (with project.sqlite)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to train (auto: CUDA when available)")
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

    if args.screen_consistency and args.screen != "model":
        print(f"odt-studio batch: --screen-consistency needs --screen model (got --screen {args.screen})", file=sys.stderr)
        return 2

    return run_batch_command(
        args.in_dir, args.out_dir, screen=args.screen, regularize=args.regularize,
        birefringence=args.birefringence or args.birefringence_method is not None,
        birefringence_method=args.birefringence_method or "auto", device=args.device, scheduler=args.scheduler,
        workers=args.workers, force=args.force, measure=args.measure, sideband=args.sideband,
        method=args.method, non_negativity=args.non_negativity == "on", threshold=args.threshold,
        json_summary=args.json_summary, log_level=args.log_level, multislice_frame=args.multislice_frame,
        deep_domain_tolerance=args.deep_domain_tolerance, screen_consistency=args.screen_consistency,
        deep_polish_iterations=args.deep_polish_iterations, progress_bar=sys.stderr is not None and sys.stderr.isatty())


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


def missing_gui_packages() -> list[str]:
    """The packages of the 'gui' extra that cannot be imported (found without importing them)."""
    import importlib.util

    missing = []
    for module, package in (("PySide6.QtWidgets", "PySide6-Essentials"), ("pyqtgraph", "pyqtgraph"),
                            ("vtkmodules", "vtk"), ("platformdirs", "platformdirs")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package missing, or a None placeholder in sys.modules
            found = False
        if not found:
            missing.append(package)
    return missing


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
    missing = missing_gui_packages()
    if missing:
        print(GUI_EXTRA_MISSING.format(missing=", ".join(missing)), file=sys.stderr)
        return 3
    from app.main_window import run_gui  # Qt is imported only from here on

    return run_gui(project=args.project, open_path=args.path,
                   reset_settings=args.reset_settings, demo=args.demo)


if __name__ == "__main__":
    sys.exit(main())
