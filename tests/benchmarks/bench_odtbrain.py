"""Peer comparison: the same sample-rotation data through ODTbrain and through ODT Studio.

Run on demand (ODTbrain is a benchmark-only dependency: ``.venv/bin/pip install odtbrain``)::

    .venv/bin/python tests/benchmarks/bench_odtbrain.py
    .venv/bin/python -m pytest tests/benchmarks/bench_odtbrain.py -s

Data: exact Mie fields (``engine.simulate.mie``) of an off-centre sphere (n 1.36, r 1.5 µm, in
water n_m 1.337, λ 0.532 µm, NA 1.2) turned about +y through 360° in ``A`` steps; view φ sees
the sphere at ``R_y(φ)·r0`` in the lab frame (the convention both programs share:
``x_D = x cos φ + z sin φ``). Both programs get the same background-normalised fields and use
the first-order Rytov approximation; ODTbrain by filtered backpropagation
(``backpropagate_3d``), ODT Studio by Fourier mapping. Reported side by side: seconds (ODTbrain: one run; ODT Studio: median of 5), mean
index inside the sphere, RMS error against the true index in a box around the sphere, the
background standard deviation, and the sphere's centre as found (a check of the conventions).
Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from engine.metadata import MeasurementMetadata
from engine.simulate.mie import mie_fields
from engine.tomography import reconstruct

LAM, NM, NA, PX = 0.532, 1.337, 1.2, 0.1
N_SPHERE, RADIUS = 1.36, 1.5
R0 = np.array([0.5, 0.0, 0.8])  # (z, y, x) in the sample frame, µm


def make_fields(size: int = 64, n_angles: int = 72):
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    fields = np.empty((n_angles, size, size), np.complex64)
    for i, a in enumerate(angles):
        xl = R0[2] * np.cos(a) + R0[0] * np.sin(a)
        zl = -R0[2] * np.sin(a) + R0[0] * np.cos(a)
        fields[i] = mie_fields(RADIUS, N_SPHERE, NM, LAM, (size, size), PX, np.zeros((1, 2)), na=NA,
                               center_um=(zl, R0[1], xl))[0]
    return fields, angles


def _errors(ri: np.ndarray, coords) -> dict:
    z, y, x = np.meshgrid(*coords, indexing="ij")
    r = np.sqrt((z - R0[0]) ** 2 + (y - R0[1]) ** 2 + (x - R0[2]) ** 2)
    truth = np.where(r <= RADIUS, N_SPHERE, NM)
    box = r < RADIUS + 1.0
    w = np.clip(ri - NM, 0, None)
    w = np.where(w > 0.5 * w.max(), w, 0)
    centre = [float((w * c).sum() / w.sum()) for c in (z, y, x)]
    return dict(mean_inside=float(ri[r < RADIUS - 0.3].mean()),
                rmse_box=float(np.sqrt(((ri - truth)[box] ** 2).mean())),
                bg_std=float(ri[r > RADIUS + 1.0].std()), centre=np.round(centre, 2).tolist())


def run(size: int = 64, n_angles: int = 72) -> dict:
    import odtbrain

    fields, angles = make_fields(size, n_angles)
    coords = [((np.arange(size) - size // 2) * PX)] * 3
    res = LAM / PX  # wavelength in pixels

    # ---------------------------------------------------------------- ODTbrain
    t0 = time.perf_counter()
    # Checked with this off-centre sphere: ODTbrain takes the fields as they are (same phase sign,
    # same rotation sense) and returns a (z, y, x) volume with voxel j at (j − n//2)·pixel.
    sino = odtbrain.sinogram_as_rytov(fields.astype(np.complex128))
    f = odtbrain.backpropagate_3d(sino, angles, res, NM, lD=0, onlyreal=False, num_cores=2)
    ri_odtb = odtbrain.odt_to_ri(f, res, NM).real
    t_odtb = time.perf_counter() - t0

    # ---------------------------------------------------------------- ODT Studio
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX,
                             geometry="sample-rotation", rotation_angles_rad=angles.tolist())
    reconstruct(fields[:4], np.zeros((4, 2)), md, shape_z=size, rotation_angles_rad=angles[:4],
                device="cpu")  # warm-up
    # median of 5 runs: ours takes well under a second and a shared machine makes single runs noisy
    t_ours, t_ours_f = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        tm = reconstruct(fields, np.zeros((n_angles, 2)), md, shape_z=size, device="cpu")
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tm_f = reconstruct(fields, np.zeros((n_angles, 2)), md, shape_z=size, device="cpu",
                           unwrap_method="fourier")
        t_ours_f.append(time.perf_counter() - t0)
    t_ours, t_ours_f = float(np.median(t_ours)), float(np.median(t_ours_f))

    rows = {
        "ODTbrain backpropagate_3d": (t_odtb, _errors(ri_odtb, coords)),
        "ODT Studio (herraez unwrap)": (t_ours, _errors(tm.ri, coords)),
        "ODT Studio (fourier unwrap)": (t_ours_f, _errors(tm_f.ri, coords)),
    }
    print(f"\n{n_angles} views of {size}x{size} px (sample rotation), sphere n={N_SPHERE} r={RADIUS} µm "
          f"at (z,y,x)={R0.tolist()} µm; first-order Rytov in both")
    print(f"{'program':30s} {'seconds':>8s} {'mean inside':>12s} {'RMSE box':>9s} {'bg std':>8s}  centre (z,y,x)")
    for name, (t, e) in rows.items():
        print(f"{name:30s} {t:8.2f} {e['mean_inside']:12.4f} {e['rmse_box']:9.4f} {e['bg_std']:8.5f}  {e['centre']}")
    print(f"speed-up {t_odtb / t_ours:.1f}x (herraez), {t_odtb / t_ours_f:.1f}x (fourier); ODTbrain one run "
          f"(num_cores=2), ODT Studio median of 5; load average {os.getloadavg()[0]:.1f}")
    return rows


def test_benchmark_odtbrain():
    run()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--angles", type=int, default=72)
    a = ap.parse_args()
    run(a.size, a.angles)
