"""Train the learned birefringence generator on simulated liquid-crystal droplets.

Usage::

    python -m engine.training.birefringence_generator [--n-droplets N] [--minutes M]
        [--device cpu|cuda] [--out-dir resources/models] [--cache-dir /tmp/odt-birefringence-generator]

Data (documented in the model card)
-----------------------------------
One droplet per sample on a 32³ grid of 0.2 µm voxels (6.4 µm cube), n_m 1.46, λ 0.532 µm,
objective NA 1.2, 25 illuminations on the Fermat spiral of the lc-droplets demo (condenser NA
1.0, snapped to the grid). Drawn per droplet: bipolar or radial (½ each), radius 1.0–2.4 µm,
centre ±0.5 µm on each axis, n_o 1.50–1.54, Δn = n_e − n_o 0.02–0.20 (from weak droplets to
5CB-like ones), bipolar axis as :func:`engine.simulate.phantoms.make_lc_droplet` draws it
(random azimuth, tilt within ±0.3 rad). Fields by the Jones-matrix multi-slice simulator
(:func:`engine.simulate.beam_propagation.propagate_vectorial`, more exact than DTT's first-order
model), plus complex Gaussian noise of a per-droplet standard deviation 0–0.03 on every Jones
element (retrieval noise). Split by droplet (independent seeds ``[seed, split, index]``):
80 % train, 10 % validation (model selection), 10 % test (the card's metrics).

Target: the simulator's truth n_e and n_o volumes on the same grid (n_m outside, coverage-
blended at the edge), not the DTT reconstruction the paper trained on — DTT is biased for strong
droplets, so the network would learn its bias (the card reports DTT against the same truth).

Training: MSE on the output scaled to [0, 1] over the card's [n_min, n_max], Adam with a
learning rate of 1e-3 decaying (cosine) to 1e-4 over the time budget — the paper's constant 1e-4
learns too slowly for the ~8 epochs of 800 droplets that fit into 40 minutes on one CPU thread —, batch 4, the best
validation state kept. Evaluation as the paper: PSNR with each volume scaled to 0–255 over
[n_min, n_max], SSIM (:func:`skimage.metrics.structural_similarity`, 3-D, data_range 255),
plus the mean n_e / n_o error inside the droplet, for the learned route, DTT
(:func:`engine.birefringence.tensor_tomography.reconstruct_tensor`, same grid) and the constant-n_m volume.

References
----------
.. [1] Kim et al., Sci. Rep. 14 (2024) (learned generator, PSNR/SSIM on 0–255 volumes).
.. [2] Shin et al., Nat. Mater. 21, 317 (2022) (dielectric tensor tomography).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..backend import resolve_device
from ..birefringence.generator import (DEFAULT_ARCHITECTURE, DEFAULT_GENERATOR_NAME, BirefringenceGenerator,
                                       build_generator, generator_inputs, save_generator)
from ..birefringence.jones import JonesFields
from ..birefringence.tensor_tomography import jones_rytov, reconstruct_tensor
from ..metadata import MeasurementMetadata
from ..metrics import psnr_255, ssim_255
from ..models import MODELS_DIR, TrainingLog
from ..simulate.beam_propagation import propagate_vectorial, snap_illuminations
from ..simulate.holograms import illumination_pattern
from ..simulate.phantoms import make_lc_droplet

__all__ = ["TRAINING_SETUP", "training_metadata", "training_illuminations", "simulate_droplet", "make_dataset",
           "evaluate", "train", "main"]

#: the setup of the training data (stored in the card's ``input.setup``)
TRAINING_SETUP = {"wavelength_um": 0.532, "medium_index": 1.46, "na_objective": 1.2, "na_condenser": 1.0,
                  "n_illuminations": 25, "pattern": "spiral", "voxel_um": 0.2, "shape_zyx": [32, 32, 32]}
WINDOW = 5
INPUT_SCALE = 1.0
SPLITS = {"train": 0, "val": 1, "test": 2}


def training_metadata() -> MeasurementMetadata:
    s = TRAINING_SETUP
    return MeasurementMetadata(wavelength_um=s["wavelength_um"], medium_index=s["medium_index"],
                               na_objective=s["na_objective"], pixel_size_um=s["voxel_um"])


def training_illuminations() -> np.ndarray:
    """(25, 2) cycles/µm: the demo's spiral, snapped to the 32² grid of 0.2 µm."""
    s = TRAINING_SETUP
    n = s["shape_zyx"][1]
    return snap_illuminations(illumination_pattern(s["n_illuminations"], s["na_condenser"], s["wavelength_um"],
                                                   s["pattern"]), (n, n), (s["voxel_um"],) * 2)


