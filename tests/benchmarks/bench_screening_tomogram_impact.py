"""Benchmark: does the screen protect the tomogram? The cost of its misses and false alarms in RI (#19).

Run (on a shared 2-core CPU)::

    .venv/bin/python tests/benchmarks/bench_screening_tomogram_impact.py [--sets held_out cross_setup]
        [--rates 0.05 0.1 0.2] [--json OUT.json]                                  # ~30 min
    .venv/bin/python tests/benchmarks/bench_screening_tomogram_impact.py --per-frame [--sets held_out]   # ~25 min
    .venv/bin/python tests/benchmarks/bench_screening_tomogram_impact.py --independent-mie               # ~1 min

The screen exists so that a bad field does not ruin a tomogram. Its accuracy counts every field alike: a
speck of dust of 2 µm² that was missed costs as much as a blank frame kept. This benchmark measures what
each decision costs in the reconstructed refractive index.

For each of generator 2's protocol measurements (held-out: ``families-chamber-110-20261206``, split seed
20261206; cross-setup: ``cross-chamber-8-20261207``; about half their frames defective), simulated again
from its spec, and its **defect-free twin** (:func:`~engine.training.screening_families.simulate_family_measurement`
with ``apply_defects=False``: the same frames, imperfections and camera noise, no defect), everything goes
through :func:`engine.pipeline.process_measurement` (retrieval, the shipped screen with its camera alarm as the
batch runs it, first-order Rytov reconstruction with non-negativity). The reference is the twin's tomogram
from all its fields. Each acquired measurement is then reconstructed from:

* ``all``: every field (no screen);
* ``screen``: the fields the shipped screen keeps;
* ``screen_misses_removed``: the screen's kept fields less the defective ones it missed (what its false
  alarms alone cost: angles lost);
* ``screen_false_alarms_restored``: the screen's kept fields plus the clean ones it dropped (what its misses
  alone cost);
* ``oracle``: exactly the clean fields.

Each volume's error is ``RMS(ri − ri_twin) / RMS(ri_twin − n_m)`` over the whole volume (0 = the ideal
acquisition's tomogram); and, where the phantom's lateral grid is the tomogram's, the same against the phantom
itself (``…_vs_truth``; its z range centred in the tomogram's and moved by the whole voxels that best match the
twin's tomogram, for the spec's focus offset of up to ±2.5 µm; the same move for every choice). The twin keeps
the clean frames' imperfections (defocus up to 1.5 µm, dim frames, chamber residue), so against the twin a clean
field dropped always costs; against the phantom it may not. Reported per set: the median and largest relative
error of each choice and of its ratio to the oracle's, and per measurement.

``--rates``: also each measurement's twin with that fraction of its frames replaced by acquired defective ones
(realistic defect rates). ``--per-frame``: each defective frame's *regret*, what keeping it costs the twin's
tomogram against dropping it (:func:`frame_regrets`). ``--independent-mie``: the exact-Mie spheres of the
independent defect set (``_independent_defects.py``, another generator), against the analytic sphere
(:func:`independent_mie_rows`). Numbers only; nothing is fitted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from engine.pipeline.process import ProcessOptions, process_measurement
from engine.screening.crops import CropSet
from engine.training.screening_families import (DEFAULT_CACHE_DIR, cross_family_specs, protocol_splits,
                                                simulate_family_measurement)
from engine.training.screening_mixtures import specs_of_cache

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _independent_defects (--independent-mie)

FAMILIES = DEFAULT_CACHE_DIR / "families"
CACHES = {"held_out": FAMILIES / "families-chamber-110-20261206.npz",
          "cross_setup": FAMILIES / "cross-chamber-8-20261207.npz"}
CHOICES = ("all", "screen", "screen_misses_removed", "screen_false_alarms_restored", "oracle")


def _relative_error(ri: np.ndarray, ref: np.ndarray, medium_index: float) -> float:
    return float(np.sqrt(np.mean((ri - ref) ** 2)) / np.sqrt(np.mean((ref - medium_index) ** 2)))


def _tomogram(measurement, retrieved, decision: np.ndarray) -> np.ndarray:
    """The Rytov tomogram (as the pipeline makes it) of ``retrieved`` with the fields ``decision`` keeps."""
    return np.asarray(process_measurement(measurement, options=ProcessOptions(screen="none"), retrieved=retrieved,
                                          screening={"decision": np.asarray(decision, np.uint8)}).tomogram.ri)


def truth_on_grid(phantom, tomogram) -> np.ndarray | None:
    """The phantom's RI on the tomogram's grid (its z range centred in the tomogram's, medium elsewhere), or None
    where the voxels or the lateral grid differ."""
    ri, shape = np.asarray(phantom.ri, np.float32), np.shape(tomogram.ri)
    if not np.allclose(phantom.voxel_size_um, tomogram.voxel_size_um) or ri.shape[1:] != shape[1:]:
        return None
    out = np.full(shape, np.float32(phantom.medium_index))
    nz = min(ri.shape[0], shape[0])
    a, b = (shape[0] - nz) // 2, (ri.shape[0] - nz) // 2
    out[a:a + nz] = ri[b:b + nz]
    return out


def registered_truth(truth: np.ndarray, reference: np.ndarray, medium_index: float, reach: int = 30) -> np.ndarray:
    """The phantom moved along z by the whole voxels that best match the twin's tomogram (the spec's focus offset
    of up to ±2.5 µm places the sample off the tomogram's centre); the same move for every choice."""
    errors = [_relative_error(reference, np.roll(truth, s, axis=0), medium_index) for s in range(-reach, reach + 1)]
    return np.roll(truth, int(np.argmin(errors)) - reach, axis=0)


def mixed_measurement(sim, twin, rate: float | None, rng: np.random.Generator):
    """The acquired measurement (``rate`` None), or its twin with ``round(rate · n)`` of the acquired defective
    frames put back (holograms and backgrounds), chosen at random. Returns it and its per-frame defect types."""
    if rate is None:
        return sim.measurement, [str(d) for d in sim.defect_types]
    types = [str(d) for d in sim.defect_types]
    defective = np.flatnonzero([d != "" for d in types])
    chosen = np.zeros(len(types), bool)
    chosen[rng.choice(defective, min(int(round(rate * len(types))), defective.size), replace=False)] = True
    acq, ideal = sim.measurement, twin.measurement
    bg_acq, bg_ideal = np.broadcast_to(acq.backgrounds, acq.holograms.shape), np.broadcast_to(ideal.backgrounds,
                                                                                              acq.holograms.shape)
    mixed = dataclasses.replace(acq, holograms=np.where(chosen[:, None, None], acq.holograms, ideal.holograms),
                                backgrounds=np.where(chosen[:, None, None], bg_acq, bg_ideal), extra={})
    return mixed, [d if c else "" for d, c in zip(types, chosen)]


def decision_errors(measurement, types: list[str], ref_ri: np.ndarray, truth: np.ndarray | None) -> dict:
    """The relative RI error of each of :data:`CHOICES` for one measurement, with its screen's counts."""
    noisy = np.array([d != "" for d in types])
    acquired = process_measurement(measurement, options=ProcessOptions(screen="model"))
    keep = acquired.screening.decision.astype(bool)
    decisions = {"all": np.ones_like(keep), "screen": keep, "screen_misses_removed": keep & ~noisy,
                 "screen_false_alarms_restored": keep | ~noisy, "oracle": ~noisy}
    nm = float(measurement.metadata.medium_index)
    out: dict = {"fields": int(noisy.size), "defective": int(noisy.sum()), "missed": int((keep & noisy).sum()),
                 "false_alarms": int((~keep & ~noisy).sum()),
                 "missed_types": sorted(d for d, k in zip(types, keep) if d and k)}
    for name, decision in decisions.items():
        ri = np.asarray(acquired.tomogram.ri) if np.array_equal(decision, keep) else _tomogram(
            measurement, acquired.retrieved, decision)
        out[name] = round(_relative_error(ri, ref_ri, nm), 4)
        if truth is not None:
            out[f"{name}_vs_truth"] = round(_relative_error(ri, truth, nm), 4)
    return out


def measurement_impact(spec, rates: list, seed: int) -> dict:
    """:func:`decision_errors` of one measurement as acquired and at each defect rate, against its twin's tomogram."""
    sim = simulate_family_measurement(spec)
    twin = simulate_family_measurement(spec, apply_defects=False)
    ref_tomogram = process_measurement(twin.measurement, options=ProcessOptions(screen="none")).tomogram
    ref = np.asarray(ref_tomogram.ri)
    truth = truth_on_grid(sim.phantom, ref_tomogram)
    nm = float(sim.measurement.metadata.medium_index)
    truth = None if truth is None else registered_truth(truth, ref, nm)
    rng = np.random.default_rng([seed, int(spec.seed)])
    out = {"kind": spec.kind, "seed": int(spec.seed)}
    if truth is not None:
        out["twin_vs_truth"] = round(_relative_error(ref, truth, nm), 4)
    for rate in rates:
        measurement, types = mixed_measurement(sim, twin, rate, rng)
        out["acquired" if rate is None else f"rate_{rate:g}"] = decision_errors(measurement, types, ref, truth)
    return out


def _with_frame(base, other, k: int):
    """``base`` (RetrievedFields) with frame ``k`` (its field, phase, illumination and quality numbers) from ``other``."""
    def swap(a, b):
        if a is None or b is None:
            return a
        out = np.array(a, copy=True)
        out[k] = b[k]
        return out

    quality = base.quality
    if quality is not None and other.quality is not None:
        quality = dataclasses.replace(quality, **{f.name: swap(getattr(quality, f.name), getattr(other.quality, f.name))
                                                  for f in dataclasses.fields(quality)})
    return dataclasses.replace(base, field=swap(base.field, other.field),
                               illumination_per_um=swap(base.illumination_per_um, other.illumination_per_um),
                               unwrapped_phase=swap(base.unwrapped_phase, other.unwrapped_phase),
                               rytov_field=swap(base.rytov_field, other.rytov_field),
                               rytov_phase=swap(base.rytov_phase, other.rytov_phase), quality=quality)


def frame_regrets(spec) -> list[dict]:
    """Per defective frame of one measurement: what keeping it costs the tomogram against dropping it.

    The reference is the twin with all its (clean) frames. ``keep``: the twin with frame ``k`` replaced by the
    acquired, defective one; ``drop``: the twin without frame ``k``. Each one's relative error against the twin's
    tomogram and, where the phantom's grid allows, against the phantom (registered as :func:`registered_truth`);
    ``regret = keep − drop`` (> 0: the tomogram is better without the frame). With the screen's decision on the
    acquired measurement (about half its frames defective, as the protocol screens it)."""
    sim = simulate_family_measurement(spec)
    twin = simulate_family_measurement(spec, apply_defects=False)
    ideal = process_measurement(twin.measurement, options=ProcessOptions(screen="none"))
    acquired = process_measurement(sim.measurement, options=ProcessOptions(screen="model"))
    ref = np.asarray(ideal.tomogram.ri)
    nm = float(sim.measurement.metadata.medium_index)
    truth = truth_on_grid(sim.phantom, ideal.tomogram)
    truth = None if truth is None else registered_truth(truth, ref, nm)
    n = len(sim.defect_types)
    rows = []
    for k in np.flatnonzero([d != "" for d in sim.defect_types]):
        drop = np.ones(n, np.uint8)
        drop[k] = 0
        row = {"kind": spec.kind, "seed": int(spec.seed), "frame": int(k), "defect": str(sim.defect_types[k]),
               "caught": bool(acquired.screening.decision[k] == 0)}
        for label, retrieved, decision in (("keep", _with_frame(ideal.retrieved, acquired.retrieved, int(k)),
                                            np.ones(n, np.uint8)), ("drop", ideal.retrieved, drop)):
            ri = _tomogram(twin.measurement, retrieved, decision)
            row[label] = round(_relative_error(ri, ref, nm), 5)
            if truth is not None:
                row[f"{label}_vs_truth"] = round(_relative_error(ri, truth, nm), 5)
        row["regret"] = round(row["keep"] - row["drop"], 5)
        if truth is not None:
            row["regret_vs_truth"] = round(row["keep_vs_truth"] - row["drop_vs_truth"], 5)
        rows.append(row)
    return rows


def regret_summary(rows: list[dict]) -> dict:
    """The screen's catch rate by regret against the phantom (frames whose keeping costs more than dropping them
    are the ones that matter), and the regret of the frames it missed."""
    out: dict = {"frames": len(rows), "caught": round(float(np.mean([r["caught"] for r in rows])), 3)}
    for key in ("regret", "regret_vs_truth"):
        have = [r for r in rows if key in r]
        if not have:
            continue
        harmful = [r for r in have if r[key] > 0]
        out[key] = {"frames": len(have), "harmful (regret > 0)": len(harmful),
                    "caught_of_harmful": round(float(np.mean([r["caught"] for r in harmful])), 3) if harmful else None,
                    "caught_of_harmless": round(float(np.mean([r["caught"] for r in have if r[key] <= 0])), 3)
                    if len(harmful) < len(have) else None}
        for lo, hi in ((-np.inf, 0.0), (0.0, 0.005), (0.005, 0.02), (0.02, 0.1), (0.1, np.inf)):
            sel = [r["caught"] for r in have if lo < r[key] <= hi]
            out[key][f"{lo:g}..{hi:g}"] = {"frames": len(sel), "caught": round(float(np.mean(sel)), 3) if sel else None}
        missed = [r[key] for r in have if not r["caught"]]
        out[key]["missed_regret_median_max"] = [round(float(np.median(missed)), 5), round(float(np.max(missed)), 5)] \
            if missed else None
        out[key]["missed_by_type"] = {t: int(sum(1 for r in have if not r["caught"] and r["defect"] == t))
                                      for t in sorted({r["defect"] for r in have if not r["caught"]})}
    return out


def set_measurements(name: str, split_seed: int) -> list:
    """The specs of a set's measurements, in the order of their ids in the cache."""
    if name == "cross_setup":
        return cross_family_specs(8, 20261207, chamber=True)  # as `generate --chamber` made cross-chamber-8-20261207
    cache = CACHES[name]
    cs = CropSet.load(cache)
    specs, ids = specs_of_cache(cache), list(np.unique(cs.measurement))
    part = protocol_splits(cs, split_seed)[2]
    return [specs[ids.index(m)] for m in np.unique(part.measurement)]


def summary(rows: list[dict]) -> dict:
    """Median and largest error of each choice over measurements, and of its ratio to the oracle's (against the
    twin, and against the phantom over the measurements that have it); how often the screen is clearly worse than
    the oracle; the defects the screen missed and the clean fields it dropped."""
    out: dict = {"measurements": len(rows)}
    for suffix in ("", "_vs_truth"):
        have = [r for r in rows if f"oracle{suffix}" in r]
        if not have:
            continue
        for c in CHOICES:
            v = [r[c + suffix] for r in have]
            ratio = [r[c + suffix] / r["oracle" + suffix] for r in have]
            out[c + suffix] = {"median": round(float(np.median(v)), 4), "max": round(float(np.max(v)), 4),
                               "over_oracle_median": round(float(np.median(ratio)), 3),
                               "over_oracle_max": round(float(np.max(ratio)), 3)}
        out[f"screen_worse_than_oracle_by_over_10_percent{suffix}"] = int(
            sum(r["screen" + suffix] > 1.1 * r["oracle" + suffix] for r in have))
        out[f"measurements{suffix}"] = len(have)
    for key in ("missed", "defective", "false_alarms"):
        out[key] = int(sum(r[key] for r in rows))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", choices=tuple(CACHES), default=list(CACHES))
    ap.add_argument("--split-seed", type=int, default=20261206)
    ap.add_argument("--limit", type=int, default=None, help="only the first N measurements of each set")
    ap.add_argument("--rates", type=float, nargs="*", default=[0.1],
                    help="also each measurement's twin with this fraction of its frames defective")
    ap.add_argument("--seed", type=int, default=20261208, help="which defective frames the --rates keep")
    ap.add_argument("--per-frame", action="store_true",
                    help="instead: each defective frame's regret (keep it against drop it, in the twin), by catch")
    ap.add_argument("--independent-mie", action="store_true",
                    help="instead: the exact-Mie spheres of the independent defect set, against the sphere")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.per_frame:
        return per_frame_main(args)
    if args.independent_mie:
        return independent_mie_main(args)
    rates = [None] + list(args.rates)
    report: dict = {}
    for name in args.sets:
        rows = []
        for spec in set_measurements(name, args.split_seed)[:args.limit]:
            rows.append(measurement_impact(spec, rates, args.seed))
            print(name, json.dumps(rows[-1]), flush=True)
            keys = [k for k in rows[0] if isinstance(rows[0][k], dict)]
            report[name] = {"summary": {k: summary([r[k] for r in rows]) for k in keys}, "measurements": rows}
            _write(args.json, report)
        print(name, json.dumps(report[name]["summary"]), flush=True)
    return report


def _write(path: Path | None, report: dict) -> None:
    """Rewritten after every measurement, so that an interrupted run keeps what it did."""
    if path is not None:
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def sphere_truth(seed: int, bits: int, tomogram) -> np.ndarray:
    """The exact-Mie sphere of :func:`_independent_defects.make_measurement` (``seed``, ``bits``) on the tomogram's
    grid: the same draws, in the same order, as its ``draw_optics`` and ``sphere_fields``; centred at z = 0."""
    import _independent_defects as ind

    rng = np.random.default_rng(seed)
    o = ind.draw_optics(rng, bits)
    r = float(rng.uniform(1.5, 4.0))
    n_s = float(o.medium_index + rng.uniform(0.012, 0.07))
    cy, cx = float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5))
    shape, vox, origin = np.shape(tomogram.ri), tomogram.voxel_size_um, tomogram.origin_um
    z, y, x = (origin[i] + vox[i] * np.arange(shape[i]) for i in range(3))
    inside = (z[:, None, None] ** 2 + (y[None, :, None] - cy) ** 2 + (x[None, None, :] - cx) ** 2) <= r * r
    return np.where(inside, np.float32(n_s), np.float32(o.medium_index)).astype(np.float32)


