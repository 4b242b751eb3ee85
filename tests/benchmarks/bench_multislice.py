"""Accuracy and speed: Rytov, Rytov + TV and the multislice (SSNP) inversion on exact-Mie spheres.

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_multislice.py [--device cpu|cuda] [--independent]
        [--spheres silica,polystyrene,weak] [--iterations 20] [--skip-timing] [--size 128]
        [--cells] [--cell-seeds 3,7] [--threads 1] [--frame auto|lab|illumination]
        [--refine-iterations 15] [--refine-momentum] [--json OUT.json]

For the three spheres of issue #21 (in water, n_m 1.337, λ 0.532 µm, NA 1.2, 0.1 µm voxels, 49
illuminations: a ring of 48 at illumination NA 1.0 plus the normal one): mean RI inside
(r − 0.3 µm), its error, the axial/lateral half-contrast extent, the relative data misfit
``Σ‖P(u − d)‖²/Σ‖P(d − 1)‖²`` of each volume (judged by the lab-frame SSNP model and, for the truth
and the multislice volume, by the illumination-frame one, the most accurate the project has: this
favours the multislice volume, which was fitted with them) and seconds.
Fields: :func:`engine.simulate.mie.mie_fields`, or miepython's (``--independent``,
``_independent_mie.py``). Then the timing of ``--size``×``--size``×``--size/2`` from 49
illuminations (goal on the 2-core CPU: < 2 min), with the ratio to the Rytov + TV path.
Asserts nothing.

Measured (2026-12-06, 2-core CPU shared with other jobs, one torch thread, the bench's default
``frame="auto"`` (the library's default is ``"lab"``): 20 iterations of 16 illuminations in the
lab frame, then, only where the iterate's Δn exceeds 0.2 (polystyrene here), 15 more in the
illumination frame; ``.venv/bin/python
tests/benchmarks/bench_multislice.py`` and ``... --independent --skip-timing``). Mean RI error,
axial/lateral extent, data misfit (lab-frame model; in brackets, for the truth and the
multislice volume, judged by the illumination-frame model); fields from engine.simulate.mie /
from miepython (held out: never used to choose a setting). "truth" is the voxelised true sphere:
its misfit is the forward model's own error on these fields.

=============  ==============================  =====================  =====================  ==============================
sphere         truth                           Rytov + nonneg         Rytov + TV             multislice
=============  ==============================  =====================  =====================  ==============================
silica         0 1.00 0.0020 (0.0033)          +0.0062 0.70 0.208     +0.0066 0.70 0.198     +0.0000 1.00 0.0009 (0.0065)
               (miepython) 0.0014 (0.0021)     +0.0059 0.71 0.196     +0.0064 0.72 0.188     +0.0004 1.00 0.0008 (0.0045)
polystyrene    0 1.00 0.134 (0.020)            −0.219 3.0 2.03        −0.219 3.0 2.01        −0.0010 1.05 0.082 (0.020)
               (miepython) 0.118 (0.013)       −0.221 3.0 1.96        −0.220 2.5 1.95        +0.0005 1.05 0.078 (0.015)
weak           0 1.00 0.0000 (0.0002)          +0.0010 0.88 0.0158    +0.0010 0.88 0.0143    +0.0001 1.04 0.0001 (0.0002)
               (miepython) 0.0000 (0.0001)     +0.0010 0.88 0.0155    +0.0010 0.88 0.0140    +0.0001 1.02 0.0001 (0.0001)
=============  ==============================  =====================  =====================  ==============================

Silica and the weak sphere never reach Δn 0.2 (silica's iterate peaks at 0.159) and run in the
lab frame only (as before this refinement existed: same numbers). Mean-RI error of the multislice
iterate after iteration 1, 5, 10, 15, 20 (engine.simulate.mie fields): silica −0.004, +0.004,
+0.003, +0.001, 0.000; weak within 0.0003 throughout; polystyrene −0.087, −0.004, +0.008,
+0.005, +0.007 (lab frame), then in the illumination frame (proximal gradient, no
momentum: the default since 2026-12-06), after refinement iteration 1, 5, 10, 15: −0.010,
−0.005, −0.0025, −0.0010 (miepython: +0.010 after the lab frame, −0.007, −0.003, −0.0008,
+0.0005). Polystyrene rows before that change (FISTA in the refinement too,
``--refine-momentum``): +0.0020 1.05 0.093 (0.015), miepython +0.0030 1.00 0.088 (0.012).

Mean-RI error of polystyrene after 15 / 30 / 45 refinement iterations (``--spheres polystyrene
--skip-timing --refine-iterations 45 [--independent] [--refine-momentum]``; the iterate after
15 is the default run's):

===========================  ===========================  ===========================
refinement                   engine.simulate.mie          miepython (held out)
===========================  ===========================  ===========================
FISTA (before)               +0.0020 +0.0052 +0.0060      +0.0030 +0.0052 +0.0067
proximal gradient (default)  −0.0010 +0.0009 +0.0021      +0.0005 +0.0021 +0.0030
===========================  ===========================  ===========================

Not converged either: the plain gradient reaches +0.0040 after 90 refinement iterations (our
Mie) and still climbs, presumably towards FISTA's limit of about +0.006, 3–4× more slowly (see
``engine.tomography.multislice``, where the other variants tried are listed).

Why the refinement: the lab-frame SSNP lags exact Mie inside the polystyrene bead by 0.37 rad at
illumination NA 1.0 (waves steep to z: see ``engine.tomography.multislice``), the true sphere
misfits the Mie fields by 0.134 there and the lab-frame inversion writes that error into the
volume (+0.0074, +0.005 to +0.009 between 15 and 40 iterations). Marching along each
illumination cuts the truth's misfit to 0.020 (miepython 0.013). Caveat, measured on
engine.simulate.mie only, with FISTA in the refinement (before 2026-12-06): the refinement
approaches its limit from below and has not reached it after 15 iterations; run on for 40
illumination-frame iterations from the lab-frame result it settles at +0.0057 (z/x 0.86), from
the true sphere it drifts to +0.0034 after 40; on fields made by the illumination-frame model
itself the same runs give +0.0021 (z/x 0.90) and 0.0000, so about +0.002 of that limit is the
inversion (axial compression: the missing cone, TV) and about +0.0035 the remaining model error.
Fitting only the light within 66° of each illumination (where that model is best: truth misfit
0.009) does not change the limit (+0.0060). The default of 15 refinement iterations was chosen
on these engine.simulate.mie runs (10: −0.0028, 15: +0.0020, 20: −0.0016 in one run; +0.0019
after 15 from a different subset order): within 0.005, but not a converged estimate.

Simulated adherent cells (64×128×128, 0.1 µm; fields from the beam-propagation simulator on a
grid twice as fine, cut to this one; 49 illuminations; seeds 3 / 7). RMSE against the phantom,
data misfit, mean RI error per organelle type (cytoplasm, nucleus, nucleoli, lipid droplets,
granules; each organelle's voxels at its own index, small spheres shrunk by 0.1 µm):

===============  ======  ======  =========  =======  ========  =======  ========
method, cell     RMSE    misfit  cytoplasm  nucleus  nucleoli  lipid    granules
===============  ======  ======  =========  =======  ========  =======  ========
Rytov+nonneg 3   0.0061  0.0069  −0.0012    +0.0105  +0.0147   −0.0040  −0.0013
Rytov+nonneg 7   0.0074  0.0071  −0.0016    +0.0134  +0.0203   −0.0061  −0.0058
Rytov + TV 3     0.0067  0.0068  −0.0015    +0.0118  +0.0183   +0.0004  +0.0004
Rytov + TV 7     0.0081  0.0070  −0.0019    +0.0151  +0.0229   −0.0030  −0.0051
multislice 3     0.0052  0.0004  −0.0020    +0.0075  +0.0110   −0.0032  −0.0042
multislice 7     0.0063  0.0005  −0.0025    +0.0100  +0.0159   −0.0050  −0.0076
===============  ======  ======  =========  =======  ========  =======  ========

(The truth's own misfit is 1e-5: for cells the model explains the simulator's fields.) Without
the divergence guard the multislice misfit on cell 3 fell from 0.007 to 0.0018 in 6 iterations
and then grew to 1-4 (RMSE 0.06).

Timing 64×128×128 from 49 illuminations, 20 iterations, one thread (silica: lab frame only):
multislice 118.9 s wall, **45.7 s CPU** (Rytov start 3.4 s); Rytov + TV 28.0 s wall, 13.6 s CPU:
ratio 4.2 wall, 3.4 CPU; a second run (``--spheres ""``, load about 4): 59.5 s wall, 35.8 s CPU,
Rytov + TV 24.7 s / 13.3 s (ratio 2.4 wall, 2.7 CPU). Before the illumination frame existed (same
code path for silica): 40.9 s CPU, 41.5 s on a quieter machine: the spread is the machine's load. Silica 128² run:
multislice +0.0003, Rytov + TV +0.0030. Polystyrene 64×64×32 from 49 illuminations, the whole
default run (20 + 15 iterations): 53.8 s wall (silica 64×64×48, 20 iterations: 14.0 s); one
illumination-frame iteration costs about 5× a lab-frame one here (forward + gradient per
illumination 80 ms vs 14 ms).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine.backend import device_description, resolve_device
from engine.metadata import MeasurementMetadata
from engine.simulate.beam_propagation import propagate_scalar, snap_illuminations
from engine.simulate.mie import mie_fields
from engine.simulate.phantoms import make_bead, make_cell
from engine.tomography import reconstruct
import engine.tomography.multislice as _ms_module
from engine.tomography.multislice import MultisliceModel, data_misfit

LAM, NM, NA, PX = 0.532, 1.337, 1.2, 0.1
# name: radius µm, index, (Z, H=W) box
SPHERES = {"silica": (1.5, 1.46, (48, 64)), "polystyrene": (1.0, 1.59, (32, 64)), "weak": (2.5, 1.36, (72, 96))}


def ring(n: int, size: int, na_ill: float = 1.0) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n - 1, endpoint=False)
    ill = np.vstack([[0.0, 0.0], np.stack([np.cos(a), np.sin(a)], 1) * (na_ill / LAM)])
    return snap_illuminations(ill, (size, size), (PX, PX))


def stats(ri: np.ndarray, radius: float, n_sphere: float) -> dict:
    z, y, x = (((np.arange(n) - n // 2) * PX) for n in ri.shape)
    r = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    mean = float(ri[r < radius - 0.3].mean())
    zc, yc, xc = (n // 2 for n in ri.shape)
    half = NM + (n_sphere - NM) / 2
    lat = float((ri[zc, yc, :] > half).sum())
    return {"mean": mean, "error": mean - n_sphere,
            "axial_over_lateral": float((ri[:, yc, xc] > half).sum()) / lat if lat else float("nan")}


def ms_options(args) -> dict:
    return {"iterations": args.iterations, "threads": args.threads or None, "frame": args.frame,
            "refine_iterations": args.refine_iterations, "refine_momentum": args.refine_momentum}


class IterateProbe:
    """Records ``metric(Δn + n_m)`` of every iterate (bench only: wraps the module's proximal step).

    The time spent in ``metric`` is kept in ``seconds`` so that it can be taken off the timing.
    """

    def __init__(self, metric):
        self.metric, self.values, self.seconds = metric, [], 0.0

    def __enter__(self):
        self._orig = _ms_module.tv_denoise

        def wrapped(z, *a, **k):
            out = self._orig(z, *a, **k)
            t = time.perf_counter()
            self.values.append(round(float(self.metric(out[0].detach().cpu().numpy() + NM)), 5))
            self.seconds += time.perf_counter() - t
            return out
        _ms_module.tv_denoise = wrapped
        return self

    def __exit__(self, *exc):
        _ms_module.tv_denoise = self._orig
        return False


# ------------------------------------------------------------------ cells (item 3 of issue #21)
def cell_fields(seed: int, shape: tuple[int, int, int], n_ill: int, dev):
    """Adherent cell phantom (truth on the reconstruction grid) and its fields from the simulator.

    The fields come from :func:`engine.simulate.beam_propagation.propagate_scalar` on a grid
    twice as fine in every axis (0.05 µm voxels, its own screen count), then cut to the
    reconstruction grid in Fourier space (both grids start at the same corner, so the crop needs
    no phase shift): not the inversion's own discretisation.
    """
    z, h, w = shape
    truth = make_cell(shape, (PX, PX, PX), NM, seed, morphology="adherent")
    fine = make_cell((2 * z, 2 * h, 2 * w), (PX / 2,) * 3, NM, seed, morphology="adherent")
    assert fine.params["objects"] == truth.params["objects"]
    a = np.linspace(0, 2 * np.pi, n_ill - 1, endpoint=False)
    ill = np.vstack([[0.0, 0.0], np.stack([np.cos(a), np.sin(a)], 1) * (1.0 / LAM)])
    ill = snap_illuminations(ill, (h, w), (PX, PX))  # on both grids (same field of view)
    u_fine = propagate_scalar(fine, LAM, ill, NA, device=dev)
    spec = np.fft.fftshift(np.fft.fft2(u_fine), axes=(-2, -1))
    spec = spec[:, h - h // 2:h + h // 2, w - w // 2:w + w // 2]
    u = np.fft.ifft2(np.fft.ifftshift(spec, axes=(-2, -1))) / 4.0
    return truth, u.astype(np.complex64), ill


def organelle_masks(truth) -> list[tuple[str, float, np.ndarray]]:
    """(type, index, mask) per object: its voxels at its own index (spheres: shrunk by 0.1 µm)."""
    zz, yy, xx = truth.axes_um()
    out = []
    for o in truth.params["objects"]:
        same = np.abs(truth.ri - o["index"]) < 1e-4
        if "radius_um" in o and o["type"] not in ("adherent-cell",):
            c = o["centre_um"]
            d = np.sqrt((zz[:, None, None] - c[0]) ** 2 + (yy[None, :, None] - c[1]) ** 2
                        + (xx[None, None, :] - c[2]) ** 2)
            m = d < max(o["radius_um"] - 0.1, 0.6 * PX)
            m = m & same if (m & same).any() else m  # overlapping objects: the part left at its index
        else:
            m = same
        if m.any():
            out.append((o["type"], float(o["index"]), m))
    return out


def cells(args, dev) -> list[dict]:
    shape = (64, 128, 128)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX)
    rows = []
    for seed in [int(s) for s in args.cell_seeds.split(",") if s]:
        t = time.perf_counter()
        truth, u, ill = cell_fields(seed, shape, args.illuminations, dev)
        t_sim = time.perf_counter() - t
        t = time.perf_counter()
        ry = reconstruct(u, ill, md, shape_z=shape[0], non_negativity=True, regularization="tv", device=dev)
        t_ry = time.perf_counter() - t
        t = time.perf_counter()
        ms = reconstruct(u, ill, md, shape_z=shape[0], method="multislice", non_negativity=True, device=dev,
                         multislice=ms_options(args))
        t_ms = time.perf_counter() - t
        model = MultisliceModel(shape, (PX, PX, PX), LAM, NM, NA, device=dev)
        masks = organelle_masks(truth)
        print(f"cell seed {seed}: {len(masks)} objects, fields simulated in {t_sim:.1f} s", flush=True)
        for label, vol, sec in (("truth", truth.ri, 0.0), ("rytov+nonneg", ry.ri, float("nan")),
                                ("rytov+tv", ry.ri_tv, t_ry), ("multislice", ms.ri, t_ms)):
            per: dict = {}
            for kind, idx, m in masks:
                per.setdefault(kind, []).append(float(vol[m].mean()) - idx)
            row = {"cell": seed, "method": label, "rmse": float(np.sqrt(np.mean((vol - truth.ri) ** 2))),
                   "organelle_error": {k: float(np.mean(v)) for k, v in per.items()},
                   "organelle_abs_error": {k: float(np.mean(np.abs(v))) for k, v in per.items()},
                   "misfit": data_misfit(model, vol - NM, u, ill), "seconds": sec}
            rows.append(row)
            errs = " ".join(f"{k} {row['organelle_error'][k]:+.4f}" for k in sorted(per))
            print(f"  {label:13s} RMSE {row['rmse']:.4f} misfit {row['misfit']:.2e} {sec:6.1f} s | {errs}",
                  flush=True)
    return rows


def fields_for(name: str, n_ill: int, independent: bool):
    radius, ns, (zz, size) = SPHERES[name]
    ill = ring(n_ill, size)
    if independent:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _independent_mie import miepython_fields

        u = miepython_fields(radius, ns, NM, LAM, (size, size), PX, ill, na=NA)
    else:
        u = mie_fields(radius, ns, NM, LAM, (size, size), PX, ill, na=NA)
    return u.astype(np.complex64), ill, zz


def accuracy(name: str, args, dev) -> list[dict]:
    radius, ns, _ = SPHERES[name]
    u, ill, zz = fields_for(name, args.illuminations, args.independent)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX)
    rows = []
    t = time.perf_counter()
    ry = reconstruct(u, ill, md, shape_z=zz, non_negativity=True, regularization="tv", device=dev)
    t_ry = time.perf_counter() - t
    t = time.perf_counter()
    with IterateProbe(lambda v: stats(v, radius, ns)["error"]) as probe:
        ms = reconstruct(u, ill, md, shape_z=zz, method="multislice", non_negativity=True, device=dev,
                         multislice=ms_options(args))
    t_ms = time.perf_counter() - t - probe.seconds
    model = MultisliceModel(ry.ri.shape, ry.voxel_size_um, LAM, NM, NA, device=dev)
    model_if = MultisliceModel(ry.ri.shape, ry.voxel_size_um, LAM, NM, NA, frame="illumination", device=dev)
    truth = make_bead(ry.ri.shape, ry.voxel_size_um, NM, 0, radius_um=radius, index=ns, centre_um=(0, 0, 0)).ri
    for label, vol, sec in (("truth", truth, 0.0),
                            ("rytov+nonneg", ry.ri, ry.timings_s.get("total", t_ry) - ry.timings_s.get("tv", 0.0)),
                            ("rytov+tv", ry.ri_tv, t_ry), ("multislice", ms.ri, t_ms)):
        row = {"sphere": name, "method": label, **stats(vol, radius, ns),
               "misfit": data_misfit(model, vol - NM, u, ill), "seconds": sec}
        if label in ("truth", "multislice"):  # judged by the illumination-frame model (support: Δn > 5 % of max)
            dn = torch.as_tensor(vol - NM, dtype=torch.float32)
            model_if.set_support(dn, 0.05 * float(dn.max()), margin=3)
            row["misfit_illumination_frame"] = data_misfit(model_if, dn, u, ill)
        rows.append(row)
        extra = f" (illumination frame {row['misfit_illumination_frame']:.4f})" if "misfit_illumination_frame" in row else ""
        print(f"{name:12s} {label:13s} mean {row['mean']:.4f} err {row['error']:+.4f} "
              f"z/x {row['axial_over_lateral']:.2f} misfit {row['misfit']:.4f}{extra} {sec:6.1f} s", flush=True)
    print(f"{'':12s} multislice misfit per iteration: {np.round(ms.misfit, 4).tolist()}", flush=True)
    print(f"{'':12s} multislice mean-RI error per iteration: {np.round(probe.values, 4).tolist()}", flush=True)
    rows[-1]["error_per_iteration"] = probe.values
    return rows


def timing(args, dev) -> dict:
    """Seconds (wall and this process's CPU) of Rytov + TV and multislice on size×size×size/2."""
    size = args.size
    zz = size // 2
    ill = ring(49, size)
    u = mie_fields(1.5, 1.46, NM, LAM, (size, size), PX, ill, na=NA).astype(np.complex64)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX)
    t, c = time.perf_counter(), time.process_time()
    ry = reconstruct(u, ill, md, shape_z=zz, non_negativity=True, regularization="tv", device=dev)
    t_ry, c_ry = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    ms = reconstruct(u, ill, md, shape_z=zz, method="multislice", non_negativity=True, device=dev,
                     multislice=ms_options(args))
    t_ms, c_ms = time.perf_counter() - t, time.process_time() - c
    out = {"volume": [zz, size, size], "illuminations": 49, "iterations": args.iterations,
           "rytov_tv_s": t_ry, "rytov_tv_cpu_s": c_ry, "multislice_s": t_ms, "multislice_cpu_s": c_ms,
           "ratio_to_rytov_tv": t_ms / t_ry, "cpu_ratio_to_rytov_tv": c_ms / c_ry,
           "multislice_stages_s": {k: round(v, 2) for k, v in ms.timings_s.items()},
           "silica_error": stats(ms.ri, 1.5, 1.46)["error"], "rytov_tv_error": stats(ry.ri_tv, 1.5, 1.46)["error"]}
    print(f"timing {zz}x{size}x{size} from 49 illuminations, {args.iterations} iterations: multislice "
          f"{t_ms:.1f} s wall / {c_ms:.1f} s CPU, Rytov+TV {t_ry:.1f} s / {c_ry:.1f} s CPU (ratio {t_ms / t_ry:.1f}"
          f" wall, {c_ms / c_ry:.1f} CPU); stages {out['multislice_stages_s']}; silica error "
          f"{out['silica_error']:+.4f} (Rytov+TV {out['rytov_tv_error']:+.4f})", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--spheres", default="silica,polystyrene,weak")
    p.add_argument("--illuminations", type=int, default=49)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--independent", action="store_true", help="miepython's fields instead of engine.simulate.mie")
    p.add_argument("--size", type=int, default=128, help="lateral size of the timing run (Z = size/2)")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--cells", action="store_true", help="also the simulated adherent cells (item 3)")
    p.add_argument("--cell-seeds", default="3,7")
    p.add_argument("--threads", type=int, default=1, help="torch threads during the iterations (0: as set)")
    p.add_argument("--frame", default="auto", choices=["auto", "lab", "illumination"],
                   help="MultisliceOptions.frame (the library's default is 'lab')")
    p.add_argument("--refine-iterations", type=int, default=15, help="MultisliceOptions.refine_iterations")
    p.add_argument("--refine-momentum", action="store_true", help="MultisliceOptions.refine_momentum (FISTA)")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    print(f"device: {device_description(dev)}; torch threads {torch.get_num_threads()}", flush=True)
    rows = [r for name in args.spheres.split(",") if name for r in accuracy(name, args, dev)]
    result = {"rows": rows}
    if args.cells:
        result["cells"] = cells(args, dev)
    if not args.skip_timing:
        result["timing"] = timing(args, dev)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
