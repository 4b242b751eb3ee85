"""The tabs' non-Qt halves (app/logic/) and the birefringence file helpers (engine/store/birefringence.py).

No QApplication here (tests/app/conftest.py makes one for every test under tests/app/): these
run, and must pass, without Qt.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from app.logic import birefringence as bl
from app.logic import display as dl
from app.logic import importing as il
from app.logic import screening as sl
from engine.pipeline.project_screening import sideband_description
from engine.store.birefringence import has_birefringence, read_birefringence_truth
from engine.store.folders import MeasurementInfo

META = {"format": "odt-measurement/1", "wavelength_um": 0.532, "medium_index": 1.337, "na_objective": 1.2,
        "pixel_size_um": 0.1}


def _measurement(root: Path, name: str, meta: dict | None = None, n: int = 2) -> Path:
    folder = root / name
    for sub in ("sample", "background"):
        (folder / sub).mkdir(parents=True)
        for i in range(n):
            img = np.random.default_rng(i).uniform(10, 200, (8, 8)).astype(np.uint16)
            tifffile.imwrite(folder / sub / f"{i:03d}.tif", img)
    (folder / "measurement.json").write_text(json.dumps(META if meta is None else meta), encoding="utf-8")
    return folder


def _truth(path: Path, with_origin: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n_o = np.full((4, 6, 8), 1.50, np.float32)
    n_e = n_o.copy()
    n_e[1:3, 2:4, 2:6] = 1.56  # the anisotropic part
    director = rng.normal(size=(4, 6, 8, 3)).astype(np.float32)
    director /= np.linalg.norm(director, axis=-1, keepdims=True)
    with h5py.File(path, "w") as f:
        f["n_e"], f["n_o"], f["director"] = n_e, n_o, director
        f.attrs["voxel_size_um"] = np.array([0.2, 0.1, 0.1])
        if with_origin:
            f.attrs["origin_um"] = np.array([-1.0, -0.5, -0.25])
        f.attrs["medium_index"] = 1.46
    return n_e, n_o, director


# ---------------------------------------------------------------------------- no Qt
def test_the_logic_modules_import_no_qt():
    code = ("import sys; import app.logic.importing, app.logic.screening, app.logic.birefringence, app.logic.display, "
            "engine.store.birefringence; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'vtkmodules')); "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------- engine.store.birefringence
def test_truth_reader_zeroes_the_director_where_isotropic(tmp_path):
    n_e, n_o, director = _truth(tmp_path / "truth.h5")
    t = read_birefringence_truth(tmp_path / "truth.h5")
    np.testing.assert_array_equal(t.n_e, n_e)
    aniso = n_e != n_o
    np.testing.assert_array_equal(t.director[aniso], director[aniso])
    assert not t.director[~aniso].any()
    assert t.voxel_size_um == pytest.approx((0.2, 0.1, 0.1)) and t.origin_um == pytest.approx((-1.0, -0.5, -0.25))
    assert t.medium_index == pytest.approx(1.46)


def test_truth_reader_centres_the_origin_when_the_file_has_none(tmp_path):
    _truth(tmp_path / "truth.h5", with_origin=False)
    t = read_birefringence_truth(tmp_path / "truth.h5")
    assert t.origin_um == pytest.approx((-2 * 0.2, -3 * 0.1, -4 * 0.1))  # −(n // 2)·d


def test_truth_reader_refuses_an_isotropic_truth(tmp_path):
    with h5py.File(tmp_path / "truth.h5", "w") as f:
        f["ri"] = np.ones((2, 2, 2), np.float32)
        f.attrs["voxel_size_um"] = np.ones(3)
    with pytest.raises(ValueError, match="missing n_e, n_o, director"):
        read_birefringence_truth(tmp_path / "truth.h5")


def test_has_birefringence(tmp_path):
    with h5py.File(tmp_path / "a.odt.h5", "w") as f:
        f.create_group("birefringence")
    with h5py.File(tmp_path / "b.odt.h5", "w") as f:
        f.create_group("tomogram")
    (tmp_path / "c.odt.h5").write_text("not HDF5")
    assert has_birefringence(tmp_path / "a.odt.h5")
    assert not has_birefringence(tmp_path / "b.odt.h5")
    assert not has_birefringence(tmp_path / "c.odt.h5")
    assert not has_birefringence(tmp_path / "missing.odt.h5")


# ---------------------------------------------------------------------------- app.logic.birefringence
def test_load_truth_is_labelled_and_reports_progress(tmp_path):
    _truth(tmp_path / "truth.h5")
    seen = []
    v = bl.load_truth(tmp_path / "truth.h5", progress=lambda f, msg="": seen.append(f))
    assert v.is_truth and v.label.startswith("TRUTH (simulator)")
    assert seen[-1] == 1.0
    np.testing.assert_allclose(v.delta_n, v.n_e - v.n_o)
    assert bl.title_text(v).endswith("(8×6×4 voxels of 0.1×0.1×0.2 µm, x×y×z)")


def test_volumes_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="director"):
        bl.BirefringenceVolumes(np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones((2, 3, 4)), (1, 1, 1), (0, 0, 0))
    v = bl.BirefringenceVolumes(np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.zeros((2, 3, 4, 3)), (1, 1, 1), (0, 0, 0))
    with pytest.raises(ValueError, match="unknown quantity"):
        v.volume("n")


def test_describe_voxel_gives_position_indices_and_director_angles():
    shape = (3, 4, 5)
    n_o = np.full(shape, 1.5, np.float32)
    n_e = n_o + 0.05
    director = np.zeros(shape + (3,), np.float32)
    s = 1 / math.sqrt(2)
    director[1, 2, 3] = (s, s, 0.0)  # (z, y, x): 45° from z, in the y–z plane → azimuth 90°, tilt 45°
    v = bl.BirefringenceVolumes(n_e, n_o, director, (0.5, 0.2, 0.1), bl.centred_origin(shape, (0.5, 0.2, 0.1)))
    text = bl.describe_voxel(v, 1, 2, 3)
    assert "x +0.10  y +0.00  z +0.00 µm" in text  # origin −(n//2)·d: x = (3 − 2)·0.1
    assert "n_e = 1.5500" in text and "Δn = +0.0500" in text
    assert "azimuth 90°" in text and "tilt from z 45°" in text
    assert bl.describe_voxel(v, 0, 0, 0).endswith("director —")
    assert bl.describe_voxel(None, 0, 0, 0) == ""


def test_slice_levels_and_line_threshold():
    shape = (4, 4, 4)
    n_o = np.full(shape, 1.50, np.float32)
    n_e = n_o.copy()
    n_e[0] = 1.56
    n_e[1] = 1.46  # negative Δn, much more than a fifth of the range
    v = bl.BirefringenceVolumes(n_e, n_o, np.zeros(shape + (3,)), (1, 1, 1), (0, 0, 0), medium_index=1.33)
    lo, hi, label = bl.slice_levels(v, "delta_n")
    assert label == "Δn" and hi == pytest.approx(0.06, abs=2e-3) and lo == -hi
    lo, hi, label = bl.slice_levels(v, "n_e")
    assert label == "n_e" and lo == pytest.approx(1.33) and hi == pytest.approx(1.56, abs=1e-3)
    assert bl.default_min_delta_n(v) == pytest.approx(round(0.3 * np.percentile(np.abs(n_e - n_o), 99.5), 4))


# ---------------------------------------------------------------------------- app.logic.importing
def test_scan_lists_valid_and_metadata_less_folders(tmp_path):
    _measurement(tmp_path, "m1")
    _measurement(tmp_path, "m2", {**META, "medium_index": "water"})
    loose = tmp_path / "loose" / "sample"
    loose.mkdir(parents=True)
    tifffile.imwrite(loose / "000.tif", np.ones((8, 8), np.uint16))
    infos = il.scan_measurements(tmp_path)
    by_name = {i.name: i for i in infos}
    assert by_name["m1"].valid and not by_name["m2"].valid
    assert il.cell_text(by_name["m1"], 4) == il.VALID_TEXT and il.cell_text(by_name["m1"], 3) == "8 × 8"
    assert il.cell_text(by_name["m2"], 4) == by_name["m2"].error
    assert il.cell_text(by_name["loose"], 4) == il.NO_METADATA_TEXT
    summary = il.scan_summary(infos, n_in_project=1)
    assert summary.startswith("2 measurement folder(s) found: 1 valid, 1 with errors")
    assert "1 folder(s) of images without measurement.json" in summary and "1 already in the project" in summary
    assert il.scan_summary([], 0) == ""


def test_import_summary_and_details():
    out = [il.ImportOutcome(Path("a"), "imported", 1), il.ImportOutcome(Path("b"), "already", 2),
           il.ImportOutcome(Path("c"), "failed", None, "broken")]
    assert il.import_summary(out) == "1 imported, 1 already in the project, 1 failed: c: broken."
    empty = il.measurement_details(MeasurementInfo(name="x", path=Path("x")))
    assert set(empty.values()) == {"–"}


def test_sideband_status_without_a_project(tmp_path):
    plain = _measurement(tmp_path, "plain")
    given = _measurement(tmp_path, "given", {**META, "carrier_per_um": [2.0, 0.5]})
    assert il.sideband_status(None, plain) == sideband_description(None, "auto")
    assert "carrier_per_um from measurement.json" in il.sideband_status(None, given)


# ---------------------------------------------------------------------------- app.logic.screening
def _screening_data(use_rule: bool) -> sl.ScreeningData:
    n = 4
    return sl.ScreeningData(
        measurement_id=1, name="m", fields=np.ones((n, 8, 8), np.complex64), pixel_size_um=0.1,
        thumbnails=np.zeros((n, 8, 8), np.uint8),
        score=np.full(n, np.nan, np.float32) if use_rule else np.array([0.1, 0.9, 0.4, 0.6], np.float32),
        rule_peak=np.array([1.0, 3.5, np.nan, 2.0], np.float32), auto_decision=np.ones(n, np.uint8),
        auto_source=np.zeros(n, np.uint8), manual=[None] * n, use_rule=use_rule, threshold=2.3 if use_rule else 0.5,
        rule_threshold=2.3, model_label="rule 1" if use_rule else "net v2", model_name="rule" if use_rule else "net",
        model_version="1" if use_rule else "v2")


def test_threshold_range():
    assert sl.threshold_range(_screening_data(False)) == (0.0, 1.0)
    assert sl.threshold_range(_screening_data(True)) == (0.0, 4.0)  # floor(1 − .5), ceil(3.5 + .5); NaN ignored


def test_field_details_say_who_decided():
    d = _screening_data(False)
    text = sl.field_details(d, 1, decision=0, auto=0, manual=None, threshold=0.5, quality={})
    assert "decided by model" in text and "model score <b>0.900</b>" in text and "rule says noisy" in text
    assert "not recorded" in text
    text = sl.field_details(d, 1, decision=1, auto=0, manual=1, threshold=0.5,
                            quality={"phase_noise_rad": 0.12})
    assert "manual (differs from automatic)" in text and "phase noise 0.120 rad" in text
    rule = sl.field_details(_screening_data(True), 2, decision=1, auto=1, manual=None, threshold=2.3, quality={})
    assert "decided by rule" in rule and "model: none installed" in rule and "rule peak <b>–</b>" in rule
    camera = sl.field_details(_screening_data(False), 1, decision=0, auto=0, manual=None, threshold=0.5,
                              quality={"hot_pixel_fraction": 0.004, "row_jitter": 0.01})
    assert "camera: 0.4 % hot pixels: noisy whatever the model says" in camera and "hot pixels 0.4 % of px" in camera
    assert "camera:" not in sl.field_details(_screening_data(False), 1, decision=1, auto=1, manual=None,
                                             threshold=0.5, quality={"hot_pixel_fraction": 0.0, "row_jitter": 0.01})


def test_quality_text_and_metric_format():
    assert sl.quality_text({"outside_pupil_energy": 0.012, "residue_density": 0.0}) == \
        "phase residues 0 · energy outside the pupil 1.2 % of inside"
    assert sl.fmt_metric(None) == "–" and sl.fmt_metric(float("nan")) == "–" and sl.fmt_metric(0.12345) == "0.123"



# ---------------------------------------------------------------------------- app.logic.display
def test_field_image_modes():
    y, x = np.indices((16, 16))
    u = (2.0 * np.exp(1j * (0.3 + 0.5 * (x - 8) / 8))).astype(np.complex64)
    phase = dl.field_image(u, "Phase")
    assert abs(float(np.angle(np.exp(1j * phase).sum()))) < 1e-5  # the mean phase is removed
    np.testing.assert_allclose(dl.field_image(u, "Amplitude"), 2.0, rtol=1e-6)
    spec = dl.field_image(np.ones((8, 8), np.complex64), "Log spectrum")
    assert np.unravel_index(np.argmax(spec), spec.shape) == (4, 4)  # frequency 0 at n//2 after the shift
    with pytest.raises(ValueError):
        dl.field_image(u, "Hue")


def test_screen_angles_follow_the_vertical_axis():
    seg = np.array([[[0, 0], [1, 1]], [[0, 0], [1, 0]]], np.float32)
    np.testing.assert_allclose(dl.screen_angles(seg, vertical_inverted=False), [np.pi / 4, 0], atol=1e-6)
    np.testing.assert_allclose(dl.screen_angles(seg, vertical_inverted=True), [3 * np.pi / 4, 0], atol=1e-6)
    assert dl.screen_angles(np.zeros((0, 2, 2)), False).shape == (0,)


def test_director_glyphs_sit_on_the_subsampled_grid_where_strong():
    shape = (4, 8, 8)
    director = np.zeros(shape + (3,), np.float32)
    director[..., 1] = 1.0  # along y
    strength = np.zeros(shape, np.float32)
    strength[:, :4] = 0.05  # only the y < 4 half is strong
    seg, azimuth = dl.director_glyph_segments(director, strength, step=2, min_strength=0.01,
                                              voxel_size_um=(0.2, 0.1, 0.1), origin_um=(0.0, 0.0, 0.0))
    assert seg.shape == (2 * 2 * 4, 2, 3)  # z: 2 planes, y: 2 rows below 4, x: 4 columns
    centre_y = seg.mean(axis=1)[:, 1]
    assert centre_y.max() < 0.4 and np.allclose(seg[:, 1, 1] - seg[:, 0, 1], 0.9 * 2 * 0.1)  # VTK (x, y, z)
    np.testing.assert_allclose(azimuth, np.pi / 2, atol=1e-6)


def test_sample_voxel_opens_on_the_object():
    vol = np.full((8, 20, 20), 1.337, np.float32)
    vol[2:5, 12:17, 3:8] = 1.38
    z, y, x = dl.sample_voxel(vol)
    assert 2 <= z < 5 and 12 <= y < 17 and 3 <= x < 8
    assert dl.sample_voxel(np.full((6, 10, 12), 1.337, np.float32)) == (3, 5, 6)
