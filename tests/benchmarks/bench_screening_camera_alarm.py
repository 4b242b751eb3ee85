"""Benchmark: the camera alarm of the raw holograms, alone and with the shipped screen (#19).

Run (~6 min on a shared 2-core CPU; the camera numbers are cached in ``--work``)::

    .venv/bin/python tests/benchmarks/bench_screening_camera_alarm.py [--lofo LOGITS.npz] [--json OUT.json]

The cached screening sets hold crops of the retrieved fields, not the holograms. So the protocol's
validation and held-out measurements (generator 2, ``families-chamber-110-20261206``, split seed
20261206) and the cross-setup ones (``cross-chamber-8-20261207``) are simulated again from their specs
(the same seeds, so the same frames; each frame's defect type is checked against the cache) and
:func:`engine.holography.camera.camera_artefacts` reads their raw sample holograms with their backgrounds,
as the retrieval does. Reported:

* the **levels' source**: the largest hot-pixel fraction and row jitter of the validation clean fields
  (:mod:`engine.screening.camera_alarm` sets its levels above them), and what an alarmed validation
  field is (:data:`~engine.screening.camera_alarm.ALARM_PROBABILITY`);
* the **alarm alone** on every set: each defect type's catch rate, the clean fields it flags;
* the **shipped screen** (3.4.0's stage, as ``screen_fields`` decides by default) against **the same
  screen with the alarm** (``screen_fields(camera=…)``: an alarmed field's score raised to at least
  ``ALARM_PROBABILITY``), with 95 % intervals from bootstrap resamples of whole measurements, a paired interval
  of the difference, and each one's expected calibration error;
* the alarm on the **independent defect set** (``_independent_defects.py``: another generator's 20
  measurements, 980 frames, its own camera model and no camera defects, so every alarm there is a false
  one; clean and defective frames counted apart);
* with ``--rates 0 0.05 0.1 0.2``: the held-out measurements at **realistic defect rates**
  (:mod:`engine.training.screening_mixtures`: each measurement's defect-free twin with that fraction of its
  frames replaced by the acquired, defective ones; the twins' holograms simulated again too), the shipped
  screen against the screen with the alarm;
* with ``--evaluation-sets``: the alarm alone and with the shipped screen on the **no-background** and
  **wide-pixel** evaluation sets (``families-nobg-chamber-20-20261219``: fields retrieved with the synthesised
  background, which the alarm then gets as the retrieval passes it; ``families-widepx-chamber-20-20261224``:
  camera pixels of 0.07–0.15 µm), their measurements simulated again from their specs;
* with ``--lofo LOGITS.npz`` (``bench_screening_residual_input.py train --channels field --minutes 10
  --leave-out camera --logits LOGITS.npz``): **leave-camera-out**, a stage of that network's logit, the five
  consistency features and the relative tomographic residual (3.4.0's inputs but the members' logits)
  fitted on the validation fields without camera effects, alone and OR the alarm. The alarm is not
  learned, so its catch rate of camera effects is the same whether they were trained on or not.

Labels: 1 = noisy. Held-out and cross-setup are never fitted on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.holography.camera import camera_artefacts
from engine.metrics import expected_calibration_error
from engine.screening.camera_alarm import ALARM_PROBABILITY, HOT_PIXEL_LEVEL, ROW_JITTER_LEVEL, camera_alarm
from engine.screening.crops import CropSet
from engine.screening.network import load_model
from engine.simulate.defects import DEFECT_FAMILIES
from engine.training.screening_consistency import (_stage_features, balanced_weights, choose_strength, fit_logistic)
from engine.store.qpformat_hdf5 import synthesise_background
from engine.training.screening_families import (DEFAULT_CACHE_DIR, cross_family_specs, family_specs,
                                                protocol_splits, simulate_family_measurement)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_screening_obstruction_energy import decision_probability
from bench_screening_stage_extra_input import _decide, measurement_bootstrap

FAMILIES = DEFAULT_CACHE_DIR / "families"
WORK = Path("/tmp/odt-screening-camera")
TYPES = ("hot-pixels", "row-noise", "partial-saturation", "saturation")


def simulated_camera_numbers(cs: CropSet, specs: list, name: str, work: Path, all_ids: np.ndarray | None = None) -> dict:
    """Hot-pixel fraction and row jitter (M,) of every field of ``cs``, its measurements simulated again.

    ``specs[k]`` made the measurement of rank ``k`` among the generated set's measurement ids ``all_ids``
    (default: ``cs``'s own for the cross-setup set, else the protocol cache's); the frames of a measurement
    follow in order in the cache. A spec retrieved without a measured background gets the background the
    retrieval synthesises, as the retrieval passes it."""
    path = work / f"camera_{name}.npz"
    if path.exists():
        return dict(np.load(path))
    if all_ids is None:
        all_ids = np.unique(cs.measurement) if name == "cross_setup" else np.unique(
            CropSet.load(FAMILIES / "families-chamber-110-20261206.npz").measurement)
    hot, jitter = np.full(len(cs), np.nan), np.full(len(cs), np.nan)
    for m in np.unique(cs.measurement):
        idx = np.flatnonzero(cs.measurement == m)
        spec = specs[int(np.searchsorted(all_ids, m))]
        sm = simulate_family_measurement(spec)
        if list(sm.defect_types) != [str(d) for d in np.asarray(cs.defect)[idx]]:
            raise AssertionError(f"{name}: measurement {m} simulated again differs from the cache")
        backgrounds = sm.measurement.backgrounds
        if spec.synthetic_background:
            backgrounds = synthesise_background(sm.measurement.holograms, sm.measurement.metadata)[0]
        c = camera_artefacts(sm.measurement.holograms, backgrounds=backgrounds)
        hot[idx], jitter[idx] = c.hot_pixel_fraction, c.row_jitter
        print(f"  {name}: measurement {m} ({idx.size} fields)", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, hot_pixel_fraction=hot, row_jitter=jitter)
    return {"hot_pixel_fraction": hot, "row_jitter": jitter}


def evaluation_sets(work: Path, model) -> dict:
    """The alarm alone and the shipped screen with and without it on the no-background and wide-pixel evaluation
    sets (``families-nobg-chamber-20-20261219``, ``families-widepx-chamber-20-20261224``)."""
    out = {}
    for name, stem, kw in (("no_background", "families-nobg-chamber-20-20261219", {"wide_na": True, "no_background": True}),
                           ("wide_pixel", "families-widepx-chamber-20-20261224", {"wide_pixel": True})):
        cs = CropSet.load(FAMILIES / f"{stem}.npz")
        specs = family_specs(20, int(stem.rsplit("-", 1)[1]), chamber=True, **kw)  # as `generate` made them
        numbers = simulated_camera_numbers(cs, specs, name, work, np.unique(cs.measurement))
        alarm = camera_alarm(numbers, len(cs))
        out[name] = {"alarm_alone": _alone(alarm, cs), **_versus(decision_probability(model, cs), alarm, cs)}
    return out


def independent_set_alarms(n_measurements: int = 20, seed: int = 19_000) -> dict:
    """The alarm on the raw holograms of the independent defect set (``_independent_defects.make_set``'s
    measurements: spheres and rods, 8- and 16-bit alternating), clean and defective frames apart."""
    from _independent_defects import make_measurement

    flagged = {"clean": [0, 0], "defective": [0, 0]}
    largest = {"hot_pixel_fraction": 0.0, "row_jitter": 0.0}
    for m in range(n_measurements):
        holos, backs, _, fam = make_measurement(seed + m, "mie" if m % 2 == 0 else "rod", 8 if (m // 2) % 2 == 0 else 16)
        c = camera_artefacts(holos, backgrounds=backs)
        alarm = camera_alarm(c, len(holos))
        for key, sel in (("clean", np.array([not f for f in fam])), ("defective", np.array([bool(f) for f in fam]))):
            flagged[key][0] += int(alarm[sel].sum())
            flagged[key][1] += int(sel.sum())
        largest = {k: max(v, float(np.nanmax(getattr(c, k)))) for k, v in largest.items()}
    return {"flagged_of_frames": flagged, "largest": {k: round(v, 6) for k, v in largest.items()}}


def _alone(alarm: np.ndarray, cs: CropSet) -> dict:
    d = np.asarray(cs.defect)
    return {"caught": {t: round(float(alarm[d == t].mean()), 3) for t in TYPES if (d == t).any()},
            "clean_flagged": round(float(alarm[d == ""].mean()), 4),
            "other_defects_flagged": int(alarm[(d != "") & ~np.isin(d, TYPES)].sum())}


def _versus(p: np.ndarray, alarm: np.ndarray, cs: CropSet) -> dict:
    """The screen (probability ``p``) against the screen with the alarm (an alarmed field's score raised to
    :data:`ALARM_PROBABILITY`, as ``screen_fields`` does): accuracy, intervals, clean kept, camera family, ECE."""
    y = cs.noisy.astype(bool)
    out = {}
    with_alarm = np.where(alarm, np.maximum(p, ALARM_PROBABILITY), p)
    for label, prob in (("screen", p), ("screen_with_alarm", with_alarm)):
        right = ((prob > 0.5) == y).astype(float)
        out[label] = {"accuracy": round(float(right.mean()), 4), "ci95": measurement_bootstrap(right, cs.measurement),
                      "clean_kept": round(float(right[~y].mean()), 4),
                      "camera_family": round(float(right[np.isin(cs.defect, DEFECT_FAMILIES["camera"])].mean()), 3),
                      "ece": round(expected_calibration_error(y.astype(np.uint8), prob), 4)}
    diff = ((with_alarm > 0.5) == y).astype(float) - ((p > 0.5) == y).astype(float)
    out["difference"] = {"mean": round(float(diff.mean()), 4), "paired_ci95": measurement_bootstrap(diff, cs.measurement),
                         "fields_better": int((diff > 0).sum()), "fields_worse": int((diff < 0).sum())}
    return out


def twin_camera_numbers(cs: CropSet, specs: list, work: Path) -> dict[int, dict]:
    """Camera numbers of the defect-free twins' holograms of the held-out measurements, by cache measurement id."""
    path = work / "camera_held_out_twins.npz"
    if path.exists():
        flat = dict(np.load(path))
        return {int(k.split("_")[1]): {"hot_pixel_fraction": flat[k], "row_jitter": flat[k.replace("hot", "jit")]}
                for k in flat if k.startswith("hot_")}
    all_ids = np.unique(CropSet.load(FAMILIES / "families-chamber-110-20261206.npz").measurement)
    out, flat = {}, {}
    for m in np.unique(cs.measurement):
        sm = simulate_family_measurement(specs[int(np.searchsorted(all_ids, m))], apply_defects=False)
        c = camera_artefacts(sm.measurement.holograms, backgrounds=sm.measurement.backgrounds)
        out[int(m)] = {"hot_pixel_fraction": c.hot_pixel_fraction, "row_jitter": c.row_jitter}
        flat[f"hot_{int(m)}"], flat[f"jit_{int(m)}"] = c.hot_pixel_fraction, c.row_jitter
        print(f"  held-out twin: measurement {m}", flush=True)
    np.savez(path, **flat)
    return out


