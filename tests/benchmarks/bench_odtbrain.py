"""Peer comparison, end to end: the same sample-rotation data through ODTbrain and ODT Studio.

Run on demand (the peers are benchmark-only dependencies: ``odtbrain``, ``qpretrieve``,
``miepython``)::

    .venv/bin/python tests/benchmarks/bench_odtbrain.py            # sphere folder + MEEP phantom
    .venv/bin/python tests/benchmarks/bench_odtbrain.py --skip-meep --repeats 3
    .venv/bin/python -m pytest tests/benchmarks/bench_odtbrain.py -s

1. Exact-Mie sphere, from hologram files
----------------------------------------
A measurement folder (docs/formats.md §1, geometry ``sample-rotation``) is written: off-axis
holograms (float32 TIFF, carrier (1/4p, 1/4p), 1 % Gaussian intensity noise on sample and
background) of the **exact vector Mie** field (``miepython``; code this project did not write,
see ``_peer_data.py``) of a sphere (default n 1.36, r 2 µm, in n_m 1.333, λ 0.532 µm, NA 0.6,
100² px of 0.1 µm) off the rotation axis at (z, y, x) = (0.5, 0, 0.8) µm, turned about +y through
360° in 72 views (view φ sees it at R_y(φ)·r0: x_l = x cos φ + z sin φ).

Then, each program as **one whole process** from the folder (the time is the process's wall
clock, start-up and imports included):

* ODT Studio: ``odt-studio batch IN --out OUT --screen none --force`` (retrieval, Rytov,
  Fourier mapping, non-negativity, result file). ``--screen none``: ODTbrain screens nothing
  either; add ``--screen model`` to time the program's default.
* ODTbrain: ``_peer_odtbrain.py`` — qpretrieve retrieval (its own tool), ``sinogram_as_rytov``,
  ``backpropagate_3d`` on all cores (ODTbrain's whole run; the fields are shifted by −½ px so
  the rotation axis lies where ODTbrain turns its volume).
* ODTbrain on the fields ODT Studio retrieved (``--fields-h5``): the reconstructions alone.

One scorer for all (``_peer_data.score_sphere``), each volume on its own coordinates: relative
error of the mean Δn inside (r < R − 0.3 µm), RMSE against the true index in r < R + 1 µm,
background std (r > R + 1 µm), ``ring`` (largest |mean background Δn| on 0.1 µm shells around
the sphere: concentric rings), the std of the index inside (flatness), the centre found.

2. Full-wave FDTD (MEEP) cell phantom
-------------------------------------
``tests/data/series_hdf5_meep.h5`` (qpformat 0.14.5 test data, MIT licence; 18 views of 47² px,
cell with cytoplasm n 1.365, nucleus 1.36, nucleolus 1.387 in n_m 1.333) through both programs
from the same fields (the FDTD gives fields, not holograms; ``_peer_meep.py``), each a whole
process. The truth is the file's ``structure`` (permittivity, (49, 49, 260) with the optical
axis 8× finer), sampled on the reconstruction grid (z ↔ axis 2, y ↔ axis 0, x ↔ axis 1, the
orientation that correlates best with both reconstructions). Reported: the mean index in the
cytoplasm and the nucleus (each eroded by one voxel) and in the (tiny: 14 voxels) nucleolus,
the RMSE in the cell (dilated by 2 voxels) and the background std.

Asserts nothing about time; prints the tables and the machine's load average.

Measured (2026-12-06, shared 2-core CPU without GPU, load average 3–5; defaults)
--------------------------------------------------------------------------------
Sphere, since the core fill about the object's centre and the linear Rytov index (#16):
ODT Studio Δn **+0.10 %**, RMSE 0.0033, bg std 0.00017, ring 0.0003, inside std 0.0008;
ODTbrain −0.14 %, 0.0039, 0.00066, 0.0015, 0.0021 (ODTbrain on ODT Studio's fields −0.21 %);
measured under load average 15: 55 s against 602 s (10.9×, not an idle-machine figure).
Speed on an idle machine (2026-12-06, load 1.3, median of 3 interleaved): 3.5 s against 18.8 s
(5.5×); ``import torch`` alone is 1.87 s of our 3.5 s (``python -X importtime``), ODTbrain's time ÷ 10.
Larger measurement, ``--size 150 --angles 108`` (one run, load 1.8): 5.8 s against 101.4 s (17.4×);
Δn −0.08 % / +0.42 %, RMSE 0.0032 / 0.0039, bg std 0.00010 / 0.00031, ring 0.00028 / 0.0014.
Where the former −0.91 % came from (exact fields, no holograms: −0.97 %, so not the retrieval):
(1) the core around the rotation axis that no view measures was filled harmonically about the
axis, while the off-axis sphere's spectrum turns by 0.5 rad per voxel there: the filled axis
voxels held 0.77 of the true spectrum (plain inversion −1.15 %; filled about the object's
centre by a quadratic fit: +0.17 %); (2) non-negativity removes the band limit's Gibbs
overshoot inside the sphere (+3.3 % on the ideal band-limited sphere) and so exposes (3) the
square-root index conversion, which loses (n − n_m)²/(2n_m) = 1.0 % of this sphere's Δn where
first-order Rytov is linear in n − n_m (ODTbrain uses the square root too; its filtered
back-projection keeps part of the Gibbs overshoot, which hides it). Before: −0.91 %, RMSE 0.0033.
Earlier still (nearest-voxel mapping, 50-slice volume): −5.7 %, RMSE 0.0039, bg std 0.00067,
ring 0.0008, centre 0.06 µm off.
MEEP: cytoplasm 1.3601 / 1.3610 (ODT Studio / ODTbrain; truth 1.365), nucleus 1.3581 / 1.3587
(1.360), nucleolus 1.3615 / 1.3621 (1.387, 14 voxels), RMSE 0.0103 / 0.0085, bg std 0.0002 / 0.0018
(before the linear Rytov index: 1.3598, 1.3578, RMSE 0.0102): with 18 views the direct Fourier mapping
keeps only voxels near a cap, and a voxel up to half a voxel off its cap loses amplitude for an
object as large as this cell; filtered back-propagation does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from _peer_data import rotation_fields, score_sphere, write_hologram_folder  # noqa: E402

MEEP_H5 = ROOT / "tests" / "data" / "series_hdf5_meep.h5"


def _run(cmd: list[str]) -> tuple[float, str]:
    """Run one whole process; its wall-clock seconds and output (raises on failure)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return dt, p.stdout + p.stderr


