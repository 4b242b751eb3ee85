"""One pipeline: the Reconstruction tab and the batch write identical result files for the same options.

The GUI path is the tab's *Run reconstruction* in the job runner (a worker QThread), writing the
open project's result file; the batch path is ``process_measurement`` on the folder and the
``odt-studio batch`` command. Both run in this process, on the CPU, with the same PyTorch
thread count, so the files are compared bitwise (every dataset, dtype, shape and attribute).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from app.cli import main as cli_main
from app.jobs import JobState
from app.tabs.reconstruction_tab import ReconstructionTab, deep_regularizer_available
from engine.pipeline.process import ProcessOptions, process_measurement
from engine.store.project import Project

#: fast, but every stage: retrieval, screening guard, Rytov + non-negativity, TV
TV_FAST = ProcessOptions(screen="none", regularize="tv", non_negativity=10, tv_outer_iterations=3,
                         tv_inner_iterations=5, device="cpu")


@pytest.fixture(scope="module")
def bead_folder(tmp_path_factory) -> Path:
    """A tiny simulated bead measurement (64×64 px, 15 angles) with a defective frame or two."""
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    cfg = tiny_demo_config()
    cfg.defect_rate = 0.25
    return write_demo(tmp_path_factory.mktemp("in"), kind="beads", count=1, seed=7, config=cfg, device="cpu")[0]


def _h5_items(path: Path) -> dict:
    """Every attribute and dataset of a result file: ``{"/path": value, "/path@attr": value}``."""
    items: dict = {}

    def attrs(name: str, obj) -> None:
        for k, v in obj.attrs.items():
            items[f"/{name}@{k}"] = v

    with h5py.File(path, "r") as f:
        attrs("", f)

        def visit(name: str, obj) -> None:
            attrs(name, obj)
            if isinstance(obj, h5py.Dataset):
                items[f"/{name}"] = obj[()]

        f.visititems(visit)
    return items


def assert_identical_results(a: Path, b: Path, wall_times: tuple = ()) -> None:
    """Same datasets and attributes, bitwise (NaN equal to NaN), same dtypes and shapes; the
    attributes named in ``wall_times`` (seconds a stage took) only exist in both."""
    ia, ib = _h5_items(a), _h5_items(b)
    assert sorted(ia) == sorted(ib), set(ia) ^ set(ib)
    for key, va in ia.items():
        if key in wall_times:
            continue
        vb = ib[key]
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, key
            assert np.array_equal(va, vb, equal_nan=va.dtype.kind in "fc"), key
        else:
            assert va == vb or (isinstance(va, float) and np.isnan(va) and np.isnan(vb)), (key, va, vb)


def _gui_run(qtbot, tab: ReconstructionTab, options: ProcessOptions, raws: list):
    tab.raw_shown.connect(raws.append)
    job = tab.run(options)
    assert job is not None
    qtbot.waitUntil(lambda: job.done, timeout=180_000)
    qtbot.waitUntil(lambda: tab.result is not None and not tab.result.preview or job.state is not JobState.FINISHED,
                    timeout=10_000)
    tab.raw_shown.disconnect(raws.append)
    assert job.state is JobState.FINISHED, job.error
    return job


def _tab_on(qtbot, runner, settings, project, folder):
    """A Reconstruction tab showing ``folder`` of ``project``, as the main window opens it."""
    tab = ReconstructionTab(runner, settings)
    qtbot.addWidget(tab)
    tab.set_project(project)
    tab.show_measurement(folder)
    return tab


@pytest.mark.slow
def test_gui_and_process_measurement_write_identical_files(qtbot, runner, settings, bead_folder, tmp_path):
    project = Project.create(tmp_path / "proj")
    mid = project.add_measurement(bead_folder)
    tab = _tab_on(qtbot, runner, settings, project, bead_folder)

    # a first run retrieves the fields; the second, with other options, reuses them
    raws: list = []
    _gui_run(qtbot, tab, ProcessOptions(screen="none", non_negativity=0, device="cpu"), raws)
    assert not raws, "no preview without a regulariser"
    job = _gui_run(qtbot, tab, TV_FAST, raws)
    assert job.result.reused_fields and "retrieve" in job.result.timings_s
    gui_file = project.result_path(mid)
    assert tab.result.out_path == gui_file and set(tab.result.volumes) == {"raw", "tv"}
    # the raw tomogram was shown before the regularised one, and is the one saved
    assert len(raws) == 1 and raws[0].preview and set(raws[0].volumes) == {"raw"}
    np.testing.assert_array_equal(raws[0].volumes["raw"], tab.result.volumes["raw"])

    batch = process_measurement(bead_folder, tmp_path / "batch" / f"{bead_folder.name}.odt.h5", TV_FAST)
    assert not batch.reused_fields
    assert_identical_results(gui_file, batch.out_path)
    with h5py.File(gui_file, "r") as f:
        ri, ri_tv = f["tomogram/ri"][()], f["tomogram/ri_tv"][()]
        nm = f["tomogram"].attrs["medium_index"]
        decision = f["screening/decision"][()]
    # TV really ran (a zero weight once left ri_tv = the non-negative raw tomogram)
    assert not np.array_equal(ri, ri_tv) and ri_tv.min() >= nm - 1e-6
    assert decision.sum() == tab.result.fields_used < decision.size  # the guard dropped a blank frame
    project.close()


@pytest.mark.slow
@pytest.mark.parametrize("regularize", ["deep", "none"])
def test_gui_and_batch_command_write_identical_files(qtbot, runner, settings, bead_folder, tmp_path, regularize):
    """``odt-studio batch IN --out OUT --screen none --regularize R --device cpu`` and the tab with the
    same options (the batch's defaults for the rest: 50 non-negativity iterations). The learned
    regulariser stands in for TV here (seconds, not a minute; TV is compared above)."""
    if regularize == "deep" and not deep_regularizer_available():
        pytest.skip("the learned regulariser's weights are not shipped")
    # the tiny acquisition lies outside the learned regulariser's setups: keep it from falling back to TV
    options = ProcessOptions(screen="none", regularize=regularize, device="cpu", deep_domain_tolerance=None)
    project = Project.create(tmp_path / "proj")
    mid = project.add_measurement(bead_folder)
    tab = _tab_on(qtbot, runner, settings, project, bead_folder)
    # the form's defaults are the engine's: only the regulariser, its fallback and the device are set here
    tab.reg_combo.setCurrentIndex(tab.reg_combo.findData(regularize))
    tab.method_box.deep_fallback.setChecked(False)
    tab.device_combo.setCurrentIndex(tab.device_combo.findData("cpu"))
    form = tab.options()
    assert form == dataclasses.replace(options, non_negativity=form.non_negativity)
    assert form.non_negativity_iterations == options.non_negativity_iterations == 50  # True = the default count
    assert form.tv_weight == options.tv_weight > 0
    _gui_run(qtbot, tab, None, [])
    assert tab.result.volumes.keys() == ({"raw", "deep"} if regularize == "deep" else {"raw"})

    out = tmp_path / "out"
    assert cli_main(["batch", str(bead_folder.parent), "--out", str(out), "--screen", "none",
                     "--regularize", regularize, "--device", "cpu", "--deep-domain-tolerance", "none"]) == 0
    result = out / f"{bead_folder.name}.odt.h5"
    assert_identical_results(project.result_path(mid), result)
    with h5py.File(result, "r") as f:
        warnings = json.loads(f.attrs.get("warnings", "[]"))
    assert any("excluded" in w for w in warnings), warnings  # the retrieval guard's warning, both paths
    project.close()


@pytest.mark.slow
def test_gui_follows_the_project_review_like_the_pipeline_given_its_decisions(qtbot, runner, settings, bead_folder,
                                                                              tmp_path):
    """A reviewed project measurement (rule screening + a manual override): the tab reuses the fields
    the review stored and hands the pipeline the project's decisions; the file equals a fresh
    ``process_measurement(..., screening=project_screening_record(...))``."""
    from engine.pipeline.project_screening import project_screening_record, screen_project_measurement

    project = Project.create(tmp_path / "proj")
    mid = project.add_measurement(bead_folder)
    screen_project_measurement(project, mid, model=None, device="cpu")  # the review tab's job (rule)
    n = project.decisions(mid)[0].size
    # the rule rejects the tiny beads' clean fields (known): the technician keeps all but one
    overridden = 2
    for i in range(n):
        project.set_override(mid, i, int(i != overridden))
    tab = _tab_on(qtbot, runner, settings, project, bead_folder)
    job = _gui_run(qtbot, tab, TV_FAST, [])
    assert job.result.reused_fields, "the fields the review stored are used, not retrieved again"
    with h5py.File(project.result_path(mid), "r") as f:
        assert f["screening/decision"][overridden] == 0 and f["screening/source"][overridden] == 2

    given = process_measurement(bead_folder, tmp_path / "fresh.odt.h5", TV_FAST,
                                screening=project_screening_record(project, mid))
    assert not given.reused_fields
    assert_identical_results(project.result_path(mid), given.out_path)
    project.close()


@pytest.mark.slow
def test_gui_and_process_measurement_write_identical_multislice_files(qtbot, runner, settings, bead_folder, tmp_path):
    """The multislice option (tiny: 3 iterations on 32 × 64 × 64): ``tomogram/ri``, ``tomogram/ri_ms``
    and its record (but its wall time) are bitwise those of ``process_measurement``."""
    options = ProcessOptions(screen="none", method="multislice", non_negativity=10, multislice_iterations=3,
                             device="cpu")
    project = Project.create(tmp_path / "proj")
    mid = project.add_measurement(bead_folder)
    tab = _tab_on(qtbot, runner, settings, project, bead_folder)
    _gui_run(qtbot, tab, options, [])
    gui_file = project.result_path(mid)
    batch = process_measurement(bead_folder, tmp_path / "batch" / f"{bead_folder.name}.odt.h5", options)
    assert_identical_results(gui_file, batch.out_path, wall_times=("/tomogram/ri_ms@seconds",))
    with h5py.File(gui_file, "r") as f:
        assert f["tomogram/ri_ms"].shape == f["tomogram/ri"].shape and f["tomogram/ri_ms"].attrs["iterations"] == 3
        assert json.loads(f.attrs["processing_options"])["method"] == "multislice"
    project.close()
