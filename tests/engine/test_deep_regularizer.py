"""Learned 3-D regulariser: U-Net, stitching, model files, training helpers, shipped model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.metrics import fwhm_ratio, ssim3d
from engine.models import ModelFileError, load_safetensors_model, save_safetensors_model
from engine.progress import CancelToken, Cancelled
from engine.tomography.deep_regularizer import (DEFAULT_MODEL_NAME, UNet3D, depth_to_space, load_deep_regularizer,
                                                regularize_deep, save_deep_regularizer, space_to_depth)
from engine.tomography.stitching import _window_sum, hann2_window, patch_starts, stitch_apply
from engine.training.deep_regularizer import TrainingPair, augment, split_of, train_model
from _deepreg_pairs import tiny_pair

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "resources" / "models" / f"{DEFAULT_MODEL_NAME}.safetensors"


# --------------------------------------------------------------------------- network
@pytest.mark.parametrize("stem", [1, 2])
def test_unet_shapes_and_identity_at_init(stem):
    torch.manual_seed(0)
    net = UNet3D((4, 8, 16), stem_factor=stem).eval()
    assert net.multiple == stem * 4
    x = torch.randn(2, 1, 16, 24, 32)
    with torch.inference_mode():
        y = net(x)
    assert y.shape == x.shape
    # zero-initialised residual head: the untrained network is exactly the identity
    assert torch.equal(y, x)


def test_unet_parameter_count_matches_architecture():
    c = (16, 32, 64)
    net = UNet3D(c, stem_factor=2)

    def conv(ci, co, k, bias):
        return ci * co * k ** 3 + (co if bias else 0)

    def double(ci, co):  # two bias-free 3³ convs, each with a batch norm (2 parameters per channel)
        return conv(ci, co, 3, False) + 2 * co + conv(co, co, 3, False) + 2 * co

    expected = double(8, 16) + double(16, 32) + double(32, 64)
    expected += conv(64, 32, 2, True) + double(64, 32) + conv(32, 16, 2, True) + double(32, 16)
    expected += conv(16, 8, 1, True)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_he_initialisation():
    torch.manual_seed(1)
    net = UNet3D((16, 32, 64), stem_factor=2)
    conv = net.down[2][3]  # Conv3d 64 → 64, fan-in 64·27
    std = conv.weight.std().item()
    gain = math.sqrt(2.0 / (1 + net.negative_slope ** 2))
    assert std == pytest.approx(gain / math.sqrt(64 * 27), rel=0.05)
    assert torch.count_nonzero(net.head.weight) == 0


def test_space_to_depth_round_trip():
    x = torch.arange(2 * 3 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 3, 4, 6, 8)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 24, 2, 3, 4)
    # channel 0 of the block holds the even-even-even voxels
    assert torch.equal(y[:, 0], x[:, 0, ::2, ::2, ::2])
    assert torch.equal(depth_to_space(y, 2), x)


# --------------------------------------------------------------------------- stitching
@pytest.mark.parametrize("shape", [(64, 64, 64), (70, 97, 33), (5, 80, 130), (1, 3, 2), (96, 64, 65)])
def test_stitching_identity_exact(shape):
    rng = np.random.default_rng(0)
    vol = rng.standard_normal(shape).astype(np.float32)
    calls = []

    def ident(x):
        calls.append(tuple(x.shape))
        return x.clone()

    out = stitch_apply(vol, ident, batch_size=3)
    assert out.shape == vol.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, vol, atol=1e-6, rtol=0)
    assert all(c[1:] == (1, 64, 64, 64) and c[0] <= 3 for c in calls)
    n_patches = np.prod([len(patch_starts(max(n, 64))) for n in shape])
    assert sum(c[0] for c in calls) == n_patches


def test_stitching_constant_stays_constant_and_blends_smoothly():
    vol = np.full((50, 100, 77), 1.35, np.float32)
    out = stitch_apply(vol, lambda x: 2 * x + 1, batch_size=4)
    np.testing.assert_allclose(out, 2 * 1.35 + 1, atol=1e-5)
    # a network whose output is a different constant in every patch gives a smooth blend, bounded
    # by the patch values
    counter = iter(range(10_000))
    out2 = stitch_apply(np.zeros((64, 64, 128), np.float32),
                        lambda x: torch.stack([torch.full_like(x[0], float(next(counter))) for _ in range(x.shape[0])]),
                        batch_size=1)
    assert out2.min() >= 0 and out2.max() <= 2 + 1e-5
    assert np.abs(np.diff(out2, axis=2)).max() < 0.15  # no seams: at most a small step per voxel


def test_window_properties():
    w = hann2_window(64)
    assert w.max() == pytest.approx(1.0) and w.min() > 0
    np.testing.assert_allclose(w, w[::-1])
    s = _window_sum((64, 100, 33 + 64))
    # per axis sin⁴ + cos⁴ >= 1/2 wherever two patches overlap: the normalisation never divides by ~0
    assert s.min() >= 0.5 ** 3 - 1e-9
    assert patch_starts(100) == [0, 32, 36] and patch_starts(64) == [0] and patch_starts(128) == [0, 32, 64]


def test_stitching_cancel():
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        stitch_apply(np.zeros((64, 64, 64), np.float32), lambda x: x, cancel=tok)


# --------------------------------------------------------------------------- model files
def _small_model(tmp_path: Path, seed: int = 0, randomise_head: bool = True) -> Path:
    torch.manual_seed(seed)
    net = UNet3D((4, 8), stem_factor=2)
    if randomise_head:
        torch.nn.init.normal_(net.head.weight, std=0.01)
    save_deep_regularizer(net, tmp_path / "tiny.safetensors", {"name": "tiny", "input": {"kind": "rytov",
                                                                                            "delta_n_scale": 0.05}})
    return tmp_path / "tiny.safetensors"


def test_safetensors_round_trip(tmp_path):
    path = _small_model(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dtype"] == "float16" and card["architecture"]["type"] == "UNet3D"
    assert card["architecture"]["stem_factor"] == 2 and len(card["sha256"]) == 64
    state, card2 = load_safetensors_model(path)
    assert card2 == card and set(state) == set(card["tensors"])
    reg = load_deep_regularizer(path, device="cpu")
    ref = UNet3D((4, 8), stem_factor=2)
    ref.load_state_dict(state)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        np.testing.assert_array_equal(reg.net(x).numpy(), ref.eval()(x).numpy())
    assert reg.delta_n_scale == 0.05


def test_checksum_and_shape_rejection(tmp_path):
    path = _small_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_deep_regularizer(path, device="cpu")
    # a card whose tensor shapes do not match the file
    path = _small_model(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path)
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    name = next(iter(card["tensors"]))
    card["tensors"][name] = [1] + card["tensors"][name]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="do not match"):
        load_safetensors_model(path)
    card_path.unlink()
    with pytest.raises(ModelFileError, match="card not found"):
        load_safetensors_model(path)


def test_generic_saver_casts_to_fp16(tmp_path):
    state = {"w": torch.randn(3, 4), "step": torch.tensor([7])}
    card = save_safetensors_model(state, tmp_path / "m", {"task": "x"})
    assert (tmp_path / "m.safetensors").exists() and card["tensors"] == {"w": [3, 4], "step": [1]}
    loaded, _ = load_safetensors_model(tmp_path / "m.safetensors")
    assert loaded["w"].dtype == torch.float32 and loaded["step"].dtype == torch.int64
    np.testing.assert_array_equal(loaded["w"].numpy(), state["w"].half().float().numpy())


# --------------------------------------------------------------------------- regularize_deep
@pytest.mark.parametrize("shape", [(33, 70, 45), (12, 20, 64)])
def test_regularize_deep_identity_network_any_size(tmp_path, shape):
    path = _small_model(tmp_path, randomise_head=False)  # identity network
    rng = np.random.default_rng(3)
    ri = (1.337 + 0.02 * rng.standard_normal(shape)).astype(np.float32)
    seen = []
    out = regularize_deep(ri, 1.337, model=path, device="cpu", progress=lambda f, m="": seen.append(f))
    assert out.shape == ri.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, np.maximum(ri, np.float32(1.337)), atol=2e-6)
    assert seen[-1] == 1.0
    out_raw = regularize_deep(ri, 1.337, model=path, device="cpu", non_negativity=False)
    np.testing.assert_allclose(out_raw, ri, atol=2e-6)


def test_regularize_deep_fourier_uses_the_plain_rytov_volume(tmp_path):
    from engine.tomography.deep_regularizer import regularize_deep_fourier
    from engine.tomography.fourier_mapping import FourierData, ri_to_scattering_potential

    path = _small_model(tmp_path, randomise_head=False)  # identity network
    rng = np.random.default_rng(4)
    ri = (1.337 + 0.01 * rng.standard_normal((16, 24, 24))).astype(np.float32)
    spec = torch.fft.fftn(torch.as_tensor(ri_to_scattering_potential(ri, 1.337)))
    data = FourierData(spectrum=spec, support=torch.ones(spec.shape, dtype=torch.bool), voxel_size_um=(0.1,) * 3,
                       medium_index=1.337, wavelength_um=0.532)
    out = regularize_deep_fourier(data, model=path, device="cpu")
    np.testing.assert_allclose(out, np.maximum(ri, np.float32(1.337)), atol=5e-6)


def test_regularize_deep_rejects_bad_input(tmp_path):
    path = _small_model(tmp_path)
    with pytest.raises(ValueError):
        regularize_deep(np.zeros((4, 4), np.float32), 1.33, model=path, device="cpu")
    bad = np.full((8, 8, 8), np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        regularize_deep(bad, 1.33, model=path, device="cpu")


# --------------------------------------------------------------------------- training helpers
def test_augment_applies_the_same_transform():
    rng = np.random.default_rng(5)
    x = torch.randn(1, 8, 10, 10)
    for _ in range(8):
        a, b = augment(x, 2 * x, rng)
        torch.testing.assert_close(b, 2 * a)
        # z is never flipped or moved
        torch.testing.assert_close(a.sum(dim=(-2, -1)), x.sum(dim=(-2, -1)))


def test_fwhm_ratio_of_an_elongated_gaussian():
    z, y, x = np.meshgrid(*(np.arange(48) - 24.0,) * 3, indexing="ij")
    sx, sz = 3.0, 6.0
    vol = 1.33 + 0.1 * np.exp(-(x ** 2 + y ** 2) / (2 * sx ** 2) - z ** 2 / (2 * sz ** 2))
    assert fwhm_ratio(vol, (24, 24, 24), 1.33) == pytest.approx(sz / sx, rel=0.02)
    assert ssim3d(vol, vol) == pytest.approx(1.0)
    assert ssim3d(vol + 0.01 * np.random.default_rng(0).standard_normal(vol.shape), vol) < 0.99


def test_split_is_by_seed_with_a_validation_split_after_seed_20():
    assert [split_of(s) for s in range(10)] == ["train"] * 4 + ["test"] + ["train"] * 4 + ["test"]
    assert split_of(13) == "train"  # seeds below 20 predate the validation split
    assert [split_of(s) for s in range(20, 25)] == ["train", "train", "train", "val", "test"]
    assert {split_of(s) for s in range(20, 200) if s % 5 == 4} == {"test"}




def test_train_model_keeps_the_checkpoint_with_the_lowest_relative_validation_loss():
    torch.set_num_threads(1)
    train, val = [tiny_pair(s) for s in range(3)], [tiny_pair(s) for s in (23, 28)]
    logs: list[str] = []
    net, hist = train_model(train, val=val, channels=(4, 8), max_steps=12, batch_size=2, crop=16, lr=3e-3,
                            val_every_s=0.0, keep_best=True, log=logs.append)
    assert hist["steps"] == 12 and len(hist["val_relative_loss"]) >= 12
    best = int(np.argmin(hist["val_relative_loss"]))
    assert hist["best_step"] == hist["val_step"][best]
    assert hist["best_val_loss"] == pytest.approx(min(hist["val_relative_loss"]))
    # the returned network is that checkpoint: its relative validation loss (each sample's MSE
    # divided by the mean square of its target, weights of mean 1) is the recorded minimum
    from engine.training.deep_regularizer import _normalised
    from engine.tomography.deep_regularizer import DEFAULT_DELTA_N_SCALE

    xv, yv = _normalised(val, DEFAULT_DELTA_N_SCALE)
    w = np.array([1.0 / float((yv[i] ** 2).mean()) for i in range(2)])
    w /= w.mean()
    with torch.inference_mode():
        mse = np.array([float(((net(xv[i:i + 1]) - yv[i:i + 1]) ** 2).mean()) for i in range(2)])
    assert float(np.mean(mse * w)) == pytest.approx(hist["best_val_loss"], rel=1e-4)
    assert any("relative L2" in line and "best" in line for line in logs)


def test_evaluate_stratifies_beads_by_phase_delay():
    from engine.tomography.deep_regularizer import DeepRegularizer, UNet3D
    from engine.training.deep_regularizer import bead_phase_delay, evaluate

    def bead_pair(seed: int, index: float, radius: float) -> TrainingPair:
        p = tiny_pair(seed)
        obj = {"type": "bead", "index": index, "radius_um": radius, "centre_um": [0.0, 0.0, 0.0]}
        tv = p.truth.copy()
        tv[tv > p.medium_index] += np.float32(0.01)  # a target that overshoots the truth
        return TrainingPair(raw=p.raw, tv=tv, truth=p.truth, medium_index=1.337, voxel_size_um=(0.1,) * 3,
                            kind="beads", seed=seed, setup="green-1.2", objects=[obj])

    weak, strong = bead_pair(1, 1.46, 0.5), bead_pair(2, 1.598, 1.5)
    # 2π·Δn·2r/λ at 532 nm
    assert bead_phase_delay(weak) == pytest.approx(2 * np.pi * 0.123 * 1.0 / 0.532)
    assert bead_phase_delay(strong) == pytest.approx(2 * np.pi * 0.261 * 3.0 / 0.532)
    model = DeepRegularizer(net=UNet3D((4, 8), stem_factor=1).eval(), card={})  # identity at initialisation
    summary = evaluate([weak, strong], model, log=lambda _: None)
    bins = summary["per_kind"]["beads"]["by_phase_delay"]
    assert list(bins) == ["0-3 rad", ">= 6 rad"]
    assert bins["0-3 rad"]["n"] == 1 and bins[">= 6 rad"]["n"] == 1
    peak = (weak.tv.max() - 1.337) / (weak.truth.max() - 1.337)
    assert bins["0-3 rad"]["tv_peak_over_truth"] == pytest.approx(peak, rel=1e-4)
    assert "by_phase_delay" not in summary["per_kind"]["all"]


def test_training_cli_help():
    r = subprocess.run([sys.executable, "-m", "engine.training.deep_regularizer", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for word in ("generate", "train", "evaluate"):
        assert word in r.stdout


# --------------------------------------------------------------------------- shipped model
needs_model = pytest.mark.skipif(not SHIPPED.exists(), reason="shipped deep regulariser not trained yet")


@needs_model
def test_shipped_model_card_and_odd_sizes():
    reg = load_deep_regularizer("default", device="cpu")
    card = reg.card
    assert card["input"]["kind"] == "rytov" and card["training"]["generator"]
    assert card["dtype"] == "float16"
    ri = np.full((20, 50, 37), 1.337, np.float32)
    ri[8:12, 20:30, 15:22] = 1.36
    out = regularize_deep(ri, 1.337, model=reg)
    assert out.shape == ri.shape and np.isfinite(out).all() and out.min() >= 1.337


@needs_model
@pytest.mark.slow
def test_shipped_model_moves_a_fresh_sample_towards_tv():
    from engine.training.deep_regularizer import simulate_pair

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # TV's small element-wise kernels run several times faster on one thread here
    try:
        pair = simulate_pair("bacteria", 9001)  # a seed far outside the training seeds (0-19)
        deep = regularize_deep(pair.raw, pair.medium_index, device="cpu")
    finally:
        torch.set_num_threads(threads)
    raw_nn = np.maximum(pair.raw, np.float32(pair.medium_index))
    assert ssim3d(deep, pair.tv) > ssim3d(raw_nn, pair.tv) > ssim3d(pair.raw, pair.tv) - 0.2
    assert np.mean((deep - pair.tv) ** 2) < np.mean((raw_nn - pair.tv) ** 2)
