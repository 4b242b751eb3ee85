"""Held-out nematic droplets from an independent vectorial simulator: dtmm (test/benchmark only).

dtmm (Diffractive Transfer Matrix Method, A. Petelin, MIT licence, ``pip install dtmm``) propagates
the 4-component field (E_x, H_y, E_y, H_x) through layered anisotropic media with the 2×2 (extended
Jones) or 4×4 (Berreman) transfer matrices of each layer plus a diffraction step. It shares no
code with ``engine/simulate/beam_propagation.py`` (the project's Jones multi-slice / SSNP), so its
droplets are fair held-out data for the birefringence routes (issue #20).

Conventions (the project's, ``docs/formats.md``)
------------------------------------------------
* µm; volumes (z, y, x), voxel ``j`` of ``n`` at ``(j − n//2)·d``; directors in (z, y, x)
  components. dtmm's own arrays are (layer, y, x) with director/angle vectors in (x, y, z) order
  and lengths in nm / pixels; the conversion is done here.
* Fields ``exp(+i(k·r − ωt))`` (checked: a uniaxial slab with n > n_m gives a positive phase in
  dtmm, see ``tests/engine/test_birefringence_dtmm.py``).
* Illuminations are transverse frequencies ``(f_x, f_y)`` cycles/µm in the medium; dtmm's
  ``beta = λ·|f|`` (``n_m sin θ``) and ``phi = atan2(f_y, f_x)``. Pass grid-snapped frequencies
  (``engine.simulate.beam_propagation.snap_illuminations``): dtmm builds eigenmodes of the grid.
* Output: ``J[n, out, in]`` (N, 2, 2, H, W) complex64, the Jones matrix of fields for transverse
  input fields (1, 0) and (0, 1), divided by the sample-free field of the same input (so a
  sample-free region gives the identity), refocused to z = 0 (the volume centre) and cut by the
  objective pupil ``|ν| ≤ NA/λ`` — the same quantity as ``propagate_vectorial`` returns.

dtmm defines its input polarisations in its own frame; the sample-free run gives, per
illumination, the 2×2 matrix B of transverse fields of its two input states, and ``J = S·B⁻¹``
re-expresses the sample run S for the inputs (1, 0) and (0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

# dtmm 0.6.1 still calls NumPy aliases removed in NumPy 2.0: restore them (test-only shim)
for _old, _new in (("alltrue", "all"), ("sometrue", "any"), ("product", "prod"), ("cumproduct", "cumprod")):
    if not hasattr(np, _old):
        setattr(np, _old, getattr(np, _new))

try:  # optional test/benchmark dependency
    import dtmm

    dtmm.conf.set_verbose(0)
    HAVE_DTMM = True
except ImportError:  # pragma: no cover - depends on the environment
    dtmm = None
    HAVE_DTMM = False

__all__ = ["HAVE_DTMM", "Droplet", "make_droplet", "dtmm_jones", "droplet_cases", "CASE_KINDS"]


@dataclass
class Droplet:
    """A nematic droplet on a voxel grid, with its ground truth.

    Attributes
    ----------
    director : ndarray, (Z, Y, X, 3) float64
        Unit director, (z, y, x) components, zero outside the droplet.
    coverage : ndarray, (Z, Y, X) float64
        Fraction of each voxel inside the droplet (0..1, sub-voxel sampled at the edge).
    epsilon : ndarray, (Z, Y, X, 3, 3) float32
        Relative permittivity (z, y, x) basis: ``f (n_o² I + (n_e² − n_o²) d dᵀ) + (1 − f) n_m² I``.
    voxel_um : float
        Cubic voxel size, µm.
    medium_index, n_o, n_e, radius_um : float
    configuration : str
        ``"bipolar"`` or ``"radial"``.
    axis : (z, y, x)
        Bipolar axis (unit).
    """

    director: np.ndarray
    coverage: np.ndarray
    epsilon: np.ndarray
    voxel_um: float
    medium_index: float
    n_o: float
    n_e: float
    radius_um: float
    configuration: str
    axis: tuple

    @property
    def shape(self) -> tuple:
        return tuple(self.coverage.shape)


def _bipolar(p: np.ndarray, radius: float, axis: np.ndarray) -> np.ndarray:
    """Bipolar director at points p (…, 3): tangent to the circles through the poles ±R·axis."""
    u = p @ axis
    perp = p - u[..., None] * axis
    rho = np.linalg.norm(perp, axis=-1)
    e_rho = perp / np.where(rho > 1e-12, rho, 1.0)[..., None]
    # circle through (u, ρ) = (±R, 0) and the point: tangent ∝ (R² + ρ² − u², −2uρ) in (u, ρ)
    t_u, t_rho = radius ** 2 + rho ** 2 - u ** 2, -2 * u * rho
    d = t_u[..., None] * axis + t_rho[..., None] * e_rho
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    return np.where(n > 1e-12, d / np.where(n > 1e-12, n, 1.0), axis)


def make_droplet(shape: Sequence[int], voxel_um: float, *, radius_um: float, n_o: float, n_e: float,
                 medium_index: float, configuration: str, axis: Sequence[float] = (0.0, 0.0, 1.0),
                 supersample: int = 3) -> Droplet:
    """Droplet centred in the volume (voxel ``n//2`` of each axis), edge coverage by supersampling.

    Parameters
    ----------
    shape : (Z, Y, X)
    voxel_um : float
        Cubic voxel, µm.
    radius_um, n_o, n_e, medium_index : float
    configuration : {"bipolar", "radial"}
    axis : (z, y, x)
        Bipolar axis.
    supersample : int
        Sub-samples per voxel and axis for the coverage.

    Returns
    -------
    Droplet
    """
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    z, y, x = ((np.arange(n) - n // 2) * voxel_um for n in shape)
    p = np.stack(np.broadcast_arrays(z[:, None, None], y[None, :, None], x[None, None, :]), axis=-1)
    s = supersample
    offs = (np.arange(s) + 0.5) / s - 0.5
    cov = np.zeros(tuple(shape))
    r = np.linalg.norm(p, axis=-1)
    edge = np.abs(r - radius_um) < voxel_um
    for oz in offs:
        for oy in offs:
            for ox in offs:
                q = p[edge] + voxel_um * np.array([oz, oy, ox])
                cov[edge] += (np.linalg.norm(q, axis=-1) <= radius_um) / s ** 3
    cov[~edge] = (r[~edge] <= radius_um).astype(float)
    if configuration == "radial":
        d = p / np.where(r > 1e-12, r, 1.0)[..., None]
        d[r <= 1e-12] = a
    elif configuration == "bipolar":
        d = _bipolar(p, radius_um, a)
    else:
        raise ValueError(f"unknown configuration {configuration!r}")
    d = d * (cov > 0)[..., None]
    eye = np.eye(3)
    eps_lc = n_o ** 2 * eye + (n_e ** 2 - n_o ** 2) * d[..., :, None] * d[..., None, :]
    eps = cov[..., None, None] * eps_lc + (1 - cov)[..., None, None] * medium_index ** 2 * eye
    return Droplet(director=d, coverage=cov, epsilon=eps.astype(np.float32), voxel_um=float(voxel_um),
                   medium_index=float(medium_index), n_o=float(n_o), n_e=float(n_e), radius_um=float(radius_um),
                   configuration=configuration, axis=tuple(a.tolist()))


def _optical_data(dr: Droplet) -> tuple:
    """dtmm optical data (thickness, eps eigenvalues, Euler angles) of a droplet."""
    cov = dr.coverage
    nm2 = dr.medium_index ** 2
    epsv = np.empty(cov.shape + (3,))
    epsv[..., 0] = cov * dr.n_o ** 2 + (1 - cov) * nm2
    epsv[..., 1] = epsv[..., 0]
    epsv[..., 2] = cov * dr.n_e ** 2 + (1 - cov) * nm2
    dz, dy, dx = dr.director[..., 0], dr.director[..., 1], dr.director[..., 2]
    angles = np.zeros(cov.shape + (3,))  # (yaw, theta, phi), director = (cosφ sinθ, sinφ sinθ, cosθ) in (x, y, z)
    angles[..., 1] = np.arctan2(np.hypot(dx, dy), dz)
    angles[..., 2] = np.arctan2(dy, dx)
    return np.ones(cov.shape[0]), epsv, angles


def _refocus_pupil(e: np.ndarray, distance_um: float, dx: float, wavelength_um: float, nm: float,
                   na: Optional[float]) -> np.ndarray:
    """Angular-spectrum propagation by ``distance_um`` (+ = along +z) in the medium, then the pupil."""
    h, w = e.shape[-2:]
    fy = np.fft.fftfreq(h, dx)[:, None]
    fx = np.fft.fftfreq(w, dx)[None, :]
    f2 = fx ** 2 + fy ** 2
    km = nm / wavelength_um
    fz = np.sqrt(np.maximum(km ** 2 - f2, 0.0))
    kern = np.where(f2 < km ** 2, np.exp(2j * np.pi * fz * distance_um), 0.0)
    if na is not None:
        kern = kern * (f2 <= (na / wavelength_um) ** 2)
    return np.fft.ifft2(np.fft.fft2(e) * kern)


def _transfer(optical_data: tuple, shape_yx: tuple, dx: float, wavelength_um: float, nm: float,
              beta: float, phi: float, diffraction: int, betamax: float, method: str) -> np.ndarray:
    """(2 inputs, 2 transverse components, H, W) field after the stack, for one illumination."""
    fd = dtmm.illumination_data(shape_yx, [wavelength_um * 1000.0], pixelsize=dx * 1000.0, beta=beta, phi=phi,
                                n=nm, betamax=betamax)
    out = dtmm.transfer_field(fd, optical_data, beta=beta, phi=phi, nin=nm, nout=nm, betamax=betamax,
                              diffraction=diffraction, method=method)
    f = out[0][:, 0]  # (2 input states, 4, H, W): (E_x, H_y, E_y, H_x)
    return np.stack([f[:, 0], f[:, 2]], axis=1)


def dtmm_jones(droplet: Droplet, wavelength_um: float, illuminations_per_um: np.ndarray, na: Optional[float],
               *, diffraction: int = 1, method: str = "2x2", betamax: Optional[float] = None) -> np.ndarray:
    """Jones matrices of fields of a droplet for many illuminations, computed by dtmm.

    Parameters
    ----------
    droplet : Droplet
    wavelength_um : float
        Vacuum wavelength, µm.
    illuminations_per_um : ndarray, (N, 2)
        Grid-snapped ``(f_x, f_y)``, cycles/µm.
    na : float, optional
        Objective NA (pupil cut after refocusing).
    diffraction : int
        dtmm diffraction quality (1: one effective layer per slice; higher: more exact, slower).
    method : {"2x2", "4x4"}
        dtmm's extended Jones (no reflections) or Berreman method.
    betamax : float, optional
        dtmm's largest propagated ``β = n sin θ`` (default ``0.98·n_m``).

    Returns
    -------
    ndarray, (N, 2 out, 2 in, H, W) complex64
        ``J[n, out, in]`` (see the module docstring).
    """
    if not HAVE_DTMM:
        raise ImportError("dtmm is not installed (pip install dtmm)")
    nm, dx = droplet.medium_index, droplet.voxel_um
    nz, h, w = droplet.shape
    bmax = float(betamax) if betamax is not None else 0.98 * nm
    layers = np.flatnonzero(droplet.coverage.reshape(nz, -1).max(axis=1) > 0)
    k0, k1 = (int(layers[0]), int(layers[-1])) if len(layers) else (nz // 2, nz // 2)
    thick, epsv, angles = _optical_data(droplet)
    data = (thick[k0:k1 + 1], epsv[k0:k1 + 1], angles[k0:k1 + 1])
    # the sample-free run: one homogeneous layer as thick as the sample's layers
    empty = (np.array([float(k1 - k0 + 1)]), np.full((1, h, w, 3), nm ** 2), np.zeros((1, h, w, 3)))
    # the field leaves the last layer at (k1 − nz//2 + 1/2)·dz; refocus it to z = 0
    back = -(k1 - nz // 2 + 0.5) * dx
    ill = np.asarray(illuminations_per_um, float).reshape(-1, 2)
    out = np.empty((ill.shape[0], 2, 2, h, w), np.complex64)
    for n, (fx, fy) in enumerate(ill):
        beta, phi = wavelength_um * math.hypot(fx, fy), math.atan2(fy, fx)
        s = _transfer(data, (h, w), dx, wavelength_um, nm, beta, phi, diffraction, bmax, method)
        b = _transfer(empty, (h, w), dx, wavelength_um, nm, beta, phi, diffraction, bmax, method)
        s = _refocus_pupil(s, back, dx, wavelength_um, nm, na)  # (state k, out, H, W)
        b = _refocus_pupil(b, back, dx, wavelength_um, nm, na)
        bm = np.moveaxis(b, (0, 1), (-1, -2))  # (H, W, out, k)
        sm = np.moveaxis(s, (0, 1), (-1, -2))
        out[n] = np.moveaxis(sm @ np.linalg.inv(bm), (-2, -1), (0, 1))
    return out


# --------------------------------------------------------------------------- test cases
#: kind → (medium index, wavelength µm, radius range µm, n_o range, n_e range)
CASE_KINDS = {
    "strong": (1.45, 0.633, (3.0, 3.8), (1.53, 1.54), (1.55, 1.58)),
    "weak": (1.53, 0.633, (3.0, 3.8), (1.53, 1.54), (1.55, 1.58)),
    "seed": (1.45, 0.532, (2.6, 3.4), (1.53, 1.54), (1.55, 1.58)),
}


def droplet_cases(kind: str, seeds: Sequence[int]) -> list[dict]:
    """Droplet parameters of one kind, one per seed (bipolar for even seeds, radial for odd ones).

    Returns dicts with ``radius_um, n_o, n_e, medium_index, wavelength_um, configuration, axis``.
    The bipolar axis is mostly in the image plane (tilt within ±0.3 rad).
    """
    nm, lam, (r0, r1), (o0, o1), (e0, e1) = CASE_KINDS[kind]
    cases = []
    for s in seeds:
        rng = np.random.default_rng([20, int(s), list(CASE_KINDS).index(kind)])
        phi, tilt = rng.uniform(0, np.pi), rng.uniform(-0.3, 0.3)
        cases.append({"radius_um": float(rng.uniform(r0, r1)), "n_o": float(rng.uniform(o0, o1)),
                      "n_e": float(rng.uniform(e0, e1)), "medium_index": nm, "wavelength_um": lam,
                      "configuration": "bipolar" if s % 2 == 0 else "radial",
                      "axis": (math.sin(tilt), math.cos(tilt) * math.sin(phi), math.cos(tilt) * math.cos(phi))})
    return cases
