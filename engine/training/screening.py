"""Train the screening networks on simulated data and write the shipped model files.

Run ``python -m engine.training.screening --help``. The script

1. simulates measurements (many sample kinds, 45/49/71 angles, several NAs and noise
   levels, about half the frames noisy) and caches their 128 × 128 field crops as ``.npz``
   under ``--cache-dir`` (outside the repository);
2. splits them **by measurement** into train / validation / held-out test;
3. trains the published :class:`~engine.screening.network.ScreeningNet` (Adam, binary
   cross-entropy, elastic-deformation augmentation, flips and 90° rotations) and keeps the
   epoch with the best validation loss;
4. trains :class:`~engine.screening.network.CompactScreeningNet`, by default on phase *and*
   log-amplitude inputs (``--compact-input phase-amplitude``: dust shadows, parasitic fringes
   and over-exposure show mostly in the amplitude) from the labels; with the same input as
   the published net it is distilled from it instead (soft targets + labels);
5. chooses the rule's mask radius and threshold on the validation set;
6. runs the cross-setup test: a measurement setup never seen in training (cells, 45 angles,
   another NA and noise level), and a paper-style experiment where a net is trained on
   bacteria with 71 angles only and tested on that cell setup;
7. writes ``screening-published`` / ``screening-compact`` (fp16 safetensors + JSON card with
   architecture, input spec, data, generator version, seed, metrics, date, SHA-256) and
   the training log to ``--out-dir`` (default ``resources/models``).

The same script trains on a GPU (``--device cuda``) with more data and epochs; the defaults
are a CPU configuration sized for a 2-core machine.

References
----------
D. Ryu et al., "Deep learning-based optical field screening for robust optical diffraction
tomography", Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backend import resolve_device
from ..metrics import screening_metrics
from ..models import TrainingLog
from ..progress import CancelToken, check_cancel
from ..screening.crops import CROSS_SETUP, GENERATOR_VERSION, CropSet, augment_batch, simulator_available, training_specs
from ..screening.domain import training_domain
from ..screening.network import (COMPACT_NAME, INPUT_KINDS, MODELS_DIR, PUBLISHED_NAME, CompactScreeningNet,
                                 ScreeningNet, dihedral_views, preprocess, save_model)
from ..screening.rule import choose_rule_threshold, rule_peak_metric
from .ema import WeightEMA
from .screening_data import (DEFAULT_CACHE_DIR, bacteria71_specs, cross_setup_specs, load_or_generate,
                             split_by_measurement)

__all__ = [
    "TrainConfig",
    "train_network",
    "predict_logits",
    "recalibrate_batchnorm",
    "evaluate_model",
    "evaluate_rule",
    "tune_rule",
    "main",
]

class TrainConfig:
    """Hyper-parameters of one training run (plain attributes, logged and written to the card)."""

    def __init__(self, **kw) -> None:
        self.epochs = int(kw.get("epochs", 4))
        self.batch_size = int(kw.get("batch_size", 32))
        self.lr = float(kw.get("lr", 1e-4))
        self.weight_decay = float(kw.get("weight_decay", 0.0))
        self.elastic_probability = float(kw.get("elastic_probability", 0.5))
        self.distill_weight = float(kw.get("distill_weight", 0.5))
        self.seed = int(kw.get("seed", 0))
        self.max_minutes = float(kw.get("max_minutes", 1e9))
        #: "constant" learning rate, or "cosine": linear warm-up over ``warmup_steps`` then a cosine
        #: decay to 0 at the end of ``epochs`` or of ``max_minutes``, whichever comes first
        self.schedule = str(kw.get("schedule", "constant"))
        self.warmup_steps = int(kw.get("warmup_steps", 0))
        #: > 0: validate, choose and return the exponential moving average of the weights
        self.ema_decay = float(kw.get("ema_decay", 0.0))
        self.weight_decay_decoupled = bool(kw.get("weight_decay_decoupled", False))
        #: > 0: each batch also goes through the network turned/mirrored by one random element of
        #: the dihedral group; both views get the label loss, and this weight times the symmetric
        #: KL divergence between the two views' Bernoulli outputs is added (view consistency)
        self.consistency_weight = float(kw.get("consistency_weight", 0.0))

    def as_dict(self) -> dict:
        return dict(vars(self))


# --------------------------------------------------------------------------- training
def _inputs(cs: CropSet, input_kind: str = "phase") -> torch.Tensor:
    return preprocess(cs.fields, unwrapped_phase=cs.unwrapped_phase, input_kind=input_kind)


_PHASE_NORMALISATION = ("angle(U * exp(-i arg sum U)) (or unwrapped phase) minus its median, divided by pi, "
                        "clipped to [-10, 10]")
_AMPLITUDE_NORMALISATION = "log|U| minus its median, clipped to [-5, 5]"


def input_card_for(kind: str) -> dict:
    """The model card's ``input`` entry for an input kind (see :func:`~engine.screening.network.preprocess`)."""
    crop = "; centre crop 128x128 of the ratio field"
    norm = {"phase": _PHASE_NORMALISATION,
            "amplitude": _AMPLITUDE_NORMALISATION,
            "phase-amplitude": f"channel 0: {_PHASE_NORMALISATION}; channel 1: {_AMPLITUDE_NORMALISATION}",
            "phase-amplitude-spectrum": f"channel 0: {_PHASE_NORMALISATION}; channel 1: {_AMPLITUDE_NORMALISATION}; "
                                        "channel 2: (log(|fftshift(fft2(V))|/crop + 1e-3) minus its median) / 3, "
                                        "clipped to [-5, 5], V = U exp(-i arg sum U) / median|U|",
            "complex": "V = U / (median |U| * exp(i arg sum U)); channels (Re V - 1, Im V), clipped to [-10, 10]"}
    card = {"kind": kind, "crop": 128, "channels": INPUT_KINDS[kind], "normalisation": norm[kind] + crop}
    if kind in ("phase", "phase-amplitude", "phase-amplitude-spectrum"):
        card["phase"] = "wrapped"
    return card