def simulate_droplet(rng: np.random.Generator, device: str | torch.device = "cpu", noise: Optional[float] = None):
    """One random droplet of the training distribution.

    Returns
    -------
    jones : JonesFields
        (25, 2, 2, 32, 32) at 0.2 µm.
    truth : ndarray (2, 32, 32, 32) float32
        n_e and n_o.
    params : dict
        Configuration, radius, centre, indices, noise.
    """
    s = TRAINING_SETUP
    shape = tuple(s["shape_zyx"])
    vox = (s["voxel_um"],) * 3
    conf = str(rng.choice(["bipolar", "radial"]))
    radius = float(rng.uniform(1.0, 2.4))
    centre = rng.uniform(-0.5, 0.5, size=3)
    n_o = float(rng.uniform(1.50, 1.54))
    n_e = n_o + float(rng.uniform(0.02, 0.20))
    ph = make_lc_droplet(shape, vox, s["medium_index"], rng, configuration=conf, radius_um=radius, n_o=n_o,
                         n_e=n_e, centre_um=tuple(centre))
    ill = training_illuminations()
    field = propagate_vectorial(ph, s["wavelength_um"], ill, s["na_objective"], device=device)
    sigma = float(rng.uniform(0.0, 0.03)) if noise is None else float(noise)
    if sigma > 0:
        field = field + (sigma / math.sqrt(2)) * (rng.standard_normal(field.shape)
                                                  + 1j * rng.standard_normal(field.shape))
    params = {**ph.params["objects"][0], "noise": sigma}
    return (JonesFields(field=field.astype(np.complex64), illumination_per_um=ill, pixel_size_um=s["voxel_um"]),
            np.stack([ph.n_e, ph.n_o]).astype(np.float32), params)


