"""Two-dimensional phase unwrapping of retrieved fields, batched over angles.

Conventions
-----------
Phases in radians, images (y, x), batches (N, y, x). The result of every method is shifted by a
multiple of 2π so that the median phase on the image border (the sample-free background of a
field divided by its background field) lies in (−π, π]: a sample with n > n_m then keeps a
positive phase.

Two algorithms are offered:

``"herraez"`` (default)
    Reliability-sorting, non-continuous-path unwrapping of Herráez et al. (2002), as implemented
    by :func:`skimage.restoration.unwrap_phase`. Pixels are joined in the order of a second-
    difference reliability, so noisy or discontinuous regions (dust, phase vortices at field
    nulls, strongly scattering edges) are unwrapped last and cannot spoil the rest of the image;
    it is robust, deterministic, exact on smooth phases and needs no parameters. It runs on the
    CPU, one image at a time (the images are spread over a thread pool).
``"fourier"``
    Least-squares unwrapping solved by FFT (Ghiglia & Romero 1994, here with periodic
    boundaries, which suit fields divided by their background: the phase is ≈ 0 at the image
    edges): the wrapped phase differences are integrated by one Poisson solve, then the result
    is made congruent with the wrapped phase (``φ = φ_w + 2π·round((φ_LS − φ_w)/2π)``), which
    makes it exact wherever the phase changes by less than π per pixel. Fully vectorised in
    torch (CPU and CUDA, two real FFTs per image), so much faster than ``"herraez"``, but less
    robust near phase vortices and noise, where least squares spreads the error.

References
----------
M. A. Herráez, D. R. Burton, M. J. Lalor and M. A. Gdeisat, "Fast two-dimensional phase-unwrapping
algorithm based on sorting by reliability following a noncontinuous path", Appl. Opt. 41,
7437–7444 (2002).
D. C. Ghiglia and L. A. Romero, "Robust two-dimensional weighted and unweighted phase unwrapping
that uses fast transforms and iterative methods", J. Opt. Soc. Am. A 11, 107–117 (1994).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np
import torch
from skimage.restoration import unwrap_phase as _skimage_unwrap

from ..backend import resolve_device
from ..progress import CancelToken, check_cancel, report

__all__ = ["unwrap_phase", "UNWRAP_METHODS"]

UNWRAP_METHODS = ("herraez", "fourier")
TWO_PI = 2.0 * math.pi


def _border_offset(phase: np.ndarray | torch.Tensor, width: int = 2):
    """Multiple of 2π that brings the border median of each image into (−π, π]; shape (N,1,1)."""
    lib = torch if isinstance(phase, torch.Tensor) else np
    top, bottom = phase[:, :width, :], phase[:, -width:, :]
    left, right = phase[:, :, :width], phase[:, :, -width:]
    n = phase.shape[0]
    if lib is torch:
        border = torch.cat([top.reshape(n, -1), bottom.reshape(n, -1), left.reshape(n, -1),
                            right.reshape(n, -1)], dim=1)
        med = border.median(dim=1).values
        return (TWO_PI * torch.round(med / TWO_PI)).reshape(n, 1, 1)
    border = np.concatenate([top.reshape(n, -1), bottom.reshape(n, -1), left.reshape(n, -1),
                             right.reshape(n, -1)], axis=1)
    med = np.median(border, axis=1)
    return (TWO_PI * np.round(med / TWO_PI)).reshape(n, 1, 1)


def _unwrap_herraez(wrapped: np.ndarray, progress, cancel, workers: Optional[int]) -> np.ndarray:
    n = wrapped.shape[0]
    out = np.empty(wrapped.shape, dtype=np.float32)
    workers = workers or min(4, os.cpu_count() or 1)
    done = 0

    def one(i: int) -> None:
        out[i] = _skimage_unwrap(wrapped[i].astype(np.float64, copy=False))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, n, workers):
            check_cancel(cancel)
            list(pool.map(one, range(start, min(n, start + workers))))
            done = min(n, start + workers)
            report(progress, done / n, f"unwrapping phase {done}/{n}")
    return out


def _wrap(a: torch.Tensor) -> torch.Tensor:
    """Wrap into [−π, π) (in place)."""
    return a.add_(math.pi).remainder_(TWO_PI).sub_(math.pi)


def _unwrap_fourier(field: torch.Tensor, chunk: int, progress, cancel) -> torch.Tensor:
    """Least-squares (periodic Poisson) unwrapping of wrapped phase differences, then congruence."""
    n, h, w = field.shape
    dev = field.device
    ky = torch.arange(h, device=dev, dtype=torch.float32)[:, None]
    kx = torch.arange(w // 2 + 1, device=dev, dtype=torch.float32)[None, :]
    # eigenvalues of the periodic 5-point Laplacian on the rfft2 grid
    lap = 2 * torch.cos(TWO_PI * kx / w) + 2 * torch.cos(TWO_PI * ky / h) - 4
    lap[0, 0] = 1.0
    out = torch.empty((n, h, w), dtype=torch.float32, device=dev)
    for s in range(0, n, chunk):
        check_cancel(cancel)
        u = field[s:s + chunk]
        wrapped = torch.angle(u) if torch.is_complex(u) else _wrap(u.to(torch.float32, copy=True))
        gx = _wrap(torch.roll(wrapped, -1, dims=-1) - wrapped)
        gy = _wrap(torch.roll(wrapped, -1, dims=-2) - wrapped)
        div = gx - torch.roll(gx, 1, dims=-1) + gy - torch.roll(gy, 1, dims=-2)
        spec = torch.fft.rfft2(div) / lap
        spec[:, 0, 0] = 0.0
        phi_ls = torch.fft.irfft2(spec, s=(h, w))
        out[s:s + chunk] = wrapped + TWO_PI * torch.round((phi_ls - wrapped) / TWO_PI)
        report(progress, min(n, s + chunk) / n, f"unwrapping phase {min(n, s + chunk)}/{n}")
    return out


def unwrap_phase(
    phase_or_field: np.ndarray | torch.Tensor,
    method: str = "herraez",
    *,
    device: str | torch.device = "auto",
    chunk: int = 16,
    workers: Optional[int] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> np.ndarray:
    """Unwrap the phase of one image or a batch of images.

    Parameters
    ----------
    phase_or_field : array, shape (H, W) or (N, H, W)
        Wrapped phase in radians (real), or complex field(s) whose phase is unwrapped.
    method : {"herraez", "fourier"}
        Algorithm, see the module docstring. ``"herraez"`` is the robust default.
    device : str or torch.device
        Device for ``"fourier"`` (``"herraez"`` always runs on the CPU).
    chunk : int
        Images per batch for ``"fourier"`` (bounds memory to about 10·chunk·H·W·8 bytes).
    workers : int, optional
        Threads for ``"herraez"`` (default min(4, CPU count)).
    progress, cancel
        Progress callback and cancel token (:mod:`engine.progress`).

    Returns
    -------
    ndarray, same leading shape, float32
        Unwrapped phase in radians, shifted by a multiple of 2π so that the median on the image
        border lies in (−π, π].

    References
    ----------
    M. A. Herráez et al., Appl. Opt. 41, 7437 (2002); D. C. Ghiglia and L. A. Romero,
    J. Opt. Soc. Am. A 11, 107 (1994).
    """
    if method not in UNWRAP_METHODS:
        raise ValueError(f"unknown unwrapping method {method!r}: use one of {UNWRAP_METHODS}")
    is_tensor = isinstance(phase_or_field, torch.Tensor)
    single = phase_or_field.ndim == 2
    data = phase_or_field[None] if single else phase_or_field
    if method == "herraez":
        arr = data.detach().cpu().numpy() if is_tensor else np.asarray(data)
        wrapped = np.angle(arr) if np.iscomplexobj(arr) else np.asarray(arr, dtype=np.float64)
        wrapped = np.angle(np.exp(1j * wrapped)) if not np.iscomplexobj(arr) else wrapped
        out = _unwrap_herraez(wrapped, progress, cancel, workers)
        out -= _border_offset(out).astype(np.float32)
    else:
        dev = resolve_device(device)
        t = torch.as_tensor(data, device=dev) if not is_tensor else data.to(dev)
        res = _unwrap_fourier(t, chunk, progress, cancel)
        res -= _border_offset(res)
        out = res.cpu().numpy()
    return out[0] if single else out
