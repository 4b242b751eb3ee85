"""Learned 3-D regulariser (DeepRegularizer): a 3-D U-Net that imitates iterative TV.

Conventions
-----------
* Volumes (z, y, x) in the docs/formats.md layout (voxel ``j`` of ``n`` at ``(j − n//2)·d``), refractive
  index ``n``; ``n_m`` is the medium index.
* Input: the **plain Rytov** tomogram (no non-negativity, no TV), as in the paper; the network
  fills the missing cone and removes the ringing itself. Normalisation: ``x = (n − n_m)/s`` with
  the constant ``s`` stored in the model card (``input.delta_n_scale``, 0.05 for the shipped
  model). Output: ``n = n_m + s·(x + r(x))`` (residual learning), then ``n ≥ n_m`` (the
  non-negativity that TV imposes) unless ``non_negativity=False``.
* Any volume size: the whole volume in one pass up to 2²⁵ voxels (overlapping slabs beyond), or the
  paper's 64³ patches with stride 32 and squared-Hann blending (:func:`network_volume`).
* The pipeline's learned step (:func:`regularize_deep_fourier`) is the network followed by a few
  iterations of the TV solver started from its volume (:func:`polish_tv`; 5 outer × 3 inner for
  2.3.0, the card's ``inference.tv_polish``): the network does what 30 iterations from the direct
  inversion would, the iterations restore the measured Fourier values and TV's fine structure.
  The polished volume is read out as TV's (``FourierData.to_ri``).

Network (:class:`UNet3D`): per level two 3×3×3 convolutions, each followed by a normalisation
(batch normalisation in the 1.x/2.x models, group normalisation with 8 groups from 3.0, whose
per-sample statistics train with batches of 1–2) and a leaky ReLU (slope 0.01); 2× max-pooling down, 2×2×2 transposed convolution
up, skip connections by concatenation, a 1×1×1 convolution to one channel, added to the input.
He (Kaiming) initialisation for the convolutions; the last 1×1×1 convolution starts at zero so
that the untrained network is the identity. The shipped model (2.2.0: 2.0.0 fine-tuned on whole
64³ volumes, then on the cross-setup pairs of both generators, batch normalisation kept, weight
EMA; its weights are those of 2.3.0, whose card adds the whole-volume inference and the TV
polish) first rearranges 2×2×2 blocks into 8 channels (space-to-depth), then runs three
levels of 24-48-96 channels (two poolings) instead of the paper's 64-…-1024, so that CPU inference stays far below TV's time
(0.17 s against 1.4 s per 64³ on one CPU thread; oddly, faster than the narrower 16-32-64
of 1.x, 0.31 s, on this CPU's oneDNN kernels).

References
----------
D. Ryu, D. Ryu, Y. Baek, H. Cho, G. Kim, Y. S. Kim, Y. Lee, Y. Kim, J. C. Ye, H.-S. Min and
Y. Park, "DeepRegularizer: rapid resolution enhancement of tomographic imaging using deep
learning", IEEE Trans. Med. Imaging 40, 1508 (2021).
O. Çiçek, A. Abdulkadir, S. S. Lienkamp, T. Brox and O. Ronneberger, "3D U-Net: learning dense
volumetric segmentation from sparse annotation", MICCAI (2016).
K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers", ICCV (2015) (initialisation).
J. Lim et al., "Comparative study of iterative reconstruction algorithms for missing cone problems
in optical diffraction tomography", Opt. Express 23, 16933 (2015) (the TV solver the polish runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..backend import resolve_device
from ..domain import quantities_outside
from ..models import MODELS_DIR, ModelFileError, load_network, save_safetensors_model
from ..progress import CancelToken, check_cancel, report, sub_progress
from .stitching import PATCH_SIZE, STRIDE, pad_to_patch, stitch_apply

__all__ = [
    "space_to_depth",
    "depth_to_space",
    "architecture_of",
    "DEFAULT_MODEL_NAME",
    "DEFAULT_DELTA_N_SCALE",
    "UNet3D",
    "DeepRegularizer",
    "build_unet",
    "init_he",
    "save_deep_regularizer",
    "load_deep_regularizer",
    "regularize_deep",
    "regularize_deep_fourier",
    "network_volume",
    "polish_tv",
    "polish_iterations_of",
    "learned_step_record",
    "WHOLE_VOLUME_MAX_VOXELS",
    "DOMAIN_QUANTITIES",
    "measurement_setup",
    "domain_check",
    "domain_excess",
    "model_card",
    "pipeline_domain_warnings",
]

DEFAULT_MODEL_NAME = "deep_regularizer"
DEFAULT_DELTA_N_SCALE = 0.05
NEGATIVE_SLOPE = 0.01


#: normalisation layers: ``"batch"`` (BatchNorm3d, the 1.x/2.x models) or ``"group"`` (GroupNorm,
#: 8 groups or fewer: per-sample statistics, so that training with batches of 1–2 behaves as inference)
NORMALISATIONS = ("batch", "group")
GROUPS = 8


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(GROUPS, c), c)
    return nn.BatchNorm3d(c)


class _DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, slope: float, norm: str = "batch") -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.LeakyReLU(slope, inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.LeakyReLU(slope, inplace=True),
        )


def space_to_depth(x: torch.Tensor, f: int) -> torch.Tensor:
    """(B, C, Z, Y, X) → (B, C·f³, Z/f, Y/f, X/f): a lossless 3-D pixel unshuffle."""
    b, c, z, y, w = x.shape
    x = x.reshape(b, c, z // f, f, y // f, f, w // f, f)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * f ** 3, z // f, y // f, w // f)


def depth_to_space(x: torch.Tensor, f: int) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: (B, C·f³, Z, Y, X) → (B, C, Z·f, Y·f, X·f)."""
    b, cf, z, y, w = x.shape
    c = cf // f ** 3
    x = x.reshape(b, c, f, f, f, z, y, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c, z * f, y * f, w * f)


