"""Benchmark: a stacked screening score (CNN logit + rule metric + crop quality numbers), issue #19 item 3.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_screening_combined.py
[--cache-dir /tmp/odt-screening-data/families] [--n-independent 10] [--json OUT.json]`` (~30 s once the
wide-family crops are cached by ``python -m engine.training.screening_families generate``).

Fits :func:`fit_combined` (L2 logistic regression, Newton) on the **validation** measurements of the
wide-family set (``engine.training.screening_families``, same split and seed as its ``train``) only,
for four stacks (:data:`VARIANTS`: Platt scaling of the logit alone; logit + rule metric; logit +
quality numbers of the crop; all), then reports them beside the shipped compact CNN (its own
temperature): held-out and cross-setup accuracy / sensitivity / specificity / AUC / ECE and per-family
catch rates, the independent set (:mod:`_independent_defects`, ``--n-independent`` measurements), and
the probabilities of the real holograms (``tests/data``, must stay < 0.3). Reports numbers only;
nothing is wired into the pipeline (result: ``resources/models/screening-combined-evaluation.json``).

The crops carry no retrieval quality numbers, so the quality features are recomputed from the
128² complex crop (:data:`FEATURES`): phase noise, log residue density, border phase spread, robust
spread of ln|U|, dark-pixel fraction.

Finding (seed 20261206, 10 independent measurements): no stack passes. The full stack helps cross-setup
(87.2 -> 91.9 %) and the independent set (95.1 -> 96.9 %, obstructions 86 -> 94 %) and lowers the
wide-family ECE (held-out 0.099 -> 0.039), but loses held-out accuracy (86.2 -> 84.3 %, specificity
0.91 -> 0.84), raises the independent ECE (0.025 -> 0.066) and scores the real holograms noisy
(0.50-0.70; the CNN alone 0.12-0.19): the rule metric and the quality numbers of a real cell that fills
the crop lie outside the simulated clean range, and even the logit-only refit (Platt) moves them to
0.39-0.43 because the shipped net's logit for them (-1.5 to -1.9) is near its boundary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine.metrics import expected_calibration_error, screening_metrics
from engine.holography.quality import residue_density
from engine.holography.unwrap import phase_noise_rad
from engine.screening.rule import rule_peak_metric
from engine.screening.crops import CropSet
from engine.screening.network import CROP_SIZE, _centre_crop, _pad_to, load_model, preprocess
from engine.training.screening_families import families_of, family_catch_rates, protocol_splits

FEATURES = ("cnn_logit", "rule_metric", "phase_noise_rad", "log_residues", "border_phase_std_rad",
            "log_amp_std", "dark_fraction")


def _border_phase_std(field: np.ndarray, width: int = 8) -> np.ndarray:
    b = np.concatenate([field[:, :width].reshape(len(field), -1), field[:, -width:].reshape(len(field), -1),
                        field[:, width:-width, :width].reshape(len(field), -1),
                        field[:, width:-width, -width:].reshape(len(field), -1)], axis=1)
    ref = b.sum(axis=1, keepdims=True)
    ph = np.angle(b * np.conj(ref))
    med = np.median(ph, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(ph - med), axis=1)


def crop_features(fields: np.ndarray, cnn_logit: np.ndarray, pixel_size_um: np.ndarray | float,
                  wavelength_um: np.ndarray | float) -> np.ndarray:
    """Feature matrix (N, len(FEATURES)) float64 of centre crops.

    Parameters
    ----------
    fields : (N, H, W) complex
        Ratio-field crops (the network's input crop).
    cnn_logit : (N,) float
        The network's raw logits for the same fields.
    pixel_size_um, wavelength_um : float or (N,) float
        Optics per field, µm (for the rule metric).
    """
    f = np.asarray(fields)
    n = f.shape[0]
    px = np.broadcast_to(np.asarray(pixel_size_um, np.float64), (n,))
    lam = np.broadcast_to(np.asarray(wavelength_um, np.float64), (n,))
    rule = np.empty(n, np.float64)
    for p, w in sorted(set(zip(px.tolist(), lam.tolist()))):
        sel = (px == p) & (lam == w)
        rule[sel] = rule_peak_metric(f[sel], None, p, w)
    amp = np.abs(f).reshape(n, -1).astype(np.float64) + 1e-6
    la = np.log(amp)
    mad = 1.4826 * np.median(np.abs(la - np.median(la, axis=1, keepdims=True)), axis=1)
    dark = (amp < 0.5 * np.median(amp, axis=1, keepdims=True)).mean(axis=1)
    return np.stack([np.asarray(cnn_logit, np.float64), rule, phase_noise_rad(f),
                     np.log10(residue_density(f).astype(np.float64) + 1e-4), _border_phase_std(f), mad, dark],
                    axis=1)


@dataclass(frozen=True)
class CombinedScore:
    """A fitted logistic stack: ``sigmoid(intercept + coef · (x − mean) / scale)``."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Stacked logits (N,) of feature rows x (N, K) ordered as ``features``."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"features must have shape (N, {len(self.features)}), got {x.shape}")
        return self.intercept + ((x - self.mean) / self.scale) @ self.coef

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N,) that each field is noisy."""
        return 1.0 / (1.0 + np.exp(-self.logit(x)))

    def as_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": float(self.intercept)}


def fit_combined(x: np.ndarray, noisy: np.ndarray, *, l2: float = 1e-2, features=FEATURES,
                 n_iter: int = 50) -> CombinedScore:
    """L2-regularised logistic regression by Newton's method (the intercept is not penalised).

    Parameters
    ----------
    x : (N, K) float
        Feature rows; standardised internally (mean/std of ``x``).
    noisy : (N,) {0, 1}
    l2 : float
        Penalty ``l2 · N/2 · |w|²`` on the standardised coefficients.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(noisy, np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0 or x.shape[1] != len(features):
        raise ValueError("x must be (N, K) with K features and N labels")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    a = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(a.shape[1])
    pen = np.full(a.shape[1], l2 * len(x))
    pen[0] = 0.0
    for _ in range(n_iter):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -40, 40)))
        g = a.T @ (p - y) + pen * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return CombinedScore(tuple(features), mean, scale, w[1:], float(w[0]))


