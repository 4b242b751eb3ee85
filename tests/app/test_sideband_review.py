"""Side band, retrieval quality and warnings in the GUI (issue #16), on tiny simulated measurements.

The project's side-band setting round-trips through the project database and the import tab;
the review tab says how the side band was chosen and shows each field's retrieval quality
numbers (details, tooltip, sort key); a measurement whose carrier points at the conjugate side
band raises a warning banner in the review and reconstruction tabs; a folder of images without
measurement.json is a failed row of the import tab.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.logic.importing import sideband_status
from app.tabs.import_tab import ImportTab
from app.tabs.reconstruction_tab import ReconstructionTab
from app.logic.screening import ScreeningData
from app.tabs.screening_tab import ScreeningTab
from engine.holography.quality import CAMERA_KEYS, QUALITY_KEYS
from engine.pipeline.process import ProcessOptions
from engine.store.project import Project
from engine.store.results import read_result


@pytest.fixture(scope="module")
def acq(tmp_path_factory) -> Path:
    """beads_000 (carrier in measurement.json), beads_auto (no carrier: the side band is chosen),
    beads_conj (carrier at the conjugate side band: negative phase) and images_only (no metadata)."""
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    root = tmp_path_factory.mktemp("acq")
    src = write_demo(root, kind="beads", count=1, seed=3, config=tiny_demo_config(15), device="cpu")[0]
    md = json.loads((src / "measurement.json").read_text())
    carrier = md["carrier_per_um"]
    for name, value in (("beads_auto", None), ("beads_conj", [-carrier[0], -carrier[1]])):
        shutil.copytree(src, root / name)
        d = dict(md)
        if value is None:
            d.pop("carrier_per_um")
        else:
            d["carrier_per_um"] = value
        (root / name / "measurement.json").write_text(json.dumps(d))
    shutil.copytree(src / "sample", root / "images_only" / "sample")
    shutil.copytree(src / "background", root / "images_only" / "background")
    return root


@pytest.fixture
def project(tmp_path, runner):
    p = Project.create(tmp_path / "project")
    yield p
    p.close()


@pytest.fixture
def tab(qtbot, runner, settings, monkeypatch):
    import app.tabs.screening_tab as st
    import engine.pipeline.project_screening as ps

    # the rule screens (fast and deterministic); the network is not what these tests are about
    monkeypatch.setattr(ps, "load_screening_model", lambda model="default", device="auto": (None, st.NO_MODEL_NOTE))
    t = ScreeningTab(runner, settings, device="cpu")
    qtbot.addWidget(t)
    t.resize(1280, 760)
    return t


def _open(qtbot, tab: ScreeningTab, project, mid: int) -> ScreeningData:
    with qtbot.waitSignal(tab.data_ready, timeout=60000) as blocker:
        tab.set_project(project)
        tab.select_measurement(mid)
    return blocker.args[0]


# ---------------------------------------------------------------- the setting
def test_sideband_setting_round_trips_through_the_import_tab_and_the_database(qtbot, runner, settings, tmp_path):
    imp = ImportTab(runner, settings)
    qtbot.addWidget(imp)
    assert not imp.sideband_combo.isEnabled(), "no project: nothing to set"
    p = Project.create(tmp_path / "p")
    imp.set_project(p)
    assert imp.sideband_combo.isEnabled() and imp.sideband_combo.currentData() == "auto"
    with qtbot.waitSignal(imp.sideband_changed, timeout=2000) as blocker:
        imp.sideband_combo.setCurrentIndex(imp.sideband_combo.findData("as-given"))
    assert blocker.args == ["as-given"]
    assert p.get_setting("sideband") == "as-given"
    p.close()
    imp.set_project(None)
    assert imp.sideband_combo.currentData() == "auto" and not imp.sideband_combo.isEnabled()
    q = Project.open(tmp_path / "p")  # survives closing and reopening the project
    imp.set_project(q)
    assert imp.sideband_combo.currentData() == "as-given"
    runner.wait(5)
    q.close()


# ---------------------------------------------------------------- the review tab
def test_review_tab_shows_side_band_and_quality_numbers(qtbot, tab, acq, project):
    mid = project.add_measurement(acq / "beads_auto")
    data = _open(qtbot, tab, project, mid)
    n = len(data.fields)
    text = tab.sideband_label.text()
    assert "automatic" in text and "positive phase" in text and "beads_auto" in text
    assert set(data.quality) == set(QUALITY_KEYS + CAMERA_KEYS) and all(len(v) == n for v in data.quality.values())
    assert all(np.isfinite(v).all() for v in data.quality.values())
    assert tab.warning_banner.isHidden(), "a sample denser than its medium: no warning"
    # the details panel and the grid tooltip carry the field's numbers
    tab.select_field(2)
    details = tab.details.text()
    assert "phase noise" in details and "energy outside the pupil" in details
    noise = f"{data.quality['phase_noise_rad'][2]:.3f}"
    assert noise in details
    tip = tab.proxy.index(0, 0).data(0x03)  # ToolTipRole
    assert "retrieval:" in tip and "phase residues" in tip
    # sort by a quality number: worst first
    tab.sort_combo.setCurrentIndex(tab.sort_combo.findData("background_phase_std_rad"))
    order = tab.field_order()
    values = data.quality["background_phase_std_rad"][order]
    assert np.all(np.diff(values) <= 0) and sorted(order) == list(range(n))
    tab.set_sort_key(None)
    assert tab.field_order() == list(range(n)) and tab.sort_combo.currentIndex() == 0
    # the result file holds the record the tab showed
    res = read_result(project.result_path(mid), groups=["retrieval"])
    assert res.retrieval.attrs["sideband_source"] == "auto"
    np.testing.assert_allclose(res.retrieval.quality["phase_noise_rad"], data.quality["phase_noise_rad"])

    # the project setting changes: the fields are retrieved again under it and screened again
    project.set_setting("sideband", "as-given")
    with qtbot.waitSignal(tab.data_ready, timeout=60000) as blocker:
        tab.sideband_setting_changed("as-given")
    again = blocker.args[0]
    assert "as given" in tab.sideband_label.text() and again.run == 2
    res = read_result(project.result_path(mid), groups=["retrieval"])
    assert res.retrieval.attrs["sideband_source"] == "as-given"


def test_conjugate_carrier_warns_in_review_and_reconstruction(qtbot, tab, runner, settings, acq, project):
    mid = project.add_measurement(acq / "beads_conj")
    data = _open(qtbot, tab, project, mid)
    assert data.warnings and "negative" in data.warnings[0]
    assert not tab.warning_banner.isHidden()
    banner = tab.warning_banner.text()
    assert banner.startswith("⚠") and "conjugate side band" in banner
    assert "carrier_per_um from measurement.json" in tab.sideband_label.text()
    attrs = read_result(project.result_path(mid), groups=[]).attrs
    assert "negative" in json.loads(attrs["warnings"])[0]

    rec = ReconstructionTab(runner, settings)
    qtbot.addWidget(rec)
    rec.set_project(project)
    rec.show_measurement(acq / "beads_conj")
    assert rec.warning_banner.isHidden()
    with qtbot.waitSignal(rec.volume_shown, timeout=60000) as blocker:
        rec.run(ProcessOptions(screen="none", non_negativity=0, shape_z=16, device="cpu"))
    vs = blocker.args[0]
    assert vs.warnings and not rec.warning_banner.isHidden()
    assert "negative" in rec.warning_banner.text() and "warning" in rec.status.text()
    assert "carrier_per_um" in rec.sideband_label.text()
    res = read_result(project.result_path(mid), groups=["retrieval", "tomogram"])
    assert res.tomogram is not None and res.retrieval.attrs["sideband_source"] == "metadata"
    assert json.loads(res.attrs["warnings"]), "the reconstruction's warning is in the result file"


def test_reconstruction_uses_the_project_setting(qtbot, runner, settings, acq, project):
    project.set_setting("sideband", "as-given")
    project.add_measurement(acq / "beads_auto")
    rec = ReconstructionTab(runner, settings)
    qtbot.addWidget(rec)
    rec.set_project(project)
    rec.show_measurement(acq / "beads_auto")
    assert rec.options().sideband == "as-given"
    with qtbot.waitSignal(rec.volume_shown, timeout=60000) as blocker:
        rec.run(ProcessOptions(screen="none", non_negativity=0, shape_z=16, device="cpu", sideband="as-given"))
    vs = blocker.args[0]
    assert vs.retrieval["attrs"]["sideband_source"] == "as-given" and not vs.warnings
    assert "as given" in rec.sideband_label.text() and rec.warning_banner.isHidden()


# ---------------------------------------------------------------- the import tab
def test_import_tab_lists_images_without_metadata_and_says_the_side_band(qtbot, runner, settings, acq, project):
    imp = ImportTab(runner, settings)
    qtbot.addWidget(imp)
    imp.set_project(project)
    with qtbot.waitSignal(imp.scan_finished, timeout=20000) as blocker:
        imp.set_root(acq)
    infos = {i.name: i for i in blocker.args[0]}
    assert set(infos) == {"beads_000", "beads_auto", "beads_conj", "images_only"}
    bad = infos["images_only"]
    assert not bad.valid and bad.error.startswith("no measurement.json")
    assert "1 folder(s) of images without measurement.json" in imp.summary.text()
    assert "3 measurement folder(s) found: 3 valid." in imp.summary.text()
    runner.wait(10)
    with qtbot.waitSignal(imp.sideband_shown, timeout=10000) as sb:
        imp.select_measurement(acq / "beads_auto")
    assert "decided when the fields are retrieved" in sb.args[0] and "automatic" in sb.args[0]
    assert "decided when" in imp._detail_labels["Side band"].text()
    with qtbot.waitSignal(imp.sideband_shown, timeout=10000) as sb:
        imp.select_measurement(acq / "beads_000")
    assert "carrier_per_um from measurement.json" in sb.args[0]
    imp.select_measurement(acq / "images_only")
    assert imp._detail_labels["Side band"].text() == "–"
    runner.wait(10)


def test_sideband_status_of_a_processed_measurement_comes_from_its_result_file(acq, project):
    from engine.pipeline.project_screening import screen_project_measurement

    mid = project.add_measurement(acq / "beads_auto")
    assert "decided when" in sideband_status(project, acq / "beads_auto")
    screen_project_measurement(project, mid, model=None, device="cpu")
    text = sideband_status(project, acq / "beads_auto")
    assert text == read_result(project.result_path(mid), groups=["retrieval"]).retrieval.attrs["sideband_description"]
    assert "automatic" in text
    assert "decided when" in sideband_status(None, acq / "beads_auto")


def test_stored_fields_are_retrieved_again_only_when_their_side_band_is_unknown_or_stale(acq, project):
    """A result file without a retrieval/ record (written before #16) is retrieved and screened again
    once; an explicit carrier is never re-decided by the project setting."""
    from engine.pipeline.project_screening import screen_project_measurement
    from engine.store.results import write_result

    mid = project.add_measurement(acq / "beads_auto")
    assert screen_project_measurement(project, mid, model=None, device="cpu").run == 1
    path = project.result_path(mid)
    old = read_result(path)
    write_result(path, measurement_json=old.measurement_json, fields=old.fields,
                 illumination_per_um=old.illumination_per_um, screening=old.screening)  # no retrieval/
    again = screen_project_measurement(project, mid, model=None, device="cpu")
    assert again.run == 2 and again.retrieval["attrs"]["sideband_source"] == "auto"
    assert read_result(path, groups=["retrieval"]).retrieval is not None
    assert screen_project_measurement(project, mid, model=None, device="cpu").run == 2, "stable once recorded"

    fixed = project.add_measurement(acq / "beads_000")  # carrier_per_um in measurement.json
    assert screen_project_measurement(project, fixed, model=None, device="cpu").run == 1
    project.set_setting("sideband", "as-given")
    ps = screen_project_measurement(project, fixed, model=None, device="cpu")
    assert ps.run == 1 and ps.retrieval["attrs"]["sideband_source"] == "metadata"
    assert screen_project_measurement(project, mid, model=None, device="cpu").run == 3, "stale setting: again"
