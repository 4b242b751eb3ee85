"""Add a measurement-consistency stage to a screening model (issue #19).

Run::

    python -m engine.training.screening_consistency --model default \\
        --validation families-chamber-110-20261206.npz --generator1 mixed-96-20261123.npz \\
        --out DIR/screening-compact.safetensors --version 3.1.0 [--evaluate cross=CACHE.npz ...]

What it does, in order:

1. loads the model (``engine.screening.network.load_model``) and takes the validation and
   held-out measurements of generator 2's mixed cache (``screening_families.protocol_splits``,
   ``--split-seed``: the split the model's own calibration was fitted on) and, with
   ``--generator1``, of generator 1's (``screening_data.split_by_measurement``, the 2.x cards' split);
2. computes, per field, the network's probability (as :func:`~engine.screening.network.screen_fields`
   does) and the :data:`~engine.screening.consistency.CONSISTENCY_FEATURES` against the rest of its
   measurement;
3. fits an L2-regularised logistic regression of the label on ``(logit p, features)`` on the
   **validation** measurements only; the regularisation strength is chosen by 5-fold
   cross-validation grouped by measurement, inside the validation sets (:func:`choose_strength`);
4. copies the weights file unchanged and writes a card with the ``consistency`` stage (features,
   standardisation, weights, bias, the strength and its cross-validated log-loss) and the metrics on
   validation, held-out and every ``--evaluate`` cache: ``metrics`` those of the network alone (the
   default decision), ``metrics.consistency_stage`` those with the stage deciding.

Labels: 1 = noisy. Nothing is tuned on the held-out or ``--evaluate`` sets. The consistency features
never see a defect label (each is a field's statistic against its measurement's median); only the six
weights of step 3 do.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.optimize import minimize

from ..models import resolve_model_file
from ..screening.consistency import (CONSISTENCY_FEATURES, MEMBER_FEATURE, MIN_FIELDS, NEIGHBOURS, RADIAL_WEIGHT,
                                     TOMOGRAPHIC_FEATURE,
                                     consistency_features_by_measurement, stage_probability)
from ..screening.crops import CropSet
from ..screening.network import ScreeningModel, load_model, preprocess
from .screening_families import _fmt, evaluate_logits, protocol_splits

__all__ = ["balanced_weights", "fit_logistic", "choose_strength", "simulated_illuminations", "measurement_features",
           "stage_inputs", "card_stage_inputs", "main"]

#: The regularisation strengths tried (C: larger = weaker L2 penalty on the standardised weights).
STRENGTHS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Per-field weights (N,) giving the noisy and the clean fields half the total weight each (mean weight 1)."""
    y = np.asarray(y, np.float64)
    frac = float(y.mean())
    if not 0 < frac < 1:
        raise ValueError("the labels are all of one class: nothing to balance")
    return np.where(y == 1, 0.5 / frac, 0.5 / (1 - frac))


