"""Non-negativity constraint (Gerchberg–Papoulis) to fill the missing cone.

Conventions
-----------
Works on the dimensionless scattering potential ``x = (n/n_m)² − 1`` of a
:class:`~engine.tomography.fourier_mapping.FourierData` (FORMATS.md layout,
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

__all__ = ["apply_non_negativity", "DEFAULT_NON_NEGATIVITY_ITERATIONS"]

DEFAULT_NON_NEGATIVITY_ITERATIONS = 50


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
        Constrained scattering potential ``x`` (FORMATS.md layout), ``x ≥ lower``.

    References
    ----------
    R. W. Gerchberg, Opt. Acta 21, 709 (1974); J. Lim et al., Opt. Express 23, 16933 (2015).
    """
    measured = data.spectrum
    support = data.support
    x = torch.fft.ifftn(measured).real if x0 is None else x0.to(measured.device, torch.float32).clone()
    for it in range(int(iterations)):
        check_cancel(cancel)
        x.clamp_(min=lower)
        spec = torch.fft.fftn(x)
        spec = torch.where(support, measured, spec)
        x = torch.fft.ifftn(spec).real
        report(progress, (it + 1) / max(1, iterations), f"non-negativity {it + 1}/{iterations}")
    return x.clamp_(min=lower)
