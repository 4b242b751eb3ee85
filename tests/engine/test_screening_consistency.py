"""Measurement-consistency features and the screening model's consistency stage (issue #19).

The features compare each field with the fields of nearest illumination; they are never trained
on a defect, so a defect of any kind must make its field stand out, and a field that differs only
because its illumination is steeper (dimmer, noisier: a condenser's fall-off) must not.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.models import ModelFileError
from engine.screening.consistency import (CONSISTENCY_FEATURES, MIN_FIELDS, consistency_features,
                                          consistency_features_by_measurement, nearest_illuminations,
                                          neighbour_difference, neighbour_residuals)
from engine.simulate.holograms import illumination_pattern

N_PX, PX, LAM = 96, 0.1, 0.532
RING = illumination_pattern(33, 0.9, LAM, "ring")  # 1 + 4 + 8 + 20 illuminations on rings


def measurement(noise: np.ndarray | float = 0.02, seed: int = 0) -> np.ndarray:
    """Ratio fields (N, 96, 96) of a weak round cell seen under the ring illuminations, complex noise ``noise``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:N_PX, :N_PX] - N_PX / 2
    out = []
    for k, (fx, fy) in enumerate(RING):
        sx, sy = 6 * fx * LAM, 6 * fy * LAM  # the projection moves a little with the illumination
        phase = 1.2 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * 12.0 ** 2))
        u = 0.98 * np.exp(1j * phase) + np.asarray(noise).reshape(-1)[min(k, np.size(noise) - 1)] * (
            rng.normal(size=(N_PX, N_PX)) + 1j * rng.normal(size=(N_PX, N_PX)))
        out.append(u)
    return np.asarray(out, np.complex64)


def column(name: str) -> int:
    return CONSISTENCY_FEATURES.index(name)


def test_clean_fields_score_near_zero_and_each_defect_stands_out_in_its_own_feature():
    f = measurement()
    y, x = np.mgrid[:N_PX, :N_PX]
    f[5] *= 1 - 0.6 * np.exp(-((x - 70) ** 2 + (y - 25) ** 2) / (2 * 5.0 ** 2))  # dust shadow
    f[12] *= 1 + 0.25 * np.exp(2j * np.pi * (x * 0.21 + y * 0.13))  # parasitic fringe (plane wave)
    f[20, ::7] *= 1.8  # row noise
    c = consistency_features(f, PX, LAM, RING)
    assert c.shape == (len(RING), len(CONSISTENCY_FEATURES)) and c.dtype == np.float32
    clean = np.setdiff1d(np.arange(len(RING)), [5, 12, 20])
    assert np.abs(c[clean]).max() < 5, np.abs(c[clean]).max(axis=0)  # robust z-scores
    assert c[5, column("amplitude_residual")] > 10
    assert c[12, column("spectral_peak")] > 10
    assert c[20, column("row_column")] > 10


def test_steep_dim_illuminations_are_compared_with_their_own_ring():
    # the outer ring is 4x noisier (a condenser's fall-off), as the exact-Mie spheres of #22 are
    r = np.hypot(RING[:, 0], RING[:, 1])
    noise = np.where(r > 0.9 * r.max(), 0.08, 0.02)
    f = measurement(noise, seed=3)
    outer = r > 0.9 * r.max()
    with_rings = consistency_features(f, PX, LAM, RING)
    against_all = consistency_features(f, PX, LAM, None)
    amp = column("amplitude_residual")
    assert np.abs(with_rings[outer, amp]).max() < 2  # like its neighbours on the same ring
    assert against_all[outer, amp].mean() > 5  # against the whole measurement they would look defective


def test_nearest_illuminations_take_the_same_ring_first_and_never_the_field_itself():
    nb = nearest_illuminations(RING, len(RING), k=6)
    assert nb.shape == (len(RING), 6)
    assert not np.any(nb == np.arange(len(RING))[:, None])
    r = np.round(np.hypot(RING[:, 0], RING[:, 1]), 6)
    outer = np.flatnonzero(r == r.max())
    assert all(set(r[nb[k]]) == {r.max()} for k in outer)
    allnb = nearest_illuminations(None, 9)
    assert allnb.shape == (9, 8) and not np.any(allnb == np.arange(9)[:, None])


