"""``odt-studio --self-test``: a headless end-to-end check of an installed copy.

It imports every engine module, loads every shipped model (checksums and shapes checked),
simulates a tiny measurement, processes it end to end (retrieve → screen → reconstruct →
result file) and checks the tomogram is physically sensible. No Qt is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["run_self_test", "tiny_demo_config"]


def tiny_demo_config(n_angles: int = 15):
    """A 64×64-pixel (0.1 µm), few-angle bead acquisition that simulates in about a second.

    The 0.1 µm pixel keeps the off-axis side band (carrier + NA/λ) inside the camera's Nyquist
    limit, as on the real setups of :data:`engine.simulate.demo.DEMO_DEFAULTS`.
    """
    from .simulate.demo import DemoConfig
    from .simulate.holograms import Setup

    setup = Setup(image_shape=(64, 64), pixel_size_um=0.1, n_angles=n_angles, pattern="ring",
                  na_condenser=1.0)
    return DemoConfig(setup, depth_um=3.2, phantom_kwargs={"count": 1, "radius_range_um": (1.0, 1.2), "material": "silica"},
                      defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)


def _check(name: str, fn: Callable[[], str], log: Callable[[str], None]) -> bool:
    t = time.perf_counter()
    try:
        detail = fn()
    except Exception as e:  # a self-test reports, it does not crash
        log(f"FAIL  {name}: {type(e).__name__}: {e}")
        return False
    log(f"ok    {name} ({time.perf_counter() - t:.1f} s){': ' + detail if detail else ''}")
    return True


def run_self_test(log: Callable[[str], None] = print) -> bool:
    """Run all checks, logging one line each; True when every check passed."""
    import engine

    def imports() -> str:
        names = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
        for n in names:
            importlib.import_module(n)
        return f"{len(names)} modules, engine {engine.__version__}"

    def models() -> str:
        from .resources import models_dir

        loaded = []
        for weights in sorted(models_dir().glob("*.safetensors")):
            if weights.name.startswith("screening"):
                from .screening import load_model

                load_model(weights, device="cpu")
            else:
                from .models import load_safetensors_model

                load_safetensors_model(weights)
            loaded.append(weights.stem)
        if not loaded:  # e.g. an install that lost its package data (resources/ not in the wheel)
            raise FileNotFoundError(f"no shipped models (*.safetensors) in {models_dir()}")
        return f"{', '.join(loaded)} from {models_dir()}"

    def end_to_end() -> str:
        from .pipeline.process import ProcessOptions, process_measurement
        from .simulate.demo import write_demo
        from .store.results import read_result

        with tempfile.TemporaryDirectory(prefix="odt-selftest-") as tmp:
            folder = write_demo(Path(tmp) / "in", kind="beads", count=1, seed=1, config=tiny_demo_config(),
                                device="cpu")[0]
            out = Path(tmp) / "out" / f"{folder.name}.odt.h5"
            process_measurement(folder, out, ProcessOptions(screen="none", device="cpu"))
            res = read_result(out)
            if res.tomogram is None:
                raise RuntimeError("the result file has no tomogram")
            ri = np.asarray(res.tomogram.ri)
            if not np.isfinite(ri).all():
                raise RuntimeError("tomogram has non-finite values")
            peak = float(ri.max())
            if not res.tomogram.medium_index + 0.005 < peak < 1.8:
                raise RuntimeError(f"implausible peak refractive index {peak:.4f}")
            return f"{ri.shape} tomogram, peak n = {peak:.3f}"

    ok = True
    for name, fn in (("imports", imports), ("shipped models", models), ("end to end", end_to_end)):
        ok &= _check(name, fn, log)
    return ok