def realistic_rates(held_out: CropSet, numbers: dict, specs: list, rates: list[float], work: Path, model) -> dict:
    """The shipped screen with and without the alarm on the held-out measurements remade at ``rates``."""
    from engine.training.screening_mixtures import mixtures, twin_fields

    ids = [int(m) for m in np.unique(held_out.measurement)]
    twins = twin_fields(FAMILIES / "families-chamber-110-20261206.npz",
                        CropSet.load(FAMILIES / "families-chamber-110-20261206.npz"), ids)
    twin_numbers = twin_camera_numbers(held_out, specs, work)
    out = {}
    for rate in rates:
        mixed = mixtures(held_out, twins, [rate], seed=20261207)
        camera = {k: np.concatenate([np.where(kept, acquired, twin) for kept, acquired, twin
                                     in _by_measurement(held_out, mixed, numbers[k], twin_numbers, k)])
                  for k in ("hot_pixel_fraction", "row_jitter")}
        alarm = camera_alarm(camera, len(mixed))
        out[str(rate)] = _versus(decision_probability(model, mixed), alarm, mixed)
        out[str(rate)]["clean_flagged_by_alarm"] = round(float(alarm[mixed.noisy == 0].mean()), 4)
        print(f"  rate {rate}: {json.dumps(out[str(rate)])}", flush=True)
    return out


