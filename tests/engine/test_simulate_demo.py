"""Demo folders: the odt-measurement/1 layout of docs/formats.md, truth beside, polarised frames, seeds."""

import json

import h5py
import numpy as np
import pytest
import tifffile

from engine.metadata import MeasurementMetadata
from engine.simulate.demo import DEMO_DEFAULTS, DemoConfig, write_demo
from engine.simulate.holograms import Setup

SMALL = {
    "bacteria": DemoConfig(Setup(image_shape=(64, 64), n_angles=7), depth_um=2.0, defect_rate=0.3),
    "lc-droplets": DemoConfig(Setup(image_shape=(64, 64), sim_pixel_um=0.2, voxel_z_um=0.2, medium_index=1.46,
                                    na_condenser=0.8, n_angles=3),
                              depth_um=4.4, phantom_kwargs={"radius_um": 2.0}, defect_rate=0.25,
                              near_edge_probability=0.0),
}


def _check_folder(folder, n_images):
    md = MeasurementMetadata.load(folder / "measurement.json")
    samples = sorted((folder / "sample").glob("*.tif"))
    backs = sorted((folder / "background").glob("*.tif"))
    assert [p.name for p in samples] == [f"{i:03d}.tif" for i in range(n_images)]
    assert len(backs) == n_images
    md.check_count(len(samples), folder / "measurement.json")
    img = tifffile.imread(samples[0])
    assert img.ndim == 2 and img.dtype in (np.uint8, np.uint16)
    raw = json.loads((folder / "measurement.json").read_text())
    assert raw["format"] == "odt-measurement/1"
    assert len(raw["labels"]) == n_images and len(raw["defects"]) == n_images
    assert all((lab == "noisy") == bool(d) for lab, d in zip(raw["labels"], raw["defects"]))
    assert raw["simulator"]["name"] and raw["simulator"]["version"]
    return md, raw


@pytest.mark.slow
def test_bacteria_demo_folder_layout_and_truth(tmp_path):
    paths = write_demo(tmp_path / "out", "bacteria", count=2, seed=3, device="cpu", config=SMALL["bacteria"])
    assert [p.name for p in paths] == ["bacteria_000", "bacteria_001"]
    for p in paths:
        md, raw = _check_folder(p, 7)
        assert raw["labels"].count("noisy") == 2
        with h5py.File(p / "truth.h5", "r") as f:
            ri = f["ri"][...]
            assert ri.dtype == np.float32 and ri.ndim == 3
            assert tuple(f.attrs["voxel_size_um"]) == pytest.approx((0.1, 0.1, 0.1))
            assert f.attrs["medium_index"] == pytest.approx(1.337)
            assert 1.37 <= ri.max() <= 1.40
            params = json.loads(f.attrs["params"])
            assert params["objects"]
    assert not list((tmp_path / "out").glob(".*tmp*"))  # no temporary folders left
    # the same seed writes the same images; another index differs
    again = write_demo(tmp_path / "again", "bacteria", count=1, seed=3, device="cpu", config=SMALL["bacteria"])
    a = tifffile.imread(paths[0] / "sample" / "003.tif")
    b = tifffile.imread(again[0] / "sample" / "003.tif")
    c = tifffile.imread(paths[1] / "sample" / "003.tif")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_lc_demo_writes_polarisation_resolved_frames(tmp_path):
    seen = []
    paths = write_demo(tmp_path, "lc-droplets", count=1, seed=0, device="cpu", config=SMALL["lc-droplets"],
                       progress=lambda f, m="": seen.append(f))
    md, raw = _check_folder(paths[0], 12)
    assert md.polarised and len(md.frames) == 12 and md.n_illuminations == 3
    assert [(f["pol_in"], f["pol_out"]) for f in raw["frames"][:4]] == [("x", "x"), ("x", "y"), ("y", "x"), ("y", "y")]
    with h5py.File(paths[0] / "truth.h5", "r") as f:
        assert f["epsilon"].shape[-2:] == (3, 3) and f["director"].shape[-1] == 3
        assert f["n_e"][...].max() > f["n_o"][...].max()
    assert seen and seen[-1] == 1.0


@pytest.mark.parametrize("kind", sorted(DEMO_DEFAULTS))
def test_demo_defaults_are_realistic_and_consistent(kind):
    cfg = DEMO_DEFAULTS[kind]
    st = cfg.setup
    assert st.wavelength_um == pytest.approx(0.532) and st.na_objective == pytest.approx(1.2)
    assert st.pixel_size_um == pytest.approx(0.1)
    assert st.n_angles in (25, 45, 49, 71)
    # the side band (a pupil-sized disc at the carrier) fits in the camera's Nyquist square
    nyq = 1 / (2 * st.pixel_size_um)
    assert max(abs(c) for c in st.carrier) + st.na_objective / st.wavelength_um <= nyq
    # the simulation grid resolves the pupil and slices are thinner than λ/n_m
    assert 1 / (2 * st.voxel_size_um[1]) >= st.na_objective / st.wavelength_um
    assert st.voxel_size_um[0] < st.wavelength_um / st.medium_index
    shape = st.phantom_shape(cfg.depth_um)
    assert shape[1:] == st.sim_shape_yx
    fov = st.image_shape[0] * st.pixel_size_um
    if kind == "cells":
        assert fov >= 35  # cells need a wider field than bacteria
    if kind == "bacteria":
        assert st.image_shape == (256, 256) and st.n_angles == 71


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo kind"):
        write_demo(tmp_path, "viruses")
    with pytest.raises(ValueError):
        write_demo(tmp_path, "beads", count=0)
