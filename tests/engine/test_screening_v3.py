"""The 3.x screening network options, the spectrum input and the 3.x training recipe (issue #19)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.screening.network import (CompactScreeningNet, MeanMaxPool, architecture_of, build_network, load_model,
                                      preprocess, save_model)
from engine.training.screening import TrainConfig, _learning_rate, input_card_for, train_network

torch.set_num_threads(1)


def _plane_wave(n: int, fx: float, fy: float) -> np.ndarray:
    y, x = np.mgrid[:n, :n]
    return np.exp(2j * np.pi * (fx * x + fy * y) / n)


def test_full_resolution_and_mean_pool_options_change_the_net_and_round_trip(tmp_path):
    old = CompactScreeningNet(2)
    new = CompactScreeningNet(3, full_resolution=1, mean_pool=1)
    assert architecture_of(old) == {"class": "CompactScreeningNet", "in_channels": 2, "width": 16}  # 2.x cards as before
    arch = architecture_of(new)
    assert arch["full_resolution"] == 1 and arch["mean_pool"] == 1
    assert isinstance(new.pool, MeanMaxPool) and new.classifier[1].in_features == 2 * 128
    # the stride-1 first stage keeps the full 128² grid before any subsampling
    first = new.features[0]
    assert first.stride == (1, 1) and first.in_channels == 3
    x = torch.randn(2, 3, 128, 128)
    assert new.features[:3](x).shape[-2:] == (128, 128)
    assert new.feature_maps(x).shape[-2:] == (4, 4) and new.logits(x).shape == (2,)
    rebuilt = build_network(arch)
    assert architecture_of(rebuilt) == arch
    save_model(new.eval(), tmp_path / "m.safetensors", {"name": "m", "version": "3.0.0",
                                                        "input": input_card_for("phase-amplitude-spectrum")})
    m = load_model(tmp_path / "m.safetensors")
    assert m.input_kind == "phase-amplitude-spectrum" and m.net.in_channels == 3
    x16 = x.half().float()
    assert torch.allclose(m.net.logits(x16), new.logits(x16), atol=5e-2)  # fp16 weights


def test_mean_max_pool_concatenates_max_then_mean():
    a = torch.zeros(1, 2, 4, 4)
    a[0, 0, 1, 1] = 4.0
    a[0, 1] = 1.0
    out = MeanMaxPool()(a).flatten()
    assert out.tolist() == [4.0, 1.0, 0.25, 1.0]


def test_spectrum_channel_puts_a_stray_wave_at_its_frequency():
    n = 128
    clean = np.ones((n, n), np.complex64)
    fringe = (clean + 0.2 * _plane_wave(n, 17, -9)).astype(np.complex64)
    x = preprocess(np.stack([clean, fringe]), input_kind="phase-amplitude-spectrum")
    assert x.shape == (2, 3, n, n)
    s_clean, s_fringe = x[0, 2].numpy(), x[1, 2].numpy()
    c = n // 2
    assert s_clean[c, c] == s_clean.max()  # zero frequency at index crop // 2
    peak = np.unravel_index(np.argmax(np.where(np.abs(np.arange(n)[:, None] - c) + np.abs(np.arange(n) - c) > 2,
                                               s_fringe, -np.inf)), s_fringe.shape)
    assert peak == (c - 9, c + 17)  # (row = f_y, column = f_x), fftshifted
    assert s_fringe[c - 9, c + 17] - s_clean[c - 9, c + 17] > 1.0
    # the image channels are those of the 2-channel input
    x2 = preprocess(np.stack([clean, fringe]), input_kind="phase-amplitude")
    assert torch.equal(x[:, :2], x2)


def test_cam_works_with_mean_max_pooling(tmp_path):
    from engine.screening.saliency import saliency_maps

    net = CompactScreeningNet(3, full_resolution=1, mean_pool=1).eval()
    save_model(net, tmp_path / "m.safetensors", {"name": "m", "version": "0",
                                                 "input": input_card_for("phase-amplitude-spectrum")})
    m = load_model(tmp_path / "m.safetensors")
    f = np.exp(1j * np.random.default_rng(0).normal(0, 0.3, (2, 128, 128))).astype(np.complex64)
    maps = saliency_maps(m, f)
    for k, v in maps.items():
        assert v.shape == (2, 128, 128) and np.isfinite(v).all() and 0 <= v.min() and v.max() <= 1, k


def test_cosine_schedule_warms_up_and_decays_to_zero():
    cfg = TrainConfig(lr=1e-3, schedule="cosine", warmup_steps=10, epochs=1, max_minutes=1.0)
    assert _learning_rate(cfg, 0, 100, 0.0) == pytest.approx(1e-4)
    assert _learning_rate(cfg, 9, 100, 0.0) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 0.09)))
    assert _learning_rate(cfg, 50, 100, 0.0) == pytest.approx(5e-4)
    assert _learning_rate(cfg, 10, 100, 60.0) == pytest.approx(0.0, abs=1e-12)  # the time budget ends it too
    assert _learning_rate(TrainConfig(lr=3e-4), 500, 100, 1e6) == 3e-4
    with pytest.raises(ValueError, match="schedule"):
        _learning_rate(TrainConfig(schedule="step"), 0, 1, 0.0)


def test_ema_training_returns_the_averaged_weights_and_learns():
    rng = np.random.default_rng(0)
    n = 96
    y = (np.arange(n) % 2).astype(np.uint8)
    x = torch.from_numpy(rng.normal(0, 0.1, (n, 2, 32, 32)).astype(np.float32))
    x[y == 1, 1, 10:20, 10:20] += 2.0  # a learnable blob in the amplitude channel
    net = CompactScreeningNet(2, width=4, full_resolution=1, mean_pool=1)
    cfg = TrainConfig(epochs=6, batch_size=16, lr=3e-3, schedule="cosine", warmup_steps=5, ema_decay=0.9,
                      elastic_probability=0.0, weight_decay=1e-4, weight_decay_decoupled=True, distill_weight=0.0)
    info = train_network(net, x[:64], y[:64], x[64:], y[64:], cfg, device="cpu", log=lambda s: None)
    assert len(info["history"]) == 6 and 1 <= info["best_epoch"] <= 6
    with torch.no_grad():
        acc = float(((net.eval().logits(x[64:]) > 0).numpy() == (y[64:] == 1)).mean())
    assert acc >= 0.9, acc


def test_field_augmentation_adds_positive_samples_and_smooth_backgrounds_only():
    from engine.training.screening_augment import (AugmentedFieldBatches, amplitude_ripple, augment_fields,
                                                   background_phase, large_sample_phase)

    rng = np.random.default_rng(1)
    n = 128
    for _ in range(20):
        phase, amp = large_sample_phase(n, rng)
        # denser than the medium, peak ≤ 12 rad times a texture 1 + 0.3·(unit Gaussian field)
        assert np.mean(phase >= 0) > 0.999 and np.percentile(phase, 99.9) <= 12.0 * (1 + 0.3 * 3.3)
        assert 0.95 - 1e-6 <= amp.min() and amp.max() <= 1.0 + 1e-6
        bg = background_phase(n, rng)
        assert np.ptp(bg) <= 2 * np.pi * np.sqrt(2) + np.pi + 1e-3
        g = np.log(amplitude_ripple(n, rng))
        assert g.std() <= 0.251
    f = np.exp(1j * rng.normal(0, 0.1, (6, n, n))).astype(np.complex64)
    same = augment_fields(f, rng, probability=0.0)
    assert same.dtype == np.complex64 and np.array_equal(same, f) and same is not f
    changed = augment_fields(f, np.random.default_rng(2), probability=1.0)
    assert changed.shape == f.shape and not np.allclose(changed, f)
    batches = AugmentedFieldBatches(f, "phase-amplitude", probability=1.0, seed=5)
    assert len(batches) == 6
    x = batches[torch.tensor([0, 3])]
    assert x.shape == (2, 2, n, n) and x.dtype == torch.float32
    again = AugmentedFieldBatches(f, "phase-amplitude", probability=1.0, seed=5)[np.array([0, 3])]
    assert torch.equal(x, again)  # reproducible from its seed


def test_pupil_zoom_halves_a_plane_waves_frequency_and_keeps_the_centre():
    from engine.training.screening_augment import augment_fields, pupil_zoom

    n = 128
    f = _plane_wave(n, 8, 0).astype(np.complex64)
    assert np.array_equal(pupil_zoom(f, 1.0), f)
    z = pupil_zoom(f, 2.0)
    spec = np.abs(np.fft.fft2(z[16:112, 16:112]))  # away from the spline's borders
    ky, kx = np.unravel_index(np.argmax(spec), spec.shape)
    assert (ky, kx) == (0, 3)  # 8 cycles per 128 px → 4 per 128 → 3 per 96 px
    assert z.dtype == np.complex64 and z.shape == (n, n)
    # a centred feature stays centred; every field is zoomed when zoom_probability = 1
    g = np.ones((2, n, n), np.complex64)
    g[:, 60:68, 60:68] = 0.2
    out = augment_fields(g, np.random.default_rng(0), probability=0.0, zoom_probability=1.0)
    for o in out:
        dark = np.argwhere(np.abs(o) < 0.6)
        assert np.allclose(dark.mean(0), 63.5, atol=1.0) and len(dark) > 64


def test_dihedral_test_time_augmentation_is_orientation_invariant_and_card_driven(tmp_path):
    """``input.test_time_augmentation: d8``: the mean logit over the 8 rotations and mirror images, so
    that a turned or mirrored field scores the same; absent from a card, nothing changes."""
    from engine.models import ModelFileError
    from engine.screening.network import dihedral_views, network_logits

    torch.manual_seed(0)
    net = CompactScreeningNet(2, width=4).eval()
    x = torch.randn(3, 2, 64, 64)
    views = dihedral_views(x)
    assert len(views) == 8 and torch.equal(views[0], x)
    assert len({v[0, 0, :2, :2].flatten().tolist().__repr__() for v in views}) == 8  # all distinct
    with torch.no_grad():
        plain, d8 = network_logits(net, x), network_logits(net, x, "d8")
        assert torch.allclose(d8, torch.stack([net.logits(v) for v in views]).mean(0))
        turned = torch.flip(torch.rot90(x, 1, dims=(-2, -1)), dims=(-2,))
        assert torch.allclose(network_logits(net, turned, "d8"), d8, atol=1e-5)
        assert not torch.allclose(net.logits(turned), plain, atol=1e-4)  # the plain network is not invariant
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        network_logits(net, x, "d4")

    card = {"name": "screening-test", "version": "0", "input": {"kind": "phase-amplitude", "crop": 64}}
    save_model(net, tmp_path / "plain.safetensors", card)
    save_model(net, tmp_path / "tta.safetensors",
               {**card, "input": {**card["input"], "test_time_augmentation": "d8"}})
    rng = np.random.default_rng(3)
    fields = np.exp(1j * rng.normal(0, 0.5, (2, 64, 64)) + rng.normal(0, 0.1, (2, 64, 64))).astype(np.complex64)
    plain_model, tta_model = load_model(tmp_path / "plain.safetensors"), load_model(tmp_path / "tta.safetensors")
    assert plain_model.test_time_augmentation == "none" and tta_model.test_time_augmentation == "d8"
    mirrored = np.ascontiguousarray(fields[..., ::-1])
    assert np.allclose(tta_model.predict_fields(mirrored), tta_model.predict_fields(fields), atol=1e-5)
    save_model(net, tmp_path / "bad.safetensors", {**card, "input": {**card["input"], "test_time_augmentation": "x"}})
    with pytest.raises(ModelFileError, match="test_time_augmentation"):
        load_model(tmp_path / "bad.safetensors").predict_fields(fields)


class _PixelNet(torch.nn.Module):
    """A toy 'network' whose logit is a fixed mix of one corner pixel and the image mean."""

    def __init__(self, corner: float) -> None:
        super().__init__()
        self.corner = torch.nn.Parameter(torch.tensor(corner))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.corner * x[:, 0, 0, 0] + x.mean(dim=(1, 2, 3))


def test_view_consistency_loss_is_zero_for_an_invariant_net_and_penalises_orientation():
    """``consistency_weight``: both views get the label loss, and the symmetric KL between the
    two orientations' outputs is added — zero for an orientation-invariant network, positive and
    differentiable for one that looks at a corner."""
    from engine.training.screening import _batch_loss

    torch.manual_seed(1)
    x, y = torch.randn(16, 2, 8, 8), (torch.arange(16) % 2).float()
    plain, view = TrainConfig(distill_weight=0.0), TrainConfig(distill_weight=0.0, consistency_weight=1.0)
    invariant = _PixelNet(0.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(invariant.logits(x), y)
    assert torch.allclose(_batch_loss(invariant, x, y, None, plain, torch.Generator().manual_seed(0)), bce)
    assert torch.allclose(_batch_loss(invariant, x, y, None, view, torch.Generator().manual_seed(0)), bce, atol=1e-6)
    corner = _PixelNet(3.0)
    gen = torch.Generator().manual_seed(0)
    with_view = _batch_loss(corner, x, y, None, view, gen)
    g = int(torch.randint(1, 8, (1,), generator=torch.Generator().manual_seed(0)))
    from engine.screening.network import dihedral_views
    l1, l2 = corner.logits(x), corner.logits(dihedral_views(x)[g])
    labels = 0.5 * (torch.nn.functional.binary_cross_entropy_with_logits(l1, y)
                    + torch.nn.functional.binary_cross_entropy_with_logits(l2, y))
    kl = (0.5 * (torch.sigmoid(l1) - torch.sigmoid(l2)) * (l1 - l2)).mean()
    assert kl > 0.05
    assert torch.allclose(with_view, labels + kl, atol=1e-6)
    with_view.backward()
    assert corner.corner.grad is not None and corner.corner.grad.abs() > 0

