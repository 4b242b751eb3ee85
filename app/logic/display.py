"""Display computations of the views, without Qt: where a view opens, what a field looks like,
which way a director line points on the screen, and the director glyphs of the 3-D view.

No science here (the science is in the engine); these decide only what is drawn and where:

* :func:`sample_voxel` — the voxel a slice view opens on: the largest object, not the empty centre;
* :func:`field_image` — the real image of a complex field for a view mode (phase, amplitude,
  log spectrum);
* :func:`screen_angles` — on-screen orientation of director segments in a slice view;
* :func:`director_glyph_segments` — subsampled 3-D director segments for the VTK view.

Conventions (``docs/formats.md``): volumes (z, y, x), images (y, x), positions in µm; the phase
is ``angle(U·e^{−i·arg ΣU})`` (the field's mean phase removed), in radians; the spectrum is
``fftshift(fft2(U))``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["sample_voxel", "field_image", "screen_angles", "director_glyph_segments", "VIEW_MODES"]

#: The view modes of :func:`field_image`.
VIEW_MODES = ("Phase", "Amplitude", "Log spectrum")


def sample_voxel(volume: np.ndarray) -> tuple[int, int, int]:
    """Where a view of ``volume`` (Z, Y, X) should open: on the sample, not the empty centre.

    The contrast is ``|v − median(v)|`` (the median is the background: the medium for an RI
    volume, 0 for Δn). Voxels above half its 99.9th percentile form objects (face-connected);
    the view opens at the largest object's contrast-weighted centre, or at its strongest voxel
    when that centre falls outside it (a ring, a crescent). A flat volume opens at the centre.
    """
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    centre = tuple(n // 2 for n in vol.shape)
    if vol.size == 0:
        return centre  # type: ignore[return-value]
    step = max(1, vol.size // 200_000)
    contrast = np.abs(vol - np.float32(np.median(vol.ravel()[::step])))
    contrast[~np.isfinite(contrast)] = 0.0
    top = float(np.percentile(contrast.ravel()[::step], 99.9))
    if not top > 0.0:
        return centre  # type: ignore[return-value]
    labels, count = ndimage.label(contrast > 0.5 * top)
    if count == 0:
        return centre  # type: ignore[return-value]
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    biggest = int(np.argmax(sizes))
    inside = labels == biggest
    c = ndimage.center_of_mass(np.where(inside, contrast, 0.0))
    vox = tuple(int(min(max(round(v), 0), n - 1)) for v, n in zip(c, vol.shape))
    if not inside[vox]:
        vox = np.unravel_index(int(np.argmax(np.where(inside, contrast, 0.0))), vol.shape)
    return tuple(int(v) for v in vox)  # type: ignore[return-value]


def field_image(field: np.ndarray, mode: str) -> np.ndarray:
    """The real image shown for ``mode`` ("Phase" rad, "Amplitude", "Log spectrum" log10|FFT|), (H, W) float32."""
    u = np.asarray(field)
    if mode == "Phase":
        ref = np.exp(-1j * np.angle(u.sum()))
        return np.angle(u * ref).astype(np.float32)
    if mode == "Amplitude":
        return np.abs(u).astype(np.float32)
    if mode == "Log spectrum":
        spec = np.fft.fftshift(np.fft.fft2(u))
        return np.log10(np.abs(spec) + 1e-6).astype(np.float32)
    raise ValueError(f"unknown view mode {mode!r}")


def screen_angles(segments: np.ndarray, vertical_inverted: bool) -> np.ndarray:
    """On-screen orientation ψ in [0, π) of segments (M, 2, 2) given in (horizontal, vertical) µm.

    ``vertical_inverted``: the view's vertical axis grows downwards (pyqtgraph ``invertY``).
    """
    seg = np.asarray(segments, dtype=np.float64)
    if seg.size == 0:
        return np.zeros(0, dtype=np.float32)
    dh = seg[:, 1, 0] - seg[:, 0, 0]
    dv = seg[:, 1, 1] - seg[:, 0, 1]
    if vertical_inverted:
        dv = -dv
    return np.mod(np.arctan2(dv, dh), np.pi).astype(np.float32)


def director_glyph_segments(director: np.ndarray, strength: np.ndarray, step: int, min_strength: float,
                            voxel_size_um: Sequence[float], origin_um: Sequence[float],
                            length: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """3-D line segments of the director on a subsampled grid (for drawing; no science here).

    Parameters
    ----------
    director : ndarray, shape (Z, Y, X, 3)
        Unit optic axis, (z, y, x) components.
    strength : ndarray, shape (Z, Y, X)
        Where ``|strength| >= min_strength`` a glyph is drawn (e.g. Δn).
    step : int
        Subsampling in voxels along every axis.
    voxel_size_um, origin_um : (z, y, x)
        Geometry in µm.
    length : float
        Glyph length in units of ``step`` × the smallest voxel size.

    Returns
    -------
    segments : ndarray, shape (M, 2, 3), float32
        End points in VTK world order (x, y, z), µm.
    azimuth : ndarray, shape (M,), float32
        Angle of the director's xy projection in [0, π) (from +x towards +y).
    """
    step = max(1, int(step))
    shape = strength.shape
    idx = [np.arange((n % step) // 2 + step // 2, n, step) for n in shape]
    gz, gy, gx = np.meshgrid(*idx, indexing="ij")
    d = director[gz, gy, gx].astype(np.float64)
    keep = (np.abs(strength[gz, gy, gx]) >= min_strength) & (np.linalg.norm(d, axis=-1) > 0)
    d = d[keep]
    vox = np.asarray(voxel_size_um, dtype=np.float64)
    org = np.asarray(origin_um, dtype=np.float64)
    centre = np.stack([org[2] + gx[keep] * vox[2], org[1] + gy[keep] * vox[1], org[0] + gz[keep] * vox[0]], -1)
    dxyz = d[:, ::-1] * (0.5 * length * step * float(vox.min()))
    seg = np.stack([centre - dxyz, centre + dxyz], axis=1).astype(np.float32)
    azimuth = np.mod(np.arctan2(d[:, 1], d[:, 2]), np.pi).astype(np.float32)
    return seg, azimuth