def independent_mie_rows(n_measurements: int = 10, seed: int = 19_000) -> list[dict]:
    """The exact-Mie measurements of the independent defect set (``_independent_defects``: another generator, its
    own camera and defects, 40 % of the frames defective): each choice's relative RI error against the sphere
    (registered along z on the oracle's tomogram, the same move for every choice)."""
    import _independent_defects as ind
    from engine.measurement import Measurement

    rows = []
    for m in range(0, 2 * n_measurements, 2):  # the set's even measurements are the spheres
        bits = 8 if (m // 2) % 2 == 0 else 16
        holos, backs, md, fam = ind.make_measurement(seed + m, "mie", bits)
        measurement = Measurement(metadata=md, holograms=holos, backgrounds=backs, name=f"mie-{seed + m}")
        noisy = np.array([f != "" for f in fam])
        acquired = process_measurement(measurement, options=ProcessOptions(screen="model"))
        keep = acquired.screening.decision.astype(bool)
        nm = float(md.medium_index)
        vols = {"screen": np.asarray(acquired.tomogram.ri)}
        for name, decision in (("all", np.ones_like(keep)), ("oracle", ~noisy)):
            vols[name] = _tomogram(measurement, acquired.retrieved, decision)
        truth = registered_truth(sphere_truth(seed + m, bits, acquired.tomogram), vols["oracle"], nm)
        row = {"seed": seed + m, "bits": bits, "defective": int(noisy.sum()), "missed": int((keep & noisy).sum()),
               "false_alarms": int((~keep & ~noisy).sum()),
               "missed_types": sorted(f for f, k in zip(fam, keep) if f and k)}
        row.update({f"{name}_vs_truth": round(_relative_error(v, truth, nm), 4) for name, v in vols.items()})
        rows.append(row)
        print("independent_mie", json.dumps(row), flush=True)
    return rows


def per_frame_main(args) -> dict:
    """``--per-frame``: :func:`frame_regrets` of every measurement of the sets, and their :func:`regret_summary`."""
    report: dict = {}
    for name in args.sets:
        rows: list[dict] = []
        for spec in set_measurements(name, args.split_seed)[:args.limit]:
            rows += frame_regrets(spec)
            report[name] = {"summary": regret_summary(rows), "frames": rows}
            print(name, spec.kind, spec.seed, json.dumps(report[name]["summary"]), flush=True)
            _write(args.json, report)
    return report


def independent_mie_main(args) -> dict:
    """``--independent-mie``: :func:`independent_mie_rows`, with each choice's median error and its ratio to the
    oracle's."""
    rows = independent_mie_rows()
    ratios = {c: [r[f"{c}_vs_truth"] / r["oracle_vs_truth"] for r in rows] for c in ("all", "screen", "oracle")}
    report = {"independent_mie": {"measurements": rows, "summary": {
        c: {"median": round(float(np.median([r[f"{c}_vs_truth"] for r in rows])), 4),
            "over_oracle_median": round(float(np.median(v)), 3), "over_oracle_max": round(float(np.max(v)), 3)}
        for c, v in ratios.items()}}}
    print(json.dumps(report["independent_mie"]["summary"]))
    _write(args.json, report)
    return report


if __name__ == "__main__":
    main()
