"""Phantoms: ranges from the issue, reproducibility from the seed, anti-aliased edges, LC tensors."""

import numpy as np
import pytest

from engine.simulate.phantoms import (
    PHANTOM_KINDS,
    lc_director,
    make_bacterium,
    make_bead,
    make_cell,
    make_lc_droplet,
    make_phantom,
    shift_near_edge,
)

NM = 1.337
SHAPES = {
    "beads": ((48, 96, 96), (0.1, 0.1, 0.1), NM),
    "bacteria": ((32, 128, 128), (0.1, 0.1, 0.1), NM),
    "cells": ((80, 192, 192), (0.2, 0.2, 0.2), NM),
    "lc-droplets": ((48, 96, 96), (0.2, 0.2, 0.2), 1.46),
}


@pytest.mark.parametrize("kind", PHANTOM_KINDS)
def test_same_seed_same_phantom_other_seed_differs(kind):
    shape, vox, nm = SHAPES[kind]
    a = make_phantom(kind, shape, vox, nm, 7)
    b = make_phantom(kind, shape, vox, nm, np.random.default_rng(7))
    c = make_phantom(kind, shape, vox, nm, 8)
    assert a.ri.shape == shape and a.ri.dtype == np.float32
    assert np.array_equal(a.ri, b.ri) and a.params == b.params
    assert not np.array_equal(a.ri, c.ri)
    assert a.kind == kind and a.medium_index == nm and a.voxel_size_um == vox


def test_bead_volume_and_index_are_right():
    r, n, vox = 1.2, 1.46, 0.1
    ph = make_bead((40, 64, 64), (vox,) * 3, NM, 0, radius_um=r, index=n, centre_um=(0, 0, 0))
    # anti-aliased edge: the integrated contrast equals the sphere's volume × Δn within 1 %
    volume = np.sum(ph.ri - NM) / (n - NM) * vox ** 3
    assert volume == pytest.approx(4 / 3 * np.pi * r ** 3, rel=0.01)
    assert ph.ri.max() == pytest.approx(n) and ph.ri.min() == pytest.approx(NM)
    edge = (ph.ri > NM + 1e-4) & (ph.ri < n - 1e-4)
    assert edge.any()  # sub-voxel partial values exist
    assert ph.params["objects"][0]["radius_um"] == r


@pytest.mark.parametrize("seed", range(4))
def test_bacteria_sizes_and_indices_in_range(seed):
    ph = make_bacterium((32, 160, 160), (0.1, 0.1, 0.1), NM, seed, count=3)
    assert ph.ri.max() <= 1.40 + 1e-6 and ph.ri.max() >= 1.37 - 1e-6
    for o in ph.params["objects"]:
        if o["type"] == "rod":
            assert 0.8 <= o["diameter_um"] <= 1.2 and 1.5 <= o["length_um"] <= 4.0
            assert 1.37 <= o["index"] <= 1.40
        elif o["type"] == "coccus":
            assert 0.8 <= o["diameter_um"] <= 1.1
        else:
            assert o["type"] == "cluster" and 4 <= len(o["cocci"]) <= 12


@pytest.mark.parametrize("morphology", ["suspension", "adherent"])
def test_cells_have_organelles_in_range(morphology):
    ph = make_cell((80, 192, 192), (0.2, 0.2, 0.2), NM, 3, morphology=morphology)
    types = [o["type"] for o in ph.params["objects"]]
    assert types[0] == f"{morphology}-cell" and "nucleus" in types and "nucleolus" in types
    assert "lipid-droplet" in types or "granule" in types
    assert all(1.35 <= o["index"] <= 1.42 for o in ph.params["objects"])
    assert ph.ri.max() <= 1.42 + 1e-6
    inside = ph.ri[ph.ri > NM + 1e-3]
    assert np.percentile(inside, 10) >= 1.35  # only edge voxels are partial
    if morphology == "suspension":
        assert 4.0 <= ph.params["objects"][0]["semi_axes_um"][1] <= 7.9
    else:  # adherent cells are flat: much wider than tall
        prof_z = np.flatnonzero((ph.ri > NM + 1e-3).any(axis=(1, 2)))
        prof_x = np.flatnonzero((ph.ri > NM + 1e-3).any(axis=(0, 1)))
        assert (prof_x[-1] - prof_x[0]) > 2.5 * (prof_z[-1] - prof_z[0])


@pytest.mark.parametrize("configuration", ["bipolar", "radial"])
def test_lc_droplet_tensor_is_uniaxial_with_the_right_indices(configuration):
    ph = make_lc_droplet((40, 64, 64), (0.2, 0.2, 0.2), 1.46, 1, configuration=configuration, radius_um=3.0,
                         n_o=1.52, n_e=1.70, axis=(0, 0, 1))
    assert ph.epsilon.shape == (40, 64, 64, 3, 3) and ph.director.shape == (40, 64, 64, 3)
    core = np.isclose(ph.n_o, 1.52)
    eig = np.linalg.eigvalsh(ph.epsilon[core].astype(np.float64))
    assert np.allclose(eig[:, :2], 1.52 ** 2, atol=1e-4) and np.allclose(eig[:, 2], 1.70 ** 2, atol=1e-4)
    assert np.allclose(np.linalg.norm(ph.director[core], axis=-1), 1, atol=1e-5)
    assert np.allclose(ph.epsilon[np.isclose(ph.n_o, 1.46)], 1.46 ** 2 * np.eye(3), atol=1e-5)
    # director geometry: radial points outward; bipolar is along the axis at the centre and
    # tangent to the surface on the equator
    if configuration == "radial":
        d = lc_director(np.array(0.0), np.array(1.0), np.array(1.0), 3.0, "radial")
        assert np.allclose(d, [0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    else:
        d0 = lc_director(np.array(0.0), np.array(0.0), np.array(0.0), 3.0, "bipolar", (0, 0, 1))
        assert np.allclose(np.abs(d0), [0, 0, 1])
        d_eq = lc_director(np.array(0.0), np.array(2.99), np.array(0.0), 3.0, "bipolar", (0, 0, 1))
        assert np.allclose(np.abs(d_eq), [0, 0, 1], atol=1e-6)  # equator: along the axis (tangent)
        d_mid = lc_director(np.array(0.0), np.array(0.0), np.array(2.0), 3.0, "bipolar", (0, 0, 1))
        # on the axis the director is along the axis (field lines converge at the poles)
        assert np.allclose(np.abs(d_mid), [0, 0, 1], atol=1e-6)
        d_off = lc_director(np.array(0.0), np.array(1.5), np.array(2.0), 3.0, "bipolar", (0, 0, 1))
        assert d_off[1] * np.sign(d_off[2]) < 0  # bends toward the axis near the upper pole


def test_near_edge_shift_moves_truth_with_the_volume():
    ph = make_bead((20, 96, 96), (0.1, 0.1, 0.1), NM, 0, radius_um=1.0, index=1.46, centre_um=(0, 0, 0))
    moved = shift_near_edge(ph, 3)
    sy, sx = moved.params["shift_um"]
    c = moved.params["objects"][0]["centre_um"]
    assert (c[1], c[2]) == pytest.approx((sy, sx))
    w = moved.ri[10] - NM
    iy = np.sum(w * np.arange(96)[:, None]) / w.sum()
    ix = np.sum(w * np.arange(96)[None, :]) / w.sum()
    assert abs((iy - 48) * 0.1 - sy) < 0.05 and abs((ix - 48) * 0.1 - sx) < 0.05
    assert max(abs(sy), abs(sx)) > 2.0  # really moved towards an edge