DATA = Path(__file__).resolve().parents[1] / "data"
SEED = 20261206
#: Stacks compared (columns of FEATURES): Platt scaling of the logit alone, + rule, + quality numbers, all.
VARIANTS = {"platt": [0], "logit+rule": [0, 1], "logit+quality": [0, 2, 3, 5, 6], "all": list(range(len(FEATURES)))}


def _logits(model, fields: np.ndarray) -> np.ndarray:
    x = preprocess(fields, input_kind=model.input_kind, crop=model.crop)
    out = []
    with torch.inference_mode():
        for s in range(0, len(x), 256):
            out.append(model.net.logits(x[s:s + 256]).float().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _features(model, cs: CropSet) -> np.ndarray:
    return crop_features(cs.fields, _logits(model, cs.fields), cs.pixel_size_um, cs.wavelength_um)


def _report(noisy: np.ndarray, prob: np.ndarray, families: np.ndarray | None) -> dict:
    out = screening_metrics(noisy, prob, 0.5)
    out["ece"] = expected_calibration_error(noisy, prob)
    if families is not None:
        out["caught"] = family_catch_rates(prob, families)
    return out


def _real_fields() -> list[tuple[str, np.ndarray, float, float]]:
    """Centre crops of the real holograms' fields, retrieved as tests/engine/test_real_holograms.py does."""
    import qpretrieve

    from engine.holography.retrieval import retrieve_fields
    from engine.metadata import MeasurementMetadata
    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    px, lam, nm, pupil = 0.1, 0.55, 1.335, 0.48
    d = np.load(DATA / "hologram_cell.npz")
    holo = qpretrieve.OffAxisHologram(d["data"])
    holo.run_pipeline(filter_size=1 / 2)
    c = np.hypot(*holo.pipeline_kws["sideband_freq"]) / px
    md = MeasurementMetadata.from_dict({"format": "odt-measurement/1", "wavelength_um": lam, "medium_index": nm,
                                        "na_objective": pupil * c * lam, "pixel_size_um": px})
    cases = [("hologram_cell.npz", d["data"][None], d["bg_data"][None], md)]
    for name in ("single_hdf5_raw-oah.h5", "series_hdf5_raw-oah.h5"):
        m = read_qpformat_hdf5(DATA / name)
        cases.append((name, m.holograms, m.backgrounds, m.metadata))
    out = []
    for name, h, b, meta in cases:
        r = retrieve_fields(h, b, meta, device="cpu", unwrap=False)
        f = _pad_to(_centre_crop(np.asarray(r.field), CROP_SIZE), CROP_SIZE).astype(np.complex64)
        out.append((name, f, float(r.pixel_size_um), float(meta.wavelength_um)))
    return out


def _line(name: str, r: dict) -> str:
    fam = ", ".join(f"{k} {v.get('caught', v.get('kept', np.nan)):.2f}" for k, v in r.get("caught", {}).items())
    return (f"  {name}: acc {r['accuracy']:.4f} sens {r['sensitivity']:.3f} spec {r['specificity']:.3f} "
            f"AUC {r['roc_auc']:.4f} ECE {r['ece']:.4f}" + (f"; caught {fam}" if fam else ""))


def _evaluate(model, stacks: dict, sets: dict, temp: float) -> dict:
    report: dict = {}
    for set_name, (x, noisy, fam) in sets.items():
        report[set_name] = {"cnn": _report(noisy, 1 / (1 + np.exp(-x[:, 0] / temp)), fam)}
        for sname, (st, cols) in stacks.items():
            report[set_name][sname] = _report(noisy, st.probability(x[:, cols]), fam)
        print(set_name)
        for k, r in report[set_name].items():
            print(_line(k, r))
    return report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache-dir", type=Path, default=Path("/tmp/odt-screening-data/families"))
    p.add_argument("--n-independent", type=int, default=10)
    p.add_argument("--independent-seed", type=int, default=19_000)
    p.add_argument("--l2", type=float, default=1e-2)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    model = load_model("default")
    mixed = CropSet.load(a.cache_dir / f"families-110-{SEED}.npz")
    cross = CropSet.load(a.cache_dir / f"cross-8-{SEED + 1}.npz")
    _, val, test = protocol_splits(mixed, SEED)
    del mixed
    sets = {}
    for name, cs in (("validation", val), ("held_out", test), ("cross_setup", cross)):
        sets[name] = (_features(model, cs), cs.noisy.astype(int), families_of(cs))
    print(f"features of {sum(len(s[1]) for s in sets.values())} crops in {time.time() - t0:.0f} s")
    import _independent_defects as ind

    s = ind.make_set(a.n_independent, a.independent_seed)
    fam = np.array(["obstruction" if f in ind.REPORT_GROUPS.get("obstruction", ()) else f for f in s.family])
    px, lam = _independent_optics(ind, s, a.independent_seed)
    sets["independent"] = (crop_features(s.fields, _logits(model, s.fields), px, lam), s.noisy.astype(int), fam)
    print(f"independent set: {len(s.noisy)} fields ({int(s.noisy.sum())} noisy), {time.time() - t0:.0f} s")
    xv, yv, _ = sets["validation"]
    stacks = {name: (fit_combined(xv[:, cols], yv, l2=a.l2, features=tuple(FEATURES[c] for c in cols)), cols)
              for name, cols in VARIANTS.items()}
    report = {"seed": SEED, "l2": a.l2, "n_independent": a.n_independent, "base_model": model.label,
              "base_temperature": model.temperature, "stacks": {k: st.as_dict() for k, (st, _) in stacks.items()}}
    report["sets"] = _evaluate(model, stacks, sets, model.temperature)
    real = {}
    for name, f, px, lam in _real_fields():
        x = crop_features(f, _logits(model, f), px, lam)
        real[name] = {"cnn": (1 / (1 + np.exp(-x[:, 0] / model.temperature))).tolist(),
                      **{k: st.probability(x[:, cols]).tolist() for k, (st, cols) in stacks.items()}}
    report["real_holograms"] = real
    print("real holograms (probability noisy):", json.dumps(real))
    print(f"total {time.time() - t0:.0f} s")
    if a.json is not None:
        a.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def _independent_optics(ind, s, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-field pixel size and wavelength (µm) of the independent set: its optics are the first draw
    of each measurement's generator (``_independent_defects.make_measurement``)."""
    px, lam = np.empty(len(s.noisy)), np.empty(len(s.noisy))
    for m in np.unique(s.measurement):
        o = ind.draw_optics(np.random.default_rng(seed + int(m)), int(s.bits[s.measurement == m][0]))
        px[s.measurement == m], lam[s.measurement == m] = o.pixel_size_um, o.wavelength_um
    return px, lam


if __name__ == "__main__":
    main()
