"""Learned birefringence generator (engine/birefringence/generator.py): blocks, inputs, files, route.

The network tests use tiny random networks; the shipped-model tests simulate fresh droplets
with seeds the training never used (training seeds are ``[0, split, index]``, split 0–2).
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from engine.birefringence import JonesFields, TensorTomogram, reconstruct_tensor
from engine.birefringence.generator import (DEFAULT_ARCHITECTURE, BirefringenceGenerator, ConvGRU3d,
                                            ResidualBlock3d, TemporalAttention, build_generator, generator_inputs,
                                            load_generator, reconstruct_tensor_learned, resample_jones,
                                            save_generator)
from engine.metrics import psnr_255, ssim_255
from engine.models import MODELS_DIR, ModelFileError
from engine.progress import Cancelled, CancelToken
from engine.simulate.beam_propagation import propagate_vectorial
from engine.simulate.phantoms import make_lc_droplet
from engine.store.results import read_result, write_result
from engine.training.birefringence_generator import (TRAINING_SETUP, simulate_droplet, training_illuminations,
                                                     training_metadata)

TINY = {"encoder_channels": [4, 6, 6, 8, 8], "hidden_channels": 8, "attention_channels": 4,
        "decoder_channels": [6, 4, 4]}


def _tiny(seed: int = 0) -> BirefringenceGenerator:
    torch.manual_seed(seed)
    net = build_generator(TINY)
    # a non-zero head so that the output depends on the input (the shipped init starts at zero)
    torch.nn.init.normal_(net.head.weight, std=0.5)
    return net.eval()


# --------------------------------------------------------------------------- blocks
def test_residual_blocks_down_and_up_shapes():
    x = torch.randn(2, 3, 8, 12, 16)
    assert ResidualBlock3d(3, 5, 2)(x).shape == (2, 5, 4, 6, 8)
    assert ResidualBlock3d(3, 3, 1)(x).shape == (2, 3, 8, 12, 16)
    assert ResidualBlock3d(3, 5, 2, up=True)(x).shape == (2, 5, 16, 24, 32)
    assert ResidualBlock3d(3, 5, 1, up=True)(x).shape == (2, 5, 8, 12, 16)


def test_convgru_is_causal_and_bounded():
    torch.manual_seed(0)
    gru = ConvGRU3d(3, 4)
    xs = torch.randn(1, 5, 3, 4, 4, 4)
    hs = gru(xs)
    assert hs.shape == (1, 5, 4, 4, 4, 4)
    assert hs.abs().max() < 1  # convex mixes of tanh outputs and h0 = 0
    xs2 = xs.clone()
    xs2[:, 3:] = torch.randn(1, 2, 3, 4, 4, 4) * 5
    hs2 = gru(xs2)
    torch.testing.assert_close(hs2[:, :3], hs[:, :3])  # steps 0–2 do not see steps 3, 4
    assert not torch.allclose(hs2[:, 3:], hs[:, 3:])


def test_attention_weights_sum_to_one_and_pick_a_convex_combination():
    torch.manual_seed(0)
    att = TemporalAttention(4, 3)
    hs = torch.randn(2, 6, 4, 3, 3, 3)
    ctx, alpha = att(hs)
    assert ctx.shape == (2, 4, 3, 3, 3) and alpha.shape == (2, 6, 3, 3, 3)
    torch.testing.assert_close(alpha.sum(1), torch.ones(2, 3, 3, 3))
    assert (alpha > 0).all()
    assert (ctx <= hs.max(1).values + 1e-6).all() and (ctx >= hs.min(1).values - 1e-6).all()
    same = hs[:, :1].expand(2, 6, 4, 3, 3, 3)
    torch.testing.assert_close(att(same)[0], hs[:, 0])  # identical states: the context is that state


def test_generator_shapes_range_and_sequence_length_independence():
    net = _tiny()
    arch = DEFAULT_ARCHITECTURE
    for t in (1, 3, 7):
        x = torch.randn(2, t, 8, 8, 16, 12) * 3
        y, alpha = net(x, return_attention=True)
        assert y.shape == (2, 2, 8, 16, 12)
        assert alpha.shape == (2, t, 2, 4, 3)
        torch.testing.assert_close(alpha.sum(1), torch.ones(2, 2, 4, 3))
        assert y.min() >= arch["n_min"] and y.max() <= arch["n_max"]
        assert y.std() > 1e-3  # depends on the input
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 2, 8, 8, 10, 8))
    # the untrained shipped architecture starts at the medium index everywhere
    fresh = build_generator(TINY).eval()
    np.testing.assert_allclose(fresh(torch.randn(1, 2, 8, 8, 8, 8)).detach().numpy(), arch["n_init"], atol=1e-5)


# --------------------------------------------------------------------------- inputs
def test_resample_jones_is_exact_for_band_limited_fields():
    n, px = 64, 0.1
    j = (np.arange(n) - n // 2) * px
    y, x = np.meshgrid(j, j, indexing="ij")
    field = np.exp(1j * (0.7 * np.cos(2 * np.pi * 1.1 * x) + 0.3 * np.sin(2 * np.pi * 0.8 * y)))
    field = np.broadcast_to(field, (2, 2, 2, n, n)).astype(np.complex64)
    # band-limit to < 2.5 cycles/µm, the Nyquist frequency at 0.2 µm
    f = np.fft.fftfreq(n, d=px)
    keep = (np.abs(f)[:, None] < 2.4) & (np.abs(f)[None, :] < 2.4)
    field = np.fft.ifft2(np.fft.fft2(field) * keep).astype(np.complex64)
    out = resample_jones(field, px, 0.2, device="cpu").numpy()
    assert out.shape == (2, 2, 2, 32, 32)
    np.testing.assert_allclose(out, field[..., ::2, ::2], atol=2e-5)  # pixel k at (k−16)·0.2 = 2k at 0.1


def test_generator_inputs_shapes_identity_and_refocusing():
    md = training_metadata()
    ill = training_illuminations()
    eye = np.broadcast_to(np.eye(2, dtype=np.complex64)[None, :, :, None, None], (25, 2, 2, 32, 32)).copy()
    x = generator_inputs(JonesFields(eye, ill, 0.2), md, window=5, device="cpu")
    assert x.shape == (5, 8, 32, 32, 32) and x.dtype == torch.float32
    assert float(x.abs().max()) < 1e-5  # no sample: ψ = 0 everywhere
    assert generator_inputs(JonesFields(eye, ill, 0.2), md, window=4, shape_zyx=(10, 30, 30),
                            device="cpu").shape == (7, 8, 12, 32, 32)
    # normal incidence: plane d is ψ(z=0) propagated by z_d = (d − D//2)·0.2 with exp(2πi(ν_z − k_m) z)
    rng = np.random.default_rng(0)
    f = np.fft.fftfreq(32, d=0.2)
    pupil = (f[:, None] ** 2 + f[None, :] ** 2) <= (1.2 / 0.532) ** 2
    psi = np.fft.ifft2(np.fft.fft2(0.1 * (rng.normal(size=(32, 32)) + 1j * rng.normal(size=(32, 32)))) * pupil)
    field = eye[:1].copy()
    field[0, 0, 0] = np.exp(psi)
    x1 = generator_inputs(JonesFields(field, np.zeros((1, 2)), 0.2), md, window=1, device="cpu")
    got = x1[0, 0].numpy() + 1j * x1[0, 1].numpy()  # ψ_xx at every plane
    km = 1.46 / 0.532
    nuz = np.sqrt(np.clip(km ** 2 - f[:, None] ** 2 - f[None, :] ** 2, 0, None))
    spec = np.fft.fft2(psi)
    for d in (16, 6, 29):
        z = (d - 16) * 0.2
        want = np.fft.ifft2(spec * pupil * np.exp(2j * np.pi * (nuz - km) * z))
        np.testing.assert_allclose(got[d], want, atol=2e-3)


# --------------------------------------------------------------------------- files
def test_save_load_round_trip_and_checksum(tmp_path):
    net = _tiny()
    card = save_generator(net, tmp_path / "gen.safetensors", {"input": {"window": 5, "voxel_um": 0.2}})
    assert card["task"] == "birefringence-generator" and card["architecture"]["encoder_channels"] == TINY["encoder_channels"]
    loaded = load_generator(tmp_path / "gen.safetensors", device="cpu")
    x = torch.randn(1, 3, 8, 8, 8, 8)
    ref = build_generator(TINY)
    ref.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in net.state_dict().items()})
    torch.testing.assert_close(loaded(x[0]), ref.eval()(x)[0])  # the fp16-rounded weights, exactly
    # a flipped byte in the weights → checksum error
    bad = tmp_path / "bad.safetensors"
    shutil.copy(tmp_path / "gen.safetensors", bad)
    shutil.copy(tmp_path / "gen.json", tmp_path / "bad.json")
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_generator(bad, device="cpu")
    # a card for another task
    c = json.loads((tmp_path / "gen.json").read_text())
    c["task"] = "deep-regularizer"
    (tmp_path / "gen.json").write_text(json.dumps(c))
    with pytest.raises(ModelFileError, match="task"):
        load_generator(tmp_path / "gen.safetensors", device="cpu")


# --------------------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def shipped():
    return load_generator("default", device="cpu")


@pytest.fixture(scope="module")
def fresh_droplets():
    """Two droplets from the training distribution with seeds never used in training."""
    out = []
    for k in range(2):
        rng = np.random.default_rng([20261123, 7, k])
        out.append(simulate_droplet(rng, "cpu"))
    return out


def test_shipped_card_and_size(shipped):
    card = shipped.card
    assert (MODELS_DIR / "birefringence-generator.safetensors").stat().st_size < 5e6
    assert card["dtype"] == "float16" and card["outputs_director"] is False
    assert card["output"]["n_min"] < TRAINING_SETUP["medium_index"] < card["output"]["n_max"]
    m = card["metrics"]
    for route in ("learned", "dtt", "constant_medium"):
        for ch in ("n_e", "n_o"):
            assert np.isfinite(m[route][ch]["psnr_db"]) and 0 < m[route][ch]["ssim"] <= 1


def test_shipped_model_beats_constant_medium_and_dtt_on_fresh_droplets(shipped, fresh_droplets):
    md = training_metadata()
    nm = md.medium_index
    lo, hi = shipped.card["output"]["n_min"], shipped.card["output"]["n_max"]
    for jones, truth, params in fresh_droplets:
        tomo = reconstruct_tensor_learned(jones, md, model=shipped, device="cpu")
        pred = np.stack([tomo.n_e, tomo.n_o])
        assert pred.shape == truth.shape
        mse = float(np.mean((pred - truth) ** 2))
        mse_const = float(np.mean((nm - truth) ** 2))
        dtt = reconstruct_tensor(jones, md, shape_z=32, device="cpu")
        mse_dtt = float(np.mean((np.stack([dtt.n_e, dtt.n_o]) - truth) ** 2))
        print(f"\n{params['configuration']} r {params['radius_um']:.2f} n_e {params['n_e']:.3f} n_o {params['n_o']:.3f}: "
              f"MSE {mse:.2e} vs constant {mse_const:.2e}, DTT {mse_dtt:.2e}; "
              f"PSNR n_e {psnr_255(tomo.n_e, truth[0], lo, hi):.1f} dB, "
              f"SSIM n_e {ssim_255(tomo.n_e, truth[0], lo, hi):.3f}")
        assert mse < 0.5 * mse_const
        assert mse < mse_dtt  # trained on truth, it beats its physics counterpart (test set: 11 dB on n_e)
        assert tomo.n_e.min() >= lo and tomo.n_e.max() <= hi


def test_reconstruct_tensor_learned_returns_a_writable_tensor_tomogram(shipped, fresh_droplets, tmp_path):
    jones, truth, params = fresh_droplets[0]
    md = training_metadata()
    tomo = reconstruct_tensor_learned(jones, md, model=shipped, device="cpu")
    assert isinstance(tomo, TensorTomogram) and tomo.method == "learned-generator"
    assert tomo.n_e.shape == tomo.n_o.shape == tomo.delta_n.shape == (32, 32, 32)
    assert tomo.epsilon.shape == (32, 32, 32, 3, 3) and tomo.director.shape == (32, 32, 32, 3)
    assert tomo.n_e.dtype == np.float32 and not tomo.director.any()
    assert tomo.voxel_size_um == (0.2, 0.2, 0.2) and tomo.origin_um == (-3.2, -3.2, -3.2)
    np.testing.assert_allclose(np.trace(tomo.epsilon, axis1=-2, axis2=-1), tomo.n_e ** 2 + 2 * tomo.n_o ** 2, rtol=1e-5)
    # director from DTT: unit axes inside the droplet, ε symmetric with eigenvalues n_o², n_o², n_e²
    withd = reconstruct_tensor_learned(jones, md, model=shipped, director="dtt", device="cpu")
    assert withd.method == "learned-generator+dtt-director"
    inside = np.abs(truth[0] - params["n_e"]) < 1e-6
    norms = np.linalg.norm(withd.director, axis=-1)
    assert np.mean(norms[inside] > 0.99) > 0.8
    k = np.argwhere(inside & (norms > 0.99))[0]
    lam = np.linalg.eigvalsh(withd.epsilon[tuple(k)].astype(np.float64))
    np.testing.assert_allclose(sorted([withd.n_o[tuple(k)] ** 2] * 2 + [withd.n_e[tuple(k)] ** 2]), lam, atol=1e-4)
    path = write_result(tmp_path / "x.odt.h5", measurement_json="{}", birefringence=tomo.result_datasets())
    np.testing.assert_array_equal(read_result(path).birefringence.n_e, tomo.n_e)


@pytest.mark.slow
def test_finer_fields_are_resampled_to_the_model_grid(shipped):
    """Fields at 0.1 µm (64²) give the 0.2 µm grid (32²) and nearly the result of 0.2 µm fields."""
    md = training_metadata()
    nm = md.medium_index
    ph_kw = dict(configuration="bipolar", radius_um=1.8, n_o=1.52, n_e=1.64, axis=(0.0, 0.5, 1.0))
    fine = make_lc_droplet((32, 64, 64), (0.2, 0.1, 0.1), nm, 0, **ph_kw)
    coarse = make_lc_droplet((32, 32, 32), (0.2, 0.2, 0.2), nm, 0, **ph_kw)
    ill = training_illuminations()
    j_fine = JonesFields(propagate_vectorial(fine, 0.532, ill, 1.2, device="cpu"), ill, 0.1)
    j_coarse = JonesFields(propagate_vectorial(coarse, 0.532, ill, 1.2, device="cpu"), ill, 0.2)
    a = reconstruct_tensor_learned(j_fine, dataclasses.replace(md, pixel_size_um=0.1),
                                   model=shipped, device="cpu")
    b = reconstruct_tensor_learned(j_coarse, md, model=shipped, device="cpu")
    assert a.n_e.shape == b.n_e.shape == (32, 32, 32) and a.voxel_size_um == (0.2, 0.2, 0.2)
    truth = np.stack([coarse.n_e, coarse.n_o])
    diff = np.mean(np.abs(np.stack([a.n_e, a.n_o]) - np.stack([b.n_e, b.n_o])))
    err = np.mean(np.abs(np.stack([b.n_e, b.n_o]) - truth))
    print(f"\nmean |fine − coarse| {diff:.4f}, mean |coarse − truth| {err:.4f}")
    assert diff < 0.5 * np.mean(np.abs(nm - truth))


def test_progress_cancel_and_setup_check(shipped, fresh_droplets):
    jones = fresh_droplets[0][0]
    md = training_metadata()
    seen = []
    reconstruct_tensor_learned(jones, md, model=shipped, device="cpu", progress=lambda f, m="": seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        reconstruct_tensor_learned(jones, md, model=shipped, device="cpu", cancel=token)
    with pytest.raises(ValueError, match="medium_index"):
        reconstruct_tensor_learned(jones, dataclasses.replace(md, medium_index=1.337),
                                   model=shipped, device="cpu")
    with pytest.raises(ValueError, match="director"):
        reconstruct_tensor_learned(jones, md, model=shipped, director="guess", device="cpu")