def test_too_few_fields_is_a_clear_error_and_a_crop_set_gets_nan_rows():
    f = measurement()
    with pytest.raises(ValueError, match=f"at least {MIN_FIELDS} fields"):
        consistency_features(f[:MIN_FIELDS - 1], PX, LAM, RING[:MIN_FIELDS - 1])
    with pytest.raises(ValueError, match="shape"):
        consistency_features(f[0], PX, LAM)
    meas = np.r_[np.zeros(len(RING), int), np.ones(3, int)]
    fields = np.concatenate([f, f[:3]])
    out = consistency_features_by_measurement(fields, meas, np.full(len(meas), PX), np.full(len(meas), LAM),
                                              np.concatenate([RING, RING[:3]]))
    assert np.isfinite(out[:len(RING)]).all() and np.isnan(out[len(RING):]).all()


# ----------------------------------------------------------------------------- the model's stage
def _stage_card(tmp_path, **changes):
    from engine.screening.network import MODELS_DIR, load_model

    base = load_model("default")
    if base.consistency is None:
        pytest.skip("the shipped model has no consistency stage")
    for ext in (".safetensors", ".json"):
        shutil.copy(MODELS_DIR / f"screening-compact{ext}", tmp_path / f"m{ext}")
    card = json.loads((tmp_path / "m.json").read_text())
    card["consistency"].update(changes)
    (tmp_path / "m.json").write_text(json.dumps(card))
    return load_model(tmp_path / "m.safetensors")


def test_the_stage_raises_a_defective_field_and_leaves_fields_without_features(tmp_path):
    m = _stage_card(tmp_path)
    p = np.full(4, 0.2, np.float32)
    feats = np.zeros((4, len(m.consistency["weights"]) - 1), np.float32)  # 5 features (+ the tomographic input)
    feats[1, column("amplitude_residual")] = 2.0
    feats[2, column("spectral_peak")] = 2.0
    feats[3] = np.nan
    q = m.apply_consistency(p, feats)
    assert q[1] > q[0] and q[2] > q[0] and q[3] == pytest.approx(0.2)
    assert np.all((q >= 0) & (q <= 1))


@pytest.mark.parametrize("change, match", [({"scale": "zero"}, "scale"),
                                           ({"features": ["network_logit"]}, "features"),
                                           ({"weights": [1, 2]}, "features"),
                                           ({"bias": None}, "incomplete"),
                                           ({"spread_from": "everything"}, "spread_from")])
def test_a_broken_stage_in_a_card_is_refused_with_its_reason(tmp_path, change, match):
    if change.get("scale") == "zero":  # one scale of the card's length is 0
        from engine.screening.network import load_model

        n = len(load_model("default").card["consistency"]["scale"])
        change = {"scale": [1] * (n - 1) + [0]}
    m = _stage_card(tmp_path, **change)
    with pytest.raises(ModelFileError, match=match):
        m.apply_consistency(np.zeros(2), np.zeros((2, 5)))


@pytest.mark.parametrize("by_default", [False, True])
def test_screen_fields_reports_the_stage_and_uses_it_as_asked_or_as_the_card_says(tmp_path, by_default):
    from engine.screening.network import consistency_by_default, load_model, screen_fields

    class Meta:
        pixel_size_um, wavelength_um, na_objective, medium_index = PX, LAM, 1.0, 1.337

    f = measurement()
    y, x = np.mgrid[:N_PX, :N_PX]
    f[7] *= 1 - 0.7 * np.exp(-((x - 60) ** 2 + (y - 40) ** 2) / (2 * 6.0 ** 2))
    m = _stage_card(tmp_path, decides_by_default=by_default)
    assert m.consistency["by_default"] is by_default and consistency_by_default(tmp_path / "m.safetensors") is by_default
    plain = screen_fields(f, RING, Meta(), model=m, device="cpu")  # nobody says: the card decides
    assert plain.consistency.shape == (len(RING), 5) and plain.consistency_score.shape == (len(RING),)
    assert plain.consistency_used is by_default
    off = screen_fields(f, RING, Meta(), model=m, device="cpu", consistency=False)
    assert not off.consistency_used and off.consistency_score is not None  # computed, not deciding
    used = screen_fields(f, RING, Meta(), model=m, device="cpu", consistency=True)
    assert used.consistency_used and np.allclose(used.score, used.consistency_score)
    assert np.array_equal(used.decision, (used.score <= 0.5).astype(np.uint8))
    assert used.consistency_score[7] == used.consistency_score.max()
    few = screen_fields(f[:5], RING[:5], Meta(), model=m, device="cpu", consistency=True)
    assert few.consistency is None and not few.consistency_used
    assert any("consistency stage not used" in w for w in few.warnings)
    class Rotation(Meta):
        geometry = "sample-rotation"

    for asked in (None, True):  # the stage compares illuminations of a still sample: not a rotation series
        turned = screen_fields(f, np.zeros_like(RING), Rotation(), model=m, device="cpu", consistency=asked)
        assert not turned.consistency_used and turned.consistency is None
        assert any("sample-rotation" in w for w in turned.warnings) is bool(asked)
    single = screen_fields(f[:1], RING[:1], Meta(), model=m, device="cpu")  # one hologram: nothing to say
    assert not single.consistency_used and not any("consistency stage" in w for w in single.warnings)
    published = load_model("published")
    with pytest.raises(ValueError, match="no consistency stage"):
        screen_fields(f, RING, Meta(), model=published, device="cpu", consistency=True)
    assert not screen_fields(f, RING, Meta(), model=published, device="cpu").consistency_used
    assert consistency_by_default("published") is False and consistency_by_default(tmp_path / "none") is False


