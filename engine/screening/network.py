"""Screening networks, input preprocessing, model files and :func:`screen_fields`.

Conventions (``docs/formats.md``): images (y, x); pixel ``j`` of ``n`` sits at
``(j − n//2)·pixel``, so the centre crop of size ``c`` takes rows ``n//2 − c//2 ...``;
fields are sample/background ratio fields with the ``exp(+i(k·r − ωt))`` convention, so a
sample denser than the medium has **positive** phase. Network output: probability that a
field is **noisy**. ``ScreeningResult.decision``: 1 = clean (used), 0 = noisy.

Input normalisation (stated once, used in training and inference alike):

* ``"phase"`` (default, 1 channel): the unwrapped phase when given, else
  ``angle(U·e^{−i·arg ΣU})`` (the field's mean phase removed before wrapping); then the
  median of the crop is subtracted and the result divided by π and clipped to [−10, 10].
* ``"amplitude"`` (1 channel): ``log|U|`` minus its median, clipped to [−5, 5].
* ``"complex"`` (2 channels): ``V = U / m`` with ``m`` the complex median-amplitude,
  mean-phase reference; channels ``(Re V − 1, Im V)``, clipped to [−10, 10].
* ``"phase-amplitude"`` (2 channels): the ``"phase"`` channel, then the ``"amplitude"``
  channel. Dust shadows, parasitic fringes and over-exposure show mostly in the amplitude,
  which the phase-only input of the paper cannot see.
* ``"phase-amplitude-spectrum"`` (3 channels, models from 3.0, issue #19): the two above, then
  the crop's centred spatial spectrum ``S = |fftshift(fft2(V))| / crop`` of
  ``V = U·e^{−i·arg ΣU} / median|U|``, as ``(log(S + 10⁻³) − median) / 3`` clipped to [−5, 5].
  A parasitic fringe or a stray plane wave is one sharp peak there, whatever its contrast in
  the image; hot pixels and row noise raise a flat floor or a line. Zero frequency sits at
  index ``crop//2``; flips and 90° rotations of the image map onto the spectrum to within one
  frequency bin (the training's augmentation).

Crops smaller than the field are taken at the centre by :func:`preprocess`; :func:`screen_fields`
first crops every field of a measurement around its sample when the sample lies mostly outside
the centre crop (:mod:`engine.screening.sample_crop`). Fields smaller than the crop are
zero-padded after normalisation (zero = background).

Model files: ``<name>.safetensors`` (fp16 tensors, never pickled) with ``<name>.json``, a
model card naming the architecture, the input spec, the tensor shapes and the SHA-256 of
the weights file. :func:`load_model` rebuilds the architecture from the card, checks every
tensor's name and shape and the checksum, and refuses anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..models import ModelFileError, load_network, resolve_model_file, save_safetensors_model
from ..resources import models_dir
from ..backend import resolve_device
from ..progress import CancelToken, check_cancel, report
from .consistency import (CONSISTENCY_FEATURES, MEMBER_FEATURE, TOMOGRAPHIC_FEATURE, consistency_features, stage_features,
                          stage_probability)
from .camera_alarm import ALARM_PROBABILITY, camera_alarm, camera_warning
from .domain import screening_domain_check
from .rule import DEFAULT_MASK_RADIUS_PER_UM, DEFAULT_RULE_THRESHOLD, rule_decide, rule_peak_metric
from .sample_crop import centre_origin, crop_at, screening_crop_origin

__all__ = [
    "ScreeningNet",
    "CompactScreeningNet",
    "MinOfNetworks",
    "build_network",
    "preprocess",
    "ScreeningModel",
    "ScreeningResult",
    "ModelFileError",
    "save_model",
    "load_model",
    "default_model_name",
    "screen_fields",
    "MODELS_DIR",
    "INPUT_KINDS",
    "CROP_SIZE",
]

CROP_SIZE = 128
INPUT_KINDS = {"phase": 1, "amplitude": 1, "complex": 2, "phase-amplitude": 2, "phase-amplitude-spectrum": 3}
#: input kinds whose last channel is the centred spatial spectrum (not an image: no elastic deformation,
#: no saliency overlay)
SPECTRUM_KINDS = ("phase-amplitude-spectrum",)
#: Shipped models live here (``resources/models``; see :func:`engine.resources.models_dir`).
MODELS_DIR = models_dir()
PUBLISHED_NAME = "screening-published"
COMPACT_NAME = "screening-compact"


# --------------------------------------------------------------------------- networks
class MeanMaxPool(nn.Module):
    """Global max and mean pooling concatenated: (B, C, h, w) → (B, 2C, 1, 1), max first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=(2, 3), keepdim=True), x.mean(dim=(2, 3), keepdim=True)], dim=1)


class _PooledClassifier(nn.Module):
    """Shared head of the screening networks: ``features`` → ``pool`` → ``classifier`` → sigmoid.

    Subclasses build ``features`` (ending in a ReLU), ``pool``, ``classifier``, ``sigmoid`` and name their
    ``last_conv`` (the layer CAM and Grad-CAM look at).
    """

    features: nn.Sequential
    pool: nn.Module
    classifier: nn.Sequential
    sigmoid: nn.Sigmoid

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last conv after its ReLU, (B, C, h, w)."""
        return self.features(x)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (B, C) → (B,)."""
        return self.classifier(pooled).squeeze(-1)

    def position_head(self, features: torch.Tensor) -> torch.Tensor:
        """Logit each position's feature vector (P, C) would give if it filled the whole map → (P,).

        With mean+max pooling both pooled halves equal that vector (used by CAM).
        """
        if isinstance(self.pool, MeanMaxPool):
            features = torch.cat([features, features], dim=1)
        return self.head(features)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.feature_maps(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.logits(x))


