"""Measurement-consistency features: how much each field differs from the other fields of its measurement.

Conventions (``docs/formats.md``): fields are sample/background ratio fields ``U`` with the
``exp(+i(k·r − ωt))`` convention, images (y, x), one measurement's fields together (the screening
crop, :func:`engine.screening.sample_crop.crop_at`); lengths in µm, spatial frequencies in cycles/µm.

Why
---
A network trained on simulated defects catches the defects it was shown; a defect family it never
saw (leave-one-family-out, issue #19) or a defect from another generator slips through. But every
defect has one thing in common: it makes one field unlike the fields of nearby illumination in the
same measurement, which see the same sample through the same optics. These features measure that,
**without being trained on any defect**: each is a statistic of one field divided by (or minus) its
median over the field's neighbours ``N_k``, so a field that looks like its neighbours scores 0.

Neighbours: with the illuminations known, the :data:`NEIGHBOURS` fields ``j`` of smallest
``|ν_k − ν_j| + RADIAL_WEIGHT·||ν_k| − |ν_j||`` (ν the illumination's transverse frequency): the same
ring first, because a condenser makes steep illuminations dimmer and noisier and a strong sample
scatters differently at each angle. Without them, every other field of the measurement.

Features (in this order; ``log`` is the natural log; medians over ``j ∈ N_k``)
----------------------------------------------------------------------------
``amplitude_residual``
    ``log(r_k / median_j r_j)``, ``r_k`` the RMS over the crop of ``A_k − median_j A_j`` with
    ``A_k = log|U_k|`` minus its own spatial median: shadows, bubbles, blank or dim frames.
``phase_residual``
    The same for the wrapped phase of ``U_k / |U_k|`` against its neighbours' mean phasor, each
    neighbour's global phase aligned to field k first: DMD errors, phase-only debris.
``fine_structure``
    ``log(q_k / median_j q_j)``, ``q_k`` the 99.9th percentile of ``|A_k − G_2 * A_k|``
    (``G_2`` a Gaussian of σ = 2 px): hot pixels, speckle, shot noise of dim frames.
``row_column``
    ``log(s_k / median_j s_j)``, ``s_k`` the larger standard deviation of the row and of the column
    means of ``A_k − G_2 * A_k``: row noise, stripes, line artefacts.
``spectral_peak``
    ``m_k − median_j m_j``, ``m_k`` the rule metric (:func:`engine.screening.rule.rule_peak_metric`,
    log10 of the largest spectral peak outside a 1 cycle/µm disc): parasitic fringes, stray waves.

Each feature is then divided by its robust spread over the measurement, ``1.4826 × median |x − median x|``
(at least :data:`MIN_SPREAD`): a robust z-score (Rousseeuw & Croux 1993), so that a measurement whose
clean fields differ more from one another (a strong sample at low noise) needs a larger difference;
and it is one-sided (negative values set to 0): a field *closer* to its neighbours than they are to
theirs, or with a weaker spectral peak, is no evidence that it is clean (a blank frame has no
peak at all).
The medians make the features robust while fewer than half of the neighbours are defective. With
fewer than :data:`MIN_FIELDS` fields there is nothing to compare with, and the features are not
computed.

References
----------
P. J. Rousseeuw and C. Croux, "Alternatives to the median absolute deviation", J. Am. Stat. Assoc.
88, 1273 (1993) — median-based scale for robust outlier scores.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .rule import rule_peak_metric
from .small_median import median_of_few

__all__ = ["CONSISTENCY_FEATURES", "MIN_FIELDS", "NEIGHBOURS", "consistency_features",
           "consistency_features_by_measurement", "nearest_illuminations", "neighbour_difference", "neighbour_residuals",
           "stage_probability", "TOMOGRAPHIC_FEATURE", "MEMBER_FEATURE", "spread_reference", "stage_features"]

#: The feature names, in column order.
CONSISTENCY_FEATURES: tuple[str, ...] = ("amplitude_residual", "phase_residual", "fine_structure", "row_column",
                                         "spectral_peak")
#: The optional last input of a consistency stage (3.3 cards): each field against its prediction from the others
#: by the Fourier diffraction theorem (:func:`engine.screening.tomographic.tomographic_residual`).
TOMOGRAPHIC_FEATURE = "tomographic_residual"
#: A stage's inputs after those (3.4 cards): each member's own calibrated logit of a two-network model,
#: ``MEMBER_FEATURE.format(k)`` for member ``k`` (the pair's least logit hides the stronger member's view)
MEMBER_FEATURE = "member_logit_{}"
#: Fewest fields of one measurement for which the features are computed.
MIN_FIELDS: int = 8
#: Fields of nearest illumination each field is compared with, when the illuminations are known.
NEIGHBOURS: int = 8
#: Floor of the robust spread a feature is divided by (log units; dex for ``spectral_peak``).
MIN_SPREAD: float = 0.05
#: Weight of the difference in illumination NA (radius |ν|) in the neighbour distance
#: ``|ν_i − ν_j| + RADIAL_WEIGHT·||ν_i| − |ν_j||``: the condenser makes steep illuminations dimmer and
#: noisier, so a field is compared with fields of the same illumination NA first (the same ring).
RADIAL_WEIGHT: float = 3.0
_TINY = 1e-12


def _log_amplitude(fields: np.ndarray) -> np.ndarray:
    """``log|U|`` of each field minus its own spatial median, (N, h, w) float32."""
    a = np.log(np.abs(fields).astype(np.float32) + np.float32(1e-3))
    return a - np.median(a, axis=(1, 2), keepdims=True)


def nearest_illuminations(illumination_per_um: np.ndarray | None, n: int, k: int | None = None) -> np.ndarray:
    """The ``k`` fields of nearest illumination to each field, (n, k) int (itself excluded).

    Parameters
    ----------
    illumination_per_um : ndarray (n, 2) or None
        Transverse illumination frequencies, cycles/µm (any common scale will do: only the order
        of the distances counts). None: every other field is a neighbour (k is then n − 1).
    n : int
        Number of fields.
    k : int, optional
        Neighbours per field (at most n − 1; default :data:`NEIGHBOURS`).

    The distance is ``|ν_i − ν_j| + RADIAL_WEIGHT·||ν_i| − |ν_j||`` (:data:`RADIAL_WEIGHT`).
    """
    if illumination_per_um is None:
        return np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.intp)
    f = np.asarray(illumination_per_um, np.float64).reshape(n, 2)
    r = np.hypot(f[:, 0], f[:, 1])
    d = np.hypot(f[:, None, 0] - f[None, :, 0], f[:, None, 1] - f[None, :, 1]) + RADIAL_WEIGHT * np.abs(r[:, None] - r)
    np.fill_diagonal(d, np.inf)
    k = min(int(NEIGHBOURS if k is None else k), n - 1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _relative_log(values: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """``log(v_i / median_{j ∈ nb_i} v_j)`` with a floor, (N,) float32."""
    v = np.maximum(np.asarray(values, np.float64), _TINY)
    return np.log(v / np.median(v[nb], axis=1)).astype(np.float32)


def _amplitude_rms(a: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """RMS of ``A_i − median_{j ∈ nb_i} A_j`` for each field (blocks of fields, to bound memory)."""
    out = np.empty(len(a), np.float64)
    for s in range(0, len(a), 16):
        ref = median_of_few(a[nb[s:s + 16]], axis=1)
        out[s:s + 16] = np.sqrt(np.mean((a[s:s + 16] - ref) ** 2, axis=(1, 2)))
    return out


def _phase_rms(fields: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """RMS wrapped phase of each field against the mean phasor of its neighbours, each neighbour's
    global phase aligned to the field first."""
    u = fields / (np.abs(fields) + np.float32(1e-6))
    out = np.empty(len(u), np.float64)
    for i in range(len(u)):
        v = u[nb[i]]
        g = np.angle(np.sum(v * np.conj(u[i]), axis=(1, 2)))
        ref = np.mean(v * np.exp(-1j * g).astype(np.complex64)[:, None, None], axis=0)
        d = np.angle(u[i] * np.conj(ref))
        out[i] = np.sqrt(np.mean(d * d))
    return out


def neighbour_residuals(fields: np.ndarray, illumination_per_um: np.ndarray | None = None) -> np.ndarray:
    """Each field against the pixel-wise median of its nearest-illumination neighbours, as two images.

    For field ``k`` and its neighbours ``j ∈ N_k`` (:func:`nearest_illuminations`), each neighbour is
    first scaled by the complex number ``a_j = Σ U_j* U_k / Σ |U_j|²`` that best matches it to
    ``U_k`` in least squares (a global phase and brightness: the illuminations differ in both), then
    ``R_k = median_j Re(a_j U_j) + i median_j Im(a_j U_j)`` (pixel-wise, robust while fewer than half
    of the neighbours are defective at that pixel). A defect of field ``k`` alone (a shadow, a
    fringe, a hot pixel) stays in ``U_k / R_k``; the sample, common to the neighbours, cancels.

    Parameters
    ----------
    fields : ndarray, shape (N, h, w), complex
        One measurement's ratio fields, cropped alike; N ≥ :data:`MIN_FIELDS`.
    illumination_per_um : ndarray (N, 2), optional
        Illumination frequencies, cycles/µm (None: every other field is a neighbour).

    Returns
    -------
    ndarray, shape (N, 2, h, w), float32
        Channel 0: ``angle(U_k R_k*) / π`` (wrapped phase difference, in [−1, 1]); channel 1:
        ``log((|U_k| + 10⁻³) / (|R_k| + 10⁻³))`` clipped to [−5, 5]. Zero where a field equals the median
        of its neighbours.

    Raises
    ------
    ValueError
        Not an (N, h, w) stack, or fewer than :data:`MIN_FIELDS` fields.
    """
    u = _measurement_stack(fields, "neighbour residuals")
    nb = nearest_illuminations(illumination_per_um, u.shape[0])
    out = np.empty((u.shape[0], 2) + u.shape[1:], np.float32)
    for k in range(u.shape[0]):
        ref = _neighbour_median(u[k], u[nb[k]])
        out[k, 0] = np.angle(u[k] * np.conj(ref)) / np.pi
        out[k, 1] = np.clip(np.log((np.abs(u[k]) + 1e-3) / (np.abs(ref) + 1e-3)), -5, 5)
    return out


def neighbour_difference(fields: np.ndarray, illumination_per_um: np.ndarray | None, index: int) -> np.ndarray:
    """How one field differs from its nearest-illumination neighbours, as an image (for the review).

    ``|U_k − R_k| / median |R_k|`` with ``R_k`` the pixel-wise median of the scaled neighbours of
    :func:`neighbour_residuals`: 0 where field ``k`` is like them; a shadow, a bubble, a fringe or
    a hot pixel of this field alone stands out where it is, while the sample, common to the
    neighbours, cancels (to the extent that it scatters alike at neighbouring angles).

    Parameters
    ----------
    fields : ndarray, shape (N, H, W), complex
        One measurement's ratio fields (any size; the whole field for the review).
    illumination_per_um : ndarray (N, 2) or None
        Illumination frequencies, cycles/µm (None: every other field is a neighbour).
    index : int
        The field ``k``.

    Returns
    -------
    ndarray, shape (H, W), float32
        Relative to the field's typical amplitude (0.1 = a tenth of it).

    Raises
    ------
    ValueError
        Not an (N, H, W) stack, fewer than :data:`MIN_FIELDS` fields, or ``index`` out of range.
    """
    f = _measurement_stack(fields, "comparing a field with its neighbours")
    if not 0 <= int(index) < f.shape[0]:
        raise ValueError(f"field {index} is not one of the {f.shape[0]} fields")
    k = int(index)
    nb = nearest_illuminations(illumination_per_um, f.shape[0])[k]
    u = f[k]
    ref = _neighbour_median(u, f[nb])
    return (np.abs(u - ref) / max(float(np.median(np.abs(ref))), _TINY)).astype(np.float32)


def _measurement_stack(fields: np.ndarray, what: str) -> np.ndarray:
    """One measurement's fields as a complex64 (N, h, w) stack; ValueError naming ``what`` needs them when they
    are not a stack or fewer than :data:`MIN_FIELDS`."""
    f = np.asarray(fields)
    if f.ndim != 3:
        raise ValueError(f"fields must have shape (N, h, w), got {f.shape}")
    if f.shape[0] < MIN_FIELDS:
        raise ValueError(f"{what}: at least {MIN_FIELDS} fields of one measurement are needed, got {f.shape[0]}")
    return f.astype(np.complex64, copy=False)


def _neighbour_median(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pixel-wise complex median (h, w) of neighbours ``v`` (n, h, w), each scaled by the complex number
    ``a_j = Σ v_j* u / Σ |v_j|²`` that matches it to ``u`` in least squares."""
    a = np.sum(np.conj(v) * u, axis=(1, 2)) / np.maximum(np.sum(np.abs(v) ** 2, axis=(1, 2)), _TINY)
    w = v * a[:, None, None].astype(np.complex64)
    return median_of_few(w.real) + 1j * median_of_few(w.imag)


