"""Sample-rotation geometry: a full 360° turn of an exact Mie sphere, reconstructed.

Ground truth: :func:`engine.simulate.mie.mie_fields` (exact partial-wave solution; the
reconstruction inverts the first-order Rytov model, not this one). View ``φ`` turns the sample
by ``φ`` about +y (right-handed): the sphere at ``r0 = (z, y, x)`` in the sample sits in the
lab at ``x = x0 cos φ + z0 sin φ``, ``z = −x0 sin φ + z0 cos φ`` (ODTbrain's convention).

What must hold (each fails with the former nearest-voxel mapping of the rotation geometry,
kept as ``rotation_interpolation=False``, or with the former half-depth volume):

* the volume is a cube (Z = X) centred on the rotation axis;
* the sphere is found where it is (to 0.02 µm);
* mean Δn inside within 2 % of the truth with non-negativity, and no ring artefacts: the
  background's radially averaged profile around the sphere (rings are shells of constant
  Δn) stays below 2 % of the sphere's Δn, and its standard deviation below 0.0004;
* without non-negativity, the mean Δn within 3 % of what the measured band itself allows (the
  true sphere's spectrum on the same support, whose Gibbs overshoot lifts the mean inside by
  +6.7 %) and background std below 0.0008 (the core of Fourier space around the rotation axis
  that no view measures is filled);
* that core, filled about the object's centre, holds the true spectrum of the off-axis sphere
  on the rotation axis to 8 % (the harmonic fill about the axis used before: 0.77 and 0.74 of
  it, which cost the bench sphere of ``bench_odtbrain.py`` 1.1 % of its Δn);
* Rytov's index is linear in the contrast: the relative Δn error of spheres n = 1.34 and 1.37
  differs by less than 2.3 % (1.75 % measured; read through ``n_m·sqrt(1 + x)`` as before,
  2.9 %: the square root loses ``(n − n_m)²/(2n_m)``).

Printed with ``-s``: the numbers of both mappings.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from engine.metadata import MeasurementMetadata
from engine.simulate.mie import mie_fields
from engine.tomography import reconstruct

LAM, NM, NA, PX = 0.532, 1.333, 0.6, 0.1
SIZE, RADIUS, N_SPHERE = 64, 1.2, 1.36
R0 = (0.4, -0.2, 0.6)  # (z, y, x) in the sample frame, µm
N_ANGLES = 36


def _lab(r0, a):
    z, y, x = r0
    return (-x * np.sin(a) + z * np.cos(a), y, x * np.cos(a) + z * np.sin(a))


@pytest.fixture(scope="module")
def rotation_data():
    angles = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    fields = np.stack([mie_fields(RADIUS, N_SPHERE, NM, LAM, (SIZE, SIZE), PX, np.zeros((1, 2)), na=NA,
                                  center_um=_lab(R0, a))[0] for a in angles]).astype(np.complex64)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX,
                             geometry="sample-rotation", rotation_angles_rad=angles.tolist())
    return fields, angles, md


def _score(tm):
    z, y, x = np.meshgrid(*tm.coordinates_um(), indexing="ij")
    r = np.sqrt((z - R0[0]) ** 2 + (y - R0[1]) ** 2 + (x - R0[2]) ** 2)
    dn = tm.ri - NM
    w = np.where(dn > 0.5 * dn.max(), dn, 0)
    centre = np.array([(w * c).sum() / w.sum() for c in (z, y, x)])
    mean_err = float(dn[r < RADIUS - 0.3].mean() / (N_SPHERE - NM) - 1)
    bg = (r > RADIUS + 0.5) & (r < 0.45 * SIZE * PX)
    shell = np.round(r[bg] / PX).astype(int)
    counts = np.bincount(shell)
    profile = np.bincount(shell, dn[bg])[counts > 0] / counts[counts > 0]
    return centre, mean_err, float(np.abs(profile).max()), float(dn[r > RADIUS + 0.5].std())


def _sphere_spectrum(n_sphere: float, shape: tuple[int, int, int]) -> np.ndarray:
    """``fftn`` of the true sphere's first-order Rytov ``x = 2(n − n_m)/n_m`` on the volume grid
    (voxel j at (j − N//2)·PX; the continuous transform, so no aliasing)."""
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(m, d=PX) for m in shape), indexing="ij")
    u = 2 * np.pi * RADIUS * np.sqrt(kz**2 + ky**2 + kx**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        form = np.where(u > 1e-9, 3 * (np.sin(u) - u * np.cos(u)) / u**3, 1.0)
    c = [R0[i] + (shape[i] // 2) * PX for i in range(3)]
    volume = 4 / 3 * np.pi * RADIUS**3 / PX**3
    return 2 * (n_sphere / NM - 1) * volume * form * np.exp(-2j * np.pi * (kz * c[0] + ky * c[1] + kx * c[2]))


def _band_limited_truth(tm):
    """The true sphere seen through the same Fourier support (measured and filled) as ``tm``."""
    filled = (tm.fourier.spectrum != 0).cpu().numpy()
    x = np.fft.ifftn(np.where(filled, _sphere_spectrum(N_SPHERE, tm.ri.shape), 0)).real
    return dataclasses.replace(tm, ri=(NM * (1 + x / 2)).astype(np.float32), fourier=None)


def _with_mapping(interpolate: bool):
    """``reconstruct`` with the rotation mapping forced to one kind (for the comparison only)."""
    import engine.tomography.fourier_mapping as fm

    mod = sys.modules["engine.tomography.reconstruct"]
    original = fm.map_fields_to_fourier

    def mapping(*a, **k):
        return original(*a, rotation_interpolation=interpolate, **k)

    return mod, original, mapping


def test_full_rotation_of_a_mie_sphere_cube_centre_mean_and_no_rings(rotation_data):
    fields, angles, md = rotation_data
    tm = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, non_negativity=50, device="cpu")
    centre, mean_err, ring, bg_std = _score(tm)

    mod, original, mapping = _with_mapping(False)
    mod.map_fields_to_fourier = mapping
    try:
        old = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, non_negativity=50, device="cpu")
    finally:
        mod.map_fields_to_fourier = original
    o_centre, o_err, o_ring, o_std = _score(old)
    print(f"\nrotation {N_ANGLES} views, sphere n={N_SPHERE} r={RADIUS} at {R0}: interpolated mapping "
          f"centre {np.round(centre, 3).tolist()}, Δn error {100 * mean_err:+.2f} %, ring {ring:.5f}, bg std "
          f"{bg_std:.5f}; nearest-voxel mapping centre {np.round(o_centre, 3).tolist()}, Δn error "
          f"{100 * o_err:+.2f} %, ring {o_ring:.5f}, bg std {o_std:.5f}")

    raw = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, keep_fourier=True, device="cpu")
    r_centre, r_err, r_ring, r_std = _score(raw)
    band_err = _score(_band_limited_truth(raw))[1]
    print(f"plain Rytov (no non-negativity): Δn error {100 * r_err:+.2f} % (the true sphere on the measured "
          f"support: {100 * band_err:+.2f} %), ring {r_ring:.5f}, bg std {r_std:.5f}")

    assert tm.ri.shape == (SIZE, SIZE, SIZE)  # a cube by default
    assert tm.origin_um == pytest.approx((-(SIZE // 2) * PX,) * 3)
    np.testing.assert_allclose(centre, R0, atol=0.02)
    assert abs(mean_err) < 0.02
    assert ring < 0.02 * (N_SPHERE - NM)
    assert bg_std < 0.0004
    # without non-negativity too: the unmeasured core around the rotation axis is filled
    # (left empty it takes the object's mean y-profile away: −6 % and dark bands; filled about
    # the rotation axis instead of the object's centre: 4 % below the band's own value)
    np.testing.assert_allclose(r_centre, R0, atol=0.02)
    assert abs(r_err - band_err) < 0.03
    assert r_std < 0.0008


def test_half_turn_and_missing_views_are_interpolated_not_holed(rotation_data):
    """180° of views (and 3 views dropped by the screening): still the sphere, still quantitative;
    the support shrinks only where no two views bracket a voxel."""
    fields, angles, md = rotation_data
    full = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, keep_fourier=True, device="cpu")
    decision = np.ones(N_ANGLES, np.uint8)
    decision[[3, 10, 25]] = 0
    dropped = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, decision=decision, keep_fourier=True,
                          non_negativity=50, device="cpu")
    d_centre, d_err, _, _ = _score(dropped)
    print(f"\n3 views dropped: support {dropped.support} of {full.support}, centre "
          f"{np.round(d_centre, 3).tolist()}, Δn error {100 * d_err:+.2f} %")
    # a missing view is bridged by its neighbours where their caps pass close together
    assert 0.9 * full.support < dropped.support <= full.support
    np.testing.assert_allclose(d_centre, R0, atol=0.02)
    assert abs(d_err) < 0.02
    half = np.arange(N_ANGLES // 2 + 1)  # 0 … 180°
    md_half = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX,
                                  geometry="sample-rotation", rotation_angles_rad=angles[half].tolist())
    tm = reconstruct(fields[half], np.zeros((len(half), 2)), md_half, non_negativity=50, device="cpu")
    centre, mean_err, _, _ = _score(tm)
    print(f"\nhalf turn: centre {np.round(centre, 3).tolist()}, Δn error {100 * mean_err:+.2f} %")
    np.testing.assert_allclose(centre, R0, atol=0.05)
    assert abs(mean_err) < 0.05


def test_core_around_the_axis_is_filled_about_the_object_not_the_axis(rotation_data):
    """The voxels on the K_y axis, which no view measures, against the true sphere's spectrum there."""
    fields, angles, md = rotation_data
    tm = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, keep_fourier=True, device="cpu")
    spectrum, support = tm.fourier.spectrum.cpu().numpy(), tm.fourier.support.cpu().numpy()
    truth = _sphere_spectrum(N_SPHERE, tm.ri.shape)
    ratio = np.array([spectrum[0, j, 0] / truth[0, j, 0] for j in (1, 2)])
    print(f"\nfilled K_y-axis voxels / true spectrum: {np.round(ratio, 3).tolist()}")
    assert not support[0, 1, 0] and not support[0, 2, 0]  # unmeasured: filled, not measured
    np.testing.assert_allclose(ratio, 1.0, atol=0.08)


