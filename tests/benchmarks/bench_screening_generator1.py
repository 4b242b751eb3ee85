"""Benchmark: screening models on the 2.x cards' own held-out and cross-setup sets (issue #19's protocol).

Run: ``.venv/bin/python tests/benchmarks/bench_screening_generator1.py [--model NAME_OR_PATH ...]
[--json OUT.json]``.

The sets the issue's first numbers were measured on ("96.4 % held-out, 96.9 % cross-setup"):
generator 1 of :mod:`engine.training.screening_data`, the mixed set of 96 measurements (seed
20261123; its held-out 15 %, 14 measurements and 802 fields, by ``split_by_measurement`` with the
same seed) and the cross-setup set of 8 measurements (cells, 45 illuminations, NA 1.0, noise ×2;
seed 20261124). They are regenerated into ``/tmp/odt-screening-data/simulator`` when missing
(about 10 minutes on one thread), exactly as ``python -m engine.training.screening`` makes them.
For each model: accuracy, sensitivity, specificity, ROC AUC and expected calibration error with
the model's own calibration (a model with a consistency stage: the network alone and with the stage,
measurement by measurement). Numbers only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from engine.metrics import expected_calibration_error, screening_metrics
from engine.screening.consistency import consistency_features_by_measurement
from engine.screening.network import load_model
from engine.training.screening_data import (DEFAULT_CACHE_DIR, cross_setup_specs, load_or_generate, split_by_measurement,
                                            training_specs)

SEED = 20261123  # the 2.x cards' training seed (their training_data.seed)


def generator1_sets(cache_dir: Path = DEFAULT_CACHE_DIR / "simulator") -> dict:
    """``{"held_out": CropSet, "cross_setup": CropSet}`` of the 2.x cards' protocol."""
    mixed = load_or_generate(cache_dir / f"mixed-96-{SEED}.npz", training_specs(96, SEED), source="simulator",
                             device="cpu", log=print)
    cross = load_or_generate(cache_dir / f"cross-8-{SEED + 1}.npz", cross_setup_specs(8, SEED + 1),
                             source="simulator", device="cpu", log=print)
    _, _, test = split_by_measurement(mixed.measurement, (0.7, 0.15, 0.15), seed=SEED)
    return {"held_out": mixed.subset(test), "cross_setup": cross}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="*", default=["default"])
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    sets = generator1_sets()
    out: dict = {}
    for name in a.model:
        m = load_model(name)
        rows = {}
        for split, cs in sets.items():
            prob = m.predict_fields(cs.fields)
            variants = {split: prob}
            if m.consistency:  # the network alone, then with the card's consistency stage, as screen_fields applies it
                feats = consistency_features_by_measurement(cs.fields, cs.measurement, cs.pixel_size_um, cs.wavelength_um)
                variants = {f"{split} network alone": prob, f"{split} with consistency stage":
                            m.apply_consistency(prob, feats)}
            for label, pr in variants.items():
                r = screening_metrics(cs.noisy, pr, float(m.card.get("threshold", 0.5)))
                r["ece"] = expected_calibration_error(cs.noisy, pr)
                rows[label] = r
                print(f"{m.label} ({name}) {label}: {len(cs.noisy)} fields, accuracy {r['accuracy']:.4f}, sensitivity "
                      f"{r['sensitivity']:.3f}, specificity {r['specificity']:.3f}, AUC {r['roc_auc']:.4f}, "
                      f"ECE {r['ece']:.4f}")
        out[m.label] = rows
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
