"""Evaluation metrics, one definition of each, used by the product, the training scripts and the benchmarks.

Field screening (classification, NumPy only)
--------------------------------------------
The positive class is **noisy** (label 1): sensitivity is the fraction of noisy fields
caught, specificity the fraction of clean fields kept. Scores are probabilities of being
noisy (higher = more likely noisy); for the rule metric, a higher log10 peak is noisier too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "ConfusionCounts",
    "confusion_counts",
    "accuracy",
    "sensitivity",
    "specificity",
    "roc_auc",
    "screening_metrics",
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
