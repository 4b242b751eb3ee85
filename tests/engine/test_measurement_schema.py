"""docs/measurement.schema.json: acquisition software can validate measurement.json against it.

The example folders (the simulator's demo kinds, the store tests' folders, a sample-rotation
folder) validate; broken metadata is refused by the schema *and* by the program, so the two
do not drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _folders import meta
from engine.metadata import MeasurementMetadata, MetadataError

jsonschema = pytest.importorskip("jsonschema")

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "measurement.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def demo_metadata(tmp_path_factory):
    import dataclasses

    from engine.simulate.demo import DEMO_DEFAULTS, write_demo

    root = tmp_path_factory.mktemp("demo")
    out = []
    for kind in ("beads", "bacteria", "cells", "lc-droplets"):
        base = DEMO_DEFAULTS[kind]  # each kind's own setup, with few illuminations to be quick
        cfg = dataclasses.replace(base, setup=dataclasses.replace(base.setup, n_angles=2))
        folder = write_demo(root / kind, kind=kind, count=1, seed=3, config=cfg, device="cpu")[0]
        out.append(json.loads((folder / "measurement.json").read_text()))
    return out


def test_the_demo_folders_of_every_kind_validate(validator, demo_metadata):
    for d in demo_metadata:
        errors = [e.message for e in validator.iter_errors(d)]
        assert not errors, (d.get("sample"), errors)
        MeasurementMetadata.from_dict(d)
    assert any("frames" in d for d in demo_metadata)  # the polarised droplet is among them


def test_hand_written_examples_validate(validator):
    examples = [
        meta(),
        meta(carrier_per_um=[2.5, 2.4], illumination_per_um=[[0.0, 0.0], [0.5, -0.2]], labels=["clean", ""]),
        meta(geometry="sample-rotation", rotation_angles_rad=[0.0, 0.1, 0.2], sample={"name": "bead", "id": 7},
             acquired="2026-12-06T04:26:00Z", defects=["", "dust", ""]),
    ]
    for d in examples:
        assert not list(validator.iter_errors(d)), d
        MeasurementMetadata.from_dict(d)


@pytest.mark.parametrize("change", [
    {"format": "odt-measurement/2"},
    {"wavelength_um": None},
    {"wavelength_um": "green"},
    {"medium_index": 0.5},
    {"na_objective": -0.1},
    {"pixel_size_um": 0},
    {"geometry": "spiral"},
    {"geometry": "sample-rotation"},
    {"carrier_per_um": [1.0]},
    {"illumination_per_um": [[0.0, "a"]]},
    {"labels": ["bad"]},
    {"frames": [{"illumination": -1, "pol_in": "x", "pol_out": "x"}]},
    {"frames": [{"illumination": 0, "pol_in": "z", "pol_out": "x"}]},
    {"sample": "a string"},
])
def test_broken_metadata_is_refused_by_schema_and_program(validator, change):
    d = meta(**change)
    assert list(validator.iter_errors(d)), f"the schema accepts {change}"
    with pytest.raises(MetadataError):
        MeasurementMetadata.from_dict(d)
