"""Field screening engine: networks, rule, metrics, model files, saliency, data, screen_fields, retraining."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.metrics import accuracy, confusion_counts, roc_auc, screening_metrics, sensitivity, specificity
from engine.screening.network import (CompactScreeningNet, ModelFileError, ScreeningModel, ScreeningNet,
                                      load_model, preprocess, save_model, screen_fields)
from engine.screening.rule import choose_rule_threshold, rule_decide, rule_peak_metric
from engine.training import screening_data as ds

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- helpers
def smooth_phase_field(n=128, px=0.1, peak=2.0, seed=0):
    """A clean ratio field: a band-limited Gaussian phase blob (positive phase), amplitude 1."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) - n // 2)[:, None] * px
    x = (np.arange(n) - n // 2)[None, :] * px
    cx, cy = rng.uniform(-1, 1, 2)
    phi = peak * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 1.5 ** 2))
    return np.exp(1j * phi).astype(np.complex64)


def fringe(n=128, px=0.1, nu=(25 / 12.8, 12 / 12.8), amp=0.1):
    """A plane-wave fringe; the default frequency falls on an FFT bin of a 128 × 0.1 µm grid."""
    y = (np.arange(n) - n // 2)[:, None] * px
    x = (np.arange(n) - n // 2)[None, :] * px
    return (amp * np.exp(2j * np.pi * (nu[0] * x + nu[1] * y))).astype(np.complex64)


class Meta:
    wavelength_um = 0.532
    pixel_size_um = 0.1
    medium_index = 1.337
    na_objective = 1.2


# ----------------------------------------------------------------------------- architecture
def test_published_architecture_shapes_and_parameter_count():
    net = ScreeningNet(1)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == 7_075_585  # ~7.1 M as published
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512, 1024]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.features) == 5
    lin = [m for m in net.classifier if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(1024, 512), (512, 512), (512, 1)]
    assert [m.p for m in net.classifier if isinstance(m, torch.nn.Dropout)] == [0.3, 0.5, 0.5]
    assert isinstance(net.pool, torch.nn.AdaptiveMaxPool2d)
    net.eval()
    with torch.no_grad():
        x = torch.randn(2, 1, 128, 128)
        p = net(x)
        assert p.shape == (2,) and torch.all((p >= 0) & (p <= 1))
        assert torch.allclose(p, torch.sigmoid(net.logits(x)))
        assert net.feature_maps(x).shape == (2, 1024, 4, 4)
        assert ScreeningNet(2).eval()(torch.randn(1, 2, 128, 128)).shape == (1,)


def test_init_schemes_he_for_convs_xavier_for_linears():
    torch.manual_seed(0)
    net = ScreeningNet(1)
    conv = net.features[9]  # 128 -> 256
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0
    lin = net.classifier[1]
    bound = math.sqrt(6 / (lin.in_features + lin.out_features))
    assert lin.weight.abs().max().item() <= bound + 1e-6
    assert lin.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert torch.count_nonzero(lin.bias) == 0


def test_compact_net_is_small_and_same_interface():
    net = CompactScreeningNet(1).eval()
    n = sum(p.numel() for p in net.parameters())
    assert 100_000 < n < 400_000  # > 20x smaller than the published net
    with torch.no_grad():
        x = torch.randn(3, 1, 128, 128)
        assert net(x).shape == (3,)
        assert net.feature_maps(x).shape[-2:] == (4, 4)


# ----------------------------------------------------------------------------- rule
def test_rule_detects_parasitic_fringe_and_ignores_clean_field():
    clean = smooth_phase_field()
    added = clean + fringe(amp=0.1)
    mult = clean * (1 + fringe(amp=0.1, nu=(1.7, -1.1)))  # off-bin, modulated by the sample: spread out
    m = rule_peak_metric(np.stack([clean, added, mult]), None, 0.1, 0.532, mask_radius_per_um=1.0)
    assert m.dtype == np.float32 and m.shape == (3,)
    # a fringe of amplitude 0.1 on a 128² crop: |F| = 0.1·128² → log10 = 3.21
    assert m[1] == pytest.approx(np.log10(0.1 * 128 * 128), abs=0.02)
    assert m[0] < m[1] - 1.0 and m[0] < m[2] - 0.7
    assert list(rule_decide(m, 2.5)) == [1, 0, 0]  # 1 = clean
    # the metric does not depend on the crop size (scaled to a 128² reference)
    big = smooth_phase_field(n=256) + fringe(n=256, amp=0.1)
    assert rule_peak_metric(big, None, 0.1, 0.532)[0] == pytest.approx(m[1], abs=0.02)


