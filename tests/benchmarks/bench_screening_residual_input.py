"""Benchmark: does a screening network generalise better when it also sees each field against its neighbours? (#19)

Run (both steps on a shared 2-core CPU; numbers only, nothing is shipped)::

    .venv/bin/python tests/benchmarks/bench_screening_residual_input.py prepare [--tomographic]
    .venv/bin/python tests/benchmarks/bench_screening_residual_input.py train --channels field+tomographic \\
        --minutes 12 [--leave-out camera] [--json OUT.json] [--logits OUT.npz]

``prepare`` turns generator 2's caches (``screening_families`` protocol split of
``families-chamber-110-20261206``: train / validation / held-out; the cross-setup, no-background
and wide-pixel evaluation sets; two more training caches) into network inputs, two channels per
group and field, stored as float16 ``GROUP_SET.npy`` files in ``--work``: ``field``, the shipped
input (wrapped phase / π and log amplitude, :func:`engine.screening.network.preprocess`);
``neighbour``, the field against the pixel-wise median of its nearest-illumination neighbours
(:func:`engine.screening.consistency.neighbour_residuals`: phase difference / π and log amplitude
ratio, session 17); with ``--tomographic``, ``tomographic``: the field against its prediction from
the rest of the measurement by the Fourier diffraction theorem
(:func:`engine.screening.tomographic.tomographic_residual_images`: log-amplitude and phase residual,
divided by the measurement's median RMS residual, session 21). The illuminations and the objective NA
come from the setup names (:func:`engine.training.screening_consistency.simulated_illuminations`).

``train`` trains one compact network (:class:`~engine.screening.network.CompactScreeningNet`, width
16, mean + max pooling) from scratch on the chosen channels — ``field`` (2, the shipped input),
``field+residual`` (4), ``residual`` (2), ``field+tomographic`` (4) or ``tomographic`` (2) — for
``--minutes`` on one thread (AdamW, cosine learning rate, random rotations and mirror images), keeps
the state of lowest validation log-loss, and reports accuracy, ROC AUC and the catch rate of every
defect family on every evaluation set (``--logits``: and writes that state's logits of every field of
every evaluation set). ``--leave-out FAMILY`` removes that family's frames from training and from the
validation loss (leave-one-family-out, issue #19 item 2): its catch rate on the held-out measurements
is the measure.

Labels: 1 = noisy. The held-out and evaluation sets are never trained or chosen on.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.metrics import roc_auc
from engine.screening.consistency import neighbour_residuals
from engine.screening.crops import CropSet
from engine.screening.network import (CROP_SIZE, CompactScreeningNet, architecture_of, build_network, load_model,
                                      preprocess)
from engine.simulate.defects import DEFECT_FAMILIES
from engine.training.screening_consistency import simulated_illuminations, simulated_objective_na
from engine.training.screening_families import DEFAULT_CACHE_DIR, protocol_splits

FAMILIES = DEFAULT_CACHE_DIR / "families"
TRAIN_SETS = ("train", "train_1212", "train_largecells")
EVAL_SETS = ("validation", "held_out", "cross_setup", "nobg_eval", "widepx_eval")
#: each input: the prepared channel groups it stacks (files GROUP_SET.npy of two channels each)
CHANNELS = {"field": ("field",), "field+residual": ("field", "neighbour"), "residual": ("neighbour",),
            "field+tomographic": ("field", "tomographic"), "tomographic": ("tomographic",)}
#: the tomographic residual images are divided by their measurement's typical (median) RMS and clipped here
TOMOGRAPHIC_CLIP = 30.0


def channel_groups(cs: CropSet, tomographic: bool) -> dict[str, np.ndarray]:
    """Two-channel (M, 2, 128, 128) float16 inputs per group, measurement by measurement: ``field`` (the
    shipped input), ``neighbour`` (the neighbour residuals) and, with ``tomographic``, ``tomographic``: the
    Rytov residual against the Fourier-diffraction prediction from the other fields
    (:func:`engine.screening.tomographic.tomographic_residual_images`; log amplitude and phase, rad), divided
    by the median over the measurement of each field's RMS residual and clipped at ±:data:`TOMOGRAPHIC_CLIP`."""
    from engine.screening.tomographic import tomographic_residual_images
    from engine.simulate.holograms import Setup

    names = ("field", "neighbour") + (("tomographic",) if tomographic else ())
    out = {g: np.empty((len(cs), 2) + cs.fields.shape[1:], np.float16) for g in names}
    ill = simulated_illuminations(cs)
    for m in np.unique(cs.measurement):
        idx = np.flatnonzero(cs.measurement == m)
        out["field"][idx] = preprocess(cs.fields[idx], input_kind="phase-amplitude").numpy()
        out["neighbour"][idx] = neighbour_residuals(cs.fields[idx], ill[idx])
        if tomographic:
            na = simulated_objective_na(cs.setup[idx[0]])
            if na is None:
                raise ValueError(f"setup {cs.setup[idx[0]]!r} of measurement {m} does not give the objective NA")
            r = tomographic_residual_images(cs.fields[idx], float(cs.pixel_size_um[idx[0]]),
                                            float(cs.wavelength_um[idx[0]]), ill[idx], na, Setup().medium_index)
            out["tomographic"][idx] = _tomographic_channels(r)
    return out


