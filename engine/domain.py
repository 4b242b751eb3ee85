"""Training-domain ranges shared by the learned models' domain checks.

A learned model's card states the range of each quantity its training data covered (its
*domain*); the pipeline compares a measurement with it and warns, saying by how much a value
lies outside (:func:`engine.tomography.deep_regularizer.domain_check`,
:func:`engine.screening.domain.screening_domain_check`). Units are those of the quantity
(µm for lengths).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["outside_range"]


def outside_range(value: float, lo: float, hi: float, fmt: str = "{:.3g}", unit: str = "") -> Optional[str]:
    """``"v is above its training range lo–hi (by d, p %)"``, or None when ``lo ≤ value ≤ hi``.

    Parameters
    ----------
    value, lo, hi : float
        The measurement's value and the trained range (a relative tolerance of 1e-9 at the edges).
    fmt : str
        Format of every number (e.g. ``"{:.2f}"``).
    unit : str
        Appended to every number (e.g. ``" µm"``).
    """
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if lo - tol <= value <= hi + tol:
        return None
    edge, side = (hi, "above") if value > hi else (lo, "below")
    by = abs(value - edge)
    rel = f", {100 * by / abs(edge):.0f} %" if edge else ""
    return (f"{fmt.format(value)}{unit} is {side} its training range {fmt.format(lo)}–{fmt.format(hi)}{unit} "
            f"(by {fmt.format(by)}{unit}{rel})")
