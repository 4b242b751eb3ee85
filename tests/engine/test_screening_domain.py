"""The screening model's training domain: what its card states and how a measurement is compared (#19).

The real holograms of ``tests/data`` are the independent check: their pupils are sampled at
0.23–0.32 of Nyquist, outside the 0.375–0.452 the shipped model was trained on, and
qpformat's file has no background hologram. The screen must say so, in the pipeline's
warnings (batch log, result file, GUI banner), without changing a decision.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.metadata import MeasurementMetadata
from engine.screening.domain import background_kind, screening_domain_check, training_domain

DATA = Path(__file__).resolve().parents[1] / "data"
MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
CARD = {"name": "screening-compact", "version": "9.9.9", "input": {"crop": 128},
        "domain": {"pupil_fraction": [0.375, 0.452], "crop_um": [12.8, 12.8], "background": "measured"}}


def _meta(**kw) -> MeasurementMetadata:
    d = {"format": "odt-measurement/1", "wavelength_um": 0.532, "medium_index": 1.337, "na_objective": 1.1,
         "pixel_size_um": 0.1, **kw}
    return MeasurementMetadata.from_dict(d)


def test_training_domain_from_setup_names():
    setups = ["cells-71-na1.00-noise1.0", "beads-45-na1.20-noise0.5", "bacteria-49-na0.60-noise2.0"]
    d = training_domain(setups, np.full(3, 0.1), np.full(3, 0.532))
    assert d["pupil_fraction"] == [0.225, 0.452]  # 2·0.1·0.6/0.532 = 0.2256 floored, 0.4511 ceiled
    assert d["crop_um"] == [12.8, 12.8] and d["background"] == "measured"
    assert "pupil_fraction" not in training_domain(["no-na-here"], np.ones(1) * 0.1, np.ones(1) * 0.5)


def test_inside_the_domain_gives_no_warning():
    assert screening_domain_check(_meta(), CARD, field_shape=(160, 160)) == []
    assert screening_domain_check(_meta(na_objective=1.2), CARD, field_shape=(128, 200)) == []


def test_pupil_sampling_and_crop_width_outside_say_by_how_much():
    w = screening_domain_check(_meta(na_objective=0.6), CARD, field_shape=(160, 160))
    assert len(w) == 1 and "pupil sampling" in w[0] and "0.226 is below its training range 0.375–0.452" in w[0]
    assert "(by 0.149, 40 %)" in w[0]
    # a finer camera pixel: the pupil is sampled coarser and the crop covers less of the sample
    w = screening_domain_check(_meta(pixel_size_um=0.085, na_objective=1.0), CARD, field_shape=(160, 160))
    assert any("pupil sampling" in x and "0.320 is below its training range" in x for x in w)
    assert any("crop 10.9 µm is below its training range 12.8–12.8 µm" in x for x in w)


def test_synthesised_background_small_fields_and_cards_without_domain():
    synth = _meta(qpformat={"background": "synthesised: ideal fringes of the detected carrier"})
    assert background_kind(synth) == "synthesised" and background_kind(_meta()) == "measured"
    w = screening_domain_check(synth, CARD, field_shape=(160, 160))
    assert len(w) == 1 and "no background hologram" in w[0]
    w = screening_domain_check(_meta(), CARD, field_shape=(64, 64))
    assert len(w) == 1 and "64 × 64 px" in w[0] and "zero padding" in w[0]
    no_domain = {k: v for k, v in CARD.items() if k != "domain"}
    w = screening_domain_check(_meta(), no_domain, field_shape=(160, 160))
    assert len(w) == 1 and "does not state the setups it was trained for" in w[0]


def test_the_shipped_ensemble_states_the_domain_of_its_widely_trained_member():
    card = json.loads((MODELS / "screening-compact.json").read_text(encoding="utf-8"))
    d = card["domain"]
    # generator 2's wide-NA sets: NA 0.6–1.25 at 0.1 µm pixels and 532 nm, with and without a measured background
    assert d["pupil_fraction"][0] == pytest.approx(0.6 * 2 * 0.1 / 0.532, abs=0.001)
    assert d["pupil_fraction"][1] == pytest.approx(1.25 * 2 * 0.1 / 0.532, abs=0.001)
    assert d["crop_um"] == [12.8, 12.8] and d["background"] == "any"
    assert "member 1" in card["domain_note"] and card["training_data"]["generator_version"] == "screening-families/2"


@pytest.mark.parametrize("name", ["screening-published"])
def test_shipped_cards_state_their_domain(name):
    card = json.loads((MODELS / f"{name}.json").read_text(encoding="utf-8"))
    d = card["domain"]
    # generator 1: NA 1.0–1.2 at 0.1 µm pixels and 532 nm, fields divided by a measured background
    assert d["pupil_fraction"] == [0.375, 0.452] and d["crop_um"] == [12.8, 12.8] and d["background"] == "measured"
    setups = list(card["training_data"]["train"]["setups"])
    assert training_domain(setups, np.full(len(setups), 0.1), np.full(len(setups), 0.532))["pupil_fraction"] == \
        d["pupil_fraction"]


def test_real_hologram_without_background_is_flagged_and_scored_as_before():
    """qpformat's real hologram (NA 1.0, 85 nm pixels, no background): the warnings each domain gives, same score."""
    from engine.holography.retrieval import retrieve_fields
    from engine.screening import screen_fields
    from engine.screening.network import _centre_crop, load_model, preprocess
    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    m = read_qpformat_hdf5(DATA / "single_hdf5_raw-oah.h5")
    r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, device="cpu")
    s = screen_fields(r.field, r.illumination_per_um, m.metadata, method="model", pixel_size_um=r.pixel_size_um,
                      device="cpu")
    # the shipped 3.0.0 was trained over pupil fractions 0.225–0.47, with and without a background: only the crop
    assert len(s.warnings) == 1 and "crop 10.8 µm is below" in s.warnings[0], s.warnings
    # the published net, trained on generator 1's narrow setups with measured backgrounds: all three
    text = " | ".join(screen_fields(r.field, r.illumination_per_um, m.metadata, model="published",
                                    pixel_size_um=r.pixel_size_um, device="cpu").warnings)
    assert text.count("outside its training domain") == 3, text
    assert "0.319 is below its training range 0.375–0.452 (by 0.056, 15 %)" in text
    assert "crop 10.8 µm is below" in text and "no background hologram" in text
    model = load_model("default", device="cpu")  # the warnings change nothing the model computes
    x = preprocess(_centre_crop(np.asarray(r.field), 128), input_kind=model.input_kind, crop=model.crop)
    assert np.allclose(s.score, model.predict_tensor(x), atol=1e-6)