def _tomographic_channels(resid: np.ndarray) -> np.ndarray:
    """(N, 2, h, w) float16: one measurement's residual images (N, h, w) complex, real and imaginary parts over
    the median of the fields' RMS residual, clipped at ±:data:`TOMOGRAPHIC_CLIP`."""
    scale = max(float(np.median(np.sqrt(np.mean(np.abs(resid) ** 2, axis=(1, 2))))), 1e-6)
    return np.clip(np.stack([resid.real, resid.imag], 1) / scale, -TOMOGRAPHIC_CLIP, TOMOGRAPHIC_CLIP).astype(np.float16)


def prepare(work: Path, split_seed: int, tomographic: bool = False) -> None:
    work.mkdir(parents=True, exist_ok=True)
    train, val, held_out = protocol_splits(CropSet.load(FAMILIES / "families-chamber-110-20261206.npz"), split_seed)
    sets = {"train": train, "validation": val, "held_out": held_out,
            "cross_setup": CropSet.load(FAMILIES / "cross-chamber-8-20261207.npz"),
            "train_1212": CropSet.load(FAMILIES / "families-chamber-110-20261212.npz"),
            "train_largecells": CropSet.load(FAMILIES / "families-largecells-chamber-55-20261215.npz"),
            "nobg_eval": CropSet.load(FAMILIES / "families-nobg-chamber-20-20261219.npz"),
            "widepx_eval": CropSet.load(FAMILIES / "families-widepx-chamber-20-20261224.npz")}
    for name, cs in sets.items():
        t0 = time.perf_counter()
        for group, x in channel_groups(cs, tomographic).items():
            np.save(work / f"{group}_{name}.npy", x)
        np.save(work / f"y_{name}.npy", cs.noisy.astype(np.float32))
        np.save(work / f"d_{name}.npy", np.array(cs.defect))
        print(f"{name}: {len(cs)} fields, {time.perf_counter() - t0:.0f} s", flush=True)


