"""What background division leaves behind: the sample chamber's residual coherent noise.

Conventions (``docs/formats.md``)
-----------------------------------
* Lengths in µm, spatial frequencies in cycles/µm; images (y, x), pixel ``j`` of ``n`` at
  ``(j - n//2) * pixel``; fields follow ``exp(+i(k·r - ωt))`` and propagate by +z with
  ``exp(+2πi ν_z z)`` in the angular spectrum (as :mod:`engine.simulate.holograms`).
* A *transmission* is a complex (H, W) factor on the object beam at the focal plane; 1 is no
  effect. ``|T| < 1`` absorbs; ``arg T > 0`` delays.

Physics
-------
The background hologram of an off-axis ODT measurement is recorded in a cell-free patch of the
chamber, or before the sample is loaded. The dust, residue and scratches of the chamber's
coverslips are therefore *different* in the sample and the background exposure, and the
retrieved field ``u = sample / background`` keeps both sets, with opposite contrast:

* **near residue** — particles on the coverslip next to the sample, a few µm out of focus:
  weak Fresnel rings, fixed for the measurement; their shadows move with the illumination
  angle by ``d · (f_x, f_y) / f_z`` (rendered exactly: the tilted wave through the screen,
  angular-spectrum propagation by ``d``, the objective's pupil on the tilted spectrum);
* **far residue** — many particles on the far coverslip or in the optics, tens of µm out of
  focus: a pupil-limited speckle that decorrelates between illuminations (a new draw per
  frame), with a smooth spectral envelope of random width (small particles scatter wider).

Real clean fields carry this texture: the high-pass (Gaussian σ = 6 px) RMS of log|u| over
the backgrounds of the three real holograms of ``tests/data`` (qpretrieve's HL60, qpformat's
single and series) is 0.07–0.15, of the phase 0.08–0.09 rad; a simulator without it gives
≈ 0.01 and teaches a screening network that any amplitude texture is a defect (issue #19).
The residue's strength is a parameter (:attr:`ChamberResidue.rms`, the RMS of ``|T − 1|``
over the field); the family data set draws it over 0–0.35, a range that spans the real values.

References
----------
.. [1] E. Cuche, P. Marquet and C. Depeursinge, Appl. Opt. 39, 4070 (2000) — background
   (reference-hologram) subtraction in digital holographic microscopy.
.. [2] J. W. Goodman, *Speckle Phenomena in Optics*, Roberts & Co. (2007), ch. 4 — coherent
   noise of weak random scatterers through a finite pupil.
.. [3] K. Kim et al., "Optical diffraction tomography techniques for the study of cell
   pathophysiology", J. Biomed. Photonics Eng. 2, 020201 (2016) — background fields recorded
   in a cell-free region of the chamber.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .defects import FrameContext, Particle, _particle_screen

__all__ = ["ChamberResidue", "ChamberResidueModel"]


@dataclass(frozen=True)
class ChamberResidue:
    """Strength and make-up of the residue of one measurement.

    Attributes
    ----------
    rms : float
        RMS of ``|T − 1|`` of the residual transmission at normal incidence (0 = none).
    near_fraction : float
        Share of the near residue in the power ``rms²`` (the rest is far speckle), 0–1.
    seed : int
        Random source of the particles and of every frame's speckle.
    """

    rms: float = 0.0
    near_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if self.rms < 0 or not 0 <= self.near_fraction <= 1:
            raise ValueError("ChamberResidue: need rms >= 0 and 0 <= near_fraction <= 1")


class ChamberResidueModel:
    """The residual transmission ``T_i`` of every frame of one measurement (see the module text).

    Parameters
    ----------
    residue : ChamberResidue
    shape : (H, W)
        Camera image, pixels.
    pixel_size_um, wavelength_um, medium_index, na_objective : float
        Optics.
    """

    def __init__(self, residue: ChamberResidue, shape, pixel_size_um: float, wavelength_um: float,
                 medium_index: float, na_objective: float):
        self.residue = residue
        H, W = int(shape[0]), int(shape[1])
        self.shape = (H, W)
        self.p = float(pixel_size_um)
        self.k_m = float(medium_index) / float(wavelength_um)
        self.pupil = float(na_objective) / float(wavelength_um)
        rng = np.random.default_rng([int(residue.seed), 23_017])
        # the padded grid (2H, 2W): the chamber around the field, periodic
        self.big = FrameContext((2 * H, 2 * W), self.p, wavelength_um, medium_index, na_objective, (0.0, 0.0))
        self.vy = np.fft.fftfreq(2 * H, d=self.p)[:, None]
        self.vx = np.fft.fftfreq(2 * W, d=self.p)[None, :]
        # one coverslip plane per patch (sample, background), a few µm from focus, either side
        self.defocus_um = [float(rng.choice([-1, 1]) * rng.uniform(1.0, 12.0)) for _ in range(2)]
        self.screens = [self._particles(rng) - 1 for _ in range(2)]
        # far speckle: a smooth spectral envelope of random 1/e radius (cycles/µm) inside the pupil, (H, W)
        width = float(rng.uniform(0.15, 0.6)) * self.pupil
        fy, fx = np.fft.fftfreq(H, d=self.p)[:, None], np.fft.fftfreq(W, d=self.p)[None, :]
        self.speckle_envelope = np.exp(-(fx ** 2 + fy ** 2) / width ** 2) * (fx ** 2 + fy ** 2 <= self.pupil ** 2)
        self.near_scale, self.far_scale = 0.0, 0.0
        if residue.rms > 0:  # calibrate at normal incidence: RMS of the two patches' deviations together
            power = sum(float(np.mean(np.abs(self._propagated(s, d, (0.0, 0.0))) ** 2))
                        for s, d in zip(self.screens, self.defocus_um))
            self.near_scale = residue.rms * np.sqrt(residue.near_fraction / max(power, 1e-24))
            self.far_scale = residue.rms * np.sqrt(1 - residue.near_fraction)

    def _particles(self, rng: np.random.Generator) -> np.ndarray:
        """In-focus transmission (2H, 2W) of one patch's residue: weak dust, debris and droplets."""
        H2, W2 = self.big.shape
        area = H2 * W2 * self.p ** 2
        n = int(rng.poisson(rng.uniform(0.02, 0.12) * area))  # particles per µm²
        t = np.ones(self.big.shape, np.complex128)
        for _ in range(n):
            c = (rng.uniform(-0.5, 0.5) * W2 * self.p, rng.uniform(-0.5, 0.5) * H2 * self.p)
            kind = str(rng.choice(["dust", "debris", "bubble"]))
            t *= _particle_screen(Particle(c, float(np.exp(rng.uniform(np.log(0.2), np.log(1.2)))), kind,
                                           float(rng.uniform(0.0, 0.6)), float(rng.uniform(-1.0, 1.0))),
                                  self.big, rng)
        return t

    def _propagated(self, deviation: np.ndarray, defocus_um: float, f: tuple[float, float]) -> np.ndarray:
        """``deviation`` (2H, 2W) seen at focus by illumination ``f``: (H, W) complex deviation."""
        H, W = self.shape
        fx, fy = f
        tilt = np.exp(2j * np.pi * (fx * self.big.x + fy * self.big.y))
        # the spectrum of deviation × tilt is on absolute frequencies: the pupil is centred on 0, and the
        # incident wave's own phase exp(2πi f_z d) is taken out (the field is divided by the incident wave)
        k2 = self.k_m ** 2 - self.vx ** 2 - self.vy ** 2
        fz = np.sqrt(max(self.k_m ** 2 - fx ** 2 - fy ** 2, 0.0))
        kernel = (self.vx ** 2 + self.vy ** 2 <= self.pupil ** 2) * np.exp(
            2j * np.pi * (np.sqrt(np.clip(k2, 0, None)) - fz) * defocus_um)
        out = np.fft.ifft2(np.fft.fft2(deviation * tilt) * kernel)
        return (out / tilt)[H // 2:H // 2 + H, W // 2:W // 2 + W]

    def _near(self, f: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """The two patches' transmissions ``(1 + d_s, 1 + d_b)``, (H, W) complex each."""
        ts, tb = (1 + self.near_scale * self._propagated(s, d, f) for s, d in zip(self.screens, self.defocus_um))
        return ts, tb

    def _far(self, frame: int) -> np.ndarray:
        """Pupil-limited complex speckle of RMS 1, a new draw per frame."""
        H, W = self.shape
        rng = np.random.default_rng([int(self.residue.seed), 23_018, int(frame)])
        n = np.fft.ifft2(np.fft.fft2(rng.normal(size=(H, W)) + 1j * rng.normal(size=(H, W))) * self.speckle_envelope)
        return n / (np.sqrt(np.mean(np.abs(n) ** 2)) + 1e-12)

    def transmissions(self, illumination_per_um: tuple[float, float], frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The chamber's transmissions (H, W) complex in the sample and in the background exposure.

        The retrieved field carries their ratio; the far speckle goes to the sample exposure.
        """
        ones = np.ones(self.shape, np.complex128)
        if self.residue.rms <= 0:
            return ones, ones
        f = (float(illumination_per_um[0]), float(illumination_per_um[1]))
        ts, tb = self._near(f) if self.near_scale > 0 else (ones, ones)
        if self.far_scale > 0:
            ts = ts * np.exp(self.far_scale * self._far(frame))  # weak: log-normal in amplitude, phase
        return ts, tb

    def transmission(self, illumination_per_um: tuple[float, float], frame: int) -> np.ndarray:
        """Residual transmission ``T = T_sample / T_background`` (H, W) complex of one frame."""
        ts, tb = self.transmissions(illumination_per_um, frame)
        return ts / np.where(np.abs(tb) > 0.05, tb, 0.05)