def consistency_features(fields: np.ndarray, pixel_size_um: float, wavelength_um: float,
                         illumination_per_um: np.ndarray | None = None,
                         probability: np.ndarray | None = None) -> np.ndarray:
    """The :data:`CONSISTENCY_FEATURES` of every field of one measurement.

    Parameters
    ----------
    fields : ndarray, shape (N, h, w), complex
        The ratio fields of one measurement, cropped alike (the screening crop).
    pixel_size_um : float
        Field pixel size, µm (for the spectral-peak feature's 1 cycle/µm disc).
    wavelength_um : float
        Vacuum wavelength, µm.
    illumination_per_um : ndarray (N, 2), optional
        Illumination frequencies, cycles/µm. Given, each field is compared with the
        :data:`NEIGHBOURS` fields of nearest illumination (fields of a steep, dim ring with each
        other; a strong sample's angle-dependent scattering cancels); else with all the others.
    probability : ndarray (N,), optional
        A network's noisy-probability of each field. Given, the robust spread of each feature is measured
        on the fields it keeps (below 0.5) when at least :data:`MIN_FIELDS` are, so that a measurement with
        many defective fields does not widen it (screening cards with ``"spread_from": "network_clean"``);
        else on every field (3.1/3.2 cards).

    Returns
    -------
    ndarray, shape (N, 5), float32
        One row per field, columns as :data:`CONSISTENCY_FEATURES`, one-sided robust z-scores (≥ 0); 0 means
        "like its neighbours (or closer)", 3 "three robust spreads of this measurement more unlike them".

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_FIELDS` fields, or not an (N, h, w) stack.
    """
    f = _measurement_stack(fields, "consistency features")
    nb = nearest_illuminations(illumination_per_um, f.shape[0])
    a = _log_amplitude(f)
    fine = a - ndimage.gaussian_filter(a, (0, 2, 2))
    fine_q = np.quantile(np.abs(fine).reshape(len(f), -1), 0.999, axis=1)
    rows_cols = np.maximum(fine.mean(axis=2).std(axis=1), fine.mean(axis=1).std(axis=1))
    peak = rule_peak_metric(f, None, float(pixel_size_um), float(wavelength_um)).astype(np.float64)
    raw = np.stack([_relative_log(_amplitude_rms(a, nb), nb), _relative_log(_phase_rms(f, nb), nb),
                    _relative_log(fine_q, nb), _relative_log(rows_cols, nb),
                    (peak - np.median(peak[nb], axis=1)).astype(np.float32)], axis=1)
    ref = spread_reference(raw, probability)
    spread = 1.4826 * np.median(np.abs(ref - np.median(ref, axis=0)), axis=0)
    return np.maximum(raw / np.maximum(spread, MIN_SPREAD), 0.0).astype(np.float32)  # one-sided: excess only


