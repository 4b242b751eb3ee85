"""Training pairs and training of the learned 3-D regulariser (DeepRegularizer).

Run as ``python -m engine.training.deep_regularizer --help``. Three sub-commands:

``generate``
    Simulated phantoms (beads, bacteria, suspension cells, adherent cells) under several
    optical setups → fields by multi-slice propagation (:func:`engine.simulate.propagate_scalar`,
    a more exact physics than the reconstruction's) with a little complex field noise → the raw
    Rytov tomogram (no non-negativity) and its TV counterpart (:func:`engine.tomography.regularize_tv`
    with the project's defaults: τ = 5e-4, 30 outer × 20 inner iterations, non-negativity).
    One ``.npz`` per sample in a cache folder (default ``/tmp/odt-deepreg-cache``, never in
    the repository). The split is by sample: the seed decides train, validation or test
    (:func:`split_of`). One pair takes about 2.5 s on one CPU thread.
``train``
    Adam + L2 loss on (raw → TV) pairs with flip/rotation augmentation (rotations by 90° about z,
    flips of x, y), on the CPU or ``--device cuda``; the checkpoint with the lowest validation
    loss is kept; writes ``resources/models/deep_regularizer.safetensors`` (fp16), its JSON card
    and a training log, then scores the held-out pairs.
``evaluate``
    SSIM / MSE against TV on held-out samples and the bead axial elongation (FWHM z / FWHM x),
    raw vs TV vs deep.

Conventions (``docs/formats.md``): µm, cycles/µm, volumes (z, y, x), voxel ``j`` of ``n`` at
``(j − n//2)·d``; fields ``exp(+i(k·r − ωt))`` (n > n_m gives a positive phase).

References
----------
D. Ryu, D. Ryu, Y. Baek, H. Cho, G. Kim, Y. S. Kim, Y. Lee, Y. Kim, J. C. Ye, H.-S. Min and
Y. Park, "DeepRegularizer: rapid resolution enhancement of tomographic imaging using deep
learning", IEEE Trans. Med. Imaging 40, 1508 (2021) / IEEE JSTQE (2021).
J. Lim et al., "Comparative study of iterative reconstruction algorithms for missing cone
problems in optical diffraction tomography", Opt. Express 23, 16933 (2015).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..metrics import fwhm_ratio, ssim3d
from .ema import WeightEMA
from ..progress import CancelToken, check_cancel, report

__all__ = [
    "GENERATOR_VERSION",
    "OpticalSetup",
    "SETUPS",
    "SAMPLE_KINDS",
    "DEFAULT_CACHE",
    "TrainingPair",
    "simulate_pair",
    "generate_pairs",
    "load_pairs",
    "split_of",
    "VALIDATION_FIRST_SEED",
    "augment",
    "train_model",
    "WeightEMA",
    "evaluate",
    "bead_phase_delay",
    "PHASE_DELAY_BINS_RAD",
    "bead_elongation_study",
    "save_pair",
    "read_pair",
    "training_domain",
    "training_domain_v1",
    "main",
]

GENERATOR_VERSION = "deepreg-pairs/1"
DEFAULT_CACHE = Path(os.environ.get("ODT_DEEPREG_CACHE", "/tmp/odt-deepreg-cache"))
SAMPLE_KINDS = ("beads", "bacteria", "cells-suspension", "cells-adherent")
VOLUME_SHAPE = (64, 64, 64)


@dataclasses.dataclass(frozen=True)
class OpticalSetup:
    """One simulated microscope (illumination scanning).

    Attributes
    ----------
    name : str
    wavelength_um : float
        Vacuum wavelength, µm.
    medium_index : float
        n_m.
    na_objective, na_condenser : float
        Objective NA (pupil) and the largest illumination NA.
    n_angles : int
        Illuminations (Fermat spiral within the condenser NA, the first at normal incidence).
    field_noise : float
        RMS of the complex Gaussian noise added to the normalised fields (≈ 1/SNR).
    """

    name: str
    wavelength_um: float
    medium_index: float
    na_objective: float
    na_condenser: float
    n_angles: int
    field_noise: float


SETUPS: tuple[OpticalSetup, ...] = (
    OpticalSetup("green-1.2", 0.532, 1.337, 1.20, 1.10, 49, 0.02),
    OpticalSetup("blue-1.0", 0.457, 1.337, 1.00, 0.90, 31, 0.03),
    OpticalSetup("red-1.16", 0.633, 1.333, 1.16, 1.00, 41, 0.015),
)


@dataclasses.dataclass
class TrainingPair:
    """One simulated sample: raw Rytov tomogram, its TV counterpart and the truth.

    Attributes
    ----------
    raw, tv, truth : ndarray, shape (Z, Y, X), float32
        Refractive index: plain Rytov (no constraint), TV + non-negativity, and the phantom.
    medium_index : float
    voxel_size_um : (dz, dy, dx)
    kind : str
        One of :data:`SAMPLE_KINDS`.
    seed : int
    setup : str
        :class:`OpticalSetup` name.
    objects : list of dict
        Phantom truth (for bead centres and radii).
    setup_params : dict
        The setup itself (``deepreg-pairs/2``: NA, illuminations, pattern, λ, n_m, voxel, noise); empty for
        ``deepreg-pairs/1``, whose setups are named in :data:`SETUPS`.
    """

    raw: np.ndarray
    tv: np.ndarray
    truth: np.ndarray
    medium_index: float
    voxel_size_um: tuple[float, float, float]
    kind: str
    seed: int
    setup: str
    objects: list
    setup_params: dict = dataclasses.field(default_factory=dict)


VALIDATION_FIRST_SEED = 20
SPLIT_RULE = (f"by sample: seed % 5 == 4 held out (test); seed % 5 == 3 and seed >= {VALIDATION_FIRST_SEED} "
              "validation (checkpoint choice); the rest train")


def split_of(seed: int) -> str:
    """The split of a sample, decided by its seed alone (a split by sample).

    ``"test"`` (held out, never seen in training or model selection) for seed % 5 == 4;
    ``"val"`` (validation: learning-curve logging and the choice of the checkpoint) for
    seed % 5 == 3 from seed :data:`VALIDATION_FIRST_SEED` on (the seeds below it were generated,
    and trained on, before the validation split existed); ``"train"`` otherwise.
    """
    if seed % 5 == 4:
        return "test"
    if seed % 5 == 3 and seed >= VALIDATION_FIRST_SEED:
        return "val"
    return "train"


def _voxel_for(kind: str, setup: OpticalSetup, rng: np.random.Generator) -> float:
    # Nyquist for the objective's band (λ / (2 NA)) and the field of view that fits the sample.
    nyquist = setup.wavelength_um / (2 * setup.na_objective)
    if kind.startswith("cells"):
        return float(min(0.2, 0.95 * nyquist))
    return float(min(rng.uniform(0.08, 0.12), 0.95 * nyquist))


def simulate_pair(kind: str, seed: int, setup: Optional[OpticalSetup] = None, *,
                  shape: Sequence[int] = VOLUME_SHAPE, tv_weight: Optional[float] = None,
                  tv_outer_iterations: int = 30, tv_inner_iterations: int = 20,
                  device: str = "cpu", phantom_kwargs: Optional[dict] = None) -> TrainingPair:
    """Simulate one training pair (raw Rytov tomogram → TV tomogram).

    Parameters
    ----------
    kind : {"beads", "bacteria", "cells-suspension", "cells-adherent"}
    seed : int
        Decides the phantom, the setup (if not given), the voxel size and the noise.
    setup : OpticalSetup, optional
        Default: ``SETUPS[seed % len(SETUPS)]``.
    shape : (Z, Y, X)
        Volume in voxels (the fields are Y × X; the tomogram has the same shape).
    tv_weight, tv_outer_iterations, tv_inner_iterations
        TV parameters (default: the project's, :data:`engine.tomography.tv.DEFAULT_TV_WEIGHT`).
    device : str
        Torch device for propagation and reconstruction.
    phantom_kwargs : dict, optional
        Extra arguments for the phantom generator (e.g. ``{"count": 1, "material": "silica"}``).

    Returns
    -------
    TrainingPair
    """
    from ..simulate.beam_propagation import propagate_scalar, snap_illuminations
    from ..simulate.holograms import illumination_pattern
    from ..simulate.phantoms import make_phantom
    from ..tomography.fourier_mapping import map_fields_to_fourier, scattering_potential_to_ri
    from ..tomography.reconstruct import first_order_fields
    from ..tomography.tv import DEFAULT_TV_WEIGHT, regularize_tv

    if kind not in SAMPLE_KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {SAMPLE_KINDS}")
    rng = np.random.default_rng([seed, SAMPLE_KINDS.index(kind), 7919])
    setup = setup or SETUPS[seed % len(SETUPS)]
    vox = _voxel_for(kind, setup, rng)
    shape = tuple(int(s) for s in shape)
    nm = setup.medium_index
    extra = dict(phantom_kwargs or {})
    if kind == "beads":
        extra.setdefault("radius_range_um", (0.4, 1.6))
        ph = make_phantom("beads", shape, (vox,) * 3, nm, rng, **extra)
    elif kind == "bacteria":
        ph = make_phantom("bacteria", shape, (vox,) * 3, nm, rng, **extra)
    else:
        ph = make_phantom("cells", shape, (vox,) * 3, nm, rng, morphology=kind.split("-")[1], **extra)
    ill = illumination_pattern(setup.n_angles, setup.na_condenser, setup.wavelength_um)
    ill = snap_illuminations(ill, shape[1:], (vox, vox))
    fields = propagate_scalar(ph, setup.wavelength_um, ill, setup.na_objective, device=device)
    if setup.field_noise > 0:
        noise = rng.standard_normal(fields.shape + (2,)).astype(np.float32) * (setup.field_noise / math.sqrt(2))
        fields = fields + (noise[..., 0] + 1j * noise[..., 1]).astype(np.complex64)
    psi = first_order_fields(fields, "rytov", device=device)
    data = map_fields_to_fourier(psi, ill, wavelength_um=setup.wavelength_um, medium_index=nm,
                                 na=setup.na_objective, pixel_size_um=vox, shape_z=shape[0], device=device)
    raw = scattering_potential_to_ri(torch.fft.ifftn(data.spectrum).real, nm).float().cpu().numpy()
    xt = regularize_tv(data, weight=DEFAULT_TV_WEIGHT if tv_weight is None else tv_weight,
                       outer_iterations=tv_outer_iterations, inner_iterations=tv_inner_iterations,
                       non_negativity=True)
    tv = scattering_potential_to_ri(xt, nm).float().cpu().numpy()
    return TrainingPair(raw=raw.astype(np.float32), tv=tv.astype(np.float32), truth=ph.ri.astype(np.float32),
                        medium_index=float(nm), voxel_size_um=(vox, vox, vox), kind=kind, seed=int(seed),
                        setup=setup.name, objects=list(ph.params.get("objects", [])))


def training_domain_v1() -> dict:
    """The model-card ``domain`` of a model trained on ``deepreg-pairs/1`` (the shipped 2.x models).

    Derived from :data:`SETUPS`, :func:`_voxel_for` and :func:`simulate_pair`, not written by hand:
    Fermat-spiral illuminations (``illumination_pattern``'s default), voxel 0.08–0.12 µm for beads
    and bacteria and min(0.2, 0.95·λ/(2 NA)) µm for cells, beads of radius 0.4–1.6 µm
    (silica 1.46 or polystyrene 1.598), 64³ volumes.
    """
    from ..simulate.phantoms import BEAD_MATERIALS

    def span(values) -> list:
        return [float(min(values)), float(max(values))]

    cell_vox = [min(0.2, 0.95 * s.wavelength_um / (2 * s.na_objective)) for s in SETUPS]
    bead_vox = [min(v, 0.95 * s.wavelength_um / (2 * s.na_objective)) for s in SETUPS for v in (0.08, 0.12)]
    delays = [2 * math.pi * (n - s.medium_index) * 2 * r / s.wavelength_um
              for s in SETUPS for n in BEAD_MATERIALS.values() for r in (0.4, 1.6)]
    return {"generator": GENERATOR_VERSION, "source": "engine.training.deep_regularizer.training_domain_v1",
            "na_objective": span([s.na_objective for s in SETUPS]),
            "illumination_na_fraction": span([s.na_condenser / s.na_objective for s in SETUPS]),
            "n_illuminations": [min(s.n_angles for s in SETUPS), max(s.n_angles for s in SETUPS)],
            "illumination_patterns": ["spiral"],
            "voxel_um": span(cell_vox + bead_vox), "medium_index": span([s.medium_index for s in SETUPS]),
            "wavelength_um": span([s.wavelength_um for s in SETUPS]), "field_noise": span([s.field_noise for s in SETUPS]),
            "sample_kinds": list(SAMPLE_KINDS), "bead_materials": dict(BEAD_MATERIALS), "bead_radius_um": [0.4, 1.6],
            "bead_max_phase_delay_rad": span(delays), "volume_voxels": list(VOLUME_SHAPE),
            "setups": [dataclasses.asdict(s) for s in SETUPS],
            "note": "three fixed setups, not a continuum: between them (e.g. NA 1.1 at 0.532 um) is untested"}


def training_domain(generators: Sequence[str], max_bead_phase_rad: float = 3.0) -> dict:
    """The model-card ``domain`` of a model trained on pairs of ``generators``.

    One generator: :func:`training_domain_v1` or
    :func:`~engine.training.deep_regularizer_data.domain_of_ranges`. Both: each range is the
    union of the two (``deepreg-pairs/1`` adds voxels up to 0.2 µm; its other setups lie inside
    ``deepreg-pairs/2``'s ranges), beads below ``max_bead_phase_rad`` only (the training filter,
    :func:`first_order_only`), and only the medium-index band stays never trained on: two
    ``deepreg-pairs/1`` setups (NA 1.16 and 1.20) lie in the NA band that ``deepreg-pairs/2``
    holds out.
    """
    from .deep_regularizer_data import GENERATOR_V2, domain_of_ranges

    gens = set(generators)
    if gens == {GENERATOR_VERSION}:
        v1 = training_domain_v1()
        lo, hi = v1["bead_max_phase_delay_rad"]
        v1["bead_max_phase_delay_rad"] = [lo, min(hi, max_bead_phase_rad)]
        return v1
    if gens == {GENERATOR_V2}:
        return domain_of_ranges()
    v1, out = training_domain_v1(), domain_of_ranges()
    for key, value in out.items():
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            out[key] = [min(value[0], v1[key][0]), max(value[1], v1[key][1])]
    out["generator"] = " + ".join(sorted(gens))
    out["sample_kinds"] = sorted(set(out["sample_kinds"]) | set(v1["sample_kinds"]))
    out["bead_max_phase_delay_rad"] = max_bead_phase_rad
    out["fixed_setups_deepreg_pairs_1"] = v1["setups"]
    out["not_trained_on"] = {"medium_index": out["not_trained_on"]["medium_index"],
                             "note": "the medium-index band held out for the deepreg-pairs/2 test split; its NA "
                                     "band is not: deepreg-pairs/1 trains at NA 1.16 and 1.20"}
    return out


def _pair_path(cache: Path, kind: str, seed: int) -> Path:
    return cache / f"{kind}_{seed:04d}.npz"


def save_pair(pair: TrainingPair, path: Path) -> None:
    """Write a pair as ``.npz`` (atomic: temporary file, then rename)."""
    meta = {"medium_index": pair.medium_index, "voxel_size_um": list(pair.voxel_size_um), "kind": pair.kind,
            "seed": pair.seed, "setup": pair.setup, "objects": pair.objects,
            "generator": pair.setup_params.get("generator", GENERATOR_VERSION), "setup_params": pair.setup_params}
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, raw=pair.raw, tv=pair.tv, truth=pair.truth,
                        meta=np.asarray(json.dumps(meta, default=float)))
    os.replace(tmp, path)


def read_pair(path: Path) -> TrainingPair:
    """Read a pair written by :func:`save_pair`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return TrainingPair(raw=z["raw"], tv=z["tv"], truth=z["truth"], medium_index=float(meta["medium_index"]),
                            voxel_size_um=tuple(meta["voxel_size_um"]), kind=meta["kind"], seed=int(meta["seed"]),
                            setup=meta["setup"], objects=meta["objects"], setup_params=meta.get("setup_params", {}))


def generate_pairs(cache: Path = DEFAULT_CACHE, *, per_kind: int = 10, kinds: Sequence[str] = SAMPLE_KINDS,
                   first_seed: int = 0, log: Callable[[str], None] = print,
                   progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None) -> list[Path]:
    """Simulate ``per_kind`` pairs of each kind into ``cache`` (existing files are kept).

    Kinds are interleaved (seed-major) so that an interrupted run still holds every kind.
    """
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    jobs = [(k, s) for s in range(first_seed, first_seed + per_kind) for k in kinds]
    for i, (kind, seed) in enumerate(jobs):
        check_cancel(cancel)
        p = _pair_path(cache, kind, seed)
        if not p.exists():
            t0 = time.perf_counter()
            pair = simulate_pair(kind, seed)
            save_pair(pair, p)
            log(f"[generate] {p.name} setup={pair.setup} voxel={pair.voxel_size_um[0]:.3f} um "
                f"split={split_of(seed)} {time.perf_counter() - t0:.1f} s")
        paths.append(p)
        report(progress, (i + 1) / len(jobs), f"pair {i + 1}/{len(jobs)}")
    return paths


def load_pairs(cache: Path = DEFAULT_CACHE, split: Optional[str] = None,
               kinds: Optional[Sequence[str]] = None) -> list[TrainingPair]:
    """All cached pairs of a split (``"train"``, ``"test"`` or None for both) and kinds."""
    out = []
    for p in sorted(Path(cache).glob("*.npz")):
        if p.name.endswith(".tmp.npz"):
            continue
        kind, seed = p.stem.rsplit("_", 1)
        if kinds is not None and kind not in kinds:
            continue
        if split is not None and split_of(int(seed)) != split:
            continue
        out.append(read_pair(p))
    return out



# --------------------------------------------------------------------------- training
def augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random rotation by k·90° about z and flips of y and x on input and target.

    Only symmetries of the illumination-scanning geometry are used (the missing cone is a
    cone about z): no flips of z, no rotations that tilt z.

    Parameters
    ----------
    x, y : torch.Tensor, shape (..., Z, Y, X)
    """
    k = int(rng.integers(0, 4))
    if k:
        x, y = torch.rot90(x, k, dims=(-2, -1)), torch.rot90(y, k, dims=(-2, -1))
    for d in (-2, -1):
        if rng.random() < 0.5:
            x, y = torch.flip(x, dims=(d,)), torch.flip(y, dims=(d,))
    return x, y


def _normalised(pairs: Sequence[TrainingPair], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack([(p.raw - np.float32(p.medium_index)) / np.float32(scale) for p in pairs]))
    y = torch.from_numpy(np.stack([(p.tv - np.float32(p.medium_index)) / np.float32(scale) for p in pairs]))
    return x[:, None].contiguous(), y[:, None].contiguous()


class VolumeGroups:
    """Normalised (input, target) tensors of training pairs, grouped by volume shape.

    One training set may then hold volumes of several sizes (the 64³ pairs of ``deepreg-pairs/1``
    and the 48³ pairs of ``deepreg-pairs/2``): a training batch is drawn from one group, the group
    chosen with a probability proportional to its number of pairs, so that every pair is drawn
    equally often. The relative weights (``1 / mean(y²)`` per sample) are normalised to mean 1
    over all groups together.

    Parameters
    ----------
    pairs : sequence of TrainingPair
    scale : float
        Δn normalisation (``(n - n_m) / scale``).
    """

    def __init__(self, pairs: Sequence[TrainingPair], scale: float) -> None:
        by_shape: dict = {}
        for p in pairs:
            by_shape.setdefault(tuple(p.raw.shape), []).append(p)
        self.groups = [_normalised(g, scale) for g in by_shape.values()]
        self.sizes = np.array([x.shape[0] for x, _ in self.groups], dtype=np.int64)
        raw = [1.0 / (y ** 2).mean(dim=(1, 2, 3, 4)).clamp(min=1e-4) for _, y in self.groups]  # 1 / mean(y²)
        mean = float(torch.cat(raw).mean()) if raw else 1.0
        self.weights = [(w / mean).float() for w in raw]

    def __len__(self) -> int:
        return int(self.sizes.sum())

    def draw(self, batch_size: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """A group index and ``batch_size`` random sample indices within it."""
        g = int(rng.choice(len(self.sizes), p=self.sizes / self.sizes.sum()))
        return g, rng.integers(0, int(self.sizes[g]), batch_size)

    def samples(self):
        """Each sample as ``(x, y, relative weight)``, x and y of shape (1, 1, Z, Y, X)."""
        for (x, y), w in zip(self.groups, self.weights):
            for i in range(x.shape[0]):
                yield x[i:i + 1], y[i:i + 1], float(w[i])


def _set_cosine_lr(opt: torch.optim.Optimizer, lr: float, lr_min: float, frac: float) -> None:
    """Cosine decay from ``lr`` (``frac`` = 0) to ``lr_min`` (``frac`` = 1)."""
    for g in opt.param_groups:
        g["lr"] = lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * frac))


def _restore_best(net: torch.nn.Module, best: dict, log: Callable[[str], None]) -> None:
    """Load the best validation checkpoint ``best`` (keys ``state``, ``step``, ``loss``) into ``net``."""
    net.load_state_dict(best["state"])
    log(f"[train] kept the checkpoint of step {best['step']} (lowest relative validation L2 {best['loss']:.6f})")


def _train_step(net: torch.nn.Module, opt: torch.optim.Optimizer, data: VolumeGroups, batch_size: int,
                crop: int, rng: np.random.Generator, dev: torch.device, relative_weighting: bool = True) -> float:
    """One Adam step on the weighted L2 of random augmented crops of a random batch of ``data``; the loss."""
    g, idx = data.draw(batch_size, rng)
    xs, ys = data.groups[g]
    bx, by = (t.to(dev) for t in _random_batch(xs, ys, idx, crop, rng))
    w = data.weights[g][torch.as_tensor(idx)] if relative_weighting else torch.ones(len(idx))
    bw = w.view(-1, 1, 1, 1, 1).to(dev)
    loss = (bw * (net(bx) - by) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _initial_net(net: torch.nn.Module, init_state: Optional[dict], log: Callable[[str], None]) -> torch.nn.Module:
    """``net`` with the tensors of ``init_state`` whose name and shape match (a warm start, possibly
    across normalisations: batch-norm running statistics are then left out)."""
    if init_state is None:
        return net
    own = net.state_dict()
    match = {k: v.float() for k, v in init_state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    net.load_state_dict(match, strict=False)
    if len(match) != len(own) or len(match) != len(init_state):
        log(f"[train] warm start: {len(match)} of {len(own)} tensors loaded ({len(init_state)} in the initial state)")
    return net


def _random_batch(xs: torch.Tensor, ys: torch.Tensor, idx: np.ndarray, crop: int,
                  rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``crop``³ crops of the samples ``idx`` of (B, 1, Z, Y, X) inputs and targets, augmented alike."""
    Z, Y, X = xs.shape[2:]
    bx, by = [], []
    for i in idx:
        a, b, c = (int(rng.integers(0, s - crop + 1)) for s in (Z, Y, X))
        xi, yi = augment(xs[i, :, a:a + crop, b:b + crop, c:c + crop], ys[i, :, a:a + crop, b:b + crop, c:c + crop], rng)
        bx.append(xi)
        by.append(yi)
    return torch.stack(bx).contiguous(), torch.stack(by).contiguous()


def train_model(train: Sequence[TrainingPair], *, val: Sequence[TrainingPair] = (), channels=(16, 32, 64),
                stem_factor: int = 2, minutes: float = 20.0, max_steps: Optional[int] = None, batch_size: int = 2,
                crop: int = 48, lr: float = 1e-3, lr_min: float = 1e-5, scale: Optional[float] = None,
                seed: int = 0, relative_weighting: bool = True, log: Callable[[str], None] = print,
                val_every_s: float = 240.0, init_state: Optional[dict] = None, keep_best: bool = False,
                device: str = "cpu", cancel: Optional[CancelToken] = None, norm: str = "batch",
                ema_decay: float = 0.0):
    """Train a :class:`~engine.tomography.deep_regularizer.UNet3D` on (raw → TV) pairs.

    Adam with a cosine learning-rate decay from ``lr`` to ``lr_min`` over the time budget
    (``minutes``; or over ``max_steps`` if given), L2 loss on the normalised Δn, random
    ``crop``³ crops and :func:`augment`. Returns ``(net, history)``.

    With ``relative_weighting`` each sample's squared error is divided by the mean square of its
    whole target volume (weights normalised to mean 1), so that strongly scattering beads
    (Δn up to 0.26) do not drown the cells and bacteria (Δn ≈ 0.02–0.06) in the L2 loss.

    ``init_state`` (a state dict of the same architecture) warm-starts the network, so that a
    CPU budget can be spent in several sessions (``train --init default``).

    ``val`` pairs (the ``"val"`` split, never the held-out test pairs) are scored every
    ``val_every_s`` seconds; with ``keep_best`` the network returned is the checkpoint with the
    lowest *relative* validation L2 (early stopping), recorded as ``history["best_step"]``: each
    validation sample's mean squared error weighted as in the training loss, so that the choice
    follows the per-volume quality (what SSIM measures) rather than the few strongly
    scattering beads, whose plain L2 is tens of times that of a cell.

    ``norm`` picks the normalisation (``"group"``: GroupNorm, per-sample statistics, for batches
    of 1–2). With ``ema_decay`` > 0 an exponential moving average of the weights (:class:`WeightEMA`)
    is kept; validation, the checkpoint choice and the returned network then use the averaged
    weights. ``init_state`` may come from another normalisation: the tensors whose name and shape
    match are loaded (convolutions, and the affine scale and shift of the norms), the rest keep
    their initialisation.

    Notes
    -----
    The paper trains with Adam at 1e-4 for many epochs on a GPU; this CPU budget allows only a
    few thousand steps, where 1e-4 has not converged, hence 1e-3 with a cosine decay.
    """
    from ..tomography.deep_regularizer import DEFAULT_DELTA_N_SCALE, UNet3D

    scale = float(scale or DEFAULT_DELTA_N_SCALE)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device(device)
    net = _initial_net(UNet3D(channels, stem_factor=stem_factor, norm=norm), init_state, log).to(dev)
    averaged = WeightEMA(net, ema_decay) if ema_decay > 0 else None
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    data = VolumeGroups(train, scale)
    val_data = VolumeGroups(val, scale) if len(val) else None
    if val_data is not None:
        ident_per = np.array([float(((x - y) ** 2).mean()) for x, y, _ in val_data.samples()])
        val_weights = np.array([w for _, _, w in val_data.samples()])
        ident, ident_rel = float(ident_per.mean()), float(np.mean(ident_per * val_weights))
    budget = minutes * 60.0
    t0 = time.perf_counter()
    history = {"step": [], "loss": [], "val_step": [], "val_loss": [], "val_relative_loss": [],
               "val_identity_loss": []}
    step, loss_ema, last_val = 0, None, t0

    best: dict = {"loss": math.inf, "step": None, "state": None}

    def validate() -> None:
        if val_data is None:
            return
        vnet = averaged.net if averaged is not None else net
        vnet.eval()
        with torch.inference_mode():
            losses = np.array([float(((vnet(x.to(dev)) - y.to(dev)) ** 2).mean()) for x, y, _ in val_data.samples()])
        net.train()
        val = float(np.mean(losses))
        val_rel = float(np.mean(losses * val_weights))
        history["val_step"].append(step)
        history["val_loss"].append(val)
        history["val_relative_loss"].append(val_rel)
        history["val_identity_loss"].append(ident)
        if keep_best and val_rel < best["loss"]:
            best.update(loss=val_rel, step=step, state={k: v.detach().cpu().clone() for k, v in vnet.state_dict().items()})
        log(f"[train] step {step} validation L2 {val:.5f} (identity {ident:.5f}), relative L2 {val_rel:.6f} "
            f"(identity {ident_rel:.6f})" + (" best" if keep_best and best["step"] == step else ""))

    while True:
        check_cancel(cancel)
        elapsed = time.perf_counter() - t0
        frac = (step / max_steps) if max_steps else (elapsed / budget)
        if frac >= 1.0:
            break
        _set_cosine_lr(opt, lr, lr_min, frac)
        lv = _train_step(net, opt, data, batch_size, crop, rng, dev, relative_weighting)
        if averaged is not None:
            averaged.update(net)
        step += 1
        loss_ema = lv if loss_ema is None else 0.95 * loss_ema + 0.05 * lv
        if step % 25 == 0:
            history["step"].append(step)
            history["loss"].append(loss_ema)
            log(f"[train] step {step} t={elapsed:.0f}s lr={opt.param_groups[0]['lr']:.2e} loss(ema)={loss_ema:.5f}")
        if time.perf_counter() - last_val > val_every_s:
            validate()
            last_val = time.perf_counter()
    validate()
    history["steps"] = step
    history["seconds"] = time.perf_counter() - t0
    if averaged is not None:
        net = averaged.net
    if keep_best and best["state"] is not None and best["step"] != step:
        _restore_best(net, best, log)
    history["best_step"] = best["step"]
    history["best_val_loss"] = best["loss"] if best["step"] is not None else None
    net.eval()
    return net.cpu(), history


# --------------------------------------------------------------------------- bead study
PHASE_DELAY_BINS_RAD = (0.0, 3.0, 6.0, math.inf)


def bead_phase_delay(pair: TrainingPair) -> float:
    """Largest phase delay through a bead centre of a beads pair, rad: ``max 2π·(n_b − n_m)·2r/λ``.

    A measure of how far the sample lies outside first-order (Rytov) validity; the TV target
    of strongly delaying beads rings (peaks well above the true index), see :func:`evaluate`.
    """
    wavelength = float(pair.setup_params.get("wavelength_um", 0.0)) or {s.name: s.wavelength_um for s in SETUPS}[pair.setup]
    return float(max((2 * math.pi * (o["index"] - pair.medium_index) * 2 * o["radius_um"] / wavelength
                      for o in pair.objects if "index" in o and "radius_um" in o), default=0.0))


def first_order_only(pairs: Sequence[TrainingPair], max_phase_rad: float = 3.0) -> list[TrainingPair]:
    """``pairs`` without the beads whose largest phase delay (:func:`bead_phase_delay`) is ``max_phase_rad``
    or more: TV is a meaningful target only within first-order validity (#22's decision on beads)."""
    return [p for p in pairs if not p.kind.startswith("beads") or bead_phase_delay(p) < max_phase_rad]


def _phase_delay_bin(phi: float) -> str:
    for lo, hi in zip(PHASE_DELAY_BINS_RAD[:-1], PHASE_DELAY_BINS_RAD[1:]):
        if lo <= phi < hi:
            return f"{lo:g}-{hi:g} rad" if math.isfinite(hi) else f">= {lo:g} rad"
    return "?"


def evaluate(pairs: Sequence[TrainingPair], model, *, log: Callable[[str], None] = print) -> dict:
    """SSIM/MSE against TV (raw, raw clamped to n ≥ n_m, deep) and bead elongations, per kind.

    Beads are also summarised by their largest phase delay (:func:`bead_phase_delay`, bins
    :data:`PHASE_DELAY_BINS_RAD`), with ``tv_peak_over_truth``, the TV target's peak Δn over the
    true one (1 for a faithful target; TV rings on beads far outside Rytov validity).
    """
    from ..tomography.deep_regularizer import regularize_deep

    rows = []
    for p in pairs:
        t0 = time.perf_counter()
        deep = regularize_deep(p.raw, p.medium_index, model=model, device="cpu")
        dt = time.perf_counter() - t0
        raw_nn = np.maximum(p.raw, np.float32(p.medium_index))
        row = {"kind": p.kind, "seed": p.seed, "setup": p.setup, "deep_seconds": dt,
               "ssim_raw": ssim3d(p.raw, p.tv), "ssim_raw_nonneg": ssim3d(raw_nn, p.tv), "ssim_deep": ssim3d(deep, p.tv),
               "mse_raw": float(np.mean((p.raw - p.tv) ** 2)), "mse_raw_nonneg": float(np.mean((raw_nn - p.tv) ** 2)),
               "mse_deep": float(np.mean((deep - p.tv) ** 2))}
        if p.kind == "beads":
            row["phase_delay_rad"] = bead_phase_delay(p)
            row["tv_peak_over_truth"] = float((p.tv.max() - p.medium_index) / max(p.truth.max() - p.medium_index, 1e-9))
            el = {"raw": [], "tv": [], "deep": [], "truth": []}
            d = p.voxel_size_um[0]
            for obj in p.objects:
                c = [int(round(v / d)) + n // 2 for v, n in zip(obj["centre_um"], p.raw.shape)]
                for name, vol in (("raw", p.raw), ("tv", p.tv), ("deep", deep), ("truth", p.truth)):
                    el[name].append(fwhm_ratio(vol, c, p.medium_index))
            row["elongation"] = el
        rows.append(row)
        log(f"[eval] {p.kind}_{p.seed:04d} SSIM raw {row['ssim_raw']:.4f} raw+nn {row['ssim_raw_nonneg']:.4f} "
            f"deep {row['ssim_deep']:.4f}; MSE raw {row['mse_raw']:.2e} deep {row['mse_deep']:.2e}"
            + (f"; FWHMz/FWHMx (median of {len(row['elongation']['raw'])} beads) raw "
               f"{np.nanmedian(row['elongation']['raw']):.2f} tv {np.nanmedian(row['elongation']['tv']):.2f} "
               f"deep {np.nanmedian(row['elongation']['deep']):.2f}; phase delay {row['phase_delay_rad']:.1f} rad, "
               f"TV peak/true {row['tv_peak_over_truth']:.2f}" if "elongation" in row else ""))
    summary: dict = {"samples": len(rows), "per_sample": rows, "per_kind": {}}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        k = {m: float(np.mean([r[m] for r in sel])) for m in
             ("ssim_raw", "ssim_raw_nonneg", "ssim_deep", "mse_raw", "mse_raw_nonneg", "mse_deep", "deep_seconds")}
        k["ssim_deep_min"] = float(np.min([r["ssim_deep"] for r in sel]))
        k["n"] = len(sel)
        els = [r["elongation"] for r in sel if "elongation" in r]
        if els:
            # median over beads: a bead touching another or the volume edge gives an outlier ratio
            k["bead_elongation_fwhm_z_over_x"] = {m: float(np.nanmedian(sum((e[m] for e in els), [])))
                                                  for m in ("raw", "tv", "deep", "truth")}
        if kind == "beads":
            bins: dict = {}
            for r in sel:
                bins.setdefault(_phase_delay_bin(r["phase_delay_rad"]), []).append(r)
            k["by_phase_delay"] = {
                name: {"n": len(rs), "ssim_raw": float(np.mean([r["ssim_raw"] for r in rs])),
                       "ssim_deep": float(np.mean([r["ssim_deep"] for r in rs])),
                       "tv_peak_over_truth": float(np.mean([r["tv_peak_over_truth"] for r in rs]))}
                for name, rs in sorted(bins.items(), key=lambda kv: min(r["phase_delay_rad"] for r in kv[1]))}
        summary["per_kind"][kind] = k
    return summary


def bead_elongation_study(model, *, count: int = 3, first_seed: int = 9100,
                          log: Callable[[str], None] = print) -> dict:
    """Axial elongation FWHM_z / FWHM_x of fresh single, centred silica beads (Δn ≈ 0.12, where the
    Rytov approximation holds), raw vs TV vs deep vs truth, one bead per setup in turn.

    Multi-bead training volumes are not used for this: neighbouring beads merge in the profiles
    and polystyrene beads (Δn 0.26) break the Rytov approximation, so their FWHM is not a width.
    """
    from ..tomography.deep_regularizer import regularize_deep

    res: dict = {"raw": [], "tv": [], "deep": [], "truth": [], "radius_um": [], "setup": []}
    for i in range(count):
        seed = first_seed + i
        radius = 0.8 + 0.2 * i
        pair = simulate_pair("beads", seed, SETUPS[i % len(SETUPS)],
                             phantom_kwargs={"count": 1, "material": "silica", "radius_um": radius,
                                             "centre_um": (0.0, 0.0, 0.0)})
        deep = regularize_deep(pair.raw, pair.medium_index, model=model, device="cpu")
        c = [n // 2 for n in pair.raw.shape]
        for name, vol in (("raw", pair.raw), ("tv", pair.tv), ("deep", deep), ("truth", pair.truth)):
            res[name].append(fwhm_ratio(vol, c, pair.medium_index))
        res["radius_um"].append(radius)
        res["setup"].append(pair.setup)
        log(f"[beads] silica r={radius:.1f} um {pair.setup}: FWHMz/FWHMx raw {res['raw'][-1]:.2f} "
            f"tv {res['tv'][-1]:.2f} deep {res['deep'][-1]:.2f} truth {res['truth'][-1]:.2f}")
    res["mean"] = {k: float(np.mean(res[k])) for k in ("raw", "tv", "deep", "truth")}
    res["median"] = {k: float(np.median(res[k])) for k in ("raw", "tv", "deep", "truth")}
    return res


def _logger(path: Optional[Path]) -> Callable[[str], None]:
    """Log lines to stdout and appended to ``path`` (a warm-started run continues the log)."""
    from ..models import TrainingLog

    return TrainingLog(path, append=True)


def _parser() -> argparse.ArgumentParser:
    """The command line: ``generate``, ``train``, ``evaluate``."""
    from ..models import MODELS_DIR

    ap = argparse.ArgumentParser(prog="python -m engine.training.deep_regularizer",
                                 description="Training pairs and training of the learned 3-D regulariser.")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="simulate (raw Rytov, TV) pairs into the cache")
    g.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    g.add_argument("--per-kind", type=int, default=20)
    g.add_argument("--first-seed", type=int, default=0)
    t = sub.add_parser("train", help="train the U-Net and write safetensors + card + log")
    t.add_argument("--cache", type=Path, nargs="+", default=[DEFAULT_CACHE],
                   help="one or more pair caches (volumes of different sizes may be mixed)")
    t.add_argument("--out", type=Path, default=MODELS_DIR / "deep_regularizer.safetensors")
    t.add_argument("--kinds", nargs="*", default=list(SAMPLE_KINDS), help="train on these kinds only")
    t.add_argument("--max-bead-phase", type=float, default=3.0,
                   help="train and validate only on beads whose largest phase delay is below this, rad")
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=2)
    t.add_argument("--crop", type=int, default=48)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lr-min", type=float, default=1e-5)
    t.add_argument("--val-every-s", type=float, default=240.0, help="validation interval, seconds")
    t.add_argument("--version", default="1.0.0", help="version written to the model card")
    t.add_argument("--device", default="cpu", help="torch device for training (cpu, cuda)")
    t.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", default=None,
                   help="warm start from this model (name or path, e.g. 'default'); its channels are used")
    t.add_argument("--norm", choices=("batch", "group"), default="batch", help="BatchNorm3d or GroupNorm")
    t.add_argument("--ema-decay", type=float, default=0.0,
                   help="keep an EMA of the weights (e.g. 0.998): validation and checkpoint choice use it")
    t.add_argument("--skip-held-out", action="store_true", help="do not score the held-out pairs after training")
    e = sub.add_parser("evaluate", help="SSIM/MSE vs TV and bead elongation on held-out pairs")
    e.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    e.add_argument("--model", default="default")
    e.add_argument("--kinds", nargs="*", default=list(SAMPLE_KINDS))
    e.add_argument("--json", type=Path, default=None, help="write the summary here")
    e.add_argument("--beads", type=int, default=3, help="fresh single silica beads for the elongation study")
    e.add_argument("--write-card", action="store_true",
                   help="store the summary as metrics.held_out / metrics.bead_elongation in the model's card")
    e.add_argument("--log", type=Path, default=None, help="append the log lines to this file")
    return ap


def _cmd_train(a: argparse.Namespace) -> int:
    """``train``: fit the U-Net, write its safetensors, card and log, and score it on the held-out pairs."""
    from ..tomography.deep_regularizer import load_deep_regularizer, save_deep_regularizer

    out = Path(a.out)
    log_path = out.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = _logger(log_path)  # appends: a warm-started run continues the earlier log
    caches = [Path(c) for c in a.cache]
    train = first_order_only([p for c in caches for p in load_pairs(c, "train", a.kinds)], a.max_bead_phase)
    test = [p for c in caches for p in load_pairs(c, "test")]
    val = first_order_only([p for c in caches for p in load_pairs(c, "val", a.kinds)], a.max_bead_phase)
    if not train:
        raise SystemExit(f"no training pairs of {a.kinds} in {', '.join(map(str, caches))}: run 'generate' first")
    log(f"[train] {len(train)} training pairs ({', '.join(a.kinds)}), {len(val)} validation pairs, "
        f"{len(test)} held-out pairs, generators {', '.join(_generators(train))}, "
        f"cache {', '.join(map(str, caches))}")
    init_state, warm = None, None
    channels = tuple(a.channels)
    if a.init:
        base = load_deep_regularizer(a.init, device="cpu")
        init_state = base.net.state_dict()
        channels = tuple(base.card["architecture"]["channels"])
        prev = base.card.get("training", {})
        warm = {"from": base.label, "sha256": base.card.get("sha256"),
                "previous_steps": int(prev.get("steps", 0)) + int(prev.get("warm_start", {}).get("previous_steps", 0)),
                "previous_seconds": float(prev.get("seconds", 0.0))
                + float(prev.get("warm_start", {}).get("previous_seconds", 0.0))}
        log(f"[train] warm start from {base.label} ({warm['previous_steps']} earlier steps)")
    if not val:
        log(f"[train] no validation pairs ({SPLIT_RULE}): no learning curve, the last step is kept")
    net, hist = train_model(train, val=val, channels=channels, minutes=a.minutes, max_steps=a.max_steps,
                            batch_size=a.batch_size, crop=a.crop, lr=a.lr, lr_min=a.lr_min, seed=a.seed,
                            log=log, init_state=init_state, keep_best=True, val_every_s=a.val_every_s,
                            device=a.device, norm=a.norm, ema_decay=a.ema_decay)
    card = _train_card(a, out, train, val, hist, warm)
    card = save_deep_regularizer(net, out, card)
    log(f"[train] wrote {out} ({card['parameters']} parameters, sha256 {card['sha256'][:12]})")
    if test and not a.skip_held_out:
        reg = load_deep_regularizer(out, device="cpu")
        summary = evaluate([p for p in test], reg, log=log)
        card["metrics"] = {"held_out": summary["per_kind"], "note": "against the TV result of the same raw "
                           "tomogram; 'raw_nonneg' is the raw tomogram clamped to n >= n_m"}
        json_path = out.with_suffix(".json")
        json_path.write_text(json.dumps(card, indent=2, default=float), encoding="utf-8")
        log("[train] held-out summary: " + json.dumps(summary["per_kind"].get("all", {}), default=float))
    return 0


def _generators(pairs: Sequence[TrainingPair]) -> list[str]:
    """The pair generators (``deepreg-pairs/1``, ``deepreg-pairs/2``) of ``pairs``, sorted."""
    return sorted({str(p.setup_params.get("generator", GENERATOR_VERSION)) for p in pairs})


def _train_card(a: argparse.Namespace, out: Path, train: Sequence[TrainingPair], val: Sequence[TrainingPair],
                hist: dict, warm: Optional[dict]) -> dict:
    """The model card of a ``train`` run (its ``domain`` from the generator of its training pairs).

    With pairs of both generators the domain is the union of theirs (:func:`training_domain`).
    """
    from ..tomography.deep_regularizer import DEFAULT_DELTA_N_SCALE

    generators = _generators(train)
    domain = training_domain(generators, a.max_bead_phase)
    v2 = "deepreg-pairs/2" in generators
    if v2:
        setups = "one drawn per sample (see domain)" + ("; and the fixed deepreg-pairs/1 setups"
                                                        if len(generators) > 1 else "")
    else:
        setups = [dataclasses.asdict(s) for s in SETUPS]
    generator = " + ".join(generators)
    shape = sorted({tuple(p.raw.shape) for p in train}) if train else [tuple(VOLUME_SHAPE)]
    shape = list(shape[0]) if len(shape) == 1 else [list(s) for s in shape]
    card = {
        "name": out.stem, "version": a.version, "task": "deep-regularizer",
        "description": "3-D U-Net imitating this project's TV regularisation (regularize_tv, tau=5e-4, "
                       "30x20 iterations, non-negativity) from the plain Rytov tomogram.",
        "input": {"kind": "rytov", "normalisation": "(n - n_m) / delta_n_scale",
                  "delta_n_scale": DEFAULT_DELTA_N_SCALE, "patch": 64, "stride": 32,
                  "output": "n_m + delta_n_scale * net(x), then n >= n_m"},
        "domain": domain,
        "training": {"generator": generator, "simulator": "engine.simulate.propagate_scalar (SSNP)",
                     "kinds": a.kinds, "bead_max_phase_delay_rad": a.max_bead_phase, "setups": setups,
                     "normalisation": a.norm, "ema_decay": a.ema_decay,
                     "volume_shape": shape, "train_pairs": len(train),
                     "train_seeds": sorted({p.seed for p in train}), "validation_pairs": len(val),
                     "split": SPLIT_RULE + ("; deepreg-pairs/2: the held-out seeds' setups lie in the held-out "
                                            "NA or n_m band, which its train and validation splits never see" if v2 else ""),
                     "target": {"method": "regularize_tv", "weight": 5e-4, "outer_iterations": 30,
                                "inner_iterations": 20, "non_negativity": True},
                     "optimiser": f"Adam lr {a.lr} cosine to {a.lr_min}", "loss": "L2 on normalised delta n",
                     "batch_size": a.batch_size, "crop": a.crop,
                     "augmentation": "rot90 about z, flips of y and x", "steps": hist["steps"],
                     "seconds": round(hist["seconds"], 1), "device": f"{a.device} ({a.threads} CPU threads)", "seed": a.seed,
                     "final_validation_l2": hist["val_loss"][-1] if hist["val_loss"] else None,
                     "final_validation_relative_l2": (hist["val_relative_loss"][-1]
                                                      if hist["val_relative_loss"] else None),
                     "best_step": hist.get("best_step"),
                     "selection": "lowest relative validation L2 (per-sample MSE / mean square of its TV target)"
                                  + (" of the EMA of the weights" if a.ema_decay > 0 else ""),
                     "best_validation_relative_l2": hist.get("best_val_loss")},
    }
    if warm:
        card["training"]["warm_start"] = warm
    return card


def _cmd_evaluate(a: argparse.Namespace) -> int:
    """``evaluate``: SSIM/MSE against TV and the bead elongation, optionally stored in the model card."""
    from ..tomography.deep_regularizer import load_deep_regularizer

    reg = load_deep_regularizer(a.model, device="cpu")
    log = _logger(a.log)
    test = load_pairs(a.cache, "test", a.kinds)
    log(f"[eval] {len(test)} held-out pairs, seeds {sorted({p.seed for p in test})}, model {reg.label}")
    summary = evaluate(test, reg, log=log)
    if a.beads:
        summary["bead_elongation"] = bead_elongation_study(reg, count=a.beads, log=log)
    log("[eval] summary: " + json.dumps(summary["per_kind"].get("all", {}), default=float))
    print(json.dumps(summary["per_kind"], indent=2, default=float))
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    if a.write_card:
        from ..models import resolve_model_file

        card_path = resolve_model_file("deep_regularizer" if a.model == "default" else a.model).with_suffix(".json")
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card.setdefault("metrics", {})
        card["metrics"]["held_out"] = summary["per_kind"]
        card["metrics"]["held_out_seeds"] = sorted({p.seed for p in test})
        card["metrics"]["note"] = ("against the TV result of the same raw tomogram; 'raw_nonneg' is the raw "
                                   "tomogram clamped to n >= n_m; SSIM: skimage, 7^3 window, data range of TV")
        if "bead_elongation" in summary:
            card["metrics"]["bead_elongation_fwhm_z_over_x"] = summary["bead_elongation"]
        card_path.write_text(json.dumps(card, indent=2, default=float), encoding="utf-8")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``generate``, ``train``, ``evaluate`` (see the module docstring)."""
    a = _parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.cmd == "generate":
        generate_pairs(a.cache, per_kind=a.per_kind, first_seed=a.first_seed, log=_logger(None))
        return 0
    if a.cmd == "train":
        return _cmd_train(a)
    if a.cmd == "evaluate":
        return _cmd_evaluate(a)
    return 2


if __name__ == "__main__":
    sys.exit(main())
