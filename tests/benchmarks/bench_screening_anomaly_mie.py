"""Benchmark: the neighbour-based screening tools on clean exact-Mie spheres the project did not simulate (#19).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_anomaly_mie.py [--spheres 3] [--json OUT.json]``.
Needs miepython (``pip install -e .[bench]``).

Every field of these measurements is clean: miepython's exact Mie fields of a sphere (n 1.36, r 2.5 µm,
49 ring illuminations to 0.8 of NA 1.2), holograms through the camera model of
``bench_independent_mie.py``, at its default exposure and at the low-SNR one (1000 e-/px, steep power
5e-6: the steepest fields' phase noise near 1 rad). Each measurement goes through
:func:`engine.pipeline.process.process_measurement` (the shipped screen with its consistency features)
and reports, per exposure:

* how many fields the session-17 **anomaly rule** flags — the largest consistency z-score above the
  level that 1 / 2 / 3 / 5 % of the generator-2 clean validation fields exceed (levels read from the
  record ``screening-families-evaluation.json`` → ``session17_residual_input_and_hybrid_lofo``): on
  clean fields every flag is a false alarm, to compare with the rate it was set for;
* how many the shipped network flags (for reference), and how many each consistency stage flags: the
  shipped model's and every ``--stage`` model's (same networks, another stage: its card's ``consistency``
  applied to the features and network probability the shipped model computed);
* for every ``--model`` (a whole screening model, e.g. a candidate whose networks differ from the shipped
  ones): how many fields its own networks flag and how many its own stage flags, both from one
  :func:`engine.screening.network.screen_fields` call on the same fields (a ``--stage`` of other networks would
  be given the shipped networks' score as its first input);
* how bright the Screening tab's "Against neighbours" image of a clean field is
  (:func:`engine.screening.consistency.neighbour_difference`: the median over fields of its 99th
  percentile, and the largest value), against the view's colour-scale floor of 0.25.

Numbers only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_independent_mie import PHOTONS, STEEP_POWER, write_folder  # noqa: E402

from engine.pipeline.process import ProcessOptions, process_measurement  # noqa: E402
from engine.screening.consistency import neighbour_difference  # noqa: E402
from engine.screening.network import CROP_SIZE, load_model, screen_fields  # noqa: E402
from engine.screening.sample_crop import crop_at  # noqa: E402

RECORD = HERE.parent.parent / "resources" / "models" / "screening-families-evaluation.json"
EXPOSURES = {"default": (PHOTONS, STEEP_POWER), "low_snr": (1000.0, 5e-6)}


def anomaly_levels() -> dict[str, float]:
    rec = json.loads(RECORD.read_text(encoding="utf-8"))["session17_residual_input_and_hybrid_lofo"]
    return {a: float(v["level"]) for a, v in rec["hybrid"]["anomaly_rule_alone"].items()}


def _whole_model_flags(res, models: dict) -> dict:
    """Fields each whole model flags with its own networks and with its own consistency stage."""
    r, md, out = res.retrieved, res.metadata, {}
    for name, m in models.items():
        s = screen_fields(np.asarray(r.field), r.illumination_per_um, md, model=m, consistency=False,
                          pixel_size_um=r.pixel_size_um)
        out[name] = {"network_flags": int((s.score > s.threshold).sum()),
                     "stage_flags": None if s.consistency_score is None
                     else int((s.consistency_score > s.threshold).sum())}
    return out


def measure(folder: Path, levels: dict[str, float], stages: dict, models: dict) -> dict:
    # the networks decide (the stage, on by default from 3.4.0, is scored beside them)
    res = process_measurement(folder, None, ProcessOptions(regularize="none", screen_consistency=False))
    s, r = res.screening, res.retrieved
    z = np.max(np.asarray(s.consistency, np.float64), axis=1)
    stage_flags = {"shipped": int((s.consistency_score > s.threshold).sum())}
    md, crops = res.metadata, crop_at(np.asarray(r.field), tuple(s.crop_origin), CROP_SIZE)
    for name, m in stages.items():  # the same crops and network probability, this model's stage
        _, q = m.measurement_consistency(crops, float(r.pixel_size_um), float(md.wavelength_um), r.illumination_per_um,
                                         s.score, na_objective=md.na_objective, medium_index=md.medium_index)
        stage_flags[name] = int((q > s.threshold).sum())
    diffs = [neighbour_difference(r.field, r.illumination_per_um, k) for k in range(len(r.field))]
    return {"fields": int(len(z)), "network_flags": int((s.score > s.threshold).sum()),
            "anomaly_flags": {a: int((z > t).sum()) for a, t in levels.items()}, "stage_flags": stage_flags,
            "largest_z": round(float(z.max()), 2),
            "difference_p99_median": round(float(np.median([np.percentile(d, 99) for d in diffs])), 3),
            "difference_max": round(float(max(d.max() for d in diffs)), 3), "models": _whole_model_flags(res, models)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spheres", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--stage", nargs="*", default=[], metavar="MODEL",
                    help="more screening models (.safetensors) whose consistency stage is applied as well")
    ap.add_argument("--model", nargs="*", default=[], metavar="MODEL",
                    help="whole screening models (.safetensors): their own networks and stage on the same fields")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    levels = anomaly_levels()
    stages = {Path(m).parent.name + "/" + Path(m).stem: load_model(m) for m in args.stage}
    models = {Path(m).parent.name + "/" + Path(m).stem: load_model(m) for m in args.model}
    report: dict = {"levels": levels}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (photons, steep) in EXPOSURES.items():
            rows = []
            for seed in range(args.spheres):
                folder = Path(tmp) / name / f"sphere_{seed}"
                write_folder(folder, args.size, seed, photons, steep)
                rows.append(measure(folder, levels, stages, models))
                print(name, seed, json.dumps(rows[-1]), flush=True)
            n = sum(row["fields"] for row in rows)
            report[name] = {"per_sphere": rows, "fields": n,
                            "anomaly_false_alarm": {a: round(sum(row["anomaly_flags"][a] for row in rows) / n, 4)
                                                    for a in levels},
                            "network_false_alarm": round(sum(row["network_flags"] for row in rows) / n, 4),
                            "stage_false_alarm": {k: round(sum(row["stage_flags"][k] for row in rows) / n, 4)
                                                  for k in rows[0]["stage_flags"]},
                            "model_false_alarm": {k: {what: None if rows[0]["models"][k][what] is None else
                                                      round(sum(row["models"][k][what] for row in rows) / n, 4)
                                                      for what in ("network_flags", "stage_flags")}
                                                  for k in models}}
            print(name, json.dumps({k: v for k, v in report[name].items() if k != "per_sphere"}))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
