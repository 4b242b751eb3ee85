"""The learned regulariser is honest about its domain (#22 item 4): model card, domain_check, pipeline warnings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.simulate.holograms import illumination_pattern
from engine.tomography.deep_regularizer import (DEFAULT_MODEL_NAME, domain_check, domain_excess, measurement_setup,
                                                model_card, pipeline_domain_warnings)
from engine.training.deep_regularizer import SETUPS, training_domain

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CARD = REPO / "resources" / "models" / f"{DEFAULT_MODEL_NAME}.json"

CARD = {"name": "toy", "version": "9", "domain": {
    "na_objective": [1.0, 1.2], "medium_index": [1.333, 1.337], "wavelength_um": [0.457, 0.633],
    "voxel_um": [0.08, 0.2], "n_illuminations": [31, 49], "illumination_na_fraction": [0.85, 0.95],
    "illumination_patterns": ["spiral"]}}


def _meta(na=1.2, nm=1.337, lam=0.532, px=0.1, n=49, na_ill=1.1, pattern="spiral") -> dict:
    return {"na_objective": na, "medium_index": nm, "wavelength_um": lam, "pixel_size_um": px,
            "illumination_per_um": illumination_pattern(n, na_ill, lam, pattern=pattern).tolist()}


def test_inside_the_domain_gives_no_warning():
    assert domain_check(_meta(), CARD) == []


def test_each_quantity_outside_is_named_with_its_distance():
    w = domain_check(_meta(na=1.4, nm=1.52, na_ill=1.26), CARD)
    assert len(w) == 2
    na = next(s for s in w if "objective NA" in s)
    assert "1.40 is above" in na and "1.00–1.20" in na and "by 0.20" in na and "17 %" in na
    nm = next(s for s in w if "medium index" in s)
    assert "1.5200 is above" in nm and "by 0.1830" in nm


@pytest.mark.parametrize("kwargs, word", [({"lam": 0.405}, "wavelength"), ({"px": 0.3}, "pixel"),
                                           ({"n": 15}, "number of illuminations"),
                                           ({"na_ill": 0.6}, "illumination NA")])
def test_other_quantities(kwargs, word):
    w = domain_check(_meta(**kwargs), CARD)
    side = "above" if "px" in kwargs else "below"
    assert len(w) == 1 and word in w[0] and f"is {side} its training range" in w[0]


def test_ring_illuminations_warn_on_a_spiral_trained_model():
    # 49 = 1 + 8 + 16 + 24 on rings: few distinct radii
    assert measurement_setup(_meta(pattern="ring"))["pattern"] == "ring"
    assert measurement_setup(_meta(pattern="spiral"))["pattern"] == "spiral"
    w = domain_check(_meta(pattern="ring"), CARD)
    assert any("ring pattern" in s for s in w)


def test_used_fields_are_what_counts():
    used = np.zeros(49, bool)
    used[:20] = True
    w = domain_check(_meta(), CARD, used=used)
    assert any("number of illuminations 20 is below" in s for s in w)


def test_domain_excess_is_the_largest_relative_distance_outside():
    assert domain_excess(_meta(), CARD) == (0.0, "")
    excess, what = domain_excess(_meta(na=1.4, nm=1.52), CARD)  # NA 17 % above, n_m 14 % above
    assert what == "objective NA" and excess == pytest.approx(0.2 / 1.2)
    used = np.zeros(49, bool)
    used[:20] = True  # 20 of 49 illuminations: 35 % below 31
    excess, what = domain_excess(_meta(), CARD, used=used)
    assert what == "number of illuminations" and excess == pytest.approx(11 / 31)
    assert domain_excess(_meta(na=1.4), {"name": "old"}) == (0.0, "")


def test_a_cards_weights_count_a_quantity_less_and_say_so():
    card = {**CARD, "domain_excess_weights": {"n_illuminations": 0.2}}  # 20 illuminations: 35 % below 31
    excess, what = domain_excess(_meta(n=20), card)
    assert excess == pytest.approx(0.2 * 11 / 31) and what == "number of illuminations 35 % out, counted ×0.2"
    excess, what = domain_excess(_meta(n=20, na=1.4), card)  # an unweighted quantity further out wins
    assert what == "objective NA" and excess == pytest.approx(0.2 / 1.2)
    assert domain_excess(_meta(n=20), {**CARD, "domain_excess_weights": "nonsense"})[0] == pytest.approx(11 / 31)


def test_the_shipped_card_counts_20_illuminations_as_inside_the_tolerance():
    """2.2.0's card: 20 illuminations (20 % below 25) count as 4 %, the pipeline's default tolerance
    (``bench_deep_regularizer_setup_scan.py``: about as far from TV as 4 % of illumination NA); 15 (40 %
    below) count as 8 %, and TV runs in the learned step's place."""
    from engine.pipeline.process import DEFAULT_DEEP_DOMAIN_TOLERANCE, ProcessOptions, _deep_or_tv

    card = model_card()
    assert card["domain"]["n_illuminations"][0] == 25 and card["domain_excess_weights"]["n_illuminations"] == 0.2
    opts = ProcessOptions(regularize="deep")
    for n, route in ((20, None), (15, "tv")):
        meta = _meta(n=n, na_ill=0.85 * 1.2)
        excess, what = domain_excess(meta, card)
        assert excess == pytest.approx(0.2 * (25 - n) / 25) and "number of illuminations" in what
        choice = _deep_or_tv(meta, np.asarray(meta["illumination_per_um"]), np.ones(n, np.uint8), opts)
        assert (choice if choice is None else choice[0]) == route
    assert DEFAULT_DEEP_DOMAIN_TOLERANCE == pytest.approx(0.04)
    # 405 nm light (10 % below the trained 0.45 µm) counts x0.25: 2.5 %, the learned step runs
    meta = _meta(lam=0.405, na_ill=0.85 * 1.2)
    excess, what = domain_excess(meta, card)
    assert excess == pytest.approx(0.25 * 0.045 / 0.45) and "wavelength" in what
    assert _deep_or_tv(meta, np.asarray(meta["illumination_per_um"]), np.ones(49, np.uint8), opts) is None


