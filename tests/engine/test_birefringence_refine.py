"""The reconstruct–reproject correction of DTT (engine/birefringence/refine.py), without dtmm.

Accuracy on held-out dtmm droplets is in ``test_birefringence_dtmm.py``; here: the constraints,
the director swap, progress/cancel and a small own-simulated droplet (cheap, 32² fields).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.birefringence import JonesFields, reconstruct_tensor
from engine.birefringence.refine import _with_director, object_support, project_constraints, refine_tensor
from engine.metadata import MeasurementMetadata
from engine.progress import CancelToken, Cancelled
from engine.simulate.beam_propagation import propagate_vectorial, snap_illuminations
from engine.simulate.holograms import illumination_pattern
from engine.simulate.phantoms import make_lc_droplet

LAM, NM, NA, DX, S, Z = 0.633, 1.45, 1.2, 0.15, 32, 24


def _uniaxial(n_o, n_e, d):
    d = np.asarray(d, float) / np.linalg.norm(d)
    return n_o ** 2 * np.eye(3) + (n_e ** 2 - n_o ** 2) * np.outer(d, d)


def test_project_constraints_psd_and_isotropic_background():
    eps = np.empty((1, 1, 3, 3, 3), np.float32)
    eps[0, 0, 0] = _uniaxial(1.44, 1.47, (0, 1, 1))  # below n_m along one axis: clipped to n_m
    eps[0, 0, 1] = _uniaxial(1.4505, 1.4520, (1, 0, 0))  # mean within 0.003 of n_m: made isotropic
    eps[0, 0, 2] = _uniaxial(1.53, 1.57, (0, 0, 1))  # a droplet voxel: unchanged
    out = project_constraints(eps, NM, psd=True, support=0.003)
    lam = np.linalg.eigvalsh(out[0, 0].astype(np.float64) - NM ** 2 * np.eye(3))
    assert lam.min() > -1e-5
    assert np.allclose(out[0, 0, 0], out[0, 0, 0].T)
    assert np.allclose(out[0, 0, 1], np.trace(out[0, 0, 1]) / 3 * np.eye(3), atol=1e-6)
    assert np.allclose(out[0, 0, 2], eps[0, 0, 2], atol=1e-5)


def _blob_with_ringing(shape=(20, 24, 24), radius=4.0):
    """A uniaxial ball (n_o 1.53, n_e 1.57 along x, in n_m) in a background of anisotropic ringing
    (random traceless parts of |Δn| ~0.004 and mean-index ripple ±0.006 around n_m)."""
    rng = np.random.default_rng(3)
    z, y, x = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    inside = z ** 2 + y ** 2 + x ** 2 < radius ** 2
    a = rng.normal(size=shape + (3, 3))
    dev = 0.004 * 2 * NM * (a + np.swapaxes(a, -1, -2)) / 2
    dev -= np.trace(dev, axis1=-2, axis2=-1)[..., None, None] / 3 * np.eye(3)
    mean = NM + 0.006 * np.sin(x / 2.0)
    eps = mean[..., None, None] ** 2 * np.eye(3) + dev
    eps[inside] = _uniaxial(1.53, 1.57, (0, 0, 1))
    return eps.astype(np.float32), inside


def test_object_support_isolates_the_object_and_isotropises_the_ringing():
    eps, inside = _blob_with_ringing()
    sup = object_support(torch.as_tensor(eps), NM, 0.2).numpy()
    assert sup[inside].all()
    far = ~ndimage.binary_dilation(inside, iterations=2)
    assert sup[far].mean() < 0.02  # the ringing is outside
    out = project_constraints(eps, NM, psd=False, support=None, support_fraction=0.2)
    assert np.allclose(out[inside], eps[inside], atol=1e-6)  # the object is unchanged
    dev = out[far] - np.trace(out[far], axis1=-2, axis2=-1)[..., None, None] / 3 * np.eye(3)
    assert np.abs(dev).max() < 1e-5  # the background is isotropic
    # its mean index is kept
    assert np.allclose(np.trace(out[far], axis1=-2, axis2=-1), np.trace(eps[far], axis1=-2, axis2=-1), atol=1e-5)
    # without the support the ringing stays anisotropic (the fixed 0.003 index support misses the ripple)
    kept = project_constraints(eps, NM, psd=False, support=0.003, support_fraction=None)
    dev0 = kept[far] - np.trace(kept[far], axis1=-2, axis2=-1)[..., None, None] / 3 * np.eye(3)
    assert np.abs(dev0).max() > 1e-3


def test_with_director_reads_the_indices_along_the_reference_axis():
    a = _uniaxial(1.53, 1.58, (0, 0.6, 0.8)).astype(np.float32)[None]
    same = _uniaxial(1.50, 1.51, (0, 0.6, 0.8)).astype(np.float32)[None]
    assert np.allclose(_with_director(a, same), a, atol=1e-5)  # same axis: unchanged
    perp = _uniaxial(1.50, 1.51, (1, 0, 0)).astype(np.float32)[None]
    out = _with_director(a, perp)[0]
    lam, vec = np.linalg.eigh(out.astype(np.float64))
    # along z (the reference axis) a has n_o; across it the mean of n_o² and n_e²
    assert abs(out[0, 0] - 1.53 ** 2) < 1e-5
    assert np.allclose(np.sort(lam)[1:], (1.53 ** 2 + 1.58 ** 2) / 2, atol=1e-5)
    assert abs(abs(vec[0, 0]) - 1) < 1e-5  # the distinct axis is z


@pytest.fixture(scope="module")
def small():
    ph = make_lc_droplet((Z, S, S), (DX, DX, DX), NM, 0, configuration="bipolar", radius_um=1.3, n_o=1.535,
                         n_e=1.575, axis=(0.0, 0.5, 1.0))
    ill = snap_illuminations(illumination_pattern(25, 1.0, LAM), (S, S), (DX, DX))
    jones = JonesFields(field=propagate_vectorial(ph, LAM, ill, NA, device="cpu"), illumination_per_um=ill,
                        pixel_size_um=DX)
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=DX)
    return ph, jones, md


def _core_dn(tomo, radius=1.3 - 0.3):
    z, y, x = ((np.arange(n) - n // 2) * DX for n in tomo.delta_n.shape)
    r = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    return float(np.median(tomo.delta_n[r < radius]))


def test_refinement_recovers_delta_n_on_own_droplet(small):
    """Data from the forward model itself (not a held-out test: the accuracy claim is on dtmm droplets),
    true Δn 0.040: plain DTT is far low, three corrections bring it closer (measured: refined 0.031)."""
    _, jones, md = small
    plain = reconstruct_tensor(jones, md, shape_z=Z, device="cpu")
    tomo = refine_tensor(jones, md, shape_z=Z, iterations=3, step=0.6, device="cpu")
    dn0, dn1 = _core_dn(plain), _core_dn(tomo)
    print(f"\nΔn DTT {dn0:.4f}, refined {dn1:.4f} (true 0.040); misfit {np.round(tomo.timings_s['misfit'], 3)}")
    assert tomo.epsilon.shape == plain.epsilon.shape and tomo.voxel_size_um == plain.voxel_size_um
    assert abs(dn1 - 0.04) < abs(dn0 - 0.04)
    assert abs(dn1 - 0.04) < 0.012
    assert tomo.timings_s["misfit"][-1] < tomo.timings_s["misfit"][0]


def test_refinement_progress_and_cancel(small):
    _, jones, md = small
    seen = []
    refine_tensor(jones, md, shape_z=Z, iterations=1, device="cpu", progress=lambda f, msg="": seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0) and all(0 <= f <= 1 for f in seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        refine_tensor(jones, md, shape_z=Z, iterations=1, device="cpu", cancel=token)