def test_rytov_index_is_linear_in_the_contrast():
    """Relative Δn error of a weak and a denser sphere (plain Rytov, same geometry)."""
    angles = np.linspace(0, 2 * np.pi, N_ANGLES, endpoint=False)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=PX,
                             geometry="sample-rotation", rotation_angles_rad=angles.tolist())
    errors = {}
    for n in (1.34, 1.37):
        fields = np.stack([mie_fields(RADIUS, n, NM, LAM, (SIZE, SIZE), PX, np.zeros((1, 2)), na=NA,
                                      center_um=_lab(R0, a))[0] for a in angles]).astype(np.complex64)
        tm = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, device="cpu")
        z, y, x = np.meshgrid(*tm.coordinates_um(), indexing="ij")
        inside = np.sqrt((z - R0[0]) ** 2 + (y - R0[1]) ** 2 + (x - R0[2]) ** 2) < RADIUS - 0.3
        errors[n] = float((tm.ri - NM)[inside].mean() / (n - NM) - 1)
    print(f"\nrelative Δn error, plain Rytov: n=1.34 {100 * errors[1.34]:+.2f} %, n=1.37 {100 * errors[1.37]:+.2f} %")
    assert abs(errors[1.34] - errors[1.37]) < 0.023
    # the conversion itself: exact for what Rytov returns for a slab, x = 2(n − n_m)/n_m
    from engine.tomography import ri_to_scattering_potential, scattering_potential_to_ri

    x = ri_to_scattering_potential(np.array([1.36, 1.40]), NM, linear=True)
    np.testing.assert_allclose(x, 2 * (np.array([1.36, 1.40]) - NM) / NM)
    np.testing.assert_allclose(scattering_potential_to_ri(x, NM, linear=True), [1.36, 1.40])