def test_the_stage_round_trips_through_the_result_file(tmp_path):
    from engine.store.results import read_result, write_result

    n = 9
    scr = {"score": np.linspace(0, 1, n), "rule_peak": np.zeros(n), "decision": np.ones(n, np.uint8),
           "source": np.zeros(n, np.uint8), "model": "m 1", "consistency": np.ones((n, 5)),
           "consistency_score": np.full(n, 0.3), "consistency_used": True}
    out = write_result(tmp_path / "r.odt.h5", measurement_json="{}", screening=scr)
    back = read_result(out).screening
    assert back.consistency.shape == (n, 5) and back.consistency.dtype == np.float32
    assert np.allclose(back.consistency_score, 0.3) and back.consistency_used
    scr.pop("consistency_score")
    scr["consistency"] = np.ones((n - 1, 5))
    with pytest.raises(ValueError, match="consistency"):
        write_result(tmp_path / "bad.odt.h5", measurement_json="{}", screening=scr)
    old = {k: v for k, v in scr.items() if not k.startswith("consistency")}
    plain = read_result(write_result(tmp_path / "old.odt.h5", measurement_json="{}", screening=old)).screening
    assert plain.consistency is None and plain.consistency_score is None and not plain.consistency_used


def test_polarised_images_are_compared_within_their_own_polarisation():
    """J_xx and J_yy of every illumination are screened apart, so that the stage compares a J_xx field
    with J_xx neighbours; a defect in one J_yy image drops its illumination's four images."""
    from types import SimpleNamespace

    from engine.pipeline.process import ProcessOptions, _screen_polarised
    from engine.screening.network import load_model

    if load_model("default").consistency is None:
        pytest.skip("the shipped model has no consistency stage")
    n = len(RING)
    xx, yy = measurement(seed=1), measurement(seed=2) * np.float32(0.7)  # the other polarisation: dimmer
    y, x = np.mgrid[:N_PX, :N_PX]
    yy[9] *= 1 - 0.8 * np.exp(-((x - 48) ** 2 + (y - 30) ** 2) / (2 * 8.0 ** 2))
    cross = measurement(seed=3) * np.float32(0.05)
    fields = np.concatenate([xx, cross, cross, yy])
    table = np.stack([np.stack([np.arange(n), n + np.arange(n)], 1),
                      np.stack([2 * n + np.arange(n), 3 * n + np.arange(n)], 1)], 1)  # (n, 2, 2)
    meta = SimpleNamespace(wavelength_um=LAM, pixel_size_um=PX)
    res = _screen_polarised(fields, np.tile(RING, (4, 1)), table, PX, meta,
                            ProcessOptions(screen="model", screen_consistency=True, device="cpu"), None, None)
    assert res.decision.shape == (4 * n,) and np.isnan(res.score[n:3 * n]).all()
    assert np.isfinite(res.score[table[:, 0, 0]]).all() and np.isfinite(res.score[table[:, 1, 1]]).all()
    assert res.score[table[9, 1, 1]] == res.score[table[:, 1, 1]].max()  # the defect stands out among J_yy
    assert all(res.decision[table[k]].min() == res.decision[table[k]].max() for k in range(n))  # 4 images alike


