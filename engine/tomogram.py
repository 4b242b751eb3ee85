"""The one tomogram container: a refractive-index volume, its geometry and what made it.

Conventions (``docs/formats.md`` §2): volumes (Z, Y, X) float32; ``voxel_size_um`` and
``origin_um`` ordered (z, y, x), µm; ``origin_um`` is the position of voxel (0, 0, 0), with
x, y = 0 at the image centre and z = 0 at the focal plane. The reconstruction returns it
(:func:`engine.tomography.reconstruct`), the result file stores and reads it
(``tomogram/`` group, :mod:`engine.store.results`, where it is also known by its older name
``TomogramResult``), and the GUI shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["Tomogram", "centred_origin"]


def centred_origin(shape: tuple[int, ...], voxel_size_um: tuple[float, ...]) -> tuple[float, float, float]:
    """``docs/formats.md``'s centred origin ``−(n // 2)·d`` per axis (z, y, x) µm: the FFT centre
    of a volume of ``shape`` voxels of ``voxel_size_um`` sits at 0."""
    return tuple(-(n // 2) * float(d) for n, d in zip(shape, voxel_size_um))  # type: ignore[return-value]


@dataclass(eq=False)
class Tomogram:
    """A reconstructed refractive-index volume and its geometry (``tomogram/`` of docs/formats.md).

    Attributes
    ----------
    ri : ndarray, shape (Z, Y, X), float32
        Refractive index (after the non-negativity constraint when one was asked).
    voxel_size_um : (dz, dy, dx)
    origin_um : (z0, y0, x0)
        Position of voxel (0, 0, 0), µm.
    medium_index : float
    method : str
        What made ``ri``: ``"rytov"``, ``"born"`` (``+nonneg`` appended when constrained), or
        ``"multislice"`` (files written before ``ri_ms`` existed held the multislice volume in ``ri``).
    ri_tv : ndarray, shape (Z, Y, X), float32, optional
        TV-regularised refractive index.
    ri_deep : ndarray, shape (Z, Y, X), float32, optional
        Learned regulariser's output (:mod:`engine.tomography.deep_regularizer`).
    ri_ms : ndarray, shape (Z, Y, X), float32, optional
        Multiple-scattering (multislice) inversion started from the first-order ``ri``
        (:mod:`engine.tomography.multislice`); stored as ``tomogram/ri_ms``.
    ri_ms_record : dict, optional
        How ``ri_ms`` was made, stored as the attributes of ``tomogram/ri_ms``
        (``docs/formats.md`` §2): ``iterations``, ``iterations_asked``, ``batch``, ``step``,
        ``tv_weight``, ``forward_model``, ``misfit`` (one relative data misfit per iteration),
        ``seconds``, ``cancelled``.
    labels : ndarray, shape (Z, Y, X), integers, optional
        Objects (0 = background, 1..K), stored as ``tomogram/labels`` (:mod:`engine.analysis`).
    support : int, optional
        Number of Fourier voxels that were measured (not stored in the result file).
    support_fraction : float, optional
        Fraction of the Fourier grid that was measured (not stored).
    fourier : FourierData, optional
        The measured spectrum, kept with ``keep_fourier=True`` for later regularisation (not stored).
    timings_s : dict
        Seconds spent per stage (not stored).
    misfit : list of float, optional
        ``method="multislice"``: relative data misfit of each iteration (not stored).
    """

    ri: np.ndarray
    voxel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    medium_index: float
    method: str
    ri_tv: Optional[np.ndarray] = None
    ri_deep: Optional[np.ndarray] = None
    ri_ms: Optional[np.ndarray] = None
    ri_ms_record: Optional[dict] = None
    labels: Optional[np.ndarray] = None
    support: Optional[int] = None
    support_fraction: Optional[float] = None
    fourier: Any = None
    timings_s: dict = field(default_factory=dict)
    misfit: Optional[list] = None

    def coordinates_um(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates ``(z, y, x)`` along each axis, µm."""
        return tuple(o + d * np.arange(n) for o, d, n in zip(self.origin_um, self.voxel_size_um, self.ri.shape))

    @classmethod
    def from_tomogram(cls, tomogram: Any) -> "Tomogram":
        """What the result file keeps of ``tomogram`` (any object with its attributes): no spectrum, no timings."""
        return cls(ri=tomogram.ri, voxel_size_um=tuple(tomogram.voxel_size_um), origin_um=tuple(tomogram.origin_um),
                   medium_index=float(tomogram.medium_index), method=str(tomogram.method),
                   ri_tv=getattr(tomogram, "ri_tv", None), ri_deep=getattr(tomogram, "ri_deep", None),
                   ri_ms=getattr(tomogram, "ri_ms", None), ri_ms_record=getattr(tomogram, "ri_ms_record", None),
                   labels=getattr(tomogram, "labels", None))
