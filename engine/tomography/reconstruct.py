"""3-D refractive-index reconstruction (first Rytov / first Born, Fourier diffraction theorem).

Conventions
-----------
* Lengths in µm; volumes (z, y, x); voxel ``j`` of an axis of ``n`` voxels sits at
  ``(j − n//2)·d``: x, y = 0 at the image centre, z = 0 at the focal plane of the fields
  (``origin_um = (−(Z//2)·dz, −(Y//2)·dy, −(X//2)·dx)``), as ``docs/formats.md`` says.
* Fields are ``U_sample/U_background`` (``exp(+i(k·r − ωt))``; n > n_m gives a positive phase).
* The lateral grid is the fields' pixel grid (dy = dx = pixel); dz defaults to the pixel.

Rytov: ``ψ = ln|u| + i·φ_unwrapped``; Born: ``ψ = u − 1``. Each ``ψ`` is mapped onto its Ewald
cap (:mod:`engine.tomography.fourier_mapping`), overlapping caps are averaged (sample rotation:
every measured voxel is interpolated between the caps of neighbouring views, and the volume is a
cube by default), the 3-D inverse
FFT gives ``x`` and the index (real part): Born ``x = (n/n_m)² − 1``, ``n = n_m·sqrt(1 + x)``;
Rytov, which is linear in ``n − n_m``, ``n = n_m·(1 + x/2)`` (exact for a slab; the square root
would lose ``(n − n_m)²/(2n_m)``, 1 % of a cell's contrast). Optional
missing-cone filling by non-negativity (:mod:`engine.tomography.constraints`) and TV
(:mod:`engine.tomography.tv`).

References
----------
E. Wolf, Opt. Commun. 1, 153 (1969); A. J. Devaney, "Inverse-scattering theory within the Rytov
approximation", Opt. Lett. 6, 374 (1981); K. Kim et al., J. Biomed. Opt. 19, 011005 (2014);
P. Müller et al., "The accuracy of the Rytov and Born approximations ...", Opt. Express 26,
10729 (2018).
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..backend import resolve_device
from ..holography.unwrap import phase_noise_rad, unwrap_phase
from ..metadata import MeasurementMetadata
from ..progress import CancelToken, check_cancel, report, sub_progress
from ..tomogram import Tomogram
from .constraints import DEFAULT_NON_NEGATIVITY_ITERATIONS, apply_non_negativity
from .fourier_mapping import map_fields_to_fourier
from .tv import DEFAULT_TV_WEIGHT, regularize_tv

__all__ = ["Tomogram", "reconstruct", "first_order_fields", "noise_weights", "METHODS", "NOISE_FLOOR_RAD"]

METHODS = ("rytov", "born")

#: floor σ₀ (rad) of the noise weights: the error of a field that is not phase noise (first-order
#: model, retrieval); chosen among 0.1/0.2/0.3 on one noisy exact-Mie sphere and checked on two
#: others and on three clean ones (see :func:`reconstruct`, ``noise_weighting``)
NOISE_FLOOR_RAD = 0.2


def noise_weights(fields: Optional[np.ndarray | torch.Tensor] = None,
                  noise_rad: Optional[np.ndarray] = None) -> np.ndarray:
    """Inverse-variance weights ``1/(σ² + σ₀²)`` (N,) of fields (N, H, W) from their phase noise.

    ``σ`` is ``noise_rad`` when given, else measured on ``fields``
    (:func:`engine.holography.unwrap.phase_noise_rad`); ``σ₀ =`` :data:`NOISE_FLOOR_RAD`.
    """
    if noise_rad is None:
        if fields is None:
            raise ValueError("noise_weights needs the fields or their phase noise")
        arr = fields.detach().cpu().numpy() if isinstance(fields, torch.Tensor) else np.asarray(fields)
        noise_rad = phase_noise_rad(arr)
    sigma = np.nan_to_num(np.asarray(noise_rad, np.float64), nan=np.pi)
    return 1.0 / (sigma**2 + NOISE_FLOOR_RAD**2)


def first_order_fields(
    fields: np.ndarray | torch.Tensor,
    method: str = "rytov",
    *,
    unwrapped_phase: Optional[np.ndarray | torch.Tensor] = None,
    unwrap_method: str = "herraez",
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Rytov complex phase ``ln|u| + i·φ`` or Born field ``u − 1`` of fields ``u`` (N, H, W).

    The Rytov phase ``φ`` is ``unwrapped_phase`` when given, else the phase of ``u`` unwrapped
    with :func:`engine.holography.unwrap.unwrap_phase`. Returns complex64 on ``device``.
    """
    dev = resolve_device(device)
    u = torch.as_tensor(fields, device=dev).to(torch.complex64) if not isinstance(fields, torch.Tensor) \
        else fields.to(dev, torch.complex64)
    if method == "born":
        return u - 1
    if method != "rytov":
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if unwrapped_phase is None:
        unwrapped_phase = unwrap_phase(u, unwrap_method, device=dev)
    phi = torch.as_tensor(unwrapped_phase, device=dev).to(torch.float32)
    amp = torch.log(u.abs().clamp(min=1e-6))
    return torch.complex(amp, phi)


