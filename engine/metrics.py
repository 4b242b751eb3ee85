"""Evaluation metrics, one definition of each, used by the product, the training scripts and the benchmarks.

Field screening (classification, NumPy only)
--------------------------------------------
The positive class is **noisy** (label 1): sensitivity is the fraction of noisy fields
caught, specificity the fraction of clean fields kept. Scores are probabilities of being
noisy (higher = more likely noisy); for the rule metric, a higher log10 peak is noisier too.

Volumes (image quality)
-----------------------
Volumes are (z, y, x) arrays of refractive index (or any real quantity). :func:`ssim3d` is
scikit-image's structural similarity in 3-D (7³ uniform window) against a reference;
:func:`psnr_255` / :func:`ssim_255` first scale both volumes to 0–255 over a fixed index
range [n_min, n_max] (Kim et al., Sci. Rep. 14 (2024), the birefringence generator's paper).
:func:`fwhm_ratio` is the axial elongation FWHM_z / FWHM_x of a bead, in voxels (the missing
cone's signature; 1 for an isotropic reconstruction with cubic voxels).
scikit-image is imported only when an SSIM is computed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "ConfusionCounts",
    "confusion_counts",
    "accuracy",
    "sensitivity",
    "specificity",
    "roc_auc",
    "screening_metrics",
    "expected_calibration_error",
    "ssim3d",
    "psnr_255",
    "ssim_255",
    "fwhm_ratio",
]


@dataclass(frozen=True)
class ConfusionCounts:
    """Counts with noisy as the positive class."""

    tp: int  # noisy called noisy
    fn: int  # noisy called clean (missed)
    tn: int  # clean called clean
    fp: int  # clean called noisy (wasted)

    def as_dict(self) -> dict:
        return asdict(self)


def _labels(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype != bool and not np.all((a == 0) | (a == 1)):
        raise ValueError(f"{name} must hold 0/1 labels (1 = noisy)")
    return a.astype(bool)


def confusion_counts(noisy_true: np.ndarray, noisy_pred: np.ndarray) -> ConfusionCounts:
    """Confusion counts of predicted against true labels (1 = noisy).

    Parameters
    ----------
    noisy_true, noisy_pred : ndarray, shape (N,), bool or 0/1

    Returns
    -------
    ConfusionCounts
    """
    t = _labels(noisy_true, "noisy_true")
    p = _labels(noisy_pred, "noisy_pred")
    if t.shape != p.shape:
        raise ValueError(f"shapes differ: {t.shape} vs {p.shape}")
    return ConfusionCounts(tp=int(np.sum(t & p)), fn=int(np.sum(t & ~p)),
                           tn=int(np.sum(~t & ~p)), fp=int(np.sum(~t & p)))


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def accuracy(noisy_true: np.ndarray, noisy_pred: np.ndarray) -> float:
    """Fraction of fields classified correctly (NaN for no fields)."""
    c = confusion_counts(noisy_true, noisy_pred)
    return _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn)


def sensitivity(noisy_true: np.ndarray, noisy_pred: np.ndarray) -> float:
    """Fraction of noisy fields caught: TP / (TP + FN) (NaN if there is no noisy field)."""
    c = confusion_counts(noisy_true, noisy_pred)
    return _ratio(c.tp, c.tp + c.fn)


def specificity(noisy_true: np.ndarray, noisy_pred: np.ndarray) -> float:
    """Fraction of clean fields kept: TN / (TN + FP) (NaN if there is no clean field)."""
    c = confusion_counts(noisy_true, noisy_pred)
    return _ratio(c.tn, c.tn + c.fp)


def roc_auc(noisy_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve, by the Mann–Whitney U statistic (ties count one half).

    Parameters
    ----------
    noisy_true : ndarray, shape (N,), bool or 0/1
    score : ndarray, shape (N,), float
        Higher = more likely noisy.

    Returns
    -------
    float
        P(score of a random noisy field > score of a random clean field); NaN if one class
        is absent.

    References
    ----------
    J. A. Hanley and B. J. McNeil, "The meaning and use of the area under a receiver
    operating characteristic (ROC) curve", Radiology 143, 29–36 (1982).
    """
    t = _labels(noisy_true, "noisy_true")
    s = np.asarray(score, np.float64)
    if s.shape != t.shape:
        raise ValueError(f"shapes differ: {t.shape} vs {s.shape}")
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # imported here: scipy.stats costs ~1.5 s at start-up

    ranks = rankdata(s)  # average ranks for ties
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def screening_metrics(noisy_true: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """All metrics at once for a score and a threshold (score > threshold = noisy).

    Returns
    -------
    dict
        ``accuracy``, ``sensitivity``, ``specificity``, ``roc_auc``, ``n``, ``n_noisy`` and the
        confusion counts ``tp``, ``fn``, ``tn``, ``fp``.
    """
    t = _labels(noisy_true, "noisy_true")
    s = np.asarray(score, np.float64)
    pred = s > threshold
    c = confusion_counts(t, pred)
    out = {
        "accuracy": accuracy(t, pred),
        "sensitivity": sensitivity(t, pred),
        "specificity": specificity(t, pred),
        "roc_auc": roc_auc(t, s),
        "n": int(t.size),
        "n_noisy": int(t.sum()),
        "threshold": float(threshold),
    }
    out.update(c.as_dict())
    return out


def expected_calibration_error(noisy_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of probabilities of being noisy (Guo et al., ICML 2017).

    Each field's *confidence* is the probability of the class it is assigned
    (``max(p, 1 − p)``, in [0.5, 1]); the fields are put in ``n_bins`` equal-width confidence
    bins on [0, 1] and ``ECE = Σ_b (n_b / N) · |accuracy_b − mean confidence_b|``. 0 for a
    perfectly calibrated score; a score that says 0.99 and is right 90 % of the time has 0.09.

    Parameters
    ----------
    noisy_true : ndarray (N,)
        1 = noisy.
    prob : ndarray (N,)
        Probability of being noisy, in [0, 1].
    n_bins : int

    Returns
    -------
    float (NaN for N = 0)
    """
    t = _labels(noisy_true, "noisy_true")
    p = np.asarray(prob, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"prob shape {p.shape} differs from noisy_true shape {t.shape}")
    if p.size == 0:
        return float("nan")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise ValueError("prob must be probabilities in [0, 1]")
    pred = p > 0.5
    conf = np.where(pred, p, 1 - p)
    correct = (pred == (t > 0)).astype(np.float64)
    edges = np.linspace(0, 1, int(n_bins) + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, int(n_bins) - 1)
    ece = 0.0
    for b in np.unique(idx):
        sel = idx == b
        ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


# --------------------------------------------------------------------------- volumes
def ssim3d(a: np.ndarray, b: np.ndarray, data_range: Optional[float] = None) -> float:
    """Structural similarity of two volumes (scikit-image, 7³ uniform window, no Gaussian weights).

    Parameters
    ----------
    a : ndarray (D, H, W)
        The volume to score.
    b : ndarray (D, H, W)
        The reference.
    data_range : float, optional
        Dynamic range of the data (same unit as the volumes); the range of ``b`` by default.

    Returns
    -------
    float
        SSIM in [-1, 1] (1 for identical volumes).
    """
    from skimage.metrics import structural_similarity

    b = np.asarray(b, np.float64)
    dr = float(data_range if data_range is not None else (b.max() - b.min()))
    return float(structural_similarity(np.asarray(a, np.float64), b, data_range=max(dr, 1e-12)))


def _fwhm(profile: np.ndarray, centre: int, background: float) -> float:
    """Full width at half maximum (voxels, linear interpolation) of a peak at ``centre``."""
    p = np.asarray(profile, np.float64) - background
    lo = max(centre - 1, 0)
    centre = lo + int(np.argmax(p[lo:centre + 2]))  # the peak voxel next to the nominal centre
    peak = p[centre]
    half = peak / 2
    if peak <= 0:
        return float("nan")

    def side(step: int) -> float:
        j = centre
        while 0 <= j + step < len(p) and p[j + step] > half:
            j += step
        if not 0 <= j + step < len(p):
            return float("nan")
        a, b = p[j], p[j + step]  # a > half >= b
        return abs(j - centre) + (a - half) / (a - b)
    return side(1) + side(-1)


def fwhm_ratio(volume: np.ndarray, centre_idx: Sequence[int], background: float) -> float:
    """Axial elongation FWHM_z / FWHM_x of a bead through its centre voxel.

    Parameters
    ----------
    volume : ndarray (D, H, W)
        Refractive index (or any real quantity) with a single bright peak.
    centre_idx : sequence of 3 int
        Nominal centre voxel (z, y, x); the peak is searched within ±1 voxel along each profile.
    background : float
        Level subtracted before the half maximum is taken (e.g. the medium index).

    Returns
    -------
    float
        FWHM along z divided by FWHM along x (both in voxels); NaN when a profile has no
        positive peak or does not fall to half maximum inside the volume.
    """
    z, y, x = (int(v) for v in centre_idx)
    return _fwhm(volume[:, y, x], z, background) / _fwhm(volume[z, y, :], x, background)


def _to_255(v: np.ndarray, n_min: float, n_max: float) -> np.ndarray:
    """``v`` mapped linearly from [n_min, n_max] to [0, 255], clipped."""
    return np.clip((v - n_min) / (n_max - n_min), 0, 1) * 255.0


def psnr_255(pred: np.ndarray, truth: np.ndarray, n_min: float, n_max: float) -> float:
    """PSNR (dB) of a volume scaled to 0–255 over [n_min, n_max] (Kim et al.'s metric).

    Parameters
    ----------
    pred, truth : ndarray (D, H, W)
        Refractive-index volumes on the same grid.
    n_min, n_max : float
        Index range mapped to 0 and 255 (values outside are clipped).

    Returns
    -------
    float
        ``10 log10(255² / MSE)``; ``inf`` for identical scaled volumes.
    """
    mse = float(np.mean((_to_255(pred, n_min, n_max) - _to_255(truth, n_min, n_max)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def ssim_255(pred: np.ndarray, truth: np.ndarray, n_min: float, n_max: float) -> float:
    """3-D SSIM (:func:`ssim3d`, data_range 255) of the volumes scaled to 0–255 over [n_min, n_max]."""
    return ssim3d(_to_255(pred, n_min, n_max), _to_255(truth, n_min, n_max), data_range=255.0)