def fit_logistic(x: np.ndarray, y: np.ndarray, strength: float, sample_weight: Optional[np.ndarray] = None) -> dict:
    """L2-regularised logistic regression on standardised inputs.

    Parameters
    ----------
    x : ndarray (N, K)
        Inputs (no NaN).
    y : ndarray (N,)
        Labels, 1 = noisy.
    strength : float
        C > 0: the penalty is ``|w|² / (2C)`` on the standardised weights (the bias is not penalised).
    sample_weight : ndarray (N,), optional
        Each field's weight in the log-likelihood (default 1; :func:`balanced_weights` for a fit
        whose probability is calibrated as if half the fields were noisy).

    Returns
    -------
    dict
        ``mean`` and ``scale`` (K,) of the standardisation, ``weights`` (K,), ``bias``, as the card's
        ``consistency`` stage holds them.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if y.min() == y.max():
        raise ValueError("the labels are all of one class: nothing to fit")
    sw = np.ones_like(y) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = z @ w[:-1] + w[-1]
        g = (1.0 / (1.0 + np.exp(-t)) - y) * sw
        value = np.sum(sw * (np.logaddexp(0.0, t) - y * t)) + 0.5 / strength * np.sum(w[:-1] ** 2)
        return float(value), np.append(z.T @ g + w[:-1] / strength, g.sum())

    w = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return {"mean": mean.tolist(), "scale": scale.tolist(), "weights": w[:-1].tolist(), "bias": float(w[-1])}


def choose_strength(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int = 5,
                    strengths=STRENGTHS, sample_weight: Optional[np.ndarray] = None) -> tuple[float, dict]:
    """The strength with the lowest mean log-loss in ``folds``-fold cross-validation grouped by ``groups``
    (weighted by ``sample_weight`` in the fit and in the held-out loss, when given).

    Returns the strength and ``{strength: mean held-out log-loss}``.
    """
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    ids = np.unique(groups)
    fold_of = {g: k % folds for k, g in enumerate(np.random.default_rng(0).permutation(ids))}
    fold = np.array([fold_of[g] for g in groups])
    scores = {}
    for c in strengths:
        losses = []
        for k in range(folds):
            tr, te = fold != k, fold == k
            p = np.clip(stage_probability(fit_logistic(x[tr], y[tr], c, sw[tr]), x[te]), 1e-7, 1 - 1e-7)
            losses.append(-np.average(y[te] * np.log(p) + (1 - y[te]) * np.log(1 - p), weights=sw[te]))
        scores[float(c)] = float(np.mean(losses))
    return min(scores, key=scores.__getitem__), scores


_SETUP_NAME = re.compile(r"-(\d+)-na(\d+(?:\.\d+)?)")


def simulated_objective_na(setup: str) -> Optional[float]:
    """The objective NA a simulated crop's setup name ``KIND-N-naNA-…`` gives, or None without one."""
    match = _SETUP_NAME.search(setup)
    return float(match.group(2)) if match else None


def simulated_illuminations(cs: CropSet) -> np.ndarray:
    """Illumination frequencies (M, 2), cycles/µm, of simulated crops, rebuilt from their setup names.

    Both simulators (``engine.screening.crops`` and ``screening_families``) illuminate with the
    DMD spiral of :func:`engine.simulate.holograms.illumination_pattern` within a condenser NA of
    0.92 × the objective NA, frames in pattern order; the setup name ``KIND-N-naNA-…`` gives N and NA.
    ValueError for a name without them or a measurement whose frame count differs from N.
    """
    from ..simulate.holograms import illumination_pattern

    out = np.zeros((len(cs), 2), np.float64)
    for m in np.unique(cs.measurement):
        idx = np.flatnonzero(cs.measurement == m)
        match = _SETUP_NAME.search(cs.setup[idx[0]])
        if match is None or int(match.group(1)) != idx.size:
            raise ValueError(f"setup {cs.setup[idx[0]]!r} of measurement {m} does not give its {idx.size} illuminations")
        out[idx] = illumination_pattern(idx.size, 0.92 * float(match.group(2)), float(cs.wavelength_um[idx[0]]))
    return out