@torch.no_grad()
def predict_logits(net: nn.Module, x: torch.Tensor, *, device: torch.device, batch_size: int = 256,
                   augmentation: str = "none") -> np.ndarray:
    """Logits (N,) of ``net`` on preprocessed inputs ``x`` (eval mode), with the test-time
    ``augmentation`` of :func:`engine.screening.network.network_logits`."""
    from ..screening.network import network_logits

    net.eval()
    out = [network_logits(net, x[s:s + batch_size].to(device), augmentation).float().cpu()
           for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def train_network(net: nn.Module, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor,
                  y_val: np.ndarray, config: TrainConfig, *, device: str | torch.device = "auto",
                  teacher_logits: Optional[np.ndarray] = None, log: Callable[[str], None] = print,
                  cancel: Optional[CancelToken] = None) -> dict:
    """Train ``net`` with Adam and binary cross-entropy; keep the best validation epoch.

    ``config`` also chooses AdamW (decoupled weight decay), a warm-up + cosine learning-rate
    schedule, and an exponential moving average of the weights (``ema_decay``), which is then
    what is validated, chosen and returned.

    Parameters
    ----------
    net : nn.Module
        A screening network (``logits`` method).
    x_train, x_val : Tensor (N, C, h, w)
        Preprocessed inputs.
    y_train, y_val : ndarray (N,)
        Labels, 1 = noisy.
    config : TrainConfig
    device : str or torch.device
    teacher_logits : ndarray (N,), optional
        Distillation: the loss becomes ``(1−w)·BCE(labels) + w·BCE(sigmoid(teacher))`` with
        ``w = config.distill_weight``; only flips/rotations are used then (the teacher saw
        the un-deformed inputs).
    log : callable
    cancel : CancelToken, optional

    Returns
    -------
    dict
        ``history`` (per-epoch train loss, val loss, val accuracy), ``best_epoch``, ``seconds``.
        ``net`` holds the best weights on return.
    """
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    net.to(dev)
    opt_class = torch.optim.AdamW if config.weight_decay_decoupled else torch.optim.Adam
    opt = opt_class(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    averaged = WeightEMA(net, config.ema_decay) if config.ema_decay > 0 else None
    y_tr = torch.as_tensor(np.asarray(y_train), dtype=torch.float32)
    t_tr = None if teacher_logits is None else torch.sigmoid(torch.as_tensor(teacher_logits, dtype=torch.float32))
    y_v = np.asarray(y_val).astype(np.float32)
    n = len(x_train)
    steps_total = config.epochs * -(-n // config.batch_size)
    elastic = 0.0 if t_tr is not None else config.elastic_probability
    best: tuple[float, int, Optional[dict]] = (float("inf"), -1, None)
    history: list[dict] = []
    t0, step, stop = time.time(), 0, False
    for epoch in range(config.epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for s in range(0, n, config.batch_size):
            check_cancel(cancel)
            idx = perm[s:s + config.batch_size]
            for group in opt.param_groups:
                group["lr"] = _learning_rate(config, step, steps_total, time.time() - t0)
            xb = augment_batch(x_train[idx], generator=gen, elastic_probability=elastic).to(dev)
            loss = _batch_loss(net, xb, y_tr[idx].to(dev), None if t_tr is None else t_tr[idx].to(dev), config, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if averaged is not None:
                averaged.update(net)
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if (time.time() - t0) / 60 > config.max_minutes:
                log(f"  time budget of {config.max_minutes:.1f} min reached in epoch {epoch + 1} "
                    f"after {seen}/{n} samples")
                stop = True
                break
        judged = net if averaged is None else averaged.net
        v_loss, v_acc = _validate(judged, x_train, x_val, y_v, dev, gen)
        history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1), "val_loss": v_loss,
                        "val_accuracy": v_acc, "seconds": round(time.time() - t0, 1)})
        log(f"  epoch {epoch + 1}/{config.epochs}: train loss {total / max(seen, 1):.4f}, val loss {v_loss:.4f}, "
            f"val accuracy {v_acc:.4f} ({time.time() - t0:.0f} s)")
        if v_loss < best[0]:
            best = (v_loss, epoch + 1, copy.deepcopy(judged.state_dict()))
        if stop:
            break
    if best[2] is not None:
        net.load_state_dict(best[2])
    net.eval()
    return {"history": history, "best_epoch": best[1], "seconds": round(time.time() - t0, 1)}


def _batch_loss(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, teacher: Optional[torch.Tensor],
                config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The training loss of one batch: BCE on the labels (mixed with the ``teacher``'s soft labels
    by ``config.distill_weight``); with ``config.consistency_weight`` > 0 on two views of the batch
    (the batch and one random rotation/mirror image of it) plus the weighted symmetric KL
    divergence between the views' outputs, ``(p1 − p2)(l1 − l2) / 2`` for logits l and
    probabilities p (zero when the network answers the same for both orientations)."""
    w_view = config.consistency_weight
    if w_view > 0:
        g = int(torch.randint(1, 8, (1,), generator=gen))  # never the identity
        xb = torch.cat([xb, dihedral_views(xb)[g]])
        yb = torch.cat([yb, yb])
        teacher = None if teacher is None else torch.cat([teacher, teacher])
    logit = net.logits(xb)
    loss = F.binary_cross_entropy_with_logits(logit, yb)
    if teacher is not None:
        w = config.distill_weight
        loss = (1 - w) * loss + w * F.binary_cross_entropy_with_logits(logit, teacher)
    if w_view > 0:
        l1, l2 = logit.chunk(2)
        loss = loss + w_view * (0.5 * (torch.sigmoid(l1) - torch.sigmoid(l2)) * (l1 - l2)).mean()
    return loss


def _learning_rate(config: TrainConfig, step: int, steps_total: int, elapsed_s: float) -> float:
    """The learning rate of ``step`` under ``config.schedule`` (see :class:`TrainConfig`)."""
    if config.schedule == "constant":
        return config.lr
    if config.schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {config.schedule!r}: 'constant' or 'cosine'")
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps > 0 else 1.0
    frac = min(1.0, max(step / max(1, steps_total), elapsed_s / (60.0 * config.max_minutes)))
    return config.lr * warm * 0.5 * (1.0 + math.cos(math.pi * frac))


def _validate(net: nn.Module, x_train: torch.Tensor, x_val: torch.Tensor, y_val: np.ndarray,
              dev: torch.device, gen: torch.Generator) -> tuple[float, float]:
    """Validation loss and accuracy of ``net`` after re-estimating its batch-norm statistics."""
    recalibrate_batchnorm(net, x_train, device=dev, generator=gen)
    vl = predict_logits(net, x_val, device=dev)
    v_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(vl), torch.from_numpy(y_val)))
    v_acc = float(np.mean((vl > 0) == (y_val > 0.5))) if len(y_val) else float("nan")
    return v_loss, v_acc


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, x: torch.Tensor, *, device: torch.device, max_samples: int = 1024,
                          batch_size: int = 128, generator: Optional[torch.Generator] = None) -> None:
    """Re-estimate batch-norm running statistics as exact averages over (a sample of) ``x``.

    The exponential running averages lag behind when training is short; evaluation then
    uses stale statistics. A no-op for networks without batch norm (the published net).
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    idx = torch.randperm(len(x), generator=generator)[:max_samples]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for s in range(0, len(idx), batch_size):
        net.logits(x[idx[s:s + batch_size]].to(device))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    net.eval()


# --------------------------------------------------------------------------- evaluation
def evaluate_model(net: nn.Module, x: torch.Tensor, noisy: np.ndarray, *, device: torch.device,
                   threshold: float = 0.5) -> dict:
    """Accuracy, sensitivity, specificity, ROC AUC of a network on preprocessed inputs."""
    p = 1 / (1 + np.exp(-predict_logits(net, x, device=device).astype(np.float64)))
    return screening_metrics(noisy, p, threshold)


def rule_metric_of(cs: CropSet, mask_radius_per_um: float) -> np.ndarray:
    """Rule metric of every crop (frames may have different pixel sizes)."""
    out = np.empty(len(cs), np.float32)
    px = cs.pixel_size_um if cs.pixel_size_um is not None else np.full(len(cs), 0.1, np.float32)
    wl = cs.wavelength_um if cs.wavelength_um is not None else np.full(len(cs), 0.532, np.float32)
    for p in np.unique(px):
        sel = np.flatnonzero(px == p)
        out[sel] = rule_peak_metric(cs.fields[sel], None, float(p), float(wl[sel][0]),
                                    mask_radius_per_um=mask_radius_per_um)
    return out


def tune_rule(val: CropSet, radii=(0.5, 1.0, 1.5, 2.0, 3.0)) -> dict:
    """Mask radius and threshold that maximise the rule's validation accuracy."""
    best = None
    for r in radii:
        m = rule_metric_of(val, r)
        t, acc = choose_rule_threshold(m, val.noisy)
        if best is None or acc > best["val_accuracy"]:
            best = {"mask_radius_per_um": float(r), "threshold": float(t), "val_accuracy": float(acc)}
    return best


def evaluate_rule(cs: CropSet, rule: dict) -> dict:
    """Rule metrics on a crop set with the tuned radius/threshold."""
    m = rule_metric_of(cs, rule["mask_radius_per_um"])
    return screening_metrics(cs.noisy, m, rule["threshold"])


def _fmt(name: str, m: dict) -> str:
    return (f"{name}: accuracy {m['accuracy']:.4f}, sensitivity {m['sensitivity']:.4f}, "
            f"specificity {m['specificity']:.4f}, ROC AUC {m['roc_auc']:.4f} (n={m['n']}, noisy={m['n_noisy']})")


# --------------------------------------------------------------------------- script
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.training.screening",
                                description="Train the field-screening networks on simulated data.")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="where crops are cached (.npz)")
    p.add_argument("--out-dir", type=Path, default=MODELS_DIR, help="where model files and the log go")
    p.add_argument("--source", choices=("auto", "simulator", "synthetic"), default="auto",
                   help="field source: physics simulator + retrieval, or the fast synthetic generator")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--n-measurements", type=int, default=60, help="mixed measurements (train+val+test)")
    p.add_argument("--n-cross", type=int, default=8, help="cross-setup test measurements")
    p.add_argument("--n-bacteria", type=int, default=20, help="bacteria-71 measurements for the paper-style test")
    p.add_argument("--published-epochs", type=int, default=4)
    p.add_argument("--published-minutes", type=float, default=20.0, help="time budget for the published net")
    p.add_argument("--compact-epochs", type=int, default=12)
    p.add_argument("--compact-minutes", type=float, default=8.0)
    p.add_argument("--published-input", choices=sorted(INPUT_KINDS), default="phase",
                   help="input of the published net (the paper: phase)")
    p.add_argument("--compact-input", choices=sorted(INPUT_KINDS), default="phase-amplitude",
                   help="input of the compact net; it is distilled from the published net only if the inputs match")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=20261123)
    p.add_argument("--skip-published", action="store_true",
                   help="train only the compact net on the labels (no distillation)")
    p.add_argument("--skip-bacteria-experiment", action="store_true")
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    # the published net's log is kept when only the compact net is retrained
    log_path = out_dir / ("screening-compact-training.log" if args.skip_published else "screening-training.log")
    log = TrainingLog(log_path)

    source = args.source
    if source == "auto":
        source = "simulator" if simulator_available() else "synthetic"
    log(f"ODT Studio screening training; command: {' '.join(sys.argv)}")
    log(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, source {source}, "
        f"seed {args.seed}")
    cache = args.cache_dir / source
    mixed = load_or_generate(cache / f"mixed-{args.n_measurements}-{args.seed}.npz",
                             training_specs(args.n_measurements, args.seed), source=source,
                             device=str(dev), log=log)
    cross = load_or_generate(cache / f"cross-{args.n_cross}-{args.seed + 1}.npz",
                             cross_setup_specs(args.n_cross, args.seed + 1), source=source, device=str(dev),
                             log=log)
    tr_idx, va_idx, te_idx = split_by_measurement(mixed.measurement, (0.7, 0.15, 0.15), seed=args.seed)
    train, val, test = mixed.subset(tr_idx), mixed.subset(va_idx), mixed.subset(te_idx)
    log(f"split by measurement: train {len(train)} frames / {len(np.unique(train.measurement))} measurements, "
        f"val {len(val)} / {len(np.unique(val.measurement))}, test {len(test)} / {len(np.unique(test.measurement))}; "
        f"cross-setup {len(cross)} frames / {len(np.unique(cross.measurement))} measurements "
        f"({cross.setup[0] if len(cross) else '-'})")
    assert not set(train.measurement) & set(test.measurement)

    if args.skip_published:
        args.published_input = args.compact_input
    x_tr, x_va, x_te, x_cr = (_inputs(c, args.published_input) for c in (train, val, test, cross))
    rule = tune_rule(val)
    log(f"rule tuned on validation: mask radius {rule['mask_radius_per_um']} cycles/um, threshold "
        f"{rule['threshold']:.3f} (val accuracy {rule['val_accuracy']:.4f})")
    metrics: dict = {"rule": {"held_out": evaluate_rule(test, rule), "cross_setup": evaluate_rule(cross, rule)}}
    log(_fmt("rule held-out", metrics["rule"]["held_out"]))
    log(_fmt("rule cross-setup", metrics["rule"]["cross_setup"]))

    data_card = _data_card(source, args.seed, train, val, test, cross)
    input_card = input_card_for(args.published_input)
    compact_input_card = input_card_for(args.compact_input)

    teacher = None
    if not args.skip_published:
        teacher = _train_published(args, (x_tr, x_va, x_te, x_cr), (train, val, test, cross), metrics, data_card,
                                   input_card, rule, dev, out_dir, log)

    distil = teacher is not None and args.compact_input == args.published_input
    log(f"training CompactScreeningNet on {args.compact_input} inputs "
        f"({'distilled from the published net' if distil else 'labels only'})"
        f" for up to {args.compact_epochs} epochs / {args.compact_minutes} min")
    t_logits = None if not distil else predict_logits(teacher, x_tr, device=dev)
    if args.compact_input != args.published_input:
        x_tr, x_va, x_te, x_cr = (_inputs(c, args.compact_input) for c in (train, val, test, cross))
    compact = CompactScreeningNet(x_tr.shape[1])
    ccfg = TrainConfig(epochs=args.compact_epochs, batch_size=args.batch_size, lr=1e-3, seed=args.seed + 7,
                       max_minutes=args.compact_minutes, distill_weight=0.5 if distil else 0.0)
    c_info = train_network(compact, x_tr, train.noisy, x_va, val.noisy, ccfg, device=dev, teacher_logits=t_logits,
                           log=log)
    metrics["compact"] = _three_scores(compact, (x_va, x_te, x_cr), (val, test, cross), dev)
    log(_fmt("compact held-out", metrics["compact"]["held_out"]))
    log(_fmt("compact cross-setup", metrics["compact"]["cross_setup"]))

    if not args.skip_bacteria_experiment:
        metrics["bacteria71_to_cells45"] = _bacteria_experiment(args, cache, source, x_tr.shape[1], x_cr, cross,
                                                                dev, log)

    card = _card(COMPACT_NAME, args, data_card, compact_input_card, ccfg, c_info, metrics["compact"], metrics["rule"],
                 rule, dev, distilled_from=PUBLISHED_NAME if distil else None,
                 extra={"bacteria71_to_cells45": metrics.get("bacteria71_to_cells45")})
    save_model(compact.cpu(), out_dir / f"{COMPACT_NAME}.safetensors", card)
    log(f"wrote {out_dir / (COMPACT_NAME + '.safetensors')}")
    log("summary JSON: " + json.dumps(_summary(metrics)))
    log.close()
    return 0


