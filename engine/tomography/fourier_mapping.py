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
``R_y(−φ)·K``; there (at normal incidence) every voxel of the measured region is instead
interpolated from the caps of the views on either side of it (:func:`_map_rotation_interpolated`):
nearest-voxel averaging leaves the voxels between caps empty and shifts values by up to half a
voxel, which biased the mean index by several per cent and showed as rings.

References
----------
E. Wolf, "Three-dimensional structure determination of semi-transparent objects from
holographic data", Opt. Commun. 1, 153–156 (1969).
A. C. Kak and M. Slaney, *Principles of Computerized Tomographic Imaging*, IEEE Press (1988),
ch. 6 (Fourier diffraction theorem; interpolation of the frequency-domain data).
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
        ``fftn`` of ``x`` in the docs/formats.md layout (voxel j at (j − n//2)·d); zero off the
        support, except (sample rotation) the small core around the rotation axis that no view
        measures, filled by interpolation and left out of ``support``.
    support : torch.Tensor, shape (Z, Y, X), bool
        Fourier voxels that were measured (at least one cap fell there).
    voxel_size_um : (dz, dy, dx)
    medium_index : float
    wavelength_um : float
    linear_index : bool
        True when ``x`` comes from first-order Rytov fields: convert it to the index with
        ``scattering_potential_to_ri(x, n_m, linear=True)`` (see there); set by
        :func:`engine.tomography.reconstruct.reconstruct`.
    """

    spectrum: torch.Tensor
    support: torch.Tensor
    voxel_size_um: tuple[float, float, float]
    medium_index: float
    wavelength_um: float
    linear_index: bool = False

    def to_ri(self, x: torch.Tensor | np.ndarray):
        """The index of a volume ``x`` of this spectrum's kind (:func:`scattering_potential_to_ri`)."""
        return scattering_potential_to_ri(x, self.medium_index, linear=self.linear_index)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.spectrum.shape)

    @property
    def support_fraction(self) -> float:
        return float(self.support.float().mean())


def scattering_potential_to_ri(x: torch.Tensor | np.ndarray, medium_index: float, *, linear: bool = False):
    """Refractive index from the dimensionless scattering potential ``x``; returns Re(n).

    ``linear=False``: the Helmholtz relation ``n = n_m·sqrt(1 + x)`` (x clipped at ≥ −1 when
    real), the inverse for an ``x`` that is the scattering potential itself (first Born).
    ``linear=True``: ``n = n_m·(1 + x/2)``, the inverse of the first-order Rytov model. Rytov
    linearises the complex phase in ``n − n_m``: a slab of index ``n`` and thickness L gives the
    phase ``2π(n − n_m)L/λ`` exactly, which the Rytov inversion returns as
    ``x = 2(n − n_m)/n_m`` (``f = 2k_m·k_0(n − n_m)``, not ``k_0²(n² − n_m²)``). Reading it
    through the square root loses ``(n − n_m)²/(2n_m)``, about 1 % of the contrast of a cell
    (n − n_m ≈ 0.03); with the linear relation the Rytov index is exact for a slab.
    """
    if linear:
        if isinstance(x, torch.Tensor):
            return medium_index * (1 + (x.real if torch.is_complex(x) else x) / 2)
        return medium_index * (1 + np.real(np.asarray(x)) / 2)
    if isinstance(x, torch.Tensor):
        if torch.is_complex(x):
            return (medium_index * torch.sqrt(1 + x)).real
        return medium_index * torch.sqrt((1 + x).clamp(min=0))
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return (medium_index * np.sqrt(1 + x)).real
    return medium_index * np.sqrt(np.clip(1 + x, 0, None))


def ri_to_scattering_potential(ri, medium_index: float, *, linear: bool = False):
    """``x = (n/n_m)² − 1``, or ``2(n/n_m − 1)`` with ``linear`` (the inverses of
    :func:`scattering_potential_to_ri`)."""
    if linear:
        return 2 * (ri / medium_index - 1)
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
    rotation_interpolation: bool = True,
    field_weights: Optional[np.ndarray] = None,
    chunk: int = 16,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> FourierData:
    """Map the spectra of first-order fields ``ψ`` onto their Ewald caps (one scatter-add).

    Illumination scan (and sample rotation with tilted illuminations, or with
    ``rotation_interpolation=False``): every pupil bin of every field goes to its nearest Fourier
    voxel and values meeting on one voxel are averaged. Sample rotation at normal incidence
    (the usual case): every Fourier voxel inside the measured region is *interpolated* from the
    two views whose caps pass on either side of it (:func:`_map_rotation_interpolated`), so no
    voxel between two caps is left empty.

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
    rotation_interpolation : bool
        Sample rotation at normal incidence: interpolate every voxel between the two nearest
        views (default) instead of nearest-voxel averaging (the older mapping, kept for
        comparison; it leaves voxels between caps empty, which rings).
    field_weights : array, shape (N,), optional
        Illumination scan: values meeting on one voxel are averaged with these weights (e.g.
        inverse noise variances) instead of equally. Ignored by the interpolated rotation mapping.
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
    ill_np = np.asarray(illumination_per_um, dtype=np.float64).reshape(n, 2)
    if rotation_angles_rad is not None and rotation_interpolation and n >= 3 and _normal_incidence(ill_np, hh, ww, dx):
        return _map_rotation_interpolated(
            psi, np.asarray(rotation_angles_rad, dtype=np.float64).reshape(n), wavelength_um=wavelength_um,
            medium_index=medium_index, na=na, pixel_size_um=dx, shape_z=zz, dz_um=dz, chunk=chunk, device=dev,
            progress=progress, cancel=cancel)
    kr2 = (2 * math.pi * km) ** 2
    pupil2 = min((na / wavelength_um) ** 2, km**2 * (1 - 1e-9))
    ill = torch.as_tensor(np.asarray(illumination_per_um, dtype=np.float32).reshape(n, 2), device=dev)
    angles = None if rotation_angles_rad is None else torch.as_tensor(
        np.asarray(rotation_angles_rad, dtype=np.float32).reshape(n), device=dev)
    # Only the bins of ψ's spectrum inside the pupil disc |q + f| <= NA/λ carry data: visit the
    # integer offsets of a disc of that radius around the bin nearest to −f (float32 is ample:
    # |K|·Z·dz < 1e3 bins, relative error 1e-7).
    dqy, dqx = 1.0 / (hh * dx), 1.0 / (ww * dx)
    off_y, off_x = _disc_offsets(math.sqrt(pupil2), dqy, dqx, dev)

    flats, values, wts = [], [], []
    fw = None if field_weights is None else torch.as_tensor(np.asarray(field_weights, np.float32).reshape(n),
                                                            device=dev)
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
        if fw is not None:
            wts.append(fw[s + b])
            vals = vals * wts[-1]
        flats.append(flat)
        values.append(vals)
        report(progress, e / n, f"mapping fields onto Ewald caps {e}/{n}")
    spectrum, support = _average_on_voxels(flats, values, None if fw is None else wts, (zz, hh, ww), dev)
    return FourierData(spectrum=spectrum, support=support,
                       voxel_size_um=(dz, dx, dx), medium_index=float(medium_index),
                       wavelength_um=float(wavelength_um))


def _normal_incidence(ill: np.ndarray, hh: int, ww: int, dx: float) -> bool:
    """Whether every illumination ``ill`` (N, 2) cycles/µm is within half a bin of normal incidence."""
    return bool(np.all(np.abs(ill[:, 0]) * ww * dx < 0.5) and np.all(np.abs(ill[:, 1]) * hh * dx < 0.5))


def _disc_offsets(radius: float, dqy: float, dqx: float, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer (y, x) bin offsets of a disc of ``radius`` cycles/µm (plus 1.5 bins), bins ``dqy``, ``dqx`` apart."""
    ry, rx = radius / dqy + 1.5, radius / dqx + 1.5
    oy = torch.arange(-math.ceil(ry), math.ceil(ry) + 1, device=dev)
    ox = torch.arange(-math.ceil(rx), math.ceil(rx) + 1, device=dev)
    inside = (oy[:, None] / ry) ** 2 + (ox[None, :] / rx) ** 2 <= 1.0
    return oy[:, None].expand_as(inside)[inside], ox[None, :].expand_as(inside)[inside]


def _average_on_voxels(flats: list[torch.Tensor], values: list[torch.Tensor], wts: Optional[list[torch.Tensor]],
                       shape: tuple[int, int, int], dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the values that fall on the same flat voxel index (weighted by ``wts`` if given).

    Only the measured voxels are touched, so the grid itself is written once (sparse
    accumulation; memory: one complex grid + a bool mask). ``values`` must already carry the
    weights. Returns the complex64 spectrum and its bool support, both of ``shape``.
    """
    flat = torch.cat(flats)
    vals = torch.cat(values)
    flats.clear()
    values.clear()
    voxels, inverse = torch.unique(flat, return_inverse=True)
    sums = torch.zeros(len(voxels), 2, dtype=torch.float32, device=dev)
    sums.index_add_(0, inverse, torch.view_as_real(vals))
    if wts is None:
        counts = torch.bincount(inverse, minlength=len(voxels)).to(torch.float32)
    else:
        counts = torch.zeros(len(voxels), dtype=torch.float32, device=dev).index_add_(0, inverse, torch.cat(wts))
    size = shape[0] * shape[1] * shape[2]
    spectrum = torch.zeros(size, dtype=torch.complex64, device=dev)
    spectrum[voxels] = torch.view_as_complex(sums / counts[:, None])
    support = torch.zeros(size, dtype=torch.bool, device=dev)
    support[voxels] = True
    return spectrum.reshape(shape), support.reshape(shape)


def _map_rotation_interpolated(
    psi: np.ndarray | torch.Tensor,
    angles: np.ndarray,
    *,
    wavelength_um: float,
    medium_index: float,
    na: float,
    pixel_size_um: float,
    shape_z: int,
    dz_um: float,
    chunk: int = 16,
    oversample: int = 4,
    max_gap_factor: float = 3.0,
    max_arc_voxels: float = 2.0,
    near_voxels: float = 0.5,
    fill_core: bool = True,
    device: torch.device,
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> FourierData:
    """Sample rotation about +y at normal incidence: interpolate every measured Fourier voxel.

    Nearest-voxel gridding (the illumination-scan mapping) leaves the voxels between the caps of
    neighbouring views empty wherever the caps are more than a voxel apart (far from the
    rotation axis), and shifts every value by up to half a voxel; both show as concentric
    rings around the rotation axis and a biased mean. Here the mapping runs the other way
    (voxel-driven, as direct Fourier reconstruction of X-ray CT interpolates from polar to
    Cartesian samples, Kak & Slaney ch. 3.2/6.4):

    For an object-frame voxel ``K = (K_x, K_y, K_z)`` (cycles/µm) the cap of a view at normal
    incidence, ``K_lab = (q_x, q_y, ν_z − k_m)`` with ``ν_z = sqrt(k_m² − q²)``, passes through
    ``K`` after the rotation iff ``q_y = K_y`` and ``|K_lab| = |K|``, i.e.::

        ν_z = k_m − |K|²/(2 k_m),   q_x = ±sqrt(k_m² − K_y² − ν_z²)

    (measured iff ``q_x² + K_y² ≤ (NA/λ)²``). Each sign gives the view angle ``φ`` that turns
    ``K`` onto that cap: with ``w = k_z + i k_x``, ``w_lab = w_obj·e^{iφ}`` (the lab frame sees
    the object's spectrum at ``R_y(−φ)·K_lab``), so ``φ = arg(ν_z − k_m + i q_x) − arg(K_z + i K_x)``.
    The value is interpolated linearly in ``φ`` between the two measured views on either side
    (sorted angles, cyclic) where their caps pass within ``max_arc_voxels`` voxels of each
    other (arc ``ρ·Δφ``, ``ρ`` the distance from the rotation axis) and the angular gap is at
    most ``max_gap_factor`` × the median step; elsewhere (few views, far from the axis, the
    edges of a partial turn) a voxel takes the nearer cap's value if that cap passes within
    half a voxel, and is otherwise left unmeasured (the angular spectrum there oscillates faster
    than the views sample it, and interpolating would invent it). Within each view, at the continuous ``q_x`` from the field's spectrum
    oversampled ``oversample``× along x (zero padding = the exact band-limited interpolation,
    then linear between the fine bins; ``q_y`` falls on the field's own bins). The two signs
    measure the same voxel twice and are averaged. Weight and phase references are those of
    :func:`map_fields_to_fourier`: ``fftn(x)[K] = −4πi·ν_z·Ψ̂(q)/(dz·(2πk_m)²)`` referenced to voxel
    ``(Z//2, H//2, W//2)``.

    With ``fill_core`` the unmeasured core around the rotation axis is then filled by a local
    quadratic fit about the object's centre (:func:`_fill_rotation_core`; outside ``support``).

    Cost: one (over-sampled) lateral FFT per view and O(1) per measured voxel.

    References
    ----------
    A. C. Kak and M. Slaney, *Principles of Computerized Tomographic Imaging*, IEEE Press (1988),
    ch. 6.4 (Fourier diffraction theorem, interpolation in the frequency domain);
    P. Müller, M. Schürmann and J. Guck, BMC Bioinformatics 16, 367 (2015) (sample-rotation
    geometry and its rotation convention).
    """
    dev = device
    n, hh, ww = psi.shape
    zz = int(shape_z)
    dx, dz = float(pixel_size_um), float(dz_um)
    km = medium_index / wavelength_um
    kr2 = (2 * math.pi * km) ** 2
    pupil2 = min((na / wavelength_um) ** 2, km**2 * (1 - 1e-9))
    pupil = math.sqrt(pupil2)
    nuz_min = math.sqrt(km**2 - pupil2)
    kmax2 = 2 * km * (km - nuz_min)  # largest |K|² on a cap
    dky, dkx, dkz = 1.0 / (hh * dx), 1.0 / (ww * dx), 1.0 / (zz * dz)

    # lateral spectra Ψ(q_x, q_y) of every view: the rows |q_y| ≤ NA/λ on the field's own bins
    # (array-index referenced along y, as the volume is), x over-sampled and referenced to x = 0
    rows = _signed_range(pupil / dky, hh, dev)
    qx_nyquist = (ww // 2) * dkx  # |q_x| up to the last bin on both sides
    wp = int(oversample) * ww
    dqp = 1.0 / (wp * dx)
    rx = int(math.ceil(min(pupil, qx_nyquist) / dqp)) + 2
    cols = torch.arange(-rx, rx + 1, device=dev)
    spectra = _oversampled_view_spectra(psi, rows, cols, wp, chunk=chunk, device=dev, progress=progress,
                                        cancel=cancel)
    views = _SortedViews.from_angles(angles, max_gap_factor, dev)
    two_pi = 2 * math.pi

    # candidate voxels: |K| ≤ K_max, |K_y| ≤ NA/λ
    kmax = math.sqrt(kmax2)
    dvox = max(dkx, dkz)
    bx = _signed_range(kmax / dkx, ww, dev)
    bz_all = _signed_range(kmax / dkz, zz, dev)
    flats, values = [], []
    plane_chunk = max(1, int(1_000_000 // max(1, len(bx) * len(rows))))  # ~250 MB of temporaries
    for s in range(0, len(bz_all), plane_chunk):
        check_cancel(cancel)
        bz = bz_all[s:s + plane_chunk]
        gz, gy, gx, kz, kx, nuz, qx2 = _cap_candidates(bz, rows, bx, (dkz, dky, dkx), km=km, kmax2=kmax2,
                                                       nuz_min=nuz_min, qx_nyquist=qx_nyquist)
        acc, cnt = _interpolate_between_caps(
            spectra, views, gy - rows[0], kz, kx, nuz, torch.sqrt(qx2.clamp(min=0)), km=km, dqp=dqp, rx=rx,
            max_arc=max_arc_voxels * dvox, near=near_voxels * dvox)
        meas = cnt > 0
        gz, gy, gx, nuz = gz[meas], gy[meas], gx[meas], nuz[meas]
        mean = acc[meas] / cnt[meas]
        # x: Ψ is referenced to x = 0, the volume to voxel W//2; z: focal plane z = 0 at voxel Z//2
        phase = -two_pi * (gx * (ww // 2) / ww + gz * (zz // 2) / zz) - math.pi / 2
        weight = torch.polar((4 * math.pi * nuz / (dz * kr2)), phase.double())
        values.append((mean * weight).to(torch.complex64))
        flats.append(((gz % zz) * hh + gy % hh) * ww + gx % ww)
        report(progress, 0.5 + 0.5 * min(1.0, (s + plane_chunk) / max(1, len(bz_all))),
               "interpolating the Fourier voxels")
    flat = torch.cat(flats)
    vals = torch.cat(values)
    spectrum = torch.zeros(zz * hh * ww, dtype=torch.complex64, device=dev)
    spectrum[flat] = vals
    support = torch.zeros(zz * hh * ww, dtype=torch.bool, device=dev)
    support[flat] = True
    spectrum, support = spectrum.reshape(zz, hh, ww), support.reshape(zz, hh, ww)
    if fill_core:
        _fill_rotation_core(spectrum, support, rows, km=km, kmax2=kmax2, dkz=dkz, dkx=dkx, dky=dky, dvox=dvox)
    return FourierData(spectrum=spectrum, support=support, voxel_size_um=(dz, dx, dx),
                       medium_index=float(medium_index), wavelength_um=float(wavelength_um))


def _signed_range(radius_bins: float, size: int, dev: torch.device) -> torch.Tensor:
    """Signed bin offsets ``|b| ≤ radius_bins`` that exist on an FFT axis of ``size`` bins."""
    r = int(math.floor(radius_bins + 1e-9))
    return torch.arange(max(-r, -(size // 2)), min(r, size - size // 2 - 1) + 1, device=dev)


def _oversampled_view_spectra(psi: np.ndarray | torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, wp: int, *,
                              chunk: int, device: torch.device, progress: Optional[Callable[..., None]],
                              cancel: Optional[CancelToken]) -> torch.Tensor:
    """Lateral spectra of every view, shape (N, len(rows), len(cols)), complex64.

    ``rows`` are signed q_y bins of the field's own FFT (array-index referenced); along x the
    field is zero-padded to ``wp`` samples (band-limited oversampling) and referenced to x = 0,
    and the signed fine bins ``cols`` are kept. Reports progress 0 → 0.5.
    """
    n, hh, ww = psi.shape
    dev = device
    place = (torch.arange(ww, device=dev) - ww // 2) % wp
    spectra = torch.empty((n, len(rows), len(cols)), dtype=torch.complex64, device=dev)
    is_tensor = isinstance(psi, torch.Tensor)
    for s in range(0, n, chunk):
        check_cancel(cancel)
        e = min(n, s + chunk)
        p = psi[s:e] if is_tensor else torch.from_numpy(np.ascontiguousarray(psi[s:e]))
        fy = torch.fft.fft(p.to(dev, torch.complex64), dim=-2)[:, rows % hh, :]
        padded = torch.zeros((e - s, len(rows), wp), dtype=torch.complex64, device=dev)
        padded[..., place] = fy
        spectra[s:e] = torch.fft.fft(padded, dim=-1)[..., cols % wp]
        report(progress, 0.5 * e / n, f"spectra of the views {e}/{n}")
    return spectra


@dataclass(frozen=True)
class _SortedViews:
    """The measured views sorted by angle in [0, 2π) (cyclic), and the largest angular gap to bridge."""

    th_sorted: torch.Tensor  # (N,) float64, rad
    order: torch.Tensor  # (N,) long: view index of each sorted angle
    max_gap: float  # rad

    @classmethod
    def from_angles(cls, angles: np.ndarray, max_gap_factor: float, dev: torch.device) -> "_SortedViews":
        two_pi = 2 * math.pi
        th_np = np.mod(angles, two_pi)
        order_np = np.argsort(th_np, kind="stable")
        th_sorted_np = th_np[order_np]
        gaps = np.diff(np.concatenate([th_sorted_np, th_sorted_np[:1] + two_pi]))
        positive = gaps[gaps > 1e-9]
        max_gap = max_gap_factor * (float(np.median(positive)) if len(positive) else two_pi)
        return cls(th_sorted=torch.as_tensor(th_sorted_np, dtype=torch.float64, device=dev),
                   order=torch.as_tensor(order_np, dtype=torch.long, device=dev), max_gap=max_gap)


def _cap_candidates(bz: torch.Tensor, rows: torch.Tensor, bx: torch.Tensor, dk: tuple[float, float, float], *,
                    km: float, kmax2: float, nuz_min: float, qx_nyquist: float) -> tuple[torch.Tensor, ...]:
    """The voxels of the (bz, rows, bx) grid that some view's cap can measure.

    ``dk`` = (dk_z, dk_y, dk_x) cycles/µm per bin. A voxel is measured iff its cap point lies in
    the pupil and on the field's own spectrum (beyond the fields' Nyquist frequency the
    transform of the samples only repeats itself). Returns flat ``(gz, gy, gx, kz, kx, ν_z, q_x²)``
    of the kept voxels (bins: long; the rest float64, cycles/µm).
    """
    dkz, dky, dkx = dk
    gz, gy, gx = torch.meshgrid(bz, rows, bx, indexing="ij")
    gz, gy, gx = gz.reshape(-1), gy.reshape(-1), gx.reshape(-1)
    kz, ky, kx = gz * dkz, gy * dky, gx * dkx
    kz, ky, kx = kz.double(), ky.double(), kx.double()
    s2 = kx**2 + ky**2 + kz**2
    nuz = km - s2 / (2 * km)
    qx2 = km**2 - ky**2 - nuz**2
    keep = (s2 <= kmax2 * (1 + 1e-9)) & (nuz >= nuz_min * (1 - 1e-12)) & (qx2 >= -1e-12) \
        & (qx2 <= qx_nyquist**2)
    return tuple(t[keep] for t in (gz, gy, gx, kz, kx, nuz, qx2))


def _interpolate_between_caps(spectra: torch.Tensor, views: _SortedViews, row: torch.Tensor, kz: torch.Tensor,
                              kx: torch.Tensor, nuz: torch.Tensor, qx_abs: torch.Tensor, *, km: float, dqp: float,
                              rx: int, max_arc: float, near: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and count of the cap values at object-frame voxels (see :func:`_map_rotation_interpolated`).

    For both signs of ``q_x`` the view angle that turns the voxel onto a cap is found and the
    value interpolated linearly in angle between the two sorted views on either side (where their
    caps pass within ``max_arc`` cycles/µm of each other and the gap is at most ``views.max_gap``),
    else taken from the nearer cap if it passes within ``near`` cycles/µm, else not counted.
    Within a view the value is linear between the over-sampled x bins (``dqp`` apart, offset ``rx``).

    Returns
    -------
    acc : tensor, complex128, shape (M,)
        Sum of the values taken.
    cnt : tensor, float64, shape (M,)
        How many (0, 1 or 2).
    """
    dev = kz.device
    n, n_rows, n_cols = spectra.shape
    flat_spec = spectra.reshape(-1)
    th_sorted, order = views.th_sorted, views.order
    two_pi = 2 * math.pi
    arg_obj = torch.atan2(kx, kz)
    rho = torch.sqrt(kx**2 + kz**2)  # distance from the rotation axis, cycles/µm
    acc = torch.zeros(len(kz), dtype=torch.complex128, device=dev)
    cnt = torch.zeros(len(kz), dtype=torch.float64, device=dev)
    for sign in (1.0, -1.0):
        qx = sign * qx_abs
        a = torch.remainder(torch.atan2(qx, nuz - km) - arg_obj, two_pi)
        idx = torch.searchsorted(th_sorted, a, right=True)
        lo = (idx - 1) % n
        hi = idx % n
        th_lo = th_sorted[lo] - torch.where(idx == 0, two_pi, 0.0)
        th_hi = th_sorted[hi] + torch.where(idx == n, two_pi, 0.0)
        gap = th_hi - th_lo
        t = torch.where(gap > 1e-9, (a - th_lo) / gap.clamp(min=1e-9), torch.zeros_like(a))
        # interpolate between two caps only where they pass close together (their arc
        # distance ≤ max_arc); elsewhere (sparse views, far from the axis) take the
        # nearer cap only if it passes within `near`, else leave the voxel unmeasured
        interp = (gap <= views.max_gap) & (rho * gap <= max_arc)
        lower_nearer = t <= 0.5
        is_near = rho * torch.where(lower_nearer, a - th_lo, th_hi - a) <= near
        t = torch.where(interp, t, torch.where(lower_nearer, 0.0, 1.0).to(t.dtype))
        ok = interp | is_near
        c = qx / dqp + rx
        c0 = torch.floor(c).long().clamp(0, n_cols - 2)
        wc = (c - c0).clamp(0, 1)
        val = torch.zeros(len(kz), dtype=torch.complex128, device=dev)
        for view, wv in ((order[lo], 1 - t), (order[hi], t)):
            base = (view * n_rows + row) * n_cols + c0
            v = flat_spec[base] * (1 - wc) + flat_spec[base + 1] * wc
            val = val + v.to(torch.complex128) * wv
        acc = acc + torch.where(ok, val, torch.zeros_like(val))
        cnt = cnt + ok.double()
    return acc, cnt


def _fill_rotation_core(spectrum: torch.Tensor, support: torch.Tensor, rows: torch.Tensor, *, km: float,
                        kmax2: float, dkz: float, dkx: float, dky: float, dvox: float,
                        fit_voxels: float = 2.5) -> None:
    """Fill the unmeasured core around the rotation axis (in place), recentred on the object.

    No view of a rotation about y measures the voxels close to the K_y axis: a cap reaches
    ``K`` only if its distance from the axis is ``ρ ≥ |K|²/(2k_m)`` (the "apple core"; for
    ``|K| → 0`` a single line of voxels, ``(0, K_y, 0)``). That line alone is the object's
    profile along y averaged over x and z (``∫∫ x dx dz``), so leaving it empty subtracts that
    profile from the image: the sample loses several per cent of its Δn and horizontal bands
    appear.

    An object off the rotation axis, centred at ``(c_z, c_x)``, has a spectrum that turns as
    ``exp(−2πi(K_z c_z + K_x c_x))``: 0.5 rad per voxel for a sphere 0.8 µm off the axis in a
    10 µm field. Any smooth interpolation across the hole of that rotating phase loses amplitude
    (the harmonic interpolation used before recovered 0.77 of the axis values of such a sphere,
    −1.1 % of its mean Δn). So the spectrum is first referenced to the object's centre, found
    from the measured phase steps between neighbouring voxels near the axis
    (``arg Σ S(K + e_x)·S*(K) = −2π c_x ΔK_x``, likewise in z; the centre of the object's
    low-frequency content). There it is smooth and nearly real, and each K_y plane's hole
    (unmeasured voxels within ``|K|²/(2k_m)`` + 1 voxel of the axis, inside the measured ball)
    is filled by the least-squares quadratic in ``(K_z, K_x)`` through the measured voxels
    within ``fit_voxels`` voxels of the hole (the second-order Taylor expansion of the
    spectrum about the object's centre, its second moments), or by their mean where fewer than
    18 of them are measured. The filled voxels are **not** added to ``support``: they shape the
    plain inversion, while the non-negativity and TV iterations still treat them as unknown.
    """
    zz, hh, ww = spectrum.shape
    dev = spectrum.device
    rcore = kmax2 / (2 * km) + 1.01 * dvox
    r = int(math.ceil((rcore + fit_voxels * dvox) / min(dkz, dkx))) + 1
    bz = torch.arange(max(-r, -(zz // 2)), min(r, zz - zz // 2 - 1) + 1, device=dev)
    bx = torch.arange(max(-r, -(ww // 2)), min(r, ww - ww // 2 - 1) + 1, device=dev)
    iz, iy, ix = (bz % zz)[:, None, None], (rows % hh)[None, :, None], (bx % ww)[None, None, :]
    kz, ky, kx = (bz.double() * dkz)[:, None, None], (rows.double() * dky)[None, :, None], \
        (bx.double() * dkx)[None, None, :]
    k2 = kz**2 + ky**2 + kx**2
    rho = torch.sqrt(kz**2 + kx**2)
    meas = support[iz, iy, ix]
    hole = (~meas) & (k2 <= kmax2 * (1 + 1e-9)) & (rho <= k2 / (2 * km) + 1.01 * dvox)
    if not bool(hole.any()):
        return
    # referenced to x = z = 0 (the volume's spectrum is referenced to voxel (Z//2, ·, X//2))
    ref = torch.polar(torch.ones((), dtype=torch.float64, device=dev),
                      2 * math.pi * (bz.double()[:, None, None] * (zz // 2) / zz
                                     + bx.double()[None, None, :] * (ww // 2) / ww))
    zero = torch.zeros((), dtype=torch.complex128, device=dev)
    sub = torch.where(meas, spectrum[iz, iy, ix].to(torch.complex128) * ref, zero)
    cz, cx = _spectrum_centre(sub, meas, dkz, dkx)
    centre = torch.polar(torch.ones((), dtype=torch.float64, device=dev), 2 * math.pi * (kz * cz + kx * cx))
    sub = sub * centre
    plane = rho[:, 0, :].shape  # (Z', X')
    u, v = (kz[:, 0, :] / dvox).expand(plane), (kx[:, 0, :] / dvox).expand(plane)
    basis = torch.stack([torch.ones_like(u), u, v, u * u, v * v, u * v], -1).to(torch.complex128)
    for j in range(len(rows)):
        h = hole[:, j, :]
        if not bool(h.any()):
            continue
        near = meas[:, j, :] & (rho[:, 0, :] <= float(rho[:, 0, :][h].max()) + fit_voxels * dvox)
        vals = sub[:, j, :][near]
        if int(near.sum()) >= 3 * basis.shape[-1]:
            coef = torch.linalg.lstsq(basis[near], vals[:, None]).solution
            pred = (basis[h] @ coef)[:, 0]
            # the spectrum may peak inside the hole (it does at K = 0), but an extrapolation
            # never exceeds twice what was measured around it
            cap = 2 * vals.abs().max()
            pred = pred * torch.clamp(cap / pred.abs().clamp(min=1e-30), max=1.0)
        else:
            pred = vals.mean().expand(int(h.sum())) if len(vals) else zero.expand(int(h.sum()))
        sub[:, j, :][h] = pred
    filled = (sub / (centre * ref))[hole].to(spectrum.dtype)
    spectrum[iz.expand_as(hole)[hole], iy.expand_as(hole)[hole], ix.expand_as(hole)[hole]] = filled


def _spectrum_centre(sub: torch.Tensor, meas: torch.Tensor, dkz: float, dkx: float) -> tuple[float, float]:
    """Centre ``(c_z, c_x)`` (µm) of the object whose spectrum near the axis is ``sub`` (Z', Y', X').

    From the phase of the summed products of measured neighbours: a spectrum
    ``S ∝ exp(−2πi(K_z c_z + K_x c_x))`` gives ``arg Σ S(K + e_x) S*(K) = −2π c_x ΔK_x``.
    """
    zero = torch.zeros((), dtype=sub.dtype, device=sub.device)
    px = torch.where(meas[:, :, 1:] & meas[:, :, :-1], sub[:, :, 1:] * sub[:, :, :-1].conj(), zero).sum()
    pz = torch.where(meas[1:] & meas[:-1], sub[1:] * sub[:-1].conj(), zero).sum()
    cx = -float(torch.angle(px)) / (2 * math.pi * dkx) if abs(complex(px)) > 0 else 0.0
    cz = -float(torch.angle(pz)) / (2 * math.pi * dkz) if abs(complex(pz)) > 0 else 0.0
    return cz, cx
