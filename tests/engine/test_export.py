"""Export keeps the scale (engine/store/export.py, ``odt-studio export``): write, read back, check
voxel size, origin and values; ``element_size_um`` on the HDF5 volumes."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import tifffile

from engine.store.export import EXPORT_FORMATS, ExportError, available_volumes, export_result, load_volume
from engine.store.results import TomogramResult, write_result

NM = 1.337
VOXEL = (0.3, 0.2, 0.1)
ORIGIN = (-1.8, -1.2, -0.7)
SHAPE = (12, 12, 14)


def _sphere_ri(shape=SHAPE, voxel=VOXEL, origin=ORIGIN, centre=(0.0, 0.0, 0.0), r=0.6, dn=0.03):
    z, y, x = (o + np.arange(n) * d for n, d, o in zip(shape, voxel, origin))
    rr = np.sqrt((z[:, None, None] - centre[0]) ** 2 + (y[None, :, None] - centre[1]) ** 2
                 + (x[None, None, :] - centre[2]) ** 2)
    return (NM + dn * (rr <= r) + np.random.default_rng(0).normal(0, 1e-4, shape)).astype(np.float32)


@pytest.fixture
def result(tmp_path):
    ri = _sphere_ri()
    n_o = np.full(SHAPE, NM, np.float32)
    n_e = n_o + 0.02 * (ri > NM + 0.015)
    director = np.zeros(SHAPE + (3,), np.float32)
    director[..., 2] = 1.0
    return write_result(tmp_path / "cell 1.odt.h5", measurement_json="{}",
                        tomogram=TomogramResult(ri=ri, ri_tv=ri + 0.001, voxel_size_um=VOXEL, origin_um=ORIGIN,
                                                medium_index=NM, method="rytov"),
                        birefringence={"n_e": n_e, "n_o": n_o, "director": director})


def test_result_volumes_carry_element_size_um(result):
    with h5py.File(result, "r") as f:
        for name in ("tomogram/ri", "tomogram/ri_tv", "birefringence/n_e", "birefringence/n_o"):
            np.testing.assert_allclose(f[name].attrs["element_size_um"], VOXEL)
        assert "element_size_um" not in f["birefringence/director"].attrs


def test_ome_tiff(result, tmp_path):
    out = export_result(result, "ome-tiff", "ri_tv", out=tmp_path / "x.ome.tif")
    with tifffile.TiffFile(out) as t:
        data = t.series[0].asarray()
        assert t.series[0].axes == "ZYX"
        root = ET.fromstring(t.ome_metadata)
    np.testing.assert_array_equal(data, load_volume(result, "ri_tv").data)
    ns = {"o": root.tag.split("}")[0][1:]}
    px = root.find(".//o:Pixels", ns)
    for ax, d in zip("ZYX", VOXEL):
        assert float(px.get(f"PhysicalSize{ax}")) == pytest.approx(d)
        assert px.get(f"PhysicalSize{ax}Unit") == "µm"
    planes = px.findall("o:Plane", ns)
    assert len(planes) == SHAPE[0]
    assert float(planes[0].get("PositionX")) == pytest.approx(ORIGIN[2])
    assert float(planes[0].get("PositionY")) == pytest.approx(ORIGIN[1])
    assert [float(p.get("PositionZ")) for p in planes] == pytest.approx(ORIGIN[0] + VOXEL[0] * np.arange(SHAPE[0]))


def test_imagej_hyperstack(result, tmp_path):
    out = export_result(result, "imagej", "ri", out=tmp_path / "x.tif")
    with tifffile.TiffFile(out) as t:
        data = t.asarray()
        ij = t.imagej_metadata
        xres = t.pages[0].tags["XResolution"].value
        yres = t.pages[0].tags["YResolution"].value
    np.testing.assert_array_equal(data, load_volume(result, "ri").data)
    assert ij["slices"] == SHAPE[0] and ij["unit"] == "um"
    assert ij["spacing"] == pytest.approx(VOXEL[0])
    assert xres[1] / xres[0] == pytest.approx(VOXEL[2]) and yres[1] / yres[0] == pytest.approx(VOXEL[1])
    # ImageJ's calibration: physical x = (i − xorigin)·dx, so voxel 0 is at the result's origin
    for key, o, d in zip(("zorigin", "yorigin", "xorigin"), ORIGIN, VOXEL):
        assert -float(ij[key]) * d == pytest.approx(o)
    assert float(ij["min"]) == pytest.approx(NM) and float(ij["max"]) == pytest.approx(float(data.max()))


def test_ome_zarr(result, tmp_path):
    zarr = pytest.importorskip("zarr")
    out = export_result(result, "ome-zarr", "ri", out=tmp_path / "x.ome.zarr")
    g = zarr.open_group(str(out), mode="r")
    ms = g.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "micrometer" and a["type"] == "space" for a in ms["axes"])
    ds = ms["datasets"][0]
    tr = {t["type"]: t for t in ds["coordinateTransformations"]}
    assert tr["scale"]["scale"] == pytest.approx(list(VOXEL))
    assert tr["translation"]["translation"] == pytest.approx(list(ORIGIN))
    np.testing.assert_array_equal(g[ds["path"]][...], load_volume(result, "ri").data)
    zarray = json.loads((out / "0" / ".zarray").read_text())
    assert zarray["zarr_format"] == 2 and zarray.get("dimension_separator") == "/"
    # exporting again replaces the folder, and leaves no temporary behind
    export_result(result, "ome-zarr", "ri", out=out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("to", EXPORT_FORMATS)
def test_birefringence_and_default_paths(result, to):
    if to == "ome-zarr":
        pytest.importorskip("zarr")
    out = export_result(result, to, "dn")
    assert out.parent == result.parent and out.name.startswith("cell 1.dn.")
    dn = load_volume(result, "dn").data
    assert dn.dtype == np.float32 and dn.max() == pytest.approx(0.02)


def test_labels_computed_or_stored(result, tmp_path):
    lab = load_volume(result, "labels")
    assert lab.data.dtype == np.uint16 and lab.data.max() == 1
    assert (lab.data > 0).sum() == (load_volume(result, "ri_tv").data > NM + 0.015).sum()
    out = export_result(result, "ome-tiff", "labels", out=tmp_path / "l.ome.tif")
    np.testing.assert_array_equal(tifffile.imread(out), lab.data)
    stored = np.zeros(SHAPE, np.uint32)
    stored[2:4, 2:4, 2:4] = 70000
    with h5py.File(result, "a") as f:
        f["tomogram/labels"] = stored
    lab = load_volume(result, "labels")
    assert lab.data.dtype == np.uint32 and lab.data.max() == 70000
    out = export_result(result, "imagej", "labels", out=tmp_path / "l.tif")  # ImageJ has no uint32: float32
    np.testing.assert_array_equal(tifffile.imread(out), stored.astype(np.float32))
    zarr = pytest.importorskip("zarr")
    out = export_result(result, "ome-zarr", "labels", out=tmp_path / "l.ome.zarr")
    g = zarr.open_group(str(out), mode="r")
    assert "image-label" in g.attrs and g["0"].dtype == np.uint32


def test_clear_errors(result, tmp_path):
    with h5py.File(result, "a") as f:
        del f["tomogram/ri_tv"]
    assert available_volumes(result) == ["ri", "n_e", "n_o", "dn", "labels"]
    with pytest.raises(ExportError, match=r"cell 1\.odt\.h5' has no volume 'ri_tv'; it has: ri, n_e, n_o, dn, labels"):
        export_result(result, "ome-tiff", "ri_tv")
    with pytest.raises(ExportError, match="unknown export format"):
        export_result(result, "png", "ri")
    with pytest.raises(ExportError, match="not a readable result file"):
        export_result(tmp_path / "missing.odt.h5", "imagej", "ri")


def test_zarr_missing_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now raises ImportError
    with pytest.raises(ExportError, match=r"odt-studio\[export\]"):
        export_result(result, "ome-zarr", "ri")


def test_command_line(result, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "cli.tif"
    assert main(["export", str(result), "--to", "imagej", "--volume", "n_e", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    np.testing.assert_array_equal(tifffile.imread(out), load_volume(result, "n_e").data)
    assert main(["export", str(result), "--to", "ome-tiff", "--volume", "ri_deep"]) == 2
    assert "has no volume 'ri_deep'; it has: ri, ri_tv, n_e, n_o, dn, labels" in capsys.readouterr().err
