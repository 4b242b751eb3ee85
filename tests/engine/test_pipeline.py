"""End to end: simulated folders → ``process_measurement`` / ``odt-studio batch`` → result files."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.cli import main as cli_main
from engine.pipeline.process import ProcessOptions, process_measurement
from engine.selftest import tiny_demo_config
from engine.simulate.demo import write_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("in")
    cfg = tiny_demo_config()
    cfg.defect_rate = 0.25
    return write_demo(root, kind="beads", count=2, seed=7, config=cfg, device="cpu")


def test_process_measurement_writes_the_contract(tiny_folders, tmp_path):
    folder = tiny_folders[0]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    out = tmp_path / f"{folder.name}.odt.h5"
    seen = []
    res = process_measurement(folder, out, ProcessOptions(screen="none", device="cpu"),
                              progress=lambda f, m="": seen.append(f))
    assert seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # originals never written
    meta = json.loads((folder / "measurement.json").read_text())
    n = len(meta["labels"])
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "odt-result/1"
        assert json.loads(f.attrs["measurement_json"])["wavelength_um"] == meta["wavelength_um"]
        assert f["fields/field"].shape[0] == n and f["fields/field"].dtype == np.complex64
        assert f["fields/illumination_per_um"].shape == (n, 2)
        for name in ("score", "rule_peak", "decision", "source"):
            assert f[f"screening/{name}"].shape == (n,)
        assert f["screening/decision"].dtype == np.uint8
        ri = f["tomogram/ri"][...]
        assert ri.dtype == np.float32 and ri.ndim == 3
        assert len(f["tomogram"].attrs["voxel_size_um"]) == 3
        assert f["tomogram"].attrs["medium_index"] == pytest.approx(meta["medium_index"])
        decision = f["screening/decision"][...]
    # screen="none" keeps every field whose retrieval did not fail outright (a blank frame)
    failed = np.flatnonzero(decision == 0)
    assert res.fields_used == int(decision.sum()) == n - failed.size
    assert failed.size <= 2
    defects = meta.get("defects") or [""] * n
    for i in failed:
        assert defects[i], f"field {i} excluded although the simulator made it clean"
        assert any("excluded" in w for w in res.warnings)
    # the bead is there: a clear positive RI contrast at the volume centre
    assert ri.max() > meta["medium_index"] + 0.01
    assert np.median(ri) == pytest.approx(meta["medium_index"], abs=2e-3)


def test_bad_options_fail_clearly():
    with pytest.raises(ValueError, match="screen must be"):
        ProcessOptions(screen="magic")
    with pytest.raises(ValueError, match="regularize must be"):
        ProcessOptions(regularize="l1")
    # a zero TV weight is no TV at all (it once labelled a non-negative volume "TV")
    with pytest.raises(ValueError, match="tv_weight"):
        ProcessOptions(regularize="tv", tv_weight=0.0)
    from engine.tomography.reconstruct import DEFAULT_TV_WEIGHT

    assert ProcessOptions(regularize="tv").tv_weight == DEFAULT_TV_WEIGHT > 0
    assert ProcessOptions().non_negativity_iterations == 50 and ProcessOptions(non_negativity=7).non_negativity_iterations == 7
    assert ProcessOptions(non_negativity=False).non_negativity_iterations == 0


def test_learned_regulariser_writes_ri_deep(tiny_folders, tmp_path):
    out = tmp_path / "deep.odt.h5"
    # the tiny acquisition (15 illuminations) is outside the model's setups: keep the learned step anyway
    opts = ProcessOptions(screen="none", regularize="deep", device="cpu", deep_domain_tolerance=None)
    res = process_measurement(tiny_folders[1], out, opts)
    with h5py.File(out, "r") as f:
        ri, deep = f["tomogram/ri"][...], f["tomogram/ri_deep"][...]
        nm = f["tomogram"].attrs["medium_index"]
        record = json.loads(f.attrs["processing_options"])
    assert deep.shape == ri.shape and deep.dtype == np.float32
    assert deep.min() >= nm - 1e-6  # the learned route ends with n >= n_m, like TV
    assert deep.max() > nm + 0.01 and "regularize_deep" in res.timings_s
    from engine.tomography.deep_regularizer import model_card, polish_iterations_of

    outer, inner = polish_iterations_of(model_card())
    assert record["deep_polish_iterations"] is None and record["deep_polish"] == f"{outer}x{inner}"
    assert record["deep_model"] == f"deep_regularizer {model_card()['version']}"
    # the network alone, asked for: a different volume, recorded as such
    alone = process_measurement(tiny_folders[1], tmp_path / "alone.odt.h5",
                                dataclasses.replace(opts, deep_polish_iterations=0))
    with h5py.File(tmp_path / "alone.odt.h5", "r") as f:
        assert json.loads(f.attrs["processing_options"])["deep_polish"] == "0x0"
    if outer:
        assert np.abs(alone.tomogram.ri_deep - deep).max() > 1e-4
    with pytest.raises(ValueError, match="deep_polish_iterations"):
        ProcessOptions(regularize="deep", deep_polish_iterations=-1)


def test_batch_command_reports_bad_folder_and_goes_on(tiny_folders, tmp_path, capsys):
    import shutil

    in_dir = tmp_path / "in"
    for f in tiny_folders:
        shutil.copytree(f, in_dir / f.name)
    bad = in_dir / "broken_001"
    shutil.copytree(tiny_folders[0], bad)
    meta = json.loads((bad / "measurement.json").read_text())
    meta["wavelength_um"] = "green"
    (bad / "measurement.json").write_text(json.dumps(meta))
    out = tmp_path / "out"

    rc = cli_main(["batch", str(in_dir), "--out", str(out), "--screen", "none", "--device", "cpu"])
    assert rc != 0
    rows = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == {"beads_000", "beads_001", "broken_001"}
    assert rows["broken_001"]["status"] == "failed"
    assert "measurement.json" in rows["broken_001"]["error"] and "wavelength_um" in rows["broken_001"]["error"]
    for name in ("beads_000", "beads_001"):
        assert rows[name]["status"] == "ok" and int(rows[name]["fields_used"]) > 0
        assert (out / f"{name}.odt.h5").is_file()
    assert not (out / "broken_001.odt.h5").exists()

    # fix the folder: a re-run skips the finished ones and succeeds
    meta["wavelength_um"] = 0.532
    (bad / "measurement.json").write_text(json.dumps(meta))
    rc = cli_main(["batch", str(in_dir), "--out", str(out), "--screen", "none", "--device", "cpu"])
    assert rc == 0
    rows = {r["name"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["beads_000"]["status"] == "skipped" and rows["broken_001"]["status"] == "ok"


def test_batch_command_on_missing_input(tmp_path):
    assert cli_main(["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert cli_main(["batch", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_batch_command_rejects_a_negative_polish(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--regularize", "deep",
                  "--deep-polish-iterations", "-1"])
    assert exc.value.code == 2 and "must be 0 or more" in capsys.readouterr().err


@pytest.mark.slow
def test_self_test_runs_headless_and_prints_ok():
    r = subprocess.run([sys.executable, "-m", "app", "--self-test"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "OK"
    assert "end to end" in r.stderr


def _lc_droplet_folder(root: Path, *, size: int, n_angles: int, pattern: str, defect_rate: float, seed: int) -> Path:
    """One small simulated liquid-crystal droplet measurement (n_m 1.46, r 1.2 µm, n_o 1.52, n_e 1.57)."""
    from engine.simulate.demo import DemoConfig
    from engine.simulate.holograms import Setup

    cfg = DemoConfig(Setup(image_shape=(size, size), pixel_size_um=0.1, medium_index=1.46, na_condenser=1.0,
                           n_angles=n_angles, pattern=pattern),
                     depth_um=3.2, phantom_kwargs={"radius_um": 1.2, "n_o": 1.52, "n_e": 1.57},
                     defect_rate=defect_rate, imperfection_rate=0.0, near_edge_probability=0.0)
    return write_demo(root, kind="lc-droplets", count=1, seed=seed, config=cfg, device="cpu")[0]


@pytest.mark.slow
def test_birefringence_batch_writes_the_birefringence_group(tmp_path):
    folder = _lc_droplet_folder(tmp_path / "in", size=48, n_angles=9, pattern="ring", defect_rate=0.0, seed=3)
    n_images = len(json.loads((folder / "measurement.json").read_text())["frames"])
    with pytest.raises(ValueError, match="--birefringence"):
        process_measurement(folder, None, ProcessOptions(device="cpu"))
    out = tmp_path / "out"
    rc = cli_main(["batch", str(tmp_path / "in"), "--out", str(out), "--birefringence", "--device", "cpu"])
    assert rc == 0
    with h5py.File(out / f"{folder.name}.odt.h5", "r") as f:
        n_e, n_o = f["birefringence/n_e"][...], f["birefringence/n_o"][...]
        assert f["birefringence/director"].shape == n_e.shape + (3,)
        assert f["birefringence/tensor"].shape == n_e.shape + (3, 3)
        assert f["fields/field"].shape[0] == n_images
        assert f["screening/decision"][...].all()
        ri = f["tomogram/ri"][...]
    assert ri.shape == n_e.shape
    assert ri.max() > 1.46 + 0.01  # the droplet is denser than the medium
    # the learned route (n_e, n_o from the generator, director from DTT) writes the same group
    learned = process_measurement(folder, tmp_path / "learned.odt.h5",
                                  ProcessOptions(device="cpu", birefringence=True, birefringence_method="learned"))
    b = learned.birefringence
    assert b.method.startswith("learned-generator") and b.n_e.shape == b.n_o.shape == b.director.shape[:3]
    assert b.n_e.max() > 1.46 + 0.01
    with h5py.File(tmp_path / "learned.odt.h5", "r") as f:
        assert f["birefringence/tensor"].shape == b.n_e.shape + (3, 3)
    with pytest.raises(ValueError, match="birefringence_method"):
        ProcessOptions(birefringence_method="magic")


@pytest.mark.slow
def test_polarised_screening_drops_illuminations_with_co_polarised_defects(tmp_path):
    """Per illumination, J_xx and J_yy are screened; the 4 images share the decision; DTT uses the kept ones."""
    from engine.birefringence.jones import frame_table
    from engine.store.folders import load_measurement

    folder = _lc_droplet_folder(tmp_path / "in", size=128, n_angles=16, pattern="spiral", defect_rate=0.12, seed=5)
    m = load_measurement(folder)
    noisy = np.array([lab == "noisy" for lab in m.metadata.labels])
    table = frame_table(m.metadata, m.n_images)
    co_noisy = noisy[table[:, 0, 0]] | noisy[table[:, 1, 1]]
    assert 2 <= co_noisy.sum() <= 8, "the seed should give a few defective illuminations"
    r = process_measurement(m, tmp_path / "out.odt.h5", ProcessOptions(device="cpu", birefringence=True))
    s = r.screening
    kept = s.decision[table[:, 0, 0]].astype(bool)
    for i_ill in range(len(table)):  # the four images of an illumination share its decision
        assert len(set(s.decision[table[i_ill].ravel()].tolist())) == 1
    assert np.sum(kept == ~co_noisy) >= len(table) - 1, (kept.astype(int), co_noisy.astype(int))
    assert r.fields_used == 4 * kept.sum()
    assert np.isnan(s.score[table[:, 0, 1]]).all() and np.isfinite(s.score[table[:, 0, 0]]).all()
    with h5py.File(tmp_path / "out.odt.h5", "r") as f:
        np.testing.assert_array_equal(f["screening/decision"][...], s.decision)
        assert f["birefringence/n_e"].shape == r.birefringence.n_e.shape


def test_given_decisions_reused_fields_and_stored_fields(tiny_folders, tmp_path):
    """A decision made elsewhere (a project's review) is followed; fields are reused, not retrieved again."""
    from engine.holography.retrieval import SidebandChoice
    from engine.pipeline.process import fields_reusable, stored_fields

    folder = tiny_folders[0]
    opts = ProcessOptions(screen="none", non_negativity=0, device="cpu")
    first = process_measurement(folder, tmp_path / "a.odt.h5", opts)
    n = first.fields.shape[0]
    decision = first.screening.decision.copy()
    dropped = int(np.flatnonzero(decision)[0])
    decision[dropped] = 0
    given = process_measurement(folder, tmp_path / "b.odt.h5", opts, screening={"decision": decision},
                                retrieved=first.retrieved)
    assert given.reused_fields and given.fields_used == int(decision.sum())
    assert given.retrieval["attrs"]["sideband_source"] == first.retrieval["attrs"]["sideband_source"]
    with h5py.File(tmp_path / "b.odt.h5", "r") as f:
        np.testing.assert_array_equal(f["screening/decision"][...], decision)
        assert f["screening/source"][dropped] == 2  # a decision made outside the engine counts as manual
        assert np.isnan(f["screening/score"][...]).all() and np.isfinite(f["screening/rule_peak"][...]).all()
    # decisions of the wrong length are ignored, with a warning, for the options' screen
    wrong = process_measurement(folder, None, opts, screening={"decision": np.ones(n + 1)}, retrieved=first.retrieved)
    assert any(f"{n + 1} decisions for {n} fields" in w for w in wrong.warnings)
    assert wrong.fields_used == first.fields_used
    # the fields of a result file serve too (unwrapped again as the file records): the same tomogram
    stored, meta = stored_fields(first.out_path)
    assert meta.wavelength_um == first.metadata.wavelength_um and stored.quality is not None
    # the raw holograms' camera numbers travel with the quality numbers; a file written before them still reads
    np.testing.assert_array_equal(stored.quality.hot_pixel_fraction, first.retrieved.quality.hot_pixel_fraction)
    np.testing.assert_array_equal(stored.quality.row_jitter, first.retrieved.quality.row_jitter)
    older = tmp_path / "older.odt.h5"
    older.write_bytes(first.out_path.read_bytes())
    with h5py.File(older, "r+") as f:
        del f["retrieval/hot_pixel_fraction"], f["retrieval/row_jitter"]
    old_fields, _ = stored_fields(older)
    assert old_fields.quality is not None and old_fields.quality.hot_pixel_fraction is None
    assert set(old_fields.quality.as_dict()) == set(first.retrieved.quality.as_dict()) - {"hot_pixel_fraction", "row_jitter"}
    again = process_measurement(folder, None, opts, retrieved=stored)
    a, b = again.retrieval["attrs"], first.retrieval["attrs"]
    assert again.reused_fields and a["sideband_description"] == b["sideband_description"]
    np.testing.assert_array_equal(a["carrier_per_um"], b["carrier_per_um"])
    np.testing.assert_array_equal(again.tomogram.ri, first.tomogram.ri)
    by_path = process_measurement(folder, None, opts, retrieved=first.out_path)  # the file's fields, read in the call
    assert by_path.reused_fields
    np.testing.assert_array_equal(by_path.tomogram.ri, first.tomogram.ri)
    assert not process_measurement(folder, None, opts, retrieved=tmp_path / "none.odt.h5").reused_fields
    # fields chosen by the other side-band rule are retrieved again; a given carrier always serves
    for source, setting, ok in (("auto", "auto", True), ("auto", "as-given", False), ("as-given", "auto", False),
                                ("metadata", "as-given", True)):
        stored.sideband = SidebandChoice(source=source)
        assert fields_reusable(stored, ProcessOptions(sideband=setting)) is ok, (source, setting)


def test_refined_birefringence_route_is_run_and_recorded(tmp_path):
    """#20 item 4: ``birefringence_method="dtt-refined"`` runs :func:`engine.birefringence.refine.refine_tensor`
    (tiny 48² droplet, 9 illuminations; true Δn 0.05) and the file records the route. Measured:
    core Δn DTT 0.022 → refined 0.025, background |Δn| 0.0056 → 0."""
    folder = _lc_droplet_folder(tmp_path / "in", size=48, n_angles=9, pattern="ring", defect_rate=0.0, seed=3)
    out = {}
    for route in ("dtt", "dtt-refined"):
        r = process_measurement(folder, tmp_path / f"{route}.odt.h5",
                                ProcessOptions(device="cpu", birefringence=True, screen="none", birefringence_method=route))
        b = r.birefringence
        z, y, x = ((np.arange(n) - n // 2) * 0.1 for n in b.delta_n.shape)
        rad = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
        out[route] = (b.method, float(np.median(b.delta_n[rad < 0.9])), float(np.median(np.abs(b.delta_n[rad > 1.6]))))
        with h5py.File(tmp_path / f"{route}.odt.h5", "r") as f:
            assert f["tomogram"].attrs["method"] == b.method
            assert json.loads(f.attrs["processing_options"])["birefringence_method"] == route
            assert f["birefringence/n_e"].shape == b.n_e.shape
    assert out["dtt"][0] == "dtt-rytov" and out["dtt-refined"][0] == "dtt-refined"
    assert out["dtt-refined"][1] > out["dtt"][1] + 0.002, out  # the correction raises the underestimated Δn
    assert out["dtt-refined"][2] < out["dtt"][2], out  # and cleans the background
    assert ProcessOptions().birefringence_method == "auto", "the default route is chosen per measurement"
