"""Retrieval quality numbers: one row per retrieved field, stored in ``retrieval/`` of the result.

Conventions
-----------
Fields are ``U_sample / U_background`` (N, H, W), complex, (y, x) with pixel j at
(j − n//2)·pixel; phases in radians. Every number is 0 for a perfect field and grows with
trouble, so a screen or a technician can sort by it:

``phase_noise_rad``
    Per-pixel phase noise from neighbouring-pixel differences (robust, MAD):
    :func:`engine.holography.unwrap.phase_noise_rad`. ≈ 1.65 rad means pure noise.
``background_phase_std_rad``
    Robust standard deviation (1.4826·MAD) of the unwrapped phase on the image border (8 px):
    slow drifts, tilts, fringes and unwrapping slabs outside the sample.
``residue_density``
    Phase residues (non-zero circulation of the wrapped phase around 2×2 pixels) per pixel:
    vortices of noise or of the sample's own field nulls. Over ~1e-3 no unwrapping is exact.
``unwrap_inconsistency``
    Fraction of pixels where the unwrapped phase and the least-squares (Fourier, Ghiglia &
    Romero 1994) solution differ by more than π after removing their median difference: a
    region put 2π off by one of the two shows here.
``outside_pupil_energy``
    Energy of the sample hologram's spectrum in a ring just outside the objective pupil around
    the carrier (radius NA/λ to 1.25·NA/λ, away from the zero order and the twin), relative to
    the energy inside the pupil: parasitic fringes, aliasing, a wrong carrier.
``hot_pixel_fraction``, ``row_jitter`` (optional: absent from files written before 2026-12)
    Camera artefacts of the raw sample hologram (:mod:`engine.holography.camera`): the fraction of
    its pixels that are isolated bright outliers of the local fringe, and the rms row-to-row error
    relative to the mean count (rolling read-out).

References
----------
R. M. Goldstein, H. A. Zebker and C. L. Werner, Radio Sci. 23, 713 (1988) (residues).
D. C. Ghiglia and L. A. Romero, J. Opt. Soc. Am. A 11, 107 (1994).
"""

from __future__ import annotations

from dataclasses import dataclass, fields as dc_fields

import numpy as np
import torch

from .camera import CameraArtefacts
from .unwrap import border_pixels, phase_noise_rad, unwrap_phase, wrap_rad

__all__ = ["RetrievalQuality", "QUALITY_KEYS", "CAMERA_KEYS", "residue_density", "retrieval_quality", "integrated_phase"]


@dataclass
class RetrievalQuality:
    """Per-field retrieval quality numbers (module docstring); each array has shape (N,), float32."""

    phase_noise_rad: np.ndarray
    background_phase_std_rad: np.ndarray
    residue_density: np.ndarray
    unwrap_inconsistency: np.ndarray
    outside_pupil_energy: np.ndarray
    hot_pixel_fraction: np.ndarray | None = None
    row_jitter: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        """The numbers present (the camera ones only when computed), each (N,) float32."""
        return {f.name: np.asarray(getattr(self, f.name), np.float32) for f in dc_fields(self)
                if getattr(self, f.name) is not None}

    def row(self, i: int) -> dict[str, float]:
        """The numbers of field ``i``."""
        return {k: float(v[i]) for k, v in self.as_dict().items()}


#: The numbers every retrieval record holds.
QUALITY_KEYS = tuple(f.name for f in dc_fields(RetrievalQuality) if f.default is not None)
#: The camera numbers, in records written from 2026-12 on (:mod:`engine.holography.camera`).
CAMERA_KEYS = ("hot_pixel_fraction", "row_jitter")


def residue_density(field: np.ndarray) -> np.ndarray:
    """Phase residues per pixel of each image (N,), from the wrapped phase of ``field`` (N, H, W)."""
    ph = np.angle(field).astype(np.float32, copy=False)
    d1 = wrap_rad(ph[:, :-1, 1:] - ph[:, :-1, :-1])
    d2 = wrap_rad(ph[:, 1:, 1:] - ph[:, :-1, 1:])
    d3 = wrap_rad(ph[:, 1:, :-1] - ph[:, 1:, 1:])
    d4 = wrap_rad(ph[:, :-1, :-1] - ph[:, 1:, :-1])
    circ = np.abs(d1 + d2 + d3 + d4) > np.pi
    return circ.reshape(len(ph), -1).mean(axis=1).astype(np.float32)


