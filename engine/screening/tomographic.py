"""Each field against its prediction from the rest of the measurement, by the Fourier diffraction theorem.

Screening compares a field with its neighbours (:mod:`engine.screening.consistency`). Comparing them pixel
by pixel misses what tomography knows: a field of illumination ``k`` samples the sample's 3-D spectrum on
its own Ewald cap, so at one transverse frequency the fields of different illuminations see *different
axial* frequencies of the same object. This module predicts each field's spectrum, frequency by frequency,
from the fields whose caps pass closest in axial frequency there, and scores what is left: a defect of
one field (a bubble, a speck, a ghost) is in no other field's cap, while the sample's change with angle
is predicted.

Conventions
-----------
* Fields are ratio fields ``U_k = u_k / u_in,k`` (N, h, w) complex of one measurement, cropped alike;
  pixel ``p`` µm; illumination ``k_k = (f_x, f_y)`` cycles/µm; vacuum wavelength ``λ`` µm; medium
  index ``n_m``; objective ``NA``.
* Rytov phase ``ψ_k = ln|U_k| + i φ_k`` (``φ_k`` unwrapped by :func:`skimage.restoration.unwrap_phase`,
  median over the crop subtracted). Spatial frequencies ``μ`` from :func:`numpy.fft.fftfreq` (forward
  FFT ``exp(−2πi μ·x)``; fields ``exp(+i k·r)``), so ``ψ_k``'s spectrum at ``μ`` is the scattered wave of
  transverse frequency ``μ + k_k``, inside the pupil when ``|μ + k_k| ≤ NA/λ``.
* Fourier diffraction theorem (Rytov): ``ν_z(μ + k_k) · Ψ_k(μ) ∝ F(μ, κ_k(μ))`` with
  ``ν_z(q) = sqrt((n_m/λ)² − |q|²)`` and ``κ_k(μ) = ν_z(μ + k_k) − ν_z(k_k)`` (cycles/µm): the object
  spectrum ``F`` at lateral frequency ``μ`` and axial frequency ``κ_k``.
* Prediction of field ``k`` at ``μ``: the complex median (real and imaginary parts apart) of
  ``ν_z Ψ_j(μ)`` over :data:`NEAREST` other fields ``j`` whose pupil covers ``μ`` and whose ``κ_j(μ)`` lie
  next to ``κ_k(μ)`` — the fields ranked around ``k`` in axial frequency there, half below and half
  above (shifted inward at the ends of the range); frequencies that fewer than ``NEAREST + 1`` fields see
  are not scored.
* Score: the residual ``r_k = F⁻¹[(ν_z Ψ_k − prediction) / ν_z]`` (a Rytov phase, rad), its squared
  modulus smoothed by a Gaussian of :data:`SMOOTH_PX` pixels, largest value over the crop (rad²).
  :func:`tomographic_residual` turns it into a one-sided robust z-score of ``ln(score)`` over the
  measurement (over the fields a network keeps, when given).

References
----------
E. Wolf, "Three-dimensional structure determination of semi-transparent objects from holographic data",
Opt. Commun. 1, 153 (1969) — the Fourier diffraction theorem. A. J. Devaney, "Inverse-scattering theory
within the Rytov approximation", Opt. Lett. 6, 374 (1981).
"""

from __future__ import annotations

import os

import numpy as np
from scipy.ndimage import gaussian_filter

from .small_median import median_of_few

__all__ = ["NEAREST", "SMOOTH_PX", "tomographic_scores", "tomographic_residual", "tomographic_difference",
           "tomographic_residual_images"]

#: fields of nearest axial frequency whose median predicts a field at each lateral frequency
NEAREST = 6
#: Gaussian smoothing of the squared residual before its largest value is taken, pixels
SMOOTH_PX = 2.0
#: a spread below this (in ln units) is taken as this one (identical fields)
_MIN_SPREAD = 1e-3


def _rytov(fields: np.ndarray, unwrapped_phase: np.ndarray | None = None) -> np.ndarray:
    if unwrapped_phase is None:  # skimage's unwrapping releases the GIL: the fields in a few threads
        from concurrent.futures import ThreadPoolExecutor

        from skimage.restoration import unwrap_phase

        wrapped = [np.angle(u).astype(np.float64) for u in fields]
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            phase = np.stack(list(pool.map(unwrap_phase, wrapped)))
    else:
        phase = np.asarray(unwrapped_phase, np.float64).copy()
    phase -= np.median(phase, axis=(1, 2), keepdims=True)
    return np.log(np.abs(fields) + 1e-3) + 1j * phase