def make_dataset(split: str, count: int, seed: int, cache_dir: Path, device="cpu", with_dtt: bool = False,
                 log=print) -> dict:
    """Simulate (or load from ``cache_dir``) ``count`` droplets of a split.

    Returns a dict of arrays: ``psi`` (n, 25, 2, 2, 32, 32) complex64 Jones–Rytov fields,
    ``truth`` (n, 2, 32, 32, 32), ``params`` (list), and with ``with_dtt`` the DTT n_e, n_o
    ``dtt`` (n, 2, 32, 32, 32) and its seconds ``dtt_s``.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{split}_seed{seed}_n{count}{'_dtt' if with_dtt else ''}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        out = {k: z[k] for k in z.files if k != "params"}
        out["params"] = json.loads(str(z["params"]))
        log(f"loaded {split}: {count} droplets from {path}")
        return out
    md = training_metadata()
    shape = tuple(TRAINING_SETUP["shape_zyx"])
    psi, truth, params, dtt, dtt_s = [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(count):
        rng = np.random.default_rng([seed, SPLITS[split], i])
        jones, tr, p = simulate_droplet(rng, device)
        psi.append(jones_rytov(jones.field, device=device).cpu().numpy())
        truth.append(tr)
        params.append(p)
        if with_dtt:
            t = time.perf_counter()
            tomo = reconstruct_tensor(jones, md, shape_z=shape[0], device=device)
            dtt_s.append(time.perf_counter() - t)
            dtt.append(np.stack([tomo.n_e, tomo.n_o]))
        if (i + 1) % 50 == 0:
            log(f"  {split}: {i + 1}/{count} droplets simulated ({time.perf_counter() - t0:.0f} s)")
    out = {"psi": np.stack(psi), "truth": np.stack(truth), "params": params}
    if with_dtt:
        out["dtt"] = np.stack(dtt).astype(np.float32)
        out["dtt_s"] = np.asarray(dtt_s)
    np.savez(path, **{k: v for k, v in out.items() if k != "params"}, params=json.dumps(params))
    log(f"simulated {split}: {count} droplets in {time.perf_counter() - t0:.0f} s → {path}")
    return out


def _batch_inputs(psi: np.ndarray, device) -> torch.Tensor:
    """(B, 25, 2, 2, H, W) Jones–Rytov fields → (B, T, 8, D, H, W) generator inputs."""
    md = training_metadata()
    ill = training_illuminations()
    s = TRAINING_SETUP
    stub = JonesFields(field=np.empty((psi.shape[1], 2, 2, 0, 0), np.complex64), illumination_per_um=ill,
                       pixel_size_um=s["voxel_um"])
    return torch.stack([generator_inputs(stub, md, shape_zyx=s["shape_zyx"], window=WINDOW, voxel_um=s["voxel_um"],
                                         input_scale=INPUT_SCALE, psi=torch.as_tensor(p), device=device)
                        for p in psi])


# --------------------------------------------------------------------------- evaluation
def evaluate(pred: np.ndarray, truth: np.ndarray, params: list, n_min: float, n_max: float) -> dict:
    """Metrics of predictions (n, 2, D, H, W) against truth: per channel n_e/n_o, means over droplets.

    ``psnr_db``, ``ssim``: as the paper; ``inside_mean_error``: mean of (pred − truth) over the
    voxels fully inside the droplet, averaged over droplets; ``inside_mae``: the same of |·|.
    """
    out: dict = {}
    for c, name in enumerate(("n_e", "n_o")):
        ps, ss, me, mae = [], [], [], []
        for k in range(pred.shape[0]):
            p, t = pred[k, c], truth[k, c]
            ps.append(psnr_255(p, t, n_min, n_max))
            ss.append(ssim_255(p, t, n_min, n_max))
            inside = np.abs(truth[k, c] - params[k][name]) < 1e-6
            me.append(float(np.mean(p[inside] - t[inside])))
            mae.append(float(np.mean(np.abs(p[inside] - t[inside]))))
        out[name] = {"psnr_db": float(np.mean(ps)), "psnr_db_std": float(np.std(ps)), "ssim": float(np.mean(ss)),
                     "ssim_std": float(np.std(ss)), "inside_mean_error": float(np.mean(me)),
                     "inside_mae": float(np.mean(mae))}
    return out


@torch.no_grad()
def predict(net: BirefringenceGenerator, psi: np.ndarray, device, batch: int = 4) -> np.ndarray:
    net.eval()
    out = [net(_batch_inputs(psi[s:s + batch], device)).cpu().numpy() for s in range(0, len(psi), batch)]
    return np.concatenate(out)


# --------------------------------------------------------------------------- training
def _fit(net: BirefringenceGenerator, opt: torch.optim.Optimizer, tr: dict, va: dict, *, n_train: int,
         batch_size: int, lr: float, lr_final: float, budget: float, seed: int, dev, log: TrainingLog) -> dict:
    """Train ``net`` epoch by epoch within ``budget`` seconds (cosine LR decay from ``lr`` to ``lr_final``).

    Returns a dict: ``best`` (lowest validation MSE), ``best_state`` (its weights), ``epoch``, ``steps``,
    ``history`` (one dict per epoch) and ``t_train`` (seconds).
    """
    arch = dict(DEFAULT_ARCHITECTURE)
    n_min, n_max = float(arch["n_min"]), float(arch["n_max"])
    truth_tr = torch.as_tensor(tr["truth"])
    rng = np.random.default_rng(seed)
    best, best_state, epoch, steps, history = float("inf"), None, 0, 0, []
    t0 = time.perf_counter()
    done = False
    while not done:
        epoch += 1
        net.train()
        order = rng.permutation(n_train)
        losses = []
        for s in range(0, n_train - batch_size + 1, batch_size):
            frac = (time.perf_counter() - t0) / budget
            if frac >= 1.0:
                done = True
                break
            for g in opt.param_groups:  # cosine decay from lr to lr_final over the time budget
                g["lr"] = lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * frac))
            idx = order[s:s + batch_size]
            x = _batch_inputs(tr["psi"][idx], dev)
            y = ((truth_tr[idx].to(dev) - n_min) / (n_max - n_min))
            pred = (net(x) - n_min) / (n_max - n_min)
            loss = torch.mean((pred - y) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            steps += 1
        if not losses:
            break
        pv = predict(net, va["psi"], dev)
        val = float(np.mean(((pv - va["truth"]) / (n_max - n_min)) ** 2))
        history.append({"epoch": epoch, "train_mse": float(np.mean(losses)), "val_mse": val,
                        "minutes": (time.perf_counter() - t0) / 60})
        log(f"epoch {epoch}: train MSE {history[-1]['train_mse']:.3e}, val MSE {val:.3e}, "
            f"lr {opt.param_groups[0]['lr']:.2e}, {steps} steps, {(time.perf_counter() - t0) / 60:.1f} min")
        if val < best:
            best = val
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    t_train = time.perf_counter() - t0
    return {"best": best, "best_state": best_state, "epoch": epoch, "steps": steps, "history": history,
            "t_train": t_train}


def _held_out_metrics(net: BirefringenceGenerator, te: dict, dev, n_min: float, n_max: float, n_test: int,
                      log: TrainingLog) -> dict:
    """Held-out evaluation of ``n_test`` droplets: learned vs DTT vs constant n_m, against the simulator's truth."""
    t = time.perf_counter()
    pt = predict(net, te["psi"], dev, batch=1)
    t_pred = (time.perf_counter() - t) / n_test
    nm = TRAINING_SETUP["medium_index"]
    metrics = {"learned": evaluate(pt, te["truth"], te["params"], n_min, n_max),
               "dtt": evaluate(te["dtt"], te["truth"], te["params"], n_min, n_max),
               "constant_medium": evaluate(np.full_like(te["truth"], nm), te["truth"], te["params"], n_min, n_max)}
    metrics["seconds_per_droplet"] = {"learned_inputs_and_network": t_pred, "dtt": float(np.median(te["dtt_s"]))}
    strong = np.array([p["n_e"] - p["n_o"] > 0.1 for p in te["params"]])
    for label, sel in (("strong_delta_n_gt_0.1", strong), ("weak_delta_n_le_0.1", ~strong)):
        if sel.any():
            sub = [p for p, k in zip(te["params"], sel) if k]
            metrics[label] = {"count": int(sel.sum()),
                              "learned": evaluate(pt[sel], te["truth"][sel], sub, n_min, n_max),
                              "dtt": evaluate(te["dtt"][sel], te["truth"][sel], sub, n_min, n_max)}
    for route in ("learned", "dtt", "constant_medium"):
        m = metrics[route]
        log(f"test {route:16s}: n_e PSNR {m['n_e']['psnr_db']:.2f} dB SSIM {m['n_e']['ssim']:.3f} "
            f"inside err {m['n_e']['inside_mean_error']:+.4f}; n_o PSNR {m['n_o']['psnr_db']:.2f} dB "
            f"SSIM {m['n_o']['ssim']:.3f} inside err {m['n_o']['inside_mean_error']:+.4f}")
    return metrics