def _studio_exe() -> str:
    exe = Path(sys.executable).parent / "odt-studio"
    return str(exe) if exe.exists() else "odt-studio"


def _read_studio(path: Path):
    import h5py

    with h5py.File(path, "r") as f:
        ri = f["tomogram/ri"][:]
        vs = f["tomogram"].attrs["voxel_size_um"]
        o = f["tomogram"].attrs["origin_um"]
    return ri, [o[i] + vs[i] * np.arange(ri.shape[i]) for i in range(3)]


def _read_npz(path: Path):
    d = np.load(path)
    ri, px, o = d["ri"], float(d["pixel_size_um"]), d["origin_um"]
    return ri, [o[i] + px * np.arange(ri.shape[i]) for i in range(3)]


def _inside_std(ri, coords, r0, radius):
    z, y, x = np.meshgrid(*coords, indexing="ij")
    r = np.sqrt((z - r0[0]) ** 2 + (y - r0[1]) ** 2 + (x - r0[2]) ** 2)
    return float(ri[r < radius - 0.3].std())


def sphere(a, work: Path) -> dict:
    r0 = tuple(a.r0)
    folder = work / "in" / "mie_sphere"
    if not (folder / "measurement.json").exists() or a.regenerate:
        t0 = time.perf_counter()
        fields, angles = rotation_fields(a.radius, a.n_sphere, a.medium, a.wavelength, a.size, a.pixel, a.na,
                                         a.angles, r0)
        meta = {"format": "odt-measurement/1", "wavelength_um": a.wavelength, "medium_index": a.medium,
                "na_objective": a.na, "pixel_size_um": a.pixel, "geometry": "sample-rotation",
                "rotation_angles_rad": angles.tolist(),
                "sample": {"name": "exact Mie sphere (miepython)", "radius_um": a.radius, "index": a.n_sphere,
                           "center_zyx_um": list(r0), "noise": a.noise}}
        write_hologram_folder(folder, fields, meta, noise=a.noise, seed=a.seed)
        print(f"wrote {folder} ({a.angles} views of {a.size}² px) in {time.perf_counter() - t0:.1f} s")

    out = work / "out_studio"
    h5 = out / "mie_sphere.odt.h5"
    runs = {"ODT Studio (odt-studio batch)": [], "ODTbrain (qpretrieve + backpropagate_3d)": [],
            "ODTbrain on ODT Studio's fields": []}
    vols = {}
    for _ in range(a.repeats):  # interleaved, so both see the same machine
        dt, _log = _run([_studio_exe(), "batch", str(folder.parent), "--out", str(out), "--screen", a.screen,
                         "--force"])
        runs["ODT Studio (odt-studio batch)"].append(dt)
        vols["ODT Studio (odt-studio batch)"] = _read_studio(h5)
        dt, log = _run([sys.executable, str(HERE / "_peer_odtbrain.py"), str(folder), str(work / "odtbrain.npz"),
                        "--cores", str(a.cores)])
        runs["ODTbrain (qpretrieve + backpropagate_3d)"].append(dt)
        vols["ODTbrain (qpretrieve + backpropagate_3d)"] = _read_npz(work / "odtbrain.npz")
        if not a.skip_same_fields:
            dt, log = _run([sys.executable, str(HERE / "_peer_odtbrain.py"), str(folder),
                            str(work / "odtbrain_same.npz"), "--cores", str(a.cores), "--fields-h5", str(h5)])
            runs["ODTbrain on ODT Studio's fields"].append(dt)
            vols["ODTbrain on ODT Studio's fields"] = _read_npz(work / "odtbrain_same.npz")

    print(f"\n{a.angles} views of {a.size}² px (sample rotation, holograms with {100 * a.noise:.0f} % noise), exact "
          f"Mie sphere n={a.n_sphere} r={a.radius} µm in n_m={a.medium}, NA {a.na}, at (z,y,x)={list(r0)} µm")
    head = (f"{'program':42s} {'seconds':>8s} {'Δn err %':>9s} {'RMSE':>8s} {'bg std':>8s} {'ring':>8s} "
            f"{'in std':>8s}  centre (z,y,x)   shape")
    print(head)
    rows = {}
    for name, (ri, coords) in vols.items():
        e = score_sphere(ri, coords, r0, a.radius, a.n_sphere, a.medium)
        e["inside_std"] = _inside_std(ri, coords, r0, a.radius)
        e["seconds"] = float(np.median(runs[name])) if runs[name] else float("nan")
        rows[name] = e
        print(f"{name:42s} {e['seconds']:8.1f} {e['dn_error_pct']:+9.2f} {e['rmse']:8.5f} {e['bg_std']:8.5f} "
              f"{e['ring']:8.5f} {e['inside_std']:8.5f}  {e['centre']}  {tuple(e['shape'])}")
    s_ours = rows["ODT Studio (odt-studio batch)"]["seconds"]
    s_peer = rows["ODTbrain (qpretrieve + backpropagate_3d)"]["seconds"]
    print(f"whole-process speed-up {s_peer / s_ours:.1f}x (median of {a.repeats}, interleaved; ODTbrain "
          f"num_cores={a.cores}); load average {os.getloadavg()[0]:.1f}")
    return rows


