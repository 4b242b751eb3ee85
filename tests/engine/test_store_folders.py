"""Import of measurement folders (docs/formats.md §1) and Tomocube TCF files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from _folders import images, make_measurement, meta, tree_state, write_image
from engine.measurement import Measurement
from engine.store.folders import (MeasurementError, discover_measurements, inspect_measurement,
                                  load_measurement, measurement_fingerprint, natural_key, read_tcf)

FORMS = [("tif", "folder"), ("tif", "multipage"), ("tif", "single"), ("png", "folder"), ("png", "single"),
         ("multipage", "folder"), ("multipage", "multipage"), ("multipage", "single"), ("h5", "folder"),
         ("h5", "single")]


@pytest.mark.parametrize("form,background,dtype", [
    (f, b, d) for f, b in FORMS for d in (np.uint8, np.uint16, np.float32)
    if not (f == "png" and d == np.float32)])  # PNG holds no float32 images
def test_round_trip_of_every_input_form(tmp_path, form, background, dtype):
    md = meta(sample={"name": "bead A"}, illumination_per_um=[[0.1, 0.0], [0.0, 0.2], [-0.1, 0.0]])
    folder = make_measurement(tmp_path, "m", n=3, shape=(6, 10), dtype=dtype, form=form, background=background,
                              metadata=md)
    m = load_measurement(folder)
    assert isinstance(m, Measurement)
    assert m.name == "m" and m.path == folder
    np.testing.assert_array_equal(m.holograms, images(3, (6, 10), dtype, 0))
    assert m.holograms.dtype == np.dtype(dtype)
    bg = images(3, (6, 10), dtype, 1000)
    if background == "single":
        assert m.backgrounds.shape == (6, 10)
        np.testing.assert_array_equal(m.backgrounds, bg[0])
        np.testing.assert_array_equal(m.background_for(2), bg[0])
    else:
        np.testing.assert_array_equal(m.backgrounds, bg)
    assert m.metadata.illumination_per_um == [(0.1, 0.0), (0.0, 0.2), (-0.1, 0.0)]
    info = inspect_measurement(folder)
    assert info.valid, info.error
    assert (info.n_images, info.image_shape, info.dtype) == (3, (6, 10), np.dtype(dtype).name)
    assert info.sample_name == "bead A"
    assert info.background_shared == (background == "single")
    assert info.thumbnail is not None and info.thumbnail.dtype == np.float32
    assert 0.0 <= info.thumbnail.min() and info.thumbnail.max() <= 1.0 and info.thumbnail.max() == 1.0


def test_image_files_are_taken_in_natural_order(tmp_path):
    folder = make_measurement(tmp_path, "m", n=1)
    stack = images(12, (4, 4), np.uint16, 7)
    for p in (folder / "sample").iterdir():
        p.unlink()
    for p in (folder / "background").iterdir():
        p.unlink()
    for i in range(12):  # img2 must come before img10: plain string order would not do that
        write_image(folder / "sample" / f"img{i}.tif", stack[i])
        write_image(folder / "background" / f"img{i}.tif", stack[i])
    m = load_measurement(folder)
    np.testing.assert_array_equal(m.holograms, stack)
    assert sorted(["a10", "a2", "a1", "b"], key=natural_key) == ["a1", "a2", "a10", "b"]


def test_thumbnail_is_small_for_large_images(tmp_path):
    folder = make_measurement(tmp_path, "big", n=1, shape=(300, 200))
    info = inspect_measurement(folder)
    assert info.valid and max(info.thumbnail.shape) <= 64 and min(info.thumbnail.shape) >= 40


def test_discover_recursive_natural_sorted_skipping_hidden_and_sample(tmp_path):
    root = tmp_path / "root"
    make_measurement(root / "day2", "cell10")
    make_measurement(root / "day2", "cell9")
    make_measurement(root / "day10", "cell1", form="h5")
    make_measurement(root / ".trash", "old")
    make_measurement(root, "plain")
    # a measurement.json inside a found measurement's sample/ folder must not be picked up
    nested = root / "plain" / "sample" / "inner"
    nested.mkdir(parents=True)
    (nested / "measurement.json").write_text(json.dumps(meta()))
    (root / "notes").mkdir()
    (root / "notes" / "loop").symlink_to(root, target_is_directory=True)  # must not loop forever
    make_measurement(tmp_path / "elsewhere", "linked")
    (root / "zlink").symlink_to(tmp_path / "elsewhere" / "linked", target_is_directory=True)
    found = discover_measurements(root)
    assert [p.relative_to(root).as_posix() for p in found] == [
        "day2/cell9", "day2/cell10", "day10/cell1", "plain", "zlink"]
    assert discover_measurements(root / "plain") == [root / "plain"]
    with pytest.raises(FileNotFoundError):
        discover_measurements(tmp_path / "missing")


def test_import_never_writes_the_original_folder(tmp_path):
    for form, bg in FORMS:
        make_measurement(tmp_path / "data", f"{form}-{bg}", form=form, background=bg)
    make_measurement(tmp_path / "data", "bad", metadata=meta(wavelength_um="green"))
    before = tree_state(tmp_path / "data")
    for folder in discover_measurements(tmp_path / "data"):
        inspect_measurement(folder, full=True)
        measurement_fingerprint(folder)
        try:
            load_measurement(folder)
        except MeasurementError:
            pass
    assert tree_state(tmp_path / "data") == before


def test_fingerprint_changes_with_content_and_is_stable(tmp_path):
    folder = make_measurement(tmp_path, "m")
    h1 = measurement_fingerprint(folder)
    assert h1 == measurement_fingerprint(folder) and len(h1) == 64
    (folder / "measurement.json").write_text(json.dumps(meta(na_objective=1.0)))
    assert measurement_fingerprint(folder) != h1


def test_inspect_fast_catches_truncation_without_decoding(tmp_path):
    folder = make_measurement(tmp_path, "m", n=3, shape=(32, 32))
    p = folder / "sample" / "001.tif"
    p.write_bytes(p.read_bytes()[:-100])
    info = inspect_measurement(folder, thumbnail=False)
    assert not info.valid and "001.tif" in info.error and "truncated" in info.error


def test_full_inspection_finds_non_finite_values_fast_one_does_not(tmp_path):
    stack = images(2, (8, 8), np.float32)
    folder = make_measurement(tmp_path, "m", dtype=np.float32)
    stack[1, 3, 3] = np.nan
    write_image(folder / "sample" / "001.tif", stack[1])
    assert inspect_measurement(folder).valid  # headers are fine
    info = inspect_measurement(folder, full=True)
    assert not info.valid and "001.tif" in info.error and "NaN" in info.error


# ---------------------------------------------------------------------------- TCF
def _make_tcf(path: Path, ri: np.ndarray, *, uint16: bool, version: str, tiles: bool = False) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["FormatVersion"] = np.array([version.encode()])
        g = f.create_group("Data/3D")
        for k, v in {"DataCount": len(ri), "ResolutionX": 0.2, "ResolutionY": 0.25, "ResolutionZ": 0.5,
                     "SizeX": ri.shape[3], "SizeY": ri.shape[2], "SizeZ": ri.shape[1]}.items():
            g.attrs[k] = np.array([v])
        g2 = f.create_group("Data/2DMIP")
        for t, vol in enumerate(ri):
            data = np.round(vol * 1e4).astype(np.uint16) if uint16 else vol.astype(np.float32)
            if tiles:
                tg = g.create_group(f"{t:06d}")
                tg.attrs["ScalarType"] = np.array([False])
                half = vol.shape[2] // 2
                for i, (lo, hi) in enumerate(((0, half - 1), (half, vol.shape[2] - 1))):
                    d = tg.create_dataset(f"TILE_{i:02d}", data=data[:, :, lo:hi + 1])
                    d.attrs["SamplingStep"] = np.array([1])
                    for a, (o, e) in zip("ZYX", ((0, vol.shape[0] - 1), (0, vol.shape[1] - 1), (lo, hi))):
                        d.attrs[f"DataIndexOffsetPoint{a}"] = np.array([o])
                        d.attrs[f"DataIndexLastPoint{a}"] = np.array([e])
            else:
                g.create_dataset(f"{t:06d}", data=data)
            g2.create_dataset(f"{t:06d}", data=data.max(axis=0))


@pytest.mark.parametrize("uint16,version,tiles", [(True, "1.4.1", False), (False, "1.2", False),
                                                  (True, "1.4.1", True)])
def test_read_tcf(tmp_path, uint16, version, tiles):
    rng = np.random.default_rng(3)
    ri = (1.337 + 0.05 * rng.random((2, 5, 6, 8))).astype(np.float32)
    path = tmp_path / "cell.TCF"
    _make_tcf(path, ri, uint16=uint16, version=version, tiles=tiles)
    vol = read_tcf(path, time_index=1)
    assert vol.ri.shape == (5, 6, 8) and vol.ri.dtype == np.float32
    np.testing.assert_allclose(vol.ri, ri[1], atol=6e-5 if uint16 else 0)
    assert vol.voxel_size_um == (0.5, 0.25, 0.2)
    assert vol.n_timepoints == 2 and vol.time_index == 1 and vol.format_version == version
    np.testing.assert_allclose(vol.origin_um, (-2 * 0.5, -3 * 0.25, -4 * 0.2))
    if not tiles:
        np.testing.assert_allclose(vol.mip, ri[1].max(axis=0), atol=6e-5 if uint16 else 0)
    with pytest.raises(ValueError, match="out of range"):
        read_tcf(path, time_index=5)


def test_read_tcf_rejects_other_files(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(ValueError, match="Data/3D"):
        read_tcf(tmp_path / "x.h5")
    (tmp_path / "y.TCF").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="y.TCF"):
        read_tcf(tmp_path / "y.TCF")