def test_rule_frames_ratio_and_sample_agree():
    """Raw sample field = ratio field × illumination plane wave: disc on ν_ill gives the same metric."""
    n, px = 128, 0.1
    ill = np.array([[3 / (n * px) * 10, -2 / (n * px) * 10]])  # integer FFT bins: exact shift
    ratio = smooth_phase_field() * (1 + fringe(amp=0.05, nu=(3.0, -2.5)))
    raw = ratio * fringe(amp=1.0, nu=tuple(ill[0]))
    m_ratio = rule_peak_metric(ratio[None], None, px, 0.532, frame="ratio")
    m_raw = rule_peak_metric(raw[None], ill, px, 0.532, frame="sample")
    m_wrong = rule_peak_metric(raw[None], None, px, 0.532, frame="ratio")
    assert m_raw[0] == pytest.approx(m_ratio[0], abs=1e-4)
    assert m_wrong[0] > m_ratio[0] + 0.8  # the illumination itself looks like a "fringe" in the wrong frame


def test_choose_rule_threshold_separates():
    m = np.array([1.0, 1.2, 1.4, 3.0, 3.3, 2.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    t, acc = choose_rule_threshold(m, y)
    assert acc == 1.0 and 1.4 < t < 2.0


# ----------------------------------------------------------------------------- metrics
def test_metrics_hand_computed():
    y = np.array([1, 1, 0, 0, 1])
    p = np.array([1, 0, 0, 1, 1])
    c = confusion_counts(y, p)
    assert (c.tp, c.fn, c.tn, c.fp) == (2, 1, 1, 1)
    assert accuracy(y, p) == pytest.approx(3 / 5)
    assert sensitivity(y, p) == pytest.approx(2 / 3)
    assert specificity(y, p) == pytest.approx(1 / 2)
    s = np.array([0.9, 0.8, 0.3, 0.8, 0.1])
    # positive/negative pairs: (0.9>0.3, 0.9>0.8, 0.8>0.3, 0.8=0.8 → ½, 0.1<0.3, 0.1<0.8) = 3.5/6
    assert roc_auc(y, s) == pytest.approx(3.5 / 6)
    assert roc_auc(y, y.astype(float)) == 1.0
    assert roc_auc(y, -y.astype(float)) == 0.0
    assert math.isnan(roc_auc(np.ones(3), np.arange(3.0)))
    d = screening_metrics(y, s, 0.5)
    assert d["tp"] == 2 and d["fp"] == 1 and d["accuracy"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError):
        accuracy(np.array([0, 2]), np.array([0, 1]))


# ----------------------------------------------------------------------------- preprocessing
def test_preprocess_crop_centre_sign_and_kinds():
    n = 160
    f = np.ones((2, n, n), np.complex64)
    f[:, n // 2, n // 2] = np.exp(1j * 1.0)  # a positive-phase pixel at the centre
    x = preprocess(f)
    assert x.shape == (2, 1, 128, 128) and x.dtype == torch.float32
    assert x[0, 0, 64, 64].item() == pytest.approx(1.0 / np.pi, abs=1e-5)  # pixel n//2 → crop pixel 64
    assert x[0, 0].abs().sum().item() == pytest.approx(1.0 / np.pi, abs=1e-4)
    assert preprocess(f, input_kind="amplitude").shape == (2, 1, 128, 128)
    xc = preprocess(f * 2.0, input_kind="complex")
    assert xc.shape == (2, 2, 128, 128)
    assert xc[0, 0, 0, 0].abs().item() < 1e-5  # background → (0, 0) after normalisation
    shadow = f.copy()
    shadow[:, 10:30, 10:30] *= 0.1  # an amplitude-only shadow (dust): invisible in the phase channel
    xpa = preprocess(shadow, input_kind="phase-amplitude")
    assert xpa.shape == (2, 2, 128, 128)
    torch.testing.assert_close(xpa[:, :1], preprocess(shadow))
    torch.testing.assert_close(xpa[:, 1:], preprocess(shadow, input_kind="amplitude"))
    assert xpa[0, 1].min().item() == pytest.approx(np.log(0.1), abs=1e-4) and xpa[0, 0].min().item() == 0.0
    small = preprocess(np.ones((1, 64, 64), np.complex64) * np.exp(0.5j))
    assert small.shape == (1, 1, 128, 128) and small.abs().max().item() < 1e-5
    uw = np.zeros((1, n, n), np.float32)
    uw[0, :, : n // 4] = 4 * np.pi  # unwrapped phase beyond ±π is kept when given (a minority of pixels)
    xu = preprocess(f[:1], unwrapped_phase=uw)
    assert xu.max().item() == pytest.approx(4.0, abs=1e-4) and xu.min().item() == pytest.approx(0.0, abs=1e-4)


# ----------------------------------------------------------------------------- model files
def _tiny_model(tmp_path, name="screening-test"):
    torch.manual_seed(1)
    net = CompactScreeningNet(1, width=8)
    card = save_model(net, tmp_path / f"{name}.safetensors", {"name": name, "version": "0.1"})
    return net, card


def test_safetensors_round_trip_and_checksum(tmp_path, monkeypatch):
    net, card = _tiny_model(tmp_path)
    assert card["dtype"] == "float16" and len(card["sha256"]) == 64
    assert json.loads((tmp_path / "screening-test.json").read_text())["architecture"]["width"] == 8

    def no_pickle(*a, **k):  # loading must never go through torch.load / pickle
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_pickle)
    m = load_model(tmp_path / "screening-test.safetensors")
    assert isinstance(m, ScreeningModel) and m.label == "screening-test 0.1"
    x = torch.randn(4, 1, 128, 128)
    net.eval()
    with torch.no_grad():
        ref = net(x)
    assert np.allclose(m.predict_tensor(x), ref.numpy(), atol=2e-2)  # fp16 storage

    # one flipped byte: checksum mismatch
    w = tmp_path / "screening-test.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model(w)


def test_card_architecture_mismatch_rejected(tmp_path):
    _tiny_model(tmp_path)
    cp = tmp_path / "screening-test.json"
    card = json.loads(cp.read_text())
    card["architecture"]["width"] = 16  # weights are for width 8
    cp.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="do not match"):
        load_model(tmp_path / "screening-test.safetensors")
    card["architecture"] = {"class": "os.system"}
    cp.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="unknown architecture"):
        load_model(tmp_path / "screening-test.safetensors")


def test_missing_model_gives_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nothing.safetensors")


# ----------------------------------------------------------------------------- data + augmentation
def test_synthetic_measurement_labels_and_defects_only_on_noisy():
    spec = ds.MeasurementSpec("bacteria", 45, 1.2, 1.0, 0.5, seed=3)
    f, ill, noisy, defect = ds.synthesize_measurement(spec, shape=(64, 64))
    assert f.shape == (45, 64, 64) and f.dtype == np.complex64 and ill.shape == (45, 2)
    assert 10 < noisy.sum() < 35
    assert all((d != "") == bool(y) for d, y in zip(defect, noisy))
    # sample phase is positive (denser than the medium) for clean frames
    clean = f[noisy == 0]
    ph = np.angle(clean)
    assert ph.max() > 0.2 and ph.max() > 2 * -ph.min()
    f2, *_ = ds.synthesize_measurement(spec, shape=(64, 64))
    assert np.array_equal(f, f2)  # reproducible from the seed


def test_split_by_measurement_never_splits_a_measurement():
    meas = np.repeat(np.arange(20), 7)
    groups = ds.split_by_measurement(meas, (0.6, 0.2, 0.2), seed=1)
    sets = [set(meas[g]) for g in groups]
    assert sum(len(g) for g in groups) == len(meas)
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert [len(s) for s in sets] == [12, 4, 4]


def test_elastic_deformation_and_augmentation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 64, 64)
    y = ds.elastic_deform(x, alpha_px=0.0, generator=g)
    assert torch.allclose(x, y, atol=1e-5)
    y = ds.elastic_deform(x, alpha_px=3.0, generator=g)
    assert y.shape == x.shape and not torch.allclose(x, y)
    assert y.min() >= x.min() - 1e-6 and y.max() <= x.max() + 1e-6  # bilinear: no overshoot
    z = ds.augment_batch(x, generator=g)
    assert z.shape == x.shape


