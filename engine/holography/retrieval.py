"""Off-axis field retrieval: from holograms to complex fields normalised by their backgrounds.

Conventions
-----------
* Lengths in µm, spatial frequencies in cycles/µm; images (y, x), batches (N, y, x); pixel ``j``
  of ``n`` sits at ``(j − n//2)·pixel``; spectra are ``fft2`` with ``fftfreq(n, d=pixel)`` axes.
* Fields ``exp(+i(k·r − ωt))``. A hologram is ``I = |U + R|²`` with the reference
  ``R ∝ exp(−2πi c·r)``, so the cross term ``U·R*`` — the object field's side band — sits at
  ``+c`` (the carrier, ``carrier_per_um``) and its twin at ``−c``.
* An illumination ``exp(2πi(f_x x + f_y y))`` (``illumination_per_um``) puts the unscattered
  light of its hologram at ``c + f``.
* The returned field is ``U_sample / U_background`` (same illumination), on the camera's pixel
  grid, focused on the sample plane: a sample with n > n_m has a positive phase.

Algorithm (all angles at once, in chunks to bound memory, torch on CPU or CUDA)
1. Carrier ``c``: from the metadata (always honoured), or detected. Detection finds the pair of
   twin peaks — the brightest off-centre peak of the background holograms' spectra and its mirror
   image — refined to sub-pixel accuracy (:func:`refine_peak`). A peak is ``c + f_i``: with known
   illuminations ``c = mean(p_i − f_i)``, otherwise ``c = mean(p_i)`` (illuminations centred on
   the optical axis — a single normal incidence or a symmetric scan). Which twin is the object's
   side band depends on the microscope's reference tilt, so it is decided by physics
   (``sideband="auto"``, the docs/formats.md rule): a few fields spread over the measurement are
   retrieved with each twin, and the one that gives the sample a positive integrated phase
   ``Σ (φ − background)·pixel²`` (background: a plane fitted to the image border, so that a tilt
   across the field does not decide) wins — once per measurement, over all
   those fields together. When the sample gives no clear sign (|z| < 3, e.g. an empty field) or
   with ``sideband="as-given"`` (samples less dense than their medium), the peak with
   f_x > 0 (f_x = 0: f_y > 0) is taken.
2. Side band: a circular pupil of radius NA/λ around ``c``, inverse FFT, demodulation by
   ``exp(−2πi c·r)``.
3. Refocusing of sample and background fields by angular-spectrum propagation
   (:mod:`engine.holography.propagate`), then division by the background field.
4. Illumination frequency of each field: from the metadata, or estimated from its background
   field's dominant spatial frequency (:func:`refine_peak`, sub-pixel).
5. Optional phase unwrapping (:mod:`engine.holography.unwrap`, noise-guided by default) and the
   retrieval quality numbers of every field (:mod:`engine.holography.quality`), with the camera
   artefacts of its raw hologram (:mod:`engine.holography.camera`).

References
----------
E. Cuche, P. Marquet and C. Depeursinge, "Spatial filtering for zero-order and twin-image
elimination in digital off-axis holography", Appl. Opt. 39, 4070–4075 (2000).
M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, "Efficient subpixel image registration
algorithms", Opt. Lett. 33, 156–158 (2008) (matrix-multiply DFT zoom used for sub-pixel peaks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..backend import resolve_device
from ..metadata import MeasurementMetadata
from ..progress import CancelToken, check_cancel, report, sub_progress
from .propagate import angular_spectrum_kernel
from .camera import camera_artefacts
from .quality import RetrievalQuality, integrated_phase, retrieval_quality
from .unwrap import DEFAULT_UNWRAP, unwrap_for_rytov, unwrap_phase

__all__ = ["RetrievedFields", "SidebandChoice", "SIDEBAND_RULES", "retrieve_fields", "find_carrier",
           "refine_peak"]

#: ``"auto"``: the twin that gives the sample a positive phase; ``"as-given"``: the peak with f_x > 0
SIDEBAND_RULES = ("auto", "as-given")


@dataclass
class SidebandChoice:
    """How the side band of a measurement was chosen (stored in ``retrieval/`` of the result).

    Attributes
    ----------
    source : {"metadata", "argument", "auto", "as-given"}
        Where the carrier came from: ``carrier_per_um`` in measurement.json, the caller, the
        positive-phase rule, or the f_x > 0 rule.
    flipped : bool
        True when the chosen band is the twin with f_x < 0 (the conjugate of the f_x > 0 one).
    integrated_phase_rad_um2 : float
        Mean over the trial fields of ``Σ (φ − background)·pixel²`` with the chosen band (NaN when
        the carrier was given): positive for a sample denser than its medium.
    confidence : float
        ``|S₊ − S₋| / (2σ)``, how many noise standard deviations separate the twins (NaN when given).
    ambiguous : bool
        The sample gave no clear sign (confidence < 3) and the f_x > 0 rule decided.
    """

    source: str
    flipped: bool = False
    integrated_phase_rad_um2: float = float("nan")
    confidence: float = float("nan")
    ambiguous: bool = False

    def describe(self) -> str:
        """One line for a technician."""
        if self.source in ("metadata", "argument"):
            return "side band: carrier_per_um from " + ("measurement.json" if self.source == "metadata" else "the caller")
        if self.source == "as-given":
            return "side band: the peak with f_x > 0 (project setting 'as given')"
        if self.ambiguous:
            return (f"side band: no clear phase sign (confidence {self.confidence:.1f} σ), "
                    "the peak with f_x > 0 was taken")
        side = "f_x < 0" if self.flipped else "f_x > 0"
        return (f"side band: automatic, the twin at {side} gives the sample a positive phase "
                f"({self.integrated_phase_rad_um2:+.3g} rad·µm², {self.confidence:.0f} σ)")


@dataclass
class RetrievedFields:
    """Retrieved, background-normalised fields of one measurement.

    Attributes
    ----------
    field : ndarray, shape (N, H, W), complex64
        ``U_sample / U_background`` on the camera grid, focused on the sample plane.
    illumination_per_um : ndarray, shape (N, 2), float64
        Transverse illumination frequency ``(f_x, f_y)`` of each field in cycles/µm
        (from the metadata, or estimated from the background fields).
    carrier_per_um : ndarray, shape (2,), float64
        Side-band carrier ``(c_x, c_y)`` used, cycles/µm.
    pixel_size_um : float
        Pixel size of ``field`` in the sample plane, µm.
    unwrapped_phase : ndarray, shape (N, H, W), float32, or None
        Unwrapped phase of ``field`` in radians (``None`` when ``unwrap=False``).
    illumination_estimated : bool
        True when ``illumination_per_um`` was estimated rather than read from the metadata.
    carrier_estimated : bool
        True when the carrier was detected rather than read from the metadata.
    sideband : SidebandChoice or None
        How the carrier (side band) was chosen.
    quality : RetrievalQuality or None
        Per-field quality numbers (:mod:`engine.holography.quality`), with ``unwrap=True``.
    unwrap_method : str
        The unwrapping method used ("" without unwrapping).
    rytov_field, rytov_phase : ndarray (N, H, W) or None
        With the guided unwrapping: the field and unwrapped phase with their unreliable (dark,
        noise-dominated) pixels replaced by the denoised field
        (:func:`engine.holography.unwrap.unwrap_for_rytov`): what the reconstruction uses.
        ``field`` and ``unwrapped_phase`` stay as measured.
    """

    field: np.ndarray
    illumination_per_um: np.ndarray
    carrier_per_um: np.ndarray
    pixel_size_um: float
    unwrapped_phase: Optional[np.ndarray] = None
    illumination_estimated: bool = False
    carrier_estimated: bool = False
    sideband: Optional[SidebandChoice] = None
    quality: Optional[RetrievalQuality] = None
    unwrap_method: str = ""
    rytov_field: Optional[np.ndarray] = None
    rytov_phase: Optional[np.ndarray] = None


# --------------------------------------------------------------------------- sub-pixel peaks
def _dft_zoom(u: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """|DFT|² of images ``u`` (N,H,W) at fractional bins ``ky`` (N,P) × ``kx`` (N,Q)."""
    n, h, w = u.shape
    dev = u.device
    y = torch.arange(h, device=dev, dtype=torch.float64)
    x = torch.arange(w, device=dev, dtype=torch.float64)
    ey = torch.polar(torch.ones((), dtype=torch.float64, device=dev),
                     -2 * math.pi * ky[:, :, None] * y[None, None, :] / h).to(torch.complex64)
    ex = torch.polar(torch.ones((), dtype=torch.float64, device=dev),
                     -2 * math.pi * x[None, :, None] * kx[:, None, :] / w).to(torch.complex64)
    f = torch.bmm(torch.bmm(ey, u.to(torch.complex64)), ex)
    return f.real**2 + f.imag**2


def refine_peak(
    images: torch.Tensor | np.ndarray,
    coarse_bins: torch.Tensor | np.ndarray,
    *,
    stages: int = 3,
    points: int = 9,
) -> np.ndarray:
    """Sub-pixel location of a spectral peak by successive DFT zooms and a parabolic fit.

    Parameters
    ----------
    images : array, shape (N, H, W), complex or real
        Images whose spectra each hold one dominant peak.
    coarse_bins : array, shape (N, 2)
        Integer-accurate peak positions ``(k_y, k_x)`` in DFT bins (may be negative).
    stages : int
        Zoom stages; stage ``s`` samples ``points`` bins across ±(span/4^s) (span = 1 bin).
    points : int
        Samples per axis and stage (odd).

    Returns
    -------
    ndarray, shape (N, 2), float64
        Refined peak positions ``(k_y, k_x)`` in (fractional) DFT bins; multiply by
        ``1/(n·pixel)`` for cycles/µm. Accuracy ~1e-3 bin for a clean plane wave.

    References
    ----------
    M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, Opt. Lett. 33, 156 (2008).
    """
    u = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    k = torch.as_tensor(np.asarray(coarse_bins, dtype=np.float64) if not isinstance(coarse_bins, torch.Tensor)
                        else coarse_bins.double(), device=u.device).clone()
    span = 1.0
    offs = torch.linspace(-1.0, 1.0, points, device=u.device, dtype=torch.float64)
    for _ in range(stages):
        ky = k[:, 0:1] + span * offs[None]
        kx = k[:, 1:2] + span * offs[None]
        p = _dft_zoom(u, ky, kx)  # (N, P, P)
        flat = p.reshape(p.shape[0], -1).argmax(dim=1)
        iy, ix = flat // points, flat % points
        # keep the maximum away from the border so a parabola has three samples
        iy, ix = iy.clamp(1, points - 2), ix.clamp(1, points - 2)
        step = span * 2.0 / (points - 1)
        k = torch.stack([ky[torch.arange(len(iy)), iy], kx[torch.arange(len(ix)), ix]], dim=1)
        span = step
    # parabolic fit on the log power around the final maximum
    rows = torch.arange(p.shape[0], device=u.device)
    lp = torch.log(p.double() + 1e-30)
    c0 = lp[rows, iy, ix]
    dy = 0.5 * (lp[rows, iy - 1, ix] - lp[rows, iy + 1, ix]) / (
        lp[rows, iy - 1, ix] - 2 * c0 + lp[rows, iy + 1, ix]).clamp(max=-1e-30)
    dx = 0.5 * (lp[rows, iy, ix - 1] - lp[rows, iy, ix + 1]) / (
        lp[rows, iy, ix - 1] - 2 * c0 + lp[rows, iy, ix + 1]).clamp(max=-1e-30)
    step = span
    k[:, 0] += -dy.clamp(-1, 1) * step
    k[:, 1] += -dx.clamp(-1, 1) * step
    return k.cpu().numpy()


def _signed_bins(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.where(idx > n // 2, idx - n, idx) if n % 2 == 0 else torch.where(idx > (n - 1) // 2, idx - n, idx)


def find_carrier(
    holograms: np.ndarray | torch.Tensor,
    pixel_size_um: float,
    *,
    exclude_radius_per_um: float = 0.0,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Sub-pixel position of the brightest off-centre spectral peak of each hologram.

    Applies the docs/formats.md rule: of the twin peaks the one with f_x > 0 (f_x = 0: f_y > 0).

    Parameters
    ----------
    holograms : array, shape (N, H, W) or (H, W), real
        Holograms (sample-free backgrounds give the cleanest peaks).
    pixel_size_um : float
        Pixel size, µm.
    exclude_radius_per_um : float
        Frequencies with ``|ν|`` below this (and below 3 bins) are ignored (the zero order).
    device : str or torch.device

    Returns
    -------
    ndarray, shape (N, 2) or (2,), float64
        Peak frequency ``(f_x, f_y)`` in cycles/µm.
    """
    dev = resolve_device(device)
    h = torch.as_tensor(np.asarray(holograms, dtype=np.float32) if not isinstance(holograms, torch.Tensor)
                        else holograms, device=dev)
    single = h.ndim == 2
    h = h[None] if single else h
    h = h.to(torch.float32)
    h = h - h.mean(dim=(-2, -1), keepdim=True)
    n, hh, ww = h.shape
    spec = torch.fft.fft2(h)
    power = spec.real**2 + spec.imag**2
    fy = torch.fft.fftfreq(hh, d=pixel_size_um, device=dev)[:, None]
    fx = torch.fft.fftfreq(ww, d=pixel_size_um, device=dev)[None, :]
    rmin = max(float(exclude_radius_per_um), 3.0 / (min(hh, ww) * pixel_size_um))
    keep = ((fx > 0) | ((fx == 0) & (fy > 0))) & (fx**2 + fy**2 >= rmin**2)
    power = torch.where(keep, power, torch.zeros_like(power))
    flat = power.reshape(n, -1).argmax(dim=1)
    iy = _signed_bins(flat // ww, hh)
    ix = _signed_bins(flat % ww, ww)
    bins = refine_peak(h, torch.stack([iy, ix], dim=1).double())
    out = np.stack([bins[:, 1] / (ww * pixel_size_um), bins[:, 0] / (hh * pixel_size_um)], axis=1)
    return out[0] if single else out


def _field_peak_per_um(fields: torch.Tensor, pixel_size_um: float) -> np.ndarray:
    """Dominant spatial frequency ``(f_x, f_y)`` (cycles/µm) of complex fields (N, H, W)."""
    n, hh, ww = fields.shape
    spec = torch.fft.fft2(fields)
    flat = (spec.real**2 + spec.imag**2).reshape(n, -1).argmax(dim=1)
    iy = _signed_bins(flat // ww, hh)
    ix = _signed_bins(flat % ww, ww)
    bins = refine_peak(fields, torch.stack([iy, ix], dim=1).double())
    return np.stack([bins[:, 1] / (ww * pixel_size_um), bins[:, 0] / (hh * pixel_size_um)], axis=1)


# --------------------------------------------------------------------------- side band
def _plane_waves(freq_per_um, shape: tuple[int, int], px: float, dev) -> torch.Tensor:
    """``exp(−2πi (f_x x + f_y y))`` on the pixel grid (pixel j at (j − n//2)·px); (N, H, W) or (H, W), complex64.

    ``freq_per_um``: (f_x, f_y) or (N, 2), cycles/µm. Multiplying a field by it removes that tilt
    (demodulation by the carrier, or an illumination's tilt).
    """
    hh, ww = shape
    f = torch.as_tensor(np.asarray(freq_per_um, dtype=np.float64), device=dev)
    y = (torch.arange(hh, device=dev, dtype=torch.float64) - hh // 2) * px
    x = (torch.arange(ww, device=dev, dtype=torch.float64) - ww // 2) * px
    ph = -2 * math.pi * (f[..., 0, None, None] * x[None, :] + f[..., 1, None, None] * y[:, None])
    return torch.polar(torch.ones_like(ph), ph).to(torch.complex64)


class _SideBand:
    """Pupil filter + demodulation (+ refocusing) of hologram batches on one device."""

    def __init__(self, shape, pixel, carrier, na, wavelength, medium_index, refocus_um, dev):
        hh, ww = shape
        fy = torch.fft.fftfreq(hh, d=pixel, device=dev, dtype=torch.float64)[:, None]
        fx = torch.fft.fftfreq(ww, d=pixel, device=dev, dtype=torch.float64)[None, :]
        radius = na / wavelength
        r2 = (fx - carrier[0]) ** 2 + (fy - carrier[1]) ** 2
        self.mask = (r2 <= radius**2).to(torch.float32)
        # ring just outside the pupil, away from the zero order and the twin (quality number)
        far = ((fx**2 + fy**2) > radius**2) & (((fx + carrier[0]) ** 2 + (fy + carrier[1]) ** 2) > radius**2)
        self.ring = ((r2 > radius**2) & (r2 <= (1.25 * radius) ** 2) & far).to(torch.float32)
        self.demod = _plane_waves(carrier, (hh, ww), pixel, dev)
        self.kernel = None
        if refocus_um:
            self.kernel = angular_spectrum_kernel(shape, pixel, wavelength, medium_index, refocus_um, device=dev)

    def outside_energy(self, holo: torch.Tensor) -> np.ndarray:
        """Spectral energy in the ring outside the pupil / energy inside it, per image (N,)."""
        p = torch.fft.fft2(holo.to(torch.float32))
        p = p.real**2 + p.imag**2
        inside = (p * self.mask).sum(dim=(-2, -1)).clamp_min(1e-30)
        ring_area = float(self.ring.sum()) or 1.0
        # per unit area, so that the number does not depend on how much of the ring is kept
        ratio = (p * self.ring).sum(dim=(-2, -1)) / ring_area / (inside / float(self.mask.sum()))
        return ratio.cpu().numpy()

    def __call__(self, holo: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
        field = torch.fft.ifft2(torch.fft.fft2(holo.to(torch.float32)).mul_(self.mask))
        if demodulate or self.kernel is not None:
            field *= self.demod
        if self.kernel is not None:
            field = torch.fft.ifft2(torch.fft.fft2(field) * self.kernel)
        return field


def _divide(sample: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """``sample / background``; pixels where the background field vanishes are set to 0."""
    return torch.nan_to_num_(sample.div_(background), nan=0.0, posinf=0.0, neginf=0.0)


def _illumination_from_metadata(md: MeasurementMetadata, n: int) -> Optional[np.ndarray]:
    if md.illumination_per_um is None:
        return None
    ill = np.asarray(md.illumination_per_um, dtype=np.float64).reshape(-1, 2)
    if md.frames:
        return ill[[f.illumination for f in md.frames]]
    if len(ill) != n:
        raise ValueError(f"metadata has {len(ill)} illuminations for {n} holograms")
    return ill


def _trial_statistic(holograms: np.ndarray, backgrounds: np.ndarray, idx: np.ndarray, carrier: np.ndarray,
                     px: float, na: float, lam: float, nm: float, dev) -> tuple[float, float]:
    """Integrated phase (rad·µm², summed over fields; :func:`~engine.holography.quality.integrated_phase`) and its σ."""
    band = _SideBand(holograms.shape[-2:], px, carrier, na, lam, nm, 0.0, dev)
    us = band(torch.as_tensor(holograms[idx].astype(np.float32), device=dev))
    bg = backgrounds[idx] if backgrounds.ndim == 3 else backgrounds[None]
    u = _divide(us, band(torch.as_tensor(bg.astype(np.float32), device=dev)))
    if backgrounds.ndim == 2:  # one background for all: remove each illumination's tilt
        u = u * _plane_waves(_field_peak_per_um(u, px), tuple(u.shape[-2:]), px, dev)
    s, sigma = integrated_phase(unwrap_phase(u.cpu().numpy(), DEFAULT_UNWRAP), px)
    return float(s.sum()), float(math.sqrt(float((sigma**2).sum())))


def _detect_carrier(holograms: np.ndarray, backgrounds: np.ndarray, ill_md: Optional[np.ndarray], px: float,
                    na: float, lam: float, nm: float, rule: str, dev) -> tuple[np.ndarray, SidebandChoice]:
    """Detected carrier and how its twin was chosen (module docstring, step 1)."""
    # up to 16 backgrounds spread over the measurement: the carrier is common to all of them
    sub = (np.unique(np.linspace(0, backgrounds.shape[0] - 1, min(backgrounds.shape[0], 16)).round().astype(int))
           if backgrounds.ndim == 3 else None)
    peaks = find_carrier(backgrounds if sub is None else backgrounds[sub], px, exclude_radius_per_um=0.5 * na / lam,
                         device=dev).reshape(-1, 2)

    def carrier_of(p: np.ndarray) -> np.ndarray:
        if ill_md is not None and backgrounds.ndim == 3:
            return np.mean(p - ill_md[sub], axis=0)
        if ill_md is not None:
            return p[0] - np.mean(ill_md, axis=0)
        return np.mean(p, axis=0)

    c_pos, c_neg = carrier_of(peaks), carrier_of(-peaks)
    if rule == "as-given":
        return c_pos, SidebandChoice(source="as-given")
    n = holograms.shape[0]
    idx = np.unique(np.linspace(0, n - 1, min(n, 8)).round().astype(int))
    s_pos, sig = _trial_statistic(holograms, backgrounds, idx, c_pos, px, na, lam, nm, dev)
    s_neg, _ = _trial_statistic(holograms, backgrounds, idx, c_neg, px, na, lam, nm, dev)
    confidence = abs(s_pos - s_neg) / (2 * sig)
    if confidence < 3.0:
        return c_pos, SidebandChoice(source="auto", integrated_phase_rad_um2=s_pos / len(idx),
                                     confidence=confidence, ambiguous=True)
    flip = s_neg > s_pos
    return (c_neg if flip else c_pos), SidebandChoice(
        source="auto", flipped=flip, integrated_phase_rad_um2=(s_neg if flip else s_pos) / len(idx),
        confidence=confidence)


def _checked_stacks(holograms: np.ndarray, backgrounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holograms (N, H, W) and backgrounds (N, H, W) or (H, W) as arrays; ValueError on other shapes.

    One hologram with one (H, W) background gets a (1, H, W) background: the same illumination.
    """
    holograms = np.asarray(holograms)
    backgrounds = np.asarray(backgrounds)
    if holograms.ndim != 3:
        raise ValueError(f"holograms must be (N, H, W), got shape {holograms.shape}")
    n, hh, ww = holograms.shape
    if backgrounds.shape not in ((n, hh, ww), (hh, ww)):
        raise ValueError(f"backgrounds must be (N, H, W) or (H, W) = {(hh, ww)}, got {backgrounds.shape}")
    if backgrounds.ndim == 2 and n == 1:
        backgrounds = backgrounds[None]
    return holograms, backgrounds


def _demodulate(holograms: np.ndarray, backgrounds: np.ndarray, band: "_SideBand", ill_md: Optional[np.ndarray],
                px: float, *, chunk: int, device: torch.device, progress: Optional[Callable[..., None]],
                progress_end: float, cancel: Optional[CancelToken]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background-normalised fields of every hologram, chunk by chunk.

    With one background for all, each field's illumination tilt is removed by the plane wave of
    its frequency (``ill_md``, or the dominant frequency of the sample field).

    Returns
    -------
    field : (N, H, W) complex64
    illum : (N, 2) float64
        Illumination (f_x, f_y) of each field, cycles/µm.
    outside : (N,) float32
        Energy outside the side band (:meth:`_SideBand.outside_energy`).
    """
    dev = device
    n, hh, ww = holograms.shape
    per_image_bg = backgrounds.ndim == 3
    field = np.empty((n, hh, ww), dtype=np.complex64)
    illum = np.empty((n, 2), dtype=np.float64)
    outside = np.empty(n, dtype=np.float32)
    bg_single = band(torch.as_tensor(backgrounds.astype(np.float32, copy=False), device=dev)[None]) \
        if not per_image_bg else None
    for s in range(0, n, chunk):
        check_cancel(cancel)
        e = min(n, s + chunk)
        # the unit-modulus demodulation cancels in U_s/U_b: skip it when nothing else needs it
        demod = not (per_image_bg and ill_md is not None)
        hol = torch.as_tensor(holograms[s:e].astype(np.float32, copy=False), device=dev)
        outside[s:e] = band.outside_energy(hol)
        us = band(hol, demod)
        if per_image_bg:
            ub = band(torch.as_tensor(backgrounds[s:e].astype(np.float32, copy=False), device=dev), demod)
            illum[s:e] = ill_md[s:e] if ill_md is not None else _field_peak_per_um(ub, px)
            u = _divide(us, ub)
        else:
            u = _divide(us, bg_single)
            f0 = _field_peak_per_um(bg_single, px)[0]
            f = ill_md[s:e] if ill_md is not None else _field_peak_per_um(u, px) + f0
            illum[s:e] = f
            u = u * _plane_waves(f - f0, (hh, ww), px, dev)
        field[s:e] = u.cpu().numpy()
        report(progress, progress_end * e / n, f"retrieving fields {e}/{n}")
    return field, illum, outside


def _unwrap_and_grade(field: np.ndarray, outside: np.ndarray, holograms: np.ndarray, backgrounds: np.ndarray,
                      unwrap_method: str, *, device: torch.device,
                      progress: Optional[Callable[..., None]], progress_start: float,
                      cancel: Optional[CancelToken]):
    """Unwrapped phase (N, H, W), :class:`RetrievalQuality` and, for ``"guided"``, the Rytov (field, phase)."""
    rytov = None
    if unwrap_method == "guided":
        unwrapped, rytov_field, rytov_phase = unwrap_for_rytov(
            field, cancel=cancel, progress=sub_progress(progress, progress_start, 0.95, ""))
        rytov = (rytov_field, rytov_phase)
    else:
        unwrapped = unwrap_phase(field, unwrap_method, device=device,
                                 progress=sub_progress(progress, progress_start, 0.95, ""), cancel=cancel)
    check_cancel(cancel)
    report(progress, 0.95, "retrieval quality")
    camera = camera_artefacts(holograms, backgrounds=backgrounds)
    return unwrapped, retrieval_quality(field, unwrapped, outside, camera), rytov


def retrieve_fields(
    holograms: np.ndarray,
    backgrounds: np.ndarray,
    metadata: MeasurementMetadata,
    *,
    carrier_per_um: Optional[tuple[float, float]] = None,
    refocus_um: float = 0.0,
    unwrap: bool = True,
    unwrap_method: str = DEFAULT_UNWRAP,
    sideband: str = "auto",
    chunk: int = 16,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> RetrievedFields:
    """Retrieve background-normalised complex fields from off-axis holograms.

    Parameters
    ----------
    holograms : ndarray, shape (N, H, W)
        Sample holograms (any real dtype).
    backgrounds : ndarray, shape (N, H, W) or (H, W)
        Background holograms of the same illuminations, or one for all. With one background for
        all, the tilt of each illumination is removed by the plane wave of its frequency
        (metadata, or the dominant frequency of the sample field).
    metadata : MeasurementMetadata
        Wavelength, medium index, NA, pixel size, optional carrier and illuminations.
    carrier_per_um : (c_x, c_y), optional
        Overrides the metadata's carrier; if neither gives one it is detected (module docstring).
    refocus_um : float
        Angular-spectrum propagation distance applied to the fields (µm, + = along +z), e.g. to
        bring a sample imaged out of focus to the plane z = 0 of the tomogram.
    unwrap : bool
        Also return the unwrapped phase (needed by the Rytov reconstruction) and the retrieval
        quality numbers.
    unwrap_method : {"guided", "herraez", "fourier"}
        See :func:`engine.holography.unwrap.unwrap_phase`.
    sideband : {"auto", "as-given"}
        How a detected carrier's twin is chosen (module docstring); ignored when the carrier is
        given (argument or metadata), which is always honoured.
    chunk : int
        Holograms processed at once (memory ≈ 6·chunk·H·W·8 bytes on the device).
    device : str or torch.device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    progress, cancel
        Progress callback and cancel token.

    Returns
    -------
    RetrievedFields

    References
    ----------
    E. Cuche, P. Marquet and C. Depeursinge, Appl. Opt. 39, 4070 (2000).
    """
    dev = resolve_device(device)
    holograms, backgrounds = _checked_stacks(holograms, backgrounds)
    n, hh, ww = holograms.shape
    px = float(metadata.pixel_size_um)
    lam, nm, na = float(metadata.wavelength_um), float(metadata.medium_index), float(metadata.na_objective)
    ill_md = _illumination_from_metadata(metadata, n)

    report(progress, 0.0, "finding the carrier")
    if sideband not in SIDEBAND_RULES:
        raise ValueError(f"sideband must be one of {SIDEBAND_RULES}, got {sideband!r}")
    if carrier_per_um is not None or metadata.carrier_per_um is not None:
        carrier = carrier_per_um if carrier_per_um is not None else metadata.carrier_per_um
        choice = SidebandChoice(source="argument" if carrier_per_um is not None else "metadata")
    else:
        carrier, choice = _detect_carrier(holograms, backgrounds, ill_md, px, na, lam, nm, sideband, dev)
    carrier_estimated = choice.source in SIDEBAND_RULES
    carrier = np.asarray(carrier, dtype=np.float64).reshape(2)
    check_cancel(cancel)

    band = _SideBand((hh, ww), px, carrier, na, lam, nm, refocus_um, dev)
    frac_fields = 0.6 if unwrap else 1.0
    field, illum, outside = _demodulate(holograms, backgrounds, band, ill_md, px, chunk=chunk, device=dev,
                                        progress=progress, progress_end=frac_fields, cancel=cancel)
    unwrapped, quality, rytov = None, None, None
    if unwrap:
        unwrapped, quality, rytov = _unwrap_and_grade(field, outside, holograms, backgrounds, unwrap_method, device=dev,
                                                      progress=progress,
                                                      progress_start=frac_fields, cancel=cancel)
    report(progress, 1.0, "fields retrieved")
    return RetrievedFields(field=field, illumination_per_um=illum, carrier_per_um=carrier,
                           pixel_size_um=px, unwrapped_phase=unwrapped,
                           illumination_estimated=ill_md is None, carrier_estimated=carrier_estimated,
                           sideband=choice, quality=quality, unwrap_method=unwrap_method if unwrap else "",
                           rytov_field=None if rytov is None else rytov[0],
                           rytov_phase=None if rytov is None else rytov[1])
