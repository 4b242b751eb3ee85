"""Learned regulariser, #22 items 1–3: data across setups, GroupNorm + weight EMA, scores against TV."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.tomography.deep_regularizer import UNet3D, architecture_of, build_unet
from engine.training.deep_regularizer import TrainingPair, WeightEMA, _normalised, split_of, train_model
from engine.training.deep_regularizer_data import (FIRST_ORDER_MAX_RAD, HELD_OUT_NA, HELD_OUT_NM, RANGES,
                                                   _phantom, bead_fwhm, camera_field_noise, domain_of_ranges,
                                                   draw_setup, in_held_out_band, max_phase_delay, score_against_tv,
                                                   ssim_gaussian)
from _deepreg_pairs import tiny_pair


# --------------------------------------------------------------------------- data across setups
def test_setups_cover_the_ranges_and_hold_out_their_bands():
    setups = {s: draw_setup(s) for s in range(1000, 1200)}
    for seed, s in setups.items():
        held = in_held_out_band(s["na_objective"], s["medium_index"])
        assert held == (split_of(seed) == "test"), (seed, s)
        assert RANGES["na_objective"][0] <= s["na_objective"] <= RANGES["na_objective"][1]
        assert s["na_objective"] <= 0.97 * s["medium_index"] + 1e-12
        assert RANGES["medium_index"][0] <= s["medium_index"] <= RANGES["medium_index"][1]
        assert 25 <= s["n_angles"] <= 100 and s["pattern"] in ("spiral", "ring")
        assert s["voxel_um"] <= 0.15 and s["voxel_um"] <= 0.95 * s["wavelength_um"] / (2 * s["na_objective"]) + 1e-12
        assert RANGES["field_noise"][0] <= s["field_noise"] <= RANGES["field_noise"][1]
        assert s["na_condenser"] < s["na_objective"]
    train = [s for seed, s in setups.items() if split_of(seed) == "train"]
    # wide: both patterns, NA on both sides of the held-out band, n_m on both sides of its band
    assert {s["pattern"] for s in train} == {"spiral", "ring"}
    assert min(s["na_objective"] for s in train) < HELD_OUT_NA[0] < HELD_OUT_NA[1] < max(s["na_objective"] for s in train)
    assert min(s["medium_index"] for s in train) < 1.35 and max(s["medium_index"] for s in train) > 1.50
    assert min(s["n_angles"] for s in train) < 35 and max(s["n_angles"] for s in train) > 90
    tests = [s for seed, s in setups.items() if split_of(seed) == "test"]
    assert any(HELD_OUT_NA[0] <= s["na_objective"] <= HELD_OUT_NA[1] for s in tests)
    assert any(HELD_OUT_NM[0] <= s["medium_index"] <= HELD_OUT_NM[1] for s in tests)


def test_camera_noise_follows_the_shot_noise_model():
    rng = np.random.default_rng(0)
    v = np.array([camera_field_noise(rng) for _ in range(500)])
    assert RANGES["field_noise"][0] <= v.min() and v.max() <= RANGES["field_noise"][1]
    # sqrt(2·4f/N): f 1/16–1/3, N 450–21000 e-: median about 0.01, spread over a few x
    assert 0.006 < np.median(v) < 0.03 and v.max() / v.min() > 3


@pytest.mark.parametrize("strong", [False, True])
def test_beads_are_first_order_unless_strong(strong):
    for seed in range(12):
        rng = np.random.default_rng(seed)
        lam = 0.45 + 0.02 * seed
        ph = _phantom("beads-strong" if strong else "beads", (48, 48, 48), 0.1, lam, rng)
        phi = max_phase_delay(ph.params["objects"], 1.337, lam)
        assert (phi >= FIRST_ORDER_MAX_RAD - 1e-9) if strong else (0 < phi < FIRST_ORDER_MAX_RAD + 1e-9)
        assert ph.ri.min() >= 1.337 - 1e-6


def test_domain_of_the_v2_generator_is_its_ranges():
    d = domain_of_ranges()
    assert d["na_objective"] == [1.0, 1.4] and d["medium_index"] == [1.33, 1.52]
    assert d["n_illuminations"] == [25, 100] and set(d["illumination_patterns"]) == {"spiral", "ring"}
    assert d["voxel_um"] == [0.08, 0.15] and "beads-strong" not in d["sample_kinds"]


# --------------------------------------------------------------------------- scores
def _bead_pair(blur_z: float = 1.0) -> TrainingPair:
    z, y, x = np.mgrid[-16:16, -16:16, -16:16].astype(np.float32)
    g = np.exp(-(x ** 2 + y ** 2) / 8.0 - z ** 2 / (8.0 * blur_z ** 2)).astype(np.float32)
    truth = (1.337 + 0.02 * (g > 0.5)).astype(np.float32)
    tv = (1.337 + 0.02 * g).astype(np.float32)
    return TrainingPair(raw=tv.copy(), tv=tv, truth=truth, medium_index=1.337, voxel_size_um=(0.1,) * 3,
                        kind="beads", seed=4, setup="t", objects=[{"centre_um": [0.0, 0.0, 0.0], "radius_um": 0.3,
                                                                   "index": 1.357}])


def test_scores_of_a_perfect_imitation():
    p = _bead_pair()
    r = score_against_tv(p, p.tv.copy())
    assert r["ssim_deep"] == pytest.approx(1.0)
    assert r["mean_inside_diff"] == pytest.approx(0.0, abs=1e-7)
    assert r["fwhm_axial_ratio"] == pytest.approx(1.0) and r["fwhm_lateral_ratio"] == pytest.approx(1.0)


def test_scores_see_an_elongated_bead_and_an_offset():
    p = _bead_pair()
    longer = _bead_pair(blur_z=1.5).tv
    r = score_against_tv(p, longer)
    assert r["fwhm_axial_ratio"] == pytest.approx(1.5, rel=0.05)
    assert r["fwhm_lateral_ratio"] == pytest.approx(1.0, rel=0.02)
    assert r["ssim_deep"] < 0.99
    r = score_against_tv(p, p.tv + np.float32(0.001) * (p.truth > 1.34))
    assert r["mean_inside_diff"] == pytest.approx(0.001, rel=1e-3)
    # a Gaussian bead's FWHM along x: 2·sqrt(2 ln 2)·sigma with sigma = 2 voxels
    _, fx = bead_fwhm(p.tv, (16, 16, 16), 1.337)
    assert fx == pytest.approx(2 * math.sqrt(2 * math.log(2)) * 2.0, rel=0.03)


def test_the_summary_counts_the_samples_within_the_bound():
    from engine.training.deep_regularizer_data import _group_summary

    rows = [{"ssim_deep": 0.95, "mean_inside_diff": d} for d in (-0.001, 0.0015, -0.003, -0.0055)]
    s = _group_summary(rows)
    assert s["mean_inside_within_0.002"] == pytest.approx(0.5)  # the mean (-0.0020) alone would pass
    assert s["mean_inside_diff"] == pytest.approx(-0.002) and s["mean_inside_absdiff_max"] == pytest.approx(0.0055)


def test_gaussian_ssim_uses_the_reference_range():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((20, 20, 20)).astype(np.float32)
    assert ssim_gaussian(ref, ref) == pytest.approx(1.0)
    assert ssim_gaussian(ref + 0.5 * rng.standard_normal(ref.shape).astype(np.float32), ref) < 0.9


# --------------------------------------------------------------------------- GroupNorm and EMA
def test_groupnorm_unet_is_identity_at_init_and_round_trips_its_architecture():
    torch.manual_seed(0)
    net = UNet3D((8, 16), stem_factor=2, norm="group").eval()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(net(x), x)
    arch = architecture_of(net)
    assert arch["normalisation"].startswith("GroupNorm")
    assert build_unet(arch).norm == "group"
    assert build_unet({**arch, "normalisation": "BatchNorm3d"}).norm == "batch"
    # batch independence: a sample's output does not depend on its batch mates (unlike BatchNorm in training)
    net.train()
    torch.nn.init.normal_(net.head.weight, std=0.1)
    a, b = torch.randn(1, 1, 16, 16, 16), torch.randn(1, 1, 16, 16, 16)
    assert torch.allclose(net(torch.cat([a, b]))[:1], net(a), atol=1e-5)


def test_weight_ema_averages_with_warm_up():
    net = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = WeightEMA(net, 0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)  # warm-up decay min(0.9, 1/10) = 0.1: the average moves 90 % of the way
    assert float(ema.net.weight[0, 0]) == pytest.approx(0.9)
    for _ in range(200):
        ema.update(net)
    assert float(ema.net.weight[0, 0]) == pytest.approx(1.0, abs=1e-6)
    assert not ema.net.weight.requires_grad




def _contrast_pair(seed: int) -> TrainingPair:
    """Raw = 60 % of the target's contrast (what a missing cone does to a flat object) plus noise."""
    p = tiny_pair(seed)
    rng = np.random.default_rng(seed + 100)
    raw = 1.337 + 0.6 * (p.tv - 1.337) + 0.001 * rng.standard_normal(p.tv.shape)
    return TrainingPair(**{**p.__dict__, "raw": raw.astype(np.float32)})