def stage_inputs(model: ScreeningModel, cs: CropSet, *, spread_from: str = "all", tomographic: bool = False,
                 tomographic_relative: bool = False, members: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The network's probabilities (M,) and the stage's inputs (M, 6), or (M, 7) with ``tomographic``:
    ``(logit p, features[, tomographic residual])``, then with ``members`` each member's logit (M, 7 + K)
    (NaN rows where a measurement has fewer than :data:`MIN_FIELDS` fields); illuminations from
    :func:`simulated_illuminations`. ``spread_from``: ``"all"`` or ``"network_clean"`` (the spreads measured
    on the fields the network keeps, as a card with that ``spread_from`` does)."""
    x_net = preprocess(cs.fields, input_kind=model.input_kind, crop=model.crop)
    prob, member_p = model.predict_with_members(x_net) if members else (model.predict_tensor(x_net), None)
    if members and member_p is None:
        raise ValueError(f"{model.label} is one network: it has no members' logits to give the stage")
    p = np.clip(prob.astype(np.float64), 1e-7, 1 - 1e-7)
    if spread_from == "all" and not tomographic:
        x = np.column_stack([np.log(p / (1 - p)), measurement_features(cs)])
    else:
        x = np.column_stack([np.log(p / (1 - p)), _stage_features(cs, p, spread_from == "network_clean",
                                                                  tomographic, tomographic_relative)])
    if member_p is not None:
        q = np.clip(member_p.astype(np.float64), 1e-7, 1 - 1e-7)
        x = np.column_stack([x, np.log(q / (1 - q))])
    return p, x


def card_stage_inputs(model: ScreeningModel, cs: CropSet) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stage_inputs` with the inputs the model card's stage takes (its ``spread_from``, tomographic input
    and members' logits, as :attr:`ScreeningModel.consistency` reads them); ValueError for a model without one."""
    stage = model.consistency
    if stage is None:
        raise ValueError(f"{model.label} has no consistency stage")
    return stage_inputs(model, cs, spread_from=stage["spread_from"], tomographic=stage["tomographic"],
                        tomographic_relative=stage["tomographic_relative"], members=stage["members"])


def _stage_features(cs: CropSet, p: np.ndarray, clean_spread: bool, tomographic: bool,
                    relative: bool = False) -> np.ndarray:
    """Per measurement, :func:`~engine.screening.consistency.stage_features` (spreads from the fields with
    ``p < 0.5`` if ``clean_spread``; NA from the setup name, the simulator's medium index)."""
    from ..screening.consistency import stage_features
    from ..simulate.holograms import Setup

    ill = simulated_illuminations(cs)
    out = np.full((len(cs), len(CONSISTENCY_FEATURES) + int(tomographic)), np.nan)
    for m in np.unique(cs.measurement):
        idx = np.flatnonzero(cs.measurement == m)
        if idx.size < MIN_FIELDS:
            continue
        out[idx] = stage_features(cs.fields[idx], float(cs.pixel_size_um[idx[0]]), float(cs.wavelength_um[idx[0]]),
                                  ill[idx], p[idx] if clean_spread else None, tomographic=tomographic,
                                  tomographic_relative=relative, na_objective=simulated_objective_na(cs.setup[idx[0]]),
                                  medium_index=Setup().medium_index)
    return out


def measurement_features(cs: CropSet) -> np.ndarray:
    """The :data:`CONSISTENCY_FEATURES` (M, 5) of simulated crops, measurement by measurement (NaN rows where a
    measurement has fewer than :data:`MIN_FIELDS` fields); illuminations from :func:`simulated_illuminations`."""
    return consistency_features_by_measurement(cs.fields, cs.measurement, cs.pixel_size_um, cs.wavelength_um,
                                               simulated_illuminations(cs))


def _metrics(prob: np.ndarray, cs: CropSet) -> dict:
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    return evaluate_logits(np.log(p / (1 - p)), cs)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.training.screening_consistency", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default", help="the screening model (name or .safetensors path)")
    p.add_argument("--validation", type=Path, required=True,
                   help="generator 2's mixed cache whose protocol split gives validation and held-out measurements")
    p.add_argument("--split-seed", type=int, default=20261206)
    p.add_argument("--generator1", type=Path, default=None,
                   help="generator 1's mixed cache (engine.training.screening_data); its validation split joins the fit "
                        "and its held-out split the report")
    p.add_argument("--generator1-seed", type=int, default=20261123)
    p.add_argument("--generator1-report-only", action="store_true",
                   help="report generator 1's validation and held-out splits but fit on generator 2's only")
    p.add_argument("--evaluate", nargs="*", default=[], metavar="NAME=CACHE.npz", help="more caches never fitted on")
    p.add_argument("--defect-rates", type=float, nargs="*", default=[], metavar="RATE",
                   help="fit on generator 2's validation measurements remade at these defect rates from their "
                        "defect-free twins (engine.training.screening_mixtures) instead of as cached (half "
                        "defective); the held-out measurements are reported at 0, these rates and as cached")
    p.add_argument("--balanced", action="store_true",
                   help="weight the noisy and the clean fields equally in the fit (the stage's probability is then "
                        "calibrated for a half-defective measurement, whatever the fit sets' rate)")
    p.add_argument("--spread-from", choices=("all", "network_clean"), default="all",
                   help="measure each feature's robust spread over all the measurement's fields (3.1/3.2) or over "
                        "those the network keeps (a measurement with many defects does not widen it)")
    p.add_argument("--tomographic", action="store_true",
                   help="a seventh input: each field against its prediction from the others by the Fourier "
                        "diffraction theorem (engine.screening.tomographic)")
    p.add_argument("--tomographic-relative", action="store_true",
                   help="with --tomographic: each field's residual against those of its nearest illuminations first")
    p.add_argument("--member-logits", action="store_true",
                   help="then each member's own logit of a two-network model (the pair's least logit hides the "
                        "stronger member's view of the fields the other keeps)")
    p.add_argument("--decides-by-default", action="store_true",
                   help="the card's stage decides when nobody says (consistency.decides_by_default: screen_fields, "
                        "odt-studio batch and projects without the setting); without it, only when asked")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write (its .json beside it)")
    p.add_argument("--version", default="3.1.0")
    p.add_argument("--report", type=Path, default=None, help="write the metrics as JSON here")
    return p


