"""Benchmark: why a screening model scores another lab's clean holograms as it does (issue #19).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_real_holograms.py [--model NAME_OR_DIR ...]
[--sim CACHE.npz ...] [--json OUT.json]``.

For each of the five real holograms of ``tests/data`` (:mod:`_real_holograms`) and each model:
the score ``screen_fields`` gives (the program's own path, its sample-centred crop), and the
score of the same network input with one channel changed — the amplitude channel set flat,
its variation shrunk to 0.4×, the phase channel set flat — which says which channel the score
comes from. Beside it, statistics of the network's input crop compared with the *clean*
simulated frames of the given caches (``screening_families generate``), per sample kind:

* ``phase_hf`` — mean power of the phase channel (phase/π) at spatial frequencies above a
  quarter of the sampling rate (0.25–0.5 cycles/px), where wrapped phase puts its 2π seams;
* ``amp_std`` — standard deviation of the amplitude channel (log amplitude);
* ``amp_hf`` — as ``phase_hf`` for the amplitude channel;
* ``peak_phase`` — the crop's unwrapped phase range (99th minus 1st percentile, rad).

Each real value is given with its percentile among the simulated clean frames of cells. Reports
numbers only; nothing is tuned on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _real_holograms import real_holograms

from engine.screening import screen_fields
from engine.screening.crops import CropSet
from engine.screening.network import CROP_SIZE, load_model, preprocess
from engine.screening.sample_crop import crop_at

STATS = ("phase_hf", "amp_std", "amp_hf", "peak_phase")


def _hf_power(x: np.ndarray) -> np.ndarray:
    """Mean spectral power of images ``x`` (N, h, w) above 0.25 cycles/px (mean removed)."""
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    p = np.abs(np.fft.fft2(x)) ** 2 / (x.shape[-1] * x.shape[-2])
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(x.shape[-2]), np.fft.fftfreq(x.shape[-1]), indexing="ij"))
    return p[:, f > 0.25].mean(axis=1)


def crop_statistics(crops: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`STATS` of field crops (N, 128, 128) complex, as the phase-amplitude network sees them."""
    from skimage.restoration import unwrap_phase

    x = preprocess(crops, input_kind="phase-amplitude").numpy()
    ph, amp = x[:, 0], x[:, 1]
    peak = []
    for u in crops:
        uw = unwrap_phase(np.angle(u))
        peak.append(np.percentile(uw, 99) - np.percentile(uw, 1))
    return {"phase_hf": _hf_power(ph), "amp_std": amp.reshape(len(amp), -1).std(axis=1), "amp_hf": _hf_power(amp),
            "peak_phase": np.array(peak)}


def simulated_clean(paths: list[Path], per_kind: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """:func:`crop_statistics` of up to ``per_kind`` clean frames per sample kind of the caches."""
    sets = [CropSet.load(p) for p in paths]
    cs = CropSet.concatenate(sets)
    kinds = np.array([s.split("-")[0] for s in cs.setup])
    rng = np.random.default_rng(seed)
    out = {}
    for kind in sorted(set(kinds)):
        idx = np.flatnonzero((kinds == kind) & (cs.noisy == 0))
        idx = rng.choice(idx, min(per_kind, len(idx)), replace=False)
        out[kind] = crop_statistics(cs.fields[idx])
    return out


def _ablations(m, x: torch.Tensor) -> dict[str, float]:
    """Median score of input ``x`` as is and with one channel changed (see the module docstring)."""
    variants = {"as_is": x.clone()}
    v = x.clone()
    v[:, 1] = 0
    variants["amplitude_flat"] = v
    v = x.clone()
    v[:, 1] *= 0.4
    variants["amplitude_x0.4"] = v
    v = x.clone()
    v[:, 0] = 0
    variants["phase_flat"] = v
    return {k: float(np.median(m.predict_tensor(t))) for k, t in variants.items()}


def _percentile_of(value: float, reference: np.ndarray) -> float:
    return float(100.0 * np.mean(reference <= value))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="*", default=["default"])
    p.add_argument("--sim", nargs="*", type=Path, default=[], help="screening_families caches (.npz)")
    p.add_argument("--per-kind", type=int, default=400, help="simulated clean frames per sample kind")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    holograms = real_holograms()
    print(f"{len(holograms)} real holograms retrieved in {time.time() - t0:.0f} s")
    report: dict = {"holograms": {}, "simulated_clean": {}}
    sim = simulated_clean(a.sim, a.per_kind) if a.sim else {}
    for kind, st in sim.items():
        report["simulated_clean"][kind] = {k: [float(np.percentile(v, q)) for q in (10, 50, 90)] for k, v in st.items()}
        print(f"simulated clean {kind:9s} (10/50/90 %): " + "  ".join(
            f"{k} {'/'.join(f'{x:.3g}' for x in report['simulated_clean'][kind][k])}" for k in STATS))
    for h in holograms:
        entry: dict = {"split": h.split, "models": {}}
        for name in a.model:
            m = load_model(name, device="cpu")
            s = screen_fields(h.field, h.illumination_per_um, h.metadata, method="model", model=m,
                              pixel_size_um=h.pixel_size_um, device="cpu")
            crops = crop_at(h.field, s.crop_origin, CROP_SIZE)
            x = preprocess(crops, input_kind=m.input_kind, crop=m.crop)
            entry["models"][name] = {"score": float(np.median(s.score)), **_ablations(m, x)}
            entry["crop_origin"] = [int(v) for v in s.crop_origin]
        st = crop_statistics(crops)
        entry["stats"] = {k: float(np.median(v)) for k, v in st.items()}
        if "cells" in sim:
            entry["percentile_among_simulated_clean_cells"] = {
                k: _percentile_of(entry["stats"][k], sim["cells"][k]) for k in STATS}
        report["holograms"][h.name] = entry
        print(f"{h.name} [{h.split}] crop {entry['crop_origin']}: " + "  ".join(
            f"{k} {v:.3g}" + (f" (p{entry['percentile_among_simulated_clean_cells'][k]:.0f})" if "cells" in sim else "")
            for k, v in entry["stats"].items()))
        for name, sc in entry["models"].items():
            print(f"    {name}: " + "  ".join(f"{k} {v:.3f}" for k, v in sc.items()))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