def test_cropset_save_load_roundtrip(tmp_path):
    cs = ds.synthetic_crops(ds.MeasurementSpec("beads", 45, 1.1, 1.0, 0.5, 9), 0, crop=32)
    p = cs.save(tmp_path / "c.npz")
    back = ds.CropSet.load(p)
    assert np.array_equal(back.fields, cs.fields) and back.defect == cs.defect and back.setup == cs.setup


# ----------------------------------------------------------------------------- toy training + saliency
@pytest.fixture(scope="module")
def toy_model():
    """A tiny compact net trained in a few seconds to spot a planted high-frequency patch."""
    from engine.training.screening import TrainConfig, train_network

    rng = np.random.default_rng(0)
    n, size = 256, 64
    x = np.zeros((n, 1, size, size), np.float32)
    y = (np.arange(n) % 2).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    boxes = []
    for i in range(n):
        cx, cy = rng.uniform(16, 48, 2)
        x[i, 0] = 0.6 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 150.0)
        if y[i]:
            qy, qx = rng.integers(0, 2, 2) * 32 + 6
            patch = 0.5 * np.cos(2.6 * xx[:20, :20] + 1.3 * yy[:20, :20])
            x[i, 0, qy:qy + 20, qx:qx + 20] += patch
            boxes.append((i, qy, qx))
    net = CompactScreeningNet(1, width=8)
    cfg = TrainConfig(epochs=5, batch_size=32, lr=3e-3, seed=0, elastic_probability=0.0)
    xt = torch.from_numpy(x)
    info = train_network(net, xt[:192], y[:192], xt[192:], y[192:], cfg, device="cpu", log=lambda m: None)
    model = ScreeningModel(net=net.eval(), card={"name": "toy", "version": "0", "input": {"kind": "phase",
                                                                                        "crop": size}})
    return model, xt, y, boxes, info


