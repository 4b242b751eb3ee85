"""Real holograms from another lab (tests/data/README.md) through the program, checked against qpretrieve.

``hologram_cell.npz`` (qpretrieve 0.7.0's test data, MIT) is a real off-axis hologram of an HL60
cell and its background. Its microscope puts the object side band at f_x < 0 of our FFT grid:
the old "peak with f_x > 0" rule gave the conjugate field (phase −3.5 rad inside a cell that is
denser than its medium, correlation −1.000 with qpretrieve). The side band is now chosen by
physics (``docs/formats.md`` §1, ``carrier_per_um``).

qpretrieve runs with ``filter_size=1/2`` ("sideband distance": a disk of half the carrier's
distance from the zero order). Our pupil is NA/λ = 0.48·|c| with |c| from qpretrieve's own
side-band search: just inside that disk. On this hologram the side band nearly touches the
zero order's autocorrelation term, so a disk even a fraction of a bin *wider* than half the
distance takes in zero-order light (correlation 0.977 at 0.503·|c|); from 0.40 to 0.50·|c| the
correlation stays 0.999–1.000 and the integrated phase within 1–2 %.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from engine.pipeline.process import ProcessOptions, process_measurement
from engine.store.results import read_result

qpretrieve = pytest.importorskip("qpretrieve")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# the file stores no metadata: any consistent choice (µm) gives the same phase; the pupil radius NA/λ
# is PUPIL of the carrier distance (module docstring); the benchmarks use the same conventions
from _real_holograms import DATA, LAM, NM, PUPIL, PX, metadata_for  # noqa: E402


def _reference():
    """qpretrieve's field (background-divided) and its carrier distance in cycles/µm."""
    d = np.load(DATA / "hologram_cell.npz")
    holo = qpretrieve.OffAxisHologram(d["data"])
    holo.run_pipeline(filter_size=1 / 2)
    bg = qpretrieve.OffAxisHologram(d["bg_data"])
    bg.process_like(holo)
    field = np.squeeze(np.asarray(holo.field) / np.asarray(bg.field))
    c = np.hypot(*holo.pipeline_kws["sideband_freq"]) / PX  # cycles/px -> cycles/µm
    return d, field, c


def _border(p: np.ndarray, w: int = 8) -> np.ndarray:
    return np.concatenate([p[:w].ravel(), p[-w:].ravel(), p[:, :w].ravel(), p[:, -w:].ravel()])


def _integrated(p: np.ndarray) -> float:
    return float((p - np.median(_border(p))).sum() * PX**2)