def test_neighbour_residuals_keep_a_fields_own_defect_where_it_is_and_cancel_the_sample():
    f = measurement(noise=0.005)
    f[7] *= 0.7 * np.exp(0.9j)  # another brightness and global phase: not a defect
    y, x = np.mgrid[:N_PX, :N_PX]
    shadow = np.exp(-((x - 70) ** 2 + (y - 25) ** 2) / (2 * 4.0 ** 2))
    f[5] *= 1 - 0.6 * shadow  # dust shadow on field 5 only
    r = neighbour_residuals(f, RING)
    assert r.shape == (len(RING), 2) + f.shape[1:] and r.dtype == np.float32
    others = np.setdiff1d(np.arange(len(RING)), [5])
    assert np.abs(r[others]).max() < 0.2  # the cell and field 7's scale cancel; the noise stays small
    assert r[5, 1, 25, 70] < np.log(0.5) and abs(r[5, 1, 80, 10]) < 0.1  # the shadow, where it is, and only there
    assert np.abs(r[5, 0]).max() < 0.2  # an amplitude-only defect leaves the phase


def test_neighbour_residuals_need_a_measurement():
    with pytest.raises(ValueError, match="at least"):
        neighbour_residuals(measurement()[:MIN_FIELDS - 1], RING[:MIN_FIELDS - 1])


def test_neighbour_difference_shows_a_fields_own_bubble_on_the_whole_field():
    f = measurement(noise=0.005)
    y, x = np.mgrid[:N_PX, :N_PX]
    f[9] *= np.exp(-0.8j * np.exp(-((x - 20) ** 2 + (y - 75) ** 2) / (2 * 3.0 ** 2)))  # a phase-only bubble
    img = neighbour_difference(f, RING, 9)
    assert img.shape == (N_PX, N_PX) and img.dtype == np.float32
    assert img[75, 20] > 0.5 and np.median(img) < 0.05  # |1 - exp(-0.8i)| = 0.78 at its centre
    assert neighbour_difference(f, RING, 3).max() < 0.1  # a clean field: the cell cancels
    with pytest.raises(ValueError, match="not one of"):
        neighbour_difference(f, RING, len(RING))


def test_a_stage_with_the_tomographic_input_needs_the_optics_and_says_so(tmp_path):
    from engine.screening.network import screen_fields

    base = _stage_card(tmp_path).card["consistency"]
    six = {k: list(base[k])[:6] for k in ("mean", "scale", "weights")}
    m = _stage_card(tmp_path, features=["network_logit", *CONSISTENCY_FEATURES, "tomographic_residual"],
                    mean=six["mean"] + [0.0], scale=six["scale"] + [1.0], weights=six["weights"] + [2.0],
                    spread_from="network_clean")
    assert m.consistency["tomographic"] and m.consistency["spread_from"] == "network_clean"

    class Bare:
        pixel_size_um, wavelength_um = PX, LAM

    class Full(Bare):
        na_objective, medium_index = 1.0, 1.337

    f = measurement()
    y, x = np.mgrid[:N_PX, :N_PX]
    f[7] *= 1 - 0.7 * np.exp(-((x - 60) ** 2 + (y - 40) ** 2) / (2 * 6.0 ** 2))
    bare = screen_fields(f, RING, Bare(), model=m, device="cpu", consistency=True)
    assert not bare.consistency_used and bare.consistency.shape == (len(RING), 5)
    assert any("tomographic input needs" in w for w in bare.warnings)
    full = screen_fields(f, RING, Full(), model=m, device="cpu", consistency=True)
    assert full.consistency_used and full.consistency.shape == (len(RING), 5)  # result files keep five columns
    assert int(np.argmax(full.consistency_score)) == 7


def _member_stage(tmp_path, weights_of_members):
    """The shipped card's stage (its first six inputs) with the tomographic input and each member's logit."""
    base = _stage_card(tmp_path).card["consistency"]
    six = {k: list(base[k])[:6] for k in ("mean", "scale", "weights")}
    return _stage_card(tmp_path, features=["network_logit", *CONSISTENCY_FEATURES, "tomographic_residual",
                                           "member_logit_0", "member_logit_1"],
                       mean=six["mean"] + [0.0, 0.0, 0.0], scale=six["scale"] + [1.0, 1.0, 1.0],
                       weights=six["weights"] + [0.5, *weights_of_members], spread_from="network_clean")