def meep_truth(ri_shape):
    """The structure's index sampled on a (N, N, N) reconstruction grid centred like the fields."""
    import h5py

    with h5py.File(MEEP_H5, "r") as f:
        s = np.sqrt(f["structure"][:])
    n = ri_shape[0]
    i = np.arange(n) - n // 2
    z, y, x = np.meshgrid(i, i, i, indexing="ij")
    a0, a1, a2 = y + s.shape[0] // 2, x + s.shape[1] // 2, np.round(s.shape[2] / 2 + 8 * z).astype(int)
    ok = (a0 >= 0) & (a0 < s.shape[0]) & (a1 >= 0) & (a1 < s.shape[1]) & (a2 >= 0) & (a2 < s.shape[2])
    t = np.full(ri_shape, float(s[0, 0, 0]))
    t[ok] = s[a0[ok], a1[ok], a2[ok]]
    return t


def meep(a, work: Path) -> dict:
    from scipy import ndimage

    rows = {}
    for program, name in (("studio", "ODT Studio (engine, same fields)"), ("odtbrain", "ODTbrain backpropagate_3d")):
        out = work / f"meep_{program}.npz"
        dt, _ = _run([sys.executable, str(HERE / "_peer_meep.py"), program, str(MEEP_H5), str(out)])
        ri = np.load(out)["ri"]
        t = meep_truth(ri.shape)
        nm = float(t[0, 0, 0])
        cyt = ndimage.binary_erosion(np.abs(t - 1.365) < 0.0015)
        nuc = ndimage.binary_erosion(np.abs(t - 1.36) < 0.0015)
        nucleolus = np.abs(t - 1.387) < 0.0015
        cell = ndimage.binary_dilation(t > nm + 5e-4, iterations=2)
        far = ~ndimage.binary_dilation(cell, iterations=2)
        rows[name] = dict(seconds=dt, cytoplasm=float(ri[cyt].mean()), nucleus=float(ri[nuc].mean()),
                          nucleolus=float(ri[nucleolus].mean()), rmse=float(np.sqrt(((ri - t)[cell] ** 2).mean())),
                          bg_std=float(ri[far].std()), corr=float(np.corrcoef((ri - nm).ravel(), (t - nm).ravel())[0, 1]))
    print("\nMEEP FDTD cell phantom (qpformat test data, 18 views of 47² px), truth: cytoplasm 1.365, nucleus 1.360, "
          "nucleolus 1.387 (14 voxels)")
    print(f"{'program':36s} {'seconds':>8s} {'cytoplasm':>10s} {'nucleus':>8s} {'nucleolus':>10s} {'RMSE':>8s} "
          f"{'bg std':>8s} {'corr':>6s}")
    for name, e in rows.items():
        print(f"{name:36s} {e['seconds']:8.1f} {e['cytoplasm']:10.4f} {e['nucleus']:8.4f} {e['nucleolus']:10.4f} "
              f"{e['rmse']:8.4f} {e['bg_std']:8.4f} {e['corr']:6.3f}")
    return rows


