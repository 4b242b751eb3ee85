"""Build a screening model that calls a field noisy only if every member network does (issue #19).

Run::

    python -m engine.training.screening_ensemble --member default CANDIDATE.safetensors \\
        --validation families-chamber-110-20261206.npz --out DIR/screening-compact.safetensors \\
        --version 3.0.0 [--evaluate cross=CACHE.npz ...] [--domain-from 1]

What it does, in order:

1. loads the member models (``engine.screening.network.load_model``) and checks that they take
   the same input (kind, crop, phase source) without test-time augmentation;
2. takes the validation and held-out measurements of the mixed cache's protocol split
   (``screening_families.protocol_splits``, ``--split-seed``; the members' own checkpoint choice
   and temperatures came from the same validation split);
3. fits the Platt recalibration ``sigmoid(a·z + b)`` of the least calibrated member logit
   ``z = min_k(logit_k / T_k)`` on the **validation** measurements only (:func:`fit_platt`);
4. writes :class:`~engine.screening.network.MinOfNetworks` as fp16 safetensors with a card that
   names each member (name, version, SHA-256, temperature, training data), the calibration, the
   training domain (``--domain-from``: the member trained on the wider setups) and the metrics on
   validation, held-out and every ``--evaluate`` cache.

Labels: 1 = noisy. Numbers only; nothing is tuned on the held-out or ``--evaluate`` sets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.optimize import minimize

from ..backend import resolve_device
from ..screening.crops import CropSet
from ..screening.network import MinOfNetworks, ScreeningModel, load_model, save_model
from .screening_families import _fmt, _logits, evaluate_logits, protocol_splits

__all__ = ["fit_platt", "build_min_ensemble", "ensemble_card", "main"]


def fit_platt(logits: np.ndarray, noisy: np.ndarray) -> tuple[float, float]:
    """Scale ``a`` > 0 and offset ``b`` minimising the binary NLL of ``sigmoid(a·logits + b)`` (Platt 1999).

    Parameters
    ----------
    logits : ndarray (N,)
        Scores on the validation measurements.
    noisy : ndarray (N,)
        Labels, 1 = noisy.

    Returns
    -------
    (float, float)
        ``(a, b)``. ValueError if the labels are all of one class (nothing to fit) or the fit
        gives a non-positive scale (the scores would rank fields the wrong way round).
    """
    z = np.asarray(logits, np.float64)
    y = np.asarray(noisy, np.float64)
    if z.shape != y.shape or z.size == 0:
        raise ValueError("logits and labels must be non-empty and of the same shape")
    if y.min() == y.max():
        raise ValueError("the validation labels are all of one class: a calibration cannot be fitted")

    def nll(ab: np.ndarray) -> float:
        s = ab[0] * z + ab[1]
        return float(np.mean(np.logaddexp(0, s) - y * s))

    res = minimize(nll, np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    a, b = (float(v) for v in res.x)
    if not a > 0:
        raise ValueError(f"the Platt fit gave scale {a:.3g} <= 0: the least member logit does not rank the "
                         "validation fields")
    return a, b


def _check_same_input(members: Sequence[ScreeningModel]) -> dict:
    """The members' shared ``input`` card entry; ValueError if they differ or use test-time augmentation."""
    key = [(m.input_kind, m.crop, m.phase_source) for m in members]
    if len(set(key)) != 1:
        raise ValueError(f"the members take different inputs (kind, crop, phase): {key}")
    if any(m.test_time_augmentation != "none" for m in members):
        raise ValueError("a member uses test-time augmentation: the ensemble takes members without it")
    return dict(members[-1].card.get("input", {}), test_time_augmentation="none")


def build_min_ensemble(members: Sequence[ScreeningModel], validation: CropSet,
                       device: torch.device) -> tuple[MinOfNetworks, dict, dict]:
    """The ensemble of ``members`` with its Platt calibration fitted on ``validation``.

    Returns the network (in eval mode, on the CPU), the calibration entry of its card and the
    members' shared ``input`` entry (ValueError if they take different inputs).
    """
    input_card = _check_same_input(members)
    scales = [1.0 / m.temperature for m in members]
    net = MinOfNetworks([m.net.to(device).eval() for m in members], scales).to(device).eval()
    z = _logits(net, validation, device)  # scale 1, offset 0: the least calibrated member logit
    a, b = fit_platt(z, validation.noisy)
    net.scale, net.offset = a, b
    calibration = {"method": "Platt scaling of the least calibrated member logit on the validation measurements",
                   "scale": a, "offset": b, "temperature": 1.0, "validation_fields": int(len(validation.noisy))}
    return net.cpu(), calibration, input_card


