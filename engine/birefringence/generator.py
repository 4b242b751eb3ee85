"""Learned birefringence generator: n_e and n_o volumes of LC droplets from Jones fields.

An Encoder–3D-GRU–Attention–Decoder network after Kim et al. (2024), the learned counterpart of
dielectric tensor tomography (:mod:`.tensor_tomography`). It returns the same
:class:`~.tensor_tomography.TensorTomogram` as :func:`~.tensor_tomography.reconstruct_tensor`.

Conventions (``docs/formats.md``)
-----------------------------------
* µm and cycles/µm; volumes (z, y, x); voxel ``j`` of ``n`` at ``(j − n//2)·d`` (x = y = 0 at the
  image centre, z = 0 at the focal plane of the fields).
* Fields ``exp(+i(k·r − ωt))`` (n > n_m gives a positive phase); illumination
  ``exp(2πi(f_x x + f_y y + f_z z))``; propagation by +z multiplies the angular spectrum by
  ``exp(+2πi ν_z z)``, ``ν_z = sqrt((n_m/λ)² − ν_x² − ν_y²)``; spectra by ``fft2`` with
  ``fftfreq(n, d=pixel)``.

Input (:func:`generator_inputs`)
--------------------------------
1. Jones fields ``J`` (N, 2, 2, H, W) are Fourier-resampled to the model's pixel (lossless when
   the pupil ``NA/λ`` is below the new Nyquist frequency; e.g. the demo's 192² at 0.1 µm → 96² at
   0.2 µm) and turned into the Jones–Rytov field ``ψ = log J`` (:func:`.jones_rytov`): 4
   complex = 8 real channels (Re, Im of ψ_xx, ψ_xy, ψ_yx, ψ_yy).
2. Lifting to 3-D by angular-spectrum propagation (cheap and physics-informed): for
   illumination ``f`` the scattered spectrum at ``ν = q + f`` (inside the pupil) is refocused to
   every output plane ``z_d``, ``ψ(z_d) = ifft2(fft2(ψ) · exp(2πi(ν_z − f_z) z_d))`` (the field
   normalised by the incident wave). Summed over illuminations this is the (unfiltered)
   back-propagation of the Fourier diffraction theorem: an object is in focus at its depth.
3. Illuminations, in acquisition order, are grouped into windows of ``window`` consecutive ones
   and each window is mean-condensed: a sequence of ``T = ceil(N / window)`` volumes
   (T, 8, D, H, W), multiplied by ``input_scale`` (card). H, W, D are padded to multiples of 4
   (ψ = 0, i.e. J = I, outside), and the output is cropped back.

Network (:class:`BirefringenceGenerator`)
-----------------------------------------
* Encoder, shared over the T steps: five down-residual blocks (pre-activation BN–ReLU–Conv3D
  twice, plus a 1×1×1 convolution shortcut, added). At this grid only blocks 1 and 3 halve the
  grid (strides 2, 1, 2, 1, 1: D/4 at the bottleneck) — a 32³ volume cannot be halved five times
  and still be decoded by three up-blocks.
* 3-D ConvGRU over the steps: reset and update gates and the candidate state from 3×3×3
  convolutions of ``[x_t, h_{t−1}]`` (``h_0 = 0``).
* Attention over the T hidden states: at every voxel a dense layer (1×1×1 convolution),
  ``tanh``, a dense layer to one score, softmax over the T positions; the context is the
  weighted sum of the hidden states (weights sum to 1 at each voxel).
* Decoder: three up-residual blocks with transposed convolutions (strides 2, 2, 1). Deviation
  from the paper, for sharp droplet edges at this small size: the step-averaged encoder
  features at D/2 are added after the first up-block and the step-averaged input (8 channels,
  full resolution) is concatenated before the last (U-Net-like skips).
* Head: BN–ReLU–1×1×1 convolution to 2 channels, a sigmoid, scaled to ``[n_min, n_max]`` of the
  card: channel 0 is n_e, channel 1 n_o. The bias starts at the medium index.

Target and director
-------------------
The shipped model is trained on the simulator's *ground truth* n_e and n_o (n_m outside the
droplet), not on DTT results as in the paper: first-order DTT is biased for strong droplets
(Δn underestimated ~40 %, n_e by −0.15 for 5CB-like droplets, see :mod:`.tensor_tomography`),
and a network trained on truth can beat that teacher. The network outputs no director:
``reconstruct_tensor_learned(director="none")`` (default) returns a zero director and the
isotropic ε with the right trace, ``director="dtt"`` takes the director from a first-order DTT
of the same fields (its cost added) and builds ``ε = n_o² I + (n_e² − n_o²) d dᵀ``.

Validity: the model is trained at one setup (λ, n_m, NA, voxel, illumination pattern: see the
card's ``input``). :func:`reconstruct_tensor_learned` raises ``ValueError`` when λ, n_m or NA
differ by more than 2 % from the card (the learned mapping does not transfer); other pixel sizes
are Fourier-resampled to the model's voxel, other field sizes work (fully convolutional).

References
----------
.. [1] J. Kim et al., "Deep learning-based reconstruction of the dielectric tensor of liquid
   crystal droplets" (Encoder–3D-GRU–Attention–Decoder on holograms grouped into sequences),
   Sci. Rep. 14 (2024).
.. [2] N. Ballas, L. Yao, C. Pal, A. Courville, "Delving deeper into convolutional networks for
   learning video representations", ICLR (2016) (convolutional GRU).
.. [3] D. Bahdanau, K. Cho, Y. Bengio, "Neural machine translation by jointly learning to align
   and translate", ICLR (2015) (additive tanh attention).
.. [4] K. He, X. Zhang, S. Ren, J. Sun, "Identity mappings in deep residual networks", ECCV
   (2016) (pre-activation residual blocks).
.. [5] S. Shin et al., "Tomographic measurement of dielectric tensors at optical frequency",
   Nat. Mater. 21, 317 (2022).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..backend import resolve_device
from ..metadata import MeasurementMetadata
from ..models import MODELS_DIR, ModelFileError, load_network, save_safetensors_model
from ..progress import CancelToken, check_cancel, report
from .jones import JonesFields
from .tensor_tomography import TensorTomogram, jones_rytov, reconstruct_tensor

__all__ = [
    "DEFAULT_GENERATOR_NAME",
    "DEFAULT_ARCHITECTURE",
    "ResidualBlock3d",
    "ConvGRU3d",
    "TemporalAttention",
    "BirefringenceGenerator",
    "build_generator",
    "architecture_of",
    "resample_jones",
    "generator_inputs",
    "save_generator",
    "load_generator",
    "LoadedGenerator",
    "reconstruct_tensor_learned",
]

DEFAULT_GENERATOR_NAME = "birefringence-generator"
TASK = "birefringence-generator"
#: architecture of the shipped network (a card's ``architecture`` entry overrides it)
DEFAULT_ARCHITECTURE = {
    "type": "encoder-convgru-attention-decoder",
    "in_channels": 8,
    "encoder_channels": [12, 16, 24, 32, 32],
    "encoder_strides": [2, 1, 2, 1, 1],
    "hidden_channels": 32,
    "attention_channels": 16,
    "decoder_channels": [16, 8, 8],
    "decoder_strides": [2, 2, 1],
    "n_min": 1.44,
    "n_max": 1.76,
    "n_init": 1.46,
}
MULTIPLE = 4  # volumes must be multiples of this (two stride-2 stages)
#: ATen runs a CPU float 3-D convolution of a batch of one by its slow native kernel when N·C·D·H is at
#: most this (a heuristic of ``ConvParams::use_mkldnn``), ~5× slower than oneDNN: see :func:`_conv3d`
_ATEN_NATIVE_CONV_LIMIT = 20480


def _conv3d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, computed so that PyTorch uses its fast oneDNN kernel on the CPU (same result).

    For one volume (batch 1) with ``N·C·D·H ≤ 20480`` — the ConvGRU at D/4 (1 × 64 × 8 × 32 × 32)
    and the first up-block's second convolution — ATen picks its slow native convolution (5× slower
    here: 155 → 29 ms per gate convolution on one thread). With a cubic kernel and the same stride,
    padding and dilation on every axis, convolving the input with D and W swapped by the kernel with
    its D and W swapped is the same convolution (up to the order of the float sums), and the swapped
    shape passes the heuristic when W > D. Other cases call ``conv`` as it is.
    """
    k, st, pd, dl = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    if (x.device.type != "cpu" or x.dtype != torch.float32 or x.ndim != 5 or x.shape[0] != 1
            or x.shape[1] * x.shape[2] * x.shape[3] > _ATEN_NATIVE_CONV_LIMIT or x.shape[4] <= x.shape[2]
            or conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(pd, str)
            or not (k[0] == k[2] and st[0] == st[2] and pd[0] == pd[2] and dl[0] == dl[2])):
        return conv(x)
    y = nn.functional.conv3d(x.transpose(2, 4).contiguous(), conv.weight.transpose(2, 4).contiguous(), conv.bias,
                             st, pd, dl, 1)
    return y.transpose(2, 4).contiguous()


