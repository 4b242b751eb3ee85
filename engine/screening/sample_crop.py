"""Where the screen looks: a crop that holds the sample, not only the middle of the camera.

The screening networks see a ``crop`` × ``crop`` window of every field (128² for the shipped
models). They were trained on simulated measurements whose sample sits at the centre, so the
centre crop was all they needed. On a real camera the sample can sit anywhere: qpimage's HL60
hologram (``tests/data/hologram_cell_curved_bg.jpg``, 600 × 400 px) has its cell at row ~400,
and the centre crop (rows 236–364) holds only the cell's upper edge. The shipped model scores
that clean field 0.56 (noisy); centred on the cell, 0.10 (clean).

:func:`screening_crop_origin` finds the sample once per measurement, from the fields alone (so
the screen, the saliency overlay of the Screening tab and retraining from overrides take the
same crop): the complex median of up to 15 fields (single-field defects drop out), its phase
unwrapped (scikit-image, Herráez et al. 2002) and a second-order polynomial fitted to its border
frame removed (tilted references and curved backgrounds, as after a synthesised background),
smoothed (Gaussian σ 2 px); the sample is where ``|phase|`` lies in the upper half between the
map's median and its maximum. The centre crop stays whenever it already holds at least
``inside_fraction`` (0.9) of the sample weight that a crop centred on the sample's weighted
centroid would hold (so a centred sample larger than the crop keeps it), or when no sample stands out (peak less than 0.3 rad
or 8 robust standard deviations above the median) — so measurements with a centred sample, and
all training data, are screened exactly as before. Otherwise the crop is the one centred on
the sample, kept inside the field.

Conventions: images (y, x); ``(y0, x0)`` is the crop's first row and column in field pixels
(the centre crop: ``(h//2 − crop//2, w//2 − crop//2)``, as :mod:`engine.screening.network`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["screening_crop_origin", "crop_at", "centre_origin"]

MAX_FIELDS = 15
MIN_PEAK_RAD = 0.3
MIN_PEAK_SIGMAS = 8.0


def centre_origin(shape: tuple[int, ...], crop: int) -> tuple[int, int]:
    """(y0, x0) of the centre crop of an image of ``shape`` (…, h, w); 0 along axes ≤ ``crop``."""
    h, w = shape[-2:]
    return max(h // 2 - crop // 2, 0), max(w // 2 - crop // 2, 0)


def crop_at(a: np.ndarray, origin: tuple[int, int], crop: int) -> np.ndarray:
    """The last two axes of ``a`` cropped to at most ``crop`` pixels from ``origin`` (y0, x0)."""
    h, w = a.shape[-2:]
    y0, x0 = origin
    return a[..., y0:y0 + min(crop, h), x0:x0 + min(crop, w)]


def _border_polynomial(p: np.ndarray) -> np.ndarray:
    """The 2nd-order polynomial in (y, x) least-squares fitted to the border frame of ``p`` (h, w)."""
    h, w = p.shape
    bw = max(4, min(h, w) // 16)
    yy, xx = np.mgrid[:h, :w]
    yy, xx = (yy - h / 2) / h, (xx - w / 2) / w
    frame = np.zeros((h, w), bool)
    frame[:bw] = frame[-bw:] = True
    frame[:, :bw] = frame[:, -bw:] = True
    basis = np.stack([np.ones_like(yy), yy, xx, yy * yy, yy * xx, xx * xx])
    coef, *_ = np.linalg.lstsq(basis[:, frame].T, p[frame], rcond=None)
    return np.tensordot(coef, basis, axes=1)


def sample_weight(fields: np.ndarray) -> Optional[np.ndarray]:
    """Per-pixel weight (h, w) ≥ 0 of the sample in a measurement's fields (N, h, w) or (h, w);
    None when no sample stands out (see the module docstring)."""
    from scipy.ndimage import gaussian_filter
    from skimage.restoration import unwrap_phase

    f = np.asarray(fields)
    f = f[None] if f.ndim == 2 else f
    take = np.unique(np.linspace(0, len(f) - 1, min(len(f), MAX_FIELDS)).round().astype(int))
    sub = f[take].astype(np.complex64)
    sub = sub * np.exp(-1j * np.angle(sub.sum(axis=(-2, -1), keepdims=True)))
    rep = np.median(sub.real, axis=0) + 1j * np.median(sub.imag, axis=0)
    phase = np.asarray(unwrap_phase(np.angle(rep)), np.float64)
    m = gaussian_filter(np.abs(phase - _border_polynomial(phase)), 2.0)
    base = float(np.median(m))
    spread = 1.4826 * float(np.median(np.abs(m - base)))
    height = float(m.max()) - base
    if height < MIN_PEAK_RAD or height < MIN_PEAK_SIGMAS * spread:
        return None
    return np.clip(m - base - 0.5 * height, 0.0, None)


def screening_crop_origin(fields: np.ndarray, crop: int, *, inside_fraction: float = 0.9) -> tuple[int, int]:
    """(y0, x0) of the crop the screen takes from every field of one measurement.

    Parameters
    ----------
    fields : ndarray (N, h, w) or (h, w), complex
        The measurement's sample/background ratio fields.
    crop : int
        Crop side, pixels (the model card's ``input.crop``).
    inside_fraction : float
        Keep the centre crop when it holds at least this fraction of the sample weight that a
        crop centred on the sample holds (a sample larger than the crop, centred, keeps it).

    Returns
    -------
    (int, int)
        The crop's first row and column; the centre crop's unless the sample lies mostly outside it.
    """
    f = np.asarray(fields)
    h, w = f.shape[-2:]
    centre = centre_origin(f.shape, crop)
    if h <= crop and w <= crop:
        return centre
    weight = sample_weight(f)
    if weight is None:
        return centre
    total = float(weight.sum())
    yy, xx = np.mgrid[:h, :w]
    cy, cx = float((weight * yy).sum()) / total, float((weight * xx).sum()) / total
    on_sample = (int(np.clip(round(cy) - crop // 2, 0, max(h - crop, 0))),
                 int(np.clip(round(cx) - crop // 2, 0, max(w - crop, 0))))
    if crop_at(weight, centre, crop).sum() >= inside_fraction * crop_at(weight, on_sample, crop).sum():
        return centre  # the centre crop already sees (nearly) as much of the sample
    return on_sample