def _generator_card(name: str, fit: dict, metrics: dict, *, n_split: tuple[int, int, int], lr: float, lr_final: float,
                    batch_size: int, seed: int, t_data: float, dev) -> dict:
    """The model card of a trained generator (``fit`` from :func:`_fit`, ``n_split`` = train/val/test droplets)."""
    arch = dict(DEFAULT_ARCHITECTURE)
    n_min, n_max = float(arch["n_min"]), float(arch["n_max"])
    n_train, n_val, n_test = n_split
    card = {
        "name": name,
        "version": "1.0.0",
        "description": "Learned generator of n_e and n_o volumes of liquid-crystal droplets from "
                       "polarisation-resolved multi-angle fields (Encoder-3D-ConvGRU-Attention-Decoder).",
        "reference": "Kim et al., Sci. Rep. 14 (2024); Shin et al., Nat. Mater. 21, 317 (2022)",
        "input": {
            "kind": "jones-rytov-lifted",
            "description": "psi = log J (engine.birefringence.jones_rytov) of the Jones fields, Fourier-resampled "
                           "to voxel_um, angular-spectrum refocused to every output z-plane, mean over windows "
                           "of `window` consecutive illuminations: (T, 8, D, H, W), channels Re/Im of psi_xx, "
                           "psi_xy, psi_yx, psi_yy, times input_scale",
            "window": WINDOW, "input_scale": INPUT_SCALE, "voxel_um": TRAINING_SETUP["voxel_um"],
            "depth_um": TRAINING_SETUP["shape_zyx"][0] * TRAINING_SETUP["voxel_um"],
            "setup": TRAINING_SETUP,
        },
        "output": {"channels": ["n_e", "n_o"], "n_min": n_min, "n_max": n_max,
                   "squash": "n_min + (n_max - n_min) * sigmoid",
                   "director": "none: the network outputs no director; reconstruct_tensor_learned(director='dtt') "
                               "takes it from first-order DTT, director='none' (default) leaves it zero"},
        "outputs_director": False,
        "training": {
            "data": f"{n_train} train / {n_val} validation / {n_test} test simulated droplets, split by droplet "
                    f"(seeds [seed, split, index]); bipolar/radial, radius 1.0-2.4 um, centre +-0.5 um, n_o 1.50-1.54, "
                    f"n_e - n_o 0.02-0.20, n_m 1.46, Jones-matrix multi-slice simulator (propagate_vectorial), "
                    f"complex noise sigma 0-0.03 per Jones element",
            "target": "simulator ground truth n_e, n_o (n_m outside the droplet), not DTT: first-order DTT "
                      "underestimates the birefringence of strong droplets and the network would learn its bias",
            "loss": "MSE on the output scaled to [0, 1] over [n_min, n_max]",
            "optimizer": f"Adam, lr {lr:g} cosine-decayed to {lr_final:g} over the time budget (paper: 1e-4 "
                         f"constant, too slow for this budget), batch {batch_size}",
            "seed": seed, "epochs": fit["epoch"], "steps": fit["steps"], "minutes": fit["t_train"] / 60,
            "data_minutes": t_data / 60, "device": str(dev), "threads": torch.get_num_threads(),
            "best_val_mse": fit["best"], "history": fit["history"],
        },
        "metrics": {"test_droplets": n_test,
                    "definition": "per droplet, then mean: PSNR with each volume scaled to 0-255 over [n_min, n_max]; "
                                  "SSIM skimage 3-D data_range 255; inside_mean_error = mean(pred - truth) over "
                                  "voxels fully inside the droplet; same truth for every route",
                    **metrics},
    }
    return card


