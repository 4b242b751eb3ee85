"""Exact scalar (Helmholtz) field of a homogeneous sphere: partial-wave (Mie) series.

Conventions (``docs/formats.md``)
-----------------------------------
* Lengths in µm, spatial frequencies in cycles/µm; images are (y, x) arrays and pixel
  ``j`` of an axis of ``n`` pixels sits at ``(j - n//2) * pixel``.
* Fields follow ``exp(+i(k·r - ωt))``: a sphere whose index exceeds the medium's gives a
  **positive** phase. Propagation by +z multiplies the angular spectrum by
  ``exp(+2πi ν_z z)`` with ``ν_z = sqrt((n_m/λ)² - ν_x² - ν_y²)``.
* The illumination is the unit plane wave ``exp(2πi (f_x x + f_y y + f_z z))`` with
  ``f_z = sqrt((n_m/λ)² - f_x² - f_y²)``; fields returned are the total field divided by
  this incident field (what a microscope reports after background division).

Method
------
Scalar wave equation ``∇²u + k0² n(r)² u = 0`` with a homogeneous sphere of radius ``a``
and index ``n_s`` in a medium ``n_m``. With ``k = 2π n_m/λ``, ``k1 = 2π n_s/λ`` and the
partial-wave expansion of the plane wave, continuity of ``u`` and ``∂u/∂r`` at ``r = a``
gives the scattered-wave coefficients ::

    a_l = [k1 j_l'(k1 a) j_l(k a) - k j_l(k1 a) j_l'(k a)]
          / [k h_l'(k a) j_l(k1 a) - k1 j_l'(k1 a) h_l(k a)]

(``h_l = h_l^(1)``), the scattered field ``u_s = Σ (2l+1) i^l a_l h_l(kr) P_l(cos γ)`` and
the scattering amplitude ``f(cos θ) = Σ (2l+1) a_l P_l(cos θ) / (ik)`` (µm), with
``u_s → f e^{ikr}/r`` far away. For ``z > a`` (beyond the sphere) Weyl's expansion gives
the exact angular spectrum of the scattered field in cycles/µm::

    u_s(x, y, z) = ∫∫ i f(k̂(ν)) / ν_z · exp(2πi (ν_x x + ν_y y + ν_z z)) dν_x dν_y .

The *refocused* field in a plane ``z`` (the sphere centre for ``z = 0``) is that spectrum
propagated back with the same propagator, as a microscope focused there reports it. The
objective pupil keeps ``|ν| <= NA/λ`` (centred on the optical axis, ν = 0). The spectrum is
sampled on the image's FFT grid, so the result is that of a periodic array of spheres
without mutual scattering, exactly like an FFT-based beam propagation on the same grid.

References
----------
.. [1] H. C. van de Hulst, *Light Scattering by Small Particles*, Wiley (1957), ch. 9–10
   (partial waves of a sphere, scalar case).
.. [2] M. Born and E. Wolf, *Principles of Optics*, 7th ed., §13.5 (Weyl's plane-wave
   representation of a spherical wave) and §11.4.
.. [3] W. J. Wiscombe, "Improved Mie scattering algorithms", Appl. Opt. 19, 1505 (1980)
   (number of terms).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from numpy.polynomial import legendre
from scipy import special

__all__ = [
    "mie_coefficients",
    "scattering_amplitude",
    "mie_scattered_direct",
    "mie_field",
    "mie_fields",
]


def _n_terms(x: float, m: float) -> int:
    """Number of partial waves (Wiscombe's rule with a margin for the interior)."""
    xm = max(x, x * m)
    return int(np.ceil(xm + 4.05 * xm ** (1.0 / 3.0) + 8))


def mie_coefficients(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float,
                     n_terms: Optional[int] = None) -> np.ndarray:
    """Scalar partial-wave coefficients ``a_l`` of a homogeneous sphere.

    Parameters
    ----------
    radius_um : float
        Sphere radius ``a`` in µm.
    n_sphere, n_medium : float
        Refractive indices of the sphere and of the medium (real: lossless; complex
        allowed for the sphere).
    wavelength_um : float
        Vacuum wavelength λ in µm.
    n_terms : int, optional
        Number of coefficients (l = 0 … n_terms-1); default from Wiscombe's criterion.

    Returns
    -------
    ndarray, shape (L,), complex128
        ``a_l`` such that the scattered wave is ``Σ (2l+1) i^l a_l h_l(kr) P_l(cos γ)``. For a
        lossless sphere ``|1 + 2 a_l| = 1``.

    References
    ----------
    .. [1] H. C. van de Hulst, *Light Scattering by Small Particles* (1957).
    """
    k = 2 * np.pi * n_medium / wavelength_um
    k1 = 2 * np.pi * n_sphere / wavelength_um
    x, x1 = k * radius_um, k1 * radius_um
    L = n_terms if n_terms is not None else _n_terms(x, abs(n_sphere / n_medium))
    l = np.arange(L)
    j = special.spherical_jn(l, x)
    jp = special.spherical_jn(l, x, derivative=True)
    y = special.spherical_yn(l, x)
    yp = special.spherical_yn(l, x, derivative=True)
    j1 = special.spherical_jn(l, x1)
    j1p = special.spherical_jn(l, x1, derivative=True)
    h, hp = j + 1j * y, jp + 1j * yp
    num = k1 * j1p * j - k * j1 * jp
    den = k * hp * j1 - k1 * j1p * h
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        a = num / den
    a[~np.isfinite(a)] = 0.0  # high orders: h_l overflows, the coefficient is 0
    return a.astype(np.complex128)


def scattering_amplitude(cos_theta: np.ndarray, coefficients: np.ndarray, k_per_um: float) -> np.ndarray:
    """Scattering amplitude ``f(cos θ) = Σ (2l+1) a_l P_l(cos θ) / (ik)`` in µm.

    ``cos_theta`` may be complex (evanescent directions); ``k_per_um`` is ``2π n_m/λ`` in rad/µm.
    """
    l = np.arange(coefficients.size)
    c = (2 * l + 1) * coefficients / (1j * k_per_um)
    return legendre.legval(cos_theta, c)


def mie_scattered_direct(points_um: np.ndarray, radius_um: float, n_sphere: float, n_medium: float,
                         wavelength_um: float, direction: Sequence[float] = (1.0, 0.0, 0.0)) -> np.ndarray:
    """Scattered field at points outside the sphere by the partial-wave sum (reference values).

    Parameters
    ----------
    points_um : ndarray, shape (..., 3)
        Points (z, y, x) in µm, all with ``r > radius_um``.
    direction : (dz, dy, dx)
        Unit propagation direction of the incident plane wave.

    Returns
    -------
    ndarray, shape (...), complex128
        ``Σ (2l+1) i^l a_l h_l(kr) P_l(cos γ)`` for a unit incident plane wave whose phase is 0
        at the sphere centre.
    """
    p = np.asarray(points_um, dtype=float)
    k = 2 * np.pi * n_medium / wavelength_um
    a = mie_coefficients(radius_um, n_sphere, n_medium, wavelength_um)
    r = np.linalg.norm(p, axis=-1)
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    cg = (p @ d) / r
    out = np.zeros(r.shape, dtype=np.complex128)
    for l in range(a.size):
        if a[l] == 0:
            continue
        h = special.spherical_jn(l, k * r) + 1j * special.spherical_yn(l, k * r)
        out += (2 * l + 1) * (1j ** l) * a[l] * h * special.eval_legendre(l, cg)
    return out


def _frequency_grid(shape: tuple[int, int], pixel_size_um: float) -> tuple[np.ndarray, np.ndarray]:
    H, W = shape
    vy = np.fft.fftfreq(H, d=pixel_size_um)[:, None]
    vx = np.fft.fftfreq(W, d=pixel_size_um)[None, :]
    return vy, vx


def mie_fields(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float,
               shape: tuple[int, int], pixel_size_um: float,
               illuminations_per_um: np.ndarray, na: Optional[float] = None, focus_z_um: float = 0.0,
               center_um: Sequence[float] = (0.0, 0.0, 0.0), evanescent: bool = False) -> np.ndarray:
    """Exact refocused fields of a sphere for many illuminations (vectorised).

    Parameters
    ----------
    radius_um, n_sphere, n_medium, wavelength_um
        Sphere radius (µm), indices and vacuum wavelength (µm).
    shape : (H, W)
        Image size in pixels.
    pixel_size_um : float
        Pixel size at the sample, µm.
    illuminations_per_um : array_like, shape (N, 2)
        Transverse illumination frequencies ``(f_x, f_y)`` in the medium, cycles/µm
        (``f_x² + f_y² < (n_m/λ)²``). Need not lie on the FFT grid.
    na : float, optional
        Objective NA: the scattered spectrum is cut to ``|ν| <= na/λ``. ``None`` keeps every
        propagating wave.
    focus_z_um : float
        Plane (µm, z = 0 at the sphere centre) where the field is reported.
    center_um : (z, y, x)
        Sphere centre in µm (default the origin, pixel (H//2, W//2)).
    evanescent : bool
        Also sum the evanescent part of the Weyl expansion (exact only for planes beyond the
        sphere, ``focus_z_um - z_c > radius_um``; used to check the normalisation).

    Returns
    -------
    ndarray, shape (N, H, W), complex128
        Total field divided by the incident plane wave in the plane ``z = focus_z_um``.

    References
    ----------
    .. [1] H. C. van de Hulst, *Light Scattering by Small Particles* (1957).
    .. [2] M. Born and E. Wolf, *Principles of Optics*, §13.5 (Weyl expansion).
    """
    illum = np.atleast_2d(np.asarray(illuminations_per_um, dtype=float))
    H, W = int(shape[0]), int(shape[1])
    k_nu = n_medium / wavelength_um  # cycles/µm
    f_perp2 = illum[:, 0] ** 2 + illum[:, 1] ** 2
    if np.any(f_perp2 >= k_nu ** 2):
        raise ValueError("every illumination must propagate: |f| < n_m/λ")
    fz = np.sqrt(k_nu ** 2 - f_perp2)
    coeffs = mie_coefficients(radius_um, n_sphere, n_medium, wavelength_um)
    vy, vx = _frequency_grid((H, W), pixel_size_um)
    nu2 = vx ** 2 + vy ** 2
    vz = np.sqrt((k_nu ** 2 - nu2).astype(np.complex128))  # imaginary for evanescent waves
    keep = nu2 < k_nu ** 2 if not evanescent else np.ones_like(nu2, dtype=bool)
    if na is not None:
        keep &= nu2 <= (na / wavelength_um) ** 2
    vz_safe = np.where(np.abs(vz) > 0, vz, 1.0)
    cz, cy, cx = (float(c) for c in center_um)
    dz = focus_z_um - cz
    # grid x_j = (j - n//2) * pixel: put the origin of the inverse FFT at index n//2
    x0 = (W // 2) * pixel_size_um
    y0 = (H // 2) * pixel_size_um
    shift = np.exp(-2j * np.pi * (vx * (x0 + cx) + vy * (y0 + cy)))
    prop = np.exp(2j * np.pi * vz * dz)
    base = np.where(keep, 1j / vz_safe * prop * shift / (pixel_size_um ** 2), 0.0)
    y = (np.arange(H) - H // 2)[:, None] * pixel_size_um
    x = (np.arange(W) - W // 2)[None, :] * pixel_size_um
    out = np.empty((illum.shape[0], H, W), dtype=np.complex128)
    for i, (fx, fy) in enumerate(illum):
        mu = (vx * fx + vy * fy + vz * fz[i]) / k_nu ** 2
        amp = scattering_amplitude(mu, coeffs, 2 * np.pi * k_nu)
        spec = np.where(keep, base * amp, 0.0)
        # phase of the incident wave at the sphere centre
        spec = spec * np.exp(2j * np.pi * (fx * cx + fy * cy + fz[i] * cz))
        us = np.fft.ifft2(spec)
        incident = np.exp(2j * np.pi * (fx * x + fy * y + fz[i] * focus_z_um))
        out[i] = 1.0 + us / incident
    return out


def mie_field(radius_um: float, n_sphere: float, n_medium: float, wavelength_um: float,
              shape: tuple[int, int], pixel_size_um: float,
              illumination_per_um: Sequence[float] = (0.0, 0.0), na: Optional[float] = None,
              focus_z_um: float = 0.0, center_um: Sequence[float] = (0.0, 0.0, 0.0),
              evanescent: bool = False) -> np.ndarray:
    """Exact scalar field of a sphere, refocused to ``z = focus_z_um``, divided by the incident wave.

    The sphere (radius ``radius_um``, index ``n_sphere``) sits at the origin (pixel
    ``(H//2, W//2)``, z = 0) unless ``center_um`` says otherwise, and is lit by the unit plane
    wave ``exp(2πi (f_x x + f_y y + f_z z))``. See :func:`mie_fields` for every parameter; this
    is its single-illumination form.

    Returns
    -------
    ndarray, shape (H, W), complex128
        Total field divided by the incident field. For ``n_sphere > n_medium`` its phase is
        positive, ≈ ``2π (n_s - n_m)/λ ×`` chord length for a weak sphere.

    References
    ----------
    .. [1] H. C. van de Hulst, *Light Scattering by Small Particles* (1957).
    .. [2] M. Born and E. Wolf, *Principles of Optics*, §13.5 (Weyl expansion).

    Examples
    --------
    >>> u = mie_field(2.5, 1.36, 1.337, 0.532, shape=(128, 128), pixel_size_um=0.1, na=1.2)
    >>> bool(np.angle(u[64, 64]) > 0)
    True
    """
    return mie_fields(radius_um, n_sphere, n_medium, wavelength_um, shape, pixel_size_um,
                      np.asarray([illumination_per_um], dtype=float), na=na, focus_z_um=focus_z_um,
                      center_um=center_um, evanescent=evanescent)[0]