def _sets(args) -> tuple[list[CropSet], dict[str, CropSet]]:
    """The validation sets the stage is fitted on, and every set reported (validation ones included)."""
    mixed = CropSet.load(args.validation)
    _, val, held_out = protocol_splits(mixed, args.split_seed)
    fit, report = [val], {"validation": val, "held_out": held_out}
    if args.defect_rates:
        from .screening_mixtures import mixtures, twin_fields

        twins = twin_fields(args.validation, mixed, [*np.unique(val.measurement), *np.unique(held_out.measurement)])
        fit = [mixtures(val, twins, args.defect_rates, seed=args.split_seed)]
        for rate in (0.0, *args.defect_rates):
            report[f"held_out_rate_{rate:g}"] = mixtures(held_out, twins, [rate], seed=args.split_seed + 1)
    if args.generator1 is not None:
        from .screening_data import split_by_measurement

        gen1 = CropSet.load(args.generator1)
        _, v1, t1 = split_by_measurement(gen1.measurement, (0.7, 0.15, 0.15), seed=args.generator1_seed)
        report.update({"generator1_validation": gen1.subset(v1), "generator1_held_out": gen1.subset(t1)})
        if not args.generator1_report_only:
            fit.append(report["generator1_validation"])
    for spec in args.evaluate:
        name, _, path = spec.partition("=")
        report[name] = CropSet.load(path)
    return fit, report


def _evaluate(model: ScreeningModel, stage: dict, sets: dict[str, CropSet], **inputs) -> dict:
    metrics: dict = {"with_stage": {}, "network_alone": {}}
    for name, cs in sets.items():
        p, x = stage_inputs(model, cs, **inputs)
        rows = np.all(np.isfinite(x), axis=1)
        q = p.copy()
        q[rows] = stage_probability(stage, x[rows])
        metrics["with_stage"][name] = _metrics(q, cs)
        metrics["network_alone"][name] = _metrics(p, cs)
        print(_fmt(f"{name} with the stage", metrics["with_stage"][name]))
        print(_fmt(f"{name} network alone", metrics["network_alone"][name]))
    return metrics


def _fit(model: ScreeningModel, fit_sets: list[CropSet], balanced: bool = False,
         **inputs) -> tuple[dict, float, dict, int]:
    xs, ys, gs = [], [], []
    for k, cs in enumerate(fit_sets):  # measurement ids kept apart across sets for the grouped folds
        _, x = stage_inputs(model, cs, **inputs)
        ok = np.all(np.isfinite(x), axis=1)
        xs.append(x[ok])
        ys.append(cs.noisy[ok].astype(float))
        gs.append(cs.measurement[ok].astype(np.int64) + 1_000_000 * k)
    x, y, g = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
    sw = balanced_weights(y) if balanced else None
    strength, cv = choose_strength(x, y, g, sample_weight=sw)
    return fit_logistic(x, y, strength, sw), strength, cv, len(y)


