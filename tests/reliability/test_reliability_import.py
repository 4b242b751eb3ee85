"""Bad measurement folders: each is rejected with an error naming folder, file and problem,
nothing else is lost (a batch goes on), and the original folder is never written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import tifffile

from _folders import images, make_measurement, meta, process_small, tree_state, write_image
from engine.pipeline.batch import read_summary, run_batch
from engine.store.folders import (MeasurementError, discover_measurements, inspect_measurement,
                                  load_measurement)

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- bad folder makers
def corrupt_tiff(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "corrupt_tiff", n=3)
    (f / "sample" / "001.tif").write_bytes(os.urandom(300))
    return f, "sample/001.tif", "not a readable TIFF"


def tiff_header_only(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "tiff_header_only", n=3)
    p = f / "sample" / "002.tif"
    p.write_bytes(p.read_bytes()[:6])
    return f, "sample/002.tif", "not a readable TIFF"


def truncated_tiff(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "truncated_tiff", n=3, shape=(32, 32))
    p = f / "background" / "001.tif"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return f, "background/001.tif", "truncated"


def truncated_multipage(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "truncated_multipage", n=4, shape=(32, 32), form="multipage")
    p = f / "sample.tif"
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.8)])
    return f, "sample.tif", "page 3 is truncated"


def corrupt_compressed_pixels(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "corrupt_compressed", n=2, shape=(32, 32))
    p = f / "sample" / "001.tif"
    tifffile.imwrite(p, images(1, (32, 32))[0], photometric="minisblack", compression="zlib")
    with tifffile.TiffFile(p) as t:
        off, cnt = t.pages[0].dataoffsets[0], t.pages[0].databytecounts[0]
    data = bytearray(p.read_bytes())
    data[off:off + cnt] = b"\x00\xff" * (cnt // 2) + b"\x00" * (cnt % 2)
    p.write_bytes(bytes(data))
    return f, "sample/001.tif", "cannot decode"


def too_few_backgrounds(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "too_few_backgrounds", n=3)
    (f / "background" / "002.tif").unlink()
    return f, "background/", "2 background images but there are 3 sample images"


def wrong_background_pages(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "wrong_background_pages", n=3, background="multipage")
    from _folders import write_multipage
    write_multipage(f / "background.tif", images(2))
    return f, "background.tif", "2 background images but there are 3"


def illumination_count(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "illumination_count", n=2, metadata=meta(illumination_per_um=[[0, 0]] * 3))
    return f, "measurement.json", "'illumination_per_um' has 3 rows but there are 2 images"


def labels_count(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "labels_count", n=2, metadata=meta(labels=["clean"]))
    return f, "measurement.json", "'labels' has 1 entries"


def mixed_sizes(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "mixed_sizes", n=3)
    write_image(f / "sample" / "002.tif", images(1, (8, 9))[0])
    return f, "sample/002.tif", "image size (8, 9) differs"


def background_size(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "background_size", n=2, background="single")
    write_image(f / "background.tif", images(1, (9, 8))[0])
    return f, "background.tif", "background size (9, 8) differs"


def mixed_dtypes(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "mixed_dtypes", n=2)
    write_image(f / "sample" / "001.tif", images(1, dtype=np.uint8)[0])
    return f, "sample/001.tif", "mixed dtypes"


def bad_dtype(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "bad_dtype", n=2)
    for i in range(2):
        write_image(f / "sample" / f"{i:03d}.tif", images(1, dtype=np.float64)[0])
    return f, "sample/000.tif", "float64 is not allowed"


def rgb_image(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "rgb_image", n=2, form="png")
    from PIL import Image
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f / "sample" / "001.png")
    return f, "sample/001.png", "not 2-D grayscale"


def nan_sample(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "nan_sample", n=3, dtype=np.float32)
    img = images(1, dtype=np.float32)[0]
    img[2, 5] = np.nan
    write_image(f / "sample" / "002.tif", img)
    return f, "sample/002.tif", "1 NaN, 0 inf"


def inf_background(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "inf_background", n=3, dtype=np.float32, background="multipage")
    bg = images(3, dtype=np.float32, seed=1000)
    bg[1, 0, 0] = np.inf
    from _folders import write_multipage
    write_multipage(f / "background.tif", bg)
    return f, "background.tif", "image 1 holds non-finite values (0 NaN, 1 inf)"


def nan_h5(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "nan_h5", n=2, dtype=np.float32, form="h5")
    with h5py.File(f / "measurement.h5", "a") as h:
        h["sample"][1, 1, 1] = -np.inf
    return f, "measurement.h5:/sample", "non-finite"


def empty_sample_folder(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "empty_sample_folder", n=2)
    shutil.rmtree(f / "sample")
    (f / "sample").mkdir()
    return f, "sample/", "holds no .tif, .tiff or .png image"


def no_images(root: Path) -> tuple[Path, str, str]:
    f = root / "no_images"
    f.mkdir()
    (f / "measurement.json").write_text(json.dumps(meta()))
    return f, "sample/", "no sample images"


def no_background(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "no_background", n=2)
    shutil.rmtree(f / "background")
    return f, "background/", "no background images"


def both_forms(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "both_forms", n=2)
    from _folders import write_multipage
    write_multipage(f / "sample.tif", images(2))
    return f, "sample.tif", "keep only one form"


def directory_instead_of_image(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "dir_not_file", n=2)
    (f / "sample" / "001.tif").unlink()
    (f / "sample" / "001.tif").mkdir()
    return f, "sample/001.tif", "is a folder"


def dangling_symlink(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "dangling_symlink", n=2)
    (f / "sample" / "001.tif").unlink()
    (f / "sample" / "001.tif").symlink_to(root / "gone.tif")
    return f, "sample/001.tif", "FileNotFoundError"


def directory_instead_of_json(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "dir_not_json", n=2, form="multipage")
    (f / "measurement.json").unlink()
    (f / "measurement.json").mkdir()
    return f, "measurement.json", "is a folder"


def h5_missing_dataset(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "h5_missing_dataset", n=2, form="h5")
    with h5py.File(f / "measurement.h5", "a") as h:
        del h["background"]
    return f, "measurement.h5", "dataset 'background' is missing"


def h5_wrong_rank(root: Path) -> tuple[Path, str, str]:
    f = make_measurement(root, "h5_wrong_rank", n=2, form="h5")
    with h5py.File(f / "measurement.h5", "a") as h:
        del h["sample"]
        h["sample"] = np.zeros((2, 2, 8, 8), np.uint16)
    return f, "measurement.h5:/sample", "is not (N, H, W)"


def h5_not_hdf5(root: Path) -> tuple[Path, str, str]:
    f = root / "h5_garbage"
    f.mkdir()
    (f / "measurement.h5").write_bytes(b"this is not HDF5")
    return f, "measurement.h5", "not a readable HDF5 file"


def _metadata_case(name: str, md: dict | str, problem: str) -> Callable[[Path], tuple[Path, str, str]]:
    def make(root: Path) -> tuple[Path, str, str]:
        f = make_measurement(root, name, n=2)
        (f / "measurement.json").write_text(md if isinstance(md, str) else json.dumps(md), encoding="utf-8")
        return f, "measurement.json", problem
    make.__name__ = name
    return make


METADATA_CASES = [
    _metadata_case("missing_wavelength", meta(wavelength_um=None), "'wavelength_um' is missing"),
    _metadata_case("missing_json_file", "", "not valid JSON"),
    _metadata_case("string_pixel_size", meta(pixel_size_um="0.1"), "'pixel_size_um' must be a number"),
    _metadata_case("bool_na", meta(na_objective=True), "'na_objective' must be a number"),
    _metadata_case("na_above_medium", meta(na_objective=1.5), "'na_objective' = 1.5 must be <"),
    _metadata_case("wrong_format", meta(format="odt-measurement/9"), "key 'format'"),
    _metadata_case("illum_not_pairs", meta(illumination_per_um=[1, 2]), "'illumination_per_um' entry 0"),
    _metadata_case("rotation_without_angles", meta(geometry="sample-rotation"), "rotation_angles_rad"),
    _metadata_case("top_level_list", "[1, 2]", "top level must be a JSON object"),
    _metadata_case("bad_json", "{'format': 1}", "not valid JSON"),
    _metadata_case("nan_in_json", '{"format": "odt-measurement/1", "wavelength_um": NaN}', "finite"),
]

BAD_FOLDERS = [corrupt_tiff, tiff_header_only, truncated_tiff, truncated_multipage, corrupt_compressed_pixels,
               too_few_backgrounds, wrong_background_pages, illumination_count, labels_count, mixed_sizes,
               background_size, mixed_dtypes, bad_dtype, rgb_image, nan_sample, inf_background, nan_h5,
               empty_sample_folder, no_images, no_background, both_forms, directory_instead_of_image, dangling_symlink,
               directory_instead_of_json, h5_missing_dataset, h5_wrong_rank, h5_not_hdf5] + METADATA_CASES


@pytest.mark.parametrize("maker", BAD_FOLDERS, ids=lambda m: m.__name__)
def test_bad_folder_is_rejected_with_a_clear_error(tmp_path, maker):
    folder, file, problem = maker(tmp_path)
    before = tree_state(folder)
    with pytest.raises(MeasurementError) as exc:
        load_measurement(folder)
    e = exc.value
    msg = str(e)
    assert str(folder) in msg, msg
    assert f"file '{file}" in msg, msg
    assert problem in msg, msg
    assert e.folder == folder and e.file.startswith(file)
    info = inspect_measurement(folder, full=True)
    assert not info.valid and info.error == msg
    fast = inspect_measurement(folder)  # never raises; finds everything but decoding errors
    decode_only = {"corrupt_compressed", "nan_sample", "inf_background", "nan_h5"}
    assert fast.valid == (folder.name in decode_only), fast.error
    assert tree_state(folder) == before  # the original is never written


def _unreadable_check(folder: Path) -> tuple[int, str]:
    """Run load/inspect on ``folder`` in a process without root's power to read anything.

    As root, the child imports everything first (the interpreter lives in root's home) and
    then drops to the 'nobody' user, for whom files of mode 000 are unreadable.
    """
    code = textwrap.dedent(f"""
        import os, json, encodings.idna
        from PIL import Image
        Image.init()
        from engine.store.folders import MeasurementError, inspect_measurement, load_measurement
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        info = inspect_measurement({str(folder)!r})
        assert not info.valid
        try:
            load_measurement({str(folder)!r})
        except MeasurementError as e:
            assert str(e) == info.error, (str(e), info.error)
            print(e)
        else:
            raise SystemExit("no error")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("what", ["image", "json", "sample_dir"])
def test_unreadable_files_and_folders(what):
    base = Path(tempfile.mkdtemp(prefix="odt-perm-"))
    try:
        base.chmod(0o755)
        folder = make_measurement(base, "no_permission", n=2)
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        target, file = {"image": (folder / "sample" / "001.tif", "sample/001.tif"),
                        "json": (folder / "measurement.json", "measurement.json"),
                        "sample_dir": (folder / "sample", "sample/")}[what]
        target.chmod(0)
        rc, out = _unreadable_check(folder)
        assert rc == 0, out
        assert str(folder) in out and f"file '{file}" in out and "ermission" in out, out
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(base)


def test_unsearchable_folder_is_reported_not_skipped_silently():
    base = Path(tempfile.mkdtemp(prefix="odt-perm-"))
    try:
        make_measurement(base / "ok", "m1")
        make_measurement(base / "locked", "m2")
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (base / "locked").chmod(0)
        code = textwrap.dedent(f"""
            import os, warnings
            from engine.store.folders import discover_measurements
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            errors = []
            found = discover_measurements({str(base)!r}, on_error=lambda p, m: errors.append(m))
            print([p.name for p in found]); print(errors)
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                discover_measurements({str(base)!r})
            print(len(w), w[0].message if w else "")
        """)
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr
        names, errors, warned = r.stdout.splitlines()
        assert names == "['m1']"
        assert "locked" in errors and "Permission denied" in errors
        assert warned.startswith("1 ") and "locked" in warned
    finally:
        for p in [base, *base.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(base)


def test_non_ascii_paths_round_trip_and_batch(tmp_path):
    root = tmp_path / "Données_ü"
    folders = [make_measurement(root, name, n=2, form=form)
               for name, form in (("Zelle_ä", "tif"), ("細胞_1", "png"), ("cellule é 🙂", "h5"))]
    found = discover_measurements(root)
    assert sorted(found) == sorted(folders)
    for f in folders:
        m = load_measurement(f)
        assert m.name == f.name and m.holograms.shape == (2, 8, 8)
        assert inspect_measurement(f).valid
    s = run_batch(found, tmp_path / "sortie_ø", process_small, log=None)
    assert s.exit_code == 0
    assert {r["name"] for r in read_summary(tmp_path / "sortie_ø" / "summary.csv")} == {f.name for f in folders}
    assert all((tmp_path / "sortie_ø" / f"{f.name}.odt.h5").is_file() for f in folders)
    bad = make_measurement(root, "schlecht_ß", n=2, metadata=meta(wavelength_um=None))
    with pytest.raises(MeasurementError, match="schlecht_ß"):
        load_measurement(bad)


def test_empty_root_and_empty_batch(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert discover_measurements(tmp_path / "empty") == []
    s = run_batch([], tmp_path / "out", process_small, log=None)
    assert s.exit_code == 0 and s.items == []
    assert (tmp_path / "out" / "summary.csv").read_text().strip() == "name,status,error,fields_used,seconds"


def test_batch_with_every_bad_folder_loses_none_of_the_good_ones(tmp_path):
    root = tmp_path / "in"
    expected = {}
    for i, maker in enumerate(BAD_FOLDERS):
        folder, file, problem = maker(root)
        expected[folder.name] = problem
        if i % 5 == 0:
            make_measurement(root, f"good_{i:02d}", n=2, seed=i)
    before = tree_state(root)
    folders = discover_measurements(root)
    assert len(folders) == len(BAD_FOLDERS) + len(range(0, len(BAD_FOLDERS), 5))
    s = run_batch(folders, tmp_path / "out", process_small, log=None)
    assert s.exit_code == 1
    rows = {r["name"]: r for r in read_summary(tmp_path / "out" / "summary.csv")}
    assert len(rows) == len(folders)
    for name, row in rows.items():
        if name.startswith("good_"):
            assert row["status"] == "ok" and (tmp_path / "out" / f"{name}.odt.h5").is_file()
        else:
            assert row["status"] == "failed" and name in row["error"] and expected[name] in row["error"], row
            assert not (tmp_path / "out" / f"{name}.odt.h5").exists()
    assert tree_state(root) == before