class ScreeningNet(_PooledClassifier):
    """The screening CNN of Ryu et al. (2019), as published.

    Five blocks conv 3×3 (32, 64, 128, 256, 512 filters, padding 1) + ReLU + max-pool 2,
    a sixth conv 3×3 with 1024 filters + ReLU + adaptive max pool (1×1), then
    dropout 0.3 → linear 1024→512 → ReLU → dropout 0.5 → linear 512→512 → ReLU →
    dropout 0.5 → linear 512→1 → sigmoid. He (Kaiming-normal, fan-out, ReLU) initialisation
    for the convolutions, Xavier-uniform for the linear layers, zero biases.
    7,075,585 parameters for one input channel.

    Parameters
    ----------
    in_channels : int
        1 for phase or amplitude input, 2 for (real, imaginary).

    Notes
    -----
    :meth:`forward` returns the probability (after the sigmoid); :meth:`logits` returns the
    value before it, which training uses for a numerically stable binary cross-entropy.
    Input: (B, in_channels, 128, 128) float32 (other sizes ≥ 64 work thanks to the adaptive
    pool).

    References
    ----------
    D. Ryu, Y. Jo, J. Yoo, et al., "Deep learning-based optical field screening for
    robust optical diffraction tomography", Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x.
    """

    widths = (32, 64, 128, 256, 512)

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        layers: list[nn.Module] = []
        prev = self.in_channels
        for w in self.widths:
            layers += [nn.Conv2d(prev, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            prev = w
        layers += [nn.Conv2d(prev, 1024, 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(1024, 512), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(512, 512), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(512, 1),
        )
        self.sigmoid = nn.Sigmoid()
        init_weights(self)

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.features[-2]


class CompactScreeningNet(_PooledClassifier):
    """A small CNN for fast CPU screening (first distilled from :class:`ScreeningNet`).

    Five stride-2 conv 3×3 + batch-norm + ReLU stages (``w, 2w, 4w, 8w, 8w`` filters,
    default ``w = 16``: 128² → 4²), then adaptive max pool, dropout 0.3 and linear
    ``8w → 64 → 1`` with a sigmoid. About 0.25 M parameters and 1/15 of the published net's
    multiply-adds. Same interface as :class:`ScreeningNet` (``logits``, ``feature_maps``,
    ``head``, ``last_conv``).

    From model 3.0 (issue #19) two options: ``full_resolution=1`` puts a stride-1 conv 3×3
    stage of ``w`` filters before the five stride-2 stages, so that pixel-scale defects (hot
    pixels, row noise, fine parasitic fringes) are seen before any subsampling;
    ``mean_pool=1`` concatenates the global *mean* of the last feature maps to their maximum
    (``16w`` features into the head): the maximum finds one local defect, the mean measures
    defects spread over the field (fringes, low SNR). Cards without them build the 2.x net.

    Parameters
    ----------
    in_channels : int
        Input channels (1 or 2).
    width : int
        Filters of the first stage.
    full_resolution : int
        1: a stride-1 stage first (see above).
    mean_pool : int
        1: mean and max pooling concatenated (see above).

    References
    ----------
    G. Hinton, O. Vinyals, J. Dean, "Distilling the knowledge in a neural network",
    arXiv:1503.02531 (2015) — trained on the published net's soft outputs and the labels.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, full_resolution: int = 0, mean_pool: int = 0) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.width = int(width)
        self.full_resolution = int(bool(full_resolution))
        self.mean_pool = int(bool(mean_pool))
        w = self.width
        strides = (1,) * self.full_resolution + (2,) * 5
        chans = (w,) * self.full_resolution + (w, 2 * w, 4 * w, 8 * w, 8 * w)
        layers: list[nn.Module] = []
        prev = self.in_channels
        for c, stride in zip(chans, strides):
            layers += [nn.Conv2d(prev, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            prev = c
        self.features = nn.Sequential(*layers)
        self.pool = MeanMaxPool() if self.mean_pool else nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(prev * (1 + self.mean_pool), 64), nn.ReLU(),
                                        nn.Linear(64, 1))
        self.sigmoid = nn.Sigmoid()
        init_weights(self)

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.features[-3]


def init_weights(net: nn.Module) -> None:
    """He-normal (fan-out, ReLU) for convolutions, Xavier-uniform for linear layers, zero biases."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class MinOfNetworks(nn.Module):
    """Several screening networks that call a field noisy only if every one of them does (model 3.0).

    ``logits(x) = scale · min_k(member_scales[k] · member_k.logits(x)) + offset``: each member's logit
    is first put on its own calibrated scale (``1 / T_k``, its card's temperature), the least of
    them is taken (the member most sure the field is clean decides), and the result is recalibrated
    by Platt scaling (``scale``, ``offset``, fitted on validation measurements), so that
    ``sigmoid(logits)`` is a calibrated noisy-probability again.

    Why: a network trained on wide defect families catches far more of them than the 2.x net, but
    on real holograms of other labs it can read their cells' amplitude texture as a defect; the 2.x
    net keeps those clean. Requiring both to agree keeps the real cells clean and most of the new
    catches (``resources/models/screening-families-evaluation.json``). Every member takes the same
    input (``in_channels``; the card's ``input`` entry is shared).

    Parameters
    ----------
    members : sequence of nn.Module
        :class:`ScreeningNet` or :class:`CompactScreeningNet` (not nested ensembles).
    member_scales : sequence of float
        ``1 / T_k`` of each member (> 0).
    scale, offset : float
        Platt recalibration of the least member logit (``scale`` > 0).

    References
    ----------
    J. Platt, "Probabilistic outputs for support vector machines and comparisons to regularized
    likelihood methods", Advances in Large Margin Classifiers (1999).
    """

    def __init__(self, members: Sequence[nn.Module], member_scales: Sequence[float], scale: float = 1.0,
                 offset: float = 0.0) -> None:
        super().__init__()
        if len(members) < 2 or len(member_scales) != len(members):
            raise ModelFileError(f"MinOfNetworks needs two or more members and one scale each, got "
                                 f"{len(members)} members and {len(member_scales)} scales")
        if any(not isinstance(m, (ScreeningNet, CompactScreeningNet)) for m in members):
            raise ModelFileError("MinOfNetworks members must be ScreeningNet or CompactScreeningNet")
        channels = {int(m.in_channels) for m in members}
        if len(channels) != 1:
            raise ModelFileError(f"MinOfNetworks members take different inputs: in_channels {sorted(channels)}")
        values = [float(v) for v in (*member_scales, scale)]
        if not all(np.isfinite(v) and v > 0 for v in values) or not np.isfinite(float(offset)):
            raise ModelFileError(f"MinOfNetworks scales must be finite and > 0 and the offset finite, got "
                                 f"member_scales {list(member_scales)}, scale {scale}, offset {offset}")
        self.members = nn.ModuleList(members)
        self.member_scales = [float(v) for v in member_scales]
        self.scale, self.offset = float(scale), float(offset)
        self.in_channels = channels.pop()
        self.sigmoid = nn.Sigmoid()

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's calibrated logit, (K, B)."""
        return torch.stack([m.logits(x) * s for m, s in zip(self.members, self.member_scales)])

    def deciding_member(self, x: torch.Tensor) -> torch.Tensor:
        """Index (B,) of the member whose logit is the least for each input: the one that decides."""
        return self.member_logits(x).argmin(dim=0)

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        """The ensemble's logits (B,) from :meth:`member_logits` (K, B): the least, Platt-recalibrated."""
        return member_logits.amin(dim=0) * self.scale + self.offset

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.member_logits(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.logits(x))


_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "ScreeningNet": ScreeningNet,
    "CompactScreeningNet": CompactScreeningNet,
    "MinOfNetworks": MinOfNetworks,
}


def build_network(architecture: dict) -> nn.Module:
    """Build a network from a model card's ``architecture`` entry (no code is evaluated)."""
    arch = dict(architecture)
    cls = arch.pop("class", None)
    if cls not in _ARCHITECTURES:
        raise ModelFileError(f"unknown architecture class {cls!r}; known: {sorted(_ARCHITECTURES)}")
    if cls == "MinOfNetworks":
        members = arch.get("members")
        if not isinstance(members, list) or any(not isinstance(m, dict) or m.get("class") == cls for m in members):
            raise ModelFileError("MinOfNetworks: 'members' must be a list of single-network architectures")
        try:
            return MinOfNetworks([build_network(m) for m in members], [float(v) for v in arch["member_scales"]],
                                 float(arch.get("scale", 1.0)), float(arch.get("offset", 0.0)))
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"MinOfNetworks: malformed architecture ({type(e).__name__}: {e})") from e
    allowed = {"ScreeningNet": {"in_channels"},
               "CompactScreeningNet": {"in_channels", "width", "full_resolution", "mean_pool"}}[cls]
    kwargs = {k: int(v) for k, v in arch.items() if k in allowed}
    return _ARCHITECTURES[cls](**kwargs)


def architecture_of(net: nn.Module) -> dict:
    """The ``architecture`` entry of a model card for ``net``."""
    if isinstance(net, MinOfNetworks):
        return {"class": "MinOfNetworks", "members": [architecture_of(m) for m in net.members],
                "member_scales": list(net.member_scales), "scale": net.scale, "offset": net.offset}
    if isinstance(net, CompactScreeningNet):
        arch = {"class": "CompactScreeningNet", "in_channels": net.in_channels, "width": net.width}
        if net.full_resolution or net.mean_pool:  # 2.x cards stay as they were
            arch.update(full_resolution=net.full_resolution, mean_pool=net.mean_pool)
        return arch
    if isinstance(net, ScreeningNet):
        return {"class": "ScreeningNet", "in_channels": net.in_channels}
    raise TypeError(f"not a screening network: {type(net).__name__}")


# --------------------------------------------------------------------------- test-time augmentation
#: test-time augmentations a card may name (``input.test_time_augmentation``)
TEST_TIME_AUGMENTATIONS = ("none", "d8")


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations by k·90° and mirror images of image batches (N, C, h, w), identity first.

    A field turned or mirrored is a field of the same kind (clean or noisy): every defect family
    comes in all orientations, and training augments with exactly these transforms.
    """
    out = []
    for k in range(4):
        r = torch.rot90(x, k, dims=(-2, -1)) if k else x
        out += [r, torch.flip(r, dims=(-1,))]
    return out


def network_logits(net: nn.Module, x: torch.Tensor, augmentation: str = "none") -> torch.Tensor:
    """Logits (N,) of ``net`` on inputs (N, C, h, w); with ``"d8"`` the mean over :func:`dihedral_views`.

    Averaging the logits over the symmetries the network was trained with (test-time
    augmentation) makes the score independent of the field's orientation: a network trained
    with flips and rotations is still not exactly invariant, and on real holograms its score
    can swing across the threshold between two orientations of the same field (qpformat's
    hologram: 0.08–0.74 with one candidate). Costs ``8×`` the network's time.
    """
    if augmentation == "none":
        return net.logits(x)
    if augmentation != "d8":
        raise ValueError(f"unknown test-time augmentation {augmentation!r}; choose from {TEST_TIME_AUGMENTATIONS}")
    if x.shape[1] > 2:
        raise ValueError("test-time augmentation needs image channels only (no spectrum channel)")
    return torch.stack([net.logits(v) for v in dihedral_views(x)]).mean(dim=0)


# --------------------------------------------------------------------------- preprocessing
def _centre_crop(a: np.ndarray, crop: int) -> np.ndarray:
    """Centre crop (or keep) the last two axes to at most ``crop`` pixels."""
    return crop_at(a, centre_origin(a.shape, crop), crop)


def _pad_to(a: np.ndarray, crop: int) -> np.ndarray:
    h, w = a.shape[-2:]
    if h == crop and w == crop:
        return a
    out = np.zeros(a.shape[:-2] + (crop, crop), a.dtype)
    y0, x0 = crop // 2 - h // 2, crop // 2 - w // 2
    out[..., y0:y0 + h, x0:x0 + w] = a
    return out


def preprocess(
    fields: np.ndarray,
    *,
    unwrapped_phase: Optional[np.ndarray] = None,
    input_kind: str = "phase",
    crop: int = CROP_SIZE,
) -> torch.Tensor:
    """Turn retrieved fields into the network's input tensor.

    Parameters
    ----------
    fields : ndarray, shape (N, H, W) or (H, W), complex
        Sample/background ratio fields.
    unwrapped_phase : ndarray, shape (N, H, W), optional
        Unwrapped phase (rad) of the same fields; used for ``input_kind="phase"`` when given.
    input_kind : {"phase", "amplitude", "complex", "phase-amplitude", "phase-amplitude-spectrum"}
        What the network sees; see the module docstring for the normalisation.
    crop : int
        Side of the centre crop, pixels (128 for the shipped models).

    Returns
    -------
    Tensor, shape (N, C, crop, crop), float32, on the CPU
        C = 1 for phase/amplitude, 2 for complex and phase-amplitude, 3 with the spectrum.
    """
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {sorted(INPUT_KINDS)}, got {input_kind!r}")
    f = np.asarray(fields)
    if f.ndim == 2:
        f = f[None]
        if unwrapped_phase is not None:
            unwrapped_phase = np.asarray(unwrapped_phase)[None]
    if f.ndim != 3:
        raise ValueError(f"fields must have shape (N, H, W), got {np.shape(fields)}")
    u = _centre_crop(f, crop).astype(np.complex64, copy=False)
    n = u.shape[0]
    if input_kind in ("phase-amplitude", "phase-amplitude-spectrum"):
        parts = [_phase_channel(u, unwrapped_phase, crop), _amplitude_channel(u)]
        if input_kind == "phase-amplitude-spectrum":
            parts.append(_spectrum_channel(u))
        x = np.concatenate(parts, axis=1)
    elif input_kind == "phase":
        x = _phase_channel(u, unwrapped_phase, crop)
    elif input_kind == "amplitude":
        x = _amplitude_channel(u)
    else:
        amp = np.median(np.abs(u).reshape(n, -1), axis=1)
        ph0 = np.angle(u.reshape(n, -1).sum(axis=1))
        ref = (np.exp(-1j * ph0) / np.maximum(amp, 1e-6))[:, None, None].astype(np.complex64)
        v = u * ref
        x = np.clip(np.stack([v.real - 1.0, v.imag], axis=1), -10, 10)
    x = _pad_to(np.ascontiguousarray(x, dtype=np.float32), crop)
    return torch.from_numpy(np.ascontiguousarray(x))


def _phase_channel(u: np.ndarray, unwrapped_phase: Optional[np.ndarray], crop: int) -> np.ndarray:
    """(N, 1, h, w) phase/π minus its median (see the module docstring) of cropped fields ``u``."""
    n = u.shape[0]
    if unwrapped_phase is not None:
        ph = _centre_crop(np.asarray(unwrapped_phase, np.float32), crop)
        if ph.shape != u.shape:
            raise ValueError(f"unwrapped_phase shape {np.shape(unwrapped_phase)} does not match fields")
    else:
        ref = np.exp(-1j * np.angle(u.reshape(n, -1).sum(axis=1)))[:, None, None]
        ph = np.angle(u * ref.astype(np.complex64)).astype(np.float32)
    ph = ph - np.median(ph.reshape(n, -1), axis=1)[:, None, None]
    return np.clip(ph / np.pi, -10, 10)[:, None]


def _amplitude_channel(u: np.ndarray) -> np.ndarray:
    """(N, 1, h, w) log amplitude minus its median, clipped to [−5, 5], of cropped fields ``u``."""
    n = u.shape[0]
    la = np.log(np.abs(u) + 1e-6).astype(np.float32)
    la = la - np.median(la.reshape(n, -1), axis=1)[:, None, None]
    return np.clip(la, -5, 5)[:, None]


def _spectrum_channel(u: np.ndarray, chunk: int = 256) -> np.ndarray:
    """(N, 1, h, w) normalised log spectrum (see the module docstring) of cropped fields ``u``.

    Computed ``chunk`` fields at a time (complex64 FFTs through torch), so that a training set of
    tens of thousands of crops needs no more than a few hundred MB beyond its output.
    """
    n = u.shape[0]
    out = np.empty((n, 1) + u.shape[1:], np.float32)
    for s in range(0, n, chunk):
        v = torch.from_numpy(np.ascontiguousarray(u[s:s + chunk], dtype=np.complex64))
        flat = v.reshape(v.shape[0], -1)
        ref = torch.exp(-1j * torch.angle(flat.sum(dim=1))) / flat.abs().median(dim=1).values.clamp_min(1e-6)
        spec = torch.fft.fftshift(torch.fft.fft2(v * ref[:, None, None]), dim=(-2, -1)).abs() / u.shape[-1]
        ls = torch.log(spec + 1e-3)
        ls = ls - ls.reshape(ls.shape[0], -1).median(dim=1).values[:, None, None]
        out[s:s + chunk, 0] = torch.clamp(ls / 3.0, -5, 5).numpy()
    return out


# --------------------------------------------------------------------------- model files
def save_model(net: nn.Module, path: str | Path, card: Optional[dict] = None) -> dict:
    """Save ``net`` as fp16 safetensors plus its JSON model card.

    Parameters
    ----------
    net : ScreeningNet or CompactScreeningNet
    path : str or Path
        Weights file (``.safetensors``); the card is written next to it with ``.json``.
    card : dict, optional
        Extra card entries (name, version, input, training, metrics, ...). ``architecture``,
        ``tensors``, ``sha256``, ``dtype`` and ``date`` (if absent) are filled in.

    Returns
    -------
    dict
        The card as written.
    """
    card = dict(card or {})
    card.setdefault("input", {"kind": "phase", "crop": CROP_SIZE})
    card.setdefault("threshold", 0.5)
    card["architecture"] = architecture_of(net)
    card["parameters"] = int(sum(p.numel() for p in net.parameters()))  # learnable ones
    return save_safetensors_model(net.state_dict(), Path(path).with_suffix(".safetensors"), card,
                                  format_tag="odt-studio-screening/1")


@dataclass
class ScreeningModel:
    """A loaded screening network with its card.

    Attributes
    ----------
    net : nn.Module
        The network in eval mode on ``device``.
    card : dict
        The model card.
    device : torch.device
    """

    net: nn.Module
    card: dict
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def name(self) -> str:
        return str(self.card.get("name", "screening"))

    @property
    def version(self) -> str:
        return str(self.card.get("version", "0"))

    @property
    def label(self) -> str:
        """``"name version"``, as stored in the result file attribute ``screening/model``."""
        return f"{self.name} {self.version}"

    @property
    def input_kind(self) -> str:
        return str(self.card.get("input", {}).get("kind", "phase"))

    @property
    def phase_source(self) -> str:
        """``"wrapped"`` (angle of the field, the shipped models) or ``"unwrapped"`` (card ``input.phase``)."""
        return str(self.card.get("input", {}).get("phase", "wrapped"))

    @property
    def crop(self) -> int:
        return int(self.card.get("input", {}).get("crop", CROP_SIZE))

    @property
    def test_time_augmentation(self) -> str:
        """``"none"`` or ``"d8"`` (card ``input.test_time_augmentation``): see :func:`network_logits`.

        The card's temperature is fitted on the logits of the same augmentation.
        """
        tta = str(self.card.get("input", {}).get("test_time_augmentation", "none"))
        if tta not in TEST_TIME_AUGMENTATIONS:
            raise ModelFileError(f"model card {self.name}: unknown test_time_augmentation {tta!r} "
                                 f"(choose from {', '.join(TEST_TIME_AUGMENTATIONS)})")
        return tta

    @property
    def temperature(self) -> float:
        """Calibration temperature T (card ``calibration.temperature``, 1 if absent).

        The probability is ``sigmoid(logit / T)``, T fitted on validation data (temperature
        scaling); the decision at 0.5 does not depend on it, the reported confidence does.
        """
        t = float(self.card.get("calibration", {}).get("temperature", 1.0))
        if not np.isfinite(t) or t <= 0:
            raise ModelFileError(f"model card {self.name}: calibration temperature must be > 0, got {t}")
        return t

    def to(self, device: str | torch.device) -> "ScreeningModel":
        dev = resolve_device(device)
        self.net.to(dev)
        self.device = dev
        return self

    def predict_tensor(self, x: torch.Tensor, *, batch_size: int = 256,
                       cancel: Optional[CancelToken] = None) -> np.ndarray:
        """Calibrated probabilities (N,) float32 that each input (N, C, h, w) is noisy."""
        self.net.eval()
        out = []
        t, tta = self.temperature, self.test_time_augmentation
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                check_cancel(cancel)
                xb = x[s:s + batch_size].to(self.device, non_blocking=True)
                out.append(torch.sigmoid(network_logits(self.net, xb, tta).float() / t).cpu())
        if not out:
            return np.zeros(0, np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    @property
    def member_labels(self) -> list[str]:
        """``"name version"`` of each member of a :class:`MinOfNetworks` (card ``members``); [] for one network."""
        if not isinstance(self.net, MinOfNetworks):
            return []
        cards = list(self.card.get("members") or [])
        labels = []
        for k in range(len(self.net.members)):
            c = cards[k] if k < len(cards) and isinstance(cards[k], dict) else {}
            labels.append(f"{c.get('name', '')} {c.get('version', '')}".strip() or f"member {k}")
        return labels

    def predict_with_members(self, x: torch.Tensor, *, batch_size: int = 256,
                             cancel: Optional[CancelToken] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """:meth:`predict_tensor`'s probabilities (N,) and :meth:`member_probabilities` (N, K) (None for one
        network), from one pass of the members when the card has no test-time augmentation."""
        if not isinstance(self.net, MinOfNetworks) or self.test_time_augmentation != "none":
            return (self.predict_tensor(x, batch_size=batch_size, cancel=cancel),
                    None if not isinstance(self.net, MinOfNetworks) else self.member_probabilities(x))
        self.net.eval()
        zs = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], batch_size):
                check_cancel(cancel)
                zs.append(self.net.member_logits(x[s:s + batch_size].to(self.device)).float().cpu())
        z = torch.cat(zs, dim=1) if zs else torch.zeros((len(self.net.members), 0))
        pair = self.net.combine(z) / self.temperature
        return torch.sigmoid(pair).numpy().astype(np.float32), torch.sigmoid(z).T.numpy().astype(np.float32)

    def member_probabilities(self, x: torch.Tensor) -> Optional[np.ndarray]:
        """Each member's own calibrated noisy-probability ``sigmoid(logit_k / T_k)``, (N, K) float32.

        None for a single network. Inputs (N, C, h, w) as :meth:`predict_tensor` takes them; the
        ensemble calls a field noisy only if these lean that way together (before its Platt step).
        """
        if not isinstance(self.net, MinOfNetworks):
            return None
        self.net.eval()
        with torch.inference_mode():
            z = self.net.member_logits(x.to(self.device)).float().cpu()
        return torch.sigmoid(z).T.numpy().astype(np.float32)

    def predict_fields(self, fields: np.ndarray, *, unwrapped_phase: Optional[np.ndarray] = None,
                       batch_size: int = 256) -> np.ndarray:
        """Probabilities (N,) float32 that each field is noisy (crop + normalise + network)."""
        x = preprocess(fields, unwrapped_phase=unwrapped_phase, input_kind=self.input_kind, crop=self.crop)
        return self.predict_tensor(x, batch_size=batch_size)

    @property
    def consistency(self) -> Optional[dict]:
        """The card's measurement-consistency stage (``consistency``), checked; None if it has none.

        The stage turns the network's probability ``p`` and the :data:`~engine.screening.consistency.
        CONSISTENCY_FEATURES` ``c`` of a field into ``sigmoid(b + Σ_i w_i (x_i − μ_i) / s_i)`` with
        ``x = (logit p, c_1 … c_5)`` — then, as the card lists them, the tomographic residual (3.3) and each
        member's own logit (3.4): a logistic regression fitted on validation measurements
        (``python -m engine.training.screening_consistency``). :func:`screen_fields` applies it to
        measurements of at least ``min_fields`` fields, and lets it decide when asked or, asked nothing,
        when the card says ``decides_by_default`` (``by_default`` here); :meth:`predict_tensor` and
        :meth:`predict_fields` return the network's probability alone.
        """
        stage = self.card.get("consistency")
        if stage is None:
            return None
        names = ["network_logit", *CONSISTENCY_FEATURES]
        listed = list(stage.get("features", []))
        if listed[len(names):len(names) + 1] == [TOMOGRAPHIC_FEATURE]:
            names.append(TOMOGRAPHIC_FEATURE)  # 3.3 cards: each field against its tomographic prediction too
        members = [MEMBER_FEATURE.format(k) for k in range(len(self.member_labels))]
        if members and listed[len(names):] == members:
            names += members  # 3.4 cards: each member's own logit too
        try:
            arrays = {k: np.asarray(stage[k], np.float64) for k in ("mean", "scale", "weights")}
            bias = float(stage["bias"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"model card {self.name}: consistency stage incomplete ({exc})") from exc
        if list(stage.get("features", [])) != names or any(v.shape != (len(names),) for v in arrays.values()):
            raise ModelFileError(f"model card {self.name}: consistency stage must list the features {names} "
                                 f"(optionally followed by {TOMOGRAPHIC_FEATURE!r}, then by one "
                                 f"{MEMBER_FEATURE.format('k')!r} per member of a two-network model) with one mean, "
                                 "scale and weight each")
        spread_from = str(stage.get("spread_from", "all"))
        if spread_from not in ("all", "network_clean"):
            raise ModelFileError(f"model card {self.name}: consistency stage spread_from must be 'all' or "
                                 f"'network_clean', not {spread_from!r}")
        if not (all(np.all(np.isfinite(v)) for v in arrays.values()) and np.isfinite(bias)
                and np.all(arrays["scale"] > 0)):
            raise ModelFileError(f"model card {self.name}: consistency stage holds non-finite numbers or a scale <= 0")
        return {**arrays, "bias": bias, "min_fields": int(stage.get("min_fields", 8)), "spread_from": spread_from,
                "tomographic": TOMOGRAPHIC_FEATURE in names, "members": bool(members) and names[-1] == members[-1],
                "tomographic_relative": bool(stage.get("tomographic_relative", False)),
                "by_default": stage.get("decides_by_default", False) is True}

    def apply_consistency(self, probability: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The consistency stage's noisy-probability (N,) float32 from the network's ``probability`` (N,)
        and the fields' consistency ``features`` (N, 5), followed by their tomographic residual (N, 6) and each
        member's logit (N, 6 + K) when the stage takes them; ``probability`` unchanged without a stage, and for
        each field whose features are not finite (NaN: too few fields in its measurement)."""
        stage = self.consistency
        if stage is None:
            return np.asarray(probability, np.float32)
        p = np.clip(np.asarray(probability, np.float64), 1e-7, 1 - 1e-7)
        x = np.column_stack([np.log(p / (1 - p)), np.asarray(features, np.float64)])
        known = np.all(np.isfinite(x), axis=1)  # a field without features keeps the network's probability
        return np.where(known, stage_probability(stage, np.where(known[:, None], x, 0.0)), p).astype(np.float32)

    def measurement_consistency(self, crops: np.ndarray, pixel_size_um: float, wavelength_um: float,
                                illumination_per_um: Optional[np.ndarray], probability: np.ndarray, *,
                                na_objective: Optional[float] = None, medium_index: Optional[float] = None,
                                member_probability: Optional[np.ndarray] = None
                                ) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """The consistency features (N, 5) of one measurement's screening crops and the stage's noisy-probability
        (N,) from the network's ``probability``; (None, None) without a stage or with fewer than its
        ``min_fields`` fields (arguments as :func:`~engine.screening.consistency.consistency_features`).

        A stage with ``"spread_from": "network_clean"`` measures the features' spreads on the fields the
        network keeps; one that takes the tomographic residual (:mod:`engine.screening.tomographic`) needs
        ``illumination_per_um``, ``na_objective`` and ``medium_index`` (the stage is then skipped, (features,
        None), without them; the crops' phase is unwrapped here, as when the stage was fitted, never taken from the
        retrieval: a measurement scores the same whether screened right after retrieval or later from its stored
        fields, whose unwrapped phase is not stored). The
        residual is an input of the stage only: the features returned are the five
        of :data:`~engine.screening.consistency.CONSISTENCY_FEATURES`, as result files store them. A stage that
        takes each member's logit (3.4 cards) uses ``member_probability`` (N, K), as :meth:`predict_with_members`
        gives it, or runs the members on the crops when it is not given."""
        stage = self.consistency
        if stage is None or np.shape(crops)[0] < stage["min_fields"]:
            return None, None
        prob = np.asarray(probability) if stage["spread_from"] == "network_clean" else None
        if stage["tomographic"] and (illumination_per_um is None or na_objective is None or medium_index is None):
            return consistency_features(crops, pixel_size_um, wavelength_um, illumination_per_um, prob), None
        x = stage_features(crops, pixel_size_um, wavelength_um, illumination_per_um, prob,
                           tomographic=stage["tomographic"], tomographic_relative=stage["tomographic_relative"],
                           na_objective=na_objective, medium_index=medium_index)
        if stage["members"]:
            if member_probability is None:
                member_probability = self.member_probabilities(preprocess(crops, input_kind=self.input_kind,
                                                                          crop=self.crop))
            q = np.clip(np.asarray(member_probability, np.float64), 1e-7, 1 - 1e-7)
            x = np.column_stack([x, np.log(q / (1 - q))])
        return x[:, :len(CONSISTENCY_FEATURES)], self.apply_consistency(probability, x)


def default_model_name(device: str | torch.device = "auto") -> str:
    """The default model for a device: the compact net everywhere.

    The shipped compact net (phase + amplitude input) is both the more accurate (held-out
    96.4 % against 92.8 % for the phase-only published net, same simulated measurements) and
    7× faster on the CPU; the published net stays selectable by name. ``device`` is kept so that
    a device-specific choice can come back if a GPU-trained published net overtakes it.
    """
    resolve_device(device)
    return COMPACT_NAME


def _shipped_name(name_or_path: str | Path, device: str | torch.device = "auto") -> str:
    """``"default"``, ``"compact"`` and ``"published"`` as the shipped models' names; anything else unchanged."""
    name = str(name_or_path)
    if name == "default":
        return default_model_name(device)
    return {"published": PUBLISHED_NAME, "compact": COMPACT_NAME}.get(name, name)


def consistency_by_default(name_or_path: str | Path = "default") -> bool:
    """Whether a screening model's consistency stage decides when nobody says (card
    ``consistency.decides_by_default``), read from its card alone (no weights loaded). False for a model
    without a stage, or a card that cannot be read (:func:`load_model` then says why)."""
    try:
        card_path = resolve_model_file(_shipped_name(name_or_path), MODELS_DIR).with_suffix(".json")
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (ModelFileError, OSError, ValueError):
        return False
    stage = card.get("consistency") if isinstance(card, dict) else None
    return isinstance(stage, dict) and stage.get("decides_by_default", False) is True


def load_model(name_or_path: str | Path = "default", *, device: str | torch.device = "cpu") -> ScreeningModel:
    """Load a screening model from safetensors and its JSON card, with checks.

    Parameters
    ----------
    name_or_path : str or Path
        ``"default"`` (the compact net), ``"published"``, ``"compact"``, a
        model name in ``resources/models`` (e.g. ``"screening-published"``), or a path to a
        ``.safetensors`` file (its ``.json`` card must sit beside it).
    device : str or torch.device
        Where to put the network.

    Returns
    -------
    ScreeningModel

    Raises
    ------
    ModelFileError
        Missing card or weights, unknown architecture, a tensor whose name or shape does not
        match the architecture or the card, or a SHA-256 mismatch. Weights are read with
        ``safetensors`` only: nothing is ever unpickled.
    """
    dev = resolve_device(device)
    net, card, _ = load_network(_shipped_name(name_or_path, dev), task="screening", task_if_missing="screening",
                                build=build_network, default_name=COMPACT_NAME, models_dir=MODELS_DIR, device=dev)
    return ScreeningModel(net=net, card=card, device=dev)


# --------------------------------------------------------------------------- screening
@dataclass
class ScreeningResult:
    """Per-field screening of one measurement (``screening/...`` of the result file).

    Attributes
    ----------
    score : ndarray (N,) float32
        Model probability that each field is noisy (NaN when only the rule was used).
    rule_peak : ndarray (N,) float32
        Rule-based log10 high-frequency peak.
    decision : ndarray (N,) uint8
        1 = clean (used), 0 = noisy (excluded).
    source : ndarray (N,) uint8
        0 = model, 1 = rule, 2 = manual override.
    model_name, model_version : str
    threshold : float
        Decision threshold on ``score`` (noisy if score > threshold).
    rule_threshold : float
        Threshold on ``rule_peak`` (noisy if above).
    rule_decision : ndarray (N,) uint8
        The rule's own decision (1 = clean), reported beside the model's.
    warnings : list of str
        Where the measurement lies outside the model's training domain
        (:func:`engine.screening.domain.screening_domain_check`); empty for the rule.
    crop_origin : (int, int) or None
        First row and column (y0, x0) of the crop the network and the rule looked at
        (:func:`engine.screening.sample_crop.screening_crop_origin`: the centre crop unless the
        sample lies mostly outside it); None when not known (e.g. read from an older file).
    consistency : ndarray (N, 5) float32 or None
        How far each field lies from the rest of its measurement
        (:data:`engine.screening.consistency.CONSISTENCY_FEATURES`), when the model has a
        consistency stage and the measurement enough fields; else None.
    consistency_score : ndarray (N,) float32 or None
        The consistency stage's noisy-probability (:meth:`ScreeningModel.apply_consistency`), computed
        whenever ``consistency`` is; it decides only when ``consistency_used``.
    consistency_used : bool
        True when ``score`` (and so ``decision``) is the consistency stage's (``screen_fields(...,
        consistency=True)``); False: the network's.
    camera_alarm : ndarray (N,) bool or None
        Fields whose raw hologram's camera numbers are over a level (:mod:`engine.screening.camera_alarm`):
        noisy, their score raised to at least ``ALARM_PROBABILITY``; None when the camera numbers were not
        given.
    """

    score: np.ndarray
    rule_peak: np.ndarray
    decision: np.ndarray
    source: np.ndarray
    model_name: str
    model_version: str
    threshold: float
    rule_threshold: float = DEFAULT_RULE_THRESHOLD
    rule_decision: Optional[np.ndarray] = None
    warnings: list = field(default_factory=list)
    crop_origin: Optional[tuple[int, int]] = None
    consistency: Optional[np.ndarray] = None
    consistency_score: Optional[np.ndarray] = None
    consistency_used: bool = False
    camera_alarm: Optional[np.ndarray] = None

    @property
    def model_label(self) -> str:
        """Value for the result file attribute ``screening/model``."""
        return f"{self.model_name} {self.model_version}".strip()

    @property
    def model(self) -> str:
        """Same as :attr:`model_label` (the name the result-file writer reads)."""
        return self.model_label

    @property
    def n_clean(self) -> int:
        return int(np.sum(self.decision == 1))


def _stage_not_used(stage: dict, explicit: bool, features_made: bool, scan: bool, metadata: Any, n: int) -> list[str]:
    """Why a consistency stage that should decide did not (the network did), as warnings: always when the
    optics are missing, only when it was ``explicit``-ly asked for on a rotation series or too few fields."""
    if features_made:
        return ["consistency stage not used: its tomographic input needs the illuminations, the objective NA "
                "and the medium index, and this measurement lacks one (network alone)"]
    if not explicit:
        return []
    if not scan:
        return ["consistency stage not used: it compares fields of different illuminations of a still sample, "
                f"and this is a {metadata.geometry} measurement (network alone)"]
    return [f"consistency stage not used: it compares each field with at least {stage['min_fields'] - 1} others, "
            f"and this measurement has {n} fields (network alone)"]


def _rule_result(rule: np.ndarray, rule_dec: np.ndarray, alarm: Optional[np.ndarray], threshold: float,
                 rule_threshold: float, origin: tuple[int, int], warnings: list[str]) -> ScreeningResult:
    """The rule's decisions as a :class:`ScreeningResult` (no score), camera-alarmed fields noisy."""
    n = len(rule_dec)
    decision = rule_dec.copy() if alarm is None else np.where(alarm, 0, rule_dec).astype(np.uint8)
    return ScreeningResult(score=np.full(n, np.nan, np.float32), rule_peak=rule, decision=decision,
                           source=np.ones(n, np.uint8), model_name="rule", model_version="1",
                           threshold=float(threshold), rule_threshold=float(rule_threshold),
                           rule_decision=rule_dec, crop_origin=origin, camera_alarm=alarm, warnings=warnings)


def screen_fields(
    fields: np.ndarray,
    illumination_per_um: Optional[np.ndarray],
    metadata: Any,
    *,
    model: str | Path | ScreeningModel | None = "default",
    threshold: float = 0.5,
    device: str | torch.device = "auto",
    unwrapped_phase: Optional[np.ndarray] = None,
    pixel_size_um: Optional[float] = None,
    rule_threshold: float = DEFAULT_RULE_THRESHOLD,
    mask_radius_per_um: float = DEFAULT_MASK_RADIUS_PER_UM,
    method: str = "model",
    consistency: Optional[bool] = None,
    camera: Any = None,
    batch_size: int = 256,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> ScreeningResult:
    """Screen the retrieved fields of one measurement.

    Parameters
    ----------
    fields : ndarray, shape (N, H, W), complex64
        Sample/background ratio fields (``RetrievedFields.field``).
    illumination_per_um : ndarray, shape (N, 2) or None
        Illumination frequencies, cycles/µm (kept for the rule in the raw frame; the ratio
        frame centres the rule's disc on 0, see :mod:`engine.screening.rule`).
    metadata : MeasurementMetadata
        Supplies ``wavelength_um`` and ``pixel_size_um``.
    model : str, Path, ScreeningModel or None
        ``"default"`` picks the compact net (see :func:`default_model_name`); a name or
        path is loaded with :func:`load_model`. Ignored when ``method="rule"``.
    threshold : float
        Noisy if the model's probability is above it (default 0.5).
    device : {"auto", "cpu", "cuda"}
    unwrapped_phase : ndarray (N, H, W), optional
        Unwrapped phase; fed to the network only if its card says it was trained on the
        unwrapped phase (``input.phase == "unwrapped"``). The shipped models were trained on
        the wrapped angle and ignore it.
    pixel_size_um : float, optional
        Field pixel size if it differs from ``metadata.pixel_size_um``
        (``RetrievedFields.pixel_size_um``).
    rule_threshold, mask_radius_per_um : float
        Rule settings (log10 threshold; disc radius in cycles/µm).
    method : {"model", "rule"}
        ``"rule"`` decides by the rule alone (``source`` = 1, ``score`` = NaN).
    consistency : bool, optional
        Decide by the model's consistency stage (each field against the fields of nearest
        illumination, :mod:`engine.screening.consistency`) instead of the network alone. None (the
        default): as the model card says (``consistency.decides_by_default``; on from 3.4.0, whose stage
        is better than its networks on every test set, see the card's metrics). True with a model
        without a stage: ValueError. A measurement the stage cannot judge (fewer than its ``min_fields``
        fields; no objective NA or medium index for a stage with the tomographic input; a
        ``sample-rotation`` measurement, whose fields share one illumination) is screened by the network
        alone, with a warning (none for too few fields or a rotation when the stage was not asked for).
        With a stage, its features and score are computed and returned either way.
    camera : RetrievalQuality or dict, optional
        The retrieval quality numbers with the raw holograms' camera numbers (``hot_pixel_fraction``,
        ``row_jitter``: :mod:`engine.holography.camera`), e.g. ``RetrievedFields.quality`` or a result
        file's ``retrieval/quality``. A field over a level of :mod:`engine.screening.camera_alarm` is
        noisy whatever the network or the rule says (its score at least ``ALARM_PROBABILITY``); a warning
        when it fires on a quarter of the fields or more (the camera itself). Without them (older files), no
        camera alarm.
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    ScreeningResult

    References
    ----------
    D. Ryu et al., Sci. Rep. 9, 15239 (2019), doi:10.1038/s41598-019-51363-x.
    """
    f = np.asarray(fields)
    if f.ndim != 3:
        raise ValueError(f"fields must have shape (N, H, W), got {f.shape}")
    if method not in ("model", "rule"):
        raise ValueError(f"method must be 'model' or 'rule', got {method!r}")
    n = f.shape[0]
    px = float(pixel_size_um if pixel_size_um is not None else metadata.pixel_size_um)
    report(progress, 0.0, "rule metric")
    check_cancel(cancel)
    origin = screening_crop_origin(f, CROP_SIZE)  # the sample, wherever it sits on the camera
    crop_fields = crop_at(f, origin, CROP_SIZE)
    rule = rule_peak_metric(crop_fields, illumination_per_um, px, float(metadata.wavelength_um),
                            mask_radius_per_um=mask_radius_per_um)
    rule_dec = rule_decide(rule, rule_threshold)
    alarm = camera_alarm(camera, n)
    camera_note = [w for w in (camera_warning(camera, n),) if w]
    if method == "rule" or model is None:
        report(progress, 1.0, "screened by rule")
        return _rule_result(rule, rule_dec, alarm, threshold, rule_threshold, origin, camera_note)
    dev = resolve_device(device)
    if isinstance(model, ScreeningModel):
        m = model if model.device == dev else model.to(dev)
    else:
        m = load_model(model, device=dev)
    report(progress, 0.2, f"screening {n} fields with {m.label}")
    check_cancel(cancel)
    # a model trained on the wrapped phase must see the wrapped phase, whatever the caller has
    use_unwrapped = unwrapped_phase is not None and m.phase_source == "unwrapped"
    x = preprocess(crop_fields, unwrapped_phase=crop_at(np.asarray(unwrapped_phase), origin, CROP_SIZE)
                   if use_unwrapped else None, input_kind=m.input_kind, crop=m.crop)
    stage = m.consistency
    if stage is not None and stage["members"]:  # the stage takes each member's own logit too: one pass for both
        score, members = m.predict_with_members(x, batch_size=batch_size, cancel=cancel)
    else:
        score, members = m.predict_tensor(x, batch_size=batch_size, cancel=cancel), None
    # the stage compares fields of different illuminations of a still sample (its fit's only geometry)
    scan = getattr(metadata, "geometry", "illumination-scan") == "illumination-scan"
    if stage is not None and scan:  # each field against its neighbours in the measurement
        report(progress, 0.8, "measurement consistency")
    features, stage_score = m.measurement_consistency(
        crop_fields, px, float(metadata.wavelength_um), illumination_per_um, score,
        na_objective=getattr(metadata, "na_objective", None), medium_index=getattr(metadata, "medium_index", None),
        member_probability=members) if scan else (None, None)
    if consistency and stage is None:
        raise ValueError(f"screening model {m.label} has no consistency stage: screen without it, or use a model "
                         "whose card has one")
    asked = bool(consistency) if consistency is not None else stage is not None and stage["by_default"]
    warnings = screening_domain_check(metadata, m.card, pixel_size_um=px, field_shape=f.shape)
    if asked and stage_score is not None:
        score = stage_score
    elif asked:
        warnings += _stage_not_used(stage, bool(consistency), features is not None, scan, metadata, n)
    if alarm is not None:
        score = np.where(alarm, np.maximum(score, ALARM_PROBABILITY), score).astype(np.float32)
        warnings += camera_note
    decision = (score <= threshold).astype(np.uint8)
    report(progress, 1.0, f"{int(decision.sum())} of {n} fields clean")
    return ScreeningResult(score=score, rule_peak=rule, decision=decision, source=np.zeros(n, np.uint8),
                           model_name=m.name, model_version=m.version, threshold=float(threshold),
                           rule_threshold=float(rule_threshold), rule_decision=rule_dec,
                           warnings=warnings, crop_origin=origin, consistency=features, consistency_score=stage_score,
                           consistency_used=bool(asked and stage_score is not None), camera_alarm=alarm)