def _rotation_angles(metadata: MeasurementMetadata, rotation_angles_rad: Optional[Sequence[float]],
                     n: int) -> Optional[np.ndarray]:
    """The (N,) rotation angles (rad, float64) of a sample-rotation measurement, else None."""
    if metadata.geometry != "sample-rotation" and rotation_angles_rad is None:
        return None
    angles = rotation_angles_rad if rotation_angles_rad is not None else metadata.rotation_angles_rad
    if angles is None or len(angles) != n:
        raise ValueError("sample-rotation geometry needs one rotation angle per field")
    return np.asarray(angles, dtype=np.float64)


def _kept_views(decision: Optional[np.ndarray], n: int) -> np.ndarray:
    """Indices of the views the screening ``decision`` keeps (all of them without one)."""
    keep = np.ones(n, dtype=bool)
    if decision is not None:
        keep = np.asarray(decision).reshape(n).astype(bool)
        if not keep.any():
            raise ValueError("the screening decision excludes every field: nothing to reconstruct")
    return np.flatnonzero(keep)


def _default_shape_z(shape_z: Optional[int], dz_um: Optional[float], metadata: MeasurementMetadata, hh: int,
                     ww: int, *, rotation: bool) -> int:
    """Axial voxels Z: ``shape_z`` if given, a cube for a sample rotation, else ``min(H, W) // 2``."""
    if shape_z is not None:
        return int(shape_z)
    if rotation:
        # a full rotation measures the object from every side: a cube (Z = X) covers what it sees
        dz = float(dz_um) if dz_um is not None else float(metadata.pixel_size_um)
        return max(2, int(round(ww * float(metadata.pixel_size_um) / dz)))
    return max(2, min(hh, ww) // 2)


def _select_views(fields: np.ndarray | torch.Tensor, unwrapped_phase: Optional[np.ndarray], idx: np.ndarray):
    """The fields (and unwrapped phases, if any) of the views ``idx`` (no copy when all are kept)."""
    sel = idx if len(idx) < len(fields) else slice(None)
    fields_used = fields[sel] if not isinstance(fields, torch.Tensor) else fields[torch.as_tensor(idx)]
    return fields_used, None if unwrapped_phase is None else unwrapped_phase[sel]


def _field_weights(fields_used: np.ndarray | torch.Tensor, field_noise_rad: Optional[np.ndarray],
                   idx: np.ndarray) -> Optional[np.ndarray]:
    """Inverse-variance weights of the views ``idx`` (None for a single view); see :func:`noise_weights`."""
    if len(idx) <= 1:
        return None
    return noise_weights(fields_used if field_noise_rad is None else None,
                         None if field_noise_rad is None else np.asarray(field_noise_rad)[idx])


def _invert(data, nn_iters: int, *, rotation: bool, progress: Optional[Callable[..., None]],
            cancel: Optional[CancelToken]) -> np.ndarray:
    """Refractive index (Z, H, W) float32 from the mapped spectrum, with ``nn_iters`` non-negativity iterations."""
    if nn_iters > 0:
        # sample rotation: start from the plain inversion, which holds the interpolated core
        # around the rotation axis (outside the support, so the iterations may still change it)
        x0 = torch.fft.ifftn(data.spectrum).real if rotation else None
        x = apply_non_negativity(data, iterations=nn_iters, x0=x0, progress=progress, cancel=cancel)
        del x0
        ri = data.to_ri(x)
        del x
    else:
        ri = data.to_ri(torch.fft.ifftn(data.spectrum).real)  # non-absorbing: Re x
    return ri.to(torch.float32).cpu().numpy()


def _map_views(psi: torch.Tensor, ill: np.ndarray, angles: Optional[np.ndarray], weights: Optional[np.ndarray],
               metadata: MeasurementMetadata, method: str, *, shape_z: int, dz_um: Optional[float], chunk: int,
               device: torch.device, progress: Optional[Callable[..., None]], cancel: Optional[CancelToken]):
    """:func:`map_fields_to_fourier` of the first-order fields ``psi`` with the metadata's optics."""
    data = map_fields_to_fourier(
        psi, ill, wavelength_um=metadata.wavelength_um, medium_index=metadata.medium_index,
        na=metadata.na_objective, pixel_size_um=metadata.pixel_size_um, shape_z=shape_z, dz_um=dz_um,
        rotation_angles_rad=angles, field_weights=weights, chunk=chunk, device=device,
        progress=progress, cancel=cancel)
    # first-order Rytov is linear in n − n_m: read its x as 2(n − n_m)/n_m (see
    # scattering_potential_to_ri); Born's x is the scattering potential itself
    data.linear_index = method == "rytov"
    return data


def _tv_ri(data, weight: float, outer_iterations: int, inner_iterations: int, *,
           progress: Optional[Callable[..., None]], cancel: Optional[CancelToken]) -> np.ndarray:
    """TV-regularised (with non-negativity) refractive index (Z, H, W) float32 of the mapped spectrum."""
    xt = regularize_tv(data, weight=weight, outer_iterations=outer_iterations,
                       inner_iterations=inner_iterations, progress=progress, cancel=cancel)
    return data.to_ri(xt).to(torch.float32).cpu().numpy()


def reconstruct(
    fields: np.ndarray | torch.Tensor,
    illumination_per_um: np.ndarray,
    metadata: MeasurementMetadata,
    *,
    method: str = "rytov",
    shape_z: Optional[int] = None,
    dz_um: Optional[float] = None,
    decision: Optional[np.ndarray] = None,
    non_negativity: bool | int = False,
    regularization: Optional[str] = None,
    tv_weight: float = DEFAULT_TV_WEIGHT,
    tv_outer_iterations: int = 30,
    tv_inner_iterations: int = 20,
    unwrapped_phase: Optional[np.ndarray] = None,
    unwrap_method: str = "herraez",
    rotation_angles_rad: Optional[Sequence[float]] = None,
    noise_weighting: bool = True,
    field_noise_rad: Optional[np.ndarray] = None,
    keep_fourier: bool = False,
    chunk: int = 16,
    multislice: Optional[dict] = None,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> Tomogram:
    """Reconstruct the refractive index from background-normalised fields.

    Parameters
    ----------
    fields : array, shape (N, H, W), complex
        ``U_sample/U_background`` focused on z = 0 (e.g. ``RetrievedFields.field``).
    illumination_per_um : array, shape (N, 2)
        Illumination ``(f_x, f_y)`` of each field, cycles/µm.
    metadata : MeasurementMetadata
        Wavelength, n_m, NA, pixel size, geometry (``"illumination-scan"`` or
        ``"sample-rotation"`` with ``rotation_angles_rad``).
    method : {"rytov", "born", "multislice"}
        First-order approximation (Rytov is the default: valid for thick, weakly refracting
        samples; Born only for small phase delays), or ``"multislice"``: the iterative
        multiple-scattering inversion of :mod:`engine.tomography.multislice`, started from Rytov
        (illumination scan only; ``non_negativity`` bounds its iterations, ``regularization`` and
        the TV settings do not apply, ``multislice`` is a dict of its
        :class:`~engine.tomography.multislice.MultisliceOptions`).
    shape_z : int, optional
        Axial voxels Z (default ``min(H, W) // 2`` for an illumination scan; for a sample
        rotation the cube ``Z·dz = W·dx``, since the rotation sees the sample from every side
        and the sample extends as far in z as it does in x).
    dz_um : float, optional
        Axial voxel size (default the pixel size).
    decision : array, shape (N,), bool or uint8, optional
        Screening decision: only fields marked 1 (clean) are used.
    non_negativity : bool or int
        Gerchberg–Papoulis non-negativity (n ≥ n_m): ``True`` for the default 50 iterations, or
        the number of iterations. The result replaces ``ri``.
    regularization : {None, "tv"}
        Also compute ``ri_tv`` by :func:`engine.tomography.tv.regularize_tv` (with
        non-negativity) using ``tv_weight``, ``tv_outer_iterations``, ``tv_inner_iterations``.
    unwrapped_phase : array, shape (N, H, W), optional
        Unwrapped phase of ``fields`` (Rytov); computed with ``unwrap_method`` if absent.
    rotation_angles_rad : sequence of float, optional
        Overrides the metadata's angles for ``"sample-rotation"``.
    noise_weighting : bool
        Illumination scan: where the caps of several fields meet on one Fourier voxel, average
        them with the inverse-variance weights ``1/(σ² + σ₀²)`` of each field's phase noise ``σ``
        (rad per pixel) and a floor ``σ₀ =`` :data:`NOISE_FLOOR_RAD` for the errors that are not
        noise, instead of equally. Dim, steep fields are then counted for what they are worth;
        on exact-Mie spheres through a camera whose steepest fields have 0.76 rad of phase noise
        (``tests/benchmarks/bench_independent_mie.py --photons 1000 --steep-power 5e-6``) the mean
        index inside moves from −0.0013…−0.0017 to −0.0004…−0.0008, unchanged (+0.0009…+0.0010)
        on clean fields.
    field_noise_rad : array, shape (N,), optional
        The phase noise of each field (e.g. ``RetrievedFields.quality.phase_noise_rad``); measured
        on ``fields`` (:func:`engine.holography.unwrap.phase_noise_rad`) when absent.
    keep_fourier : bool
        Keep the measured spectrum in ``Tomogram.fourier`` (memory: one complex (Z,H,W) grid).
    chunk : int
        Fields per batch (bounds temporary memory).
    device, progress, cancel
        See :mod:`engine.backend`, :mod:`engine.progress`.

    Returns
    -------
    Tomogram

    Notes
    -----
    Peak memory for N fields of H×W on a Z-voxel grid: about ``Z·H·W·(8 + 4 + 8)`` bytes (spectrum,
    counts, inverse FFT) plus ``chunk·H·W·80`` bytes, plus the fields themselves; for
    71×512×512 onto 512×512×256: ≈ 1.4 GB (TV adds ≈ 14 float32 volumes).

    References
    ----------
    E. Wolf, Opt. Commun. 1, 153 (1969); A. J. Devaney, Opt. Lett. 6, 374 (1981);
    K. Kim et al., J. Biomed. Opt. 19, 011005 (2014).
    """
    t0 = time.perf_counter()
    timings: dict = {}
    dev = resolve_device(device)
    if method == "multislice":
        from .multislice import reconstruct_multislice

        return reconstruct_multislice(fields, illumination_per_um, metadata, shape_z=shape_z, dz_um=dz_um,
                                      decision=decision, non_negativity=non_negativity,
                                      unwrapped_phase=unwrapped_phase, unwrap_method=unwrap_method,
                                      keep_fourier=keep_fourier, options=multislice, device=dev,
                                      progress=progress, cancel=cancel)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    n, hh, ww = fields.shape
    ill = np.asarray(illumination_per_um, dtype=np.float64).reshape(n, 2)
    angles = _rotation_angles(metadata, rotation_angles_rad, n)
    idx = _kept_views(decision, n)
    fields_used, phase_used = _select_views(fields, unwrapped_phase, idx)
    zz = _default_shape_z(shape_z, dz_um, metadata, hh, ww, rotation=angles is not None)

    report(progress, 0.0, f"{method}: first-order fields of {len(idx)} of {n} views")
    psi = first_order_fields(fields_used, method, unwrapped_phase=phase_used, unwrap_method=unwrap_method,
                             device=dev)
    timings["first_order"] = time.perf_counter() - t0
    check_cancel(cancel)
    t1 = time.perf_counter()
    weights = _field_weights(fields_used, field_noise_rad, idx) if noise_weighting and angles is None else None
    data = _map_views(psi, ill[idx], None if angles is None else angles[idx], weights, metadata, method,
                      shape_z=zz, dz_um=dz_um, chunk=chunk, device=dev,
                      progress=sub_progress(progress, 0.05, 0.3, ""), cancel=cancel)
    del psi
    timings["mapping"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    nn_iters = DEFAULT_NON_NEGATIVITY_ITERATIONS if non_negativity is True else int(non_negativity or 0)
    nn_end = 1.0 - (0.6 if regularization == "tv" else 0.0)  # TV takes the last 60 % of the progress
    ri = _invert(data, nn_iters, rotation=angles is not None, progress=sub_progress(progress, 0.3, nn_end, ""),
                 cancel=cancel)
    label = f"{method}+nonneg" if nn_iters > 0 else method
    timings["inversion"] = time.perf_counter() - t2
    ri_tv = None
    if regularization == "tv":
        t3 = time.perf_counter()
        ri_tv = _tv_ri(data, tv_weight, tv_outer_iterations, tv_inner_iterations,
                       progress=sub_progress(progress, nn_end, 1.0, ""), cancel=cancel)
        timings["tv"] = time.perf_counter() - t3
    elif regularization not in (None, "none"):
        raise ValueError(f"unknown regularization {regularization!r}: use None or 'tv'")
    dz, dy, dx = data.voxel_size_um
    origin = (-(zz // 2) * dz, -(hh // 2) * dy, -(ww // 2) * dx)
    timings["total"] = time.perf_counter() - t0
    report(progress, 1.0, "reconstruction done")
    return Tomogram(ri=ri, voxel_size_um=(dz, dy, dx), origin_um=origin, medium_index=float(metadata.medium_index),
                    method=label, ri_tv=ri_tv, support=int(data.support.sum()),
                    support_fraction=data.support_fraction,
                    fourier=data if keep_fourier else None, timings_s=timings)
