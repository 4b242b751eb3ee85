"""Result files <name>.odt.h5 (docs/formats.md §2): content, partial files, atomic writes."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import engine
from engine.store import results as results_mod
from engine.store.results import (FORMAT_RESULT, TomogramResult, is_complete_result, read_result,
                                  remove_stale_temporaries, update_result, write_result)

MJ = json.dumps({"format": "odt-measurement/1", "wavelength_um": 0.532})


def _full(n=3, h=4, w=5, z=2):
    rng = np.random.default_rng(0)
    return dict(
        fields=(rng.normal(size=(n, h, w)) + 1j * rng.normal(size=(n, h, w))),
        illumination_per_um=rng.normal(size=(n, 2)),
        screening={"score": rng.random(n), "rule_peak": rng.normal(size=n), "decision": [1, 0, 1][:n],
                   "source": [0, 2, 1][:n], "model": "screen-cnn 1.2"},
        tomogram=TomogramResult(ri=1.33 + rng.random((z, h, w)), ri_tv=np.ones((z, h, w)),
                                voxel_size_um=(0.2, 0.1, 0.1), origin_um=(-0.2, -0.2, -0.25),
                                medium_index=1.337, method="rytov"),
        birefringence={"n_e": np.ones((z, h, w)), "n_o": np.ones((z, h, w)),
                       "director": np.zeros((z, h, w, 3)), "tensor": np.zeros((z, h, w, 3, 3))},
    )


def test_write_exactly_the_documented_layout(tmp_path):
    d = _full()
    path = write_result(tmp_path / "m.odt.h5", measurement_json=MJ, extra_attrs={"pipeline": "test"}, **d)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT_RESULT
        assert f.attrs["measurement_json"] == MJ
        assert f.attrs["software_version"] == engine.__version__
        assert f["fields/field"].dtype == np.complex64 and f["fields/field"].shape == (3, 4, 5)
        assert f["fields/illumination_per_um"].shape == (3, 2)
        assert f["screening/score"].dtype == np.float32 and f["screening/rule_peak"].dtype == np.float32
        assert f["screening/decision"].dtype == np.uint8 and f["screening/source"].dtype == np.uint8
        assert f["screening"].attrs["model"] == "screen-cnn 1.2"
        assert f["tomogram/ri"].dtype == np.float32 and f["tomogram/ri"].shape == (2, 4, 5)
        assert "ri_deep" not in f["tomogram"] and "ri_tv" in f["tomogram"]
        np.testing.assert_allclose(f["tomogram"].attrs["voxel_size_um"], (0.2, 0.1, 0.1))
        np.testing.assert_allclose(f["tomogram"].attrs["origin_um"], (-0.2, -0.2, -0.25))
        assert f["tomogram"].attrs["medium_index"] == 1.337 and f["tomogram"].attrs["method"] == "rytov"
        assert f["birefringence/director"].shape == (2, 4, 5, 3)
        assert f["birefringence/tensor"].shape == (2, 4, 5, 3, 3)
        assert f.attrs["pipeline"] == "test"


def test_read_round_trip(tmp_path):
    d = _full()
    write_result(tmp_path / "m.odt.h5", measurement_json=MJ, **d)
    r = read_result(tmp_path / "m.odt.h5")
    np.testing.assert_allclose(r.fields, d["fields"].astype(np.complex64))
    np.testing.assert_allclose(r.illumination_per_um, d["illumination_per_um"])
    np.testing.assert_array_equal(r.screening.decision, [1, 0, 1])
    np.testing.assert_array_equal(r.screening.source, [0, 2, 1])
    assert r.screening.model == "screen-cnn 1.2"
    np.testing.assert_allclose(r.tomogram.ri, d["tomogram"].ri.astype(np.float32))
    assert r.tomogram.ri_deep is None and r.tomogram.method == "rytov"
    assert r.tomogram.voxel_size_um == (0.2, 0.1, 0.1)
    assert r.birefringence.tensor.shape == (2, 4, 5, 3, 3)
    assert r.measurement_json == MJ and r.software_version == engine.__version__
    only = read_result(tmp_path / "m.odt.h5", groups=["screening"])
    assert only.fields is None and only.tomogram is None and only.screening is not None


def test_partial_file_and_update_keeps_other_groups(tmp_path):
    d = _full()
    p = write_result(tmp_path / "m.odt.h5", measurement_json=MJ, fields=d["fields"])
    r = read_result(p)
    assert r.fields is not None and r.screening is None and r.tomogram is None and r.birefringence is None
    assert is_complete_result(p) and is_complete_result(p, require=["fields"])
    assert not is_complete_result(p, require=["tomogram"])
    update_result(p, screening=d["screening"], extra_attrs={"note": "x"})
    update_result(p, tomogram=d["tomogram"])
    r = read_result(p)
    np.testing.assert_allclose(r.fields, d["fields"].astype(np.complex64))
    np.testing.assert_array_equal(r.screening.decision, [1, 0, 1])
    assert r.tomogram.method == "rytov" and r.attrs["note"] == "x"
    with pytest.raises(TypeError):
        update_result(p, nonsense=1)


def test_labels_stored_read_and_added_by_update(tmp_path):
    """tomogram/labels (docs/formats.md §2): uint16, element_size_um, kept by later updates, dropped by a new tomogram."""
    d = _full()
    p = write_result(tmp_path / "m.odt.h5", measurement_json=MJ, **d)
    assert read_result(p).tomogram.labels is None
    labels = np.zeros((2, 4, 5), np.int32)
    labels[0, 1:3, 1:3] = 1
    labels[1, 2:4, 3:5] = 2
    update_result(p, labels=labels)
    with h5py.File(p, "r") as f:
        assert f["tomogram/labels"].dtype == np.uint16
        np.testing.assert_allclose(f["tomogram/labels"].attrs["element_size_um"], (0.2, 0.1, 0.1))
    r = read_result(p)
    np.testing.assert_array_equal(r.tomogram.labels, labels)
    np.testing.assert_allclose(r.tomogram.ri_tv, 1.0)  # the rest of the tomogram is kept
    assert r.birefringence.tensor.shape == (2, 4, 5, 3, 3) and r.fields.shape == (3, 4, 5)
    update_result(p, screening=d["screening"])  # another group: the labels stay
    np.testing.assert_array_equal(read_result(p).tomogram.labels, labels)
    big = labels.astype(np.int64) * 40000
    update_result(p, labels=big)
    assert read_result(p).tomogram.labels.dtype == np.uint32
    update_result(p, tomogram=d["tomogram"])  # a new tomogram: the old labels no longer apply
    assert read_result(p).tomogram.labels is None
    with pytest.raises(ValueError, match="labels"):
        update_result(p, labels=np.zeros((2, 4, 4), np.int32))
    with pytest.raises(ValueError, match="labels"):
        update_result(p, labels=np.full((2, 4, 5), -1))
    bare = write_result(tmp_path / "f.odt.h5", measurement_json=MJ, fields=d["fields"])
    with pytest.raises(ValueError, match="no tomogram"):
        update_result(bare, labels=labels)


@pytest.mark.parametrize("bad", [
    dict(fields=np.zeros((4, 4))),
    dict(fields=np.zeros((3, 4, 4)), illumination_per_um=np.zeros((2, 2))),
    dict(screening={"score": [0.1], "rule_peak": [0.0], "decision": [2], "source": [0]}),
    dict(screening={"score": [0.1], "rule_peak": [0.0], "decision": [1]}),
    dict(fields=np.zeros((2, 4, 4)), screening={"score": [0.1], "rule_peak": [0.0], "decision": [1], "source": [0]}),
    dict(tomogram={"ri": np.ones((2, 2)), "voxel_size_um": (1, 1, 1), "origin_um": (0, 0, 0), "medium_index": 1.33}),
    dict(tomogram={"ri": np.ones((2, 2, 2)), "voxel_size_um": (1, 1), "origin_um": (0, 0, 0), "medium_index": 1.33}),
    dict(birefringence={"director": np.ones((2, 2, 2, 2))}),
])
def test_invalid_content_raises_and_writes_nothing(tmp_path, bad):
    with pytest.raises(ValueError):
        write_result(tmp_path / "m.odt.h5", measurement_json=MJ, **bad)
    assert list(tmp_path.iterdir()) == []


def test_writer_that_raises_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    p = write_result(tmp_path / "m.odt.h5", measurement_json=MJ, fields=np.ones((1, 2, 2)))
    before = p.read_bytes()
    real = results_mod._write

    def failing(f, *a, **k):
        real(f, *a, **k)
        f["fields"].create_dataset("half", data=np.zeros(10))
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(results_mod, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        write_result(p, measurement_json=MJ, fields=np.zeros((5, 2, 2)))
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.odt.h5"]
    with pytest.raises(OSError):
        write_result(tmp_path / "new.odt.h5", measurement_json=MJ, fields=np.zeros((5, 2, 2)))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.odt.h5"]


def test_large_metadata_attribute(tmp_path):
    big = json.dumps({"format": "odt-measurement/1", "frames": [{"illumination": i, "pol_in": "x", "pol_out": "y"}
                                                                 for i in range(20000)]})
    assert len(big) > 500_000  # far above HDF5's 64 kB compact-attribute limit
    write_result(tmp_path / "m.odt.h5", measurement_json=big)
    assert read_result(tmp_path / "m.odt.h5").measurement_json == big


def test_read_rejects_foreign_files(tmp_path):
    with h5py.File(tmp_path / "x.odt.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ValueError, match="odt-result/1"):
        read_result(tmp_path / "x.odt.h5")
    (tmp_path / "y.odt.h5").write_bytes(b"\x89HDF\r\n half a file")
    with pytest.raises(ValueError, match="y.odt.h5"):
        read_result(tmp_path / "y.odt.h5")
    assert not is_complete_result(tmp_path / "y.odt.h5") and not is_complete_result(tmp_path / "none.odt.h5")


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = socket.gethostname()
    stale = tmp_path / f".a~b.odt.h5~{host}~{dead}~abc123.tmp"
    stale_csv = tmp_path / f".summary.csv~{host}~{dead}~x_1.tmp"
    alive = tmp_path / f".b.odt.h5~{host}~{os.getpid()}~abc123.tmp"
    other_host = tmp_path / f".c.odt.h5~otherhost~{dead}~abc123.tmp"
    unrelated = tmp_path / ".notes.tmp"
    for p in (stale, stale_csv, alive, other_host, unrelated):
        p.write_bytes(b"x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([stale, stale_csv])
    assert alive.exists() and other_host.exists() and unrelated.exists()
    assert not stale.exists() and not stale_csv.exists()
    assert results_mod.temporary_prefix(tmp_path / "m.odt.h5") == f".m.odt.h5~{host}~{os.getpid()}~"