def ensemble_card(members: Sequence[ScreeningModel], input_card: dict, calibration: dict, metrics: dict, *,
                  version: str, domain_from: int, command: str, split_seed: int) -> dict:
    """The model card of the ensemble (``save_model`` fills in architecture, tensors and checksum)."""
    keep = ("name", "version", "description", "training_data", "training", "metrics", "sha256", "date")
    src = members[domain_from]
    return {
        "name": "screening-compact",
        "version": version,
        "description": "Screening by agreement: a field is noisy only if every member network calls it noisy "
                       "(the least calibrated member logit, Platt-recalibrated)",
        "output": "calibrated probability that the field is noisy: sigmoid(scale * min_k(logit_k / T_k) + offset); "
                  "noisy if above threshold",
        "threshold": 0.5,
        "input": input_card,
        "calibration": calibration,
        "members": [{**{k: m.card[k] for k in keep if k in m.card}, "temperature": m.temperature}
                    for m in members],
        "domain": src.card.get("domain"),
        "domain_note": f"the training domain of member {domain_from} ({src.label}), trained on the wider setups; "
                       "the evaluation sets (no background, wide pixel, cross-setup) span it",
        "training_data": src.card.get("training_data"),
        "seed": src.card.get("seed", (src.card.get("training_data") or {}).get("seed")),
        "validation_split_seed": split_seed,
        "metrics": metrics,
        "command": command,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.training.screening_ensemble",
                                description=__doc__.split("\n")[0])
    p.add_argument("--member", nargs="+", required=True, help="two or more models (names or .safetensors paths)")
    p.add_argument("--validation", type=Path, required=True,
                   help="the mixed cache whose protocol split gives the validation and held-out measurements")
    p.add_argument("--split-seed", type=int, default=20261206)
    p.add_argument("--evaluate", nargs="*", default=[], metavar="NAME=CACHE.npz",
                   help="more caches never trained on, reported in the card")
    p.add_argument("--domain-from", type=int, default=-1, help="the member whose training domain the card states")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write (its .json beside it)")
    p.add_argument("--version", default="3.0.0")
    p.add_argument("--members-source", default="", help="where each member file comes from (written to the card)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    members = [load_model(name, device=dev) for name in args.member]
    if len(members) < 2:
        raise SystemExit("give two or more --member models")
    _, val, held_out = protocol_splits(CropSet.load(args.validation), args.split_seed)
    net, calibration, input_card = build_min_ensemble(members, val, dev)
    print(f"Platt calibration on {len(val.noisy)} validation fields: scale {calibration['scale']:.4f}, "
          f"offset {calibration['offset']:.4f}")
    sets = {"validation": val, "held_out": held_out}
    for spec in args.evaluate:
        name, _, path = spec.partition("=")
        sets[name] = CropSet.load(path)
    metrics = {}
    for name, cs in sets.items():
        metrics[name] = evaluate_logits(_logits(net, cs, torch.device("cpu")), cs)
        print(_fmt(name, metrics[name]))
    caches = [f"{n}={Path(p).name}" for n, _, p in (spec.partition("=") for spec in args.evaluate)]
    command = "python -m engine.training.screening_ensemble " + " ".join(
        [f"--member {' '.join(Path(m).name for m in args.member)}", f"--validation {args.validation.name}",
         f"--split-seed {args.split_seed}"]
        + ([f"--evaluate {' '.join(caches)}"] if caches else [])
        + [f"--domain-from {args.domain_from}", f"--version {args.version}"])
    card = ensemble_card(members, input_card, calibration, metrics, version=args.version,
                         domain_from=args.domain_from, command=command, split_seed=args.split_seed)
    if args.members_source:
        card["members_source"] = args.members_source
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = save_model(net, args.out, card)
    print(f"wrote {args.out} ({written['parameters']} parameters) and its card")
    print(json.dumps({k: metrics[k]["accuracy"] for k in metrics}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
