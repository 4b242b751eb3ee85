"""The learned regulariser followed by a few TV iterations, scored on cached training pairs.

Run as ``python -m engine.training.deep_regularizer_polish --help``.

The pipeline's learned step (:func:`engine.tomography.deep_regularizer.regularize_deep_fourier`) is
the network followed by ``(outer, inner)`` iterations of :func:`engine.tomography.tv.regularize_tv`
started from the network's volume (:func:`engine.tomography.deep_regularizer.polish_tv`). Those
iterations need the measurement's Fourier data, which the pair caches do not store; this module
rebuilds it exactly from what they do store:

* the **support** ``M`` depends only on the setup (illuminations, NA, λ, n_m, voxel, shape), not on
  the fields: it is mapped again from zero fields (:func:`pair_support`);
* the **spectrum**: the cached raw tomogram is ``Re(ifftn(D))`` read out with the square root, so
  ``x_raw = (raw/n_m)² − 1`` and ``H = fftn(x_raw)`` is the Hermitian part of the measured
  spectrum. TV only uses ``M·D`` through that Hermitian part (:class:`~engine.tomography.constraints.DataConsistency`),
  which ``S = 2H / (M(k) + M(−k))`` on the support reproduces (:func:`pair_fourier_data`). The
  check: 30 × 20 TV iterations on the rebuilt data give back the cached TV target
  (``tests/engine/test_deep_regularizer_polish.py``).

Conventions: as :mod:`engine.training.deep_regularizer_data` (µm, volumes (z, y, x), the pairs'
indices read out with the square root, ``linear_index=False``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from .deep_regularizer import SETUPS, TrainingPair

__all__ = ["pair_support", "pair_fourier_data", "parse_config", "score_configs", "main"]


def _pair_illuminations(pair: TrainingPair) -> tuple[np.ndarray, dict]:
    """Snapped illumination frequencies (N, 2) of a pair and its setup as a dict."""
    from ..simulate.beam_propagation import snap_illuminations
    from ..simulate.holograms import illumination_pattern

    if pair.setup_params:
        s = dict(pair.setup_params)
    else:
        setup = next((u for u in SETUPS if u.name == pair.setup), None)
        if setup is None:
            raise ValueError(f"pair {pair.kind}_{pair.seed}: unknown setup {pair.setup!r}")
        s = {"n_angles": setup.n_angles, "na_condenser": setup.na_condenser, "wavelength_um": setup.wavelength_um,
             "na_objective": setup.na_objective, "pattern": "spiral"}
    vox = float(pair.voxel_size_um[1])
    ill = illumination_pattern(int(s["n_angles"]), float(s["na_condenser"]), float(s["wavelength_um"]),
                               pattern=s.get("pattern", "spiral"))
    return snap_illuminations(ill, pair.raw.shape[1:], (vox, vox)), s


def pair_support(pair: TrainingPair) -> torch.Tensor:
    """The measured Fourier support (Z, Y, X) bool of a cached pair, mapped from zero fields."""
    from ..tomography.fourier_mapping import map_fields_to_fourier

    ill, s = _pair_illuminations(pair)
    z, y, x = pair.raw.shape
    psi = np.zeros((len(ill), y, x), np.complex64)
    data = map_fields_to_fourier(psi, ill, wavelength_um=float(s["wavelength_um"]), medium_index=pair.medium_index,
                                 na=float(s["na_objective"]), pixel_size_um=float(pair.voxel_size_um[1]), shape_z=z,
                                 device="cpu")
    return data.support


def pair_fourier_data(pair: TrainingPair):
    """A :class:`~engine.tomography.fourier_mapping.FourierData` equivalent, for TV, to the one the
    pair was made from (see the module's docstring); ``linear_index=False`` as the pairs' read-out."""
    from ..tomography.constraints import _negate_frequencies
    from ..tomography.fourier_mapping import FourierData

    support = pair_support(pair)
    nm = float(pair.medium_index)
    x_raw = torch.from_numpy((pair.raw.astype(np.float64) / nm) ** 2 - 1)
    herm = torch.fft.fftn(x_raw)
    cover = support.to(torch.float64) + _negate_frequencies(support.to(torch.float64))
    spectrum = torch.where(support, 2 * herm / cover.clamp(min=1), torch.zeros((), dtype=herm.dtype))
    return FourierData(spectrum=spectrum.to(torch.complex64), support=support,
                       voxel_size_um=tuple(float(v) for v in pair.voxel_size_um), medium_index=nm,
                       wavelength_um=float((pair.setup_params or {}).get("wavelength_um", 0.5)), linear_index=False)


def parse_config(text: str) -> tuple[int, int, bool]:
    """``"2x10"`` → (2, 10, False): the network, then 2 outer × 10 inner TV iterations; ``"0"`` or
    ``"0x0"``: the network alone; ``"tv5x3"`` → (5, 3, True): the control, TV alone from the direct
    inversion with the same iterations (what the network's start is worth)."""
    control = text.lower().startswith("tv")
    parts = text.lower().removeprefix("tv").split("x")
    outer = int(parts[0])
    inner = int(parts[1]) if len(parts) > 1 else (20 if outer else 0)
    if outer < 0 or inner < 0 or (outer and not inner):
        raise ValueError(f"bad polish configuration {text!r}: [tv]OUTERxINNER, e.g. 2x10 or tv5x3")
    if control and not outer:
        raise ValueError(f"bad polish configuration {text!r}: the TV control needs iterations")
    return outer, inner, control


def _config_name(outer: int, inner: int, control: bool) -> str:
    return f"{'tv' if control else ''}{outer}x{inner}"


def score_configs(pairs: Sequence[TrainingPair], model, configs: Sequence[tuple[int, int, bool]], *, log=print) -> dict:
    """Scores (:func:`engine.training.deep_regularizer_data.score_against_tv`) of the network followed
    by each ``(outer, inner, control)`` polish (:func:`parse_config`) on ``pairs``; per configuration
    the grouped scores (:func:`engine.training.deep_regularizer_data.summarise_scores`) and the
    per-sample rows."""
    from ..tomography.deep_regularizer import polish_tv, regularize_deep
    from ..tomography.tv import regularize_tv
    from .deep_regularizer_data import report_kind, score_against_tv, summarise_scores

    rows: dict = {_config_name(*c): [] for c in configs}
    for n, p in enumerate(pairs):
        deep = regularize_deep(p.raw, p.medium_index, model=model, device="cpu")
        data = pair_fourier_data(p)
        for o, i, control in configs:
            vol = (data.to_ri(regularize_tv(data, outer_iterations=o, inner_iterations=i)).float().numpy() if control
                   else polish_tv(deep, data, outer_iterations=o, inner_iterations=i))
            row = {"kind": report_kind(p), "seed": p.seed, "setup": p.setup, "band": p.setup_params.get("held_out_band", ""),
                   "pattern": p.setup_params.get("pattern", "spiral"), **score_against_tv(p, vol)}
            rows[_config_name(o, i, control)].append(row)
        if (n + 1) % 20 == 0:
            log(f"[polish] {n + 1}/{len(pairs)} pairs")
    out: dict = {}
    for name, rs in rows.items():
        out[name] = {**summarise_scores(rs), "per_sample": rs}
        a = out[name]["all_first_order"]
        log(f"[polish] {name}: first-order SSIM {a.get('ssim_deep', float('nan')):.4f} (min {a.get('ssim_deep_min', 0):.4f}), "
            f"inside {a.get('mean_inside_diff', float('nan')):+.5f}, within 0.002 {a.get('mean_inside_within_0.002', 0):.2f}")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m engine.training.deep_regularizer_polish --cache C --split val --configs 0x0 2x10``."""
    from ..tomography.deep_regularizer import load_deep_regularizer
    from .deep_regularizer import load_pairs

    ap = argparse.ArgumentParser(prog="python -m engine.training.deep_regularizer_polish",
                                 description="Score the learned regulariser + a few TV iterations against TV.")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--split", choices=["train", "val", "test"], default="val")
    ap.add_argument("--kinds", nargs="+", default=None)
    ap.add_argument("--configs", nargs="+", default=["0x0", "1x20", "2x10"],
                    help="OUTERxINNER TV iterations after the network; tvOUTERxINNER: TV alone (control)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    configs = [parse_config(c) for c in a.configs]
    pairs = load_pairs(a.cache, a.split, a.kinds)
    if not pairs:
        print(f"no {a.split} pairs in {a.cache}", file=sys.stderr)
        return 2
    reg = load_deep_regularizer(a.model, device="cpu")
    out = {"model": reg.label, "cache": str(a.cache), "split": a.split, "pairs": len(pairs),
           "ssim": "Gaussian window sigma 1.5, data range of the TV volume", "configs": score_configs(pairs, reg, configs)}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
