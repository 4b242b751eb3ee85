"""Exact Jones matrix of a homogeneous anisotropic slab for an oblique plane wave (test reference).

Berreman's 4×4 method: inside a homogeneous layer of permittivity ε the tangential fields
ψ = (E_x, E_y, H_x, H_y) obey ``dψ/dz = i k0 M ψ`` with a constant 4×4 matrix M (built here
from Maxwell's equations for a plane wave with the conserved transverse wave vector), so the
layer maps ψ(0) to ψ(L) by ``V exp(i k0 K L) V⁻¹`` exactly. Matching to the forward and backward
plane waves of the isotropic medium on both sides gives the transmitted field, multiple
reflections included.

Conventions (the project's, ``docs/formats.md``): fields ``exp(+i(k·r − ωt))``, H in units of
E/Z0 (so ``k × E = H`` and ``k × H = −ε E`` with k in units of k0); tensors in the (z, y, x)
basis; illumination ``(f_x, f_y)`` in cycles/µm. The result is the transmitted transverse field
for transverse input fields (1, 0) and (0, 1), divided by the sample-free transmitted field — the
quantity ``propagate_vectorial`` and ``_dtmm_droplets.dtmm_jones`` return.
"""

from __future__ import annotations

import numpy as np

__all__ = ["slab_jones"]


def _berreman(eps_xyz: np.ndarray, kx: float, ky: float) -> np.ndarray:
    """4×4 matrix M with ``k_z ψ = M ψ`` for ψ = (E_x, E_y, H_x, H_y); ε in the (x, y, z) basis."""
    m = np.zeros((4, 4), complex)
    for j in range(4):
        ex, ey, hx, hy = np.eye(4)[j]
        hz = kx * ey - ky * ex
        ez = -(kx * hy - ky * hx + eps_xyz[2, 0] * ex + eps_xyz[2, 1] * ey) / eps_xyz[2, 2]
        e = np.array([ex, ey, ez])
        de = eps_xyz @ e
        m[:, j] = [hy + kx * ez,  # k_z E_x
                   ky * ez - hx,  # k_z E_y
                   kx * hz - de[1],  # k_z H_x
                   ky * hz + de[0]]  # k_z H_y
    return m


def _modes(eps_xyz: np.ndarray, kx: float, ky: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues k_z (4,) and eigenvectors (4, 4), forward pair first (Re k_z > 0 or Im > 0)."""
    kz, v = np.linalg.eig(_berreman(eps_xyz, kx, ky))
    fwd = (kz.real > 1e-9) | ((np.abs(kz.real) <= 1e-9) & (kz.imag > 0))
    order = np.concatenate([np.flatnonzero(fwd), np.flatnonzero(~fwd)])
    return kz[order], v[:, order]


def slab_jones(eps_zyx: np.ndarray, thickness_um: float, medium_index: float, wavelength_um: float,
               illumination_per_um: tuple[float, float]) -> np.ndarray:
    """Jones matrix (2 out, 2 in) of a slab between two half-spaces of the medium.

    Parameters
    ----------
    eps_zyx : ndarray, (3, 3)
        Relative permittivity of the slab, (z, y, x) basis (real symmetric).
    thickness_um, medium_index, wavelength_um : float
    illumination_per_um : (f_x, f_y)
        Transverse frequency of the incident plane wave, cycles/µm.

    Returns
    -------
    ndarray, (2, 2) complex
        ``J[out, in]`` for transverse (E_x, E_y) components, divided by the sample-free field.
    """
    p = [2, 1, 0]
    eps = np.asarray(eps_zyx, float)[np.ix_(p, p)]  # → (x, y, z)
    kx, ky = wavelength_um * illumination_per_um[0], wavelength_um * illumination_per_um[1]
    k0l = 2 * np.pi / wavelength_um * thickness_um
    kz_s, v_s = _modes(eps, kx, ky)
    kz_m, v_m = _modes(medium_index ** 2 * np.eye(3), kx, ky)
    t_slab = v_s @ np.diag(np.exp(1j * kz_s * k0l)) @ np.linalg.inv(v_s)
    a_f, a_b = v_m[:, :2], v_m[:, 2:]
    # a forward mode of the medium with transverse E = e_in: a_f c with (a_f c)[:2] = e_in
    c_in = np.linalg.inv(a_f[:2])
    jones = np.empty((2, 2), complex)
    for i in range(2):
        inc = a_f @ c_in[:, i]
        # ψ(L) = T (inc + a_b r) = a_f t  →  [T a_b, −a_f] (r, t) = −T inc
        lhs = np.concatenate([t_slab @ a_b, -a_f], axis=1)
        sol = np.linalg.solve(lhs, -t_slab @ inc)
        out = a_f @ sol[2:]
        jones[:, i] = out[:2]
    kz0 = kz_m[0].real
    return jones * np.exp(-1j * kz0 * k0l)