def test_the_pipeline_reports_the_warnings(tmp_path):
    """process_measurement puts them in its warnings and the result file (batch log and GUI read these)."""
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    folder = write_demo(tmp_path / "in", kind="beads", count=1, seed=3, config=tiny_demo_config(), device="cpu")[0]
    out = tmp_path / "m.odt.h5"
    res = process_measurement(folder, out, ProcessOptions(screen="model", non_negativity=False, device="cpu"))
    mine = [w for w in res.warnings if "screening model" in w]
    assert mine and all(w.startswith(f"{folder.name}: screening model screening-compact") for w in mine)
    assert any("64 × 64 px" in w for w in mine)  # the tiny demo's fields are smaller than the crop
    with h5py.File(out, "r") as f:
        assert set(mine) <= set(json.loads(f.attrs["warnings"]))
    none = process_measurement(folder, None, ProcessOptions(screen="none", non_negativity=False, device="cpu"))
    assert not [w for w in none.warnings if "screening model" in w]  # no model, no model domain


def test_fine_tuning_widens_the_domain_to_the_labs_setups():
    """A lab's fine-tuned model has seen the lab's setups: they stop being warned about."""
    from engine.screening.domain import measurement_screening_setup, widened_domain

    lab = _meta(pixel_size_um=0.085, na_objective=1.0, qpformat={"background": "synthesised: ideal fringes"})
    wider = widened_domain(CARD["domain"], [measurement_screening_setup(lab)])
    assert wider["pupil_fraction"][0] == pytest.approx(2 * 0.085 * 1.0 / 0.532) and wider["pupil_fraction"][1] == 0.452
    assert wider["crop_um"] == pytest.approx([128 * 0.085, 12.8]) and wider["background"] == "any"
    assert wider["widened_by_fine_tuning"] == 1
    assert screening_domain_check(lab, {**CARD, "domain": wider}, field_shape=(160, 160)) == []
    assert screening_domain_check(lab, CARD, field_shape=(160, 160))  # the base model still warns
    assert widened_domain(None, [measurement_screening_setup(lab)]) is None