def _residual_images(fields: np.ndarray, pixel_size_um: float, wavelength_um: float, illumination_per_um: np.ndarray,
                     na_objective: float, medium_index: float, unwrapped_phase: np.ndarray | None,
                     which: np.ndarray) -> np.ndarray:
    """The Rytov residuals ``r_k`` (len(which), h, w) complex of the fields ``which`` (see the module's conventions)."""
    u = np.asarray(fields)
    ill = np.asarray(illumination_per_um, np.float64).reshape(-1, 2)
    if u.ndim != 3 or u.shape[0] != ill.shape[0] or u.shape[0] <= NEAREST:
        raise ValueError(f"need (N, h, w) fields with N > {NEAREST} and one illumination each, "
                         f"got {u.shape} and {ill.shape}")
    if unwrapped_phase is not None and np.shape(unwrapped_phase) != u.shape:
        raise ValueError(f"unwrapped phase {np.shape(unwrapped_phase)} does not match the fields {u.shape}")
    n, h, w = u.shape
    k0 = medium_index / wavelength_um
    fy, fx = np.meshgrid(np.fft.fftfreq(h, pixel_size_um), np.fft.fftfreq(w, pixel_size_um), indexing="ij")
    qx, qy = fx[None] + ill[:, 0, None, None], fy[None] + ill[:, 1, None, None]
    inside = qx ** 2 + qy ** 2 <= (0.97 * na_objective / wavelength_um) ** 2  # (N, h, w): each field's pupil
    used = np.any(inside, axis=0)  # the frequencies any field sees: only these are predicted
    nz = np.sqrt(np.clip(k0 ** 2 - qx[:, used] ** 2 - qy[:, used] ** 2, 1e-9, None))  # (N, P)
    kappa = nz - np.sqrt(np.clip(k0 ** 2 - ill[:, 0] ** 2 - ill[:, 1] ** 2, 1e-9, None))[:, None]
    spec = (np.fft.fft2(_rytov(u.astype(np.complex64), unwrapped_phase).astype(np.complex64))[:, used]
            * nz.astype(np.float32))  # complex64: the gathers and medians below are memory-bound
    pupil = inside[:, used]
    # at each frequency, the fields that see it in order of axial frequency (the others last); each field's
    # neighbours are the NEAREST fields around its own rank (a window shifted inward at the ends)
    order = np.argsort(np.where(pupil, kappa, np.inf), axis=0, kind="stable").astype(np.int32)
    n_freq = spec.shape[1]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n, dtype=np.int32)[:, None].repeat(n_freq, axis=1), axis=0)
    valid = pupil.sum(axis=0).astype(np.int32)  # (P,)
    rank = rank[which]
    start = np.clip(rank - NEAREST // 2, 0, np.maximum(valid - NEAREST - 1, 0)[None])  # (K, P)
    step = start[None] + np.arange(NEAREST, dtype=np.int32)[:, None, None]  # NEAREST ranks of the window ...
    others = np.minimum(step + (step >= rank[None]), n - 1)  # ... skipping the field's own rank
    ok = pupil[which] & (valid[None] > NEAREST)
    cols = np.arange(n_freq, dtype=np.int32)
    src = order.ravel()[others * n_freq + cols]  # (NEAREST, K, P): the field at each neighbour's rank
    vals = spec.ravel()[src.astype(np.intp) * n_freq + cols]
    pred = median_of_few(vals.real) + 1j * median_of_few(vals.imag)
    full = np.zeros((len(which), h, w), np.complex64)
    full[:, used] = np.where(ok, (spec[which] - pred) / nz[which], 0.0)
    return np.fft.ifft2(full)


def tomographic_scores(fields: np.ndarray, pixel_size_um: float, wavelength_um: float,
                       illumination_per_um: np.ndarray, na_objective: float, medium_index: float,
                       unwrapped_phase: np.ndarray | None = None) -> np.ndarray:
    """Each field's largest smoothed squared residual against its prediction from the others (rad²), (N,).

    Parameters
    ----------
    fields : ndarray (N, h, w) complex
        One measurement's ratio fields, cropped alike; N > :data:`NEAREST`.
    pixel_size_um, wavelength_um : float
        Field pixel, vacuum wavelength, µm.
    illumination_per_um : ndarray (N, 2)
        Illumination frequencies, cycles/µm.
    na_objective, medium_index : float
    unwrapped_phase : ndarray (N, h, w), optional
        The fields' unwrapped phase, rad, when the retrieval made it (else unwrapped here, ~3 ms per 128² field).

    Returns
    -------
    ndarray (N,) float64
    """
    resid = np.abs(tomographic_residual_images(fields, pixel_size_um, wavelength_um, illumination_per_um,
                                               na_objective, medium_index, unwrapped_phase)) ** 2
    return gaussian_filter(resid, (0, SMOOTH_PX, SMOOTH_PX), mode="nearest").max(axis=(1, 2))


def tomographic_difference(fields: np.ndarray, pixel_size_um: float, wavelength_um: float,
                           illumination_per_um: np.ndarray, na_objective: float, medium_index: float, index: int,
                           unwrapped_phase: np.ndarray | None = None) -> np.ndarray:
    """How field ``index`` differs from what the rest of the measurement predicts, as an image (for the review).

    ``|r_k|``: the modulus of the Rytov residual (``ln|U|`` and the phase, so for a small difference about
    ``|ΔU| / |U|``: 0.1 = a tenth of the field) over the whole field. The sample, predicted from the fields
    whose Ewald caps pass next to this one's, cancels even where it changes with the angle; a shadow, a bubble,
    a fringe or a hot pixel of this field alone stays. Arguments as :func:`tomographic_scores`.

    Returns
    -------
    ndarray (H, W) float32
    """
    n = np.shape(fields)[0]
    if not 0 <= int(index) < n:
        raise ValueError(f"field {index} is not one of the {n} fields")
    return np.abs(_residual_images(fields, pixel_size_um, wavelength_um, illumination_per_um, na_objective,
                                   medium_index, unwrapped_phase, np.array([int(index)]))[0]).astype(np.float32)


def tomographic_residual_images(fields: np.ndarray, pixel_size_um: float, wavelength_um: float,
                                illumination_per_um: np.ndarray, na_objective: float, medium_index: float,
                                unwrapped_phase: np.ndarray | None = None) -> np.ndarray:
    """Every field's Rytov residual ``r_k`` against its prediction from the others, (N, h, w) complex64.

    Real part: the log-amplitude residual; imaginary part: the phase residual, rad. The images whose
    smoothed squared modulus :func:`tomographic_scores` reduces to one number. Arguments as
    :func:`tomographic_scores`.
    """
    n = np.shape(fields)[0]
    return _residual_images(fields, pixel_size_um, wavelength_um, illumination_per_um, na_objective,
                            medium_index, unwrapped_phase, np.arange(n)).astype(np.complex64, copy=False)


def tomographic_residual(fields: np.ndarray, pixel_size_um: float, wavelength_um: float,
                         illumination_per_um: np.ndarray, na_objective: float, medium_index: float,
                         probability: np.ndarray | None = None, min_fields: int = 8,
                         unwrapped_phase: np.ndarray | None = None, relative: bool = False) -> np.ndarray:
    """One-sided robust z-scores (N,) float32 of :func:`tomographic_scores`' ``ln(score)``.

    With ``relative``, ``ln(score)`` minus its median over the field's
    :data:`~engine.screening.consistency.NEIGHBOURS` fields of nearest illumination (the same ring first), as
    the other consistency features are, before the z-score.

    ``z = max(0, (ln s − median) / (1.4826 · MAD))``, the median and MAD over the fields whose
    ``probability`` (a network's noisy-probability, (N,)) is below 0.5 when at least ``min_fields`` are,
    else over every field: 0 = predicted as well as the measurement's typical clean field, 3 = three
    robust spreads worse. ``unwrapped_phase`` as :func:`tomographic_scores`'.
    """
    from .consistency import nearest_illuminations, spread_reference

    log_s = np.log(np.maximum(tomographic_scores(fields, pixel_size_um, wavelength_um, illumination_per_um,
                                                 na_objective, medium_index, unwrapped_phase), 1e-30))
    if relative:  # against the fields of nearest illumination: a steep, dim ring that is all noisier is no defect
        log_s = log_s - np.median(log_s[nearest_illuminations(illumination_per_um, len(log_s))], axis=1)
    ref = spread_reference(log_s, probability, min_fields)
    med = np.median(ref)
    spread = max(1.4826 * float(np.median(np.abs(ref - med))), _MIN_SPREAD)
    return np.maximum((log_s - med) / spread, 0.0).astype(np.float32)