def _data_card(source: str, seed: int, train: CropSet, val: CropSet, test: CropSet, cross: CropSet) -> dict:
    """The ``training_data`` entry of the model cards."""
    return {
        "source": source,
        "generator_version": GENERATOR_VERSION,
        "simulator_version": _simulator_version() if source == "simulator" else "synthetic field-level generator",
        "seed": seed,
        "train": _describe(train), "validation": _describe(val), "held_out_test": _describe(test),
        "cross_setup_test": _describe(cross),
        "split": "by measurement (no frame of a test measurement is seen in training)",
        "augmentation": "random 90-degree rotations, horizontal flips, elastic deformation (p=0.5, RMS 4 px, "
                        "smoothness 8 px)",
        "domain": training_domain(train.setup, train.pixel_size_um, train.wavelength_um),
    }


def _three_scores(net: torch.nn.Module, xs: tuple, sets: tuple, dev: torch.device) -> dict:
    """Held-out, cross-setup and validation metrics of ``net``; ``xs``/``sets`` = (val, test, cross) inputs/CropSets."""
    (x_va, x_te, x_cr), (val, test, cross) = xs, sets
    return {"held_out": evaluate_model(net, x_te, test.noisy, device=dev),
            "cross_setup": evaluate_model(net, x_cr, cross.noisy, device=dev),
            "validation": evaluate_model(net, x_va, val.noisy, device=dev)}