def test_toy_training_learns(toy_model):
    model, x, y, _, info = toy_model
    p = model.predict_tensor(x[192:])
    assert np.mean((p > 0.5) == (y[192:] == 1)) > 0.9
    assert info["history"][-1]["train_loss"] < info["history"][0]["train_loss"]


def test_saliency_shapes_ranges_and_grad_cam_finds_planted_defect(toy_model):
    from engine.screening.saliency import saliency_maps

    model, x, y, boxes, _ = toy_model
    test_boxes = [b for b in boxes if b[0] >= 192][:12]
    idx = [b[0] for b in test_boxes]
    maps = saliency_maps(model, x[idx])
    for name, m in maps.items():
        assert m.shape == (len(idx), 64, 64) and m.dtype == np.float32, name
        assert m.min() >= 0 and m.max() <= 1 and np.isfinite(m).all(), name
    inside, outside = [], []
    for k, (_, qy, qx) in enumerate(test_boxes):
        mask = np.zeros((64, 64), bool)
        mask[qy:qy + 20, qx:qx + 20] = True
        inside.append(maps["grad_cam"][k][mask].mean())
        outside.append(maps["grad_cam"][k][~mask].mean())
    assert np.mean(inside) > 1.5 * np.mean(outside)
    gb_in = np.mean([maps["guided_backprop"][k][qy:qy + 20, qx:qx + 20].mean()
                     for k, (_, qy, qx) in enumerate(test_boxes)])
    assert gb_in > np.mean(maps["guided_backprop"])


def test_saliency_on_published_architecture_shapes():
    from engine.screening.saliency import cam, grad_cam, guided_backprop

    net = ScreeningNet(1).eval()
    m = ScreeningModel(net=net, card={"name": "p", "version": "0"})
    f = np.stack([smooth_phase_field(), smooth_phase_field() * (1 + fringe())])
    for fn in (cam, grad_cam, guided_backprop):
        out = fn(m, f)
        assert out.shape == (2, 128, 128) and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1


