"""The napari reader (engine/napari_plugin) without napari: the manifest, the hook, the layer data."""

from __future__ import annotations

import fnmatch
import importlib
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.napari_plugin import napari_get_reader, read_odt_result
from engine.napari_plugin.reader import director_vectors
from engine.store.results import TomogramResult, write_result

NM = 1.46
VOXEL = (0.3, 0.2, 0.2)
ORIGIN = (-1.5, -1.6, -2.0)
SHAPE = (10, 16, 20)
MANIFEST = Path(__file__).resolve().parents[2] / "engine" / "napari_plugin" / "napari.yaml"


def _result(tmp_path, *, tv=True, birefringence=True, labels=True):
    rng = np.random.default_rng(0)
    ri = (NM + 0.02 * rng.random(SHAPE)).astype(np.float32)
    bire = None
    if birefringence:
        director = np.zeros(SHAPE + (3,), np.float32)
        director[2:8, 3:13, 4:16] = (0.0, np.sin(np.pi / 6), np.cos(np.pi / 6))  # 30° in the xy plane
        bire = {"n_o": np.full(SHAPE, 1.52, np.float32), "n_e": np.full(SHAPE, 1.56, np.float32),
                "director": director}
    path = write_result(tmp_path / "drop.odt.h5", measurement_json="{}", birefringence=bire,
                        tomogram=TomogramResult(ri=ri, ri_tv=ri + 0.001 if tv else None, voxel_size_um=VOXEL,
                                                origin_um=ORIGIN, medium_index=NM, method="rytov"))
    if labels:
        with h5py.File(path, "a") as f:
            lab = np.zeros(SHAPE, np.uint16)
            lab[2:8, 3:13, 4:16] = 1
            f["tomogram/labels"] = lab
    return path


def test_manifest_points_at_the_reader():
    yaml = pytest.importorskip("yaml")  # PyYAML: comes with dask and with napari
    m = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert m["name"] == "odt-studio"
    (cmd,) = m["contributions"]["commands"]
    (reader,) = m["contributions"]["readers"]
    assert reader["command"] == cmd["id"] and cmd["id"].startswith(m["name"] + ".")
    module, func = cmd["python_name"].split(":")
    assert getattr(importlib.import_module(module), func) is napari_get_reader
    assert any(fnmatch.fnmatch("a/b/cell.odt.h5", pat) for pat in reader["filename_patterns"])
    assert not any(fnmatch.fnmatch("cell.h5", pat) for pat in reader["filename_patterns"])


def test_hook_accepts_result_files_only(tmp_path):
    assert napari_get_reader("x.odt.h5") is read_odt_result
    assert napari_get_reader(["a.odt.h5", Path("b.odt.h5")]) is read_odt_result
    assert napari_get_reader("x.tif") is None and napari_get_reader(["a.odt.h5", "b.tif"]) is None
    assert napari_get_reader([]) is None


def test_layers_scale_translate_contrast(tmp_path):
    path = _result(tmp_path)
    layers = read_odt_result(str(path))
    assert "napari" not in sys.modules  # the reader does not need napari
    by_name = {kw["name"]: (data, kw, kind) for data, kw, kind in layers}
    assert list(by_name) == ["drop ri", "drop ri_tv", "drop n_e", "drop n_o", "drop dn", "drop labels",
                             "drop director"]
    for name in ("drop ri", "drop ri_tv", "drop n_e", "drop n_o", "drop dn", "drop labels"):
        data, kw, kind = by_name[name]
        assert data.shape == SHAPE
        assert kw["scale"] == pytest.approx(VOXEL) and kw["translate"] == pytest.approx(ORIGIN)
    data, kw, kind = by_name["drop ri"]
    assert kind == "image" and kw["contrast_limits"] == pytest.approx([NM, float(data.max())])
    assert not kw["visible"] and by_name["drop ri_tv"][1]["visible"]  # the regularised one is shown
    assert kw["metadata"]["medium_index"] == NM and kw["metadata"]["source"] == str(path)
    dn = by_name["drop dn"]
    assert dn[2] == "image" and dn[0] == pytest.approx(0.04) and dn[1]["contrast_limits"][0] == 0.0
    assert by_name["drop labels"][2] == "labels" and by_name["drop labels"][0].max() == 1
    vec, kw, kind = by_name["drop director"]
    assert kind == "vectors" and vec.ndim == 3 and vec.shape[1:] == (2, 3) and "scale" not in kw
    assert kw["features"]["inplane_angle_deg"] == pytest.approx(30.0)
    assert kw["edge_color"] == "inplane_angle_deg"


def test_director_vectors_in_micrometres():
    director = np.zeros(SHAPE + (3,), np.float32)
    director[4, 6, 8] = (0.6, 0.0, 0.8)
    director[4, 6, 9] = (0.0, 0.0, -1.0)
    vec, angle = director_vectors(director, VOXEL, ORIGIN)
    assert vec.shape == (2, 2, 3)
    centre = vec[:, 0] + vec[:, 1] / 2  # glyphs are centred on their voxel (headless director)
    np.testing.assert_allclose(centre[0], np.add(ORIGIN, np.multiply((4, 6, 8), VOXEL)), atol=1e-6)
    np.testing.assert_allclose(vec[0, 1] / np.linalg.norm(vec[0, 1]), (0.6, 0.0, 0.8), atol=1e-6)
    assert np.linalg.norm(vec[0, 1]) == pytest.approx(0.9 * min(VOXEL))
    assert angle == pytest.approx([0.0, 0.0])  # −x is the same orientation as +x
    # subsampled to at most max_vectors
    full = np.zeros((20, 20, 20, 3), np.float32)
    full[..., 0] = 1
    vec, _ = director_vectors(full, (0.1, 0.1, 0.1), (0, 0, 0), max_vectors=500)
    assert 100 < len(vec) <= 500
    assert director_vectors(np.zeros((3, 3, 3, 3)), VOXEL, ORIGIN)[0].shape == (0, 2, 3)


def test_plain_result_and_errors(tmp_path):
    path = _result(tmp_path, tv=False, birefringence=False, labels=False)
    layers = read_odt_result([path])
    assert [(kw["name"], kind, kw["visible"]) for _, kw, kind in layers] == [("drop ri", "image", True)]
    (tmp_path / "bad.odt.h5").write_text("no")
    with pytest.raises(ValueError, match="bad.odt.h5"):
        read_odt_result(tmp_path / "bad.odt.h5")


def test_layers_build_in_napari_if_installed(tmp_path):
    napari_layers = pytest.importorskip("napari.layers")
    for data, kw, kind in read_odt_result(_result(tmp_path)):
        layer = napari_layers.Layer.create(data, kw, kind)
        assert layer.name == kw["name"]
