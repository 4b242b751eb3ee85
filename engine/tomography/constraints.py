"""Non-negativity constraint (Gerchberg–Papoulis) to fill the missing cone.

Conventions
-----------
Works on the dimensionless scattering potential ``x = (n/n_m)² − 1`` of a
:class:`~engine.tomography.fourier_mapping.FourierData` (docs/formats.md layout,
spectrum = ``torch.fft.fftn``). ``x ≥ 0`` ⇔ ``n ≥ n_m``. The sample is assumed non-absorbing:
each projection keeps the real part of ``x`` (which also imposes the Hermitian symmetry of its
spectrum).

Algorithm: alternate projections (Gerchberg–Papoulis) between the set of volumes with
``x ≥ lower`` in space and the set of volumes whose spectrum equals the measured one on the
measured Fourier support; the unmeasured (missing-cone) frequencies are filled in.

References
----------
R. W. Gerchberg, "Super-resolution through error energy reduction", Opt. Acta 21, 709 (1974);
A. Papoulis, "A new algorithm in spectral analysis and band-limited extrapolation", IEEE Trans.
Circuits Syst. 22, 735 (1975).
J. Lim, K. Lee, K. H. Jin, S. Shin, S. Lee, Y. Park and J. C. Ye, "Comparative study of
iterative reconstruction algorithms for missing cone problems in optical diffraction
tomography", Opt. Express 23, 16933 (2015).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..progress import CancelToken, check_cancel, report
from .fourier_mapping import FourierData

__all__ = ["apply_non_negativity", "DataConsistency", "DEFAULT_NON_NEGATIVITY_ITERATIONS"]

DEFAULT_NON_NEGATIVITY_ITERATIONS = 50


def _negate_frequencies(a: torch.Tensor) -> torch.Tensor:
    """``b[k] = a[-k]`` on the ``fftn`` grid of every axis (index j ↦ (−j) mod n)."""
    dims = tuple(range(a.ndim))
    return torch.roll(torch.flip(a, dims), shifts=(1,) * a.ndim, dims=dims)


class DataConsistency:
    """Projection of a real volume onto the volumes whose spectrum is the measured one.

    For a real ``x`` the projection ``Re(ifftn(where(M, D, fftn(x))))`` (``M`` the measured
    support, ``D`` the measured spectrum) equals ``irfftn(w · rfftn(x) + c)`` with, per
    frequency ``k``, ``w = 1 − (M(k) + M(−k))/2`` and ``c = (M(k)D(k) + M(−k)·conj(D(−k)))/2``:
    the real part of a spectrum is the inverse transform of its Hermitian part. Working on the
    half spectrum of real FFTs gives the same result for half the FFT work and memory.
    """

    def __init__(self, data: FourierData) -> None:
        support = data.support
        measured = torch.where(support, data.spectrum, torch.zeros((), dtype=data.spectrum.dtype,
                                                                    device=data.spectrum.device))
        half = support.shape[-1] // 2 + 1
        m = support.to(torch.float32)
        self.weight = (1.0 - 0.5 * (m + _negate_frequencies(m)))[..., :half].contiguous()
        self.constant = (0.5 * (measured + _negate_frequencies(measured).conj()))[..., :half].contiguous()
        self.shape = tuple(support.shape)

    def initial(self) -> torch.Tensor:
        """The direct inversion ``Re(ifftn(D))`` (zero off the support)."""
        return torch.fft.irfftn(self.constant, s=self.shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Project the real volume ``x`` (Z, Y, X) onto the measured spectrum."""
        spec = torch.fft.rfftn(x)
        spec.mul_(self.weight).add_(self.constant)
        return torch.fft.irfftn(spec, s=self.shape)


def apply_non_negativity(
    data: FourierData,
    *,
    iterations: int = DEFAULT_NON_NEGATIVITY_ITERATIONS,
    lower: float = 0.0,
    x0: Optional[torch.Tensor] = None,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> torch.Tensor:
    """Gerchberg–Papoulis iterations with ``x ≥ lower`` in space and the measured spectrum.

    Parameters
    ----------
    data : FourierData
        Measured spectrum and support (on its device).
    iterations : int
        Number of projection pairs (each costs one forward and one inverse 3-D FFT). The
        default 50 closes most of the missing cone of a bead; more iterations keep improving
        slowly.
    lower : float
        Lower bound of ``x`` (0 ⇔ n ≥ n_m).
    x0 : torch.Tensor, optional
        Starting real volume (default: the direct inversion).
    progress, cancel
        See :mod:`engine.progress`.

    Returns
    -------
    torch.Tensor, shape (Z, Y, X), float32
        Constrained scattering potential ``x`` (docs/formats.md layout), ``x ≥ lower``.

    References
    ----------
    R. W. Gerchberg, Opt. Acta 21, 709 (1974); J. Lim et al., Opt. Express 23, 16933 (2015).
    """
    project = DataConsistency(data)
    x = project.initial() if x0 is None else x0.to(data.spectrum.device, torch.float32).clone()
    for it in range(int(iterations)):
        check_cancel(cancel)
        x = project(x.clamp_(min=lower))
        report(progress, (it + 1) / max(1, iterations), f"non-negativity {it + 1}/{iterations}")
    return x.clamp_(min=lower)