def _border_robust_std(phase: np.ndarray, width: int = 8) -> np.ndarray:
    b = border_pixels(phase, width)
    med = np.median(b, axis=1, keepdims=True)
    return (1.4826 * np.median(np.abs(b - med), axis=1)).astype(np.float32)


def _inconsistency(field: np.ndarray, unwrapped: np.ndarray) -> np.ndarray:
    ls = unwrap_phase(field, "fourier", device="cpu", chunk=64)
    d = unwrapped - ls
    d -= np.median(d.reshape(len(d), -1), axis=1)[:, None, None]
    return (np.abs(d) > np.pi).reshape(len(d), -1).mean(axis=1).astype(np.float32)


def integrated_phase(phase: np.ndarray, pixel_size_um: float, border: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """The sample's integrated phase ``Σ (φ − background)·pixel²`` per image, rad·µm², and its noise σ.

    The background is a plane fitted (least squares) to the image's border frame (``border`` of
    the width on each side): a tilt or a slow curvature across the field (a synthesised or
    imperfect background, a sample-induced tilt) must not decide the sign, only the sample. For a
    sample denser than its medium the value is positive (``docs/formats.md``): it is the
    projection of ``Δn = n − n_m`` times ``2π/λ``.

    Parameters
    ----------
    phase : (N, H, W) float
        Unwrapped phases, rad.
    pixel_size_um : float
        Pixel size, µm.

    Returns
    -------
    value, sigma : (N,) float64
        Integrated phase and the standard deviation its background noise alone would give.
    """
    phase = np.asarray(phase, np.float64)
    n, h, w = phase.shape
    bw = max(2, int(round(border * min(h, w))))
    frame = np.zeros((h, w), bool)
    frame[:bw] = frame[-bw:] = True
    frame[:, :bw] = frame[:, -bw:] = True
    yy, xx = np.mgrid[:h, :w]
    a = np.stack([np.ones(frame.sum()), yy[frame] / h, xx[frame] / w], axis=1)
    coef, *_ = np.linalg.lstsq(a, phase[:, frame].T, rcond=None)  # (3, N)
    plane = coef[0][:, None, None] + coef[1][:, None, None] * (yy / h) + coef[2][:, None, None] * (xx / w)
    rel = phase - plane
    resid = rel[:, frame]
    rel -= np.median(resid, axis=1)[:, None, None]
    mad = 1.4826 * np.median(np.abs(resid - np.median(resid, axis=1, keepdims=True)), axis=1)
    value = rel.reshape(n, -1).sum(axis=1) * pixel_size_um**2
    sigma = mad * np.sqrt(h * w) * pixel_size_um**2 + 1e-12
    return value, sigma


def retrieval_quality(field: np.ndarray, unwrapped: np.ndarray | None,
                      outside_pupil_energy: np.ndarray | None = None,
                      camera: CameraArtefacts | None = None) -> RetrievalQuality:
    """Quality numbers of retrieved fields (module docstring).

    Parameters
    ----------
    field : (N, H, W) complex
        Retrieved ``U_sample / U_background``.
    unwrapped : (N, H, W) float or None
        Its unwrapped phase (rad); computed with the default method when None.
    outside_pupil_energy : (N,) float, optional
        From the retrieval (:func:`engine.holography.retrieval.retrieve_fields`); NaN if absent.
    camera : CameraArtefacts, optional
        The raw holograms' camera numbers (:func:`engine.holography.camera.camera_artefacts`).
    """
    field = np.asarray(field)
    n = field.shape[0]
    if unwrapped is None:
        unwrapped = unwrap_phase(field)
    with torch.no_grad():
        return RetrievalQuality(
            phase_noise_rad=phase_noise_rad(field).astype(np.float32),
            background_phase_std_rad=_border_robust_std(np.asarray(unwrapped, np.float32)),
            residue_density=residue_density(field),
            unwrap_inconsistency=_inconsistency(field, np.asarray(unwrapped, np.float32)),
            outside_pupil_energy=(np.full(n, np.nan, np.float32) if outside_pupil_energy is None
                                  else np.asarray(outside_pupil_energy, np.float32)),
            hot_pixel_fraction=None if camera is None else np.asarray(camera.hot_pixel_fraction, np.float32),
            row_jitter=None if camera is None else np.asarray(camera.row_jitter, np.float32))