def train(n_droplets: int = 1000, minutes: float = 40.0, device: str = "cpu", out_dir: Path = MODELS_DIR,
          cache_dir: Path = Path("/tmp/odt-birefringence-generator"), seed: int = 0, batch_size: int = 4,
          lr: float = 1e-3, lr_final: float = 1e-4, threads: Optional[int] = 1,
          name: str = DEFAULT_GENERATOR_NAME) -> dict:
    """Simulate, train within ``minutes``, evaluate on the test split, write weights, card and log."""
    if threads:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / f"{name}.log"
    log = TrainingLog(log_path)

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    n_val = n_test = max(4, n_droplets // 10)
    n_train = n_droplets - n_val - n_test
    log(f"device {dev}, threads {torch.get_num_threads()}; {n_train} train / {n_val} val / {n_test} test droplets")
    tr = make_dataset("train", n_train, seed, cache_dir, dev, log=log)
    va = make_dataset("val", n_val, seed, cache_dir, dev, log=log)
    te = make_dataset("test", n_test, seed, cache_dir, dev, with_dtt=True, log=log)
    t_data = time.perf_counter() - t_start
    arch = dict(DEFAULT_ARCHITECTURE)
    n_min, n_max = float(arch["n_min"]), float(arch["n_max"])
    net = build_generator(arch).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    budget = minutes * 60.0
    fit = _fit(net, opt, tr, va, n_train=n_train, batch_size=batch_size, lr=lr, lr_final=lr_final,
               budget=budget, seed=seed, dev=dev, log=log)
    net.load_state_dict(fit["best_state"])
    metrics = _held_out_metrics(net, te, dev, n_min, n_max, n_test, log)
    card = _generator_card(name, fit, metrics, n_split=(n_train, n_val, n_test), lr=lr, lr_final=lr_final,
                           batch_size=batch_size, seed=seed, t_data=t_data, dev=dev)
    written = save_generator(net.cpu(), out_dir / f"{name}.safetensors", card)
    size = (out_dir / f"{name}.safetensors").stat().st_size
    log(f"wrote {out_dir / (name + '.safetensors')} ({size / 1e6:.2f} MB, {written['parameters']} parameters); "
        f"total {(time.perf_counter() - t_start) / 60:.1f} min")
    log.close()
    return written


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.training.birefringence_generator",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--n-droplets", type=int, default=1000, help="droplets in total (80/10/10 %% split)")
    ap.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--out-dir", type=Path, default=MODELS_DIR)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/odt-birefringence-generator"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--name", default=DEFAULT_GENERATOR_NAME)
    a = ap.parse_args(argv)
    train(a.n_droplets, a.minutes, a.device, a.out_dir, a.cache_dir, a.seed, a.batch_size, a.lr,
          threads=a.threads or None, name=a.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
