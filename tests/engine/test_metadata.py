import json

import pytest

from engine.metadata import MeasurementMetadata, MetadataError

GOOD = {
    "format": "odt-measurement/1",
    "wavelength_um": 0.532,
    "medium_index": 1.337,
    "na_objective": 1.2,
    "pixel_size_um": 0.1,
    "illumination_per_um": [[0.0, 0.0], [0.5, 0.1], [-0.3, 0.2]],
    "labels": ["clean", "noisy", ""],
    "sample": {"name": "E. coli"},
    "vendor_key": {"kept": True},
}


def test_round_trip_keeps_unknown_keys():
    m = MeasurementMetadata.from_dict(GOOD)
    assert m.n_illuminations == 3
    assert m.name == "E. coli"
    assert m.wavenumber_medium_per_um == pytest.approx(1.337 / 0.532)
    again = MeasurementMetadata.from_json(m.to_json())
    assert again == m
    assert json.loads(m.to_json())["vendor_key"] == {"kept": True}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"format": "odt-measurement/2"}, "'format'"),
        ({"wavelength_um": "0.532"}, "'wavelength_um' must be a number"),
        ({"wavelength_um": -1}, "'wavelength_um'"),
        ({"na_objective": 1.5}, "'na_objective'"),
        ({"medium_index": float("nan")}, "finite"),
        ({"geometry": "spin"}, "'geometry'"),
        ({"geometry": "sample-rotation"}, "rotation_angles_rad"),
        ({"illumination_per_um": [[0.0]]}, "illumination_per_um"),
        ({"labels": ["clean", "dirty", ""]}, "labels"),
        ({"frames": [{"illumination": 0, "pol_in": "z", "pol_out": "x"}]}, "pol_in"),
    ],
)
def test_bad_metadata_names_file_and_key(change, needle):
    d = dict(GOOD, **change)
    with pytest.raises(MetadataError) as e:
        MeasurementMetadata.from_dict(d, source="/data/m1/measurement.json")
    assert "/data/m1/measurement.json" in str(e.value)
    assert needle in str(e.value)


def test_missing_key_and_bad_json(tmp_path):
    d = dict(GOOD)
    del d["pixel_size_um"]
    with pytest.raises(MetadataError, match="'pixel_size_um' is missing"):
        MeasurementMetadata.from_dict(d)
    p = tmp_path / "measurement.json"
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(MetadataError, match="not valid JSON"):
        MeasurementMetadata.load(p)
    with pytest.raises(MetadataError, match="missing"):
        MeasurementMetadata.load(tmp_path / "nope.json")


def test_count_check():
    m = MeasurementMetadata.from_dict(GOOD)
    m.check_count(3)
    with pytest.raises(MetadataError, match="3 rows but there are 4 images"):
        m.check_count(4)


def test_polarised_frames():
    frames = [{"illumination": i, "pol_in": pi, "pol_out": po}
              for i in range(2) for pi in "xy" for po in "xy"]
    d = dict(GOOD, frames=frames, illumination_per_um=[[0, 0], [0.2, 0]], labels=None)
    m = MeasurementMetadata.from_dict(d)
    assert m.polarised and m.n_illuminations == 2
    m.check_count(8)