def spread_reference(values: np.ndarray, probability: np.ndarray | None, min_fields: int = MIN_FIELDS) -> np.ndarray:
    """The rows of ``values`` (N, …) a robust spread is measured on: those whose ``probability`` (a network's
    noisy-probability, (N,)) is below 0.5 when at least ``min_fields`` are, else every row."""
    if probability is None:
        return values
    keep = np.asarray(probability) < 0.5
    return values[keep] if int(keep.sum()) >= min_fields else values


def stage_features(crops: np.ndarray, pixel_size_um: float, wavelength_um: float,
                   illumination_per_um: np.ndarray | None, probability: np.ndarray | None = None, *,
                   tomographic: bool = False, tomographic_relative: bool = False,
                   na_objective: float | None = None, medium_index: float | None = None) -> np.ndarray:
    """A consistency stage's inputs after the network's logit, for one measurement: (N, 5), or (N, 6) with
    ``tomographic``.

    The :data:`CONSISTENCY_FEATURES` (:func:`consistency_features`, spreads from the fields ``probability``
    keeps when it is given), then with ``tomographic`` the
    :func:`~engine.screening.tomographic.tomographic_residual` (``tomographic_relative`` as its ``relative``;
    it needs ``illumination_per_um``, ``na_objective`` and ``medium_index``: ValueError without them; the crops'
    phase is always unwrapped there, as when the stage was fitted). The one way the stage's inputs are made, when
    a card is fitted and when it screens."""
    features = consistency_features(crops, pixel_size_um, wavelength_um, illumination_per_um, probability)
    if not tomographic:
        return features
    if illumination_per_um is None or na_objective is None or medium_index is None:
        raise ValueError("the tomographic input needs the illuminations, the objective NA and the medium index")
    from .tomographic import tomographic_residual

    tomo = tomographic_residual(crops, pixel_size_um, wavelength_um, illumination_per_um, float(na_objective),
                                float(medium_index), probability, MIN_FIELDS, relative=tomographic_relative)
    return np.column_stack([features, tomo])