def test_a_card_without_domain_says_so():
    w = domain_check(_meta(), {"name": "old", "version": "1"})
    assert len(w) == 1 and "does not state the setups" in w[0]


def test_shipped_card_domain_is_derived_from_the_training_code():
    card = json.loads(SHIPPED_CARD.read_text(encoding="utf-8"))
    gen = card["training"]["generator"]
    expected = training_domain(gen.split(" + "), card["training"].get("bead_max_phase_delay_rad", math.inf))
    assert json.loads(json.dumps(expected, default=float)) == card["domain"]
    # the setups the card lists are those the generator used
    if gen == "deepreg-pairs/1":
        assert card["domain"]["na_objective"] == [min(s.na_objective for s in SETUPS),
                                                  max(s.na_objective for s in SETUPS)]
    assert model_card("default")["domain"] == card["domain"]


def test_shipped_card_accepts_its_own_training_setups():
    card = model_card("default")
    if "deepreg-pairs/1" not in card["training"]["generator"]:
        pytest.skip("checked for the v1 setups only")
    for s in SETUPS:
        meta = _meta(na=s.na_objective, nm=s.medium_index, lam=s.wavelength_um, n=s.n_angles,
                     na_ill=s.na_condenser, px=0.1)
        assert domain_check(meta, card) == [], s.name


def test_pipeline_warnings_are_prefixed_with_the_measurement():
    w = pipeline_domain_warnings("cell_07", _meta(nm=1.58))
    assert w and all(s.startswith("cell_07: ") for s in w)
    nm = next(s for s in w if "medium index" in s)
    assert math.isclose(float(nm.split("medium index n_m ")[1].split()[0]), 1.58)


