"""Speed (and quality) benchmark: physics (DTT) vs learned route of 3-D birefringence, side by side.

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_birefringence_routes.py [--device cpu|cuda] [--repeats 5] [--no-demo]
        [--threads 1]
    .venv/bin/python -m pytest tests/benchmarks/bench_birefringence_routes.py -s

Two cases, both starting from the Jones fields (the field retrieval, shared by both routes, is
timed apart at the demo size):

1. Generator size: a fresh droplet of the training distribution (seed not used in training), 25
   Jones matrices of 32² fields at 0.2 µm; ``reconstruct_tensor`` onto 32³ and
   ``reconstruct_tensor_learned`` (model loaded once, not timed) onto the same 32³ grid.
2. lc-droplets demo size: 100 holograms of 192² at 0.1 µm (25 illuminations); DTT onto
   96×192×192 (dz 0.1 µm, as ``bench_birefringence.py``) and the learned route onto 48×96×96
   voxels of 0.2 µm (the fields are Fourier-resampled to the model's voxel). The demo droplets
   (radius 2–4 µm, 5CB-like) are partly outside the training distribution (radius ≤ 2.4 µm).

Reports medians of ``--repeats`` runs, the DTT / learned ratio, and PSNR (0–255 over the card's
range) of each route's n_e, n_o against the simulator's truth; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from engine.backend import device_description, resolve_device
from engine.birefringence import JonesFields, jones_fields, reconstruct_tensor
from engine.birefringence.generator import load_generator, reconstruct_tensor_learned, resample_jones
from engine.metrics import psnr_255
from engine.simulate.demo import simulate_demo
from engine.training.birefringence_generator import simulate_droplet, training_metadata


def _timed(fn, dev, repeats: int):
    out, times = None, []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def _psnr(tomo_ne, tomo_no, truth_ne, truth_no, lo, hi) -> str:
    return f"PSNR n_e {psnr_255(tomo_ne, truth_ne, lo, hi):.1f} dB, n_o {psnr_255(tomo_no, truth_no, lo, hi):.1f} dB"


def run(device: str = "cpu", repeats: int = 5, demo: bool = True) -> dict:
    dev = resolve_device(device)
    gen = load_generator("default", device=dev)
    lo, hi = gen.card["output"]["n_min"], gen.card["output"]["n_max"]
    print(f"device: {device_description(dev)}, torch threads {torch.get_num_threads()}")
    res: dict = {}
    # ---- 1. generator size
    jones, truth, params = simulate_droplet(np.random.default_rng([777, 5, 0]), dev)
    md = training_metadata()
    reconstruct_tensor_learned(jones, md, model=gen, device=dev)  # warm-up
    reconstruct_tensor(jones, md, shape_z=32, device=dev)
    dtt, t_dtt = _timed(lambda: reconstruct_tensor(jones, md, shape_z=32, device=dev), dev, repeats)
    lrn, t_lrn = _timed(lambda: reconstruct_tensor_learned(jones, md, model=gen, device=dev), dev, repeats)
    res["small"] = {"dtt_s": t_dtt, "learned_s": t_lrn, "ratio": t_dtt / t_lrn, "volume": lrn.n_e.shape}
    print(f"[generator size] {params['configuration']} droplet r {params['radius_um']:.2f} µm, n_e {params['n_e']:.3f}, "
          f"n_o {params['n_o']:.3f}; 25 illuminations of 32², volume {lrn.n_e.shape}")
    print(f"  DTT     {t_dtt * 1e3:7.1f} ms  {_psnr(dtt.n_e, dtt.n_o, truth[0], truth[1], lo, hi)}")
    print(f"  learned {t_lrn * 1e3:7.1f} ms  {_psnr(lrn.n_e, lrn.n_o, truth[0], truth[1], lo, hi)}  "
          f"(inputs {lrn.timings_s['inputs'] * 1e3:.0f} ms, network {lrn.timings_s['network'] * 1e3:.0f} ms)")
    print(f"  DTT / learned time ratio {t_dtt / t_lrn:.2f}")
    if not demo:
        return res
    # ---- 2. demo size
    sim = simulate_demo("lc-droplets", seed=0, device=dev)
    meas = sim.measurement
    jf, t_jones = _timed(lambda: jones_fields(meas, device=dev), dev, max(1, repeats // 2))
    reps = max(1, repeats // 2)
    dtt, t_dtt = _timed(lambda: reconstruct_tensor(jf, meas.metadata, shape_z=96, device=dev), dev, reps)
    lrn, t_lrn = _timed(lambda: reconstruct_tensor_learned(jf, meas.metadata, model=gen, shape_z=48, device=dev),
                        dev, reps)
    coarse = JonesFields(resample_jones(jf.field, jf.pixel_size_um, 0.2, device=dev).cpu().numpy(),
                         jf.illumination_per_um, 0.2)  # DTT on the learned route's grid
    dtt2, t_dtt2 = _timed(lambda: reconstruct_tensor(coarse, meas.metadata, shape_z=48, device=dev), dev, reps)
    ph = sim.phantom  # truth on (46, 96, 96) voxels of 0.2 µm
    zt = ph.n_e.shape[0]
    lz = lrn.n_e.shape[0]
    sl = slice(lz // 2 - zt // 2, lz // 2 - zt // 2 + zt)  # align z = 0 (index n//2)
    k = np.arange(zt) * 2 + (96 // 2 - zt)  # DTT plane (k − 48)·0.1 = (m − zt//2)·0.2
    obj = ph.params["objects"][0]
    res["demo"] = {"jones_fields_s": t_jones, "dtt_s": t_dtt, "learned_s": t_lrn, "ratio": t_dtt / t_lrn,
                   "dtt_volume": dtt.n_e.shape, "learned_volume": lrn.n_e.shape, "dtt_same_grid_s": t_dtt2}
    print(f"[demo size] {obj['configuration']} droplet r {obj['radius_um']:.2f} µm, n_e {obj['n_e']:.3f}, "
          f"n_o {obj['n_o']:.3f}; {meas.n_images} holograms of {meas.image_shape}; jones_fields {t_jones:.2f} s")
    print(f"  DTT     {t_dtt:6.2f} s onto {dtt.n_e.shape}  "
          f"{_psnr(dtt.n_e[k][:, ::2, ::2], dtt.n_o[k][:, ::2, ::2], ph.n_e, ph.n_o, lo, hi)}")
    print(f"  DTT     {t_dtt2:6.2f} s onto {dtt2.n_e.shape} (fields resampled to 0.2 µm, the learned grid)  "
          f"{_psnr(dtt2.n_e[sl], dtt2.n_o[sl], ph.n_e, ph.n_o, lo, hi)}")
    print(f"  learned {t_lrn:6.2f} s onto {lrn.n_e.shape}  {_psnr(lrn.n_e[sl], lrn.n_o[sl], ph.n_e, ph.n_o, lo, hi)}  "
          f"(inputs {lrn.timings_s['inputs']:.2f} s, network {lrn.timings_s['network']:.2f} s)")
    print(f"  DTT / learned time ratio {t_dtt / t_lrn:.2f} (same grid: {t_dtt2 / t_lrn:.2f})")
    return res


def test_bench_birefringence_routes():
    res = run("cpu", repeats=3)
    assert res["small"]["volume"] == (32, 32, 32)
    if torch.cuda.is_available():
        gpu = run("cuda", repeats=5)
        print(f"CPU / GPU ratio, learned route at the demo size: {res['demo']['learned_s'] / gpu['demo']['learned_s']:.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-demo", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default); 1 is steadier "
                                                           "when another job shares the cores")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    run(a.device, a.repeats, not a.no_demo)