def run(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--angles", type=int, default=72)
    ap.add_argument("--na", type=float, default=0.6)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--radius", type=float, default=2.0)
    ap.add_argument("--n-sphere", type=float, default=1.36)
    ap.add_argument("--medium", type=float, default=1.333)
    ap.add_argument("--wavelength", type=float, default=0.532)
    ap.add_argument("--pixel", type=float, default=0.1)
    ap.add_argument("--r0", type=float, nargs=3, default=(0.5, 0.0, 0.8), metavar=("Z", "Y", "X"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--screen", default="none", choices=("none", "rule", "model"))
    ap.add_argument("--work", default=None, help="working folder (default: a new temporary one)")
    ap.add_argument("--regenerate", action="store_true", help="rewrite the sphere folder even if it exists")
    ap.add_argument("--skip-meep", action="store_true")
    ap.add_argument("--skip-sphere", action="store_true")
    ap.add_argument("--skip-same-fields", action="store_true", help="skip ODTbrain on ODT Studio's fields")
    a = ap.parse_args(argv)
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench_odtbrain_"))
    work.mkdir(parents=True, exist_ok=True)
    res = {}
    if not a.skip_sphere:
        res["sphere"] = sphere(a, work)
    if not a.skip_meep:
        res["meep"] = meep(a, work)
    (work / "bench_odtbrain.json").write_text(json.dumps(res, indent=1))
    print(f"\nresults in {work / 'bench_odtbrain.json'}")
    return res


def test_benchmark_odtbrain():
    import pytest

    for mod in ("odtbrain", "qpretrieve", "miepython"):
        pytest.importorskip(mod)
    run(["--repeats", "1"])


if __name__ == "__main__":
    run()