def test_pipeline_and_batch_log_carry_the_domain_warnings(tmp_path):
    """The tiny self-test acquisition (15 illuminations on rings) is outside the shipped model's
    setups: the result's warnings, the result file and the batch log say so; TV does not warn."""
    import h5py

    from app.cli import main as cli_main
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    folder = write_demo(tmp_path / "in", kind="beads", count=1, seed=3, config=tiny_demo_config(), device="cpu")[0]
    expected = pipeline_domain_warnings(folder.name, json.loads((folder / "measurement.json").read_text()))
    assert expected, "the tiny acquisition should be outside the shipped model's domain"
    out = tmp_path / "deep.odt.h5"
    res = process_measurement(folder, out, ProcessOptions(screen="none", regularize="deep", device="cpu"))
    domain = [w for w in res.warnings if "outside its training domain" in w]
    assert domain and any("number of illuminations 15" in w for w in domain)
    with h5py.File(out, "r") as f:
        assert any("outside its training domain" in w for w in json.loads(f.attrs["warnings"]))
    # 15 illuminations are 40 % below the trained 25: TV ran in the learned step's place, and the file says so
    assert res.tomogram.ri_deep is None
    assert res.tomogram.ri_tv is not None and res.regularize_route[0] == "tv"
    fallback = [w for w in res.warnings if "TV ran instead" in w]
    # the card counts the number of illuminations x0.2: 40 % below is 8 %, twice the 4 % tolerance
    assert len(fallback) == 1 and "8 % outside" in fallback[0] and "number of illuminations 40 % out" in fallback[0]
    with h5py.File(out, "r") as f:
        assert "ri_tv" in f["tomogram"] and "ri_deep" not in f["tomogram"]
        rec = json.loads(f.attrs["processing_options"])
    assert rec["regularize"] == "deep" and rec["regularize_route"] == "tv" and "40 % out" in rec["regularize_route_reason"]
    assert rec["deep_domain_tolerance"] == pytest.approx(0.04)
    kept = process_measurement(folder, None, ProcessOptions(screen="none", regularize="deep", device="cpu",
                                                            deep_domain_tolerance=0.5))
    assert kept.tomogram.ri_deep is not None and kept.tomogram.ri_tv is None and kept.regularize_route is None
    assert not any("TV ran instead" in w for w in kept.warnings)
    assert any("outside its training domain" in w for w in kept.warnings)  # it still warns
    res_tv = process_measurement(folder, tmp_path / "none.odt.h5", ProcessOptions(screen="none", device="cpu"))
    assert not any("training domain" in w for w in res_tv.warnings)

    rc = cli_main(["batch", str(folder.parent), "--out", str(tmp_path / "out"), "--screen", "none",
                   "--device", "cpu", "--regularize", "deep", "--deep-domain-tolerance", "none"])
    assert rc == 0
    log = (tmp_path / "out" / "logs" / f"{folder.name}.log").read_text(encoding="utf-8")
    assert "outside its training domain" in log and "number of illuminations 15" in log
    assert "TV ran instead" not in log
    with h5py.File(tmp_path / "out" / f"{folder.name}.odt.h5", "r") as f:
        assert "ri_deep" in f["tomogram"] and json.loads(f.attrs["processing_options"])["deep_domain_tolerance"] is None


def test_processing_options_refuse_a_bad_tolerance_and_the_cli_parses_none():
    from app.cli import DEFAULT_DEEP_DOMAIN_TOLERANCE as CLI_DEFAULT
    from app.cli import _tolerance
    from engine.pipeline.process import DEFAULT_DEEP_DOMAIN_TOLERANCE, ProcessOptions

    assert CLI_DEFAULT == DEFAULT_DEEP_DOMAIN_TOLERANCE == ProcessOptions().deep_domain_tolerance
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="deep_domain_tolerance"):
            ProcessOptions(deep_domain_tolerance=bad)
    assert _tolerance("none") is None and _tolerance("0.25") == 0.25


def test_cost_estimate_names_tv_in_the_learned_steps_place():
    """With the fallback on, the estimate says what TV would add; with it off, nothing is added."""
    from engine.pipeline.cost import CostCalibration, estimate_seconds
    from engine.pipeline.process import ProcessOptions

    cal = CostCalibration(fft3=1e-9, fft2=1e-9, tv=2e-8, screen_a=1e-4, screen_b=1e-8)
    on = estimate_seconds(ProcessOptions(regularize="deep"), (64, 128, 128), 49, 1, cal)
    off = estimate_seconds(ProcessOptions(regularize="deep", deep_domain_tolerance=None), (64, 128, 128), 49, 1, cal)
    tv = estimate_seconds(ProcessOptions(regularize="tv"), (64, 128, 128), 49, 1, cal)
    assert on.seconds == off.seconds and not off.optional
    assert on.seconds_max == pytest.approx(tv.seconds)
    assert "if TV runs in the learned step's place" in on.describe() and "up to" not in off.describe()