def _train_published(args: argparse.Namespace, xs: tuple, sets: tuple, metrics: dict, data_card: dict,
                     input_card: dict, rule: dict, dev: torch.device, out_dir: Path, log: TrainingLog) -> ScreeningNet:
    """Train, score (into ``metrics["published"]``) and save the published ScreeningNet; returns it on ``dev``.

    ``xs`` = (train, val, test, cross) inputs and ``sets`` the matching CropSets.
    """
    (x_tr, x_va, x_te, x_cr), (train, val, test, cross) = xs, sets
    log(f"training the published ScreeningNet (7.1 M parameters) for up to {args.published_epochs} epochs / "
        f"{args.published_minutes} min")
    teacher = ScreeningNet(x_tr.shape[1])
    cfg = TrainConfig(epochs=args.published_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      max_minutes=args.published_minutes)
    pub_info = train_network(teacher, x_tr, train.noisy, x_va, val.noisy, cfg, device=dev, log=log)
    metrics["published"] = _three_scores(teacher, (x_va, x_te, x_cr), (val, test, cross), dev)
    log(_fmt("published held-out", metrics["published"]["held_out"]))
    log(_fmt("published cross-setup", metrics["published"]["cross_setup"]))
    card = _card(PUBLISHED_NAME, args, data_card, input_card, cfg, pub_info, metrics["published"],
                 metrics["rule"], rule, dev)
    save_model(teacher.cpu(), out_dir / f"{PUBLISHED_NAME}.safetensors", card)
    teacher.to(dev)
    log(f"wrote {out_dir / (PUBLISHED_NAME + '.safetensors')}")
    return teacher