def consistency_features_by_measurement(fields: np.ndarray, measurement: np.ndarray, pixel_size_um: np.ndarray,
                                        wavelength_um: np.ndarray,
                                        illumination_per_um: np.ndarray | None = None) -> np.ndarray:
    """:func:`consistency_features` of a labelled crop set, measurement by measurement.

    Parameters
    ----------
    fields : ndarray (M, h, w) complex
    measurement : ndarray (M,) int
        Measurement id of each field.
    pixel_size_um, wavelength_um : ndarray (M,) float
        Per-field optics (the first field's of each measurement is used).
    illumination_per_um : ndarray (M, 2), optional
        Per-field illumination frequencies (see :func:`consistency_features`).

    Returns
    -------
    ndarray (M, 5) float32
        NaN rows for measurements with fewer than :data:`MIN_FIELDS` fields.
    """
    out = np.full((len(fields), len(CONSISTENCY_FEATURES)), np.nan, np.float32)
    for m in np.unique(measurement):
        idx = np.flatnonzero(measurement == m)
        if idx.size >= MIN_FIELDS:
            ill = None if illumination_per_um is None else np.asarray(illumination_per_um)[idx]
            out[idx] = consistency_features(fields[idx], float(pixel_size_um[idx[0]]), float(wavelength_um[idx[0]]), ill)
    return out


def stage_probability(stage: dict, x: np.ndarray) -> np.ndarray:
    """The consistency stage's noisy-probability ``sigmoid(bias + Σ_i weights_i (x_i − mean_i) / scale_i)``.

    Parameters
    ----------
    stage : dict
        ``mean``, ``scale``, ``weights`` (K,) and ``bias``, as a model card's ``consistency`` holds them.
    x : ndarray (N, K)
        Inputs: the logit of the network's probability, then the :data:`CONSISTENCY_FEATURES`.

    Returns
    -------
    ndarray (N,) float64
    """
    t = float(stage["bias"]) + ((np.asarray(x, np.float64) - np.asarray(stage["mean"], np.float64))
                                / np.asarray(stage["scale"], np.float64)) @ np.asarray(stage["weights"], np.float64)
    return 1.0 / (1.0 + np.exp(-t))
