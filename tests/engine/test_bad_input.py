"""Bad input (issue #16): holograms that cannot be holograms, and image folders without metadata.

* constant images (all black, all at full scale, zero variance) in every frame reject the
  measurement with a message naming folder, file and problem; so does a stack in which every
  image is over-exposed; one such frame among good ones is a dropped frame: the pipeline excludes
  its field and warns; real holograms (tests/data) and simulated folders with defects pass;
* a folder of images without ``measurement.json`` gets a failed row in ``summary.csv``, a line
  on stderr and a non-zero exit, and parents of real measurements are not reported.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from _folders import images, make_measurement, meta, process_small, write_image
from engine.pipeline.batch import read_summary, run_batch
from engine.store.folders import (MeasurementError, check_hologram_content, discover_measurements,
                                  inspect_measurement, load_measurement)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


# ---------------------------------------------------------------------------- constant / over-exposed
def test_all_black_frames_reject_the_measurement_naming_folder_and_file(tmp_path):
    folder = make_measurement(tmp_path, "m", n=4)
    for k in range(4):
        write_image(folder / "sample" / f"{k:03d}.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(MeasurementError) as e:
        load_measurement(folder)
    msg = str(e.value)
    assert str(folder) in msg and "sample/000.tif" in msg and "constant image (all 0): no hologram" in msg
    assert "4 of the 4 sample images are constant" in msg
    assert e.value.file == "sample/000.tif"
    info = inspect_measurement(folder, full=True)
    assert not info.valid and info.error == msg
    # the fast check decodes only the first image: it cannot know that the others are black too
    assert inspect_measurement(folder).valid


def test_one_black_frame_among_good_ones_is_loaded(tmp_path):
    """A dropped frame costs its field (the pipeline excludes it), not the measurement."""
    folder = make_measurement(tmp_path, "m", n=4)
    write_image(folder / "sample" / "003.tif", np.zeros((8, 8), np.uint16))
    m = load_measurement(folder)
    assert m.holograms[3].max() == 0
    assert inspect_measurement(folder, full=True).valid


def test_one_black_frame_is_excluded_from_the_tomogram_with_a_warning(tmp_path, monkeypatch):
    from engine.pipeline.process import ProcessOptions, process_measurement
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    folder = write_demo(tmp_path / "sim", kind="beads", count=1, seed=5, config=tiny_demo_config(n_angles=8),
                        device="cpu")[0]
    clean = process_measurement(folder, None, ProcessOptions(screen="none", device="cpu"))
    first = sorted((folder / "sample").iterdir())[2]
    write_image(first, np.zeros(tifffile.imread(first).shape, np.uint16))
    res = process_measurement(folder, None, ProcessOptions(screen="none", device="cpu"))
    assert res.screening.decision[2] == 0 and res.screening.decision.sum() == 7
    assert any("excluded" in w and "field(s) 2" in w for w in res.warnings)
    # the tomogram is what the other 7 fields give: close to the clean one; with the black field
    # used (the guard switched off) it is ruined
    import engine.pipeline.process as process

    rms = float(np.sqrt(np.mean((res.tomogram.ri - clean.tomogram.ri) ** 2)))
    monkeypatch.setattr(process, "failed_retrievals", lambda r: (np.zeros(r.field.shape[0], bool), ""))
    ruined = process_measurement(folder, None, ProcessOptions(screen="none", device="cpu"))
    rms_ruined = float(np.sqrt(np.mean((ruined.tomogram.ri - clean.tomogram.ri) ** 2)))
    off = float(np.median(res.tomogram.ri - clean.tomogram.ri))
    off_ruined = float(np.median(ruined.tomogram.ri - clean.tomogram.ri))
    print(f"\ndifference to the clean tomogram: black field excluded RMS {rms:.5f} median {off:+.5f}; "
          f"used RMS {rms_ruined:.5f} median {off_ruined:+.5f}")
    assert rms < 0.6 * rms_ruined


def test_all_black_holograms_say_how_many(tmp_path):
    folder = make_measurement(tmp_path, "m", n=3, form="multipage", dtype=np.uint8)
    tifffile.imwrite(folder / "sample.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(MeasurementError, match=r"'sample.tif \(page 0\)': constant image \(all 0\).*"
                                               r"3 of the 3 sample images are constant"):
        load_measurement(folder)


@pytest.mark.parametrize("dtype,value,word", [(np.uint8, 255, "over-exposed"), (np.uint16, 65535, "over-exposed"),
                                              (np.float32, 7.5, "no hologram")])
def test_constant_background_is_rejected(tmp_path, dtype, value, word):
    folder = make_measurement(tmp_path, "m", n=2, dtype=dtype, background="single")
    write_image(folder / "background.tif", np.full((8, 8), value, dtype))
    with pytest.raises(MeasurementError) as e:
        load_measurement(folder)
    assert e.value.file == "background.tif" and f"constant image (all {value:g})" in str(e.value)
    assert word in str(e.value)


def test_constant_frames_in_measurement_h5_name_the_dataset_index(tmp_path):
    folder = make_measurement(tmp_path, "m", n=3, form="h5")
    with h5py.File(folder / "measurement.h5", "r+") as f:
        f["sample"][1] = 42
    load_measurement(folder)  # one constant frame: excluded later, not an error
    with h5py.File(folder / "measurement.h5", "r+") as f:
        f["sample"][:] = 42
    with pytest.raises(MeasurementError, match=r"measurement.h5:/sample\[0\]': constant image \(all 42\)"):
        load_measurement(folder)


def test_every_frame_over_exposed_is_rejected_but_one_clipped_frame_is_left_to_screening(tmp_path):
    stack = images(3, (16, 16), np.uint16, 0)
    clipped = stack.copy()
    clipped[:, :, :10] = 4095  # a 12-bit camera: 10 of 16 columns at its full scale
    folder = make_measurement(tmp_path, "m", n=3, shape=(16, 16))
    write_image(folder / "sample" / "001.tif", clipped[1])
    assert load_measurement(folder).n_images == 3  # a single saturated frame: a screening matter
    for i in range(3):
        write_image(folder / "sample" / f"{i:03d}.tif", clipped[i])
    with pytest.raises(MeasurementError, match=r"over-exposed: 62% of its pixels sit at its maximum 4095, "
                                               r"and every one of the 3 sample images"):
        load_measurement(folder)


def test_real_holograms_pass_the_content_check():
    d = np.load(DATA / "hologram_cell.npz")
    for key in ("data", "bg_data"):
        check_hologram_content(d[key], DATA, lambda i: key)  # noqa: B023 - called before the loop moves on
    for name in ("single_hdf5_raw-oah.h5", "series_hdf5_raw-oah.h5"):
        with h5py.File(DATA / name, "r") as f:
            stack = np.stack([f[k][()] for k in sorted(f.keys(), key=int)])
        check_hologram_content(stack, DATA, lambda i: f"{name}:/{i}")  # noqa: B023 - called at once


def test_real_hologram_folder_loads(tmp_path):
    d = np.load(DATA / "hologram_cell.npz")
    folder = tmp_path / "hl60"
    (folder / "sample").mkdir(parents=True)
    (folder / "measurement.json").write_text(json.dumps(meta()))
    write_image(folder / "sample" / "000.tif", d["data"])
    write_image(folder / "background.tif", d["bg_data"])
    m = load_measurement(folder)
    assert m.holograms.shape == (1, 200, 210) and m.backgrounds.shape == (200, 210)


def test_simulated_folders_with_defects_still_pass(tmp_path):
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    cfg = tiny_demo_config(n_angles=10)
    cfg.defect_rate = 0.6  # blank, saturated, dusty... frames are for screening, not errors
    for folder in write_demo(tmp_path, kind="beads", count=2, seed=3, config=cfg, device="cpu"):
        m = load_measurement(folder)
        assert "noisy" in m.metadata.labels
        assert inspect_measurement(folder, full=True).valid


# ---------------------------------------------------------------------------- folders without metadata
def _tree(root: Path) -> None:
    make_measurement(root / "day1", "good")
    write_image(root / "day1" / "overview.png", images(1, (8, 8), np.uint8)[0])  # a parent: not reported
    write_image(root / "day1" / "good" / "snapshots" / "a.png", images(1, (8, 8), np.uint8)[0])  # inside one
    forgot = make_measurement(root / "day2", "forgot", n=3)
    (forgot / "measurement.json").unlink()  # sample/ + background/ but no metadata
    loose = root / "day2" / "loose"
    for i in range(5):
        write_image(loose / f"img{i}.tif", images(1, (8, 8), np.uint16, i)[0])
    (root / "day2" / "notes").mkdir()
    (root / "day2" / "notes" / "readme.txt").write_text("no images here")
    hidden = root / ".cache"
    write_image(hidden / "x.tif", images(1, (8, 8), np.uint16)[0])
    write_image(root / "day3" / "overview.png", images(1, (8, 8), np.uint8)[0])  # a parent of one reported
    write_image(root / "day3" / "cell" / "sample.tif", images(1, (8, 8), np.uint16)[0])


def test_discover_reports_image_folders_without_measurement_json(tmp_path):
    root = tmp_path / "root"
    _tree(root)
    reported: list[tuple[Path, str]] = []
    found = discover_measurements(root, on_unrecognised=lambda p, m: reported.append((p, m)))
    assert found == [root / "day1" / "good"]
    assert [p.relative_to(root).as_posix() for p, _ in reported] == ["day2/forgot", "day2/loose", "day3/cell"]
    for p, msg in reported:
        assert msg.startswith("no measurement.json: ") and str(p) in msg
    assert "sample/ and background/ folders" in reported[0][1]
    assert "5 TIFF/PNG image(s) (img0.tif, img1.tif, img2.tif, ...)" in reported[1][1]
    assert discover_measurements(root) == found  # without the callback: as before
    # a root that is itself a folder of images is reported
    seen: list[Path] = []
    assert discover_measurements(root / "day2" / "loose", on_unrecognised=lambda p, m: seen.append(p)) == []
    assert seen == [root / "day2" / "loose"]


def test_run_batch_gives_unprocessable_folders_a_failed_row(tmp_path):
    make_measurement(tmp_path / "in", "m1", n=2)
    bad = tmp_path / "in" / "m1b"
    lines: list[str] = []
    s = run_batch([tmp_path / "in" / "m1"], tmp_path / "out", process_small, log=lines.append,
                  unprocessable=[(bad, "no measurement.json: folder 'x' holds images"),
                                 (tmp_path / "other" / "m1", "no measurement.json: again")])
    assert (s.n_ok, s.n_failed, s.exit_code) == (1, 2, 1)
    rows = {r["name"]: r for r in read_summary(tmp_path / "out" / "summary.csv")}
    assert set(rows) == {"m1", "m1b", "m1_2"}  # names unique across both kinds
    assert rows["m1b"]["status"] == "failed" and rows["m1b"]["error"].startswith("no measurement.json: ")
    assert not (tmp_path / "out" / "m1b.odt.h5").exists()
    assert any("m1b: failed: no measurement.json" in line for line in lines)
    # a re-run never skips them
    s = run_batch([tmp_path / "in" / "m1"], tmp_path / "out", process_small, log=None,
                  unprocessable=[(bad, "no measurement.json: x")])
    assert (s.n_skipped, s.n_failed, s.exit_code) == (1, 1, 1)


@pytest.mark.slow
def test_odt_studio_batch_on_good_broken_and_metadata_less_folders(tmp_path):
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    cfg = tiny_demo_config(n_angles=8)
    good = write_demo(tmp_path / "sim", kind="beads", count=1, seed=5, config=cfg, device="cpu")[0]
    in_dir = tmp_path / "in"
    shutil.copytree(good, in_dir / "good")
    shutil.copytree(good, in_dir / "no_json")
    (in_dir / "no_json" / "measurement.json").unlink()
    shutil.copytree(good, in_dir / "black")
    frames = sorted((in_dir / "black" / "sample").iterdir())
    first = frames[0]
    shape = tifffile.imread(first).shape
    for fr in frames:
        write_image(fr, np.zeros(shape, np.uint16))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "app", "batch", str(in_dir), "--out", str(out), "--screen", "none",
                        "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"good", "no_json", "black"}
    assert rows["good"]["status"] == "ok" and (out / "good.odt.h5").is_file()
    assert rows["no_json"]["status"] == "failed" and rows["no_json"]["error"].startswith("no measurement.json: ")
    assert str(in_dir / "no_json") in rows["no_json"]["error"]
    assert rows["black"]["status"] == "failed"
    assert f"sample/{first.name}" in rows["black"]["error"] and "constant image (all 0)" in rows["black"]["error"]
    assert not (out / "no_json.odt.h5").exists() and not (out / "black.odt.h5").exists()
    assert "no_json: failed: no measurement.json" in r.stderr and "black: failed" in r.stderr