def test_groupnorm_ema_training_with_batch_1_learns_and_keeps_the_best_ema_checkpoint():
    torch.set_num_threads(1)
    train, val = [_contrast_pair(s) for s in range(4)], [_contrast_pair(s) for s in (23, 28)]
    net, hist = train_model(train, val=val, channels=(4, 8), max_steps=40, batch_size=1, crop=16, lr=1e-2,
                            val_every_s=0.0, keep_best=True, log=lambda s: None, norm="group", ema_decay=0.9)
    assert net.norm == "group"
    xv, yv = _normalised(val, 0.05)
    w = np.array([1.0 / float((yv[i] ** 2).mean()) for i in range(2)])
    w /= w.mean()
    identity = float(np.mean(((xv - yv) ** 2).mean(dim=(1, 2, 3, 4)).numpy() * w))
    # the averaged network restores part of the contrast: well below the identity's validation loss
    assert hist["best_val_loss"] < 0.6 * identity
    with torch.inference_mode():
        mse = np.array([float(((net(xv[i:i + 1]) - yv[i:i + 1]) ** 2).mean()) for i in range(2)])
    assert float(np.mean(mse * w)) == pytest.approx(hist["best_val_loss"], rel=1e-4)


def test_warm_start_across_normalisations_loads_the_convolutions():
    torch.manual_seed(0)
    bn = UNet3D((4, 8), stem_factor=2, norm="batch")
    torch.nn.init.normal_(bn.head.weight)
    logs: list[str] = []
    from engine.training.deep_regularizer import _initial_net

    gn = _initial_net(UNet3D((4, 8), stem_factor=2, norm="group"), bn.state_dict(), logs.append)
    assert torch.equal(gn.head.weight, bn.head.weight) and torch.equal(gn.down[0][0].weight, bn.down[0][0].weight)
    assert logs and "tensors loaded" in logs[0]  # the running statistics were left out


