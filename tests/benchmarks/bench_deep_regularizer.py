"""Speed benchmark: learned regulariser (DeepRegularizer) against this project's TV.

Run on demand (not collected by default)::

    .venv/bin/python tests/benchmarks/bench_deep_regularizer.py [--device cpu|cuda] [--repeats 1]
        [--sizes 64x64x64 64x320x320] [--threads N]
    .venv/bin/python -m pytest tests/benchmarks/bench_deep_regularizer.py -s

``--models`` times several learned models (e.g. the shipped one and a candidate's
``.safetensors``) against the same TV run. Same volumes for all: a phantom's spectrum on the Ewald caps of 49 illuminations
(``map_fields_to_fourier`` of first-order fields of the phantom would need a simulation; the
time of both methods does not depend on the content, so the caps are filled with the phantom's
own spectrum). TV: :func:`engine.tomography.regularize_tv` with its defaults (τ = 5e-4, 30 × 20
iterations, non-negativity). Deep: :func:`engine.tomography.deep_regularizer.regularize_deep` on
the raw (unconstrained) tomogram with the shipped model (64³ patches, stride 32). Prints sizes,
seconds (median of ``--repeats``, after one warm-up call for the deep route's model load) and
the ratio TV / deep; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from engine.backend import device_description, resolve_device
from engine.simulate.holograms import illumination_pattern
from engine.simulate.phantoms import make_phantom
from engine.tomography.deep_regularizer import DEFAULT_MODEL_NAME, load_deep_regularizer, regularize_deep
from engine.tomography.fourier_mapping import (FourierData, map_fields_to_fourier, ri_to_scattering_potential,
                                               scattering_potential_to_ri)
from engine.tomography.tv import regularize_tv

LAM, NM, NA = 0.532, 1.337, 1.2


def make_data(shape: tuple[int, int, int], device: torch.device, px: float = 0.1) -> FourierData:
    """FourierData of a bacteria phantom restricted to the measured caps of 49 illuminations."""
    Z, Y, X = shape
    ph = make_phantom("bacteria", shape, (px, px, px), NM, np.random.default_rng(0))
    ill = illumination_pattern(49, 1.1, LAM)
    psi = torch.full((ill.shape[0], Y, X), 1e-3, dtype=torch.complex64, device=device)
    caps = map_fields_to_fourier(psi, ill, wavelength_um=LAM, medium_index=NM, na=NA, pixel_size_um=px,
                                 shape_z=Z, device=device)
    x = torch.as_tensor(ri_to_scattering_potential(ph.ri.astype(np.float32), NM), device=device)
    spec = torch.where(caps.support, torch.fft.fftn(x), torch.zeros((), dtype=torch.complex64, device=device))
    return FourierData(spectrum=spec, support=caps.support, voxel_size_um=(px, px, px), medium_index=NM,
                       wavelength_um=LAM)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench(shape, device="auto", repeats: int = 1, models=("default",)) -> dict:
    """TV and each learned model in ``models`` on the same volume; ``deep_s``/``ratio`` of the first,
    ``per_model`` of all (e.g. the shipped model beside a candidate)."""
    dev = resolve_device(device)
    data = make_data(shape, dev)
    raw = scattering_potential_to_ri(torch.fft.ifftn(data.spectrum).real, NM).float().cpu().numpy()
    regs = {m: load_deep_regularizer(m, device=dev) for m in models}
    for reg in regs.values():
        regularize_deep(raw[:64, :64, :64] if min(shape) >= 64 else raw, NM, model=reg)  # warm-up
    t_tv: list[float] = []
    t_deep: dict = {m: [] for m in regs}
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        regularize_tv(data)
        _sync(dev)
        t_tv.append(time.perf_counter() - t0)
        for m, reg in regs.items():
            t0 = time.perf_counter()
            regularize_deep(raw, NM, model=reg)
            _sync(dev)
            t_deep[m].append(time.perf_counter() - t0)
    tv = statistics.median(t_tv)
    per_model = {m: {"label": regs[m].label, "deep_s": statistics.median(t), "ratio": tv / statistics.median(t)}
                 for m, t in t_deep.items()}
    first = per_model[models[0]]
    return {"shape": shape, "device": device_description(dev), "tv_s": tv, "deep_s": first["deep_s"],
            "ratio": first["ratio"], "per_model": per_model}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--sizes", nargs="+", default=["64x64x64", "64x320x320"], help="ZxYxX")
    ap.add_argument("--models", nargs="+", default=["default"],
                    help="learned models to time (names or .safetensors paths; default: the shipped one)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"models {a.models} (default = {DEFAULT_MODEL_NAME}), torch {torch.__version__}, "
          f"CPU threads {torch.get_num_threads()}")
    for s in a.sizes:
        shape = tuple(int(v) for v in s.lower().split("x"))
        r = bench(shape, a.device, a.repeats, models=tuple(a.models))
        for m in r["per_model"].values():
            print(f"{r['device']}: volume {shape[0]}x{shape[1]}x{shape[2]} (ZxYxX): TV {r['tv_s']:.2f} s, "
                  f"{m['label']} {m['deep_s']:.2f} s, TV/deep = {m['ratio']:.1f}x", flush=True)


def test_bench_deep_regularizer():
    """pytest entry: 64³ only on the default device (the 320×320×64 case via the script)."""
    import pytest

    from engine.models import MODELS_DIR

    if not (MODELS_DIR / f"{DEFAULT_MODEL_NAME}.safetensors").exists():
        pytest.skip("shipped deep regulariser not trained yet")
    r = bench((64, 64, 64))
    print(f"\n{r['device']}: 64^3 TV {r['tv_s']:.2f} s, deep {r['deep_s']:.2f} s, ratio {r['ratio']:.1f}x")
    assert r["deep_s"] > 0 and r["tv_s"] > 0


if __name__ == "__main__":
    main()
