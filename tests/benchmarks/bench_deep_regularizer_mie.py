"""The learned regulariser against TV on exact-Mie weak spheres from a code this project did not write (issue #22).

The issue's "tried as a new user would" check, remade as a script: the weak spheres of
``bench_independent_mie.py`` (miepython's vector Mie fields, n 1.36, r 2.5 µm in n_m 1.337,
λ 0.532 µm, 49 ring illuminations up to 0.8 of the pupil, NA 1.2, 256² px at 0.1 µm, through the
camera model of ``tests/engine/_mie_holograms.py``; three positions, seeds 0–2). Each hologram
folder goes through :func:`engine.pipeline.process.process_measurement` twice, screening on (the
shipped models), once with ``regularize="tv"`` and once with ``regularize="deep"``. Reported per
sphere, on the whole volume:

- SSIM of the learned volume against TV's (Gaussian window σ 1.5 voxels, TV's data range;
  Wang et al. 2004, as :func:`engine.training.deep_regularizer_data.ssim_gaussian`);
- mean index inside the sphere (r < R − 0.3 µm) of each, against the truth 1.36 and each other;
- the background's mean and standard deviation (r > R + 1 µm);
- the sphere's axial and lateral FWHM (µm) of each, on the lines through its centre;
- each whole run's seconds;

for each learned step asked (``--polish``: the model card's TV iterations after the network, or
a number, 0 for the network alone).

The data come from miepython, not from the simulator the regulariser was trained on, and the
sphere's setup (NA 1.2, 49 rings, λ 0.532) is none of the training setups' exact values.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_deep_regularizer_mie.py \
        [--spheres 3] [--screen model|none] [--na-fraction F ...] [--n-illuminations N ...] [--polish card 0]
        [--json FILE] [--save DIR]

Needs miepython (``pip install -e .[bench]``). Numbers only, no assertion.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_independent_mie import N_SPHERE, RADIUS, sphere_centre, write_folder  # noqa: E402
from _mie_holograms import NM  # noqa: E402


def fwhm_um(profile: np.ndarray, step_um: float) -> float:
    """Full width at half maximum (µm) of a 1-D profile above its median background: between the
    outermost half-maximum crossings (a dip inside a flat-topped object does not shorten it),
    linearly interpolated."""
    p = profile - np.median(profile)
    half = p.max() / 2
    above = np.flatnonzero(p > half)
    lo, hi = int(above[0]), int(above[-1])
    left = lo - (p[lo] - half) / max(p[lo] - p[lo - 1], 1e-12) if lo > 0 else float(lo)
    right = hi + (p[hi] - half) / max(p[hi] - p[hi + 1], 1e-12) if hi < len(p) - 1 else float(hi)
    return (right - left) * step_um


def sphere_numbers(ri: np.ndarray, voxel, origin, centre) -> dict:
    """Mean inside / background and FWHM of one volume (z, y, x) around the sphere ``centre`` (µm)."""
    axes = [origin[i] + voxel[i] * np.arange(ri.shape[i]) for i in range(3)]
    zz, yy, xx = np.meshgrid(*(axes[i] - centre[i] for i in range(3)), indexing="ij")
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    iz, iy, ix = (int(np.argmin(np.abs(axes[i] - centre[i]))) for i in range(3))
    bg = ri[r > RADIUS + 1.0]
    return {"mean_inside": float(ri[r < RADIUS - 0.3].mean()), "bg_mean": float(bg.mean() - NM),
            "bg_std": float(bg.std()), "fwhm_axial_um": fwhm_um(ri[:, iy, ix], voxel[0]),
            "fwhm_lateral_um": 0.5 * (fwhm_um(ri[iz, iy, :], voxel[2]) + fwhm_um(ri[iz, :, ix], voxel[1]))}


def _excess(res) -> list:
    """``[relative excess, quantity]`` of a deep run's measurement beyond the model's domain."""
    from engine.tomography.deep_regularizer import domain_excess, model_card

    e, what = domain_excess(res.metadata, model_card(), illumination_per_um=res.illumination_per_um,
                            used=res.screening.decision)
    return [e, what]


def _sphere_row(seed: int, tv_run: tuple, deep_run: tuple, polish, na_fraction: float, n_illuminations: int) -> dict:
    from engine.tomography.deep_regularizer import learned_step_record
    from engine.training.deep_regularizer_data import ssim_gaussian

    t = tv_run[0].tomogram
    tv, deep = t.ri_tv, deep_run[0].tomogram.ri_deep
    c = sphere_centre(seed)
    return {"sphere": seed, "na_fraction": na_fraction, "n_illuminations": n_illuminations,
            "shape": list(tv.shape), **learned_step_record(polish),
            "ssim_deep_vs_tv": ssim_gaussian(deep, tv),
            "fields_used": int(tv_run[0].screening.decision.sum()),
            "tv": sphere_numbers(tv, t.voxel_size_um, t.origin_um, c),
            "deep": sphere_numbers(deep, t.voxel_size_um, t.origin_um, c),
            "seconds_tv": tv_run[1], "seconds_deep": deep_run[1],
            "domain_warnings": [w for w in deep_run[0].warnings if "regulari" in w],
            "domain_excess": _excess(deep_run[0])}


def _print_row(row: dict) -> None:
    d, v = row["deep"], row["tv"]
    print(f"sphere {row['sphere']}, {row['n_illuminations']} illuminations to {row['na_fraction']:.2f} of NA, "
          f"learned step {row.get('deep_polish', '?')}: SSIM {row['ssim_deep_vs_tv']:.3f}; "
          f"mean inside − 1.36: TV {v['mean_inside'] - N_SPHERE:+.4f}, "
          f"deep {d['mean_inside'] - N_SPHERE:+.4f} (deep − TV {d['mean_inside'] - v['mean_inside']:+.4f}); "
          f"background std TV {v['bg_std']:.4f} deep {d['bg_std']:.4f}; FWHM axial/lateral µm TV "
          f"{v['fwhm_axial_um']:.2f}/{v['fwhm_lateral_um']:.2f} deep {d['fwhm_axial_um']:.2f}/"
          f"{d['fwhm_lateral_um']:.2f}; {row['fields_used']}/{row['n_illuminations']} fields; "
          f"{row['seconds_tv']:.0f} s vs {row['seconds_deep']:.0f} s", flush=True)
    print(f"  outside the learned regulariser's domain by {100 * row['domain_excess'][0]:.0f} % "
          f"({row['domain_excess'][1] or 'inside'})")
    for w in row["domain_warnings"]:
        print(f"  warning: {w}")


def run(spheres: int, screen: str = "model", size: int = 256, save: Path | None = None,
        na_fraction: float = 0.8, n_illuminations: int = 49, polish: tuple = (None,)) -> list[dict]:
    """One row per sphere and learned-step polish (``None``: the model card's; 0: the network alone)."""
    from engine.pipeline.process import ProcessOptions, process_measurement

    def timed(opts):
        t0 = time.perf_counter()
        res = process_measurement(folder, None, opts)
        return res, time.perf_counter() - t0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(spheres):
            folder = Path(tmp) / f"sphere_{seed}"
            write_folder(folder, size, seed, na_fraction=na_fraction, n_illuminations=n_illuminations)
            tv_run = timed(ProcessOptions(regularize="tv", screen=screen, device="cpu"))
            for n in polish:
                # the learned step even outside its domain (measured here), never TV in its place
                deep_run = timed(ProcessOptions(regularize="deep", screen=screen, device="cpu", deep_domain_tolerance=None,
                                                deep_polish_iterations=n))
                row = _sphere_row(seed, tv_run, deep_run, n, na_fraction, n_illuminations)
                rows.append(row)
                if save is not None:  # the volumes' central planes and axial lines, to look at
                    _save_planes(save, row, tv_run[0].tomogram, deep_run[0].tomogram.ri_deep, screen)
                _print_row(row)
    return rows


def _save_planes(save: Path, row: dict, t, deep: np.ndarray, screen: str) -> None:
    tv, c = t.ri_tv, sphere_centre(row["sphere"])
    save.mkdir(parents=True, exist_ok=True)
    iz, iy, ix = (int(np.argmin(np.abs(t.origin_um[i] + t.voxel_size_um[i] * np.arange(tv.shape[i]) - c[i])))
                  for i in range(3))
    name = (f"sphere_{row['sphere']}_{screen}_na{row['na_fraction']:.2f}_n{row['n_illuminations']}"
            f"_polish{row.get('deep_polish', 'x')}.npz")
    np.savez_compressed(save / name, **{
        f"{k}_{cut}": v for k, vol in (("tv", tv), ("deep", deep)) for cut, v in
        (("xy", vol[iz]), ("xz", vol[:, iy]), ("z", vol[:, iy, ix]))}, voxel_um=np.asarray(t.voxel_size_um))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spheres", type=int, default=3)
    ap.add_argument("--screen", choices=("model", "rule", "none"), default="model",
                    help="field screening (the issue's check: the shipped model)")
    ap.add_argument("--na-fraction", type=float, nargs="*", default=[0.8],
                    help="illuminations up to this fraction of the objective NA (one run each; the learned "
                         "regulariser was trained on 0.8–0.95: below 0.8 measures how it fails outside)")
    ap.add_argument("--n-illuminations", type=int, nargs="*", default=[49],
                    help="ring illuminations (one run each, at every --na-fraction; the learned regulariser was "
                         "trained on 25-100: below 25 measures how it fails outside)")
    ap.add_argument("--polish", nargs="+", default=["card"],
                    help="TV iterations after the network: 'card' (the model card's) or a number (0: the network alone)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--save", type=Path, default=None, help="save central planes and axial lines (npz) here")
    args = ap.parse_args(argv)
    rows = [r for f in args.na_fraction for n in args.n_illuminations
            for r in run(args.spheres, args.screen, save=args.save, na_fraction=f, n_illuminations=n,
                         polish=tuple(None if p == "card" else int(p) for p in args.polish))]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
