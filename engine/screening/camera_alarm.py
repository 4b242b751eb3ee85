"""Camera alarm: a field whose raw hologram has hot pixels or row noise is noisy, whatever the network says.

The camera numbers come from the raw sample hologram (:mod:`engine.holography.camera`, stored with
the retrieval quality numbers): ``hot_pixel_fraction``, the fraction of pixels that are isolated
bright outliers of the local fringe, and ``row_jitter``, the rms row-to-row error relative to the
mean count. They measure the artefact itself, so the alarm is a physical statement ("0.4 % of this
camera frame's pixels are hot"), not something learned: it catches a camera defect whether or not
a network was trained on it (issue #19, leave-one-family-out), and it does not depend on the
sample.

Levels
------
Set from the **clean fields of generator 2's protocol validation measurements** (17 measurements,
447 clean fields; ``tests/benchmarks/bench_screening_camera_alarm.py``), the largest clean value
rounded up with a margin: hot pixels 0.012 % → :data:`HOT_PIXEL_LEVEL` = 0.05 %; row jitter 0.025
→ :data:`ROW_JITTER_LEVEL` = 0.04. For scale: the simulator's camera defects draw 0.3–3 % hot pixels
and 6–20 % row gain jitter, its clean ``camera-mild`` frames at most 0.02 % and 0.4 % (the row
jitter also sees the row offsets); the five real holograms of ``tests/data`` (three cameras) read
0 hot pixels and a row jitter of at most 0.008.

:data:`ALARM_PROBABILITY` is the noisy-probability an alarmed field gets at least (its score is
``max(score, ALARM_PROBABILITY)``): the fraction of alarmed validation fields that are noisy,
(k + 1)/(n + 2) (Laplace): 94 of 94 alarmed validation fields are noisy, 95/96 = 0.99, so that the
review tab's scores stay calibrated.

Labels: 1 = noisy; ``camera_alarm`` True = the camera numbers say noisy.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

__all__ = ["ALARM_PROBABILITY", "HOT_PIXEL_LEVEL", "ROW_JITTER_LEVEL", "camera_alarm", "camera_numbers",
           "camera_reason", "camera_warning"]

#: A frame with more than this fraction of hot pixels is noisy.
HOT_PIXEL_LEVEL = 5e-4
#: A frame whose rms row-to-row error exceeds this fraction of its mean count is noisy.
ROW_JITTER_LEVEL = 0.04
#: The least noisy-probability of an alarmed field (module docstring).
ALARM_PROBABILITY = 0.99
#: An alarm on at least this fraction of a measurement's fields points at the camera, not at a few frames.
WIDESPREAD = 0.25


def camera_numbers(quality: Any, n: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(hot_pixel_fraction, row_jitter)``, each (n,) float, from a
    :class:`~engine.holography.quality.RetrievalQuality` or a mapping of quality numbers (a result
    file's ``retrieval/quality``); None when either is absent or has the wrong length."""
    if quality is None:
        return None
    get = quality.get if isinstance(quality, dict) else (lambda k: getattr(quality, k, None))
    hot, jitter = get("hot_pixel_fraction"), get("row_jitter")
    if hot is None or jitter is None:
        return None
    hot, jitter = np.asarray(hot, np.float64).reshape(-1), np.asarray(jitter, np.float64).reshape(-1)
    if hot.shape != (n,) or jitter.shape != (n,):
        return None
    return hot, jitter


def camera_alarm(quality: Any, n: int) -> Optional[np.ndarray]:
    """Per field, True when its raw hologram's hot-pixel fraction or row jitter exceeds its level, (n,)
    bool; None when the camera numbers are absent (:func:`camera_numbers`). A NaN number never alarms."""
    numbers = camera_numbers(quality, n)
    if numbers is None:
        return None
    hot, jitter = numbers
    with np.errstate(invalid="ignore"):
        return (hot > HOT_PIXEL_LEVEL) | (jitter > ROW_JITTER_LEVEL)


def camera_reason(quality: Any, n: int, i: int) -> str:
    """Why field ``i`` raised the alarm, e.g. ``"camera: 0.41 % hot pixels"``; ``""`` when it did not."""
    numbers = camera_numbers(quality, n)
    if numbers is None:
        return ""
    hot, jitter = float(numbers[0][i]), float(numbers[1][i])
    parts = []
    if hot > HOT_PIXEL_LEVEL:
        parts.append(f"{100 * hot:.2g} % hot pixels")
    if jitter > ROW_JITTER_LEVEL:
        parts.append(f"row jitter {100 * jitter:.2g} %")
    return "camera: " + ", ".join(parts) if parts else ""


def camera_warning(quality: Any, n: int) -> str:
    """A warning when the alarm fires on at least :data:`WIDESPREAD` of the fields (``""`` otherwise): then
    the camera itself, not a few frames, is the likely cause, and the measurement may lose most fields."""
    numbers = camera_numbers(quality, n)
    if numbers is None or n == 0:
        return ""
    with np.errstate(invalid="ignore"):
        hot, rows = numbers[0] > HOT_PIXEL_LEVEL, numbers[1] > ROW_JITTER_LEVEL
    alarm = hot | rows
    if alarm.sum() < WIDESPREAD * n:
        return ""
    n_hot, n_rows = int(hot.sum()), int(rows.sum())
    return (f"camera alarm on {int(alarm.sum())} of {n} fields ({n_hot} with hot pixels, {n_rows} with row "
            "noise in their raw holograms): the camera itself may need attention (a dark frame shows hot pixels; "
            "row noise points at the read-out)")
