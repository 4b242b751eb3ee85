"""Camera artefacts of raw off-axis holograms: hot pixels and row (rolling read-out) noise.

A hologram is band-limited except for what the camera adds, and over a few pixels it is a fringe
of one frequency. Each pixel is therefore predicted from its 5 × 5 neighbourhood, itself left out,
by a local fringe ``I ≈ a + b·cos φ + c·sin φ``, ``φ = 2π f·r``, where ``f`` is the frame's
dominant fringe frequency (the carrier plus that illumination's tilt: the brightest spectral peak
away from the zero order). The fit is a weighted least squares per pixel (all pixels at once, by
box sums of the weighted basis products); a second pass drops the outliers of the first from the
neighbours' fits, and pixels at the camera's full scale are censored: the true value of a
clipped pixel is at least full scale, so it enters the next pass as ``max(full, prediction)``.

The residual is scaled by shot noise, ``sqrt(max(prediction, 2 % of full scale))``, and then by
its robust (MAD) spread over the frame, so it reads as a z-score.

``hot_pixel_fraction``
    Fraction of the frame's pixels more than :data:`HOT_Z` above their prediction **and isolated**
    (none of their 8 neighbours beyond :data:`NEIGHBOUR_Z` either way). A hot pixel is one bright
    pixel; where the local fringe model fails (the steep edge of a strong bead), the outliers come
    in connected runs and are not counted. A clipped pixel counts when even its lower bound (full
    scale) is that far above its prediction (a hot pixel at full scale in a dark fringe). Given the
    background holograms, a pixel hot in the frame's background too (a defect of the sensor, the same
    in both) is not counted: it cancels in the ratio field.
``row_jitter``
    Root-mean-square row-to-row error relative to the frame's mean count: the spread of the
    residual's row means, less what white noise gives them, over the mean of the hologram. A
    per-row gain or offset (rolling read-out, unstable line clamps) adds the same error along a
    row, which no local fringe absorbs; a row gain jitter of 10 % reads ≈ 0.1. Rows are the
    image's first axis. NaN for a frame with fewer than 3 usable rows.

Both are 0 for a clean frame and grow with the artefact, like the other retrieval quality
numbers (:mod:`engine.holography.quality`). Both are NaN for a frame that is not raw camera counts
(a negative or NaN value, or no light at all): nothing can be said of its camera.

Conventions
-----------
Holograms (N, H, W) or (H, W), camera counts (any real dtype), (y, x); only their central
:data:`REGION` × :data:`REGION` window is read. Frequencies in cycles per pixel. Full scale: given,
or the largest count of the stack when at least :data:`CLIPPED_MIN_FRACTION` of its pixels sit
there (a clipped camera); otherwise nothing is treated as clipped.

References
----------
Least-squares local fringe fits: M. Servin, J. L. Marroquin and F. J. Cuevas, "Demodulation of a
single interferogram by use of a two-dimensional regularized phase-tracking technique", Appl. Opt.
36, 4540–4548 (1997) (local fringe model); censored values: J. Tobin, "Estimation of relationships
for limited dependent variables", Econometrica 26, 24–36 (1958).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy import ndimage

__all__ = ["CameraArtefacts", "camera_artefacts", "fringe_frequencies", "HOT_Z", "NEIGHBOUR_Z"]

#: z-score above its local fringe prediction that makes an isolated pixel hot
HOT_Z = 20.0
#: a pixel with a neighbour beyond this z-score (either sign) is part of a misfit, not hot
NEIGHBOUR_Z = 6.0
#: the stack's largest count is its full scale when at least this fraction of pixels sit there
CLIPPED_MIN_FRACTION = 1e-4
#: half width of the local fringe window (5 × 5)
HALF = 2
#: zero-order exclusion radius of the fringe-frequency search, cycles/pixel
MIN_FRINGE_FREQUENCY = 0.05
#: minimum unclipped neighbours (of 24) for a pixel to be judged
MIN_NEIGHBOURS = 10
#: side of the central window that is read (the numbers are densities and per-row spreads: a window of
#: 256 × 256 pixels estimates them to a few per cent, at a bounded cost for any camera)
REGION = 256


@dataclass
class CameraArtefacts:
    """Per-frame camera artefact numbers (module docstring); each (N,) float32."""

    hot_pixel_fraction: np.ndarray
    row_jitter: np.ndarray


def fringe_frequencies(holograms: np.ndarray) -> np.ndarray:
    """Dominant fringe frequency of every frame, (N, 2) ``(f_x, f_y)`` cycles/pixel (f_y ≥ 0).

    The brightest peak of ``|FFT|`` of the mean-free frame outside a disc of
    :data:`MIN_FRINGE_FREQUENCY` around the zero order, in the half plane ``f_y ≥ 0`` (a real
    image's spectrum is symmetric). One FFT bin of accuracy: over the 5-pixel window that is a
    phase error below 0.1 rad. Not :func:`engine.holography.retrieval.find_carrier`, which refines the
    peak to a fraction of a bin: tried, it changed the numbers (a clean validation field's row jitter
    0.025 → 0.052, over the alarm's level), and the levels were set with this peak.
    """
    h = torch.as_tensor(np.asarray(holograms, np.float32))
    if h.ndim == 2:
        h = h[None]
    n, H, W = h.shape
    spec = torch.fft.rfft2(h - h.mean(dim=(1, 2), keepdim=True)).abs()  # (N, H, W//2+1): f_x ≥ 0
    fy = torch.fft.fftfreq(H)[:, None]
    fx = torch.fft.rfftfreq(W)[None, :]
    spec[:, torch.hypot(fx.expand(H, -1), fy.expand(-1, fx.shape[1])) < MIN_FRINGE_FREQUENCY] = 0
    k = spec.reshape(n, -1).argmax(dim=1)
    f = torch.stack([fx[0, k % fx.shape[1]], fy[k // fx.shape[1], 0]], dim=1)
    f[f[:, 1] < 0] *= -1  # the same fringe, f_y ≥ 0
    return f.numpy().astype(np.float64)


def _box(x: np.ndarray) -> np.ndarray:
    """Sum over the (2·HALF+1)² window around every pixel of (..., H, W); windows are cut at the image
    edge (zero padding; separable running sums of :func:`scipy.ndimage.uniform_filter1d`)."""
    size = 2 * HALF + 1
    a = ndimage.uniform_filter1d(x, size, axis=-2, mode="constant")
    a = ndimage.uniform_filter1d(a, size, axis=-1, mode="constant")
    a *= np.float32(size * size)
    return a


def _solve_symmetric3(g: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Solve G·c = r per pixel by Cramer's rule; ``g`` (6, B, H, W) holds G's upper triangle
    (00, 01, 02, 11, 12, 22), ``r`` (3, B, H, W); returns c (3, B, H, W)."""
    a, b, c, d, e, f = g
    a, d, f = a + 1e-6, d + 1e-6, f + 1e-6
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d  # cofactors (G symmetric)
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    det[np.abs(det) < 1e-9] = 1e-9
    return np.stack([c00 * r[0] + c01 * r[1] + c02 * r[2], c01 * r[0] + c11 * r[1] + c12 * r[2],
                     c02 * r[0] + c12 * r[1] + c22 * r[2]]) / det


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _local_fit(img: np.ndarray, freq: np.ndarray, clipped: np.ndarray, full: float,
               passes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """z-scores and predictions (B, H, W) float32 of a local fringe fit, each pixel left out of its own fit."""
    _, H, W = img.shape
    y = np.arange(H, dtype=np.float64)[:, None]
    x = np.arange(W, dtype=np.float64)[None, :]
    phase = (2 * np.pi * (freq[:, 0, None, None] * x + freq[:, 1, None, None] * y)).astype(np.float32)
    basis = np.stack([np.ones_like(phase), np.cos(phase), np.sin(phase)])  # (3, B, H, W)
    weight = (~clipped).astype(np.float32)
    value = img
    for _ in range(passes):
        wb = weight * basis
        own_g = np.stack([wb[i] * basis[j] for i, j in _PAIRS])
        own_r = wb * value
        coef = _solve_symmetric3(_box(own_g) - own_g, _box(own_r) - own_r)
        pred = np.einsum("kbhw,kbhw->bhw", coef, basis)
        z = (img - pred) / np.sqrt(np.maximum(pred, np.float32(0.02 * full)))
        for zb, cb in zip(z, clipped):
            spread = 1.4826 * np.median(np.abs(zb[~cb])) if (~cb).any() else 1.0
            zb /= max(float(spread), 1e-9)
        weight = (clipped | (np.abs(z) <= NEIGHBOUR_Z)).astype(np.float32)  # outliers leave the neighbours' fits
        value = np.where(clipped, np.maximum(pred, np.float32(full)), img)  # censored: at least full scale
    unclipped = (~clipped).astype(np.float32)
    judged = _box(unclipped) - unclipped >= MIN_NEIGHBOURS
    return np.where(judged, z, np.float32(0)), pred


def _frame_numbers(img: np.ndarray, z: np.ndarray, pred: np.ndarray,
                   clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hot-pixel maps (B, H, W) bool, row jitter (B,)) from a batch's fit."""
    ring = np.ones((1, 3, 3), bool)
    ring[0, 1, 1] = False
    misfit_nearby = ndimage.binary_dilation(np.abs(z) > NEIGHBOUR_Z, structure=ring)
    hot = (z > HOT_Z) & ~misfit_nearby
    good = ~clipped & (np.abs(z) <= HOT_Z)  # every usable pixel but the hot ones: strong row errors are outliers too
    res = np.where(good, img - pred, np.float32(0)).astype(np.float64)
    count = good.sum(axis=2)  # per row
    row_mean = res.sum(axis=2) / np.maximum(count, 1)
    jitter = np.full(img.shape[0], np.nan)
    for b in range(img.shape[0]):
        rows = count[b] > 0
        if rows.sum() < 3:
            continue
        white = (res[b] ** 2).sum() / max(int(good[b].sum()), 1) / count[b][rows].mean()  # variance of a row mean of noise
        excess = max(float(row_mean[b][rows].var()) - white, 0.0)
        jitter[b] = np.sqrt(excess) / max(float(img[b].mean()), 1e-12)
    return hot, jitter


def _full_scale(h: np.ndarray) -> float:
    top = float(h.max())
    return top if np.mean(h == top) >= CLIPPED_MIN_FRACTION else float("inf")


def _checked(stack: np.ndarray, what: str, region: int) -> np.ndarray:
    """``stack`` as (N, H, W), cut to its central ``region`` × ``region`` window."""
    a = np.asarray(stack)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3:
        raise ValueError(f"{what} must have shape (N, H, W) or (H, W), got {a.shape}")
    if min(a.shape[1:]) <= 2 * HALF + 1:
        raise ValueError(f"{what} of {a.shape[1]} × {a.shape[2]} pixels are too small for the 5 × 5 fringe fit")
    y0, x0 = max(0, (a.shape[1] - region) // 2), max(0, (a.shape[2] - region) // 2)
    return a[:, y0:y0 + region, x0:x0 + region]


def _hot_maps(h: np.ndarray, full: float, batch_pixels: int, frames: Optional[np.ndarray] = None):
    """Hot-pixel maps (M, H, W) and row jitter (M,) of the frames ``frames`` (default all) of ``h``."""
    frames = np.arange(h.shape[0]) if frames is None else np.asarray(frames)
    freq = fringe_frequencies(h[frames]) if frames.size else np.zeros((0, 2))
    chunk = max(1, batch_pixels // (h.shape[1] * h.shape[2]))
    hot, rows = [], []
    for s in range(0, frames.size, chunk):
        img = h[frames[s:s + chunk]].astype(np.float32)
        clipped = img >= full - 0.5
        scale = float(img.max()) if np.isinf(full) else full
        z, pred = _local_fit(img, freq[s:s + chunk], clipped, scale)
        a, b = _frame_numbers(img, z, pred, clipped)
        hot.append(a)
        rows.append(b)
    if not hot:
        return np.zeros((0,) + h.shape[1:], bool), np.zeros(0)
    return np.concatenate(hot), np.concatenate(rows)


def camera_artefacts(holograms: np.ndarray, full_scale: Optional[float] = None, *,
                     backgrounds: Optional[np.ndarray] = None, region: int = REGION,
                     batch_pixels: int = 250_000) -> CameraArtefacts:
    """Hot-pixel fraction and row jitter of every raw hologram (module docstring).

    Parameters
    ----------
    holograms : ndarray (N, H, W) or (H, W)
        Raw sample holograms, camera counts.
    full_scale : float, optional
        The camera's largest count (e.g. 4095 for 12 bits). Default: the stack's largest count if
        at least :data:`CLIPPED_MIN_FRACTION` of the pixels reach it, else no clipping.
    backgrounds : ndarray (N, H, W) or (H, W), optional
        The background holograms (one per frame, or one for all). A pixel hot in a frame's background
        too is a property of the sensor: it adds nearly the same to the sample and the background field
        and cancels in their ratio, so it is not counted. Only frames with a hot pixel have their
        background read.
    region : int
        Side of the central window read, pixels (:data:`REGION`; the whole frame when smaller).
    batch_pixels : int
        Pixels per batch of frames (memory ≈ 0.2 kB per pixel: 50 MB for the default).

    Returns
    -------
    CameraArtefacts
    """
    h = _checked(holograms, "holograms", region)
    b = None if backgrounds is None else _checked(backgrounds, "backgrounds", region)
    if b is not None and (b.shape[1:] != h.shape[1:] or b.shape[0] not in (1, h.shape[0])):
        raise ValueError(f"backgrounds of shape {b.shape} do not match holograms of shape {h.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):  # a dark or fully clipped frame: its numbers end NaN or 0
        return _numbers(h, b, full_scale, batch_pixels)


def _numbers(h: np.ndarray, b: Optional[np.ndarray], full_scale: Optional[float], batch_pixels: int) -> CameraArtefacts:
    hot, jitter = _hot_maps(h, float(full_scale) if full_scale is not None else _full_scale(h), batch_pixels)
    if b is not None:  # hot in the background too: the sensor's, cancelled in the ratio field
        b_full = float(full_scale) if full_scale is not None else _full_scale(b)
        frames = np.flatnonzero(hot.any(axis=(1, 2)))
        if b.shape[0] == 1 and frames.size:
            hot[frames] &= ~_hot_maps(b, b_full, batch_pixels)[0][0]
        elif frames.size:
            hot[frames] &= ~_hot_maps(b, b_full, batch_pixels, frames)[0]
    hot_fraction = hot.mean(axis=(1, 2))
    not_counts = ~(np.nanmin(h, axis=(1, 2)) >= 0) | ~(h.mean(axis=(1, 2)) > 0)  # negative, NaN or dark: not raw counts
    hot_fraction[not_counts], jitter[not_counts] = np.nan, np.nan
    return CameraArtefacts(hot_pixel_fraction=hot_fraction.astype(np.float32), row_jitter=jitter.astype(np.float32))
