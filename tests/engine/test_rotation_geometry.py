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
* without non-negativity, mean Δn within 4 % and background std below 0.0008 (the core of
  Fourier space around the rotation axis that no view measures is interpolated).

Printed with ``-s``: the numbers of both mappings.
"""

from __future__ import annotations

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

    raw = reconstruct(fields, np.zeros((N_ANGLES, 2)), md, device="cpu")
    r_centre, r_err, r_ring, r_std = _score(raw)
    print(f"plain Rytov (no non-negativity): Δn error {100 * r_err:+.2f} %, ring {r_ring:.5f}, bg std {r_std:.5f}")

    assert tm.ri.shape == (SIZE, SIZE, SIZE)  # a cube by default
    assert tm.origin_um == pytest.approx((-(SIZE // 2) * PX,) * 3)
    np.testing.assert_allclose(centre, R0, atol=0.02)
    assert abs(mean_err) < 0.02
    assert ring < 0.02 * (N_SPHERE - NM)
    assert bg_std < 0.0004
    # without non-negativity too: the unmeasured core around the rotation axis is interpolated
    # (left empty it takes the object's mean y-profile away: −6 % and dark bands)
    np.testing.assert_allclose(r_centre, R0, atol=0.02)
    assert abs(r_err) < 0.04
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