def _pair_of_shape(seed: int, n: int) -> TrainingPair:
    p = _contrast_pair(seed)
    return TrainingPair(**{**p.__dict__, "raw": p.raw[:n, :n, :n].copy(), "tv": p.tv[:n, :n, :n].copy(),
                           "truth": p.truth[:n, :n, :n].copy()})


def test_volumes_of_two_sizes_train_together_drawn_in_proportion():
    """One training set over the 64³ (deepreg-pairs/1) and 48³ (deepreg-pairs/2) caches: grouped by shape,
    batches from one group at a time, in proportion to its size; the relative weights have mean 1 over all."""
    from engine.training.deep_regularizer import VolumeGroups

    pairs = [_pair_of_shape(s, 16) for s in range(3)] + [_pair_of_shape(s, 12) for s in range(3, 12)]
    data = VolumeGroups(pairs, 0.05)
    assert len(data) == 12 and sorted(data.sizes.tolist()) == [3, 9]
    rng = np.random.default_rng(0)
    drawn = [data.draw(2, rng) for _ in range(2000)]
    share = np.mean([data.sizes[g] == 9 for g, _ in drawn])
    assert share == pytest.approx(0.75, abs=0.04)
    assert all(idx.max() < data.sizes[g] for g, idx in drawn)
    assert np.mean(np.concatenate([w.numpy() for w in data.weights])) == pytest.approx(1.0, rel=1e-5)
    shapes = {x.shape[2:] for x, _, _ in data.samples()}
    assert shapes == {(16, 16, 16), (12, 12, 12)}

    torch.set_num_threads(1)
    val = [_pair_of_shape(23, 16), _pair_of_shape(28, 12)]
    net, hist = train_model(pairs, val=val, channels=(4, 8), max_steps=40, batch_size=1, crop=12, lr=1e-2,
                            val_every_s=0.0, keep_best=True, log=lambda s: None, norm="group", ema_decay=0.9)
    identity = float(np.mean([float(((x - y) ** 2).mean()) * w for x, y, w in VolumeGroups(val, 0.05).samples()]))
    assert hist["best_val_loss"] < 0.6 * identity


