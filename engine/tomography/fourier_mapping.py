"""Fourier diffraction theorem: map retrieved fields onto Ewald caps of a 3-D Fourier grid.

Conventions
-----------
* Lengths in µm, spatial frequencies in cycles/µm; volumes (z, y, x); voxel ``j`` of ``n``
  sits at ``(j − n//2)·d``; x, y = 0 at the image centre, z = 0 at the focal plane of the
  fields.
* Fields ``exp(+i(k·r − ωt))``; illumination ``exp(2πi(f_x x + f_y y + f_z z))`` with
  ``f_z = sqrt(k_m² − f_x² − f_y²)`` and ``k_m = n_m/λ`` (cycles/µm).
* Scattering potential ``f(r) = k0²(n(r)² − n_m²)`` (rad²/µm², so that
  ``(∇² + (2πk_m)²)U = −f·U``); this module works with the dimensionless
  ``x = f/(2πk_m)² = (n/n_m)² − 1``, so ``n = n_m·sqrt(1 + x)``.
* :class:`FourierData` holds the spectrum of ``x`` as ``torch.fft.fftn`` of the volume in the
  docs/formats.md layout (voxel ``j`` at ``(j − n//2)·d``), so ``ifftn`` gives that layout directly.

Derivation (first Born; the Rytov form replaces ``U_s/U_in`` by the complex phase ``ψ``).
With Weyl's expansion of the Green's function ``e^{ik|r|}/(4π|r|)`` in cycles/µm, the scattered
field of a plane wave, refocused to z = 0 and divided by the incident field, has the 2-D
spectrum ``Ψ̂(q) = i/(4π ν_z) · F̂(q + f − f_in, ν_z − f_z)`` with ``ν = q + f`` (transverse)
and ``F̂`` the 3-D Fourier transform of ``f``. Hence, for every measured ``q`` with
``|q + f| ≤ NA/λ``::

    F̂(K) = −4πi·ν_z·Ψ̂(q),    K = (q_x, q_y, ν_z − f_z)

and on the DFT grid ``fftn(f)[K] = −4πi·ν_z·fft2(ψ)[q] / dz``. This matches the KAIST solver
(``F̂ = (ν_z/i)·Û``, ``f = 4πF``). Values falling on the same voxel of the 3-D grid (overlapping
caps) are averaged. In the sample-rotation geometry the object is turned by ``φ`` about +y
(right-handed) for view ``φ``, so a lab-frame ``K`` samples the object's spectrum at
``R_y(−φ)·K``.

References
----------
E. Wolf, "Three-dimensional structure determination of semi-transparent objects from
holographic data", Opt. Commun. 1, 153–156 (1969).
K. Kim, H. Yoon, M. Diez-Silva, M. Dao, R. R. Dasari and Y. Park, "High-resolution
three-dimensional imaging of red blood cells parasitized by Plasmodium falciparum and in situ
hemozoin crystals using optical diffraction tomography", J. Biomed. Opt. 19, 011005 (2014).
P. Müller, M. Schürmann and J. Guck, "ODTbrain: a Python library for full-view, dense
diffraction tomography", BMC Bioinformatics 16, 367 (2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..backend import resolve_device
from ..progress import CancelToken, check_cancel, report

__all__ = [
    "FourierData",
    "map_fields_to_fourier",
    "scattering_potential_to_ri",
    "ri_to_scattering_potential",
    "volume_from_spectrum",
]


@dataclass
class FourierData:
    """Measured 3-D spectrum of the dimensionless scattering potential ``x = (n/n_m)² − 1``.

    Attributes
    ----------
    spectrum : torch.Tensor, shape (Z, Y, X), complex64
        ``fftn`` of ``x`` in the docs/formats.md layout (voxel j at (j − n//2)·d); zero off the support.
    support : torch.Tensor, shape (Z, Y, X), bool
        Fourier voxels that were measured (at least one cap fell there).
    voxel_size_um : (dz, dy, dx)
    medium_index : float
    wavelength_um : float
    """

    spectrum: torch.Tensor
    support: torch.Tensor
    voxel_size_um: tuple[float, float, float]
    medium_index: float
    wavelength_um: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.spectrum.shape)

    @property
    def support_fraction(self) -> float:
        return float(self.support.float().mean())


def scattering_potential_to_ri(x: torch.Tensor | np.ndarray, medium_index: float):
    """``n = n_m·sqrt(1 + x)`` for real (clipped at x ≥ −1) or complex ``x``; returns Re(n)."""
    if isinstance(x, torch.Tensor):
        if torch.is_complex(x):
            return (medium_index * torch.sqrt(1 + x)).real
        return medium_index * torch.sqrt((1 + x).clamp(min=0))
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return (medium_index * np.sqrt(1 + x)).real
    return medium_index * np.sqrt(np.clip(1 + x, 0, None))


def ri_to_scattering_potential(ri, medium_index: float):
    """``x = (n/n_m)² − 1`` (the inverse of :func:`scattering_potential_to_ri`)."""
    return (ri / medium_index) ** 2 - 1


def volume_from_spectrum(spectrum: torch.Tensor) -> torch.Tensor:
    """Inverse FFT of a :class:`FourierData` spectrum; complex volume in the docs/formats.md layout."""
    return torch.fft.ifftn(spectrum)


def map_fields_to_fourier(
    psi: np.ndarray | torch.Tensor,
    illumination_per_um: np.ndarray,
    *,
    wavelength_um: float,
    medium_index: float,
    na: float,
    pixel_size_um: float,
    shape_z: int,
    dz_um: Optional[float] = None,
    rotation_angles_rad: Optional[Sequence[float]] = None,
    chunk: int = 16,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> FourierData:
    """Map the spectra of first-order fields ``ψ`` onto their Ewald caps (one scatter-add).

    Parameters
    ----------
    psi : array, shape (N, H, W), complex
        Rytov complex phase ``ln|u| + i·φ_unwrapped`` or Born field ``u − 1``, with ``u`` the
        field divided by the incident field, focused on z = 0.
    illumination_per_um : array, shape (N, 2)
        ``(f_x, f_y)`` of each field, cycles/µm. For ``rotation_angles_rad`` usually zeros.
    wavelength_um, medium_index, na
        Vacuum wavelength (µm), medium index n_m and objective NA (pupil radius NA/λ).
    pixel_size_um : float
        Lateral pixel = voxel size dx = dy, µm.
    shape_z : int
        Number of axial voxels Z.
    dz_um : float, optional
        Axial voxel size (default ``pixel_size_um``).
    rotation_angles_rad : sequence of float, optional
        Sample-rotation geometry: angle of each view about +y (right-handed).
    chunk : int
        Fields transformed at once (temporary memory ≈ 2·chunk·H·W·8 bytes plus ~20 values per
        pupil bin).
    device, progress, cancel
        See :mod:`engine.backend`, :mod:`engine.progress`.

    Returns
    -------
    FourierData
        Averaged spectrum of ``x = (n/n_m)² − 1`` on a (Z, H, W) grid and its support.
        Memory: one complex64 and one bool (Z, H, W) grid.

    References
    ----------
    E. Wolf, Opt. Commun. 1, 153 (1969); K. Kim et al., J. Biomed. Opt. 19, 011005 (2014).
    """
    dev = resolve_device(device)
    n, hh, ww = psi.shape
    zz = int(shape_z)
    dx = float(pixel_size_um)
    dz = float(dz_um) if dz_um is not None else dx
    km = medium_index / wavelength_um
    kr2 = (2 * math.pi * km) ** 2
    pupil2 = min((na / wavelength_um) ** 2, km**2 * (1 - 1e-9))
    ill = torch.as_tensor(np.asarray(illumination_per_um, dtype=np.float32).reshape(n, 2), device=dev)
    angles = None
    if rotation_angles_rad is not None:
        angles = torch.as_tensor(np.asarray(rotation_angles_rad, dtype=np.float32).reshape(n), device=dev)
    # Only the bins of ψ's spectrum inside the pupil disc |q + f| <= NA/λ carry data: visit the
    # integer offsets of a disc of that radius around the bin nearest to −f (float32 is ample:
    # |K|·Z·dz < 1e3 bins, relative error 1e-7).
    dqy, dqx = 1.0 / (hh * dx), 1.0 / (ww * dx)
    radius = math.sqrt(pupil2)
    ry, rx = radius / dqy + 1.5, radius / dqx + 1.5
    oy = torch.arange(-math.ceil(ry), math.ceil(ry) + 1, device=dev)
    ox = torch.arange(-math.ceil(rx), math.ceil(rx) + 1, device=dev)
    inside = (oy[:, None] / ry) ** 2 + (ox[None, :] / rx) ** 2 <= 1.0
    off_y = oy[:, None].expand_as(inside)[inside]
    off_x = ox[None, :].expand_as(inside)[inside]

    flats, values = [], []
    is_tensor = isinstance(psi, torch.Tensor)
    two_pi = 2 * math.pi
    for s in range(0, n, chunk):
        check_cancel(cancel)
        e = min(n, s + chunk)
        p = psi[s:e] if is_tensor else torch.from_numpy(np.ascontiguousarray(psi[s:e]))
        spec = torch.fft.fft2(p.to(dev, torch.complex64))
        f = ill[s:e]
        by = torch.round(-f[:, 1:2] / dqy).long() + off_y[None]  # (B, P) signed bins
        bx = torch.round(-f[:, 0:1] / dqx).long() + off_x[None]
        qy, qx = by * dqy, bx * dqx
        rho2 = (qx + f[:, 0:1]) ** 2 + (qy + f[:, 1:2]) ** 2
        valid = (rho2 <= pupil2) & (by >= -(hh // 2)) & (by < hh - hh // 2) & (bx >= -(ww // 2)) & (bx < ww - ww // 2)
        nuz = torch.sqrt((km**2 - rho2).clamp(min=0))
        fz = torch.sqrt(km**2 - (f**2).sum(dim=1, keepdim=True))
        kz = nuz - fz
        kx = qx
        if angles is not None:
            a = angles[s:e, None]
            kx, kz = kx * torch.cos(a) - kz * torch.sin(a), kx * torch.sin(a) + kz * torch.cos(a)
            valid &= kx.abs() <= 0.5 / dx
        valid &= kz.abs() <= 0.5 / dz
        b, j = valid.nonzero(as_tuple=True)
        by, bx = by[b, j], bx[b, j]
        kbx = torch.round(kx[b, j] * ww * dx).long() if angles is not None else bx
        kbz = torch.round(kz[b, j] * zz * dz).long()
        # ψ's pixel j sits at (j − n//2)·dx: reference its spectrum to the physical origin, and
        # reference the volume's spectrum to voxel (Z//2, H//2, W//2) so that a plain ifftn gives
        # the docs/formats.md layout (both are pure phases on integer bins; laterally they cancel
        # unless the sample rotates)
        phase = two_pi * ((bx - kbx) * (ww // 2) / ww - kbz * (zz // 2) / zz)
        weight = torch.polar(4 * math.pi * nuz[b, j] / (dz * kr2), phase - math.pi / 2)  # −4πi·ν_z/(dz·k²)
        vals = spec[b + 0, by % hh, bx % ww] * weight
        flat = ((kbz % zz) * hh + by % hh) * ww + kbx % ww
        flats.append(flat)
        values.append(vals)
        report(progress, e / n, f"mapping fields onto Ewald caps {e}/{n}")
    # average the values that fall on the same voxel: only the measured voxels are touched, so
    # the grid itself is written once (sparse accumulation; memory: one complex grid + a bool mask)
    flat = torch.cat(flats)
    vals = torch.cat(values)
    del flats, values
    voxels, inverse = torch.unique(flat, return_inverse=True)
    sums = torch.zeros(len(voxels), 2, dtype=torch.float32, device=dev)
    sums.index_add_(0, inverse, torch.view_as_real(vals))
    counts = torch.bincount(inverse, minlength=len(voxels)).to(torch.float32)
    spectrum = torch.zeros(zz * hh * ww, dtype=torch.complex64, device=dev)
    spectrum[voxels] = torch.view_as_complex(sums / counts[:, None])
    support = torch.zeros(zz * hh * ww, dtype=torch.bool, device=dev)
    support[voxels] = True
    spectrum = spectrum.reshape(zz, hh, ww)
    return FourierData(spectrum=spectrum, support=support.reshape(zz, hh, ww),
                       voxel_size_um=(dz, dx, dx), medium_index=float(medium_index),
                       wavelength_um=float(wavelength_um))
