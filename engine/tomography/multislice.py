"""Multiple-scattering reconstruction: split-step non-paraxial (SSNP) multi-slice inversion.

Conventions (``docs/formats.md``)
---------------------------------
* Lengths in µm, spatial frequencies in cycles/µm, volumes (z, y, x); voxel ``j`` of an axis of
  ``n`` voxels sits at ``(j − n//2)·d``: the focal plane z = 0 of the fields is slice ``Z//2``,
  exactly where :func:`engine.tomography.reconstruct.reconstruct` puts its tomogram
  (``origin_um = (−(Z//2)·dz, −(Y//2)·dy, −(X//2)·dx)``).
* Fields follow ``exp(+i(k·r − ωt))`` (n > n_m gives a positive phase) and are
  ``U_sample/U_background``, refocused to z = 0 and cut by the objective pupil ``|ν| ≤ NA/λ``
  (ν the physical transverse frequency), as :mod:`engine.simulate.mie` and the retrieval give them.
* Illuminations are plane waves ``exp(2πi (f_x x + f_y y + f_z z))``, ``f_z = sqrt((n_m/λ)² − |f|²)``.

Forward model
-------------
The field is carried *in the illumination's frame*: ``ψ = φ / exp(2πi (f·r⊥ + f_z z))``, so an
illumination need not lie on the FFT grid (measured ones don't) and the unscattered light is
``ψ = 1`` everywhere. A plane wave of physical frequency ``f + ν`` is the FFT component ν of ψ.
SSNP (Zhu, Wang, Tian 2022) carries the field and its z-derivative; here, as in the simulator's
scheme, as forward/backward plane-wave amplitudes ``A± = (φ̂ ± ∂_zφ̂/(i k_z))/2`` per FFT
component. Between screens ``A± ·= exp(i(±k_z − k_{z,f}) d)`` (``k_z = 2π sqrt((n_m/λ)² − |f+ν|²)``,
``k_{z,f} = 2π f_z``, evanescent components never excited); at each screen (the centre of a voxel
slice, or of each of ``substeps`` sub-slices of thickness h) ``∂_zφ += q φ`` gives
``A± ±= FFT(q ψ)/(2 i k_z)``, with the angle-matched ``q(n, k_{z,f}, h)`` of
:func:`engine.simulate.beam_propagation._ssnp_scatter` (the one piece of the simulator that is
truly the same: one step turns the illumination's own plane wave exactly as a uniform slab
would). At the exit the forward part ``A+`` is propagated back through the medium to z = 0 and
cut by the pupil; the backward part is dropped (the reflected light never reaches the
objective). Cost per illumination and screen: 2 FFTs of (Y, X) forward, about 4 more for the
gradient. Everything is plain, out-of-place torch, so :mod:`torch.autograd` gives the gradient and
the same code runs on CUDA.

Why SSNP (measured against exact Mie fields, :func:`engine.simulate.mie.mie_fields`; 64×64
pixels of 0.1 µm, 0.1 µm slices, one screen per slice; phase / amplitude RMS inside the sphere's
disc at illumination NA 0, 0.53, 0.85, 1.0; miepython's fields give the same within 0.01 rad, 0.04 rad for
polystyrene at NA 1.0):

==================  ===============================  ===============================
sphere              SSNP phase (rad)                 tilt-corrected BPM phase (rad)
==================  ===============================  ===============================
silica 1.46, 1.5 µm 0.013, 0.015, 0.019, 0.069       0.036, 0.106, 0.256, 0.546
polystyrene 1.59, 1 0.056, 0.055, 0.140, 0.83        0.145, 0.328, 0.725, 1.54
weak 1.36, 2.5 µm   0.005, 0.007, 0.016, 0.016       0.008, 0.010, 0.020, 0.036
==================  ===============================  ===============================

(SSNP amplitude RMS 0.009–0.044 for silica.) The phase-screen BPM, even with the non-paraxial
angular-spectrum propagator and screens exact for the illumination's own plane wave, makes no
allowance for the obliquity of the scattered waves: 3–10× the error at oblique illumination.
Both cost 2 FFTs per screen; per illumination (64×64×38, one CPU thread) the forward pass takes
10.7 ms (SSNP) vs 6.2 ms (BPM), forward + gradient 20 ms (64×64×48) and 80 ms (128×128×64).
The lab frame's limit: steep light through strong objects. Polystyrene (n 1.59, r 1 µm) at
illumination NA 1.0: phase RMS 0.42 rad inside the disc, and on average the SSNP phase *lags*
the exact one by 0.37 rad (−0.08 at NA 0.85, −0.01 at 0.53 and 0; 0.75 rad at NA 1.06). It is
not the discretisation (1–4 screens per slice, 0.05 µm voxels or a 128² field of view change it
by < 0.05 rad) nor the backward wave's boundary condition (< 0.01 rad). It is the marching
direction: the lag grows with the index contrast, not the size (NA 1.0: −0.024 rad for n 1.45,
−0.076 for 1.50, −0.37 for 1.59 at r 1 µm, −0.32 for 1.59 at r 0.7 µm), as the band of waves
that propagate in the sphere but are evanescent in the medium (transverse frequency between
n_m/λ and n/λ) widens. A march along z cannot carry that band: dropped (as here) it is lost;
kept, it grows as ``exp(γ z)`` in the medium (measured: kept up to n 1.5, amplitude errors of
30 to 3·10⁴; decaying both ways, the lag stays; forward part only, it doubles), and so would a
reference index above n_m (not tried: the same band and the same 2×2 transfer, so the same
growth). Light that is steep *relative to the
marching axis* is what matters, so:

**Illumination frame** (``frame="illumination"``): each illumination marches along its own
direction ``e3' = (f, f_z)/(n_m/λ)`` through the volume resampled (trilinear,
``torch.nn.functional.grid_sample``, differentiable) on a rotated grid (axes ``e1'``, ``e2' ∝ ẑ ×
e3'``, voxels (dz, dx, dx), centred on a voxel centre ``r0``), where it is normal incidence. The
exit field ψ' (refocused to the plane through r0, minus the unit incident wave) is taken to the lab
pupil's plane waves by a separable non-uniform DFT at their rotated transverse frequencies
``K'⊥ = (K·e1', K·e2')``, times the change of angular-spectrum density ``K'_z/K_z`` and
``exp(−2πi (K − K_inc)·r0)``; light with ``K'_z ≤ 0`` (scattered backwards relative to the
illumination, > 90°) is not modelled. The rotated grid must hold the sample: the whole lab box
by default (about 4–6× the voxels at illumination NA 1.0 and any azimuth), or the box of the
voxels that differ from the medium (:meth:`MultisliceModel.set_support`) with 1 µm of medium on
each lateral side. Against exact Mie (``tests/engine/test_multislice.py``; mean phase / phase
RMS inside the disc at illumination NA 0, 0.53, 0.85, 1.0, 1.06, engine.simulate.mie):

===================  ====================================  ====================================
polystyrene 1.59, 1  lab frame                             illumination frame
===================  ====================================  ====================================
mean phase (rad)     −0.00, −0.01, −0.08, −0.37, −0.75     −0.01, −0.01, −0.01, −0.02, −0.02
phase RMS (rad)      0.056, 0.055, 0.14, 0.42, 0.84        0.043, 0.085, 0.10, 0.13, 0.22
amplitude RMS        0.049, 0.065, 0.12, 0.21, —           0.040, 0.085, 0.093, 0.10, 0.11
===================  ====================================  ====================================

(miepython: illumination-frame RMS 0.04–0.13 rad, |mean| ≤ 0.011.) Silica: illumination frame
0.015–0.044 rad RMS at every angle; lab frame 0.013–0.033 up to NA 1.0 (better at NA ≤ 0.85:
0.015–0.019 vs 0.03, the resampling), 0.069 at NA 1.06.
Cost: a march through the rotated grid, a trilinear resample and its adjoint, and an
(Y'·X'·M) DFT per illumination (M pupil plane waves). Forward + gradient per illumination of
the ring at NA 1.0, 64×64×32 polystyrene volume, one CPU thread (busy machine): lab frame 14 ms;
illumination frame 80 ms with the support box (rotated grid 48×60×68), 290 ms with the whole box
(90×92×88; trilinear resampling and its adjoint about 20 % of it). A support filling the
volume is its worst case: 64×128×128, ring at illumination NA 0.96, chunk 8: 8.0 GiB peak and
about 10 s per illumination vs 0.9 GiB and 0.2 s in the lab frame
(``tests/benchmarks/bench_multislice_memory.py``): for compact strong samples only. Hence
``MultisliceOptions(frame="auto")``: iterate in the lab frame, then refine in the illumination
frame (15 more iterations) only when the iterate's largest Δn exceeds 0.2 (after the 20 lab
iterations of the bench: silica, true Δn 0.123, peaks at 0.159 and is left alone; polystyrene,
0.253, peaks at 0.375; the lab frame's lag at NA 1.0 is 0.08 rad for Δn 0.16, 0.37 for 0.25).
Not implemented: multi-layer Born (Chen et al.) and the convergent Born series (Lee et al.;
Osnabrugge et al.), which solves the Helmholtz equation without a marching direction but
costs two 3-D FFTs of a padded volume per series term, tens to hundreds of terms for Δn 0.25,
per illumination and again for the gradient: estimated (not measured) at about 1 s per
illumination for the 64×64×32 polystyrene volume on one CPU thread, over 10× the
illumination-frame SSNP. ``model="bpm"`` is kept for the comparison.

Inverse problem
---------------
Unknown: ``Δn = n − n_m`` (Z, Y, X), float32. Data term per illumination
``½‖P(u(Δn) − d)‖² / L`` with ``P`` the pupil and ``L = (k0·dz)²·Z`` (the squared norm of the
linearised model for a z-uniform perturbation at normal incidence; oblique light, up to
``1/cos²θ`` more, and multiple scattering can make the curvature larger: hence the guard below),
so that a step of 1 is the natural one and the TV weight is in units of Δn, like
:mod:`engine.tomography.tv`'s (there in units of x ≈ 2Δn/n_m). Each
iteration draws a random subset of the illuminations (``batch``; without replacement within an
epoch), accumulates the autograd gradient in chunks of ``chunk`` illuminations (bounded memory),
takes a FISTA step and the proximal step of ``τ·TV + bounds`` (bounds ``lower ≤ Δn ≤ upper``,
``lower = 0`` with non-negativity), computed by :func:`engine.tomography.tv.tv_denoise` (FGP,
warm-started). Two safeguards (see :func:`_iterate`): the momentum restarts when it points
against the last step, and a subset misfit above twice the lowest one seen halves the step and
goes back to that point (the simulated cells of the benchmark diverged without them).
Start: the Rytov tomogram with non-negativity. The relative data misfit
``‖P(u − d)‖² / ‖P(d − 1)‖²`` (0: the volume explains the fields; 1: no better than an empty
volume) of each iteration's subset is recorded.

With ``frame="auto"`` the refinement in the illumination frame is a second run of the same
iteration (fresh step and guard, the same random stream of subsets), started from the lab-frame
result, but by default without momentum (``refine_momentum=False``: proximal gradient); each of
its iterations first re-measures the support box (voxels above 10 % of the largest Δn, plus 3
voxels). Measured on the polystyrene bead (``tests/benchmarks/bench_multislice.py``; mean-RI
error after 15 / 30 / 45 refinement iterations, engine.simulate.mie; miepython held out):

=======================================  ===========================  ===========================
refinement                               engine.simulate.mie          miepython (held out)
=======================================  ===========================  ===========================
FISTA (``refine_momentum=True``)         +0.0020 +0.0052 +0.0060      +0.0030 +0.0052 +0.0067
proximal gradient (default)              −0.0010 +0.0009 +0.0021      +0.0005 +0.0021 +0.0030
=======================================  ===========================  ===========================

This is not a convergence fix but a slower approach, presumably to the same limit: FISTA settles
at about +0.006 with our Mie fields (z/x 0.86–0.95, misfit 0.013); the plain gradient is still
climbing after 90 iterations (+0.0040, z/x 1.05, misfit 0.0135), 3–4× more slowly, so its result
stays within the issue's 0.005 over 15–45 iterations (our Mie: up to at least 90; started from
the true sphere: −0.0021, −0.0018, −0.0012, z/x 0.95, where FISTA drifts to +0.0034). The
refinement's first step takes the mean from +0.0074 to −0.010 with or without momentum (a fresh
FISTA step has none; with step 0.5 the mean still dips to −0.008 by the 4th iteration): not an
overshoot of the step but the illumination-frame misfit of the lab result (0.126) pulling the
index down before it climbs. Tried and no better (own Mie, 45 iterations, with momentum): step
0.5 (+0.0002, +0.0034, +0.0053), TV weight 3e-4 / 1e-3 (+0.0028 / +0.0041 after 15, +0.0057 /
+0.0055 after 44, alternating by up to ±0.003 between iterations), updating only the support
(voxels above 10 % of the largest Δn, dilated by 3; +0.0012, +0.0052, +0.0059; without momentum
−0.0021, +0.0007, +0.0017). About +0.002 of the limit is the inversion (fields made by the
illumination-frame model: +0.0021 from the lab result) and +0.0035 the model's remaining error.
A discrepancy stop would need the model error's misfit level (the true sphere's: 0.020 with our
Mie fields, 0.013 with miepython's), which real data do not give.

References
----------
U. S. Kamilov, I. N. Papadopoulos, M. H. Shoreh, A. Goy, C. Vonesch, M. Unser and D. Psaltis,
"Learning approach to optical tomography", Optica 2, 517 (2015) (BPM inversion by gradient).
M. Chen, D. Ren, H.-Y. Liu, S. Chowdhury and L. Waller, "Multi-layer Born multiple-scattering
model for 3D phase microscopy", Optica 7, 394 (2020).
M. Lee, H. Hugonnet and Y. Park, "Inverse problem solver for multiple light scattering using
modified Born series", Optica 9, 177 (2022) (FISTA + TV + bounds, initialised from Rytov).
J. Zhu, H. Wang and L. Tian, "High-fidelity intensity diffraction tomography with a
non-paraxial multiple-scattering model", Opt. Express 30, 32808 (2022) (SSNP).
A. Beck and M. Teboulle, IEEE Trans. Image Process. 18, 2419 (2009) (FISTA, FGP).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..backend import resolve_device
from ..holography.unwrap import unwrap_phase
from ..metadata import MeasurementMetadata
from ..progress import Cancelled, CancelToken, check_cancel, report, sub_progress
from ..simulate.beam_propagation import _ssnp_scatter
from .tv import tv_denoise

__all__ = ["MultisliceModel", "MultisliceOptions", "reconstruct_multislice", "data_misfit",
           "DEFAULT_MS_TV_WEIGHT"]

DEFAULT_MS_TV_WEIGHT = 1e-4


class MultisliceModel:
    """Differentiable SSNP (or tilt-corrected BPM) forward model on a (Z, Y, X) grid.

    Parameters
    ----------
    shape : (Z, Y, X)
    voxel_size_um : (dz, dy, dx)
    wavelength_um, medium_index, na
        Vacuum wavelength (µm), n_m, objective NA (None: every propagating wave).
    model : {"ssnp", "bpm"}
    substeps : int, optional
        Screens per voxel slice (default: enough that ``k h ≤ 2``, needed by the SSNP step).
    frame : {"lab", "illumination"}
        March along z (``"lab"``) or, per illumination, along the illumination's own direction
        through the volume resampled (trilinear) on a rotated grid (``"illumination"``, SSNP only;
        see the module notes: the steep-light limit of SSNP).
    device
    """

    def __init__(self, shape, voxel_size_um, wavelength_um: float, medium_index: float,
                 na: Optional[float], *, model: str = "ssnp", substeps: Optional[int] = None,
                 frame: str = "lab", device: str | torch.device = "auto") -> None:
        if model not in ("ssnp", "bpm"):
            raise ValueError(f"unknown forward model {model!r}: 'ssnp' or 'bpm'")
        if frame not in ("lab", "illumination") or (frame == "illumination" and model != "ssnp"):
            raise ValueError(f"unknown frame {frame!r} for model {model!r}: 'lab', or 'illumination' with SSNP")
        self.frame = frame
        self.support_um: Optional[tuple] = None  # illumination frame: ((x, y, z) low, high) µm, see set_support
        self.shape = tuple(int(s) for s in shape)
        self.voxel = tuple(float(v) for v in voxel_size_um)
        self.lam, self.nm, self.na, self.model = float(wavelength_um), float(medium_index), na, model
        self.device = resolve_device(device)
        Z, Y, X = self.shape
        dz, dy, dx = self.voxel
        self.k_cyc = self.nm / self.lam
        k = 2 * math.pi * self.k_cyc
        self.substeps = int(substeps) if substeps else max(1, math.ceil(k * dz / 2.0 - 1e-9))
        self.h = dz / self.substeps
        # screen positions (µm): sub-slice centres; the field enters at the first slice's face
        z0 = -(Z // 2) * dz
        self.z_entrance = z0 - dz / 2
        self.z_last = z0 + (Z - 1) * dz + dz / 2 - self.h / 2
        self.vy = torch.fft.fftfreq(Y, d=dy, dtype=torch.float64, device=self.device)[:, None]
        self.vx = torch.fft.fftfreq(X, d=dx, dtype=torch.float64, device=self.device)[None, :]
        self.k0sq = (2 * math.pi / self.lam) ** 2

    def set_support(self, dn: Optional[torch.Tensor], threshold: float = 0.0, margin: int = 0) -> None:
        """Illumination frame: march only through the box of the voxels where ``|Δn| > threshold``.

        ``dn`` (Z, Y, X); ``None`` (or no such voxel): the whole volume; ``margin`` voxels are added
        on every side. Voxels outside the box count as medium in the forward model (and get no
        gradient) until the next call.
        """
        self.support_um = None
        if dn is None:
            return
        idx = torch.nonzero(dn.detach().abs() > threshold)
        if len(idx) == 0:
            return
        n = torch.tensor(self.shape, device=idx.device)
        d = torch.tensor(self.voxel, dtype=torch.float64, device=idx.device)
        lo = (idx.amin(0) - n // 2 - 0.5 - margin) * d
        hi = (idx.amax(0) - n // 2 + 0.5 + margin) * d
        self.support_um = (lo.flip(0).cpu().numpy(), hi.flip(0).cpu().numpy())  # (z, y, x) -> (x, y, z)

    # ------------------------------------------------------------------ per-chunk operators
    def _operators(self, f: torch.Tensor) -> dict:
        """Propagators, gain and pupil (B, Y, X) for illuminations ``f`` (B, 2) float64."""
        if self.frame == "illumination":
            return _rotated_operators(self, f)
        return self._lab_operators(f)

    def _lab_operators(self, f: torch.Tensor) -> dict:
        px = self.vx + f[:, 0, None, None]
        py = self.vy + f[:, 1, None, None]
        arg = self.k_cyc ** 2 - px * px - py * py
        prop = arg > 0
        kz = 2 * math.pi * torch.sqrt(arg.clamp(min=0.0))
        kzf = 2 * math.pi * torch.sqrt(self.k_cyc ** 2 - (f * f).sum(1))  # (B,)
        kzf3 = kzf[:, None, None]
        zero = torch.zeros((), dtype=torch.complex128, device=self.device)

        def fwd(d):  # A+ over +d (evanescent: 0, never excited)
            return torch.where(prop, torch.polar(torch.ones_like(kz), (kz - kzf3) * d), zero).to(torch.complex64)

        def bwd(d):  # A− over +d
            return torch.where(prop, torch.polar(torch.ones_like(kz), (-kz - kzf3) * d), zero).to(torch.complex64)

        h = self.h
        ops = {"p_half": fwd(h / 2), "p_step": fwd(h), "exit": fwd(-self.z_last), "kzf": kzf}
        if self.na is not None:
            pupil = prop & (px * px + py * py <= (self.na / self.lam) ** 2)
        else:
            pupil = prop
        ops["pupil"] = pupil.to(torch.complex64)
        if self.model == "ssnp":
            ops["m_half"], ops["m_step"] = bwd(h / 2), bwd(h)
            kz_safe = torch.where(prop, kz, torch.ones_like(kz))
            ops["gain"] = torch.where(prop, 1.0 / (2j * kz_safe), zero).to(torch.complex64)
        else:
            ops["f2"] = (f * f).sum(1)
        return ops

    def _screen(self, dn_slice: torch.Tensor, ops: dict) -> torch.Tensor:
        """(B, Y, X) screen of one slice: SSNP ``q`` or the BPM phase factor."""
        n = dn_slice + self.nm
        if self.model == "ssnp":
            return _ssnp_scatter(self.k0sq * (n * n - self.nm ** 2), ops["kzf"].to(n.dtype), self.h)
        kw = 1.0 / self.lam
        s = torch.sqrt(((n * kw) ** 2)[None] - ops["f2"].float()[:, None, None])
        fz = (ops["kzf"] / (2 * math.pi)).float()[:, None, None]
        return torch.polar(torch.ones_like(s), 2 * math.pi * self.h * (s - fz))

    def fields(self, dn: torch.Tensor, illuminations_per_um: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Refocused, pupil-cut ``U/U_incident`` at z = 0, (B, Y, X) complex64, differentiable in ``dn``."""
        f = torch.as_tensor(np.asarray(illuminations_per_um, dtype=np.float64), device=self.device).reshape(-1, 2)
        ops = self._operators(f)
        return self._march(dn, ops)

    def _march(self, dn: torch.Tensor, ops: dict) -> torch.Tensor:
        if self.frame == "illumination":
            return _rotated_fields(self, dn, ops)
        return self._march_lab(dn, ops)

    def _march_lab(self, dn: torch.Tensor, ops: dict) -> torch.Tensor:
        Z, Y, X = self.shape
        B = ops["pupil"].shape[0]
        ap = torch.zeros((B, Y, X), dtype=torch.complex64, device=self.device)
        ap[:, 0, 0] = Y * X  # fft2 of ψ = 1
        am = torch.zeros_like(ap) if self.model == "ssnp" else None
        first = True
        for j in range(Z):
            q = self._screen(dn[j], ops)
            for _ in range(self.substeps):
                if self.model == "ssnp":
                    pp, pm = (ops["p_half"], ops["m_half"]) if first else (ops["p_step"], ops["m_step"])
                    ap, am = ap * pp, am * pm
                    psi = torch.fft.ifft2(ap + am)
                    s = torch.fft.fft2(q * psi) * ops["gain"]
                    ap, am = ap + s, am - s
                else:
                    pp = ops["p_half"] if first else ops["p_step"]
                    ap = torch.fft.fft2(torch.fft.ifft2(ap * pp) * q)
                first = False
        return torch.fft.ifft2(ap * (ops["exit"] * ops["pupil"]))