def _logits(net: CompactScreeningNet, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        out = [net.logits(torch.from_numpy(x[s:s + 256].astype(np.float32))).reshape(-1) for s in range(0, len(x), 256)]
    net.train()
    return torch.cat(out).numpy().astype(np.float64)


def _scores(net: CompactScreeningNet, sets: dict, left_out: tuple[str, ...]) -> dict:
    report = {}
    for name, (x, y, d) in sets.items():
        if name == "validation":  # chosen without the left-out family, as it was trained
            keep = ~np.isin(d, left_out)
            x, y, d = x[keep], y[keep], d[keep]
        z = _logits(net, x)
        right = (z > 0) == (y > 0.5)
        report[name] = {"accuracy": round(float(right.mean()), 4), "roc_auc": round(roc_auc(y, z), 4),
                        "log_loss": round(float(np.mean(np.logaddexp(0, z) - y * z)), 4),
                        "caught": {fam: round(float(right[np.isin(d, types)].mean()), 3)
                                   for fam, types in DEFECT_FAMILIES.items() if np.isin(d, types).any()},
                        "clean_kept": round(float(right[d == ""].mean()), 4)}
    return report


def _load(work: Path, name: str, groups: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([np.load(work / f"{g}_{name}.npy") for g in groups], axis=1)
    return x, np.load(work / f"y_{name}.npy"), np.load(work / f"d_{name}.npy")


def start_network(in_channels: int, from_member: int | None) -> nn.Module:
    """A network to train: from scratch (compact, width 16, mean + max pooling), or member ``from_member`` of
    the shipped screening model with its weights, the first convolution's extra input channels zero-initialised
    (so it starts as the shipped member, whatever the new channels hold)."""
    if from_member is None:
        return CompactScreeningNet(in_channels=in_channels, width=16, mean_pool=1)
    member = load_model("default").net.members[from_member]
    net = build_network({**architecture_of(member), "in_channels": in_channels})
    state = {k: v.float() for k, v in member.state_dict().items()}
    first = state["features.0.weight"]
    wider = torch.zeros((first.shape[0], in_channels) + tuple(first.shape[2:]))
    wider[:, :first.shape[1]] = first
    net.load_state_dict({**state, "features.0.weight": wider})
    return net


def _training_data(work: Path, groups: tuple[str, ...], left_out: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = [_load(work, name, groups) for name in TRAIN_SETS]
    keep = [~np.isin(d, left_out) for _, _, d in parts]
    x = np.concatenate([p[0][k] for p, k in zip(parts, keep)])
    return x, np.concatenate([p[1][k] for p, k in zip(parts, keep)]).astype(np.float32)


def train(work: Path, channels: str, minutes: float, leave_out: str | None, seed: int,
          logits_out: Path | None = None, *, from_member: int | None = None, lr: float = 2e-3,
          every: int = 150, save: Path | None = None) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    groups = CHANNELS[channels]
    left_out = DEFECT_FAMILIES[leave_out] if leave_out else ()
    x, y = _training_data(work, groups, left_out)
    sets = {name: _load(work, name, groups) for name in EVAL_SETS}
    net = start_network(2 * len(groups), from_member)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    t0, budget, step, best = time.perf_counter(), 60.0 * minutes, 0, (np.inf, {}, 0)
    while time.perf_counter() - t0 < budget:
        order = rng.permutation(len(y))
        for s in range(0, len(y) - 63, 64):
            frac = min(1.0, (time.perf_counter() - t0) / budget)
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * frac))
            idx = np.sort(order[s:s + 64])
            xb = torch.rot90(torch.from_numpy(x[idx].astype(np.float32)), int(rng.integers(4)), (2, 3))
            if rng.random() < 0.5:
                xb = torch.flip(xb, (3,))
            loss = F.binary_cross_entropy_with_logits(net.logits(xb).reshape(-1), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            done = time.perf_counter() - t0 >= budget
            if step % every == 0 or done:
                report = _scores(net, sets, left_out)
                print(f"{time.perf_counter() - t0:5.0f} s step {step}: " + "  ".join(
                    f"{k} {v['accuracy']:.3f}/{v['roc_auc']:.3f}" for k, v in report.items()), flush=True)
                if report["validation"]["log_loss"] < best[0]:
                    best = (report["validation"]["log_loss"], report, step)
                    _keep_state(net, sets, logits_out, save)
            if done:
                break
    return {"channels": channels, "leave_out": leave_out, "minutes": minutes, "seed": seed, "train_fields": int(len(y)),
            "from_member": from_member, "lr": lr, "steps": step, "chosen_step": best[2],
            "chosen_on": "validation log-loss (without the left-out family)", **best[1]}


def _keep_state(net: nn.Module, sets: dict, logits_out: Path | None, save: Path | None) -> None:
    """The chosen state's logits of every evaluation set (all fields) and its weights with its architecture."""
    if logits_out is not None:
        np.savez(logits_out, **{name: _logits(net, xs) for name, (xs, _, _) in sets.items()})
    if save is not None:
        torch.save({"architecture": architecture_of(net), "state": net.state_dict()}, save)


def mie_false_alarms(states: list[Path], work: Path, spheres: int = 3) -> dict:
    """How many clean exact-Mie fields (``bench_screening_anomaly_mie.py``'s measurements: miepython, 49 ring
    illuminations, both exposures) each saved network (``train --save``) calls noisy, its input made as
    ``prepare`` makes it, beside the shipped members: ``logit_0``, its raw logit above 0; ``clean_p95``, above
    the level that 5 % of the clean generator-2 validation fields exceed (the same operating point for every
    network, whatever its calibration). Independent data: the simulator made none of these fields, and every
    one is clean."""
    import tempfile

    from bench_screening_anomaly_mie import EXPOSURES, write_folder

    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.screening.sample_crop import crop_at
    from engine.screening.tomographic import tomographic_residual_images

    nets: dict[str, tuple[nn.Module, bool]] = {
        f"shipped member {k}": (m, False) for k, m in enumerate(load_model("default").net.members)}
    for path in states:
        saved = torch.load(path, weights_only=True)
        net = build_network(saved["architecture"])
        net.load_state_dict(saved["state"])
        nets[path.stem] = (net, int(saved["architecture"]["in_channels"]) == 4)
    clean_val = np.load(work / "d_validation.npy") == ""
    levels = {name: float(np.percentile(_logits(net, _load(work, "validation", ("field", "tomographic") if tomo
                                                          else ("field",))[0][clean_val]), 95))
              for name, (net, tomo) in nets.items()}
    report: dict = {"clean_p95_levels": {k: round(v, 3) for k, v in levels.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        for exposure, (photons, steep) in EXPOSURES.items():
            flags, total = {k: [0, 0] for k in nets}, 0
            for seed in range(spheres):
                folder = Path(tmp) / exposure / f"sphere_{seed}"
                write_folder(folder, 256, seed, photons, steep)
                res = process_measurement(folder, None, ProcessOptions(regularize="none", screen_consistency=False))
                r, md = res.retrieved, res.metadata
                crops = crop_at(np.asarray(r.field), tuple(res.screening.crop_origin), CROP_SIZE)
                field = preprocess(crops, input_kind="phase-amplitude").numpy().astype(np.float16)
                resid = tomographic_residual_images(crops, float(r.pixel_size_um), float(md.wavelength_um),
                                                    r.illumination_per_um, md.na_objective, md.medium_index)
                tomo = _tomographic_channels(resid)
                total += len(crops)
                for name, (net, with_tomo) in nets.items():
                    x = np.concatenate([field, tomo], axis=1) if with_tomo else field
                    z = _logits(net, x)
                    flags[name][0] += int((z > 0).sum())
                    flags[name][1] += int((z > levels[name]).sum())
            report[exposure] = {"fields": total, **{k: {"logit_0": round(v[0] / total, 4),
                                                        "clean_p95": round(v[1] / total, 4)} for k, v in flags.items()}}
            print(exposure, json.dumps(report[exposure]), flush=True)
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("step", choices=("prepare", "train", "mie"))
    p.add_argument("--work", type=Path, default=Path("/tmp/odt-screening-residual"))
    p.add_argument("--split-seed", type=int, default=20261206)
    p.add_argument("--channels", choices=sorted(CHANNELS), default="field+residual")
    p.add_argument("--minutes", type=float, default=12.0)
    p.add_argument("--leave-out", choices=sorted(DEFECT_FAMILIES), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tomographic", action="store_true",
                   help="prepare: also the tomographic residual images (channels field+tomographic, tomographic)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--logits", type=Path, default=None,
                   help="write the chosen state's logits of every evaluation set here (.npz), for bench_screening_hybrid_lofo.py")
    p.add_argument("--from-member", type=int, default=None,
                   help="train: start from this member of the shipped model (extra input channels zero-initialised)")
    p.add_argument("--lr", type=float, default=2e-3, help="train: peak learning rate (cosine)")
    p.add_argument("--every", type=int, default=150, help="train: evaluate (and keep the best state) every so many steps")
    p.add_argument("--save", type=Path, default=None, help="train: write the chosen state here (.pt, with its architecture)")
    p.add_argument("--states", type=Path, nargs="*", default=[], help="mie: saved states (train --save) to score")
    args = p.parse_args(argv)
    if args.step == "mie":
        result = mie_false_alarms(args.states, args.work)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        return result
    if args.step == "prepare":
        prepare(args.work, args.split_seed, args.tomographic)
        return {}
    result = train(args.work, args.channels, args.minutes, args.leave_out, args.seed, args.logits,
                   from_member=args.from_member, lr=args.lr, every=args.every, save=args.save)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
