"""Patch-wise application of a 3-D network with overlapping, smoothly weighted patches.

Conventions
-----------
Volumes in NumPy order (z, y, x); patches are cubes of ``patch`` voxels taken every ``stride``
voxels along each axis (the last patch of an axis is aligned with the volume's end, so any
size works, not only multiples of the stride). Axes shorter than ``patch`` are padded by
reflection to ``patch`` and cropped back afterwards.

Blending: each patch output is multiplied by a separable window ``w_z(z)·w_y(y)·w_x(x)`` and
the sum over patches is divided by the summed windows, so the result is an exact weighted
average: an identity network gives back the input and a constant volume stays constant. The
1-D window is a squared Hann (``sin⁴``), whose value and slope vanish at the patch edges, so
the errors a convolutional network makes near a patch's (zero-padded) edges do not show as
seams. At the volume's borders no other patch covers the voxels, so the half of the window
that faces the border is set to 1 there (its maximum; the window stays continuous).

References
----------
D. Ryu et al., "DeepRegularizer: rapid resolution enhancement of tomographic imaging using
deep learning", IEEE Trans. Med. Imaging 40, 1508 (2021) (64³ patches, stride 32, smooth
window); S. Preibisch, S. Saalfeld and P. Tomancak, "Globally optimal stitching of tiled 3D
microscopic image acquisitions", Bioinformatics 25, 1463 (2009) (weighted blending).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..progress import CancelToken, check_cancel, report

__all__ = ["PATCH_SIZE", "STRIDE", "hann2_window", "patch_starts", "pad_to_patch", "stitch_apply"]

PATCH_SIZE = 64
STRIDE = 32


def hann2_window(size: int = PATCH_SIZE) -> np.ndarray:
    """Squared Hann window ``sin⁴(π (t + ½) / size)``, t = 0 … size−1, maximum 1 (float64).

    Strictly positive (sampled at voxel centres) and smooth to first order at the edges.
    """
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.sin(np.pi * t) ** 4 / np.max(np.sin(np.pi * t) ** 4)


def patch_starts(n: int, patch: int = PATCH_SIZE, stride: int = STRIDE) -> list[int]:
    """Start indices of the patches along an axis of ``n >= patch`` voxels.

    Every ``stride`` voxels, plus one patch aligned with the end when the stride does not
    land there, so the union covers ``0 … n−1`` exactly.
    """
    if n < patch:
        raise ValueError(f"axis of {n} voxels is shorter than the patch ({patch}): pad it first")
    if stride < 1 or stride > patch:
        raise ValueError("need 1 <= stride <= patch")
    starts = list(range(0, n - patch + 1, stride))
    if starts[-1] != n - patch:
        starts.append(n - patch)
    return starts


def _axis_window(start: int, n: int, patch: int, base: np.ndarray) -> np.ndarray:
    w = base.copy()
    peak = int(np.argmax(base))
    if start == 0:
        w[:peak] = base[peak]
    if start + patch == n:
        w[peak:] = base[peak]
    return w


def pad_to_patch(volume: np.ndarray, patch: int = PATCH_SIZE) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad axes shorter than ``patch`` by reflection (centred); return the padded volume and the
    slices that crop it back."""
    pads, crop = [], []
    for n in volume.shape:
        if n >= patch:
            pads.append((0, 0))
            crop.append(slice(0, n))
        else:
            before = (patch - n) // 2
            pads.append((before, patch - n - before))
            crop.append(slice(before, before + n))
    if any(p != (0, 0) for p in pads):
        # numpy's reflect mode reflects repeatedly when the pad exceeds the axis; a 1-voxel axis
        # has nothing to reflect, so it is repeated (edge).
        mode = "reflect" if min(volume.shape) > 1 else "edge"
        volume = np.pad(volume, pads, mode=mode)
    return volume, tuple(crop)


def stitch_apply(
    volume: np.ndarray,
    apply_batch: Callable[[torch.Tensor], torch.Tensor],
    *,
    patch: int = PATCH_SIZE,
    stride: int = STRIDE,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> np.ndarray:
    """Apply ``apply_batch`` to overlapping cubic patches of ``volume`` and blend the outputs.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Any size (axes shorter than ``patch`` are padded by reflection, then cropped back).
    apply_batch : callable
        Maps a tensor (B, 1, patch, patch, patch) on ``device`` (``dtype``) to one of the same
        shape (e.g. a network in inference mode).
    patch, stride : int
        Patch edge and nominal stride, voxels (default 64 and 32).
    batch_size : int
        Patches per call of ``apply_batch``.
    device : str or torch.device
        Where patches are processed and blended.
    dtype : torch.dtype
        Type of the patches given to ``apply_batch`` (accumulation is float32).
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        The blended output, the same size as ``volume``.
    """
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got shape {vol.shape}")
    padded, crop = pad_to_patch(vol, patch)
    shape = padded.shape
    dev = torch.device(device)
    base = hann2_window(patch)
    starts = [patch_starts(n, patch, stride) for n in shape]
    wins = [{s: torch.as_tensor(_axis_window(s, n, patch, base), dtype=torch.float32, device=dev) for s in st}
            for st, n in zip(starts, shape)]
    src = torch.as_tensor(padded, device=dev)
    acc = torch.zeros(shape, dtype=torch.float32, device=dev)
    wsum = torch.zeros(shape, dtype=torch.float32, device=dev)
    corners = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    n_batches = math.ceil(len(corners) / batch_size)
    for bi in range(n_batches):
        check_cancel(cancel)
        group = corners[bi * batch_size:(bi + 1) * batch_size]
        x = torch.stack([src[a:a + patch, b:b + patch, c:c + patch] for a, b, c in group])[:, None]
        y = apply_batch(x.to(dtype))
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(f"apply_batch returned shape {tuple(y.shape)} for input {tuple(x.shape)}")
        y = y[:, 0].to(torch.float32)
        for k, (a, b, c) in enumerate(group):
            w = wins[0][a][:, None, None] * wins[1][b][None, :, None] * wins[2][c][None, None, :]
            acc[a:a + patch, b:b + patch, c:c + patch].addcmul_(y[k], w)
            wsum[a:a + patch, b:b + patch, c:c + patch].add_(w)
        report(progress, (bi + 1) / n_batches, f"patch batch {bi + 1}/{n_batches}")
    out = (acc / wsum)[crop]
    return out.cpu().numpy().astype(np.float32, copy=False)


def _window_sum(shape: Sequence[int], patch: int = PATCH_SIZE, stride: int = STRIDE) -> np.ndarray:
    """Summed windows over an axis-separable patch grid (for diagnostics and tests), (Z, Y, X)."""
    base = hann2_window(patch)
    sums = []
    for n in shape:
        s = np.zeros(n)
        for st in patch_starts(n, patch, stride):
            s[st:st + patch] += _axis_window(st, n, patch, base)
        sums.append(s)
    return sums[0][:, None, None] * sums[1][None, :, None] * sums[2][None, None, :]