def _by_measurement(held_out: CropSet, mixed: CropSet, acquired: np.ndarray, twins: dict, key: str):
    """Per measurement, in the mixture's order: (the frames kept defective, the acquired numbers, the twin's)."""
    start = 0
    for m in np.unique(held_out.measurement):
        rows = np.flatnonzero(held_out.measurement == m)
        kept = mixed.noisy[start:start + rows.size].astype(bool)
        start += rows.size
        yield kept, acquired[rows], twins[int(m)][key]


def _lofo_camera(logits: dict, sets: dict, alarms: dict) -> dict:
    """Leave-camera-out: a stage fitted without camera effects on the left-out network's logit, alone and OR
    the alarm, on held-out and cross-setup."""
    def inputs(name: str) -> np.ndarray:
        z = np.asarray(logits[name], np.float64)
        return np.column_stack([z, _stage_features(sets[name], 1 / (1 + np.exp(-z)), True, True, True)])

    val = sets["validation"]
    x = inputs("validation")
    keep = ~np.isin(val.defect, DEFECT_FAMILIES["camera"]) & np.all(np.isfinite(x), axis=1)
    y = val.noisy[keep].astype(float)
    sw = balanced_weights(y)
    strength, _ = choose_strength(x[keep], y, val.measurement[keep].astype(np.int64), sample_weight=sw)
    stage = fit_logistic(x[keep], y, strength, sw)
    out = {}
    for name in ("held_out", "cross_setup"):
        cs, dec = sets[name], _decide(stage, inputs(name))
        cam = np.isin(cs.defect, DEFECT_FAMILIES["camera"])
        for label, d in (("stage", dec), ("stage_or_alarm", dec | alarms[name])):
            right = d == cs.noisy.astype(bool)
            out.setdefault(name, {})[label] = {"camera_caught": round(float(right[cam].mean()), 4),
                                               "clean_kept": round(float(right[cs.noisy == 0].mean()), 4),
                                               "accuracy": round(float(right.mean()), 4)}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--split-seed", type=int, default=20261206)
    ap.add_argument("--lofo", type=Path, default=None, help="bench_screening_residual_input.py --logits file of a "
                                                             "network trained with --leave-out camera")
    ap.add_argument("--rates", type=float, nargs="*", default=[], help="held-out remade at these defect rates")
    ap.add_argument("--evaluation-sets", action="store_true",
                    help="also the no-background and wide-pixel evaluation sets (~3 min more)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    _, val, held_out = protocol_splits(CropSet.load(FAMILIES / "families-chamber-110-20261206.npz"), args.split_seed)
    sets = {"validation": val, "held_out": held_out, "cross_setup": CropSet.load(FAMILIES / "cross-chamber-8-20261207.npz")}
    generator2 = family_specs(110, 20261206, chamber=True)  # the specs of families-chamber-110-20261206
    specs = {"validation": generator2, "held_out": generator2, "cross_setup": cross_family_specs(8, 20261207, chamber=True)}
    numbers = {n: simulated_camera_numbers(cs, specs[n], n, args.work) for n, cs in sets.items()}
    alarms = {n: camera_alarm(numbers[n], len(sets[n])) for n in sets}
    clean = val.noisy == 0
    report: dict = {"levels": {"hot_pixel_fraction": HOT_PIXEL_LEVEL, "row_jitter": ROW_JITTER_LEVEL},
                    "validation_clean_largest": {k: round(float(np.nanmax(v[clean])), 6)
                                                 for k, v in numbers["validation"].items()},
                    "validation_alarmed": {"fields": int(alarms["validation"].sum()),
                                           "noisy": int((alarms["validation"] & ~clean).sum()),
                                           "alarm_probability_shipped": ALARM_PROBABILITY},
                    "alarm_alone": {n: _alone(alarms[n], cs) for n, cs in sets.items()}}
    report["independent_defect_set"] = independent_set_alarms()
    model = load_model("default")
    for name in ("held_out", "cross_setup"):
        report[name] = _versus(decision_probability(model, sets[name]), alarms[name], sets[name])
    if args.rates:
        report["held_out_realistic_rates"] = realistic_rates(held_out, numbers["held_out"], specs["held_out"],
                                                             args.rates, args.work, model)
    if args.evaluation_sets:
        report["evaluation_sets"] = evaluation_sets(args.work, model)
    if args.lofo is not None:
        report["leave_camera_out"] = _lofo_camera(dict(np.load(args.lofo)), sets, alarms)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
