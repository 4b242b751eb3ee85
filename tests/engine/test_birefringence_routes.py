"""The ``auto`` birefringence route (#20 item 4): the choice rule, the facts it measures, its record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.birefringence.jones import JonesFields
from engine.birefringence.routes import (
    REFINED_MAX_WORK,
    ROUTE_ATTR,
    ROUTES,
    STRONG_PHASE_RAD,
    RouteChoice,
    SampleFacts,
    _default_card,
    axial_voxels,
    choose_route,
    generator_domain,
    measure_sample,
)
from engine.metadata import MeasurementMetadata
from engine.pipeline.process import ProcessOptions, process_measurement


def _md(wavelength=0.532, medium=1.46, na=1.2) -> MeasurementMetadata:
    return MeasurementMetadata(wavelength_um=wavelength, medium_index=medium, na_objective=na, pixel_size_um=0.1)


CARD = {"input": {"setup": {"wavelength_um": 0.532, "medium_index": 1.46, "na_objective": 1.2,
                            "n_illuminations": 25}},
        "training": {"data": "bipolar/radial, radius 1.0-2.4 um, centre +-0.5 um"}}


def test_domain_of_the_shipped_card_is_its_training_setup():
    card = _default_card()
    if card is None:
        pytest.skip("the learned generator is not installed")
    d = generator_domain(card)
    setup = card["input"]["setup"]
    for key in ("wavelength_um", "medium_index", "na_objective"):
        lo, hi = d[key]
        assert lo < setup[key] < hi and hi - lo < 0.05 * setup[key]
    assert d["n_illuminations"] == (setup["n_illuminations"],) * 2
    assert d["radius_um"][1] < 3.0  # trained on small droplets only (r <= 2.4 um for card 1.0.0)
    # a card that states its own domain is read as it is
    wide = generator_domain({**card, "domain": {"radius_um": [1, 4], "medium_index": [1.33, 1.53]}})
    assert wide == {"radius_um": (1.0, 4.0), "medium_index": (1.33, 1.53)}
    assert generator_domain(None) is None


@pytest.mark.parametrize("facts, shape, n_ill, md, want", [
    (SampleFacts(4.0, 1.8), (96, 96), 25, _md(), "learned"),                 # inside the domain
    (SampleFacts(5.5, 3.4), (256, 256), 25, _md(), "dtt-refined"),           # too large for the network, strong
    (SampleFacts(5.5, 1.8), (256, 256), 25, _md(0.633, 1.45), "dtt-refined"),  # other setup, strong
    (SampleFacts(1.0, 3.4), (128, 128), 25, _md(0.633, 1.53), "dtt"),          # weak: DTT's director is as good
    (SampleFacts(6.0, 3.4), (256, 320), 25, _md(0.633, 1.45), "dtt"),          # strong, beyond the refine bound
    (SampleFacts(4.0, 1.8), (96, 96), 16, _md(), "dtt-refined"),             # other illumination count
    (SampleFacts(4.0, 2.9), (96, 96), 25, _md(), "dtt-refined"),             # droplet larger than trained
    (None, (96, 96), 25, _md(), "dtt"),                                      # nothing measured: not learned
])
def test_choice_rule(facts, shape, n_ill, md, want):
    c = choose_route(md, shape, n_ill, facts=facts, card=CARD)
    assert isinstance(c, RouteChoice) and c.method == want, c
    assert c.requested == "auto" and c.reason
    assert c.facts["work"] == n_ill * shape[0] * shape[1]
    if want != "learned":
        assert "not learned" in c.reason
    if facts is not None and want != "learned":
        assert ("strong" in c.reason) == (facts.phase_delay_rad >= STRONG_PHASE_RAD)
    assert json.loads(c.to_json())["method"] == want


def test_no_generator_means_never_learned_and_explicit_routes_are_honoured():
    assert choose_route(_md(), (96, 96), 25, facts=SampleFacts(4.0, 1.8), card=None).method == "dtt-refined"
    assert choose_route(_md(), (96, 96), 25, facts=SampleFacts(1.0, 1.8), card=None).method == "dtt"
    for route in ROUTES:
        c = choose_route(_md(), (2048, 2048), 100, facts=SampleFacts(4.0, 1.8), card=CARD, requested=route)
        assert (c.method, c.requested, c.reason) == (route, route, "asked for")
    with pytest.raises(ValueError, match="auto"):
        choose_route(_md(), (96, 96), 25, requested="magic")
    assert 25 * 256 * 256 == REFINED_MAX_WORK


def _sphere_jones(n: int, pixel: float, radius: float, phase: float) -> JonesFields:
    """Isotropic sphere (projected phase ``phase`` at its centre) seen under 3 illuminations."""
    y, x = (np.arange(n) - n // 2) * pixel, (np.arange(n) - n // 2) * pixel
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / radius ** 2
    phi = phase * np.sqrt(np.clip(1 - r2, 0, None))
    f = np.zeros((3, 2, 2, n, n), np.complex64)
    f[:, 0, 0] = f[:, 1, 1] = np.exp(1j * phi)
    return JonesFields(field=f, illumination_per_um=np.array([[0.5, 0.0], [0.0, 0.01], [-0.5, 0.0]]),
                       pixel_size_um=pixel)


@pytest.mark.parametrize("radius, phase", [(1.5, 2.0), (3.0, 6.5)])
def test_measured_phase_delay_and_radius(radius, phase):
    facts = measure_sample(_sphere_jones(128, 0.1, radius, phase))
    assert facts.phase_delay_rad == pytest.approx(phase, rel=0.05)  # unwrapped beyond π
    assert facts.radius_um == pytest.approx(radius, rel=0.1)
    empty = measure_sample(_sphere_jones(64, 0.1, 1.0, 0.0))
    assert (empty.phase_delay_rad, empty.radius_um) == (0.0, 0.0)


def _droplet_folder(root: Path) -> Path:
    """A small simulated LC droplet measurement (48², 9 illuminations; n_m 1.46, r 1.2 µm)."""
    from engine.simulate.demo import DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    cfg = DemoConfig(Setup(image_shape=(48, 48), pixel_size_um=0.1, medium_index=1.46, na_condenser=1.0,
                           n_angles=9, pattern="ring"),
                     depth_um=3.2, phantom_kwargs={"radius_um": 1.2, "n_o": 1.52, "n_e": 1.57},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    return write_demo(root, kind="lc-droplets", count=1, seed=3, config=cfg, device="cpu")[0]


def test_auto_is_recorded_and_explicit_dtt_is_plain_dtt(tmp_path, caplog):
    folder = _droplet_folder(tmp_path / "in")
    with caplog.at_level(logging.INFO, logger="engine.pipeline.process"):
        auto = process_measurement(folder, tmp_path / "auto.odt.h5",
                                   ProcessOptions(device="cpu", birefringence=True, screen="none"))
    route = auto.birefringence_route
    assert route.requested == "auto" and route.method in ROUTES
    assert route.method != "learned"  # 9 illuminations: outside the generator's domain
    assert 0.8 < route.facts["radius_um"] < 1.6, route.facts  # the droplet's radius is 1.2 µm
    assert f"birefringence route {route.method} (auto)" in caplog.text
    with h5py.File(tmp_path / "auto.odt.h5", "r") as f:
        rec = json.loads(f.attrs["processing_options"])
        attr = json.loads(f.attrs[ROUTE_ATTR])
        method = f["tomogram"].attrs["method"]
    assert rec["birefringence_method"] == "auto"
    assert (rec["birefringence_route"], rec["birefringence_route_reason"]) == (route.method, route.reason)
    assert attr == route.record()
    assert method == {"dtt": "dtt-rytov", "dtt-refined": "dtt-refined"}[route.method]
    assert ProcessOptions.from_record(rec).birefringence_method == "auto"  # the extra keys are ignored
    plain = process_measurement(folder, tmp_path / "dtt.odt.h5", ProcessOptions(
        device="cpu", birefringence=True, screen="none", birefringence_method="dtt"))
    assert plain.birefringence.method == "dtt-rytov"
    assert (plain.birefringence_route.method, plain.birefringence_route.reason) == ("dtt", "asked for")
    with h5py.File(tmp_path / "dtt.odt.h5", "r") as f:
        assert json.loads(f.attrs[ROUTE_ATTR])["requested"] == "dtt"
    # the DTT volume's depth follows the measured droplet (diameter + 2 × 1.5 µm), never deeper than
    # DTT's default, and an explicit shape_z is honoured
    h, w = plain.fields.shape[-2:]
    want = axial_voxels(SampleFacts(0.0, route.facts["radius_um"]), 0.1, (h, w))
    assert plain.birefringence.n_e.shape[0] == (want or min(h, w) // 2 // 2 * 2)
    deep = process_measurement(folder, tmp_path / "z.odt.h5", ProcessOptions(
        device="cpu", birefringence=True, screen="none", birefringence_method="dtt", shape_z=20))
    assert deep.birefringence.n_e.shape[0] == 20


def test_axial_voxels_cover_the_object_and_only_tighten():
    # r 3.5 µm at 0.1 µm: 7 µm + 3 µm margin = 100 voxels, under the default 128 of 256²
    assert axial_voxels(SampleFacts(6.0, 3.5), 0.1, (256, 256)) == 100
    assert axial_voxels(SampleFacts(6.0, 3.5), 0.1, (128, 128)) == 64  # never deeper than the default
    assert axial_voxels(SampleFacts(6.0, 0.2), 0.1, (256, 256)) == 34  # 0.4 + 3 µm
    assert axial_voxels(SampleFacts(6.0, 0.1), 0.5, (256, 256)) == 16  # floor
    assert axial_voxels(SampleFacts(0.2, 0.0), 0.1, (256, 256)) is None  # nothing found: DTT's default
    assert axial_voxels(None, 0.1, (256, 256)) is None


def test_cli_flag_and_the_batch_log(tmp_path):
    from app import cli

    parse = cli._batch_parser().parse_args
    assert parse(["in", "--out", "o", "--birefringence-method", "auto"]).birefringence_method == "auto"
    assert parse(["in", "--out", "o", "--birefringence"]).birefringence_method is None  # → "auto" in cmd_batch
    with pytest.raises(SystemExit):
        parse(["in", "--out", "o", "--birefringence-method", "fastest"])
    folder = _droplet_folder(tmp_path / "in")
    rc = cli.main(["batch", str(folder.parent), "--out", str(tmp_path / "out"), "--birefringence-method", "dtt",
                   "--screen", "none", "--device", "cpu"])
    assert rc == 0
    log = (tmp_path / "out" / "logs" / f"{folder.name}.log").read_text()
    assert "birefringence route dtt (dtt): asked for" in log
