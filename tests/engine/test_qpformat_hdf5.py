"""Import of qpformat raw off-axis hologram HDF5 files (real data from qpformat 0.14.5's tests)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.holography.retrieval import retrieve_fields
from engine.store.folders import MeasurementError, inspect_measurement, load_measurement
from engine.store.qpformat_hdf5 import (inspect_qpformat_hdf5, is_qpformat_hdf5, read_qpformat_hdf5,
                                        synthesise_background)

DATA = Path(__file__).resolve().parents[1] / "data"
SINGLE = DATA / "single_hdf5_raw-oah.h5"
SERIES = DATA / "series_hdf5_raw-oah.h5"


def _check_metadata(m):
    md = m.metadata
    assert md.wavelength_um == pytest.approx(0.532, rel=1e-12)
    assert md.pixel_size_um == pytest.approx(0.08475, rel=1e-5)  # 8.474994e-8 m
    assert md.medium_index == 1.333 and md.na_objective == 1.0
    assert md.geometry == "illumination-scan" and md.carrier_per_um is None and md.illumination_per_um is None


def test_single_file():
    assert is_qpformat_hdf5(SINGLE)
    m = read_qpformat_hdf5(SINGLE)
    assert m.holograms.shape == (1, 294, 280) and m.holograms.dtype == np.uint8
    with h5py.File(SINGLE, "r") as f:
        np.testing.assert_array_equal(m.holograms[0], f["0"][()])
    _check_metadata(m)
    assert m.name == "single_hdf5_raw-oah" and m.path == SINGLE and m.metadata.name == "single_hdf5_raw-oah"
    q = m.metadata.extra["qpformat"]
    assert q["file"] == SINGLE.name and q["background"].startswith("synthesised")
    frame = q["frames"][0]
    assert frame["pos_x_um"] == pytest.approx(-204.558) and frame["pos_y_um"] == pytest.approx(89.903)
    assert frame["focus_um"] == 0.0
    # the synthesised background: one (H, W) image of ideal fringes at the hologram's carrier
    assert m.extra["background"] == "synthesised"
    assert m.backgrounds.shape == (294, 280) and m.backgrounds.dtype == np.float32
    assert np.isfinite(m.backgrounds).all() and m.backgrounds.min() >= 0
    c = np.asarray(m.extra["carrier_per_um"])
    assert 2.0 < np.hypot(*c) < 1 / (2 * m.metadata.pixel_size_um)  # off-centre, below Nyquist
    # the metadata survives the JSON round trip written into result files
    from engine.metadata import MeasurementMetadata

    back = MeasurementMetadata.from_json(m.metadata.to_json())
    assert back.extra["qpformat"]["frames"][0]["pos_x_um"] == pytest.approx(-204.558)


def test_series_file_and_the_folder_api():
    m = load_measurement(SERIES)  # the folder reader accepts the file's path
    assert m.holograms.shape == (2, 294, 280) and m.backgrounds.shape == (294, 280)
    _check_metadata(m)
    assert [f["time_s"] for f in m.metadata.extra["qpformat"]["frames"]] == [2.5, 2.8]
    info = inspect_measurement(SERIES)
    assert info.valid, info.error
    assert (info.n_images, info.image_shape, info.dtype, info.form) == (2, (294, 280), "uint8", "qpformat-h5")
    assert info.name == "series_hdf5_raw-oah" and info.thumbnail is not None and info.background_shared
    assert inspect_measurement(SERIES, full=True).valid
    # other HDF5 files are refused with a message naming the file
    for other in (DATA / "series_hdf5_meep.h5",):
        assert not is_qpformat_hdf5(other)
        info = inspect_measurement(other)
        assert not info.valid and other.name in info.error and "qpformat" in info.error
        with pytest.raises(MeasurementError, match="series_hdf5_meep.h5"):
            load_measurement(other)
        with pytest.raises(MeasurementError, match="not a qpformat off-axis hologram"):
            read_qpformat_hdf5(other)


def test_fields_can_be_retrieved_from_the_real_hologram():
    m = read_qpformat_hdf5(SINGLE)
    r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, device="cpu")
    assert r.field.shape == (1, 294, 280) and np.isfinite(r.field).all()
    assert np.isfinite(r.unwrapped_phase).all() and np.abs(r.field).max() > 0
    # the retrieval finds the synthesised background's carrier (or its twin)
    c = np.asarray(m.extra["carrier_per_um"])
    assert min(np.hypot(*(r.carrier_per_um - c)), np.hypot(*(r.carrier_per_um + c))) < 1e-2


def _write(path: Path, holos: np.ndarray, *, reference=None, attrs=None, per_frame=None) -> Path:
    base = {"wavelength": 633e-9, "pixel size": 0.1e-6, "medium index": 1.337, "numerical aperture": 1.2}
    base.update(attrs or {})
    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "qpformat"
        f.attrs["imaging_modality"] = "off-axis holography"
        for i, h in enumerate(holos):
            ds = f.create_dataset(str(i), data=h)
            for k, v in base.items():
                if v is not None:
                    ds.attrs[k] = v
            for k, v in ((per_frame or {}).get(i) or {}).items():
                ds.attrs[k] = v
        if reference is not None:
            f["reference"] = reference
    return path


def _hologram(phi: np.ndarray, carrier, px: float) -> np.ndarray:
    """I = |U + R|² with U = exp(iφ), R = exp(−2πi c·r) (engine.holography.retrieval's convention)."""
    hh, ww = phi.shape
    y = (np.arange(hh) - hh // 2)[:, None] * px
    x = (np.arange(ww) - ww // 2)[None, :] * px
    ref = np.exp(-2j * np.pi * (carrier[0] * x + carrier[1] * y))
    return np.abs(np.exp(1j * phi) + ref) ** 2


def test_synthesised_background_gives_the_sample_phase(tmp_path):
    px, n = 0.1, 96
    yy, xx = np.mgrid[:n, :n] - n // 2
    phi = 1.2 * np.exp(-(xx**2 + yy**2) / (2 * 8.0**2))
    carrier = (2.1, 1.3)
    holo = np.round(60 * _hologram(phi, carrier, px) + 10).astype(np.uint16)[None]
    path = _write(tmp_path / "bead.h5", holo)
    m = read_qpformat_hdf5(path)
    np.testing.assert_allclose(m.extra["carrier_per_um"], carrier, atol=0.01)
    r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, device="cpu")
    ph = r.unwrapped_phase[0]
    ph = ph - np.median(ph[:8])  # background rows
    inner = np.abs(xx) < 30
    corr = np.corrcoef(ph[inner], phi[inner])[0, 1]
    assert abs(corr) > 0.98  # the phase bump is there (its sign is the side-band choice's business)
    assert abs(abs(ph[n // 2, n // 2]) - 1.2) < 0.15
    bg, c = synthesise_background(holo, m.metadata)
    assert bg.shape == (n, n) and np.hypot(*(c - carrier)) < 0.01


def test_reference_dataset_is_used_as_measured_background(tmp_path):
    px = 0.1
    flat = np.round(60 * _hologram(np.zeros((32, 32)), (2.0, 0.5), px) + 10).astype(np.uint8)
    holos = np.stack([flat, flat[::-1]])
    path = _write(tmp_path / "s.h5", holos, reference=flat,
                  per_frame={0: {"time": 1.0, "identifier": "abc"}, 1: {"time": 2.0}})
    m = read_qpformat_hdf5(path)
    assert m.extra["background"] == "measured" and "carrier_per_um" not in m.extra
    np.testing.assert_array_equal(m.backgrounds, flat)
    assert m.metadata.extra["qpformat"]["background"].startswith("measured")
    frames = m.metadata.extra["qpformat"]["frames"]
    assert frames[0] == {"time_s": 1.0, "identifier": "abc"} and frames[1] == {"time_s": 2.0}
    assert m.metadata.wavelength_um == pytest.approx(0.633) and m.metadata.na_objective == 1.2


def test_broken_files_are_named_with_dataset_and_problem(tmp_path):
    good = np.random.default_rng(0).integers(0, 200, (2, 16, 16)).astype(np.uint8)
    p = _write(tmp_path / "noNA.h5", good, attrs={"numerical aperture": None})
    with pytest.raises(MeasurementError, match=r"file 'noNA.h5:/0': attribute 'numerical aperture' is missing"):
        read_qpformat_hdf5(p)
    m = read_qpformat_hdf5(p, metadata={"na_objective": 0.9})  # supplied by the caller
    assert m.metadata.na_objective == 0.9
    p = _write(tmp_path / "mixed.h5", good, per_frame={1: {"wavelength": 532e-9}})
    with pytest.raises(MeasurementError, match=r"mixed.h5:/1': attribute 'wavelength'.*differs from frame '0'"):
        inspect_qpformat_hdf5(p)
    black = good.copy()
    black[1] = 0
    read_qpformat_hdf5(_write(tmp_path / "one_black.h5", black))  # one dropped frame: excluded later
    black[0] = 0
    p = _write(tmp_path / "black.h5", black)
    with pytest.raises(MeasurementError, match=r"black.h5:/0': constant image \(all 0\): no hologram"):
        read_qpformat_hdf5(p)
    assert not inspect_measurement(p, full=True).valid
    p = _write(tmp_path / "gap.h5", good)
    with h5py.File(p, "r+") as f:
        f.move("1", "2")
    with pytest.raises(MeasurementError, match=r"gap.h5': hologram datasets must be numbered 0..1 without gaps"):
        read_qpformat_hdf5(p)
    p = _write(tmp_path / "cube.h5", good[None])
    with pytest.raises(MeasurementError, match=r"cube.h5:/0': shape \(2, 16, 16\) is not a 2-D image"):
        read_qpformat_hdf5(p)
    p = _write(tmp_path / "badnm.h5", good, attrs={"medium index": 0.5})
    with pytest.raises(MeasurementError, match=r"badnm.h5': key 'medium_index' = 0.5 must be > 0.99"):
        read_qpformat_hdf5(p)
