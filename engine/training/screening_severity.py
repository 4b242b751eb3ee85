"""How much a simulated defect changes a retrieved field, measured against the camera noise (issue #19).

The wide defect families (:mod:`engine.simulate.defects`) label a frame noisy by what was *done* to it
(an obstruction of at least 2 µm² of perturbation energy, a stray wave of at least 5 % amplitude, …),
not by what that did to the field the screen sees. A defect can leave little trace in the retrieved
crop: a stray wave whose fringes fall outside the side band, an obstruction outside the crop, a hot
pixel the side-band filter spreads into noise. A screen cannot be asked to catch what no careful
person could see, so this module measures every defect's trace, frame by frame, against the same
frame's camera noise. The simulator gives three versions of one measurement
(:func:`engine.simulate.holograms.simulate_measurement`):

* ``U``: as acquired (``apply_defects=True``);
* ``T``: its defect-free twin (``apply_defects=False``): the same frames, imperfections and camera
  noise, without the defects;
* ``R``: the twin again with a new camera-noise realisation (``noise_draw=1``).

Conventions
-----------
Fields are the screen's crops (N, H, W) complex of the retrieved field divided by the incident wave
(:func:`engine.training.screening_families.simulate_family_crops`); pixels of the camera grid.

* The defect's trace: ``D = U − e^{iφ} T`` with ``φ = arg Σ conj(T) U`` — a global phase offset is
  not a defect (the pipeline removes each field's offset against its border after unwrapping).
* One realisation's camera noise: ``N = (T − R) / √2`` (T and R are independent draws).
* ``global_dnr = Σ|D|² / Σ|N|²``: the trace's energy over the crop in units of the noise's.
* ``local_dnr = max_xy (g * |D|²) / mean_xy |N|²`` with ``g`` a Gaussian of
  :data:`LOCAL_SIGMA_PX` pixels: the trace at its strongest place, averaged over a ~5-pixel disc,
  against the noise power there. A hot pixel or a small speck can be plain to see (high local
  ratio) while its global energy is small.

Both are 0 for a frame without a defect (``U == T``, bit-identical). A defect that only adds noise
(``low-snr``) has a trace of its own noise, so its ratios measure the extra noise power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["LOCAL_SIGMA_PX", "DefectTrace", "defect_trace"]

#: width (standard deviation, camera pixels) of the Gaussian that averages the local ratio
LOCAL_SIGMA_PX = 2.0


@dataclass(frozen=True)
class DefectTrace:
    """Per-frame trace of the defects (every array (N,) float64).

    Attributes
    ----------
    global_dnr : ndarray
        ``Σ|D|² / Σ|N|²`` over the crop (0 for a frame without a defect).
    local_dnr : ndarray
        ``max(g * |D|²) / mean |N|²``.
    noise_rms : ndarray
        ``sqrt(mean |N|²)``: the camera noise of one realisation, in units of the incident wave.
    relative_rms : ndarray
        ``sqrt(Σ|D|² / Σ|T|²)``: the trace relative to the field.
    """

    global_dnr: np.ndarray
    local_dnr: np.ndarray
    noise_rms: np.ndarray
    relative_rms: np.ndarray


def _check(name: str, a: np.ndarray, shape: tuple | None) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 3 or not np.iscomplexobj(a):
        raise ValueError(f"{name} must be complex crops (N, H, W), got {a.dtype} {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, the acquired crops {shape}")
    return a.astype(np.complex128)


def defect_trace(acquired: np.ndarray, twin: np.ndarray, renoised_twin: np.ndarray,
                 sigma_px: float = LOCAL_SIGMA_PX) -> DefectTrace:
    """Each frame's defect trace against its camera noise (see the module's conventions).

    Parameters
    ----------
    acquired : ndarray (N, H, W) complex
        ``U``: the crops as acquired.
    twin : ndarray (N, H, W) complex
        ``T``: the defect-free twin's crops (same camera noise).
    renoised_twin : ndarray (N, H, W) complex
        ``R``: the twin's crops with an independent camera-noise realisation.
    sigma_px : float
        Gaussian averaging of the local ratio, pixels.

    Returns
    -------
    DefectTrace
    """
    u = _check("acquired", acquired, None)
    t = _check("twin", twin, u.shape)
    r = _check("renoised_twin", renoised_twin, u.shape)
    inner = np.sum(np.conj(t) * u, axis=(1, 2))
    phase = np.exp(1j * np.angle(inner))[:, None, None]
    d2 = np.abs(u - phase * t) ** 2
    d2[np.all(u == t, axis=(1, 2))] = 0.0  # bit-identical frames: exactly no trace
    n2 = np.abs(t - r) ** 2 / 2
    noise = np.maximum(n2.mean(axis=(1, 2)), 1e-30)
    local_d = np.array([gaussian_filter(x, sigma_px, mode="nearest").max() for x in d2])
    return DefectTrace(global_dnr=d2.mean(axis=(1, 2)) / noise, local_dnr=local_d / noise,
                       noise_rms=np.sqrt(noise),
                       relative_rms=np.sqrt(d2.sum(axis=(1, 2)) / np.maximum(np.sum(np.abs(t) ** 2, axis=(1, 2)),
                                                                               1e-30)))