def _folder(tmp_path: Path, d, c: float, **extra) -> Path:
    folder = tmp_path / "hl60"
    folder.mkdir()
    tifffile.imwrite(folder / "sample.tif", d["data"][None])
    tifffile.imwrite(folder / "background.tif", d["bg_data"][None])
    meta = {"format": "odt-measurement/1", "wavelength_um": LAM, "medium_index": NM,
            "na_objective": round(PUPIL * c * LAM, 4), "pixel_size_um": PX, **extra}
    (folder / "measurement.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def reference():
    return _reference()


def test_real_hologram_has_the_right_sign_and_matches_qpretrieve(tmp_path, reference):
    from skimage.restoration import unwrap_phase

    d, field_q, c = reference
    phase_q = unwrap_phase(np.angle(field_q))
    folder = _folder(tmp_path, d, c)
    out = tmp_path / "hl60.odt.h5"
    res = process_measurement(folder, out, ProcessOptions(screen="none", non_negativity=False))
    phase = np.angle(res.fields[0])  # the pipeline stores the field; unwrap it as qpretrieve's was
    phase = unwrap_phase(phase)
    # positive inside the cell (a cell is denser than its medium)
    cell = phase_q - np.median(_border(phase_q)) > 1.0
    assert cell.mean() > 0.05
    assert np.median(phase[cell] - np.median(_border(phase))) > 1.0
    corr = np.corrcoef(phase.ravel(), phase_q.ravel())[0, 1]
    assert corr >= 0.99, corr
    ratio = _integrated(phase) / _integrated(phase_q)
    assert abs(ratio - 1) < 0.03, ratio
    # the choice is recorded in the result file and no warning was raised
    r = read_result(out)
    assert r.retrieval.attrs["sideband_source"] == "auto"
    assert bool(r.retrieval.attrs["sideband_flipped"]) is True
    assert r.retrieval.attrs["sideband_confidence"] > 10
    assert "positive phase" in r.retrieval.attrs["sideband_description"]
    assert not res.warnings


def test_real_hologram_quality_numbers_are_sane(reference):
    from engine.holography.retrieval import retrieve_fields

    d, _, c = reference
    md = metadata_for(c)
    q = retrieve_fields(d["data"][None], d["bg_data"][None], md, device="cpu").quality.row(0)
    assert q["phase_noise_rad"] < 0.1          # an 8-bit hologram of good contrast: low noise
    assert q["residue_density"] < 1e-3          # no vortices to speak of
    assert q["unwrap_inconsistency"] < 0.01     # the guided and least-squares unwrappings agree
    assert 0 <= q["outside_pupil_energy"] < 0.1  # a clean side band
    assert 0 <= q["background_phase_std_rad"] < 1.0
    # parasitic fringes (a second reference, tilted a little more) just outside the pupil show
    carrier = retrieve_fields(d["data"][None], d["bg_data"][None], md, device="cpu", unwrap=False).carrier_per_um
    f = carrier * (1 + 1.15 * PUPIL * c / np.hypot(*carrier)) * PX  # cycles/px, 1.15 pupil radii out
    y, x = np.mgrid[:200, :210]
    fringe = 30 * np.cos(2 * np.pi * (f[0] * x + f[1] * y))
    bad = np.clip(d["data"] + fringe, 0, 255).astype(np.uint8)
    qb = retrieve_fields(bad[None], d["bg_data"][None], md, device="cpu").quality.row(0)
    assert qb["outside_pupil_energy"] > 3 * q["outside_pupil_energy"]


def test_explicit_carrier_is_honoured_and_a_negative_sample_warns(tmp_path, reference):
    """carrier_per_um at the conjugate side band: used as given, and the warning names the cause."""
    from engine.holography.retrieval import find_carrier

    d, _, c = reference
    wrong = find_carrier(d["bg_data"].astype(np.float32), PX, exclude_radius_per_um=0.25 * c, device="cpu")
    folder = _folder(tmp_path, d, c, carrier_per_um=[float(wrong[0]), float(wrong[1])])
    res = process_measurement(folder, None, ProcessOptions(screen="none", non_negativity=False))
    assert res.retrieval["attrs"]["sideband_source"] == "metadata"
    assert np.allclose(res.retrieval["attrs"]["carrier_per_um"], wrong)
    assert len(res.warnings) == 1 and "carrier_per_um" in res.warnings[0] and "negative" in res.warnings[0]


def test_as_given_setting_takes_the_positive_fx_peak(tmp_path, reference):
    d, _, c = reference
    folder = _folder(tmp_path, d, c)
    res = process_measurement(folder, None, ProcessOptions(screen="none", sideband="as-given",
                                                           non_negativity=False))
    assert res.retrieval["attrs"]["sideband_source"] == "as-given"
    assert res.retrieval["attrs"]["carrier_per_um"][0] > 0
    assert res.warnings and "as given" in res.warnings[0]


def _minus_border_plane(p: np.ndarray, w: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``p`` minus the plane fitted to its border frame, and the frame mask."""
    h, wd = p.shape
    yy, xx = np.mgrid[:h, :wd]
    b = np.zeros(p.shape, bool)
    b[:w] = b[-w:] = True
    b[:, :w] = b[:, -w:] = True
    a = np.c_[np.ones(b.sum()), yy[b], xx[b]]
    c, *_ = np.linalg.lstsq(a, p[b], rcond=None)
    return p - (c[0] + c[1] * yy + c[2] * xx), b


def test_qpformat_real_hologram_positive_without_seam_and_matches_qpretrieve():
    """qpformat's real hologram has no background: the phase carries a tilt across the field.

    The tilt must not decide the side band (the integrated phase is taken over a fitted plane),
    and must not put a 2π seam across the image (least squares with Neumann boundaries).
    """
    import h5py
    from skimage.restoration import unwrap_phase

    from engine.holography.retrieval import retrieve_fields
    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    with h5py.File(DATA / "single_hdf5_raw-oah.h5", "r") as f:
        holo = f["0"][()]
    ref = qpretrieve.OffAxisHologram(holo)
    ref.run_pipeline(filter_size=1 / 2)
    ref_phase, frame = _minus_border_plane(unwrap_phase(np.angle(np.squeeze(np.asarray(ref.field)))))
    m = read_qpformat_hdf5(DATA / "single_hdf5_raw-oah.h5")
    r = retrieve_fields(m.holograms, m.backgrounds, m.metadata, device="cpu")
    assert r.sideband.source == "auto" and not r.sideband.ambiguous
    assert r.quality.unwrap_inconsistency[0] == 0  # no region 2π off
    ours, _ = _minus_border_plane(r.unwrapped_phase[0])
    centre = ours[120:170, 110:170].mean() - np.median(ours[frame])
    assert centre > 2.0  # the cell, denser than its medium: positive
    corr = np.corrcoef(ours.ravel(), ref_phase.ravel())[0, 1]
    assert corr >= 0.99, corr


def test_real_holograms_are_scored_clean(reference):
    """The shipped screening model keeps the real holograms of both labs (issue #19, item 5)."""
    from engine.holography.retrieval import retrieve_fields
    from engine.screening import screen_fields
    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    d, _, c = reference
    md = metadata_for(c)
    cases = [(d["data"][None], d["bg_data"][None], md)]
    for name in ("single_hdf5_raw-oah.h5", "series_hdf5_raw-oah.h5"):
        m = read_qpformat_hdf5(DATA / name)
        cases.append((m.holograms, m.backgrounds, m.metadata))
    for holo, bg, meta in cases:
        r = retrieve_fields(holo, bg, meta, device="cpu")
        s = screen_fields(r.field, r.illumination_per_um, meta, method="model", unwrapped_phase=r.unwrapped_phase,
                          pixel_size_um=r.pixel_size_um, device="cpu")
        assert np.all(s.decision == 1), (s.score, s.model_name)
        # 3.0.0: 0.38 / 0.29 / 0.29 (2.0.0: 0.19 / 0.13 / 0.13; its Platt offset, fitted on validation, raises
        # every score): clean, with a smaller margin than before
        assert np.all(s.score < 0.45), s.score


def test_third_real_hologram_without_background_matches_qpretrieve_and_is_scored_clean():
    """``single_holo.tif`` (qpformat's test data, a crop of the drymass tutorial's hologram 38.tif):
    a cell from another acquisition, no background, no metadata. It entered the tests after the
    screening candidates of session 9 had been judged on the two holograms above, so its screening
    score was not looked at while tuning them (issue #19: a hologram for validation, not for tuning).
    """
    from engine.screening import screen_fields

    with tifffile.TiffFile(DATA / "single_holo.tif") as t:
        holo = t.pages[0].asarray()  # (238, 267) uint8; the page, not the description's "shape"
    r, ref_phase, frame, md = _without_background(holo)
    assert r.sideband.source == "auto" and not r.sideband.ambiguous
    assert r.quality.unwrap_inconsistency[0] == 0
    ours, _ = _minus_border_plane(r.unwrapped_phase[0])
    h, w = ours.shape
    centre = ours[h // 2 - 25:h // 2 + 25, w // 2 - 25:w // 2 + 25].mean() - np.median(ours[frame])
    assert centre > 3.0  # measured 4.25 rad (qpretrieve: the same): denser than its medium
    assert np.corrcoef(ours.ravel(), ref_phase.ravel())[0, 1] >= 0.999  # measured 0.99994
    s = screen_fields(r.field, r.illumination_per_um, md, method="model", pixel_size_um=r.pixel_size_um, device="cpu")
    assert np.all(s.decision == 1) and np.all(s.score < 0.45), s.score  # 3.0.0: 0.39; 2.0.0: 0.194
    assert any("pupil sampling" in x and "is below its training range" in x for x in s.warnings)  # 0.222


def _without_background(holo: np.ndarray):
    """A real hologram (h, w) with no background image and no metadata, retrieved as the program
    does (pupil ``PUPIL`` of qpretrieve's carrier distance, a synthesised background), and
    qpretrieve's unwrapped phase minus its border plane: (ours, reference phase, frame, metadata)."""
    from skimage.restoration import unwrap_phase

    from engine.holography.retrieval import retrieve_fields
    from engine.store.qpformat_hdf5 import synthesise_background

    ref = qpretrieve.OffAxisHologram(holo)
    ref.run_pipeline(filter_size=1 / 2)
    ref_phase, frame = _minus_border_plane(unwrap_phase(np.angle(np.squeeze(np.asarray(ref.field)))))
    c = np.hypot(*ref.pipeline_kws["sideband_freq"]) / PX
    md = metadata_for(c)
    bg, _ = synthesise_background(holo[None], md)
    return retrieve_fields(holo[None], bg[None], md, device="cpu"), ref_phase, frame, md


def _curved_background_field():
    """qpimage's HL60 hologram with a curved background, through :func:`_without_background`."""
    from PIL import Image

    return _without_background(np.array(Image.open(DATA / "hologram_cell_curved_bg.jpg")))  # (600, 400) uint8 JPEG


@pytest.fixture(scope="module")
def curved_background():
    return _curved_background_field()


def test_fourth_real_hologram_with_a_curved_background_matches_qpretrieve(curved_background):
    """``hologram_cell_curved_bg.jpg`` (qpimage 0.9.3's example data, MIT): an HL60 cell near the
    lower edge of a 600 × 400 hologram whose phase background is curved (a real aberration, the
    example qpimage fits a 2nd-order polynomial to). JPEG, no background, no metadata."""
    r, ref_phase, frame, _ = curved_background
    assert r.sideband.source == "auto" and not r.sideband.ambiguous
    assert r.quality.unwrap_inconsistency[0] == 0
    ours, _ = _minus_border_plane(r.unwrapped_phase[0])
    cell = ours[370:430, 170:230].mean() - np.median(ours[frame])
    assert cell > 3.0  # measured 4.39 rad (qpretrieve 4.39): denser than its medium
    assert np.corrcoef(ours.ravel(), ref_phase.ravel())[0, 1] >= 0.999  # measured 0.9995


def test_fourth_real_hologram_is_scored_clean_on_a_crop_that_holds_its_cell(curved_background):
    """The cell sits near the lower edge: the centre crop (rows 236–364) holds only its upper
    edge, and there the shipped model scored this clean field 0.56 (noisy). The screen now crops
    around the sample (:mod:`engine.screening.sample_crop`): rows 340–467, score 0.10 (3.0.0: 0.25)."""
    from engine.screening import screen_fields

    r, _, _, md = curved_background
    s = screen_fields(r.field, r.illumination_per_um, md, method="model", pixel_size_um=r.pixel_size_um, device="cpu")
    y0, x0 = s.crop_origin
    assert 330 <= y0 <= 350 and 130 <= x0 <= 145, s.crop_origin  # the cell's centre: row ~402, column ~201
    assert np.all(s.decision == 1) and np.all(s.score < 0.45), s.score