def _bacteria_experiment(args: argparse.Namespace, cache: Path, source: str, n_channels: int, x_cr: np.ndarray,
                         cross: CropSet, dev: torch.device, log: TrainingLog) -> dict:
    """Paper-style cross-setup experiment: a compact net and the rule trained on bacteria/71 angles, scored on ``cross``."""
    log(f"paper-style cross-setup experiment: compact net trained on bacteria/71 angles only "
        f"({args.n_bacteria} measurements), tested on {CROSS_SETUP}")
    bac = load_or_generate(cache / f"bacteria71-{args.n_bacteria}-{args.seed + 2}.npz",
                           bacteria71_specs(args.n_bacteria, args.seed + 2), source=source, device=str(dev),
                           log=log)
    btr, bva = split_by_measurement(bac.measurement, (0.8, 0.2), seed=args.seed)
    b_train, b_val = bac.subset(btr), bac.subset(bva)
    bnet = CompactScreeningNet(n_channels)
    bcfg = TrainConfig(epochs=args.compact_epochs, batch_size=args.batch_size, lr=1e-3, seed=args.seed + 11,
                       max_minutes=args.compact_minutes / 2)
    train_network(bnet, _inputs(b_train, args.compact_input), b_train.noisy, _inputs(b_val, args.compact_input),
                  b_val.noisy, bcfg, device=dev, log=log)
    brule = tune_rule(b_val)
    out = {"compact": evaluate_model(bnet, x_cr, cross.noisy, device=dev),
           "rule": evaluate_rule(cross, brule), "rule_settings": brule, "train_frames": len(b_train)}
    log(_fmt("bacteria-71-trained compact on cells-45", out["compact"]))
    log(_fmt("bacteria-71-tuned rule on cells-45", out["rule"]))
    return out


