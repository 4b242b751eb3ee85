"""Fine-tune a screening model on a lab's manual overrides, with replay, and keep it only if better.

The technician's manual decisions (``source = 2`` in the project database) are expert
labels (Ryu et al. 2019 distil one expert's decisions into the network). Fine-tuning on them
alone would make the net forget the rest of its training distribution, so each batch mixes
override fields with **replayed** fields of the original training distribution (regenerated
with the generator and seed named in the base model's card, or given by the caller). A part
of the overrides (whole measurements when there are several) is **held out**; the model is
evaluated on it before and after, and the new model is saved — versioned, in the project
folder's ``models/`` — only if it is better there. The shipped models in
``resources/models`` are never written.

Label convention: ``noisy = 1 − decision`` (decision 1 = clean, as in the project database).

References
----------
D. Ryu et al., Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x.
D. Rolnick et al., "Experience replay for continual learning", NeurIPS (2019).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..backend import resolve_device
from ..progress import CancelToken, check_cancel, report
from ..metrics import screening_metrics
from .crops import CropSet, generate_crops
from .network import (CROP_SIZE, MODELS_DIR, ModelFileError, ScreeningModel, _centre_crop, _pad_to, build_network, load_model,
                      preprocess, save_model)

__all__ = ["RetrainReport", "retrain_on_labels", "retrain_from_overrides", "overrides_of_project",
           "next_model_path", "retrain_command"]


@dataclass
class RetrainReport:
    """What a retraining did.

    Attributes
    ----------
    before, after : dict
        Metrics (:func:`~engine.metrics.screening_metrics`) on the held-out overrides.
    improved : bool
        True when the fine-tuned model beat the base model on the held-out overrides.
    saved_path : Path or None
        The new ``.safetensors`` file (None when not saved).
    model : ScreeningModel or None
        The fine-tuned model (also returned when not saved, for inspection).
    n_train, n_holdout, n_replay : int
        Override fields used for fine-tuning / held out, replay fields mixed in.
    history : list of dict
        Per-epoch losses.
    """

    before: dict
    after: dict
    improved: bool
    saved_path: Optional[Path]
    model: Optional[ScreeningModel]
    n_train: int
    n_holdout: int
    n_replay: int
    history: list = field(default_factory=list)


def _better(after: dict, before: dict) -> bool:
    """Accuracy first, ROC AUC to break a tie."""
    if after["accuracy"] > before["accuracy"] + 1e-12:
        return True
    if abs(after["accuracy"] - before["accuracy"]) <= 1e-12:
        a, b = after.get("roc_auc", float("nan")), before.get("roc_auc", float("nan"))
        return bool(np.isfinite(a) and np.isfinite(b) and a > b + 1e-9)
    return False


def next_model_path(folder: Path, base_name: str) -> Path:
    """``folder/<base_name>-ft<k>.safetensors`` with the first unused version ``k`` (1, 2, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    k = 1
    while (folder / f"{base_name}-ft{k}.safetensors").exists():
        k += 1
    return folder / f"{base_name}-ft{k}.safetensors"


def _replay_set(base: ScreeningModel, n_measurements: int, seed: int) -> CropSet:
    """Regenerate a replay set from the base model's training distribution (its card)."""
    from .crops import training_specs

    data = base.card.get("training_data", {})
    source = data.get("source", "synthetic")
    if source not in ("simulator", "synthetic"):
        source = "synthetic"
    specs = training_specs(n_measurements, int(data.get("seed", 0)) + 1000 + seed)
    try:
        return generate_crops(specs, source=source)
    except Exception:  # simulator not installed here: fall back to the fast generator
        return generate_crops(specs, source="synthetic")


def retrain_on_labels(
    fields: np.ndarray,
    noisy: np.ndarray,
    groups: Optional[np.ndarray] = None,
    *,
    base_model: str | Path | ScreeningModel = "default",
    replay: Optional[CropSet] = None,
    replay_measurements: int = 4,
    holdout_fraction: float = 0.3,
    epochs: int = 4,
    batch_size: int = 32,
    lr: float = 1e-4,
    device: str | torch.device = "auto",
    seed: int = 0,
    save_dir: Optional[str | Path] = None,
    unwrapped_phase: Optional[np.ndarray] = None,
    log: Optional[Callable[[str], None]] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> RetrainReport:
    """Fine-tune a screening model on labelled fields (the simple interface behind the project one).

    Parameters
    ----------
    fields : ndarray (M, H, W) complex
        Ratio fields (any size; centre-cropped to the model's crop).
    noisy : ndarray (M,)
        Labels, 1 = noisy.
    groups : ndarray (M,), optional
        Measurement id of each field: the hold-out takes whole measurements when there are
        at least two; otherwise single fields (stratified by label).
    base_model : name, path or ScreeningModel
        Model to start from (never overwritten).
    replay : CropSet, optional
        Fields of the original training distribution; regenerated from the base model's
        card (``replay_measurements`` measurements) when None.
    holdout_fraction : float
        Fraction of the labelled fields (or measurements) held out for evaluation.
    epochs, batch_size, lr : training settings (Adam, binary cross-entropy)
    device : str
    seed : int
    save_dir : path, optional
        Where to save the new model if it is better (never ``resources/models``). None:
        do not save.
    log, progress, cancel : reporting, see :mod:`engine.progress`

    Returns
    -------
    RetrainReport
    """
    say = log or (lambda m: None)
    if save_dir is not None:
        save_dir = Path(save_dir).resolve()
        if save_dir == MODELS_DIR.resolve():
            raise ValueError("fine-tuned models are saved in the project, never in resources/models")
    dev = resolve_device(device)
    base = base_model if isinstance(base_model, ScreeningModel) else load_model(base_model, device=dev)
    base.to(dev)
    f = np.asarray(fields)
    y = np.asarray(noisy).astype(np.uint8)
    if f.ndim != 3 or len(f) != len(y):
        raise ValueError(f"fields (M, H, W) and noisy (M,) must agree, got {f.shape} and {y.shape}")
    if len(y) < 4:
        raise ValueError(f"need at least 4 labelled fields to fine-tune and evaluate, got {len(y)}")
    rng = np.random.default_rng(seed)
    g = np.zeros(len(y), np.int64) if groups is None else np.asarray(groups)
    uniq = np.unique(g)
    if len(uniq) >= 2:
        perm = rng.permutation(uniq)
        k = max(1, int(round(holdout_fraction * len(uniq))))
        hold = np.isin(g, perm[:k])
    else:  # stratified by label
        hold = np.zeros(len(y), bool)
        for lab in (0, 1):
            idx = rng.permutation(np.flatnonzero(y == lab))
            hold[idx[:int(round(holdout_fraction * len(idx)))]] = True
    if hold.all() or not hold.any():
        raise ValueError("the hold-out split left no training or no evaluation fields")
    x = preprocess(_pad_to(_centre_crop(f, base.crop), base.crop),
                   unwrapped_phase=None if unwrapped_phase is None else _centre_crop(unwrapped_phase, base.crop),
                   input_kind=base.input_kind, crop=base.crop)
    x_tr, y_tr, x_ho, y_ho = x[~hold], y[~hold], x[hold], y[hold]
    before = screening_metrics(y_ho, base.predict_tensor(x_ho), float(base.card.get("threshold", 0.5)))
    say(f"base {base.label}: held-out accuracy {before['accuracy']:.4f} on {len(y_ho)} fields")
    report(progress, 0.05, "preparing replay data")
    check_cancel(cancel)
    if replay is None:
        replay = _replay_set(base, replay_measurements, seed)
    x_rp = preprocess(replay.fields, input_kind=base.input_kind, crop=base.crop)
    y_rp = replay.noisy.astype(np.uint8)

    net = build_network(base.card["architecture"])
    net.load_state_dict(base.net.state_dict())
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    yt = torch.as_tensor(y_tr, dtype=torch.float32)
    yr = torch.as_tensor(y_rp, dtype=torch.float32)
    half = max(1, batch_size // 2)
    steps = max(1, int(np.ceil(len(y_tr) / half)))
    history = []
    from .crops import augment_batch

    for epoch in range(epochs):
        net.train()
        total = 0.0
        perm = torch.randperm(len(y_tr), generator=gen)
        for s in range(steps):
            check_cancel(cancel)
            i = perm[(s * half) % len(y_tr):][:half]
            j = torch.randint(0, len(y_rp), (half,), generator=gen)
            xb = augment_batch(torch.cat([x_tr[i], x_rp[j]]), generator=gen).to(dev)
            yb = torch.cat([yt[i], yr[j]]).to(dev)
            loss = F.binary_cross_entropy_with_logits(net.logits(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        history.append({"epoch": epoch + 1, "train_loss": total / steps})
        say(f"  epoch {epoch + 1}/{epochs}: loss {total / steps:.4f}")
        report(progress, 0.1 + 0.8 * (epoch + 1) / epochs, f"fine-tuning, epoch {epoch + 1} of {epochs}")
    net.eval()
    card = json.loads(json.dumps(base.card))
    card.pop("path", None)
    tuned = ScreeningModel(net=net, card=card, device=dev)
    threshold = float(base.card.get("threshold", 0.5))
    after = screening_metrics(y_ho, tuned.predict_tensor(x_ho), threshold)
    replay_after = screening_metrics(y_rp, tuned.predict_tensor(x_rp), threshold)
    improved = _better(after, before)
    say(f"fine-tuned: held-out accuracy {after['accuracy']:.4f} (before {before['accuracy']:.4f}); "
        f"replay accuracy {replay_after['accuracy']:.4f}; {'better' if improved else 'not better'}")
    saved = None
    if improved and save_dir is not None:
        parent = base.name.split("-ft")[0]
        path = next_model_path(save_dir, parent)
        card.update({
            "name": path.stem, "version": f"{base.version}+{path.stem.rsplit('-', 1)[-1]}",
            "parent_model": base.label, "parent_sha256": base.card.get("sha256"),
            "fine_tuning": {"labelled_fields": int(len(y)), "train_fields": int(len(y_tr)),
                            "held_out_fields": int(len(y_ho)), "replay_fields": int(len(y_rp)), "epochs": epochs,
                            "lr": lr, "seed": seed, "history": history, "before": before, "after": after,
                            "replay_after": replay_after},
        })
        card.pop("date", None)  # save_model stamps the new date
        written = save_model(net.cpu(), path, card)
        net.to(dev)
        tuned.card = written
        saved = path
        say(f"saved {path}")
    report(progress, 1.0, "done")
    return RetrainReport(before=before, after=after, improved=improved, saved_path=saved, model=tuned,
                         n_train=int(len(y_tr)), n_holdout=int(len(y_ho)), n_replay=int(len(y_rp)), history=history)


def overrides_of_project(project: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fields and labels of every manually decided field of a project.

    Parameters
    ----------
    project : engine.store.project.Project
        Its ``decisions(mid)`` give source 2 for manual overrides; fields come from each
        measurement's result file (``fields/field``).

    Returns
    -------
    fields : ndarray (M, h, w) complex64 (centre crops of size 128)
    noisy : ndarray (M,) uint8 (1 − manual decision)
    groups : ndarray (M,) int64 (measurement id)
    """
    from ..store.project import SOURCE_MANUAL
    from ..store.results import read_result

    fs, ys, gs = [], [], []
    for rec in project.list_measurements():
        decision, source = project.decisions(rec.id)
        manual = np.flatnonzero(source == SOURCE_MANUAL)
        if len(manual) == 0:
            continue
        path = project.result_path(rec.id)
        if not Path(path).exists():
            continue
        res = read_result(path, groups=["fields"])
        if res.fields is None:
            continue
        manual = manual[manual < len(res.fields)]
        fs.append(_pad_to(_centre_crop(res.fields[manual], CROP_SIZE), CROP_SIZE).astype(np.complex64))
        ys.append((1 - decision[manual]).astype(np.uint8))
        gs.append(np.full(len(manual), rec.id, np.int64))
    if not fs:
        return np.zeros((0, CROP_SIZE, CROP_SIZE), np.complex64), np.zeros(0, np.uint8), np.zeros(0, np.int64)
    return np.concatenate(fs), np.concatenate(ys), np.concatenate(gs)


def retrain_from_overrides(
    project: Any,
    *,
    base_model: str | Path | ScreeningModel = "default",
    replay: Optional[CropSet] = None,
    holdout_fraction: float = 0.3,
    epochs: int = 4,
    device: str | torch.device = "auto",
    seed: int = 0,
    min_overrides: int = 10,
    log: Optional[Callable[[str], None]] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
    **kwargs: Any,
) -> RetrainReport:
    """Fine-tune the screening model on a project's manual overrides; save it in the project if better.

    Parameters
    ----------
    project : engine.store.project.Project
    base_model : name, path or ScreeningModel
        Starting model ("default": the compact net).
    replay : CropSet, optional
        Replay data; regenerated from the base card's training distribution when None.
    holdout_fraction : float
        Part of the overrides held out for before/after evaluation.
    epochs, device, seed : training settings
    min_overrides : int
        Refuse (ValueError) with fewer manual labels than this.
    log, progress, cancel : reporting
    **kwargs : passed to :func:`retrain_on_labels`

    Returns
    -------
    RetrainReport
        ``saved_path`` is ``<project>/models/<base>-ft<k>.safetensors`` when the new model was
        better on the held-out overrides, else None.
    """
    fields, noisy, groups = overrides_of_project(project)
    if len(noisy) < min_overrides:
        raise ValueError(f"only {len(noisy)} manual overrides with fields in this project; "
                         f"at least {min_overrides} are needed to fine-tune")
    return retrain_on_labels(fields, noisy, groups, base_model=base_model, replay=replay,
                             holdout_fraction=holdout_fraction, epochs=epochs, device=device, seed=seed,
                             save_dir=Path(project.path) / "models", log=log, progress=progress, cancel=cancel,
                             **kwargs)


def retrain_command(project: str | Path, *, model: str = "default", epochs: int = 4, device: str = "auto",
                    seed: int = 0) -> int:
    """Command-line body of ``odt-studio train-screening PROJECT``: fine-tune, print the report.

    Returns
    -------
    int
        Exit code: 0 when retraining ran (whether or not the new model was better and saved),
        2 when it could not run (not a project, too few overrides).
    """
    import sys

    from ..store.project import Project, ProjectError

    try:
        with Project.open(project) as proj:
            r = retrain_from_overrides(proj, base_model=model, epochs=epochs, device=device, seed=seed,
                                       log=lambda m: print(m, file=sys.stderr))
    except (ProjectError, ValueError, ModelFileError) as e:
        print(f"train-screening: {e}", file=sys.stderr)
        return 2
    keys = ("accuracy", "sensitivity", "specificity", "roc_auc", "n")
    print(json.dumps({"before": {k: r.before[k] for k in keys}, "after": {k: r.after[k] for k in keys},
                      "improved": r.improved, "saved": str(r.saved_path) if r.saved_path else None,
                      "train_fields": r.n_train, "held_out_fields": r.n_holdout, "replay_fields": r.n_replay},
                     indent=2))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m engine.screening.retrain PROJECT`` (same as ``odt-studio train-screening``)."""
    p = argparse.ArgumentParser(prog="python -m engine.screening.retrain",
                                description="Fine-tune the screening model on a project's manual overrides.")
    p.add_argument("project", type=Path)
    p.add_argument("--model", default="default")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    return retrain_command(a.project, model=a.model, epochs=a.epochs, device=a.device, seed=a.seed)


if __name__ == "__main__":
    raise SystemExit(main())