def json_safe(value):
    """``value`` with every non-finite float replaced by None (strict JSON: a set without noisy fields has no
    sensitivity or AUC)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _fit_note(args) -> str:
    """How the fit sets were made, for the card (empty for the validation measurements as cached)."""
    note = ""
    if args.defect_rates:
        note += (f"; generator 2's validation measurements remade at {', '.join(f'{r:g}' for r in args.defect_rates)} "
                 "defective frames from their defect-free twins (engine.training.screening_mixtures)")
    if args.generator1 is not None and args.generator1_report_only:
        note += "; generator 1 reported, not fitted"
    return note + ("; noisy and clean fields weighted equally" if args.balanced else "")


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    model = load_model(args.model)
    fit_sets, sets = _sets(args)
    inputs = {"spread_from": args.spread_from, "tomographic": args.tomographic,
              "tomographic_relative": args.tomographic_relative, "members": args.member_logits}
    stage, strength, cv, n_fit = _fit(model, fit_sets, args.balanced, **inputs)
    print(f"strength C = {strength} (grouped 5-fold log-loss {cv}); weights {np.round(stage['weights'], 3).tolist()}")
    metrics = _evaluate(model, stage, sets, **inputs)
    src = resolve_model_file("screening-compact" if args.model == "default" else args.model)
    card = json.loads(src.with_suffix(".json").read_text(encoding="utf-8"))
    caches = [f"{n}={Path(p).name}" for n, _, p in (spec.partition("=") for spec in args.evaluate)]
    card.update({
        "version": args.version,
        "output": card.get("output", "").split("; with screen_fields(")[0]  # the same card whether rebuilt or not
                  + "; with screen_fields(consistency=True), for a measurement of at least "
                  f"{MIN_FIELDS} fields: the consistency stage's sigmoid(bias + sum_i weights_i (x_i - mean_i) / scale_i), "
                  "x = (logit of the network's probability, the consistency features)",
        "consistency": {"method": "logistic regression on the validation measurements (L2 on standardised weights, "
                                  "strength by 5-fold cross-validation grouped by measurement)" + _fit_note(args),
                        "features": ["network_logit", *CONSISTENCY_FEATURES]
                        + ([TOMOGRAPHIC_FEATURE] if args.tomographic else [])
                        + ([MEMBER_FEATURE.format(k) for k in range(len(model.member_labels))]
                           if args.member_logits else []),
                        **stage, "min_fields": MIN_FIELDS, "spread_from": args.spread_from,
                        **({"tomographic_relative": True} if args.tomographic_relative else {}),
                        "neighbours": NEIGHBOURS, "radial_weight": RADIAL_WEIGHT, "strength": strength,
                        "cross_validated_log_loss": cv, "validation_fields": n_fit,
                        "decides_by_default": bool(args.decides_by_default),
                        "default": ("on: screen_fields(consistency=False), odt-studio batch --no-screen-consistency "
                                    "or the project setting turn it off" if args.decides_by_default else
                                    "off: screen_fields(consistency=True), odt-studio batch --screen-consistency"),
                        "network": f"{model.label} (sha256 {str(model.card.get('sha256', ''))[:12]}), weights unchanged"},
        "metrics": {**metrics["network_alone"], "consistency_stage": metrics["with_stage"]},
        "command": "python -m engine.training.screening_consistency " + " ".join(
            [f"--validation {args.validation.name}", f"--split-seed {args.split_seed}"]
            + ([f"--generator1 {args.generator1.name} --generator1-seed {args.generator1_seed}"] if args.generator1 else [])
            + (["--generator1-report-only"] if args.generator1_report_only else [])
            + ([f"--defect-rates {' '.join(f'{r:g}' for r in args.defect_rates)}"] if args.defect_rates else [])
            + (["--balanced"] if args.balanced else [])
            + ([f"--spread-from {args.spread_from}"] if args.spread_from != "all" else [])
            + (["--tomographic"] if args.tomographic else [])
            + (["--tomographic-relative"] if args.tomographic_relative else [])
            + (["--member-logits"] if args.member_logits else [])
            + (["--decides-by-default"] if args.decides_by_default else [])
            + ([f"--evaluate {' '.join(caches)}"] if caches else []) + [f"--version {args.version}"]),
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = args.out.with_suffix(".safetensors")
    if out.resolve() != src.resolve():
        shutil.copyfile(src, out)
    out.with_suffix(".json").write_text(json.dumps(json_safe(card), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {out} and its card")
    if args.report:
        args.report.write_text(json.dumps(json_safe({"strength": strength, "cv": cv, "stage": stage, "metrics": metrics}),
                                          indent=1, allow_nan=False), encoding="utf-8")
    print(json.dumps({k: round(v["accuracy"], 4) for k, v in metrics["with_stage"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
