"""Peak memory of the multislice inversion at a given size (issue #21: bounded for 256×256×128).

Usage::

    .venv/bin/python tests/benchmarks/bench_multislice_memory.py [--size 256] [--depth 128]
        [--fields 49] [--iterations 2] [--frame lab|illumination] [--chunk 8]

Fields are plane waves with a weak random phase (the memory does not depend on the sample);
the script reports the process's peak resident memory (``ru_maxrss``) before and after the
iterations, and the seconds per iteration. CPU only here. ``--frame illumination`` measures the
illumination-frame iterations (the refinement of ``MultisliceOptions(frame="auto")``): with these
noise-like fields the support box is the whole volume, its worst case.

Measured (2026-12-06, shared 2-core CPU, one thread; ``--size 128 --depth 64 --fields 17
--iterations 1``): lab frame 0.88 GiB peak, 3 s per iteration; illumination frame (whole box,
chunk 8) 7.99 GiB, 154 s per iteration. The illumination frame is for compact strong samples
(beads), where the support box is small; with a support filling 256×256×128 it would need
``--chunk`` 1–2 to stay within 24 GB (not measured at that size).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.metadata import MeasurementMetadata
from engine.tomography.multislice import MultisliceOptions, reconstruct_multislice


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB → GiB (Linux)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--depth", type=int, default=128)
    ap.add_argument("--fields", type=int, default=49)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--frame", default="lab", choices=["lab", "illumination"])
    ap.add_argument("--chunk", type=int, default=8)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n, s = a.fields, a.size
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rho = np.where(np.arange(n) == 0, 0.0, 0.8 * 1.2 / 0.532)  # cycles/µm: a ring at 0.8 of the pupil
    ill = np.stack([rho * np.sin(ang), rho * np.cos(ang)], axis=1)
    y, x = (np.mgrid[0:s, 0:s] - s // 2) * 0.1
    fields = np.stack([np.exp(2j * np.pi * (fy * y + fx * x) + 0.05j * rng.standard_normal((s, s)))
                       for fy, fx in ill]).astype(np.complex64)
    meta = MeasurementMetadata(wavelength_um=0.532, medium_index=1.337, na_objective=1.2, pixel_size_um=0.1)
    before = _peak_gib()
    t0 = time.perf_counter()
    tm = reconstruct_multislice(fields, ill, meta, shape_z=a.depth, unwrapped_phase=np.angle(fields),
                                options=MultisliceOptions(iterations=a.iterations, frame=a.frame, chunk=a.chunk),
                                device="cpu")
    total = time.perf_counter() - t0
    print(f"{a.frame} frame, chunk {a.chunk}: {a.depth}×{s}×{s} voxels, {n} fields, {a.iterations} iterations: "
          f"peak RSS {_peak_gib():.2f} GiB "
          f"(fields and interpreter before: {before:.2f} GiB); {total:.0f} s in all, "
          f"{tm.timings_s.get('iterations', float('nan')) / a.iterations:.0f} s per iteration (CPU)")


if __name__ == "__main__":
    main()
