"""The faster DTT numerics (#20 item 5) compute what the previous path did.

``reconstruct_tensor(fast=True)`` (default) skips ``eigvalsh`` for voxels with a single equation set,
reads n_e/n_o from closed-form eigenvalues and runs ``eigh`` only where a director is kept;
``fast=False`` is the previous path. ``psi=`` reuses a precomputed Jones–Rytov field.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.birefringence import JonesFields, jones_rytov, reconstruct_tensor
from engine.birefringence.tensor_tomography import _eigvalsh_3x3, uniaxial_decomposition
from engine.metadata import MeasurementMetadata
from engine.simulate.beam_propagation import propagate_vectorial, snap_illuminations
from engine.simulate.holograms import illumination_pattern
from engine.simulate.phantoms import make_lc_droplet

LAM, NM, NA, DX, YX, Z = 0.532, 1.46, 1.2, 0.2, 40, 24


def _random_tensors(n: int, seed: int = 0) -> torch.Tensor:
    """n_m² I plus deviatoric parts spanning isotropic, near-degenerate and Δn up to ~0.1."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    scale = 10 ** (-6 * torch.rand(n, 1, generator=g, dtype=torch.float64)) * 0.3  # 3e-7 … 0.3
    lam = NM ** 2 + scale * torch.randn(n, 3, generator=g, dtype=torch.float64)
    lam[: n // 10, 1] = lam[: n // 10, 0]  # exactly uniaxial
    lam[n // 10: n // 5] = NM ** 2  # exactly isotropic
    return (q @ torch.diag_embed(lam) @ q.transpose(-1, -2)).float()


def test_closed_form_eigenvalues_match_eigvalsh():
    m = _random_tensors(20000)
    want = torch.linalg.eigvalsh(m.double())
    got = _eigvalsh_3x3(m)
    assert got.dtype == torch.float64
    # acos near ±1 (two equal eigenvalues) costs half the float64 digits: ~3e-9 here, still far below
    # the float32 spacing of the input (2.4e-7 at n_m² = 2.13)
    assert float((got - want).abs().max()) < 3e-8
    m = torch.randn(5000, 3, 3, dtype=torch.float64)  # general symmetric, large spread
    m = m + m.transpose(-1, -2)
    assert float((_eigvalsh_3x3(m) - torch.linalg.eigvalsh(m)).abs().max()) < 1e-7


@pytest.mark.parametrize("min_delta_n", [0.01, 0.003])
def test_fast_uniaxial_decomposition_is_the_previous_one(min_delta_n):
    m = _random_tensors(40000, seed=1)
    fast = uniaxial_decomposition(m, min_delta_n, chunk=7000)
    slow = uniaxial_decomposition(m, min_delta_n, chunk=7000, fast=False)
    assert torch.equal(fast[3], slow[3])  # the director bit for bit (eigh where it is kept)
    kept = slow[3].norm(dim=-1) > 0
    assert 0.05 < float(kept.float().mean()) < 0.95  # the test covers both sides of the threshold
    # elsewhere n_e, n_o: float64 closed form vs float32 eigh (~1e-5 in n at most); a near tie of the two
    # eigenvalue gaps (within float32 rounding) may swap which eigenvalue is "extraordinary"; |Δn| is
    # below min_delta_n there either way
    lam = torch.linalg.eigvalsh(m.double())
    tie = ((lam[:, 2] - lam[:, 1]) - (lam[:, 1] - lam[:, 0])).abs() < 2e-6
    for a, b in zip(fast[:3], slow[:3]):
        assert float((a - b)[~tie].abs().max()) < 1e-5
        assert float((a - b).abs().max()) < min_delta_n
    assert float(((fast[0] - slow[0]).abs() > 1e-5).float().mean()) < 0.01  # such swaps are rare


@pytest.fixture(scope="module")
def droplet_jones():
    ph = make_lc_droplet((Z, YX, YX), (DX, DX, DX), NM, 0, configuration="bipolar", radius_um=1.6,
                         n_o=1.52, n_e=1.58, axis=(0.0, 0.3, 1.0))
    ill = snap_illuminations(illumination_pattern(13, 1.0, LAM), (YX, YX), (DX, DX))
    field = propagate_vectorial(ph, LAM, ill, NA, device="cpu")
    return JonesFields(field=field, illumination_per_um=ill, pixel_size_um=DX)


def test_fast_reconstruct_tensor_equals_the_previous_path(droplet_jones):
    md = MeasurementMetadata(wavelength_um=LAM, medium_index=NM, na_objective=NA, pixel_size_um=DX)
    slow = reconstruct_tensor(droplet_jones, md, shape_z=Z, fast=False, device="cpu")
    psi = jones_rytov(droplet_jones.field, device="cpu")
    fast = reconstruct_tensor(droplet_jones, md, shape_z=Z, psi=psi, device="cpu")
    assert (np.linalg.norm(slow.director, axis=-1) > 0).sum() > 50  # the droplet has a director
    np.testing.assert_array_equal(fast.director, slow.director)
    np.testing.assert_array_equal(fast.epsilon, slow.epsilon)  # same conditioning decisions, same solve
    assert fast.anisotropic_fraction == slow.anisotropic_fraction
    for a, b in ((fast.n_e, slow.n_e), (fast.n_o, slow.n_o)):  # up to near ties of the eigenvalue gaps
        diff = np.abs(a - b)
        assert np.mean(diff > 2e-6) < 1e-3 and diff.max() < 0.01  # (there |Δn| < min_delta_n = 0.01)
    with pytest.raises(ValueError, match="psi"):
        reconstruct_tensor(droplet_jones, md, shape_z=Z, psi=psi[:, :, :, :-1], device="cpu")


def test_fast_conditioning_test_is_eigvalsh():
    from engine.birefringence.tensor_tomography import _conditioned

    g = torch.Generator().manual_seed(2)
    n = 20000
    q, _ = torch.linalg.qr(torch.randn(n, 6, 6, generator=g, dtype=torch.float64))
    lam = 10 ** (-2 * torch.rand(n, 6, generator=g, dtype=torch.float64))  # spread 1e-2 … 1
    lam[:, 0] = lam[:, 1:].amax(1) * 10 ** (-4 + 2 * torch.rand(n, generator=g, dtype=torch.float64))  # around 1e-3
    gm = (q @ torch.diag_embed(lam) @ q.transpose(-1, -2)).float() * 7.0
    counts = torch.randint(1, 4, (n,), generator=g)
    gm[counts == 1, :, 0] = 0  # single equation sets are singular (here: rank ≤ 5)
    gm[counts == 1, 0, :] = 0
    ev = torch.linalg.eigvalsh(gm)
    want = ev[:, 0] > 1e-3 * ev[:, -1].clamp(min=1e-30)
    got = _conditioned(gm, counts, 1e-3, fast=True)
    assert 0.2 < float(want.float().mean()) < 0.8
    assert torch.equal(got, want)
    assert torch.equal(_conditioned(gm, counts, 1e-3, fast=False), want)
