"""Rule-based field screening: the high-frequency Fourier-peak metric (the paper's baseline).

Conventions (``docs/formats.md``): lengths in µm, spatial frequencies in cycles/µm, images
(y, x), spectra ``numpy.fft.fft2`` with axes ``fftfreq(n, d=pixel_size_um)``, fields
``exp(+i(k·r − ωt))``.

Which frame
-----------
A parasitic fringe (a stray reflection interfering with the object beam) adds a plane-wave
term ``a·exp(2πi ν_p·r)`` to the field, i.e. a sharp peak in its spectrum away from the
unscattered light. The rule looks for such a peak *outside* a disc that holds the
unscattered light and the sample's strong low-frequency content.

* In the **raw sample field** (sample hologram's side band, not divided by the background)
  the unscattered light is the illumination plane wave, so the disc is centred on the
  illumination frequency ``ν_ill`` — this is how the rule is usually described.
* In the **ratio field** ``U_sample / U_background`` that the engine stores
  (``fields/field``), the illumination is divided out: the unscattered light sits at
  ``ν = 0`` whatever ``ν_ill`` was. The disc must then be centred on 0.

The two are the same rule (multiplying the ratio field by ``exp(2πi ν_ill·r)`` moves its
spectrum to the raw frame), but centring on 0 in the ratio frame is the right way to compute
it: shifting by a non-integer number of FFT bins would spread leakage over the spectrum.
:func:`rule_peak_metric` therefore defaults to ``frame="ratio"`` (disc at ν = 0) and uses
``illumination_per_um`` only for ``frame="sample"``.

Scale: the spectrum is multiplied by ``128² / (H·W)`` so the metric of a field does not
depend on its size and equals the plain ``fft2`` value of a 128 × 128 crop (the network's
input). A plane-wave fringe of amplitude ``a`` on a 128 × 128 crop gives
``log10(a · 16384)`` (≈ 3.2 for a = 0.1).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rule_peak_metric",
    "rule_decide",
    "DEFAULT_MASK_RADIUS_PER_UM",
    "DEFAULT_RULE_THRESHOLD",
    "REFERENCE_SIZE",
    "choose_rule_threshold",
]

#: Radius of the high-pass disc, cycles/µm. Chosen with the threshold on validation data
#: (see the screening model card, ``resources/models/screening-*.json``).
DEFAULT_MASK_RADIUS_PER_UM: float = 1.0
#: Default decision threshold on the log10 metric: above it a field is called noisy.
#: Chosen on the simulated validation set (paper: values of 2–4 work).
DEFAULT_RULE_THRESHOLD: float = 2.28
#: The metric is scaled to the value a ``REFERENCE_SIZE``² crop would give.
REFERENCE_SIZE: int = 128


def rule_peak_metric(
    fields: np.ndarray,
    illumination_per_um: np.ndarray | None,
    pixel_size_um: float,
    wavelength_um: float,
    *,
    mask_radius_per_um: float = DEFAULT_MASK_RADIUS_PER_UM,
    frame: str = "ratio",
    batch: int = 64,
) -> np.ndarray:
    """log10 of the field spectrum's peak magnitude outside a high-pass disc.

    Parameters
    ----------
    fields : ndarray, shape (N, H, W) or (H, W), complex
        Retrieved fields. With ``frame="ratio"`` (default) these are sample/background
        ratio fields (``fields/field`` of the result file).
    illumination_per_um : ndarray, shape (N, 2) or None
        Illumination transverse frequency (fx, fy) per field, cycles/µm. Used only with
        ``frame="sample"``; may be None for ``frame="ratio"``.
    pixel_size_um : float
        Field pixel size, µm.
    wavelength_um : float
        Vacuum wavelength, µm. Only checked for sanity: the disc radius is given in
        cycles/µm directly.
    mask_radius_per_um : float, keyword-only
        Radius of the disc (cycles/µm) that is excluded around the unscattered light.
    frame : {"ratio", "sample"}, keyword-only
        ``"ratio"``: disc centred on ν = 0 (illumination divided out). ``"sample"``: raw
        sample field, disc centred on ``illumination_per_um``.
    batch : int, keyword-only
        Fields per FFT batch (memory bound only).

    Returns
    -------
    metric : ndarray, shape (N,), float32
        ``log10(max |F(ν)| · 128²/(H·W))`` over ``|ν − ν_c| > mask_radius_per_um``;
        ``-inf`` never occurs (a floor of 1e-12 is applied).

    References
    ----------
    D. Ryu, Y. Jo, J. Yoo, et al., "Deep learning-based optical field screening for
    robust optical diffraction tomography", Sci. Rep. 9, 15239 (2019),
    doi:10.1038/s41598-019-51363-x — rule-based screening by the Fourier peak outside a circular mask.
    """
    f = np.asarray(fields)
    single = f.ndim == 2
    if single:
        f = f[None]
    if f.ndim != 3:
        raise ValueError(f"fields must have shape (N, H, W), got {np.shape(fields)}")
    if not (pixel_size_um > 0 and wavelength_um > 0):
        raise ValueError("pixel_size_um and wavelength_um must be positive")
    if mask_radius_per_um < 0:
        raise ValueError("mask_radius_per_um must be >= 0")
    n, h, w = f.shape
    if frame == "ratio":
        centres = np.zeros((n, 2), np.float64)
    elif frame == "sample":
        if illumination_per_um is None:
            raise ValueError("frame='sample' needs illumination_per_um")
        centres = np.asarray(illumination_per_um, np.float64).reshape(n, 2)
    else:
        raise ValueError(f"frame must be 'ratio' or 'sample', got {frame!r}")

    fy = np.fft.fftfreq(h, d=pixel_size_um)[:, None]
    fx = np.fft.fftfreq(w, d=pixel_size_um)[None, :]
    scale = REFERENCE_SIZE * REFERENCE_SIZE / float(h * w)
    out = np.empty(n, np.float32)
    for s in range(0, n, batch):
        block = f[s:s + batch].astype(np.complex64, copy=False)
        spec = np.abs(np.fft.fft2(block, axes=(-2, -1)))
        c = centres[s:s + batch]
        r2 = (fx[None] - c[:, 0, None, None]) ** 2 + (fy[None] - c[:, 1, None, None]) ** 2
        spec = np.where(r2 > mask_radius_per_um ** 2, spec, 0.0)
        peak = spec.reshape(len(block), -1).max(axis=1) * scale
        out[s:s + batch] = np.log10(np.maximum(peak, 1e-12))
    return out[0:1] if single else out


def rule_decide(metric: np.ndarray, threshold: float = DEFAULT_RULE_THRESHOLD) -> np.ndarray:
    """Decision of the rule: 1 = clean (metric <= threshold), 0 = noisy.

    Parameters
    ----------
    metric : ndarray, shape (N,)
        Output of :func:`rule_peak_metric`.
    threshold : float
        log10 peak magnitude above which a field is called noisy.

    Returns
    -------
    decision : ndarray, shape (N,), uint8
        1 = clean (used), 0 = noisy (excluded), as in ``screening/decision``.
    """
    m = np.asarray(metric, np.float64)
    return (m <= float(threshold)).astype(np.uint8)


def choose_rule_threshold(metric: np.ndarray, noisy: np.ndarray) -> tuple[float, float]:
    """Threshold that maximises accuracy of :func:`rule_decide` on labelled data.

    Parameters
    ----------
    metric : ndarray, shape (N,)
        Rule metric values.
    noisy : ndarray, shape (N,)
        True labels, 1 = noisy.

    Returns
    -------
    threshold, accuracy : float, float
        The best threshold (midpoint between adjacent sorted metric values) and its accuracy.
    """
    m = np.asarray(metric, np.float64)
    y = np.asarray(noisy).astype(bool)
    order = np.sort(np.unique(m))
    cands = np.concatenate([[order[0] - 1.0], (order[1:] + order[:-1]) / 2, [order[-1] + 1.0]])
    # fields with metric <= t are called clean: correct = clean below t + noisy above t
    ms = np.sort(m[~y])
    mn = np.sort(m[y])
    clean_below = np.searchsorted(ms, cands, side="right")
    noisy_above = len(mn) - np.searchsorted(mn, cands, side="right")
    acc = (clean_below + noisy_above) / max(len(m), 1)
    k = int(np.argmax(acc))
    return float(cands[k]), float(acc[k])
