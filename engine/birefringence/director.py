"""Director lines: short segments showing the in-plane optic axis on a slice (for the viewer).

Conventions (``docs/formats.md``)
-----------------------------------
* Volumes (z, y, x) with voxel ``j`` of ``n`` at ``origin + j·d`` (µm); directors (Z, Y, X, 3)
  in (z, y, x) components; a director is an axis (``d`` and ``−d`` are the same).
* A slice is shown with its first named axis horizontal: ``"xy"`` → (x, y), ``"xz"`` → (x, z),
  ``"yz"`` → (y, z). Segment coordinates and angles use that (horizontal, vertical) frame.
* The in-plane angle is ``atan2(d_vertical, d_horizontal)`` folded into [0, π) (axes, not
  arrows), coloured with a cyclic hue map so 0 and π meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

__all__ = ["DirectorLines", "director_lines", "cyclic_colours", "PLANES"]

#: plane name → (axis fixed by ``index``, horizontal axis, vertical axis), volume axes (0=z, 1=y, 2=x)
PLANES = {"xy": (0, 2, 1), "xz": (1, 2, 0), "yz": (2, 1, 0)}


@dataclass
class DirectorLines:
    """Segments of one slice.

    Attributes
    ----------
    segments : ndarray, shape (M, 2, 2), float32
        End points ``[m, end, (horizontal, vertical)]`` in µm.
    angles : ndarray, shape (M,), float32
        In-plane angle of each segment in [0, π) rad.
    strength : ndarray, shape (M,), float32
        Length of the in-plane component of the unit director (0..1).
    colours : ndarray, shape (M, 4), float32
        RGBA in 0..1 from :func:`cyclic_colours` of ``angles``.
    delta_n : ndarray, shape (M,), float32
        Birefringence at each segment's centre.
    """

    segments: np.ndarray
    angles: np.ndarray
    strength: np.ndarray
    colours: np.ndarray
    delta_n: np.ndarray

    def __len__(self) -> int:
        return int(self.segments.shape[0])


def cyclic_colours(angles: np.ndarray, saturation: float = 0.85, value: float = 1.0) -> np.ndarray:
    """RGBA (…, 4) float32 of a hue wheel over [0, π): angle 0 and π get the same colour."""
    h = (np.mod(np.asarray(angles, dtype=np.float64), np.pi) / np.pi) * 6.0
    i = np.floor(h).astype(int) % 6
    fr = h - np.floor(h)
    v, s = float(value), float(saturation)
    p, q, t = v * (1 - s), v * (1 - s * fr), v * (1 - s * (1 - fr))
    vv = np.full_like(fr, v)
    pp = np.full_like(fr, p)
    r = np.choose(i, [vv, q, pp, pp, t, vv])
    g = np.choose(i, [t, vv, vv, q, pp, pp])
    b = np.choose(i, [pp, pp, t, vv, vv, q])
    return np.stack([r, g, b, np.ones_like(r)], axis=-1).astype(np.float32)


def director_lines(
    director: np.ndarray,
    delta_n: np.ndarray,
    plane: str = "xy",
    index: Optional[int] = None,
    step: int = 4,
    min_delta_n: float = 0.01,
    *,
    voxel_size_um: Sequence[float] = (1.0, 1.0, 1.0),
    origin_um: Optional[Sequence[float]] = None,
    length: float = 0.9,
    min_strength: float = 0.1,
) -> DirectorLines:
    """Short line segments of the in-plane director on one slice, subsampled every ``step`` voxels.

    Parameters
    ----------
    director : ndarray, shape (Z, Y, X, 3)
        Unit optic axis, (z, y, x) components (zero where undefined).
    delta_n : ndarray, shape (Z, Y, X)
        Birefringence n_e − n_o.
    plane : {"xy", "xz", "yz"}
        Slice orientation.
    index : int, optional
        Slice index along the fixed axis (default the middle).
    step : int
        Subsampling in voxels along both in-plane axes.
    min_delta_n : float
        Only voxels with ``|delta_n| >= min_delta_n`` get a segment.
    voxel_size_um : (dz, dy, dx)
        Voxel size, µm.
    origin_um : (z0, y0, x0), optional
        Position of voxel (0, 0, 0) (default docs/formats.md's centred origin ``−(n//2)·d``).
    length : float
        Length of a segment whose director lies fully in the plane, in units of ``step`` voxels.
    min_strength : float
        Segments whose in-plane component is shorter than this (director nearly normal to the
        plane) are dropped.

    Returns
    -------
    DirectorLines
        Segments centred on the sampled voxels, length ∝ in-plane component, with angle and
        colour.
    """
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}: one of {tuple(PLANES)}")
    director = np.asarray(director, dtype=np.float32)
    delta_n = np.asarray(delta_n, dtype=np.float32)
    if director.ndim != 4 or director.shape[-1] != 3 or director.shape[:3] != delta_n.shape:
        raise ValueError(f"director must be (Z, Y, X, 3) and delta_n (Z, Y, X), got {director.shape} "
                         f"and {delta_n.shape}")
    if step < 1:
        raise ValueError("step must be >= 1")
    fixed, hor, ver = PLANES[plane]
    shape = delta_n.shape
    vox = np.asarray(voxel_size_um, dtype=np.float64)
    origin = (np.asarray(origin_um, dtype=np.float64) if origin_um is not None
              else -np.array([s // 2 for s in shape], dtype=np.float64) * vox)
    index = shape[fixed] // 2 if index is None else int(index)
    if not 0 <= index < shape[fixed]:
        raise IndexError(f"slice index {index} outside 0..{shape[fixed] - 1}")
    d_sl = np.take(director, index, axis=fixed)  # (A, B, 3): A, B the remaining axes in order
    dn_sl = np.take(delta_n, index, axis=fixed)
    rest = [a for a in range(3) if a != fixed]
    # put the slice as (vertical, horizontal)
    if rest.index(ver) != 0:
        d_sl, dn_sl = d_sl.transpose(1, 0, 2), dn_sl.T
    off_v, off_h = (shape[ver] % step) // 2, (shape[hor] % step) // 2
    iv = np.arange(off_v + step // 2, shape[ver], step)
    ih = np.arange(off_h + step // 2, shape[hor], step)
    gv, gh = np.meshgrid(iv, ih, indexing="ij")
    d = d_sl[gv, gh]
    dn = dn_sl[gv, gh]
    comp_h, comp_v = d[..., hor], d[..., ver]
    strength = np.hypot(comp_h, comp_v)
    keep = (np.abs(dn) >= min_delta_n) & (strength >= min_strength) & (np.linalg.norm(d, axis=-1) > 0)
    comp_h, comp_v, strength, dn = comp_h[keep], comp_v[keep], strength[keep], dn[keep]
    ch = origin[hor] + gh[keep] * vox[hor]
    cv = origin[ver] + gv[keep] * vox[ver]
    # half-lengths in µm, with equal physical scale on both axes
    half = 0.5 * length * step * float(min(vox[hor], vox[ver]))
    dh, dv = comp_h * half, comp_v * half
    segments = np.stack([np.stack([ch - dh, cv - dv], -1), np.stack([ch + dh, cv + dv], -1)], axis=1)
    angles = np.mod(np.arctan2(comp_v, comp_h), np.pi)
    return DirectorLines(segments=segments.astype(np.float32), angles=angles.astype(np.float32),
                         strength=strength.astype(np.float32), colours=cyclic_colours(angles),
                         delta_n=dn.astype(np.float32))
