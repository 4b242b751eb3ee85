"""Screening by agreement (issue #19): MinOfNetworks, its model file, its saliency and its calibration fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.screening.network import (CompactScreeningNet, MinOfNetworks, ModelFileError, ScreeningModel,
                                      architecture_of, build_network, load_model, save_model)
from engine.screening.saliency import cam, grad_cam, saliency_maps
from engine.training.screening_ensemble import fit_platt


def _members(seed: int = 0) -> list[CompactScreeningNet]:
    torch.manual_seed(seed)
    a = CompactScreeningNet(2, width=4).eval()
    b = CompactScreeningNet(2, width=4, full_resolution=1, mean_pool=1).eval()
    for net in (a, b):  # non-trivial batch-norm statistics, so that the members disagree
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():  # shift b's last bias so that each member is the least on about half the fields
        x = _inputs()
        b.classifier[-1].bias += (a.logits(x) - b.logits(x)).median()
    return [a, b]


def _inputs(n: int = 24, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 64, 64, generator=g)


def test_the_ensemble_logit_is_the_recalibrated_least_member_logit():
    a, b = _members()
    net = MinOfNetworks([a, b], [1.0, 1.0], scale=0.9, offset=0.7).eval()
    x = _inputs()
    with torch.no_grad():
        la, lb = a.logits(x), b.logits(x)
        expected = torch.minimum(la, lb) * 0.9 + 0.7
        torch.testing.assert_close(net.logits(x), expected)
        torch.testing.assert_close(net(x), torch.sigmoid(expected))
        who = net.deciding_member(x)
    assert torch.equal(who, (lb < la).long())
    assert 0 < int(who.sum()) < len(x), "the test needs fields decided by either member"
    scaled = MinOfNetworks([a, b], [1.0, 2.0], scale=0.9, offset=0.7).eval()  # member b's 1/T = 2
    plain = MinOfNetworks([a, b], [1.0, 1.0]).eval()
    with torch.no_grad():
        torch.testing.assert_close(scaled.logits(x), torch.minimum(la, 2 * lb) * 0.9 + 0.7)
        # without recalibration a field is noisy only if every member calls it noisy
        assert torch.equal(plain.logits(x) > 0, (la > 0) & (lb > 0))


def test_the_ensemble_file_round_trips_and_its_card_names_the_architecture(tmp_path):
    net = MinOfNetworks(_members(), [1.0, 1.25], scale=0.88, offset=0.82).eval()
    card = save_model(net, tmp_path / "ens.safetensors", {"name": "ens", "version": "3.0.0",
                                                          "input": {"kind": "phase-amplitude", "crop": 64}})
    assert card["architecture"] == architecture_of(net)
    assert card["architecture"]["class"] == "MinOfNetworks" and len(card["architecture"]["members"]) == 2
    m = load_model(tmp_path / "ens.safetensors")
    assert isinstance(m.net, MinOfNetworks) and m.net.member_scales == [1.0, 1.25]
    assert (m.net.scale, m.net.offset) == (0.88, 0.82)
    x = _inputs(8)
    with torch.no_grad():  # the file holds fp16 tensors
        torch.testing.assert_close(m.net.logits(x), net.logits(x), atol=0.05, rtol=0.02)
    assert m.predict_tensor(x).shape == (8,)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(member_scales=[1.0, -1.0]), "scales must be finite and > 0"),
    (lambda a: a.update(scale=0.0), "scales must be finite and > 0"),
    (lambda a: a.update(offset=float("nan")), "offset finite"),
    (lambda a: a.pop("member_scales"), "malformed architecture"),
    (lambda a: a.update(members=a["members"][:1], member_scales=[1.0]), "two or more members"),
    (lambda a: a["members"][1].update(in_channels=3), "different inputs"),
    (lambda a: a["members"].append({"class": "MinOfNetworks"}), "single-network architectures"),
])
def test_malformed_ensemble_architectures_are_refused(change, match):
    arch = architecture_of(MinOfNetworks(_members(), [1.0, 1.0]))
    arch = json.loads(json.dumps(arch))
    change(arch)
    with pytest.raises(ModelFileError, match=match):
        build_network(arch)


def test_saliency_of_each_field_comes_from_the_member_that_decides_it():
    a, b = _members()
    ens = ScreeningModel(net=MinOfNetworks([a, b], [1.0, 1.0], 0.9, 0.1).eval(), card={"input": {"crop": 64}})
    x = _inputs()
    with torch.no_grad():
        who = ens.net.deciding_member(x)
    for method in (cam, grad_cam):
        maps = method(ens, x)
        assert maps.shape == (len(x), 64, 64) and np.isfinite(maps).all()
        for k, member in enumerate((a, b)):
            sel = (who == k).numpy()
            alone = method(ScreeningModel(net=member, card={"input": {"crop": 64}}), x[sel])
            np.testing.assert_allclose(maps[sel], alone, atol=1e-5)
    assert set(saliency_maps(ens, x[:3])) == {"cam", "grad_cam", "guided_backprop"}


def test_platt_fit_recovers_a_known_calibration_and_refuses_one_class():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 40_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(1.7 * z - 0.6)))).astype(np.uint8)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(1.7, abs=0.06) and b == pytest.approx(-0.6, abs=0.06)
    with pytest.raises(ValueError, match="one class"):
        fit_platt(z[:10], np.zeros(10))
    with pytest.raises(ValueError, match="scale"):  # scores that rank the fields the wrong way round
        fit_platt(-z, y)


def test_the_build_command_fits_on_validation_and_writes_a_loadable_card(tmp_path, capsys):
    from engine.screening.crops import CropSet
    from engine.screening.network import preprocess
    from engine.training.screening_ensemble import main

    a, b = _members()
    paths = []
    for k, net in enumerate((a, b)):
        card = {"name": f"m{k}", "version": f"{k}.0", "input": {"kind": "phase-amplitude", "crop": 128},
                "calibration": {"temperature": 1.0 + 0.25 * k}, "domain": {"pupil_fraction": [0.2 + k, 0.5 + k]},
                "training_data": {"source": "simulator", "generator_version": f"g{k}", "seed": 7 + k}}
        save_model(net, tmp_path / f"m{k}.safetensors", card)
        paths.append(str(tmp_path / f"m{k}.safetensors"))
    rng = np.random.default_rng(0)
    n_meas, per = 24, 8
    fields = np.exp(1j * rng.normal(0, 1, (n_meas * per, 48, 48))).astype(np.complex64)
    with torch.no_grad():  # labels that the least member logit ranks, with some noise
        x = preprocess(fields, input_kind="phase-amplitude")
        z = torch.minimum(a.logits(x), b.logits(x) / 1.25).numpy()
    noisy = (z + rng.normal(0, 0.3 * z.std(), z.size) > np.median(z)).astype(np.uint8)
    cs = CropSet(fields=fields, noisy=noisy, measurement=np.repeat(np.arange(n_meas), per).astype(np.int32),
                 defect=["dust" if v else "" for v in noisy], setup=["s"] * len(noisy),
                 pixel_size_um=np.full(len(noisy), 0.1, np.float32), wavelength_um=np.full(len(noisy), 0.532, np.float32))
    cs.save(tmp_path / "mixed.npz")
    out = tmp_path / "out" / "ens.safetensors"
    assert main(["--member", *paths, "--validation", str(tmp_path / "mixed.npz"), "--split-seed", "3",
                 "--evaluate", f"again={tmp_path / 'mixed.npz'}", "--out", str(out), "--version", "9.9.9",
                 "--domain-from", "1", "--members-source", "unit test"]) == 0
    m = load_model(out)
    card = m.card
    assert isinstance(m.net, MinOfNetworks) and m.net.member_scales == pytest.approx([1.0, 0.8])
    assert card["version"] == "9.9.9" and [x["name"] for x in card["members"]] == ["m0", "m1"]
    assert card["domain"] == {"pupil_fraction": [1.2, 1.5]} and card["training_data"]["generator_version"] == "g1"
    assert card["seed"] == 8 and card["members_source"] == "unit test" and "--split-seed 3" in card["command"]
    cal = card["calibration"]
    assert cal["scale"] > 0 and (m.net.scale, m.net.offset) == (cal["scale"], cal["offset"])
    assert set(card["metrics"]) == {"validation", "held_out", "again"} and card["metrics"]["again"]["accuracy"] > 0.7
    assert "Platt calibration on" in capsys.readouterr().out


def test_each_members_own_probability_and_label():
    a, b = _members()
    pair = ScreeningModel(net=MinOfNetworks([a, b], [1.0, 0.5], 0.9, 0.1).eval(),
                          card={"members": [{"name": "first", "version": "2.0.0"}]})
    assert pair.member_labels == ["first 2.0.0", "member 1"]  # a card that names fewer members than the file holds
    x = _inputs(6)
    p = pair.member_probabilities(x)
    with torch.no_grad():
        expected = torch.sigmoid(torch.stack([a.logits(x), b.logits(x) * 0.5], dim=1)).numpy()
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
    single = ScreeningModel(net=a, card={})
    assert single.member_labels == [] and single.member_probabilities(x) is None
