"""Angular-spectrum propagation of complex fields in a homogeneous medium.

Conventions
-----------
* Fields ``exp(+i(k·r − ωt))``; images (y, x); lengths in µm, frequencies in cycles/µm.
* Spectra: ``fft2`` with axes ``fftfreq(n, d=pixel_size_um)``.
* Propagation by a distance ``z`` along +z multiplies the angular spectrum by
  ``exp(+2πi·ν_z·z)`` with ``ν_z = sqrt((n_m/λ)² − ν_x² − ν_y²)``. Evanescent components
  (``ν_x² + ν_y² > (n_m/λ)²``) are set to zero.

References
----------
J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., §3.10 (angular spectrum of plane waves).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..backend import resolve_device

__all__ = ["angular_spectrum_kernel", "propagate"]


def angular_spectrum_kernel(
    shape: tuple[int, int],
    pixel_size_um: float | tuple[float, float],
    wavelength_um: float,
    medium_index: float,
    distance_um: float,
    *,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Transfer function ``exp(+2πi ν_z z)`` of free propagation over ``distance_um``.

    Parameters
    ----------
    shape : (H, W)
        Image shape in pixels.
    pixel_size_um : float or (dy, dx)
        Pixel size in the sample plane, µm.
    wavelength_um : float
        Vacuum wavelength λ, µm.
    medium_index : float
        Refractive index n_m of the medium.
    distance_um : float
        Propagation distance along +z, µm (negative: back-propagation).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    torch.Tensor, shape (H, W), complex64
        Kernel in FFT order; zero for evanescent frequencies.
    """
    dev = resolve_device(device)
    dy, dx = (pixel_size_um, pixel_size_um) if np.isscalar(pixel_size_um) else pixel_size_um
    h, w = shape
    fy = torch.fft.fftfreq(h, d=float(dy), dtype=torch.float64, device=dev)
    fx = torch.fft.fftfreq(w, d=float(dx), dtype=torch.float64, device=dev)
    km = medium_index / wavelength_um
    arg = km**2 - fy[:, None] ** 2 - fx[None, :] ** 2
    nuz = torch.sqrt(arg.clamp(min=0.0))
    phase = 2.0 * math.pi * nuz * float(distance_um)
    kernel = torch.polar(torch.ones_like(phase), phase)
    kernel = torch.where(arg > 0, kernel, torch.zeros_like(kernel))
    return kernel.to(torch.complex64)


def propagate(
    field: np.ndarray | torch.Tensor,
    distance_um: float,
    pixel_size_um: float | tuple[float, float],
    wavelength_um: float,
    medium_index: float,
    *,
    device: str | torch.device = "auto",
) -> np.ndarray | torch.Tensor:
    """Propagate complex field(s) by ``distance_um`` along +z with the angular-spectrum method.

    Parameters
    ----------
    field : array, shape (..., H, W), complex
        Field(s) in a plane; a NumPy input gives a NumPy output, a tensor gives a tensor
        (on its own device).
    distance_um, pixel_size_um, wavelength_um, medium_index
        See :func:`angular_spectrum_kernel`.
    device : str or torch.device
        Device for NumPy inputs.

    Returns
    -------
    Same type as ``field``, shape (..., H, W), complex64
        The field in the plane ``z + distance_um`` (periodic boundaries: pad beforehand if the
        field does not decay towards the edges).

    References
    ----------
    J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., §3.10.
    """
    as_numpy = not isinstance(field, torch.Tensor)
    t = torch.as_tensor(np.asarray(field), device=resolve_device(device)) if as_numpy else field
    t = t.to(torch.complex64)
    if distance_um == 0:
        out = t.clone()
    else:
        k = angular_spectrum_kernel(tuple(t.shape[-2:]), pixel_size_um, wavelength_um, medium_index,
                                    distance_um, device=t.device)
        out = torch.fft.ifft2(torch.fft.fft2(t) * k)
    return out.cpu().numpy() if as_numpy else out