# ----------------------------------------------------------------------------- screen_fields
def test_screen_fields_with_model_and_rule(tmp_path, toy_model):
    net, _ = _tiny_model(tmp_path)
    model = load_model(tmp_path / "screening-test.safetensors")
    f = np.stack([smooth_phase_field(n=200, seed=s) for s in range(5)])
    f[3] *= 1 + fringe(n=200, amp=0.2)
    ill = np.zeros((5, 2))
    seen = []
    res = screen_fields(f, ill, Meta(), model=model, threshold=0.5, device="cpu", rule_threshold=2.8,
                        progress=lambda fr, msg="": seen.append(fr))
    assert res.score.shape == (5,) and res.score.dtype == np.float32
    assert res.decision.dtype == np.uint8 and res.source.dtype == np.uint8
    assert np.array_equal(res.decision, (res.score <= 0.5).astype(np.uint8))
    assert (res.source == 0).all() and res.model == "screening-test 0.1"
    assert res.rule_peak.argmax() == 3 and res.rule_decision[3] == 0 and res.rule_decision.sum() == 4
    assert seen[-1] == 1.0
    r2 = screen_fields(f, ill, Meta(), method="rule", rule_threshold=2.8)
    assert (r2.source == 1).all() and np.isnan(r2.score).all() and list(r2.decision) == [1, 1, 1, 0, 1]
    # a threshold of 1.0 keeps everything, 0.0 rejects everything
    assert screen_fields(f, ill, Meta(), model=model, threshold=1.0, device="cpu").decision.all()
    from engine.progress import Cancelled, CancelToken

    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        screen_fields(f, ill, Meta(), model=model, device="cpu", cancel=tok)


# ----------------------------------------------------------------------------- retraining
def test_retrain_on_labels_saves_only_if_better(tmp_path):
    from engine.screening.network import MODELS_DIR
    from engine.screening.retrain import retrain_on_labels

    _tiny_model(tmp_path / "base")
    base = load_model(tmp_path / "base" / "screening-test.safetensors")
    specs = [ds.MeasurementSpec("bacteria", 45, 1.2, 1.0, 0.5, s) for s in range(3)]
    lab = ds.generate_crops(specs, source="synthetic")
    replay = ds.generate_crops([ds.MeasurementSpec("cells", 45, 1.1, 1.0, 0.5, 99)], source="synthetic")
    rep = retrain_on_labels(lab.fields, lab.noisy, lab.measurement, base_model=base, replay=replay, epochs=2,
                            lr=2e-3, device="cpu", save_dir=tmp_path / "proj" / "models", seed=0)
    assert rep.n_holdout > 0 and rep.n_train > 0 and rep.n_replay == len(replay)
    assert set(rep.before) >= {"accuracy", "sensitivity", "specificity", "roc_auc"}
    if rep.improved:
        assert rep.saved_path is not None and rep.saved_path.exists()
        assert rep.saved_path.parent == (tmp_path / "proj" / "models").resolve()
        assert rep.saved_path.name == "screening-test-ft1.safetensors"
        again = load_model(rep.saved_path)
        assert again.card["parent_model"] == "screening-test 0.1"
    else:
        assert rep.saved_path is None
    with pytest.raises(ValueError, match="never in resources/models"):
        retrain_on_labels(lab.fields, lab.noisy, lab.measurement, base_model=base, replay=replay, epochs=1,
                          device="cpu", save_dir=MODELS_DIR, seed=0, lr=2e-3)