class UNet3D(nn.Module):
    """3-D U-Net with a residual output, ``y = x + r(x)``.

    Parameters
    ----------
    channels : sequence of int
        Feature channels per level, e.g. ``(12, 24, 48)``: ``len(channels) − 1`` poolings.
    in_channels : int
        Input channels (1: the normalised Δn).
    negative_slope : float
        Leaky-ReLU slope.
    stem_factor : int
        1: the first level works at full resolution (standard U-Net). 2: the input is first
        rearranged losslessly into 2×2×2 blocks (space-to-depth, ``in_channels·8`` channels at
        half resolution) and the residual ``r`` is rearranged back (depth-to-space); the
        levels then run on 8× fewer voxels, which is what makes CPU inference cheap.
    norm : {"batch", "group"}
        Normalisation after each convolution (:data:`NORMALISATIONS`): batch normalisation, or
        group normalisation with :data:`GROUPS` groups (per-sample statistics: training with
        batches of 1–2 converges, and training and inference compute the same thing).

    Shapes
    ------
    (B, in_channels, Z, Y, X) → (B, 1, Z, Y, X); Z, Y, X multiples of :attr:`multiple`.
    """

    def __init__(self, channels: Sequence[int] = (12, 24, 48), in_channels: int = 1,
                 negative_slope: float = NEGATIVE_SLOPE, stem_factor: int = 2, norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMALISATIONS:
            raise ValueError(f"norm must be one of {NORMALISATIONS}")
        self.norm = norm
        channels = [int(c) for c in channels]
        if len(channels) < 2:
            raise ValueError("a U-Net needs at least two levels")
        if stem_factor not in (1, 2):
            raise ValueError("stem_factor must be 1 or 2")
        self.channels = tuple(channels)
        self.in_channels = int(in_channels)
        self.negative_slope = float(negative_slope)
        self.stem_factor = int(stem_factor)
        self.down = nn.ModuleList()
        c_prev = in_channels * self.stem_factor ** 3
        for c in channels:
            self.down.append(_DoubleConv(c_prev, c, negative_slope, norm))
            c_prev = c
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_hi, c_lo in zip(channels[::-1][:-1], channels[::-1][1:]):
            self.up.append(nn.ConvTranspose3d(c_hi, c_lo, 2, stride=2))
            self.dec.append(_DoubleConv(2 * c_lo, c_lo, negative_slope, norm))
        self.head = nn.Conv3d(channels[0], self.stem_factor ** 3, 1)
        init_he(self)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return self.stem_factor * 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = space_to_depth(x, self.stem_factor) if self.stem_factor > 1 else x
        skips = []
        for i, block in enumerate(self.down):
            if i:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        for up, dec, skip in zip(self.up, self.dec, skips[::-1][1:]):
            h = dec(torch.cat([up(h), skip], dim=1))
        r = self.head(h)
        if self.stem_factor > 1:
            r = depth_to_space(r, self.stem_factor)
        return x[:, :1] + r


def init_he(net: nn.Module) -> None:
    """He (Kaiming-normal, fan-in, leaky-ReLU gain) initialisation of every convolution, zero
    biases, unit/zero batch-norm; the residual head starts at zero (identity network)."""
    slope = getattr(net, "negative_slope", NEGATIVE_SLOPE)
    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            nn.init.kaiming_normal_(m.weight, a=slope, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    head = getattr(net, "head", None)
    if isinstance(head, nn.Conv3d):
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)


def build_unet(architecture: dict) -> UNet3D:
    """Build the network from a model card's ``architecture`` entry (no code is evaluated)."""
    if architecture.get("type") != "UNet3D":
        raise ModelFileError(f"unknown architecture {architecture.get('type')!r}: expected 'UNet3D'")
    return UNet3D(channels=architecture["channels"], in_channels=int(architecture.get("in_channels", 1)),
                  negative_slope=float(architecture.get("negative_slope", NEGATIVE_SLOPE)),
                  stem_factor=int(architecture.get("stem_factor", 1)),
                  norm="group" if str(architecture.get("normalisation", "")).startswith("GroupNorm") else "batch")


def architecture_of(net: UNet3D) -> dict:
    """The ``architecture`` entry of a model card for ``net``."""
    return {"type": "UNet3D", "channels": list(net.channels), "in_channels": net.in_channels,
            "negative_slope": net.negative_slope, "stem_factor": net.stem_factor,
            "normalisation": f"GroupNorm({GROUPS})" if net.norm == "group" else "BatchNorm3d", "activation": "LeakyReLU",
            "residual": True, "patch": PATCH_SIZE, "stride": STRIDE, "window": "squared Hann (sin^4)"}


@dataclass
class DeepRegularizer:
    """A loaded learned regulariser: network (eval mode), card and device.

    Attributes
    ----------
    net : UNet3D
    card : dict
    device : torch.device
    """

    net: UNet3D
    card: dict = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _channels_last: bool = field(default=False, repr=False)

    @property
    def delta_n_scale(self) -> float:
        """Δn normalisation constant ``s`` (input ``(n − n_m)/s``)."""
        return float(self.card.get("input", {}).get("delta_n_scale", DEFAULT_DELTA_N_SCALE))

    @property
    def label(self) -> str:
        return f"{self.card.get('name', DEFAULT_MODEL_NAME)} {self.card.get('version', '0')}"

    def to(self, device: str | torch.device) -> "DeepRegularizer":
        self.device = resolve_device(device)
        self.net.to(self.device)
        return self

    def apply_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Network output for normalised patches (B, 1, Z, Y, X) (inference mode; bf16 autocast
        on CUDA). Runs in the channels-last 3-D memory layout, whose oneDNN convolutions take
        0.58× the time of the default layout on this project's CPU (128 × 256 × 256: 1.10 s
        against 1.89 s on two threads), with the same result to float rounding."""
        self.net.eval()
        if not self._channels_last:
            self.net.to(memory_format=torch.channels_last_3d)
            self._channels_last = True
        x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            if x.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return self.net(x).float().contiguous()
            return self.net(x).contiguous()


def save_deep_regularizer(net: UNet3D, path: str | Path, card: Optional[dict] = None) -> dict:
    """Save ``net`` as fp16 safetensors with its model card (``architecture`` filled in)."""
    card = dict(card or {})
    card["architecture"] = architecture_of(net)
    card.setdefault("input", {"kind": "rytov", "normalisation": "(n - n_m) / delta_n_scale",
                              "delta_n_scale": DEFAULT_DELTA_N_SCALE})
    card.setdefault("task", "deep-regularizer")
    return save_safetensors_model(net.state_dict(), path, card, format_tag="odt-studio-deep-regularizer/1")


def load_deep_regularizer(model: str | Path = "default", *, device: str | torch.device = "auto",
                          models_dir: Path = MODELS_DIR) -> DeepRegularizer:
    """Load a learned regulariser from safetensors + card (checksum and shapes checked).

    Parameters
    ----------
    model : str or Path
        ``"default"`` (the shipped ``deep_regularizer``), a model name in ``models_dir``, or a path
        to a ``.safetensors`` file with its ``.json`` card beside it.
    device : str or torch.device
    models_dir : Path
        Where model names are looked up.

    Raises
    ------
    ModelFileError
        Missing files, checksum or shape mismatch, unknown architecture.
    """
    net, card, _ = load_network(model, task="deep-regularizer", task_if_missing="deep-regularizer",
                                build=lambda arch: build_unet(arch or {}), default_name=DEFAULT_MODEL_NAME,
                                models_dir=models_dir)
    return DeepRegularizer(net=net, card=card).to(device)


#: volumes of up to this many voxels (after padding) go through the network in one piece (peak
#: memory ≈ 2.2 GB on the CPU at 192 × 384 × 384 for the 24-48-96 network); larger ones in slabs
WHOLE_VOLUME_MAX_VOXELS = 2 ** 25
#: voxels of context on each side of a slab (the network's receptive field reaches about 40)
SLAB_MARGIN = 48
TILINGS = ("whole", "patches")


def _pad_to_multiple(vol: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Reflect-pad the end of each axis to a multiple of ``multiple``; the padded volume and its crop."""
    pads = [(0, (-n) % multiple) for n in vol.shape]
    crop = tuple(slice(0, n) for n in vol.shape)
    if not any(p for _, p in pads):
        return vol, crop
    return np.pad(vol, pads, mode="reflect" if min(vol.shape) > 1 else "edge"), crop