# ------------------------------------------------------------------ illumination frame
def _frame_axes(model: MultisliceModel, f: torch.Tensor) -> torch.Tensor:
    """Rows ``e1', e2', e3'`` (B, 3, 3), in (x, y, z), of the frame whose z' is the illumination's direction.

    ``e2'`` is normal to the plane of incidence (ẑ × d), ``e1' = e2' × e3'``; normal incidence:
    the lab axes.
    """
    k = model.k_cyc
    fz = torch.sqrt(k * k - (f * f).sum(1))
    d = torch.stack([f[:, 0], f[:, 1], fz], 1) / k
    s = torch.hypot(f[:, 0], f[:, 1])
    tilted = s > 1e-9 * k
    safe = torch.where(tilted, s, torch.ones_like(s))
    zero = torch.zeros_like(s)
    e2 = torch.where(tilted[:, None], torch.stack([-f[:, 1] / safe, f[:, 0] / safe, zero], 1),
                     torch.stack([zero, torch.ones_like(s), zero], 1))
    e1 = torch.linalg.cross(e2, d, dim=1)
    return torch.stack([e1, e2, d], 1)


def _rotated_operators(model: MultisliceModel, f: torch.Tensor) -> dict:
    """Rotated grids, the lab-frame SSNP of normal incidence on them, and the exit mapping.

    The rotated grid (Z', Y', X'), voxels (dz, dx, dx), centred on the centre ``r0`` of the box
    that may hold the sample (``model.support_um``, default the whole lab box; with a support
    box, 1 µm of medium is added on every lateral side against the wrap-around of the periodic
    march), holds every corner of that box for every illumination of the chunk; ``theta``
    (B, 3, 4) maps its normalised coordinates to the lab volume's (``affine_grid``). The exit
    spectrum is taken at the lab pupil's plane waves (see :func:`_exit_mapping`).
    """
    Z, Y, X = model.shape
    dz, dy, dx = model.voxel
    dev, f64 = model.device, torch.float64
    axes = _frame_axes(model, f)  # (B, 3, 3): rows e1', e2', e3' in (x, y, z)
    if model.support_um is None:
        lo = torch.tensor([-(X // 2 + 0.5) * dx, -(Y // 2 + 0.5) * dy, -(Z // 2 + 0.5) * dz], dtype=f64, device=dev)
        hi = -lo - torch.tensor([(X + 1) % 2 * dx, (Y + 1) % 2 * dy, (Z + 1) % 2 * dz], dtype=f64, device=dev)
        margin = (0.0, 0.0, 0.0)
    else:
        lo, hi = (torch.as_tensor(v, dtype=f64, device=dev) for v in model.support_um)
        margin = (1.0, 1.0, 0.0)
    step = torch.tensor([dx, dy, dz], dtype=f64, device=dev)
    r0 = torch.round((lo + hi) / 2 / step) * step  # on a voxel centre: normal light samples the voxels
    half = torch.maximum(hi - r0, r0 - lo)
    signs = torch.tensor([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=f64, device=dev)
    ext = (signs[None, :, None, :] * half * axes[:, None]).sum(-1).abs().amax((0, 1))  # (3,) x', y', z'
    d_rot = (dx, dx, dz)
    n_rot = [2 * int(math.ceil((float(e) + m) / d - 0.5)) + 2 for e, m, d in zip(ext, margin, d_rot)]
    sub = MultisliceModel((n_rot[2], n_rot[1], n_rot[0]), (dz, dx, dx), model.lam, model.nm, None,
                          substeps=model.substeps, device=dev)
    ops = sub._lab_operators(torch.zeros((1, 2), dtype=f64, device=dev))
    # rotated position c'_a = alpha_a u'_a + beta_a; lab normalised u_b = gamma_b r_b + eta_b
    alpha = torch.tensor([(n - 1) * d / 2 for n, d in zip(n_rot, d_rot)], dtype=f64, device=dev)
    beta = torch.tensor([((n - 1) / 2 - n // 2) * d for n, d in zip(n_rot, d_rot)], dtype=f64, device=dev)
    size = torch.tensor([X, Y, Z], dtype=f64, device=dev)
    gamma = 2 / (torch.tensor([dx, dy, dz], dtype=f64, device=dev) * (size - 1).clamp(min=1))
    eta = 2 * (size // 2) / (size - 1).clamp(min=1) - 1
    et = axes.transpose(1, 2)  # (B, b, a) = e_a[b]
    lin = gamma[None, :, None] * et * alpha[None, None, :]
    off = gamma[None] * (r0[None] + (et * beta[None, None, :]).sum(-1)) + eta[None]
    ops["theta"] = torch.cat([lin, off[..., None]], -1).to(torch.float32)
    ops["rot_shape"] = (len(f), 1, n_rot[2], n_rot[1], n_rot[0])
    lab = model._lab_operators(f)
    ops["pupil"] = lab["pupil"]
    c = [(torch.arange(n, dtype=f64, device=dev) - n // 2) * d for n, d in zip(n_rot, d_rot)]
    ops.update(_exit_mapping(model, f, axes, c, lab["pupil"], r0))
    ops["sub"] = sub
    ops["unit"] = torch.zeros((Y, X), dtype=torch.complex64, device=dev)
    ops["unit"][0, 0] = Y * X  # the unscattered wave
    return ops


def _exit_mapping(model: MultisliceModel, f: torch.Tensor, axes: torch.Tensor, c, pupil, r0) -> dict:
    """The rotated exit field's spectrum at the lab pupil's plane waves.

    For the M lab FFT indices ``idx`` inside the union of the chunk's pupils (physical
    wave vector ``K``, rotated ``K' = (K·e1', K·e2', K·e3')``): ``ex`` (B, X', M), ``ey``
    (B, Y', M) the separable non-uniform DFT at ``K'⊥`` over the rotated grid's positions ``c``;
    ``jac`` (B, M) the change of angular-spectrum density ``(K'_z/K_z)·dx'dy'/(dx dy)`` (0 for
    ``K'_z ≤ 0``: light scattered backwards in the illumination's frame is not modelled) times
    ``exp(−2πi (K − K_inc)·r0)`` (the rotated grid's origin and the incident phase there);
    ``shift`` the lab FFT's origin convention (voxel ``j`` at ``(j − n//2)·d``).
    """
    Y, X = model.shape[1:]
    dz, dy, dx = model.voxel
    idx = torch.nonzero(pupil.abs().sum(0).reshape(-1) > 0).reshape(-1)
    kx = (model.vx.expand(Y, X).reshape(-1)[idx])[None] + f[:, 0, None]  # (B, M) physical
    ky = (model.vy.expand(Y, X).reshape(-1)[idx])[None] + f[:, 1, None]
    kz = torch.sqrt((model.k_cyc ** 2 - kx * kx - ky * ky).clamp(min=0.0))
    kp = [kx * axes[:, a, 0, None] + ky * axes[:, a, 1, None] + kz * axes[:, a, 2, None] for a in range(3)]
    ok = (kp[2] > 0) & (kz > 0)
    jac = torch.where(ok, kp[2] / torch.where(ok, kz, torch.ones_like(kz)), torch.zeros_like(kz)) * (dx * dx / (dx * dy))
    kzf = torch.sqrt(model.k_cyc ** 2 - (f * f).sum(1))[:, None]
    at_r0 = -2 * math.pi * ((kx - f[:, 0, None]) * r0[0] + (ky - f[:, 1, None]) * r0[1] + (kz - kzf) * r0[2])
    jac = torch.polar(jac, at_r0)
    ex = torch.polar(torch.ones_like(c[0][None, :, None] * kp[0][:, None]), -2 * math.pi * c[0][None, :, None]
                     * kp[0][:, None])
    ey = torch.polar(torch.ones_like(c[1][None, :, None] * kp[1][:, None]), -2 * math.pi * c[1][None, :, None]
                     * kp[1][:, None])
    nu = [model.vx.expand(Y, X).reshape(-1)[idx], model.vy.expand(Y, X).reshape(-1)[idx]]
    shift = torch.polar(torch.ones_like(nu[0]), -2 * math.pi * (nu[0] * (X // 2) * dx + nu[1] * (Y // 2) * dy))
    return {"ex": ex.to(torch.complex64), "ey": ey.to(torch.complex64), "jac": jac.to(torch.complex64),
            "idx": idx, "shift": shift.to(torch.complex64)}


def _rotated_fields(model: MultisliceModel, dn: torch.Tensor, ops: dict) -> torch.Tensor:
    """Lab-frame fields (B, Y, X) from SSNP marches along each illumination (see :func:`_rotated_operators`)."""
    Z, Y, X = model.shape
    B = ops["theta"].shape[0]
    grid = torch.nn.functional.affine_grid(ops["theta"], list(ops["rot_shape"]), align_corners=True)
    vol = torch.nn.functional.grid_sample(dn[None, None].expand(B, 1, Z, Y, X), grid, mode="bilinear",
                                          padding_mode="zeros", align_corners=True)[:, 0]
    sub = ops["sub"]
    ap = _march_normal(sub, vol, ops)  # (B, Y', X') spectrum of ψ' at z' = 0
    scat = torch.fft.ifft2(ap) - 1.0
    spec = (torch.bmm(scat, ops["ex"]) * ops["ey"]).sum(1) * ops["jac"] * ops["shift"]  # (B, M)
    full = torch.zeros((B, Y * X), dtype=torch.complex64, device=model.device)
    full = full.index_copy(1, ops["idx"], spec).reshape(B, Y, X) + ops["unit"]
    return torch.fft.ifft2(full * ops["pupil"])


def _march_normal(sub: MultisliceModel, vol: torch.Tensor, ops: dict) -> torch.Tensor:
    """SSNP march of normal incidence through per-illumination volumes ``vol`` (B, Z', Y', X');
    returns the forward spectrum propagated back to z' = 0 (B, Y', X')."""
    B, Zr, Yr, Xr = vol.shape
    ap = torch.zeros((B, Yr, Xr), dtype=torch.complex64, device=vol.device)
    ap[:, 0, 0] = Yr * Xr
    am = torch.zeros_like(ap)
    first = True
    kzf = ops["kzf"].to(vol.dtype)
    for j in range(Zr):
        n = vol[:, j] + sub.nm
        q = _ssnp_scatter(sub.k0sq * (n * n - sub.nm ** 2), kzf, sub.h)[0]
        for _ in range(sub.substeps):
            pp, pm = (ops["p_half"], ops["m_half"]) if first else (ops["p_step"], ops["m_step"])
            ap, am = ap * pp, am * pm
            psi = torch.fft.ifft2(ap + am)
            s = torch.fft.fft2(q * psi) * ops["gain"]
            ap, am = ap + s, am - s
            first = False
    return ap * ops["exit"]


def _pupil_filter(d: torch.Tensor, pupil: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.fft.fft2(d) * pupil)


def data_misfit(model: MultisliceModel, dn: torch.Tensor | np.ndarray, fields, illuminations_per_um,
                chunk: int = 8) -> float:
    """Relative misfit ``Σ‖P(u(Δn) − d)‖² / Σ‖P(d − 1)‖²`` of a volume ``Δn = n − n_m`` over all fields."""
    dn_t = torch.as_tensor(np.asarray(dn, np.float32) if not isinstance(dn, torch.Tensor) else dn,
                           device=model.device, dtype=torch.float32)
    ill = np.asarray(illuminations_per_um, dtype=np.float64).reshape(-1, 2)
    num = den = 0.0
    with torch.no_grad():
        for b0 in range(0, len(ill), chunk):
            f = torch.as_tensor(ill[b0:b0 + chunk], device=model.device)
            ops = model._operators(f)
            d = _pupil_filter(torch.as_tensor(np.asarray(fields[b0:b0 + chunk]), device=model.device)
                              .to(torch.complex64), ops["pupil"])
            u = model._march(dn_t, ops)
            num += float((u - d).abs().square().sum())
            den += float((d - 1).abs().square().sum())
    return num / max(den, 1e-30)


def _unwrap_consistent(unwrapped_phase, illumination_per_um: np.ndarray, metadata: MeasurementMetadata,
                       tolerance: float = 0.8) -> np.ndarray:
    """Fields whose unwrapped phase is trustworthy enough for the Rytov start, (N,) bool.

    Along straight rays the integrated phase ``cos θ · Σ φ`` equals ``k0 ∫ Δn dV / (dx dy)`` for
    every illumination. Strong samples seen at steep angles have phase vortices where unwrapping
    loses 2π over a patch, which lowers that integral; such fields (below ``tolerance`` times the
    largest) would corrupt the Rytov start, so the start leaves them out (the iterations use every
    field: the multislice data term needs no unwrapping).
    """
    ph = np.asarray(unwrapped_phase, dtype=np.float64)
    f = np.asarray(illumination_per_um, np.float64).reshape(-1, 2)
    k_cyc = metadata.medium_index / metadata.wavelength_um
    cos_t = np.sqrt(np.clip(1.0 - (f ** 2).sum(1) / k_cyc ** 2, 0.0, 1.0))
    m = cos_t * ph.reshape(ph.shape[0], -1).sum(1)
    if not np.isfinite(m).all() or m.max() <= 0:
        return np.ones(len(m), bool)
    return m >= tolerance * m.max()


@dataclass
class MultisliceOptions:
    """Settings of :func:`reconstruct_multislice` (defaults: tuned on the issue #21 spheres).

    Attributes
    ----------
    iterations : int
        Outer iterations (each uses ``batch`` illuminations).
    batch : int
        Illuminations per iteration (stochastic subset; all of them if larger than N).
    chunk : int
        Illuminations per autograd pass (bounds memory: about ``chunk·Z·substeps·Y·X·48`` bytes).
    step : float
        Gradient step in units of ``1/L`` (see the module notes).
    tv_weight : float
        TV weight τ in units of Δn (0: no TV).
    tv_iterations : int
        FGP iterations of each proximal step (warm-started).
    upper : float, optional
        Upper bound on Δn.
    model : {"ssnp", "bpm"}
    substeps : int, optional
    frame : {"lab", "auto", "illumination"}
        SSNP marching direction (:class:`MultisliceModel`). ``"lab"`` (default): along z.
        ``"auto"``: the ``iterations`` in the lab frame, then, if the iterate's largest Δn
        (of its 3×3×3 running mean) exceeds ``frame_threshold``, ``refine_iterations`` more in
        the illumination frame (the lab frame's error grows with the index contrast; see the
        module notes): the issue #21 polystyrene bead needs it. ``"illumination"``: every
        iteration there. Not yet the default: the refinement adds iterations that the
        pipeline's record and cost estimate do not expect, and the criterion is not robust
        early on (the pipeline tests' tiny silica bead, simulated holograms, 15 fields: after
        3 iterations its running-mean maximum is 0.21, raw 0.26: it would refine).
    frame_threshold : float
        Largest Δn above which ``"auto"`` refines in the illumination frame.
    refine_iterations : int
        Illumination-frame iterations of ``"auto"``.
    refine_momentum : bool
        FISTA momentum in the refinement of ``"auto"`` too (default False: plain proximal
        gradient there; with momentum the issue #21 polystyrene bead's mean index drifts from
        +0.002 after 15 refinement iterations to +0.006 after 45, without it −0.001 / +0.002;
        see the module notes).
    support_threshold : float
        Illumination frame: the marches cover the box of the voxels where Δn exceeds this
        fraction of the largest Δn (plus 3 voxels), re-measured every iteration.
    momentum : bool
        FISTA momentum.
    restart : bool
        Restart the momentum when it points against the last step (gradient restart).
    guard : float
        When a subset's misfit exceeds ``guard`` times the lowest seen, halve the step and go on
        from the point of the lowest misfit (0: never).
    seed : int
        Random subsets.
    threads : int, optional
        CPU only: torch intra-op threads during the iterations (default 1), restored afterwards;
        ``None`` leaves torch's setting alone. Each operation touches only a chunk of (Y, X)
        planes, so more threads mostly synchronise: on the shared 2-core machine (64×64×48,
        8 illuminations, forward + gradient) 0.5–0.8 s with 1 thread, 6–13 s with 2 while the
        machine was busy. ``torch.set_num_threads`` acts on the calling thread with torch's
        OpenMP backend (the one of the published wheels): run from a GUI's worker thread it
        leaves the GUI's own threads as they are (tested); with a backend where it is global,
        pass ``None`` if other torch work shares the process.
    """

    iterations: int = 20
    batch: int = 16
    chunk: int = 8
    step: float = 1.0
    tv_weight: float = DEFAULT_MS_TV_WEIGHT
    tv_iterations: int = 10
    upper: Optional[float] = None
    model: str = "ssnp"
    substeps: Optional[int] = None
    frame: str = "lab"
    frame_threshold: float = 0.2
    refine_iterations: int = 15
    refine_momentum: bool = False
    support_threshold: float = 0.1
    momentum: bool = True
    restart: bool = True
    guard: float = 2.0
    seed: int = 0
    threads: Optional[int] = 1


def reconstruct_multislice(
    fields: np.ndarray,
    illumination_per_um: np.ndarray,
    metadata: MeasurementMetadata,
    *,
    shape_z: Optional[int] = None,
    dz_um: Optional[float] = None,
    decision: Optional[np.ndarray] = None,
    non_negativity: bool | int = True,
    unwrapped_phase: Optional[np.ndarray] = None,
    unwrap_method: str = "herraez",
    keep_fourier: bool = False,
    options: Optional[MultisliceOptions | dict] = None,
    initial_ri: Optional[np.ndarray] = None,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
    on_iteration: Optional[Callable[[int, float], None]] = None,
):
    """Refractive index by SSNP multi-slice inversion, started from the Rytov tomogram.

    Parameters are those of :func:`engine.tomography.reconstruct.reconstruct` (illumination-scan
    geometry only); ``non_negativity`` (truthy) bounds ``n ≥ n_m`` in every proximal step;
    ``options`` a :class:`MultisliceOptions` or a dict of its fields; ``initial_ri`` replaces the
    Rytov start (same shape as the result); ``on_iteration(iteration, misfit)`` is called after
    every iteration (0-based) with that iteration's relative data misfit (for a live misfit plot).

    Returns
    -------
    Tomogram
        ``ri`` the multislice volume, ``method = "multislice"``, ``misfit`` the relative data
        misfit of each iteration's subset, ``timings_s`` with ``"rytov"`` and ``"iterations"``.
        With ``keep_fourier`` the Rytov spectrum is kept in ``fourier``.

    Raises
    ------
    Cancelled
        With ``partial`` set to a Tomogram of the last iterate (``method`` ends in
        ``"(cancelled)"``) when cancelled during the iterations.
    """
    from .reconstruct import Tomogram, reconstruct

    t0 = time.perf_counter()
    opt = options if isinstance(options, MultisliceOptions) else MultisliceOptions(**(options or {}))
    if metadata.geometry == "sample-rotation":
        raise ValueError("the multislice method needs an illumination scan (sample rotation is not supported)")
    if opt.frame not in ("auto", "lab", "illumination"):
        raise ValueError(f"unknown frame {opt.frame!r}: 'auto', 'lab' or 'illumination'")
    dev = resolve_device(device)
    if isinstance(fields, torch.Tensor):
        fields = fields.detach().cpu().numpy()
    if isinstance(unwrapped_phase, torch.Tensor):
        unwrapped_phase = unwrapped_phase.detach().cpu().numpy()
    n_all = fields.shape[0]
    keep = np.ones(n_all, bool) if decision is None else np.asarray(decision).reshape(n_all).astype(bool)
    if not keep.any():
        raise ValueError("the screening decision excludes every field: nothing to reconstruct")
    ill_all = np.asarray(illumination_per_um, np.float64).reshape(n_all, 2)
    if unwrapped_phase is None:
        report(progress, 0.0, "unwrapping the phase for the Rytov start")
        ph = unwrap_phase(torch.as_tensor(np.asarray(fields)).to(torch.complex64), unwrap_method, device=dev)
        unwrapped_phase = ph.cpu().numpy() if isinstance(ph, torch.Tensor) else np.asarray(ph)
    start_keep = keep & _unwrap_consistent(unwrapped_phase, ill_all, metadata)
    rytov = reconstruct(fields, illumination_per_um, metadata, method="rytov", shape_z=shape_z, dz_um=dz_um,
                        decision=start_keep, non_negativity=non_negativity or 0, unwrapped_phase=unwrapped_phase,
                        unwrap_method=unwrap_method, keep_fourier=keep_fourier, device=dev,
                        progress=sub_progress(progress, 0.0, 0.1, "Rytov start: "), cancel=cancel)
    timings = {"rytov": time.perf_counter() - t0}
    t1 = time.perf_counter()
    nm = float(metadata.medium_index)
    idx = np.flatnonzero(keep)
    ill = np.asarray(illumination_per_um, np.float64).reshape(n_all, 2)[idx]
    data = np.asarray(fields)[idx]
    def make_model(frame: str) -> MultisliceModel:
        return MultisliceModel(rytov.ri.shape, rytov.voxel_size_um, metadata.wavelength_um, nm,
                               metadata.na_objective, model=opt.model, substeps=opt.substeps, frame=frame, device=dev)

    model = make_model("illumination" if opt.frame == "illumination" else "lab")
    Z = rytov.ri.shape[0]
    k0dz = 2 * math.pi / metadata.wavelength_um * rytov.voxel_size_um[0]
    scale = 1.0 / (k0dz ** 2 * Z)
    lower = 0.0 if non_negativity else None
    start = initial_ri if initial_ri is not None else rytov.ri
    x = torch.as_tensor(np.asarray(start, np.float32) - np.float32(nm), device=dev)
    if lower is not None:
        x = x.clamp(min=lower)
    rng = np.random.default_rng(opt.seed)
    misfit: list = []

    def result(vol: torch.Tensor, label: str):
        ri = (vol + nm).to(torch.float32).cpu().numpy()
        tim = dict(timings, iterations=time.perf_counter() - t1, total=time.perf_counter() - t0)
        return Tomogram(ri=ri, voxel_size_um=rytov.voxel_size_um, origin_um=rytov.origin_um,
                        medium_index=nm, method=label, support=rytov.support,
                        support_fraction=rytov.support_fraction, fourier=rytov.fourier,
                        timings_s=tim, misfit=list(misfit))

    with _iteration_threads(opt, dev):
        x = _iterate(model, opt, x, ill, data, scale, lower, misfit, rng, result, progress, cancel,
                     on_iteration)
        if opt.frame == "auto" and opt.model == "ssnp" and _smoothed_max(x) > opt.frame_threshold:
            ropt = dataclasses.replace(opt, momentum=opt.momentum and opt.refine_momentum)
            x = _iterate(make_model("illumination"), ropt, x, ill, data, scale, lower, misfit, rng, result,
                         progress, cancel, on_iteration, stage=(int(opt.iterations), int(opt.refine_iterations)))
    return result(x, "multislice")


def _smoothed_max(x: torch.Tensor) -> float:
    """Largest value of the 3×3×3 running mean of a (Z, Y, X) volume (single-voxel spikes do not count)."""
    return float(torch.nn.functional.avg_pool3d(x[None, None].float(), 3, stride=1).max())


@contextlib.contextmanager
def _iteration_threads(opt: MultisliceOptions, dev: torch.device):
    """``opt.threads`` torch intra-op threads on the CPU for the block, restored afterwards."""
    threads_before = torch.get_num_threads()
    set_threads = dev.type == "cpu" and bool(opt.threads) and int(opt.threads or 0) != threads_before
    if set_threads:
        torch.set_num_threads(int(opt.threads or 1))
    try:
        yield
    finally:
        if set_threads:
            torch.set_num_threads(threads_before)


def _subset_gradient(model, opt, yv, ill, data, pick, scale) -> tuple[float, float]:
    """Accumulate the data-term gradient of the illuminations ``pick`` in ``yv.grad``.

    Returns ``(Σ‖P(u − d)‖², Σ‖P(d − 1)‖²)`` over the subset.
    """
    dev = model.device
    num = den = 0.0
    for c0 in range(0, len(pick), int(opt.chunk)):
        sel = pick[c0:c0 + int(opt.chunk)]
        f = torch.as_tensor(ill[sel], device=dev)
        ops = model._operators(f)
        d = _pupil_filter(torch.as_tensor(data[sel], device=dev).to(torch.complex64), ops["pupil"])
        u = model._march(yv, ops)
        r2 = (u - d).abs().square().sum()
        (0.5 * scale / len(pick) * r2).backward()
        num += float(r2.detach())
        den += float((d - 1).abs().square().sum())
        del u, ops, d, r2
    return num, den


def _iterate(model, opt, x, ill, data, scale, lower, misfit, rng, result, progress, cancel, on_iteration=None,
             stage=None):
    """FISTA on the SSNP data term with the TV + bounds proximal step; returns the last iterate.

    Two safeguards keep the stochastic, non-convex iteration stable (measured on the simulated
    cells of ``tests/benchmarks/bench_multislice.py``: without them the misfit fell from 0.007
    to 0.002 in 6 iterations, then grew to 1–4). Momentum restarts when it points against the
    last step (O'Donoghue and Candès' gradient restart); and when a subset's misfit exceeds
    ``opt.guard`` times the lowest one seen, the step is halved and the iteration goes on from
    the point of that lowest misfit (the step ``1/L`` is exact for a z-uniform perturbation
    at normal incidence; oblique light and multiple scattering can make the curvature larger).
    ``stage = (first, count)``: ``count`` iterations numbered from ``first`` (the refinement of
    ``frame="auto"``), default ``(0, opt.iterations)``; the progress fraction counts
    ``iterations + refine_iterations`` with ``frame="auto"`` (it jumps to the end when no
    refinement follows), messages count ``first + count``.
    """
    first, count = stage if stage is not None else (0, int(opt.iterations))
    total = first + count
    span = int(opt.iterations) + (int(opt.refine_iterations) if opt.frame == "auto" else 0)
    where = " (illumination frame)" if model.frame == "illumination" else ""
    y = x.clone()
    t = 1.0
    dual = None
    order: list = []
    n = len(ill)
    batch = min(int(opt.batch), n)
    step = float(opt.step)
    best, y_best = math.inf, y
    for it in range(first, total):
        try:
            check_cancel(cancel)
        except Cancelled as exc:
            exc.partial = result(x, "multislice (cancelled)")
            raise
        if len(order) < batch:
            order = list(rng.permutation(n)) + order
        pick = np.array([order.pop() for _ in range(batch)])
        yv = y.detach().requires_grad_(True)
        if model.frame == "illumination":
            model.set_support(y, opt.support_threshold * float(y.max().clamp(min=1e-6)), margin=3)
        num, den = _subset_gradient(model, opt, yv, ill, data, pick, scale)
        misfit.append(num / max(den, 1e-30))
        with torch.no_grad():
            if opt.guard and misfit[-1] > opt.guard * best:
                step *= 0.5  # diverging: back to the best point, smaller steps, no momentum
                x = y = y_best
                t = 1.0
            else:
                if misfit[-1] < best:
                    best, y_best = misfit[-1], y
                x, y, t, dual = _fista_step(opt, x, y, yv.grad, step, t, dual, lower)
        if on_iteration is not None:
            on_iteration(it, misfit[-1])
        report(progress, 0.1 + 0.9 * min(1.0, (it + 1) / max(1, span)),
               f"multislice iteration {it + 1}/{total}{where}, data misfit {misfit[-1]:.4f}")
    return x


def _fista_step(opt, x, y, grad, step, t, dual, lower):
    """Gradient step from ``y``, proximal TV + bounds, momentum with gradient restart."""
    z = y - step * grad
    if opt.tv_weight > 0:
        x_new, dual = tv_denoise(z, step * opt.tv_weight, iterations=opt.tv_iterations, lower=lower, dual=dual)
    else:
        x_new = z.clamp(min=lower) if lower is not None else z
    if opt.upper is not None:
        x_new = x_new.clamp(max=float(opt.upper))
    if not opt.momentum:
        return x_new, x_new, 1.0, dual
    if opt.restart and float(((y - x_new) * (x_new - x)).sum()) > 0:
        return x_new, x_new, 1.0, dual
    tn = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
    return x_new, x_new + ((t - 1.0) / tn) * (x_new - x), tn, dual