def test_a_stage_with_each_members_logit_runs_them_once_and_follows_them(tmp_path):
    from engine.screening.network import preprocess, screen_fields

    m = _member_stage(tmp_path, [0.0, 3.0])
    if not m.member_labels:
        pytest.skip("the shipped model is one network")
    assert m.consistency["members"] and m.consistency["tomographic"]
    f = measurement()
    x = preprocess(f, input_kind=m.input_kind, crop=m.crop)
    p, members = m.predict_with_members(x, batch_size=7)  # one pass of the members, in batches
    assert np.allclose(p, m.predict_tensor(x), atol=1e-6) and np.allclose(members, m.member_probabilities(x), atol=1e-6)

    class Optics:
        pixel_size_um, wavelength_um, na_objective, medium_index = PX, LAM, 1.0, 1.337

    given = m.measurement_consistency(f, PX, LAM, RING, p, na_objective=1.0, medium_index=1.337,
                                      member_probability=members)
    computed = m.measurement_consistency(f, PX, LAM, RING, p, na_objective=1.0, medium_index=1.337)
    assert np.allclose(given[1], computed[1], atol=1e-6)  # without them, the stage runs the members itself
    screened = screen_fields(f, RING, Optics(), model=m, device="cpu", consistency=True)
    assert np.allclose(screened.consistency_score, given[1], atol=1e-5)
    # the retrieval's unwrapped phase (not stored in result files) does not change the stage: a measurement
    # scores the same right after retrieval and when screened again from its stored fields
    shifted = np.angle(f) + 2 * np.pi * (np.arange(len(f)) % 3)[:, None, None]
    again = screen_fields(f, RING, Optics(), model=m, device="cpu", consistency=True, unwrapped_phase=shifted)
    assert np.array_equal(again.consistency_score, screened.consistency_score)
    # the stage follows member 1's logit: raising it raises every field's score
    louder = m.measurement_consistency(f, PX, LAM, RING, p, na_objective=1.0, medium_index=1.337,
                                       member_probability=np.column_stack([members[:, 0], np.full(len(f), 0.99)]))
    assert np.all(louder[1] > given[1])


def test_member_logits_for_a_model_without_those_members_are_refused(tmp_path):
    m = _member_stage(tmp_path, [1.0, 1.0])
    card = dict(m.card)
    card["consistency"] = {**card["consistency"], "features": card["consistency"]["features"][:-1] + ["member_logit_7"]}
    (tmp_path / "m.json").write_text(json.dumps(card))
    from engine.screening.network import load_model

    with pytest.raises(ModelFileError, match="member_logit_k"):
        _ = load_model(tmp_path / "m.safetensors").consistency


def test_a_batch_result_file_records_what_the_stage_did(tmp_path):
    """``odt-studio batch``'s result file keeps the stage's features and score and says whether it decided
    (``screening/consistency_used``, the model labelled ``+consistency``), as a project's result file does."""
    from engine.pipeline.process import process_folder
    from engine.pipeline.project_screening import CONSISTENCY_SUFFIX
    from engine.screening.network import load_model
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo
    from engine.store.results import read_result

    stage = load_model("default").consistency
    if stage is None:
        pytest.skip("the shipped model has no consistency stage")
    folder = write_demo(tmp_path / "in", "beads", count=1, seed=11, config=tiny_demo_config(), device="cpu")[0]
    for asked, name in ((None, "default"), (False, "off")):
        process_folder(folder, tmp_path / f"{name}.odt.h5", device="cpu", screen_consistency=asked)
        s = read_result(tmp_path / f"{name}.odt.h5", groups=["screening"]).screening
        decided = stage["by_default"] if asked is None else asked
        assert s.consistency is not None and s.consistency.shape == (15, 5) and s.consistency_score.shape == (15,)
        assert s.consistency_used is decided and s.model.endswith(CONSISTENCY_SUFFIX) is decided
        if decided:
            assert np.allclose(s.score, s.consistency_score)
    assert stage["by_default"]  # the shipped 3.4.0 card: the stage decides when nobody says