def _apply_in_slabs(reg: "DeepRegularizer", vol: np.ndarray, progress, cancel) -> np.ndarray:
    """The network on ``vol`` (sides multiples of :attr:`UNet3D.multiple`): in one call up to
    :data:`WHOLE_VOLUME_MAX_VOXELS`, else in slabs along the longest axis, each computed with
    :data:`SLAB_MARGIN` voxels of context on both sides and only its core kept (at least 16 voxels)."""
    def forward(chunk: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.ascontiguousarray(chunk), device=reg.device)[None, None]
        return reg.apply_normalised(t)[0, 0].float().cpu().numpy()

    check_cancel(cancel)
    if vol.size <= WHOLE_VOLUME_MAX_VOXELS:
        y = forward(vol)
        report(progress, 1.0, "network done")
        return y
    m = reg.net.multiple
    axis = int(np.argmax(vol.shape))
    n, rest = vol.shape[axis], vol.size // vol.shape[axis]
    margin = -(-SLAB_MARGIN // m) * m
    core = max(16, WHOLE_VOLUME_MAX_VOXELS // rest - 2 * margin)
    core -= core % m
    out = np.empty(vol.shape, np.float32)
    starts = list(range(0, n, core))

    def along(a: int, b: int) -> tuple[slice, ...]:  # the slab a:b of the axis, the volume's own orientation
        return tuple(slice(a, b) if i == axis else slice(None) for i in range(3))

    for k, s in enumerate(starts):
        check_cancel(cancel)
        lo, hi, end = max(0, s - margin), min(n, s + core + margin), min(n, s + core)
        out[along(s, end)] = forward(vol[along(lo, hi)])[along(s - lo, end - lo)]
        report(progress, (k + 1) / len(starts), f"network slab {k + 1}/{len(starts)}")
    return out


def network_volume(reg: "DeepRegularizer", x: np.ndarray, *, tiling: str = "whole", batch_size: Optional[int] = None,
                   progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None) -> np.ndarray:
    """The network's output for a normalised volume ``x`` (Z, Y, X), float32.

    ``tiling="whole"``: axes shorter than the 64-voxel training patch are reflected up to it (as
    the patches always were), the ends reflected to a multiple of :attr:`UNet3D.multiple`, and
    the volume goes through the network in one call when it has at most
    :data:`WHOLE_VOLUME_MAX_VOXELS` voxels (beyond, in slabs along its longest axis that overlap
    by :data:`SLAB_MARGIN` voxels of context on each side). The network is
    fully convolutional and its normalisation is per channel at inference, so each voxel sees
    all the context its receptive field (about 80 voxels) reaches, where a 64³ patch cut it off;
    on the demo bacterium (128 × 256 × 256) the result is as close to TV as the patches'
    (Gaussian SSIM 0.991 both) for 2.4× less time. ``tiling="patches"``: the paper's 64³
    patches with stride 32 and squared-Hann blending (:mod:`.stitching`), 4.6× the voxels.
    """
    if tiling not in TILINGS:
        raise ValueError(f"tiling must be one of {TILINGS}, got {tiling!r}")
    bs = int(batch_size or (16 if reg.device.type == "cuda" else 2))
    if tiling == "patches":
        return stitch_apply(x, reg.apply_normalised, batch_size=bs, device=reg.device, progress=progress,
                            cancel=cancel)
    padded, crop_small = pad_to_patch(x, PATCH_SIZE)
    padded, _ = _pad_to_multiple(padded, reg.net.multiple)
    y = _apply_in_slabs(reg, padded, progress, cancel)
    shape = tuple(s.stop - s.start for s in crop_small)
    return np.ascontiguousarray(y[crop_small][:shape[0], :shape[1], :shape[2]], dtype=np.float32)


def regularize_deep(
    ri: np.ndarray,
    medium_index: float,
    *,
    model: str | Path | DeepRegularizer = "default",
    device: str | torch.device = "auto",
    batch_size: Optional[int] = None,
    non_negativity: bool = True,
    tiling: str = "whole",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> np.ndarray:
    """Missing-cone filling and denoising of a raw Rytov tomogram by the learned regulariser.

    Parameters
    ----------
    ri : ndarray, shape (Z, Y, X), float
        Refractive index from the plain Rytov reconstruction (``Tomogram.ri`` without
        non-negativity), any size.
    medium_index : float
        n_m.
    model : str, Path or DeepRegularizer
        ``"default"``, a model name, a path, or an already loaded model.
    device : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Patches per network call with tiles (default 2 on CPU, 16 on CUDA).
    non_negativity : bool
        Clamp the result to ``n ≥ n_m`` (what TV with non-negativity yields).
    tiling : {"whole", "patches"}
        See :func:`network_volume` (default: the whole volume in one piece).
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        Regularised refractive index, same size as ``ri``.

    References
    ----------
    D. Ryu et al., IEEE Trans. Med. Imaging 40, 1508 (2021).
    """
    vol = np.asarray(ri, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got shape {vol.shape}")
    if not np.all(np.isfinite(vol)):
        raise ValueError("the tomogram holds NaN or infinite values")
    report(progress, 0.0, "loading the learned regulariser")
    reg = model if isinstance(model, DeepRegularizer) else load_deep_regularizer(model, device=device)
    if isinstance(model, DeepRegularizer) and device not in (None, "auto"):
        reg = reg.to(device)
    check_cancel(cancel)
    scale = reg.delta_n_scale
    nm = float(medium_index)
    x = (vol - np.float32(nm)) / np.float32(scale)
    y = network_volume(reg, x, tiling=tiling, batch_size=batch_size,
                       progress=sub_progress(progress, 0.02, 1.0, "deep regulariser: "), cancel=cancel)
    out = np.float32(nm) + np.float32(scale) * y
    if non_negativity:
        np.maximum(out, np.float32(nm), out=out)
    report(progress, 1.0, "deep regulariser done")
    return out.astype(np.float32, copy=False)


#: inner (FGP) iterations per polishing TV iteration for a card that does not say
DEFAULT_POLISH_INNER_ITERATIONS = 5


def polish_iterations_of(card: dict, outer: Optional[int] = None, inner: Optional[int] = None) -> tuple[int, int]:
    """(outer, inner) TV iterations that follow the network: those given, else the card's
    ``inference.tv_polish`` (a card without it: (0, 0), the network alone)."""
    polish = (card.get("inference") or {}).get("tv_polish") or {}
    o = int(polish.get("outer_iterations", 0)) if outer is None else int(outer)
    i = int(polish.get("inner_iterations", DEFAULT_POLISH_INNER_ITERATIONS)) if inner is None else int(inner)
    return max(0, o), (max(1, i) if o > 0 else 0)


def learned_step_record(outer: Optional[int] = None, model: str | Path = "default") -> dict:
    """What a result file records of the learned step: ``{"deep_model": "deep_regularizer 2.3.0",
    "deep_polish": "5x3"}`` (outer × inner TV iterations after the network; ``"0x0"``: none)."""
    try:
        card = model_card(model)
    except (OSError, ValueError) as exc:  # a record, not a computation: say why instead of failing
        return {"deep_model": f"unreadable ({exc})"}
    o, i = polish_iterations_of(card, outer)
    return {"deep_model": f"{card.get('name', DEFAULT_MODEL_NAME)} {card.get('version', '?')}", "deep_polish": f"{o}x{i}"}


def polish_tv(ri_deep: np.ndarray, data, *, outer_iterations: int, inner_iterations: int,
              weight: Optional[float] = None, non_negativity: bool = True,
              progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None) -> np.ndarray:
    """A few iterations of :func:`~engine.tomography.tv.regularize_tv` started from the network's
    volume instead of the direct inversion (a learned initialisation of the iterative solver).

    The network's index is turned back into the scattering potential by the square-root relation
    it was trained with (:func:`~engine.tomography.fourier_mapping.ri_to_scattering_potential`),
    and the result is read out as TV's own (``data.to_ri``: linear in n − n_m for Rytov), so the
    polished volume and ``ri_tv`` share one convention. Each iteration restores the measured
    Fourier values (data consistency) and applies the TV proximal step with non-negativity; the
    network supplies what 30 iterations from the direct inversion would otherwise have to build.

    Parameters
    ----------
    ri_deep : ndarray, shape (Z, Y, X)
        The network's refractive index (:func:`regularize_deep`).
    data : FourierData
        The measured spectrum and support (``Tomogram.fourier``).
    outer_iterations, inner_iterations : int
        FISTA and FGP iterations (0 outer: ``ri_deep`` unchanged).
    weight : float, optional
        TV weight τ (default :data:`~engine.tomography.tv.DEFAULT_TV_WEIGHT`, what the network imitates).
    progress, cancel
        See :mod:`engine.progress` (one report per iteration).

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
    """
    from .fourier_mapping import ri_to_scattering_potential
    from .tv import DEFAULT_TV_WEIGHT, regularize_tv

    if outer_iterations <= 0:
        return np.asarray(ri_deep, np.float32)
    x0 = ri_to_scattering_potential(torch.as_tensor(np.asarray(ri_deep, np.float32), device=data.spectrum.device),
                                    float(data.medium_index))
    x = regularize_tv(data, weight=DEFAULT_TV_WEIGHT if weight is None else float(weight), x0=x0,
                      outer_iterations=int(outer_iterations), inner_iterations=max(1, int(inner_iterations)),
                      non_negativity=non_negativity, progress=progress, cancel=cancel)
    return data.to_ri(x).to(torch.float32).cpu().numpy()


def regularize_deep_fourier(data, *, polish_outer: Optional[int] = None, polish_inner: Optional[int] = None,
                            model: str | Path | DeepRegularizer = "default", device: str | torch.device = "auto",
                            progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None,
                            **kwargs) -> np.ndarray:
    """The learned step of the pipeline on a :class:`~engine.tomography.fourier_mapping.FourierData`
    (``Tomogram.fourier`` with ``keep_fourier=True``): the network on the plain Rytov tomogram it
    holds (whatever constraint was applied to ``Tomogram.ri``), then ``polish_outer`` × ``polish_inner``
    TV iterations from the network's volume (:func:`polish_tv`; None: the model card's
    ``inference.tv_polish``, :func:`polish_iterations_of`; 0 outer: the network alone).

    Returns the regularised refractive index (Z, Y, X) float32; other keyword arguments go to
    :func:`regularize_deep`.
    """
    from .fourier_mapping import scattering_potential_to_ri

    reg = model if isinstance(model, DeepRegularizer) else load_deep_regularizer(model, device=device)
    outer, inner = polish_iterations_of(reg.card, polish_outer, polish_inner)
    split = 0.6 if outer > 0 else 1.0
    raw = scattering_potential_to_ri(torch.fft.ifftn(data.spectrum).real, data.medium_index)
    out = regularize_deep(raw.float().cpu().numpy(), data.medium_index, model=reg, device=device,
                          progress=sub_progress(progress, 0.0, split, ""), cancel=cancel, **kwargs)
    if outer > 0:
        report(progress, split, f"TV polish: {outer} x {inner} iterations")
        out = polish_tv(out, data, outer_iterations=outer, inner_iterations=inner,
                        non_negativity=kwargs.get("non_negativity", True),
                        progress=sub_progress(progress, split, 1.0, "polish: "), cancel=cancel)
        report(progress, 1.0, "TV polish done")
    return out


# --------------------------------------------------------------------------- training domain
#: the quantities of a model card's ``domain`` that :func:`domain_check` compares: key → (label, unit, format)
DOMAIN_QUANTITIES: dict[str, tuple[str, str, str]] = {
    "na_objective": ("objective NA", "", "{:.2f}"),
    "medium_index": ("medium index n_m", "", "{:.4f}"),
    "wavelength_um": ("wavelength", " µm", "{:.3f}"),
    "voxel_um": ("pixel (voxel) size", " µm", "{:.3f}"),
    "n_illuminations": ("number of illuminations", "", "{:.0f}"),
    "illumination_na_fraction": ("largest illumination NA / objective NA", "", "{:.3f}"),
}


def _illumination_pattern(f_per_um: np.ndarray) -> Optional[str]:
    """``"ring"`` (few distinct illumination radii), ``"circle"`` (one) or ``"spiral"``; None if too few."""
    r = np.hypot(f_per_um[:, 0], f_per_um[:, 1])
    r = r[r > 1e-9]
    if r.size < 4:
        return None
    distinct = np.unique(np.round(r / r.max(), 2)).size
    return "circle" if distinct == 1 else "ring" if distinct <= max(2, r.size // 3) else "spiral"


def measurement_setup(metadata, *, illumination_per_um=None, used=None) -> dict:
    """The quantities of :data:`DOMAIN_QUANTITIES` (and ``pattern``) of one measurement.

    Parameters
    ----------
    metadata : MeasurementMetadata or dict
        ``wavelength_um``, ``medium_index``, ``na_objective``, ``pixel_size_um`` (the tomogram's
        lateral voxel) and, optionally, ``illumination_per_um`` (N, 2) cycles/µm.
    illumination_per_um : array (N, 2), optional
        The retrieved illuminations (used instead of the metadata's).
    used : array (N,) of bool/0-1, optional
        The fields the reconstruction used (screening decision); all by default.

    Returns
    -------
    dict
        Known quantities only (a missing one is left out).
    """
    get = metadata.get if isinstance(metadata, dict) else (lambda k: getattr(metadata, k, None))
    out: dict = {}
    for key, src in (("na_objective", "na_objective"), ("medium_index", "medium_index"),
                     ("wavelength_um", "wavelength_um"), ("voxel_um", "pixel_size_um")):
        if get(src) is not None:
            out[key] = float(get(src))
    ill = illumination_per_um if illumination_per_um is not None else get("illumination_per_um")
    if ill is not None and len(ill):
        f = np.asarray(ill, np.float64).reshape(-1, 2)
        if used is not None and np.asarray(used).shape == (f.shape[0],):
            f = f[np.asarray(used).astype(bool)]
        out["n_illuminations"] = int(f.shape[0])
        if f.shape[0] and "wavelength_um" in out and out.get("na_objective"):
            out["illumination_na_fraction"] = float(np.hypot(f[:, 0], f[:, 1]).max() * out["wavelength_um"]
                                                    / out["na_objective"])
        pattern = _illumination_pattern(f)
        if pattern:
            out["pattern"] = pattern
    return out


def _compared_setup(metadata, illumination_per_um, used) -> dict:
    """:func:`measurement_setup`, plus the :data:`DOMAIN_QUANTITIES` a dict ``metadata`` holds as is."""
    setup = measurement_setup(metadata, illumination_per_um=illumination_per_um, used=used)
    if isinstance(metadata, dict):
        setup.update({k: float(v) for k, v in metadata.items() if k in DOMAIN_QUANTITIES and v is not None})
    return setup


def domain_check(metadata, card: dict, *, illumination_per_um=None, used=None) -> list[str]:
    """Human-readable warnings for each quantity of a measurement outside the model's training domain.

    Parameters
    ----------
    metadata : MeasurementMetadata or dict
        See :func:`measurement_setup`; a dict that already holds :data:`DOMAIN_QUANTITIES` keys
        (e.g. ``voxel_um``) is taken as is.
    card : dict
        The model card; its ``domain`` maps each quantity to ``[min, max]`` and may list
        ``illumination_patterns``.
    illumination_per_um, used
        See :func:`measurement_setup`.

    Returns
    -------
    list of str
        One warning per quantity outside its range, saying by how much (empty: inside the domain,
        or nothing known to compare). A card without ``domain`` gives one warning saying so.
    """
    label = f"{card.get('name', DEFAULT_MODEL_NAME)} {card.get('version', '')}".strip()
    domain = card.get("domain")
    if not isinstance(domain, dict):
        return [f"the learned regulariser ({label}) does not state the setups it was trained for; "
                "its result may differ from TV's more than its held-out numbers say"]
    setup = _compared_setup(metadata, illumination_per_um, used)
    warnings = [f"learned regulariser ({label}) outside its training domain: {name} {why}"
                for name, why in quantities_outside(setup, domain, DOMAIN_QUANTITIES)]
    patterns = domain.get("illumination_patterns")
    if setup.get("pattern") and patterns and setup["pattern"] not in patterns:
        warnings.append(f"learned regulariser ({label}) outside its training domain: the illuminations look like "
                        f"a {setup['pattern']} pattern; it was trained on {' and '.join(patterns)} patterns only")
    return warnings


def domain_excess(metadata, card: dict, *, illumination_per_um=None, used=None) -> tuple[float, str]:
    """How far a measurement lies outside the model's training domain: the largest relative excess
    of any quantity beyond its trained range (e.g. 0.25 for an illumination NA fraction of 0.6
    against 0.8–0.95), each times the card's ``domain_excess_weights`` factor for it (1 if none:
    2.2.0's card counts the number of illuminations ×0.2, the learned step being about five times
    less sensitive to it than to the illumination NA, the wavelength ×0.25 and the objective NA ×0.4), and that quantity's label; ``(0.0, "")``
    inside, or when the card states no domain (arguments as :func:`domain_check`)."""
    from ..domain import largest_excess

    domain = card.get("domain")
    if not isinstance(domain, dict):
        return 0.0, ""
    weights = card.get("domain_excess_weights")
    weights = {k: float(v) for k, v in weights.items() if k in DOMAIN_QUANTITIES and float(v) >= 0} \
        if isinstance(weights, dict) else None
    return largest_excess(_compared_setup(metadata, illumination_per_um, used), domain, DOMAIN_QUANTITIES, weights)


def model_card(model: str | Path = "default", models_dir: Path = MODELS_DIR) -> dict:
    """The JSON card of a learned regulariser (no weights read)."""
    import json

    from ..models import resolve_model_file

    name = DEFAULT_MODEL_NAME if str(model) == "default" else model
    path = resolve_model_file(name, models_dir).with_suffix(".json")
    return json.loads(path.read_text(encoding="utf-8"))


def pipeline_domain_warnings(name: str, metadata, *, illumination_per_um=None, used=None,
                             model: str | Path = "default") -> list[str]:
    """:func:`domain_check` of a measurement against the shipped model's card, each warning
    prefixed with the measurement's ``name`` (the pipeline's warning style); a missing or
    unreadable card is a warning too."""
    try:
        card = model_card(model)
    except (OSError, ValueError) as exc:
        return [f"{name}: the learned regulariser's model card cannot be read ({exc})"]
    return [f"{name}: {w}" for w in domain_check(metadata, card, illumination_per_um=illumination_per_um, used=used)]