def test_training_keeps_only_first_order_beads():
    """#22's decision: TV is a target only for beads below 3 rad of phase delay; other kinds all stay."""
    from engine.training.deep_regularizer import bead_phase_delay, first_order_only

    def bead(seed, radius):
        p = tiny_pair(seed)
        return TrainingPair(**{**p.__dict__, "objects": [{"index": 1.37, "radius_um": radius}],
                               "setup_params": {"wavelength_um": 0.532}})

    weak, strong = bead(1, 1.0), bead(2, 6.0)
    assert bead_phase_delay(weak) < FIRST_ORDER_MAX_RAD < bead_phase_delay(strong)
    cell = TrainingPair(**{**strong.__dict__, "kind": "cells-suspension"})
    assert first_order_only([weak, strong, cell]) == [weak, cell]


def test_card_of_a_run_on_both_generators_lists_the_union_of_their_setups():
    import argparse
    from pathlib import Path

    from engine.tomography.deep_regularizer import domain_check
    from engine.training.deep_regularizer import SETUPS, _train_card, training_domain_v1

    a = argparse.Namespace(version="x", kinds=["beads"], max_bead_phase=3.0, norm="batch", ema_decay=0.998, lr=1e-3,
                           lr_min=1e-5, batch_size=2, crop=16, device="cpu", threads=1, seed=0)
    v2 = TrainingPair(**{**tiny_pair(2).__dict__, "setup_params": {"generator": "deepreg-pairs/2"}})
    hist = {"steps": 1, "seconds": 1.0, "val_loss": [], "val_relative_loss": []}
    card = _train_card(a, Path("m.safetensors"), [tiny_pair(1), v2], [], hist, None)
    assert card["training"]["generator"] == "deepreg-pairs/1 + deepreg-pairs/2"
    d, v1 = card["domain"], training_domain_v1()
    for key in ("na_objective", "medium_index", "voxel_um", "wavelength_um", "n_illuminations",
                "illumination_na_fraction", "field_noise"):
        assert d[key][0] <= min(v1[key][0], domain_of_ranges()[key][0]) + 1e-12
        assert d[key][1] >= max(v1[key][1], domain_of_ranges()[key][1]) - 1e-12
    assert d["bead_max_phase_delay_rad"] == 3.0 and "na_objective" not in d["not_trained_on"]
    for s in SETUPS:  # the fixed setups it trained on raise no warning
        meta = {"na_objective": s.na_objective, "medium_index": s.medium_index, "wavelength_um": s.wavelength_um,
                "voxel_um": 0.1, "n_illuminations": s.n_angles, "illumination_na_fraction": s.na_condenser / s.na_objective}
        assert domain_check(meta, card) == [], s.name
