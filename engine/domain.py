"""Training-domain ranges shared by the learned models' domain checks.

A learned model's card states the range of each quantity its training data covered (its
*domain*); the pipeline compares a measurement with it and warns, saying by how much a value
lies outside (:func:`engine.tomography.deep_regularizer.domain_check`,
:func:`engine.screening.domain.screening_domain_check`). Units are those of the quantity
(µm for lengths).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["outside_range", "quantities_outside", "relative_excess", "largest_excess"]


def _passed_edge(value: float, lo: float, hi: float) -> Optional[float]:
    """The edge of ``[lo, hi]`` that ``value`` lies beyond, or None inside (a relative tolerance of
    1e-9 at the edges)."""
    tol = 1e-9 * max(abs(lo), abs(hi), 1.0)
    if lo - tol <= value <= hi + tol:
        return None
    return hi if value > hi else lo


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
    edge = _passed_edge(value, lo, hi)
    if edge is None:
        return None
    side = "above" if value > hi else "below"
    by = abs(value - edge)
    rel = f", {100 * by / abs(edge):.0f} %" if edge else ""
    return (f"{fmt.format(value)}{unit} is {side} its training range {fmt.format(lo)}–{fmt.format(hi)}{unit} "
            f"(by {fmt.format(by)}{unit}{rel})")


def relative_excess(value: float, lo: float, hi: float) -> float:
    """How far ``value`` lies outside ``[lo, hi]``, as a fraction of the edge it passed (0 inside;
    ``inf`` past an edge of 0)."""
    edge = _passed_edge(value, lo, hi)
    if edge is None:
        return 0.0
    return abs(value - edge) / abs(edge) if edge else float("inf")


def largest_excess(setup: dict, domain: dict, quantities: dict[str, tuple[str, str, str]],
                   weights: Optional[dict] = None) -> tuple[float, str]:
    """The largest :func:`relative_excess` of ``setup``'s quantities beyond ``domain`` and its
    quantity's label: ``(0.0, "")`` when every known quantity is inside (arguments as
    :func:`quantities_outside`).

    ``weights`` (key → factor ≥ 0, 1 for a key not given) scales each quantity's excess before the
    comparison, for a model less sensitive to one quantity than to another (a model card's
    ``domain_excess_weights``); a weighted quantity's label then says its own excess and the factor.
    """
    best = (0.0, "")
    for key, (label, _unit, _fmt) in quantities.items():
        rng = domain.get(key)
        if key in setup and isinstance(rng, (list, tuple)) and len(rng) == 2:
            raw = relative_excess(float(setup[key]), float(rng[0]), float(rng[1]))
            w = float((weights or {}).get(key, 1.0))
            if raw * w > best[0]:
                best = (raw * w, label if w == 1.0 else f"{label} {100 * raw:.0f} % out, counted ×{w:g}")
    return best


def quantities_outside(setup: dict, domain: dict, quantities: dict[str, tuple[str, str, str]]) -> list[tuple[str, str]]:
    """``(label, why)`` for each quantity of ``setup`` outside its ``[min, max]`` in ``domain``.

    Parameters
    ----------
    setup : dict
        A measurement's values by key.
    domain : dict
        A model card's ``domain``: key → ``[min, max]`` (other entries ignored).
    quantities : dict
        key → ``(label, unit, format)`` of the quantities to compare, in order.
    """
    out = []
    for key, (label, unit, fmt) in quantities.items():
        rng = domain.get(key)
        if key not in setup or not isinstance(rng, (list, tuple)) or len(rng) != 2:
            continue
        why = outside_range(setup[key], float(rng[0]), float(rng[1]), fmt, unit)
        if why:
            out.append((label, why))
    return out
