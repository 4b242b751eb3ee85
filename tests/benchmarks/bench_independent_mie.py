"""Weak exact-Mie spheres from a code this project did not write, end to end through ``odt-studio batch``.

The data of issue #16's unwrapping report, remade: a sphere n 1.36, r 2.5 µm in n_m 1.337,
λ 0.532 µm, 49 illuminations (rings) up to 0.8 of the pupil, NA 1.2, 256² px at 0.1 µm, 16-bit,
shot and read noise, and steep illuminations dimmer than normal incidence (power 0.3 % at the
pupil edge; ``--photons 1000 --steep-power 5e-6`` makes the steepest fields' phase noise near
1 rad, the low-SNR steep fields where the background phase noise nears ±π). Fields from
miepython (``_independent_mie.py``), holograms through the camera model of
``tests/engine/_mie_holograms.py``. Three spheres at different positions (seeds 0–2).

For each, ``odt-studio batch --screen none`` runs as a whole process on the hologram folder and
the result file is scored: mean index inside (r < R − 0.3 µm) against 1.36, background mean and
standard deviation (r > R + 1 µm), the retrieval quality numbers, and the side band chosen.
Then, in-process on the same holograms, the unwrapping methods side by side (``guided``, the
default, against ``herraez``, the previous default): fields with a region 2π off, and the
tomogram each gives. Also reported: how far this project's own scalar Mie fields are from
miepython's (RMS phase difference).

Run::

    .venv/bin/python tests/benchmarks/bench_independent_mie.py [--size 256] [--spheres 3]

Needs miepython (``pip install -e .[bench]``). Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "engine"))

from _independent_mie import miepython_fields  # noqa: E402
from _mie_holograms import LAM, NA, NM, PX, camera_holograms  # noqa: E402

from engine.simulate.holograms import illumination_pattern  # noqa: E402

RADIUS, N_SPHERE = 2.5, 1.36
PHOTONS, STEEP_POWER, ENVELOPE_UM = 5000.0, 0.003, 10.0


def sphere_centre(seed: int) -> np.ndarray:
    """(z, y, x) µm: z = 0 (the focal plane), a random lateral offset."""
    rng = np.random.default_rng(100 + seed)
    return np.array([0.0, *rng.uniform(-2.0, 2.0, 2)])


def write_folder(folder: Path, size: int, seed: int, photons: float = PHOTONS, steep_power: float = STEEP_POWER,
                 na_fraction: float = 0.8, n_illuminations: int = 49) -> None:
    ill = illumination_pattern(n_illuminations, na_fraction * NA, LAM, "ring")
    f = miepython_fields(RADIUS, N_SPHERE, NM, LAM, (size, size), PX, ill, NA)
    # move the sphere laterally: a shift of the field (the spectrum times a phase ramp)
    c = sphere_centre(seed)
    fy = np.fft.fftfreq(size, PX)[:, None]
    fx = np.fft.fftfreq(size, PX)[None, :]
    ramp = np.exp(-2j * np.pi * (fx * c[2] + fy * c[1]))
    f = 1 + np.fft.ifft2(np.fft.fft2(f - 1) * ramp)
    holo, bg = camera_holograms(f.astype(np.complex64), ill, photons=photons, steep_power=steep_power,
                                envelope_um=ENVELOPE_UM, seed=seed)
    folder.mkdir(parents=True)
    tifffile.imwrite(folder / "sample.tif", holo)
    tifffile.imwrite(folder / "background.tif", bg)
    meta = {"format": "odt-measurement/1", "wavelength_um": LAM, "medium_index": NM, "na_objective": NA,
            "pixel_size_um": PX, "illumination_per_um": ill.tolist(),
            "sample": {"name": f"miepython sphere n {N_SPHERE} r {RADIUS} um, seed {seed}"}}
    (folder / "measurement.json").write_text(json.dumps(meta))


def score(ri: np.ndarray, voxel, origin, centre) -> dict:
    z, y, x = (origin[i] + voxel[i] * np.arange(ri.shape[i]) for i in range(3))
    zz, yy, xx = np.meshgrid(z - centre[0], y - centre[1], x - centre[2], indexing="ij")
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    bg = ri[r > RADIUS + 1.0]
    return {"mean_inside_error": float(ri[r < RADIUS - 0.3].mean() - N_SPHERE),
            "bg_mean": float(bg.mean() - NM), "bg_std": float(bg.std())}


def batch(in_dir: Path, out_dir: Path, screen: str) -> float:
    """``odt-studio batch`` as a process; ``screen`` "none", "model" or "model+consistency"
    (``--screen model --screen-consistency``)."""
    t = time.perf_counter()
    extra = ["--screen-consistency"] if screen.endswith("+consistency") else []
    subprocess.run([sys.executable, "-m", "app.cli", "batch", str(in_dir), "--out", str(out_dir),
                    "--screen", screen.split("+")[0], *extra, "--device", "cpu"], check=False, cwd=HERE.parents[1])
    return time.perf_counter() - t


def unwrap_side_by_side(folder: Path, seed: int) -> dict:
    from scipy.ndimage import median_filter

    from engine.holography.retrieval import retrieve_fields
    from engine.store.folders import load_measurement
    from engine.tomography.reconstruct import reconstruct

    m = load_measurement(folder)
    ill = np.asarray(m.metadata.illumination_per_um)
    size = m.holograms.shape[-1]
    c = sphere_centre(seed)
    truth = np.angle(miepython_fields(RADIUS, N_SPHERE, NM, LAM, (size, size), PX, ill, NA))
    fy = np.fft.fftfreq(size, PX)[:, None]
    fx = np.fft.fftfreq(size, PX)[None, :]
    out = {}
    for method in ("guided", "herraez"):
        r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, unwrap_method=method, device="cpu")
        shifted = np.angle(1 + np.fft.ifft2(np.fft.fft2(np.exp(1j * truth) - 1)
                                            * np.exp(-2j * np.pi * (fx * c[2] + fy * c[1]))))
        err = median_filter(r.unwrapped_phase - shifted, size=(1, 7, 7))
        bad = (np.abs(err) > np.pi).mean(axis=(1, 2))
        fld, ph = (r.rytov_field, r.rytov_phase) if r.rytov_field is not None else (r.field, r.unwrapped_phase)
        tomo = reconstruct(fld, r.illumination_per_um, m.metadata, unwrapped_phase=ph, non_negativity=True,
                           device="cpu")
        out[method] = {"fields_with_region_errors": int((bad > 0.01).sum()), "worst_region_fraction": float(bad.max()),
                       **score(tomo.ri, tomo.voxel_size_um, tomo.origin_um, c)}
    return out


def own_mie_vs_miepython(size: int = 128) -> float:
    from engine.simulate.mie import mie_fields

    ill = illumination_pattern(49, 0.8 * NA, LAM, "ring")
    a = miepython_fields(RADIUS, N_SPHERE, NM, LAM, (size, size), PX, ill, NA)
    b = mie_fields(RADIUS, N_SPHERE, NM, LAM, (size, size), PX, ill, na=NA)
    return float(np.sqrt(np.mean(np.angle(a / b) ** 2)))


def main(argv=None) -> int:
    from engine.store.results import read_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--spheres", type=int, default=3)
    ap.add_argument("--photons", type=float, default=PHOTONS,
                    help="reference-beam photo-electrons per pixel (default %(default)s)")
    ap.add_argument("--steep-power", type=float, default=STEEP_POWER,
                    help="illumination power at the pupil edge relative to normal incidence (default %(default)s); "
                    "1000 and 5e-6 make the steepest fields' phase noise near 1 rad")
    ap.add_argument("--screen-consistency", action="store_true",
                    help="also run the batch with the screening model's consistency stage deciding")
    args = ap.parse_args(argv)
    print(f"camera: {args.photons:g} e-/px reference, steep power {args.steep_power:g}")
    print(f"this project's scalar Mie vs miepython (vector, polarisation-averaged), RMS phase difference: "
          f"{own_mie_vs_miepython():.4f} rad")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in range(args.spheres):
            write_folder(tmp / "in" / f"sphere_{seed}", args.size, seed, args.photons, args.steep_power)
        for screen in ("none", "model") + (("model+consistency",) if args.screen_consistency else ()):
            secs = batch(tmp / "in", tmp / f"out_{screen}", screen)
            print(f"\nodt-studio batch --screen {screen}: {secs:.1f} s for {args.spheres} measurements")
            for seed in range(args.spheres):
                res = read_result(tmp / f"out_{screen}" / f"sphere_{seed}.odt.h5")
                t = res.tomogram
                s = score(t.ri, t.voxel_size_um, t.origin_um, sphere_centre(seed))
                q = res.retrieval.quality
                print(f"  sphere {seed}: mean inside {s['mean_inside_error']:+.4f}, background mean "
                      f"{s['bg_mean']:+.4f} std {s['bg_std']:.4f}; fields used {int(res.screening.decision.sum())}/49; "
                      f"phase noise {np.median(q['phase_noise_rad']):.2f}–{q['phase_noise_rad'].max():.2f} rad; "
                      f"unwrap inconsistency max {q['unwrap_inconsistency'].max():.3f}; "
                      f"{res.retrieval.attrs['sideband_description']}")
        print("\nunwrapping side by side (in-process, same holograms, non-negativity on):")
        for seed in range(args.spheres):
            for method, d in unwrap_side_by_side(tmp / "in" / f"sphere_{seed}", seed).items():
                print(f"  sphere {seed} {method:8s}: {d['fields_with_region_errors']:2d}/49 fields with a region 2π off "
                      f"(worst {d['worst_region_fraction']:.3f}); mean inside {d['mean_inside_error']:+.4f}, "
                      f"background std {d['bg_std']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