# --------------------------------------------------------------------------- blocks
class ResidualBlock3d(nn.Module):
    """Pre-activation residual block: (BN–ReLU–Conv3D) twice, plus a shortcut, added.

    Parameters
    ----------
    c_in, c_out : int
        Channels.
    stride : {1, 2}
        Down (``up=False``: the first convolution strides) or up (``up=True``: the first
        convolution is a transposed convolution that multiplies the grid by ``stride``).
    up : bool
        Up-residual block (transposed convolutions) instead of a down-residual block.

    Shapes
    ------
    (B, c_in, D, H, W) → (B, c_out, D/s, H/s, W/s) (down) or (B, c_out, D·s, H·s, W·s) (up).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, up: bool = False) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError("stride must be 1 or 2")
        self.bn1, self.bn2 = nn.BatchNorm3d(c_in), nn.BatchNorm3d(c_out)
        if up:
            k = 4 if stride == 2 else 3
            self.conv1 = nn.ConvTranspose3d(c_in, c_out, k, stride=stride, padding=1, bias=False)
            self.shortcut = (nn.ConvTranspose3d(c_in, c_out, stride, stride=stride, bias=False)
                             if (stride != 1 or c_in != c_out) else nn.Identity())
        else:
            self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.shortcut = (nn.Conv3d(c_in, c_out, 1, stride=stride, bias=False)
                             if (stride != 1 or c_in != c_out) else nn.Identity())
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn1(x))
        h = _conv3d(self.conv1, h) if isinstance(self.conv1, nn.Conv3d) else self.conv1(h)
        h = _conv3d(self.conv2, self.act(self.bn2(h)))
        return h + self.shortcut(x)


class ConvGRU3d(nn.Module):
    """3-D convolutional GRU cell.

    ``r, u = σ(conv([x, h]))``, ``ĥ = tanh(conv([x, r ⊙ h]))``, ``h' = (1 − u) ⊙ h + u ⊙ ĥ``
    (reset ``r`` and update ``u`` gates from 3×3×3 convolutions).

    Shapes
    ------
    ``forward(xs)``: (B, T, C_in, D, H, W) → all hidden states (B, T, C_h, D, H, W).

    References
    ----------
    .. [1] Ballas et al., ICLR (2016); Cho et al., EMNLP (2014).
    """

    def __init__(self, c_in: int, c_hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.c_hidden = c_hidden
        self.gates = nn.Conv3d(c_in + c_hidden, 2 * c_hidden, kernel, padding=kernel // 2)
        self.candidate = nn.Conv3d(c_in + c_hidden, c_hidden, kernel, padding=kernel // 2)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r, u = torch.sigmoid(_conv3d(self.gates, torch.cat([x, h], 1))).chunk(2, dim=1)
        cand = torch.tanh(_conv3d(self.candidate, torch.cat([x, r * h], 1)))
        return (1 - u) * h + u * cand

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        b, t, _, d, hh, ww = xs.shape
        h = xs.new_zeros(b, self.c_hidden, d, hh, ww)
        out = []
        for k in range(t):
            h = self.step(xs[:, k], h)
            out.append(h)
        return torch.stack(out, 1)


class TemporalAttention(nn.Module):
    """Additive attention over the sequence positions, at every voxel.

    ``e_t = wᵀ tanh(W h_t + b)`` (dense layers as 1×1×1 convolutions), ``α = softmax_t(e)``,
    context ``Σ_t α_t h_t``.

    Shapes
    ------
    (B, T, C, D, H, W) → context (B, C, D, H, W) and weights α (B, T, D, H, W) (sum 1 over T).

    References
    ----------
    .. [1] Bahdanau et al., ICLR (2015).
    """

    def __init__(self, c_hidden: int, c_attention: int) -> None:
        super().__init__()
        self.dense = nn.Conv3d(c_hidden, c_attention, 1)
        self.score = nn.Conv3d(c_attention, 1, 1)

    def forward(self, hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = hs.shape[:2]
        e = self.score(torch.tanh(self.dense(hs.flatten(0, 1)))).reshape(b, t, *hs.shape[3:])
        alpha = torch.softmax(e, dim=1)
        return (alpha.unsqueeze(2) * hs).sum(1), alpha


class BirefringenceGenerator(nn.Module):
    """Encoder–3D-ConvGRU–Attention–Decoder from lifted Jones–Rytov sequences to (n_e, n_o).

    Parameters
    ----------
    in_channels : int
        Input channels per step (8: Re/Im of the four Jones–Rytov components).
    encoder_channels, encoder_strides : 5 ints each
        The five down-residual blocks.
    hidden_channels, attention_channels : int
        ConvGRU state and attention widths.
    decoder_channels, decoder_strides : 3 ints each
        The three up-residual blocks (the strides must undo the encoder's).
    n_min, n_max : float
        Output range (refractive index): ``n = n_min + (n_max − n_min)·σ(·)``.
    n_init : float
        Index the untrained network outputs (head bias), the medium index of the training data.

    Shapes
    ------
    ``forward(x)``: (B, T, in_channels, D, H, W) → (B, 2, D, H, W) float, channel 0 n_e, 1 n_o;
    D, H, W multiples of 4 (:data:`MULTIPLE`). ``forward(x, return_attention=True)`` also returns
    the attention weights (B, T, D/4, H/4, W/4).
    """

    def __init__(self, in_channels: int = 8, encoder_channels: Sequence[int] = (12, 16, 24, 32, 32),
                 encoder_strides: Sequence[int] = (2, 1, 2, 1, 1), hidden_channels: int = 32,
                 attention_channels: int = 16, decoder_channels: Sequence[int] = (16, 8, 8),
                 decoder_strides: Sequence[int] = (2, 2, 1), n_min: float = 1.44, n_max: float = 1.76,
                 n_init: float = 1.46) -> None:
        super().__init__()
        enc_c, enc_s = [int(c) for c in encoder_channels], [int(s) for s in encoder_strides]
        dec_c, dec_s = [int(c) for c in decoder_channels], [int(s) for s in decoder_strides]
        if len(enc_c) != 5 or len(enc_s) != 5 or len(dec_c) != 3 or len(dec_s) != 3:
            raise ValueError("five encoder blocks and three decoder blocks")
        if math.prod(enc_s) != math.prod(dec_s) or math.prod(enc_s) != MULTIPLE:
            raise ValueError("decoder strides must undo the encoder strides (total 4)")
        if not n_min < n_init < n_max:
            raise ValueError("need n_min < n_init < n_max")
        self.n_min, self.n_max, self.n_init = float(n_min), float(n_max), float(n_init)
        self.encoder = nn.ModuleList()
        c = in_channels
        for co, s in zip(enc_c, enc_s):
            self.encoder.append(ResidualBlock3d(c, co, s))
            c = co
        # the skip at half resolution: the last encoder block that works at stride 2
        scale, self._skip_index = 1, None
        for i, s in enumerate(enc_s):
            scale *= s
            if scale == 2:
                self._skip_index = i
        if self._skip_index is None or enc_c[self._skip_index] != dec_c[0] or dec_s[0] != 2:
            raise ValueError("the half-resolution skip needs an encoder block at D/2 with decoder_channels[0] "
                             "channels and a first decoder stride of 2")
        self.gru = ConvGRU3d(c, hidden_channels)
        self.attention = TemporalAttention(hidden_channels, attention_channels)
        self.decoder = nn.ModuleList()
        c = hidden_channels
        for i, (co, s) in enumerate(zip(dec_c, dec_s)):
            if i == 2:
                c += in_channels  # the step-averaged input is concatenated before the last block
            self.decoder.append(ResidualBlock3d(c, co, s, up=True))
            c = co
        self.head_bn = nn.BatchNorm3d(c)
        self.head = nn.Conv3d(c, 2, 1)
        p = (n_init - n_min) / (n_max - n_min)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(p / (1 - p)))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if x.ndim != 6:
            raise ValueError(f"input must be (B, T, C, D, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        if any(n % MULTIPLE for n in x.shape[3:]):
            raise ValueError(f"D, H, W must be multiples of {MULTIPLE}, got {tuple(x.shape[3:])}")
        h = x.flatten(0, 1)
        skip = None
        for i, blk in enumerate(self.encoder):
            h = blk(h)
            if i == self._skip_index:
                skip = h.reshape(b, t, *h.shape[1:]).mean(1)
        hs = self.gru(h.reshape(b, t, *h.shape[1:]))
        ctx, alpha = self.attention(hs)
        y = self.decoder[0](ctx) + skip
        y = self.decoder[1](y)
        y = self.decoder[2](torch.cat([y, x.mean(1)], 1))
        y = self.head(torch.relu(self.head_bn(y)))
        n = self.n_min + (self.n_max - self.n_min) * torch.sigmoid(y)
        return (n, alpha) if return_attention else n


def build_generator(architecture: Optional[dict] = None) -> BirefringenceGenerator:
    """A :class:`BirefringenceGenerator` from a card's ``architecture`` (defaults filled in)."""
    arch = {**DEFAULT_ARCHITECTURE, **(architecture or {})}
    if arch.get("type") != DEFAULT_ARCHITECTURE["type"]:
        raise ModelFileError(f"unknown generator architecture {arch.get('type')!r}")
    keys = ("in_channels", "encoder_channels", "encoder_strides", "hidden_channels", "attention_channels",
            "decoder_channels", "decoder_strides", "n_min", "n_max", "n_init")
    return BirefringenceGenerator(**{k: arch[k] for k in keys})


def architecture_of(net: BirefringenceGenerator) -> dict:
    """The card's ``architecture`` entry describing ``net``."""
    return {
        "type": DEFAULT_ARCHITECTURE["type"],
        "in_channels": net.encoder[0].conv1.in_channels,
        "encoder_channels": [blk.conv1.out_channels for blk in net.encoder],
        "encoder_strides": [blk.conv1.stride[0] for blk in net.encoder],
        "hidden_channels": net.gru.c_hidden,
        "attention_channels": net.attention.dense.out_channels,
        "decoder_channels": [blk.conv1.out_channels for blk in net.decoder],
        "decoder_strides": [blk.conv1.stride[0] for blk in net.decoder],
        "n_min": net.n_min,
        "n_max": net.n_max,
        "n_init": net.n_init,
        "outputs": ["n_e", "n_o"],
        "encoder_block": "pre-activation (BN-ReLU-Conv3d 3x3x3) x2 + 1x1x1 conv shortcut, added",
        "decoder_block": "(BN-ReLU-ConvTranspose3d) + (BN-ReLU-Conv3d) + transposed-conv shortcut, added",
        "gru": "3-D ConvGRU, 3x3x3 gate and candidate convolutions, h0 = 0",
        "attention": "per voxel: 1x1x1 dense, tanh, 1x1x1 dense to a score, softmax over the T steps",
        "skips": "step-mean encoder features at D/2 added after up-block 1; step-mean input concatenated "
                 "before up-block 3",
    }


# --------------------------------------------------------------------------- input builder
def resample_jones(field: np.ndarray | torch.Tensor, pixel_um: float, new_pixel_um: float,
                   device: str | torch.device = "auto") -> torch.Tensor:
    """Fourier-resample Jones fields (N, 2, 2, H, W) from ``pixel_um`` to ``new_pixel_um``.

    The centred spectrum is cropped (or zero-padded) to ``round(H·pixel/new_pixel)`` samples:
    exact for fields band-limited below the new Nyquist frequency (the pupil ``NA/λ``).
    Returns complex64 (N, 2, 2, H', W') on ``device``.
    """
    dev = resolve_device(device)
    j = torch.as_tensor(field, device=dev).to(torch.complex64)
    if abs(pixel_um - new_pixel_um) < 1e-6 * new_pixel_um:
        return j
    hh, ww = j.shape[-2:]
    h2, w2 = (max(2, int(round(n * pixel_um / new_pixel_um))) for n in (hh, ww))
    spec = torch.fft.fft2(j)
    out = torch.zeros(*j.shape[:-2], h2, w2, dtype=torch.complex64, device=dev)
    ch, cw = min(hh, h2), min(ww, w2)
    sy, sx = hh // 2 - ch // 2, ww // 2 - cw // 2
    ty, tx = h2 // 2 - ch // 2, w2 // 2 - cw // 2
    # rows sy … sy+ch of the fftshift-ed spectrum, gathered without shifting the whole of it
    iy = (torch.arange(sy, sy + ch, device=dev) - hh // 2) % hh
    ix = (torch.arange(sx, sx + cw, device=dev) - ww // 2) % ww
    out[..., ty:ty + ch, tx:tx + cw] = spec.index_select(-2, iy).index_select(-1, ix)
    return torch.fft.ifft2(torch.fft.ifftshift(out, dim=(-2, -1))) * (h2 * w2 / (hh * ww))


def _round_up(n: int, m: int = MULTIPLE) -> int:
    return -(-int(n) // m) * m


def _centre_pad(psi: torch.Tensor, h2: int, w2: int) -> torch.Tensor:
    """Zero-pad (or crop) the last two axes about the centre index n//2 (docs/formats.md origin)."""
    hh, ww = psi.shape[-2:]
    out = psi.new_zeros(*psi.shape[:-2], h2, w2)
    ch, cw = min(hh, h2), min(ww, w2)
    sy, sx = hh // 2 - ch // 2, ww // 2 - cw // 2
    ty, tx = h2 // 2 - ch // 2, w2 // 2 - cw // 2
    out[..., ty:ty + ch, tx:tx + cw] = psi[..., sy:sy + ch, sx:sx + cw]
    return out


def generator_inputs(jones: JonesFields, metadata: MeasurementMetadata, *, shape_zyx: Optional[Sequence[int]] = None,
                     window: int = 5, voxel_um: Optional[float] = None, input_scale: float = 1.0,
                     unwrap_method: str = "herraez", psi: Optional[torch.Tensor] = None,
                     device: str | torch.device = "auto") -> torch.Tensor:
    """Lifted, window-condensed Jones–Rytov sequence for :class:`BirefringenceGenerator`.

    Parameters
    ----------
    jones : JonesFields
        ``field`` (N, 2, 2, H, W), ``illumination_per_um`` (N, 2) cycles/µm, ``pixel_size_um``.
    metadata : MeasurementMetadata
        Wavelength, medium index and NA.
    shape_zyx : (D, H', W'), optional
        Output grid at ``voxel_um`` (cubic voxels). Default: ``D = H'`` and the resampled field
        size. D, H', W' are rounded up to multiples of 4; H', W' other than the resampled field
        size are centre-padded with ψ = 0 (or cropped).
    window : int
        Illuminations per sequence step (mean-condensed); ``T = ceil(N / window)``.
    voxel_um : float, optional
        Voxel size of the output grid (default the field's pixel); fields are Fourier-resampled.
    input_scale : float
        Multiplies the lifted fields (the card's ``input.input_scale``).
    unwrap_method : str
        Unwrapping of the common phase in :func:`.jones_rytov`.
    psi : torch.Tensor, optional
        Precomputed Jones–Rytov field (N, 2, 2, H', W') at ``voxel_um`` (skips resampling and
        the logarithm; used by the training data cache).
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    torch.Tensor, shape (T, 8, D, H', W'), float32
        Channels Re ψ_xx, Im ψ_xx, Re ψ_xy, Im ψ_xy, Re ψ_yx, Im ψ_yx, Re ψ_yy, Im ψ_yy
        (ψ[out, in]); plane ``d`` at ``z = (d − D//2)·voxel``.
    """
    dev = resolve_device(device)
    pixel = float(jones.pixel_size_um)
    vox = float(voxel_um) if voxel_um is not None else pixel
    if psi is None:
        field = resample_jones(jones.field, pixel, vox, device=dev)
        psi = jones_rytov(field, unwrap_method=unwrap_method, device=dev)
    psi = psi.to(dev)
    n = psi.shape[0]
    hh, ww = psi.shape[-2:]
    if shape_zyx is None:
        shape_zyx = (hh, hh, ww)
    dd, h2, w2 = (_round_up(s) for s in shape_zyx)
    psi = _centre_pad(psi.reshape(n, 4, hh, ww), h2, w2)
    lam, nm, na = float(metadata.wavelength_um), float(metadata.medium_index), float(metadata.na_objective)
    km = nm / lam
    illum = torch.as_tensor(np.asarray(jones.illumination_per_um, dtype=np.float64).reshape(n, 2), device=dev)
    qy = torch.fft.fftfreq(h2, d=vox, device=dev, dtype=torch.float64)
    qx = torch.fft.fftfreq(w2, d=vox, device=dev, dtype=torch.float64)
    z = (torch.arange(dd, device=dev, dtype=torch.float64) - dd // 2) * vox
    spec = torch.fft.fft2(psi)  # (N, 4, H, W); the phase ramp of ifftshift cancels in the round trip
    window = max(1, int(window))
    steps = []
    zf = z.float()
    one = torch.ones((), device=dev)
    for s in range(0, n, window):
        f = illum[s:s + window]
        nux = qx[None, None, :] + f[:, 0, None, None]
        nuy = qy[None, :, None] + f[:, 1, None, None]
        rho2 = nux ** 2 + nuy ** 2
        pupil = rho2 <= min((na / lam) ** 2, km ** 2 * (1 - 1e-6))
        nuz = torch.sqrt(torch.clamp(km ** 2 - rho2, min=0.0))
        fz = torch.sqrt(km ** 2 - (f ** 2).sum(1))
        rate = (2 * math.pi * (nuz - fz[:, None, None])).float()  # (w, H, W) rad/µm; |phase| < ~60 rad: float32 ample
        sp = spec[s:s + window] * (pupil[:, None] * (input_scale / f.shape[0]))  # pupil, the mean and the scale
        # mean-condense in Fourier space: one inverse FFT per window instead of one per illumination;
        # accumulated one illumination at a time (no (w, 4, D, H, W) intermediate)
        acc = sp[0][:, None] * torch.polar(one, rate[0][None] * zf[:, None, None])[None]
        for i in range(1, f.shape[0]):
            acc.add_(sp[i][:, None] * torch.polar(one, rate[i][None] * zf[:, None, None])[None])
        vol = torch.fft.ifft2(acc)  # (4, D, H, W)
        steps.append(torch.view_as_real(vol).permute(0, 4, 1, 2, 3).reshape(8, dd, h2, w2))
    return torch.stack(steps).float()


# --------------------------------------------------------------------------- files
def save_generator(net: BirefringenceGenerator, path: str | Path, card: Optional[dict] = None) -> dict:
    """Save ``net`` as fp16 safetensors with its JSON card (``architecture``, ``task`` filled in).

    Uses :func:`engine.models.save_safetensors_model` (sha256 and tensor shapes in the card).
    """
    card = dict(card or {})
    card["architecture"] = {**architecture_of(net), **card.get("architecture", {})}
    card["task"] = TASK
    card.setdefault("input", {"window": 5, "voxel_um": 0.2, "input_scale": 1.0})
    return save_safetensors_model(net.state_dict(), path, card, format_tag="odt-studio-birefringence-generator/1")


class LoadedGenerator:
    """A loaded network with its card (``net`` in eval mode on ``device``)."""

    def __init__(self, net: BirefringenceGenerator, card: dict, device: torch.device) -> None:
        self.net, self.card, self.device = net, card, device

    @property
    def input_spec(self) -> dict:
        return dict(self.card.get("input", {}))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(T, 8, D, H, W) or (B, T, 8, D, H, W) → (2, D, H, W) or (B, 2, D, H, W)."""
        single = x.ndim == 5
        y = self.net(x[None] if single else x)
        return y[0] if single else y


def load_generator(path_or_name: str | Path = "default", device: str | torch.device = "auto", *,
                   models_dir: Path = MODELS_DIR) -> LoadedGenerator:
    """Load a birefringence generator (checksum and tensor shapes checked, never unpickled).

    Parameters
    ----------
    path_or_name : str or Path
        ``"default"`` (the shipped ``birefringence-generator``), a model name in ``models_dir``,
        or a path to a ``.safetensors`` file with its ``.json`` card beside it.
    device : {"auto", "cpu", "cuda"}

    Raises
    ------
    engine.models.ModelFileError
        Missing files, checksum or shape mismatch, a card for another task.
    """
    dev = resolve_device(device)
    net, card, _ = load_network(path_or_name, task=TASK, build=build_generator, default_name=DEFAULT_GENERATOR_NAME,
                                models_dir=models_dir, device=dev)
    return LoadedGenerator(net, card, dev)


# --------------------------------------------------------------------------- public route
def _check_setup(card: dict, metadata: MeasurementMetadata) -> None:
    setup = card.get("input", {}).get("setup", {})
    for key, have in (("wavelength_um", metadata.wavelength_um), ("medium_index", metadata.medium_index),
                      ("na_objective", metadata.na_objective)):
        want = setup.get(key)
        if want is not None and abs(float(have) - float(want)) > 0.02 * float(want):
            raise ValueError(f"the birefringence generator was trained for {key} = {want}, the measurement has "
                             f"{have}: use the physics route (reconstruct_tensor)")


def reconstruct_tensor_learned(
    jones: JonesFields,
    metadata: MeasurementMetadata,
    *,
    model: str | Path | LoadedGenerator = "default",
    shape_z: Optional[int] = None,
    director: str = "none",
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> TensorTomogram:
    """n_e and n_o volumes from Jones fields by the learned generator (fast learned route).

    Parameters
    ----------
    jones : JonesFields
        ``field`` (N, 2 out, 2 in, H, W) background-normalised Jones fields focused on z = 0.
    metadata : MeasurementMetadata
        Wavelength, n_m and NA; must match the card's training setup within 2 %.
    model : str, Path or LoadedGenerator
        ``"default"``, a model name, a path, or an already loaded model.
    shape_z : int, optional
        Axial planes D (default: the card's trained depth in µm / voxel), rounded up to a
        multiple of 4.
    director : {"none", "dtt"}
        The network has no director output. ``"none"``: zero director, ε isotropic with the
        trace of the uniaxial tensor, ``(n_e² + 2 n_o²)/3 · I``. ``"dtt"``: director from
        :func:`.reconstruct_tensor` on the same grid (its time added), ``ε = n_o² I +
        (n_e² − n_o²) d dᵀ`` (isotropic where DTT finds |Δn| below 0.01).
    device : {"auto", "cpu", "cuda"}
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    TensorTomogram
        On the model's grid: voxel ``(v, v, v)`` with ``v`` the card's ``input.voxel_um``
        (fields are Fourier-resampled to it), (D, H', W') with ``H' = round(H·pixel/v)``,
        origin ``(−(D//2)·v, −(H'//2)·v, −(W'//2)·v)``; ``method`` ``"learned-generator"``
        (``"+dtt-director"`` with ``director="dtt"``).

    References
    ----------
    .. [1] Kim et al., Sci. Rep. 14 (2024).
    """
    if director not in ("none", "dtt"):
        raise ValueError("director must be 'none' or 'dtt'")
    t0 = time.perf_counter()
    timings: dict = {}
    report(progress, 0.0, "loading the birefringence generator")
    gen = model if isinstance(model, LoadedGenerator) else load_generator(model, device)
    dev = gen.device
    _check_setup(gen.card, metadata)
    spec = gen.input_spec
    vox = float(spec.get("voxel_um", jones.pixel_size_um))
    check_cancel(cancel)
    report(progress, 0.1, "Jones–Rytov fields, lifted to 3-D")
    field = resample_jones(jones.field, float(jones.pixel_size_um), vox, device=dev)
    hh, ww = field.shape[-2:]
    depth_um = float(spec.get("depth_um", hh * vox))
    dd = _round_up(shape_z if shape_z is not None else int(round(depth_um / vox)))
    psi = jones_rytov(field, device=dev)
    x = generator_inputs(jones, metadata, shape_zyx=(dd, hh, ww), window=int(spec.get("window", 5)),
                         voxel_um=vox, input_scale=float(spec.get("input_scale", 1.0)), psi=psi, device=dev)
    timings["inputs"] = time.perf_counter() - t0
    check_cancel(cancel)
    report(progress, 0.4, "running the generator")
    t1 = time.perf_counter()
    y = gen(x)  # (2, D, H', W') padded
    y = _centre_pad(y, hh, ww)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    timings["network"] = time.perf_counter() - t1
    n_e, n_o = y[0].float(), y[1].float()
    check_cancel(cancel)
    nm = float(metadata.medium_index)
    eye = torch.eye(3, device=dev)
    if director == "dtt":
        report(progress, 0.6, "director from dielectric tensor tomography")
        t2 = time.perf_counter()
        resampled = JonesFields(field=field.cpu().numpy(), illumination_per_um=jones.illumination_per_um,
                                pixel_size_um=vox)
        dtt = reconstruct_tensor(resampled, metadata, shape_z=dd, dz_um=vox, psi=psi, device=dev, cancel=cancel)
        d = torch.as_tensor(dtt.director, device=dev)
        timings["dtt_director"] = time.perf_counter() - t2
        timings.update({f"dtt_{k}": v for k, v in dtt.timings_s.items() if k != "total"})  # its stages
        eps = (n_o ** 2)[..., None, None] * eye + (n_e ** 2 - n_o ** 2)[..., None, None] * d[..., :, None] * d[..., None, :]
        has = (d.norm(dim=-1) > 0)[..., None, None]
        iso = ((n_e ** 2 + 2 * n_o ** 2) / 3)[..., None, None] * eye
        eps = torch.where(has, eps, iso)
        method = "learned-generator+dtt-director"
    else:
        d = torch.zeros(*n_e.shape, 3, device=dev)
        eps = ((n_e ** 2 + 2 * n_o ** 2) / 3)[..., None, None] * eye
        method = "learned-generator"
    timings["total"] = time.perf_counter() - t0
    report(progress, 1.0, "tensor tomogram ready")
    origin = (-(dd // 2) * vox, -(hh // 2) * vox, -(ww // 2) * vox)
    return TensorTomogram(
        epsilon=eps.cpu().numpy().astype(np.float32), n_e=n_e.cpu().numpy(), n_o=n_o.cpu().numpy(),
        director=d.float().cpu().numpy(), delta_n=(n_e - n_o).cpu().numpy(), voxel_size_um=(vox, vox, vox),
        origin_um=origin, medium_index=nm, method=method, anisotropic_fraction=0.0, timings_s=timings)