def test_retrain_from_project_overrides(tmp_path):
    """The Project adapter: manual overrides + result-file fields → fine-tuning saved in <project>/models."""
    pytest.importorskip("engine.store.project")
    import tifffile

    from engine.store.project import Project
    from engine.store.results import write_result
    from engine.screening.retrain import overrides_of_project, retrain_from_overrides

    _tiny_model(tmp_path / "base")
    base = load_model(tmp_path / "base" / "screening-test.safetensors")
    proj = Project.create(tmp_path / "proj")
    truth = {}
    for k in range(3):
        spec = ds.MeasurementSpec("cells", 45, 1.2, 1.0, 0.5, 50 + k)
        f, ill, noisy, _ = ds.synthesize_measurement(spec)
        n = 12
        folder = tmp_path / f"m{k}"
        folder.mkdir()
        meta = {"format": "odt-measurement/1", "wavelength_um": 0.532, "medium_index": 1.337,
                "na_objective": 1.2, "pixel_size_um": 0.1, "illumination_per_um": ill[:n].tolist()}
        (folder / "measurement.json").write_text(json.dumps(meta))
        tifffile.imwrite(folder / "sample.tif", np.zeros((n, 16, 16), np.uint8))
        tifffile.imwrite(folder / "background.tif", np.zeros((16, 16), np.uint8))
        mid = proj.add_measurement(folder)
        write_result(proj.result_path(mid), measurement_json=json.dumps(meta), fields=f[:n],
                     illumination_per_um=ill[:n])
        proj.add_screening(mid, np.ones(n, np.uint8))
        for i in range(n - 2):  # the last two fields keep the automatic decision: not labels
            proj.set_override(mid, i, int(1 - noisy[i]), user="tech")
        truth[mid] = noisy[: n - 2]
    fields, y, groups = overrides_of_project(proj)
    assert fields.shape == (30, 128, 128) and len(y) == 30
    for mid, lab in truth.items():
        assert np.array_equal(y[groups == mid], lab)
    replay = ds.generate_crops([ds.MeasurementSpec("beads", 45, 1.1, 1.0, 0.5, 7)], source="synthetic")
    rep = retrain_from_overrides(proj, base_model=base, replay=replay, epochs=1, device="cpu", min_overrides=10)
    assert rep.n_train + rep.n_holdout == 30 and rep.n_holdout == 10  # one whole measurement held out
    if rep.saved_path is not None:
        assert rep.saved_path.parent == (tmp_path / "proj" / "models").resolve()
    with pytest.raises(ValueError, match="at least 100"):
        retrain_from_overrides(proj, base_model=base, replay=replay, min_overrides=100)
    proj.close()


def test_screen_fields_uses_unwrapped_phase_only_if_model_was_trained_on_it(tmp_path):
    _tiny_model(tmp_path)
    m = load_model(tmp_path / "screening-test.safetensors")
    f = np.stack([smooth_phase_field(seed=s, peak=5.0) for s in range(3)])
    uw = np.angle(f) + 7.0  # deliberately different from the wrapped angle
    a = screen_fields(f, None, Meta(), model=m, device="cpu").score
    b = screen_fields(f, None, Meta(), model=m, device="cpu", unwrapped_phase=uw).score
    assert m.phase_source == "wrapped" and np.array_equal(a, b)
    m.card["input"]["phase"] = "unwrapped"
    x_unw = preprocess(f, unwrapped_phase=np.where(np.arange(128)[None, None] < 20, uw + 3.0, uw))
    c = screen_fields(f, None, Meta(), model=m, device="cpu",
                      unwrapped_phase=np.where(np.arange(128)[None, None] < 20, uw + 3.0, uw)).score
    assert np.allclose(c, m.predict_tensor(x_unw))


def test_retrain_command_reports_errors(tmp_path, capsys):
    pytest.importorskip("engine.store.project")
    from engine.screening.retrain import retrain_command

    assert retrain_command(tmp_path / "not-a-project") == 2
    assert "train-screening" in capsys.readouterr().err


@pytest.mark.slow
def test_training_script_end_to_end_tiny(tmp_path):
    """The training command (synthetic fields, seconds of training) writes both models, cards and the log."""
    from engine.training.screening import main as train_main

    out = tmp_path / "models"
    rc = train_main(["--source", "synthetic", "--n-measurements", "6", "--n-cross", "2", "--n-bacteria", "4",
                     "--published-epochs", "1", "--published-minutes", "0.05", "--compact-epochs", "1",
                     "--compact-minutes", "0.05", "--out-dir", str(out), "--cache-dir", str(tmp_path / "cache"),
                     "--threads", "2"])
    assert rc == 0
    pub, com = load_model(out / "screening-published.safetensors"), load_model(out / "screening-compact.safetensors")
    assert pub.input_kind == "phase" and pub.net.in_channels == 1
    assert com.input_kind == "phase-amplitude" and com.net.in_channels == 2 and "distilled_from" not in com.card
    for m in (pub, com):
        assert set(m.card["metrics"]) >= {"held_out", "cross_setup"}
    assert "bacteria71_to_cells45" in com.card
    log = (out / "screening-training.log").read_text()
    assert log.startswith("[") and "compact held-out" in log and "wrote" in log
