"""The built-in demo measurement: simulated holograms a newcomer can explore without a microscope.

On first launch (and with ``odt-studio --demo``) the application simulates one bacterium
measurement with the engine's simulator (:func:`engine.simulate.demo.write_demo`) into the
user's data folder, once; later launches reuse it.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Callable, Optional

from engine.progress import check_cancel, report, sub_progress

__all__ = ["DEMO_KIND", "DEMO_SEED", "demo_available", "ensure_demo_measurement"]

log = logging.getLogger(__name__)

DEMO_KIND = "bacteria"
DEMO_SEED = 0


def demo_available() -> bool:
    """True when this build has the simulator that writes the demo measurement."""
    try:
        return importlib.util.find_spec("engine.simulate.demo") is not None
    except (ImportError, ValueError):
        return False


def _write_demo() -> Callable[..., list]:
    from engine.simulate.demo import write_demo

    return write_demo


def ensure_demo_measurement(out_dir: str | Path, progress: Optional[Callable[..., None]] = None,
                            cancel=None, force: bool = False) -> list[Path]:
    """Return the demo measurement folder(s) in ``out_dir``, simulating them if needed.

    Parameters
    ----------
    out_dir : path
        Folder for the demo (created if missing).
    progress, cancel
        The :mod:`engine.progress` protocol; the simulation is the long part.
    force : bool
        Simulate again even if a valid demo is there.

    Returns
    -------
    list of Path
        The measurement folders (one, kind "bacteria", seed 0).
    """
    from engine.store.folders import discover_measurements, inspect_measurement

    out_dir = Path(out_dir)
    if out_dir.is_dir() and not force:
        report(progress, 0.0, "looking for an earlier demo")
        found = [p for p in discover_measurements(out_dir) if inspect_measurement(p, thumbnail=False).valid]
        if found:
            report(progress, 1.0, "demo measurement found")
            return found
    check_cancel(cancel)
    write_demo = _write_demo()
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("simulating the demo measurement into %s", out_dir)
    paths = write_demo(out_dir, kind=DEMO_KIND, count=1, seed=DEMO_SEED,
                       progress=sub_progress(progress, 0.0, 1.0, "simulating: "), cancel=cancel)
    return [Path(p) for p in paths]
