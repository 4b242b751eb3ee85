"""Physics simulator: phantoms, exact Mie fields, multi-slice propagation, holograms, defects, demo data.

Modules: :mod:`.mie` (exact scalar sphere fields), :mod:`.phantoms` (refractive-index volumes
with truth), :mod:`.beam_propagation` (scalar SSNP/BPM and Jones multi-slice, torch CPU/CUDA),
:mod:`.defects` (labelled acquisition defects), :mod:`.holograms` (DMD illumination, off-axis
holograms, camera; :func:`simulate_measurement`), :mod:`.demo` (measurement folders on disk).
The simulator shares no code with the reconstruction (``engine.tomography``), so a modelling
error there cannot cancel itself out in tests.

Submodules are imported lazily so that ``import engine.simulate.mie`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "mie_field": "mie", "mie_fields": "mie",
    "Phantom": "phantoms", "make_phantom": "phantoms", "make_bead": "phantoms", "make_bacterium": "phantoms",
    "make_cell": "phantoms", "make_lc_droplet": "phantoms", "PHANTOM_KINDS": "phantoms",
    "propagate_scalar": "beam_propagation", "propagate_vectorial": "beam_propagation",
    "snap_illuminations": "beam_propagation",
    "DEFECT_TYPES": "defects", "IMPERFECTION_TYPES": "defects",
    "Setup": "holograms", "SimulatedMeasurement": "holograms", "simulate_measurement": "holograms",
    "illumination_pattern": "holograms",
    "write_demo": "demo", "DEMO_DEFAULTS": "demo", "simulate_demo": "demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