def _describe(cs: CropSet) -> dict:
    if not len(cs):
        return {"frames": 0, "measurements": 0, "noisy": 0, "setups": {}, "defects": {}}
    setups, counts = np.unique(np.array(cs.setup), return_counts=True)
    defects, dcounts = np.unique(np.array([d or "clean" for d in cs.defect]), return_counts=True)
    return {"frames": len(cs), "measurements": int(len(np.unique(cs.measurement))), "noisy": int(cs.noisy.sum()),
            "setups": {str(s): int(c) for s, c in zip(setups, counts)},
            "defects": {str(d): int(c) for d, c in zip(defects, dcounts)}}


def _simulator_version() -> str:
    try:
        from .. import simulate
        return str(getattr(simulate, "__version__", "engine.simulate (unversioned)"))
    except Exception:
        return "unknown"


def _card(name, args, data_card, input_card, cfg, info, metrics, rule_metrics, rule, dev, *, distilled_from=None,
          extra=None) -> dict:
    from .. import __version__

    card = {
        "name": name, "version": args.version,
        "description": ("Field screening CNN as published by D. Ryu et al., Sci. Rep. 9, 15239 (2019), "
                        "doi:10.1038/s41598-019-51363-x"
                        if name == PUBLISHED_NAME else
                        "Compact field screening CNN for fast CPU use, " + (
                            f"distilled from {distilled_from}" if distilled_from else
                            f"trained on the labels with {input_card['kind']} input")),
        "output": "probability that the field is noisy (sigmoid); noisy if above threshold",
        "threshold": 0.5, "input": input_card,
        "training_data": {k: v for k, v in data_card.items() if k != "domain"},
        "domain": data_card.get("domain"),  # what engine.screening.domain checks a measurement against
        "training": {"optimiser": "Adam", "loss": "binary cross-entropy" + (
            " + distillation (soft targets of %s)" % distilled_from if distilled_from else ""),
            "config": cfg.as_dict(), "best_epoch": info["best_epoch"], "history": info["history"],
            "seconds": info["seconds"], "device": str(dev)},
        "metrics": metrics, "rule_metrics": rule_metrics,
        "rule": {"mask_radius_per_um": rule["mask_radius_per_um"], "threshold": rule["threshold"],
                 "frame": "ratio (disc centred on nu = 0)"},
        "seed": args.seed, "software_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if distilled_from:
        card["distilled_from"] = distilled_from
    if extra:
        card.update({k: v for k, v in extra.items() if v is not None})
    return card


def _summary(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out[k] = {kk: ({m: round(vv[m], 4) for m in ("accuracy", "sensitivity", "specificity", "roc_auc")}
                           if isinstance(vv, dict) and "accuracy" in vv else None) for kk, vv in v.items()}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
