"""Fine-tune a screening model on a lab's manual overrides, with replay, and keep it only if better.

This is ``odt-studio train-screening PROJECT`` and the Screening tab's "Retrain from my
overrides". The method, step by step:

1. **Labels.** The technician's manual decisions (``source = 2`` in the project database) are
   expert labels (Ryu et al. 2019 distil one expert's decisions into the network). A
   measurement with at least one override has been *reviewed*: its other fields, whose
   automatic decision the technician saw and left, are taken as **confirmed** labels too
   (``confirmed=True``, the default). They are what keeps the fine-tuned model from learning
   "this lab's sample means noisy" when every override says noisy: the lab's own clean fields
   and the defects the model already caught are in the training set.
2. **Hold-out.** Part of the labels is held out for the before/after comparison: whole
   measurements when at least three measurements carry labels, otherwise single fields
   stratified by (manual or confirmed) × label, so that two corrected measurements suffice.
3. **Replay.** Fine-tuning on a lab's few fields alone would make the net forget the rest of
   its training distribution (catastrophic forgetting), so every batch is half labelled
   fields and half **replayed** fields of the original training distribution, regenerated
   with the generator and seed named in the base model's card (Rolnick et al. 2019). A quarter
   of the replay fields is kept out of training to measure forgetting.
4. **Balance and augmentation.** The labelled half is drawn with replacement so that each
   (manual or confirmed) × (clean or noisy) cell gets the same share: a dozen overrides weigh
   as much as the many confirmed fields around them. Every batch is augmented with 90°
   rotations, flips and elastic deformation (:func:`engine.screening.crops.augment_batch`), so
   a few overrides give many distinct examples.
5. **Schedule.** Adam with a short linear warm-up and a cosine decay over ``epochs`` epochs of
   at least ``min_steps_per_epoch`` batches each (a few labelled fields are drawn again, with
   new augmentations): the default 4 × 15 = 60 steps teach a few dozen overrides in seconds to
   a minute on a CPU. No early stopping: the held-out labels are used once, to decide.
6. **Decision.** The new model is kept only if it beats the base model on the held-out labels
   (accuracy, then ROC AUC) *and* loses no more than ``forget_tolerance`` accuracy on the
   replay fields kept out of training. It is then saved, versioned, in the project folder's
   ``models/``; the shipped models in ``resources/models`` are never written. The held-out part
   is not trained on, so the saved model has seen 70 % of the labels.
7. **Record.** :func:`retrain_from_overrides` records the run in the project's job table (the
   audit trail next to the override rows): base model and its checksum, the labels used,
   before/after metrics, the file saved. With ``adopt=True`` (the command line) a saved model
   becomes the project's screening model (:data:`engine.store.project.SCREENING_MODEL_SETTING`,
   :attr:`engine.store.project.Project.screening_model`).

Label convention: ``noisy = 1 − decision`` (decision 1 = clean, as in the project database).

References
----------
D. Ryu et al., Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x.
D. Rolnick et al., "Experience replay for continual learning", NeurIPS (2019).
I. Loshchilov, F. Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR (2017) —
cosine learning-rate decay.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..backend import resolve_device
from ..metrics import screening_metrics
from ..progress import CancelToken, check_cancel, report
from .crops import CropSet, augment_batch, generate_crops
from .domain import measurement_screening_setup, widened_domain
from .network import (CROP_SIZE, MODELS_DIR, SPECTRUM_KINDS, ModelFileError, ScreeningModel, _centre_crop, _pad_to,
                      build_network, load_model, preprocess, save_model)
from .sample_crop import crop_at, screening_crop_origin

__all__ = ["RetrainReport", "LabelledFields", "retrain_on_labels", "retrain_from_overrides", "overrides_of_project",
           "labelled_fields_of_project", "next_model_path", "retrain_command", "JOB_KIND"]

#: ``kind`` of the project job row a retraining writes (:meth:`engine.store.project.Project.jobs`).
JOB_KIND = "train-screening"
_METRIC_KEYS = ("accuracy", "sensitivity", "specificity", "roc_auc", "n")


@dataclass
class RetrainReport:
    """What a retraining did.

    Attributes
    ----------
    before, after : dict
        Metrics (:func:`~engine.metrics.screening_metrics`) of the base and the fine-tuned model
        on the held-out labels (manual and confirmed).
    improved : bool
        True when the fine-tuned model beat the base model on the held-out labels without
        forgetting the replay set (module docstring, step 6).
    saved_path : Path or None
        The new ``.safetensors`` file (None when not saved).
    model : ScreeningModel or None
        The fine-tuned model (also returned when not saved, for inspection).
    n_train, n_holdout : int
        Manual overrides used for fine-tuning / held out.
    n_replay : int
        Replay fields (three quarters mixed into the batches, a quarter kept to check forgetting).
    history : list of dict
        Mean training loss per logging interval (``step``, ``train_loss``).
    n_confirmed_train, n_confirmed_holdout : int
        Confirmed fields (reviewed measurements' automatic decisions) used / held out.
    replay_before, replay_after : dict
        Metrics of the base and the fine-tuned model on the replay fields kept out of training.
    steps : int
        Optimisation steps taken.
    adopted : bool
        The saved model became the project's screening model (:func:`retrain_from_overrides`).
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
    n_confirmed_train: int = 0
    n_confirmed_holdout: int = 0
    replay_before: dict = field(default_factory=dict)
    replay_after: dict = field(default_factory=dict)
    steps: int = 0
    adopted: bool = False

    def summary(self) -> dict:
        """A JSON-able digest (the command's output and the project's job record)."""
        return {"before": {k: self.before.get(k) for k in _METRIC_KEYS},
                "after": {k: self.after.get(k) for k in _METRIC_KEYS},
                "replay_accuracy_before": self.replay_before.get("accuracy"),
                "replay_accuracy_after": self.replay_after.get("accuracy"),
                "improved": self.improved, "saved": str(self.saved_path) if self.saved_path else None,
                "adopted": self.adopted, "train_fields": self.n_train, "held_out_fields": self.n_holdout,
                "confirmed_train_fields": self.n_confirmed_train,
                "confirmed_held_out_fields": self.n_confirmed_holdout, "replay_fields": self.n_replay,
                "steps": self.steps}


@dataclass
class LabelledFields:
    """Labelled fields of a project (:func:`labelled_fields_of_project`).

    Attributes
    ----------
    fields : ndarray (M, c, c) complex64
        Centre crops (``c`` = 128) of the ratio fields.
    noisy : ndarray (M,) uint8
        1 − decision (1 = noisy).
    groups : ndarray (M,) int64
        Measurement id of each field.
    manual : ndarray (M,) bool
        True for a manual override, False for a confirmed automatic decision.
    """

    fields: np.ndarray
    noisy: np.ndarray
    groups: np.ndarray
    manual: np.ndarray

    def __len__(self) -> int:
        return int(len(self.noisy))


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


def _holdout_mask(y: np.ndarray, groups: np.ndarray, manual: np.ndarray, fraction: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Held-out fields: whole measurements when ≥ 3 carry labels, else fields stratified by cell.

    A cell is (manual or confirmed) × label; a cell of at least two fields keeps at least one
    field on each side.
    """
    uniq = np.unique(groups)
    if len(uniq) >= 3:
        perm = rng.permutation(uniq)
        k = max(1, int(round(fraction * len(uniq))))
        return np.isin(groups, perm[:k])
    hold = np.zeros(len(y), bool)
    for m in (True, False):
        for lab in (0, 1):
            idx = rng.permutation(np.flatnonzero((manual == m) & (y == lab)))
            k = int(round(fraction * len(idx)))
            if len(idx) >= 2:
                k = min(max(k, 1), len(idx) - 1)
            hold[idx[:k]] = True
    return hold


def _replay_check_mask(n: int, rng: np.random.Generator, fraction: float = 0.25) -> np.ndarray:
    """Replay fields kept out of training to check forgetting (a quarter; none below 8 fields)."""
    mask = np.zeros(n, bool)
    if n >= 8:
        mask[rng.permutation(n)[:int(round(fraction * n))]] = True
    return mask


def _cell_weights(y: np.ndarray, manual: np.ndarray) -> torch.Tensor:
    """Sampling weights giving each non-empty (manual or confirmed) × label cell the same share."""
    w = np.zeros(len(y), np.float64)
    for m in (True, False):
        for lab in (0, 1):
            sel = (manual == m) & (y == lab)
            if sel.any():
                w[sel] = 1.0 / sel.sum()
    return torch.as_tensor(w / w.sum())


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _fine_tune(net: torch.nn.Module, x_lab: torch.Tensor, y_lab: np.ndarray, w_lab: torch.Tensor,
               x_rp: torch.Tensor, y_rp: np.ndarray, *, steps: int, batch_size: int, lr: float,
               dev: torch.device, seed: int, say: Callable[[str], None],
               progress: Optional[Callable[..., None]], cancel: Optional[CancelToken],
               elastic_probability: float = 0.5) -> list:
    """The optimisation loop: half labelled (cell-balanced), half replay, augmented, cosine schedule.

    ``elastic_probability`` is 0 for inputs with a spectrum channel (a deformed spectrum is no spectrum).

    Returns the history: mean binary cross-entropy per logging interval.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, warmup))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    yl = torch.as_tensor(y_lab, dtype=torch.float32)
    yr = torch.as_tensor(y_rp, dtype=torch.float32)
    n_rp = max(1, batch_size // 2) if len(yr) else 0
    n_lab = max(1, batch_size - n_rp)
    every = max(1, steps // 6)
    history, total, count = [], 0.0, 0
    for step in range(steps):
        check_cancel(cancel)
        net.train()
        i = torch.multinomial(w_lab, n_lab, replacement=True, generator=gen)
        j = torch.randint(0, max(1, len(yr)), (n_rp,), generator=gen)
        xb = augment_batch(torch.cat([x_lab[i], x_rp[j]]), generator=gen,
                           elastic_probability=elastic_probability).to(dev)
        yb = torch.cat([yl[i], yr[j]]).to(dev)
        loss = F.binary_cross_entropy_with_logits(net.logits(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total, count = total + float(loss.detach()), count + 1
        if (step + 1) % every == 0 or step + 1 == steps:
            history.append({"step": step + 1, "train_loss": total / count})
            say(f"  step {step + 1}/{steps}: loss {total / count:.4f}")
            total, count = 0.0, 0
            report(progress, 0.1 + 0.8 * (step + 1) / steps, f"fine-tuning, step {step + 1} of {steps}")
    net.eval()
    return history


def _tuned_card(base_card: dict, lab_setups: Optional[Sequence[dict]]) -> dict:
    """A copy of the base model's card (without its path), its domain widened to the lab's setups."""
    card = json.loads(json.dumps({k: v for k, v in base_card.items() if k != "path"}))
    card["domain"] = widened_domain(card.get("domain"), lab_setups or [])  # it has now seen the lab's setups
    return card


def _save_tuned(net: torch.nn.Module, base: ScreeningModel, card: dict, save_dir: Path, info: dict) -> tuple[Path, dict]:
    """Write the fine-tuned weights and card as ``<save_dir>/<parent>-ft<k>.safetensors``."""
    parent = base.name.split("-ft")[0]
    path = next_model_path(save_dir, parent)
    card = json.loads(json.dumps(card))
    card.update({"name": path.stem, "version": f"{base.version}+{path.stem.rsplit('-', 1)[-1]}",
                 "parent_model": base.label, "parent_sha256": base.card.get("sha256"), "fine_tuning": info})
    card.pop("date", None)  # save_model stamps the new date
    return path, save_model(net.cpu(), path, card)


_METHOD = "cell-balanced labelled half + replay half, augmented; warm-up + cosine Adam"


def _checked_save_dir(save_dir: Optional[str | Path]) -> Optional[Path]:
    """``save_dir`` resolved; ValueError if it is the shipped models folder (never written)."""
    if save_dir is None:
        return None
    path = Path(save_dir).resolve()
    if path == MODELS_DIR.resolve():
        raise ValueError("fine-tuned models are saved in the project, never in resources/models")
    return path


def _labelled_arrays(fields: np.ndarray, noisy: np.ndarray, manual: Optional[np.ndarray],
                     groups: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(fields (M, H, W), labels (M,) uint8, manual (M,) bool, groups (M,))`` (defaults: all manual, one group)."""
    f = np.asarray(fields)
    y = np.asarray(noisy).astype(np.uint8)
    if f.ndim != 3 or len(f) != len(y):
        raise ValueError(f"fields (M, H, W) and noisy (M,) must agree, got {f.shape} and {y.shape}")
    if len(y) < 4:
        raise ValueError(f"need at least 4 labelled fields to fine-tune and evaluate, got {len(y)}")
    man = np.ones(len(y), bool) if manual is None else np.asarray(manual, bool)
    g = np.zeros(len(y), np.int64) if groups is None else np.asarray(groups)
    return f, y, man, g


def _check_metrics(model: ScreeningModel, x: torch.Tensor, y: np.ndarray, check: np.ndarray,
                   threshold: float) -> dict:
    """Screening metrics of ``model`` on the replay fields kept out of training (``{}`` if there are none)."""
    return screening_metrics(y[check], model.predict_tensor(x[check]), threshold) if check.any() else {}


def retrain_on_labels(
    fields: np.ndarray,
    noisy: np.ndarray,
    groups: Optional[np.ndarray] = None,
    *,
    manual: Optional[np.ndarray] = None,
    base_model: str | Path | ScreeningModel = "default",
    replay: Optional[CropSet] = None,
    replay_measurements: int = 2,
    holdout_fraction: float = 0.3,
    epochs: int = 4,
    min_steps_per_epoch: int = 15,
    batch_size: int = 32,
    lr: float = 1e-3,
    forget_tolerance: float = 0.02,
    device: str | torch.device = "auto",
    seed: int = 0,
    save_dir: Optional[str | Path] = None,
    unwrapped_phase: Optional[np.ndarray] = None,
    lab_setups: Optional[Sequence[dict]] = None,
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
        Measurement id of each field (hold-out: module docstring, step 2).
    manual : ndarray (M,) bool, optional
        True for manual overrides, False for confirmed automatic decisions (default: all
        manual). Only balances the sampling and the counts of the report.
    base_model : name, path or ScreeningModel
        Model to start from (never overwritten).
    replay : CropSet, optional
        Fields of the original training distribution; regenerated from the base model's
        card (``replay_measurements`` measurements) when None.
    holdout_fraction : float
        Fraction of the labelled fields (or measurements) held out for evaluation.
    epochs : int
        Passes over the labelled training fields, each at least ``min_steps_per_epoch`` batches.
    min_steps_per_epoch, batch_size, lr : training settings (Adam, warm-up + cosine decay, BCE)
    forget_tolerance : float
        Largest loss of accuracy on the replay fields kept out of training that a kept model may have.
    device : str
    seed : int
    save_dir : path, optional
        Where to save the new model if it is better (never ``resources/models``). None:
        do not save.
    unwrapped_phase : ndarray (M, H, W), optional
        For models trained on unwrapped phase.
    lab_setups : sequence of dict, optional
        :func:`engine.screening.domain.measurement_screening_setup` of the lab's measurements:
        the saved card's ``domain`` is widened to them (:func:`engine.screening.domain.widened_domain`).
    log, progress, cancel : reporting, see :mod:`engine.progress`

    Returns
    -------
    RetrainReport
    """
    say = log or (lambda m: None)
    save_dir = _checked_save_dir(save_dir)
    dev = resolve_device(device)
    base = base_model if isinstance(base_model, ScreeningModel) else load_model(base_model, device=dev)
    base.to(dev)
    f, y, man, g = _labelled_arrays(fields, noisy, manual, groups)
    hold = _holdout_mask(y, g, man, holdout_fraction, np.random.default_rng(seed))
    if hold.all() or not hold.any():
        raise ValueError("the hold-out split left no training or no evaluation fields")
    x = preprocess(_pad_to(_centre_crop(f, base.crop), base.crop),
                   unwrapped_phase=None if unwrapped_phase is None else _centre_crop(unwrapped_phase, base.crop),
                   input_kind=base.input_kind, crop=base.crop)
    threshold = float(base.card.get("threshold", 0.5))
    before = screening_metrics(y[hold], base.predict_tensor(x[hold]), threshold)
    say(f"base {base.label}: held-out accuracy {before['accuracy']:.4f} on {int(hold.sum())} fields")
    report(progress, 0.05, "preparing replay data")
    check_cancel(cancel)
    if replay is None:
        replay = _replay_set(base, replay_measurements, seed)
    x_rp = preprocess(replay.fields, input_kind=base.input_kind, crop=base.crop)
    y_rp = replay.noisy.astype(np.uint8)
    rp_check = _replay_check_mask(len(y_rp), np.random.default_rng(seed + 1))
    replay_before = _check_metrics(base, x_rp, y_rp, rp_check, threshold)

    net = build_network(base.card["architecture"])
    net.load_state_dict(base.net.state_dict())
    net.to(dev)
    tr = ~hold
    half = max(1, batch_size // 2)
    steps = max(1, int(epochs) * max(int(min_steps_per_epoch), int(np.ceil(tr.sum() / half))))
    history = _fine_tune(net, x[tr], y[tr], _cell_weights(y[tr], man[tr]), x_rp[~rp_check], y_rp[~rp_check], steps=steps,
                         batch_size=batch_size, lr=lr, dev=dev, seed=seed, say=say, progress=progress, cancel=cancel,
                         elastic_probability=0.0 if base.input_kind in SPECTRUM_KINDS else 0.5)
    card = _tuned_card(base.card, lab_setups)
    tuned = ScreeningModel(net=net, card=card, device=dev)
    after = screening_metrics(y[hold], tuned.predict_tensor(x[hold]), threshold)
    replay_after = _check_metrics(tuned, x_rp, y_rp, rp_check, threshold)
    forgot = bool(replay_before) and replay_after["accuracy"] < replay_before["accuracy"] - forget_tolerance
    improved = _better(after, before) and not forgot
    say(f"fine-tuned: held-out accuracy {after['accuracy']:.4f} (before {before['accuracy']:.4f}); replay "
        f"accuracy {replay_after.get('accuracy', float('nan')):.4f} (before {replay_before.get('accuracy', float('nan')):.4f})"
        f"; {'better' if improved else 'not better'}")
    saved = None
    if improved and save_dir is not None:
        info = {"labelled_fields": int(len(y)), "manual_fields": int(man.sum()), "train_fields": int(tr.sum()),
                "held_out_fields": int(hold.sum()), "replay_fields": int(len(y_rp)), "steps": steps,
                "batch_size": batch_size, "lr": lr, "seed": seed, "history": history, "before": before,
                "after": after, "replay_before": replay_before, "replay_after": replay_after, "method": _METHOD}
        saved, tuned.card = _save_tuned(net, base, card, save_dir, info)
        net.to(dev)
        say(f"saved {saved}")
    report(progress, 1.0, "done")
    return RetrainReport(before=before, after=after, improved=improved, saved_path=saved, model=tuned,
                         n_train=int((tr & man).sum()), n_holdout=int((hold & man).sum()), n_replay=int(len(y_rp)),
                         history=history, n_confirmed_train=int((tr & ~man).sum()),
                         n_confirmed_holdout=int((hold & ~man).sum()), replay_before=replay_before,
                         replay_after=replay_after, steps=steps)


def labelled_fields_of_project(project: Any, *, confirmed: bool = True) -> LabelledFields:
    """Fields and labels of every reviewed measurement of a project.

    Parameters
    ----------
    project : engine.store.project.Project
        Its ``decisions(mid)`` give source 2 for manual overrides; fields come from each
        measurement's result file (``fields/field``).
    confirmed : bool
        Also the other fields of a measurement with at least one override, labelled by the
        automatic decision the technician left (module docstring, step 1).

    Returns
    -------
    LabelledFields
        Centre crops of size 128, ``noisy = 1 − decision``.
    """
    from ..store.project import SOURCE_MANUAL
    from ..store.results import read_result

    fs, ys, gs, ms = [], [], [], []
    for rec in project.list_measurements():
        decision, source = project.decisions(rec.id)
        is_manual = source == SOURCE_MANUAL
        if not is_manual.any():
            continue
        path = project.result_path(rec.id)
        if not Path(path).exists():
            continue
        res = read_result(path, groups=["fields"])
        if res.fields is None:
            continue
        n = min(len(res.fields), len(decision))
        take = np.flatnonzero(np.ones(n, bool) if confirmed else is_manual[:n])
        origin = screening_crop_origin(res.fields, CROP_SIZE)  # the crop the screen took
        fs.append(_pad_to(crop_at(res.fields[take], origin, CROP_SIZE), CROP_SIZE).astype(np.complex64))
        ys.append((1 - decision[take]).astype(np.uint8))
        gs.append(np.full(len(take), rec.id, np.int64))
        ms.append(is_manual[take])
    if not fs:
        return LabelledFields(np.zeros((0, CROP_SIZE, CROP_SIZE), np.complex64), np.zeros(0, np.uint8),
                              np.zeros(0, np.int64), np.zeros(0, bool))
    return LabelledFields(np.concatenate(fs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ms))


def overrides_of_project(project: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fields and labels of every manually decided field of a project (no confirmed fields).

    Returns
    -------
    fields : ndarray (M, h, w) complex64 (centre crops of size 128)
    noisy : ndarray (M,) uint8 (1 − manual decision)
    groups : ndarray (M,) int64 (measurement id)
    """
    lab = labelled_fields_of_project(project, confirmed=False)
    return lab.fields, lab.noisy, lab.groups


def _record(project: Any, job_id: int, rep: RetrainReport, base: ScreeningModel, adopt: bool) -> None:
    """Adopt the saved model (project setting) if asked, and close the job row with the summary."""
    from ..store.project import SCREENING_MODEL_SETTING

    root = Path(project.path).resolve()
    if adopt and rep.saved_path is not None:
        project.set_setting(SCREENING_MODEL_SETTING, Path(rep.saved_path).resolve().relative_to(root).as_posix())
        rep.adopted = True
    last = project.override_history()
    digest = dict(rep.summary(), base=base.label, base_sha256=base.card.get("sha256"),
                  last_override_id=last[-1].id if last else None)
    if rep.saved_path is not None:
        digest["saved"] = Path(rep.saved_path).resolve().relative_to(root).as_posix()
    project.finish_job(job_id, "done", json.dumps(digest))


def _lab_setups(project: Any, measurement_ids: np.ndarray) -> list[dict]:
    """The screening-domain quantities of the project's measurements ``measurement_ids`` (unknown ids and
    unreadable metadata skipped)."""
    from ..metadata import MeasurementMetadata, MetadataError

    out = []
    for mid in measurement_ids:
        try:
            text = project.get_measurement(int(mid)).metadata_json
            out.append(measurement_screening_setup(MeasurementMetadata.from_json(text)))
        except (KeyError, MetadataError, TypeError, ValueError):
            continue
    return out


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
    confirmed: bool = True,
    adopt: bool = False,
    log: Optional[Callable[[str], None]] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
    **kwargs: Any,
) -> RetrainReport:
    """Fine-tune the screening model on a project's reviewed fields; save it in the project if better.

    Parameters
    ----------
    project : engine.store.project.Project
    base_model : name, path or ScreeningModel
        Starting model ("default": the project's adopted fine-tuned model when it has one, so a
        second retraining builds on the first; else the shipped compact net).
    replay : CropSet, optional
        Replay data; regenerated from the base card's training distribution when None.
    holdout_fraction : float
        Part of the labels held out for before/after evaluation.
    epochs, device, seed : training settings
    min_overrides : int
        Refuse (ValueError) with fewer manual overrides than this.
    confirmed : bool
        Use the confirmed automatic decisions of reviewed measurements too (module docstring).
    adopt : bool
        Make a saved model the project's screening model (setting
        :data:`engine.store.project.SCREENING_MODEL_SETTING`).
    log, progress, cancel : reporting
    **kwargs : passed to :func:`retrain_on_labels`

    Returns
    -------
    RetrainReport
        ``saved_path`` is ``<project>/models/<base>-ft<k>.safetensors`` when the new model was
        better on the held-out labels, else None. The run is recorded as a project job of kind
        :data:`JOB_KIND` whose message is the JSON summary.
    """
    lab = labelled_fields_of_project(project, confirmed=confirmed)
    n_manual = int(lab.manual.sum())
    if n_manual < min_overrides:
        raise ValueError(f"only {n_manual} manual overrides with fields in this project; "
                         f"at least {min_overrides} are needed to fine-tune")
    dev = resolve_device(device)
    from ..pipeline.project_screening import project_screening_model  # the pipeline imports this module

    base_model = project_screening_model(project, base_model)  # "default": the project's adopted model
    base = base_model if isinstance(base_model, ScreeningModel) else load_model(base_model, device=dev)
    job = project.start_job(JOB_KIND, f"fine-tuning {base.label} on {n_manual} overrides")
    try:
        rep = retrain_on_labels(lab.fields, lab.noisy, lab.groups, manual=lab.manual, base_model=base,
                                lab_setups=_lab_setups(project, np.unique(lab.groups)), replay=replay,
                                holdout_fraction=holdout_fraction, epochs=epochs, device=dev,
                                seed=seed, save_dir=Path(project.path) / "models", log=log, progress=progress,
                                cancel=cancel, **kwargs)
    except BaseException as e:
        project.finish_job(job, "cancelled" if type(e).__name__ == "Cancelled" else "failed",
                           f"{type(e).__name__}: {e}")
        raise
    _record(project, job, rep, base, adopt)
    return rep


def retrain_command(project: str | Path, *, model: str = "default", epochs: int = 4, device: str = "auto",
                    seed: int = 0, adopt: bool = True, **kwargs: Any) -> int:
    """Command-line body of ``odt-studio train-screening PROJECT``: fine-tune, adopt if better, print the report.

    A model that is better on the held-out labels is saved in ``<project>/models/`` and becomes
    the project's screening model (``adopt``); the shipped model is never touched.
    ``kwargs`` go to :func:`retrain_from_overrides`.

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
            r = retrain_from_overrides(proj, base_model=model, epochs=epochs, device=device, seed=seed, adopt=adopt,
                                       log=lambda m: print(m, file=sys.stderr), **kwargs)
    except (ProjectError, ValueError, ModelFileError) as e:
        print(f"train-screening: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r.summary(), indent=2))
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
    p.add_argument("--no-adopt", action="store_true", help="save a better model but keep the project's current one")
    a = p.parse_args(argv)
    return retrain_command(a.project, model=a.model, epochs=a.epochs, device=a.device, seed=a.seed,
                           adopt=not a.no_adopt)


if __name__ == "__main__":
    raise SystemExit(main())
