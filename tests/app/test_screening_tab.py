"""Screening review tab and project import, on small simulated measurements (pytest-qt, offscreen)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QDialog

from app.jobs import JobRunner
from app.logic.importing import import_into_project
from app.tabs.import_tab import ImportTab
from app.widgets.measurement_table import MeasurementTableModel
from app.logic.screening import ScreeningData, review_counts
from app.tabs.screening_tab import ScreeningTab
from app.logic.screening import phase_thumbnails
from app.widgets.field_grid import FieldGridModel
from engine.store.project import SOURCE_MANUAL, Project


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Two tiny simulated bead measurements (15 angles, 64×64; the second a copy of the first, to
    save time) and one broken folder."""
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    root = tmp_path_factory.mktemp("acq")
    write_demo(root, kind="beads", count=1, seed=3, config=tiny_demo_config(15), device="cpu")
    shutil.copytree(root / "beads_000", root / "beads_001")
    bad = root / "beads_broken"
    shutil.copytree(root / "beads_000", bad)
    (bad / "measurement.json").write_text('{"format": "odt-measurement/1", "wavelength_um": 0.532}')
    return root


@pytest.fixture
def project(tmp_path, runner):
    """A new project, closed only after the runner has stopped every job that might use it."""
    p = Project.create(tmp_path / "project")
    yield p
    p.close()


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny untrained CompactScreeningNet saved and loaded like a shipped model (safetensors + card)."""
    import torch

    from engine.screening.network import CompactScreeningNet, architecture_of, init_weights, load_model, save_model

    torch.manual_seed(0)
    net = CompactScreeningNet(width=4)
    init_weights(net)
    card = {"name": "tiny-test", "version": "0", "architecture": architecture_of(net),
            "input": {"kind": "phase", "crop": 128}, "threshold": 0.5}
    save_model(net, tmp_path / "models" / "tiny-test.safetensors", card)
    return load_model(tmp_path / "models" / "tiny-test.safetensors", device="cpu")


@pytest.fixture
def tab(qtbot, runner: JobRunner, settings):
    t = ScreeningTab(runner, settings, device="cpu")
    qtbot.addWidget(t)
    t.resize(1280, 760)
    return t


def _open(qtbot, tab: ScreeningTab, project, mid: int, model=None) -> ScreeningData:
    """Open ``project`` and measurement ``mid``; ``model`` replaces the project's model (set_project picks it)."""
    with qtbot.waitSignal(tab.data_ready, timeout=60000) as blocker:
        tab.set_project(project)
        if model is not None:
            tab.model = model
        tab.select_measurement(mid)
    return blocker.args[0]


# ---------------------------------------------------------------- import into the project
def test_import_selected_into_project_reports_the_broken_folder(qtbot, runner, settings, batch, project):
    imp = ImportTab(runner, settings)
    qtbot.addWidget(imp)
    imp.set_project(project)
    with qtbot.waitSignal(imp.scan_finished, timeout=20000):
        imp.set_root(batch)
    runner.wait(10)
    assert imp.proxy.rowCount() == 3
    imp.table.selectAll()
    assert imp.import_button.isEnabled()
    started = []
    runner.job_started.connect(lambda job: started.append(job.name))
    with qtbot.waitSignal(imp.imported, timeout=20000) as blocker:
        imp.import_selected()
    outcomes = {o.path.name: o for o in blocker.args[0]}
    assert any(n.startswith("Importing 3") for n in started), "the import runs in the job runner"
    assert outcomes["beads_000"].status == outcomes["beads_001"].status == "imported"
    assert outcomes["beads_broken"].status == "failed" and "medium_index" in outcomes["beads_broken"].error
    names = sorted(r.name for r in project.list_measurements())
    assert names == ["beads_000", "beads_001"], "the broken folder is not catalogued, the others are"
    assert "2 imported" in imp.import_summary.text() and "beads_broken" in imp.import_summary.text()
    marked = {imp.proxy.index(r, 0).data(): imp.proxy.index(r, 0).data(MeasurementTableModel.InProjectRole)
              for r in range(imp.proxy.rowCount())}
    assert marked == {"beads_000": True, "beads_001": True, "beads_broken": False}
    # importing again: already-imported ones are reported as such, nothing is duplicated
    with qtbot.waitSignal(imp.imported, timeout=20000) as blocker:
        imp.import_selected()
    assert sorted(o.status for o in blocker.args[0]) == ["already", "already", "failed"]
    assert len(project.list_measurements()) == 2


def test_import_job_goes_on_after_an_error_and_stops_on_cancel(batch, project):
    from engine.progress import Cancelled, CancelToken

    out = import_into_project(project, [batch / "beads_broken", batch / "missing", batch / "beads_001"])
    assert [o.status for o in out] == ["failed", "failed", "imported"]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        import_into_project(project, [batch / "beads_000"], cancel=token)
    assert [r.name for r in project.list_measurements()] == ["beads_001"]


# ---------------------------------------------------------------- review
def test_keyboard_review_is_saved_at_once_and_survives_reopening(qtbot, tab, batch, tmp_path):
    path = tmp_path / "project"
    p = Project.create(path)
    mid = p.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, p, mid)
    n = len(data.fields)
    assert n == 15 and data.thumbnails.shape[0] == n
    assert tab.grid_model.rowCount() == n and tab.current_field() == 0
    auto = tab.grid_model.auto_decisions().copy()
    grid = tab.grid
    qtbot.keyClick(grid, Qt.Key.Key_N)            # field 0 noisy, next
    assert tab.current_field() == 1
    qtbot.keyClick(grid, Qt.Key.Key_Right)        # skip field 1
    qtbot.keyClick(grid, Qt.Key.Key_N)            # field 2 noisy, next
    qtbot.keyClick(grid, Qt.Key.Key_Space)        # field 3 toggled
    assert tab.current_field() == 3
    toggled = 1 - int(auto[3])
    assert tab.grid_model.decision(3) == toggled and tab.grid_model.manual[3] == toggled
    qtbot.keyClick(grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)   # undo the toggle
    assert tab.grid_model.manual[3] is None
    # saved at once: another connection sees exactly the two remaining decisions now
    other = Project.open(path)
    d_now, s_now = other.decisions(mid)
    other.close()
    assert list(np.flatnonzero(s_now == SOURCE_MANUAL)) == [0, 2]
    item_text = tab.measurement_list.currentItem().text()
    assert "2/15 reviewed" in item_text
    tab.set_project(None)
    p.close()

    p2 = Project.open(path)
    decision, source = p2.decisions(mid)
    assert list(np.flatnonzero(source == SOURCE_MANUAL)) == [0, 2]
    assert decision[0] == 0 and decision[2] == 0
    rest = [i for i in range(n) if i not in (0, 2)]
    np.testing.assert_array_equal(decision[rest], auto[rest])
    rows = p2.override_history(mid)
    assert [(r.field_index, r.new_decision) for r in rows] == [(0, 0), (2, 0), (3, toggled), (3, None)]
    assert rows[-1].reason == "undo" and rows[-1].old_decision == toggled
    assert review_counts(p2, mid)[1] == 2
    p2.close()


def test_redo_and_back_to_automatic(qtbot, tab, batch, project):
    mid = project.add_measurement(batch / "beads_001")
    _open(qtbot, tab, project, mid)
    tab.select_field(5)
    qtbot.keyClick(tab.grid, Qt.Key.Key_C)
    assert tab.current_field() == 6 and tab.grid_model.manual[5] == 1
    qtbot.keyClick(tab.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert tab.grid_model.manual[5] is None
    qtbot.keyClick(tab.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert tab.grid_model.manual[5] == 1
    tab.select_field(5)
    qtbot.keyClick(tab.grid, Qt.Key.Key_U)
    assert tab.grid_model.manual[5] is None and tab.current_field() == 5
    assert [r.new_decision for r in project.override_history(mid, 5)] == [1, None, 1, None]
    # overrides-only filter
    tab.select_field(7)
    qtbot.keyClick(tab.grid, Qt.Key.Key_N)
    tab.overrides_only.setChecked(True)
    assert tab.field_order() == [7]
    tab.overrides_only.setChecked(False)
    assert tab.field_order() == list(range(15))
    # "?" lists the keys
    qtbot.keyClick(tab.grid, Qt.Key.Key_Question, Qt.KeyboardModifier.ShiftModifier, )
    dlg = tab.findChild(QDialog, "screeningShortcuts")
    assert dlg is not None and dlg.isVisible()
    dlg.close()


def test_threshold_slider_counts_and_histogram(qtbot, tab, batch, project):
    assert tab.histogram.isHidden(), "no empty histogram axes before anything is shown"
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid)
    assert not tab.histogram.isHidden()
    metric = data.rule_peak if data.use_rule else data.score
    lo, hi = tab.threshold_bar.range
    seen = set()
    for v in (0, 250, 500, 750, 1000):
        tab.threshold_slider.setValue(v)
        t = lo + (hi - lo) * v / 1000
        assert tab.threshold == pytest.approx(t)
        expected_noisy = int(np.sum(metric > t))
        clean, noisy = tab.counts()
        assert (clean, noisy) == (len(metric) - expected_noisy, expected_noisy)
        assert f"{clean} clean" in tab.counts_label.text() and f"{noisy} noisy" in tab.counts_label.text()
        assert tab.histogram.counts.sum() == np.isfinite(metric).sum()
        seen.add(noisy)
    assert max(seen) == len(metric) and min(seen) == 0, "the slider spans all-noisy to all-clean"
    # a threshold between fields: exactly the fields above it are framed noisy
    t = float(np.median(metric))
    tab.set_threshold(t)
    got = [tab.grid_model.index(i).data(FieldGridModel.DecisionRole) for i in range(len(metric))]
    assert got == [0 if m > t else 1 for m in metric]
    run = tab.apply_threshold()
    assert run == 2
    np.testing.assert_array_equal(project.screening(mid)["auto_decision"], (metric <= t).astype(np.uint8))


def test_sort_by_uncertainty_puts_fields_nearest_the_threshold_first(qtbot, tab, batch, project):
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid)
    metric = data.rule_peak if data.use_rule else data.score
    t = float(np.median(metric)) + 1e-3
    tab.set_threshold(t)
    tab.sort_combo.setCurrentIndex(1)
    order = tab.field_order()
    assert order == list(np.argsort(np.abs(metric - t), kind="stable"))
    assert order != list(range(len(metric)))
    tab.set_current_row(0)
    qtbot.keyClick(tab.grid, Qt.Key.Key_N)   # N advances in the displayed order
    assert tab.current_field() == order[1]
    tab.sort_combo.setCurrentIndex(0)
    assert tab.field_order() == list(range(len(metric)))


def test_event_loop_stays_responsive_while_screening_runs(qtbot, tab, batch, project):
    mid = project.add_measurement(batch / "beads_001")
    tab.set_project(project)
    clock = QElapsedTimer()
    gaps: list[int] = []
    timer = QTimer()
    timer.setInterval(10)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    with qtbot.waitSignal(tab.data_ready, timeout=60000):
        job = tab.select_measurement(mid)
        assert job is not None
        clock.restart()
    timer.stop()
    assert job.seconds is not None and len(gaps) >= 5
    assert max(gaps[1:]) < 100, f"timer latency {max(gaps)} ms while the screening job ran"


def test_no_model_is_said_plainly_and_rule_is_used(qtbot, tab, batch, project, monkeypatch):
    import app.tabs.screening_tab as st
    import engine.pipeline.project_screening as ps

    monkeypatch.setattr(ps, "load_screening_model", lambda model="default", device="auto": (None, st.NO_MODEL_NOTE))
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid)
    assert data.use_rule and data.model is None and np.isnan(data.score).all()
    assert "none installed" in tab.model_label.text()
    assert not tab.retrain_button.isEnabled()
    assert not tab.view.saliency.isEnabled() and "none is installed" in tab.view.saliency_note.text()
    # the result file holds the fields and the rule screening
    from engine.store.results import read_result

    res = read_result(project.result_path(mid), groups=["fields", "screening"])
    assert res.fields.shape == data.fields.shape
    np.testing.assert_array_equal(res.screening.source, np.ones(len(data.fields), np.uint8))


def test_saliency_overlay_and_retrain_dialog_with_a_model(qtbot, tab, batch, project, tmp_path, tiny_model):
    """With a (tiny, untrained) network: saliency maps come from the engine, the retrain dialog adopts."""
    from engine.screening.network import load_model
    from engine.screening.retrain import RetrainReport

    model = tiny_model
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid, model=model)
    assert not data.use_rule and np.isfinite(data.score).all()
    assert tab.retrain_button.isEnabled() and "tiny-test" in tab.model_label.text()
    assert "networks (" not in tab.details.text()  # one network: no per-network line
    with qtbot.waitSignal(tab.saliency_ready, timeout=30000) as blocker:
        tab.view.saliency.setCurrentIndex(1)  # Grad-CAM
    assert blocker.args[0] == "grad_cam"
    assert tab.view.overlay.isVisible() and tab.view.overlay.image.shape[:2] == (64, 64)
    tab.view.opacity.setValue(25)
    assert tab.view.overlay.opacity() == pytest.approx(0.25)

    new = load_model(tmp_path / "models" / "tiny-test.safetensors", device="cpu")
    rep = RetrainReport(before={"accuracy": 0.6, "sensitivity": 0.5, "specificity": 0.7, "roc_auc": 0.66},
                        after={"accuracy": 0.8, "sensitivity": 0.75, "specificity": 0.85, "roc_auc": 0.9},
                        improved=True, saved_path=tmp_path / "tiny-test-ft1.safetensors", model=new,
                        n_train=14, n_holdout=6, n_replay=64)
    dlg = tab.show_retrain_report(rep)
    from PySide6.QtWidgets import QTableWidget

    table = dlg.findChild(QTableWidget)
    assert [table.item(0, c).text() for c in range(3)] == ["Accuracy", "0.600", "0.800"]
    assert tab.model is model, "nothing is adopted before the user says so"
    dlg.accept()
    assert tab.model is new


def test_phase_thumbnails_show_positive_phase_bright():
    f = np.ones((2, 64, 64), np.complex64)
    f[0, 24:40, 24:40] = np.exp(1j * 1.0)
    th = phase_thumbnails(f, size=32)
    assert th.shape == (2, 32, 32) and th.dtype == np.uint8
    assert th[0, 16, 16] > th[0, 2, 2] and th[1].std() == 0


def test_main_window_has_the_screening_tab_and_gives_it_the_project(qtbot, settings, batch, tmp_path):
    from app.main_window import MainWindow

    w = MainWindow(settings=settings, restore_layout=False)
    qtbot.addWidget(w)
    try:
        assert isinstance(w.tabs.widget(1), ScreeningTab)
        proj = Project.create(tmp_path / "p2")
        proj.add_measurement(batch / "beads_001")
        proj.close()
        assert w.open_project(tmp_path / "p2")
        assert w.screening_tab.project is w.project and w.import_tab.project is w.project
        assert w.screening_tab.measurement_list.count() == 1
    finally:
        w.runner.shutdown(5.0)
        w._close_project()


@pytest.mark.slow
def test_retrain_from_overrides_runs_in_the_background_and_asks_before_adopting(qtbot, tab, batch, project,
                                                                                tiny_model):
    mid = project.add_measurement(batch / "beads_000")
    tab.retrain_options = {"epochs": 1}
    _open(qtbot, tab, project, mid, model=tiny_model)
    for i in range(12):   # twelve manual decisions by keyboard
        qtbot.keyClick(tab.grid, Qt.Key.Key_N if i % 3 == 0 else Qt.Key.Key_C)
    assert review_counts(project, mid)[1] == 12
    with qtbot.waitSignal(tab.runner.job_finished, timeout=120000,
                          check_params_cb=lambda job, _r: job.name.startswith("Retraining")):
        job = tab.retrain()
        assert job is not None
    dlg = tab.findChild(QDialog, "retrainReport")
    assert dlg is not None and dlg.isVisible()
    rep = job.result
    from PySide6.QtWidgets import QTableWidget

    table = dlg.findChild(QTableWidget)
    assert table.item(0, 1).text() == f"{rep.before['accuracy']:.3f}"
    assert table.item(0, 2).text() == f"{rep.after['accuracy']:.3f}"
    assert tab.model is tiny_model, "not adopted before the user says so"
    if rep.improved:
        assert rep.saved_path is not None and Path(rep.saved_path).parent == project.path / "models"
        dlg.accept()
        assert tab.model is rep.model
        assert project.screening_model == Path(rep.saved_path).resolve(), "adopting stores the project setting"
    else:
        dlg.reject()
        assert tab.model is tiny_model


def test_threshold_bar_maps_the_slider_onto_its_range(qtbot):
    from app.tabs.screening_controls import SLIDER_STEPS, ThresholdBar

    bar = ThresholdBar()
    qtbot.addWidget(bar)
    bar.configure(-1.0, 4.0, "rule peak (log10)")
    moved = []
    bar.moved.connect(moved.append)
    bar.show_threshold(1.5, 7, 3)  # programmatic: no signal
    assert moved == [] and bar.slider.value() == SLIDER_STEPS // 2
    assert bar.value_label.text() == "1.50" and "7 clean" in bar.counts_label.text()
    bar.slider.setValue(SLIDER_STEPS)  # as the user would
    assert moved == [pytest.approx(4.0)]
    assert "rule peak" in bar.slider.toolTip()


def test_review_list_selects_without_loading_when_asked(qtbot):
    from app.tabs.screening_controls import ReviewMeasurementList

    lst = ReviewMeasurementList()
    qtbot.addWidget(lst)
    lst.fill([(3, "a"), (7, "b")], lambda mid: f"{mid} fields · not screened yet")
    chosen = []
    lst.measurement_chosen.connect(chosen.append)
    assert lst.select(7, emit=False) and chosen == [] and lst.current_id() == 7
    assert lst.select(3) and chosen == [3]
    assert not lst.select(99)
    lst.set_status(7, "2/7 reviewed · 1 overridden")
    assert lst.item_of(7).text() == "b\n2/7 reviewed · 1 overridden"


def test_project_model_is_loaded_shown_and_adopting_stores_it(qtbot, runner, settings, tab, batch, project):
    """#19 item 4: the project's adopted fine-tuned model is the tab's model on opening, the label
    says which, and "Adopt the new model" stores it as the project setting (it survives a restart)."""
    import json

    from engine.screening.network import MODELS_DIR, load_model
    from engine.screening.retrain import RetrainReport
    from engine.store.project import SCREENING_MODEL_SETTING

    mid = project.add_measurement(batch / "beads_000")
    tab.set_project(project)
    assert tab.model == "default" and "shipped" in tab.model_label.text()
    models = Path(project.path) / "models"
    models.mkdir()
    for stem in ("screening-compact-ft1", "screening-compact-ft2"):
        shutil.copyfile(MODELS_DIR / "screening-compact.safetensors", models / f"{stem}.safetensors")
        card = json.loads((MODELS_DIR / "screening-compact.json").read_text())
        card.update(name=stem, version=f"2.0.0+{stem[-3:]}", weights_file=f"{stem}.safetensors")
        (models / f"{stem}.json").write_text(json.dumps(card))
    project.set_setting(SCREENING_MODEL_SETTING, "models/screening-compact-ft1.safetensors")
    data = _open(qtbot, tab, project, mid)
    assert data.model is not None and data.model.name == "screening-compact-ft1"
    assert "screening-compact-ft1" in tab.model_label.text() and "fine-tuned" in tab.model_label.text()

    # a retraining's better model, adopted from the dialog, becomes the project's setting
    new = load_model(models / "screening-compact-ft2.safetensors", device="cpu")
    new.card.pop("path")  # as a freshly trained model: only the report knows its file
    rep = RetrainReport(before={"accuracy": 0.6}, after={"accuracy": 0.8}, improved=True,
                        saved_path=models / "screening-compact-ft2.safetensors", model=new,
                        n_train=14, n_holdout=6, n_replay=64)
    tab.show_retrain_report(rep).accept()
    assert tab.model is new and project.get_setting(SCREENING_MODEL_SETTING) == "models/screening-compact-ft2.safetensors"
    assert "screening-compact-ft2" in tab.model_label.text() and "fine-tuned" in tab.model_label.text()

    # "restart": a new tab on the reopened project starts from the adopted model
    path = project.path
    again = ScreeningTab(runner, settings, device="cpu")
    qtbot.addWidget(again)
    with Project.open(path) as reopened:
        again.set_project(reopened)
        assert again.model == (models / "screening-compact-ft2.safetensors").resolve()
        assert "fine-tuned" in again.model_label.text() and "screening-compact-ft2" in again.model_label.text()
        again.set_project(None)
    again.set_project(None)
    assert again.model == "default" and "shipped" in again.model_label.text()


def test_saliency_overlay_sits_on_the_crop_the_screen_took(qtbot):
    """A sample far from the middle of a large field: the network's crop starts at
    ``crop_origin`` (engine.screening.sample_crop), and the overlay is drawn there, in µm from
    the image centre; without an origin it stays on the centre crop."""
    from app.widgets.saliency_view import FieldView

    view = FieldView()
    qtbot.addWidget(view)
    field = np.ones((400, 300), np.complex64)
    px = 0.1
    m = np.random.default_rng(0).random((128, 128)).astype(np.float32)
    view.saliency.setCurrentIndex(1)
    view.set_field(field, px, "off-centre", crop_origin=(272, 86))
    view.set_saliency(view.saliency_method, m)
    r = view.overlay.mapRectToParent(view.overlay.boundingRect())
    assert r.top() == pytest.approx((272 - 200) * px) and r.left() == pytest.approx((86 - 150) * px)
    assert r.height() == pytest.approx(128 * px)
    view.set_field(field, px, "centre")
    view.set_saliency(view.saliency_method, m)
    r = view.overlay.mapRectToParent(view.overlay.boundingRect())
    assert r.top() == pytest.approx(-64 * px) and r.left() == pytest.approx(-64 * px)


def test_a_model_of_two_networks_shows_each_networks_score_of_the_field(qtbot, tab, batch, project, tmp_path):
    """The shipped 3.0.0 is two networks that must agree: the details say what each one scores."""
    import torch

    from engine.screening.network import CompactScreeningNet, MinOfNetworks, load_model, save_model

    torch.manual_seed(1)
    pair = MinOfNetworks([CompactScreeningNet(2, width=4), CompactScreeningNet(2, width=4)], [1.0, 0.5], 0.9, 0.2)
    card = {"name": "pair-test", "version": "0", "input": {"kind": "phase-amplitude", "crop": 128},
            "members": [{"name": "first", "version": "1"}, {"name": "second", "version": "2"}]}
    save_model(pair, tmp_path / "models" / "pair-test.safetensors", card)
    model = load_model(tmp_path / "models" / "pair-test.safetensors", device="cpu")
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid, model=model)
    with qtbot.waitSignal(tab.members_ready, timeout=30000) as blocker:
        tab.set_current_row(2)
    i = blocker.args[0]
    assert i == tab.current_field()
    text = tab.details.text()
    assert "networks" in text and "first 1" in text and "second 2" in text
    from engine.screening.network import preprocess

    p = model.member_probabilities(preprocess(data.fields[i:i + 1], input_kind="phase-amplitude"))
    # the probabilities shown are each member's own (the sample crop is the centre crop for these beads)
    assert f"{p[0, 0]:.2f}" in text and f"{p[0, 1]:.2f}" in text


def test_the_details_show_how_a_field_compares_with_its_nearest_illuminations(qtbot, tab, batch, project):
    """With a model that has a consistency stage (the shipped 3.4.0) and the project's setting off, each field's
    details say how it compares with its neighbours and what the stage would score, without it deciding."""
    from engine.screening.network import load_model

    model = load_model("default")
    if model.consistency is None:
        pytest.skip("the shipped model has no consistency stage")
    from engine.store.project import SCREENING_CONSISTENCY_SETTING

    project.set_setting(SCREENING_CONSISTENCY_SETTING, False)  # the network decides (the card's default is on)
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid, model=model)
    assert data.consistency is not None and data.consistency.shape == (len(data.fields), 5)
    assert data.consistency_score.shape == (len(data.fields),)
    tab.set_current_row(3)
    i = tab.current_field()
    text = tab.details.text()
    assert "nearest illuminations" in text and f"{data.consistency_score[i]:.2f}" in text and "not deciding" in text
    assert np.array_equal(data.auto_decision, (data.score <= data.threshold).astype(np.uint8))  # the network decided


def test_ticking_compare_with_neighbours_stores_the_setting_and_lets_the_stage_decide(qtbot, tab, batch, project):
    from engine.pipeline.project_screening import CONSISTENCY_SUFFIX
    from engine.screening.network import load_model

    model = load_model("default")
    if model.consistency is None:
        pytest.skip("the shipped model has no consistency stage")
    from engine.screening.network import consistency_by_default
    from engine.store.project import SCREENING_CONSISTENCY_SETTING

    tab.set_project(project)  # a project that has not said: the box shows the shipped card's default
    assert tab.consistency_box.isChecked() is consistency_by_default("default")
    project.set_setting(SCREENING_CONSISTENCY_SETTING, False)
    mid = project.add_measurement(batch / "beads_000")
    first = _open(qtbot, tab, project, mid, model=model)
    assert not tab.consistency_box.isChecked() and not first.model_version.endswith(CONSISTENCY_SUFFIX)
    with qtbot.waitSignal(tab.data_ready, timeout=60000) as blocker:
        tab.consistency_box.setChecked(True)  # as a click does: the setting, then the measurement screened again
    data = blocker.args[0]
    assert project.screening_consistency is True
    assert data.model_version.endswith(CONSISTENCY_SUFFIX) and data.run == first.run + 1
    assert np.allclose(data.score, data.consistency_score)
    tab.set_current_row(1)
    assert "(deciding)" in tab.details.text()
    from engine.store.results import read_result

    stored = read_result(project.result_path(mid)).screening  # the project's result file says so too
    assert stored.consistency_used and stored.consistency.shape == (len(data.fields), 5)
    assert stored.model.endswith(CONSISTENCY_SUFFIX)
    tab.set_project(None)
    tab.set_project(project)  # reopened: the box shows the project's setting
    assert tab.consistency_box.isChecked()


def test_d_shows_the_field_against_its_nearest_illuminations_from_the_engine(qtbot, tab, batch, project):
    """Key D: the view shows how the field differs from what the rest of the measurement predicts (a job that
    calls the engine's tomographic_difference, the optics being known); the saliency overlay is not drawn over
    it; P goes back to the phase."""
    from engine.screening.tomographic import tomographic_difference

    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid)
    assert data.illumination_per_um is not None and data.illumination_per_um.shape == (len(data.fields), 2)
    assert data.optics is not None and set(data.optics) == {"wavelength_um", "na_objective", "medium_index"}
    tab.set_current_row(4)
    i = tab.current_field()
    with qtbot.waitSignal(tab.difference_ready, timeout=30000) as blocker:
        qtbot.keyClick(tab.grid, Qt.Key.Key_D)
    assert blocker.args[0] == i and tab.view.mode_name == "Against neighbours"
    o = data.optics
    expected = tomographic_difference(data.fields, data.pixel_size_um, o["wavelength_um"], data.illumination_per_um,
                                      o["na_objective"], o["medium_index"], i)
    assert np.allclose(tab.view.image.image, expected)
    assert not tab.view.overlay.isVisible()
    assert "prediction" in tab.view.colorbar.axis.labelText
    qtbot.keyClick(tab.grid, Qt.Key.Key_P)
    assert tab.view.mode_name == "Phase" and not np.allclose(tab.view.image.image, expected)


def test_the_neighbour_view_says_why_a_field_has_no_comparison(qtbot):
    from app.widgets.saliency_view import NEIGHBOUR_MODE, FieldView

    view = FieldView()
    qtbot.addWidget(view)
    view.set_field(np.ones((32, 32), np.complex64), 0.1)
    with qtbot.waitSignal(view.difference_requested, timeout=1000):
        view.mode.setCurrentText(NEIGHBOUR_MODE)
    view.set_difference(None, "No comparison with the neighbours: this measurement has 3 fields")
    assert "3 fields" in view.saliency_note.text() and not view.image.image.any()
    with qtbot.assertNotEmitted(view.difference_requested):  # asked once per field, not at every redraw
        view.mode.setCurrentIndex(0)
        view.mode.setCurrentText(NEIGHBOUR_MODE)
    view.mode.setCurrentIndex(0)
    assert view.saliency_note.text() == ""


def test_most_unlike_its_neighbours_first_orders_by_the_largest_consistency_z(qtbot, tab, batch, project):
    """With the shipped model's consistency features, the grid can put the fields most unlike their nearest
    illuminations first, and the caption shows each field's z-score."""
    from app.logic.screening import unlike_neighbours
    from app.widgets.field_grid import UNLIKE_NEIGHBOURS
    from engine.screening.network import load_model

    model = load_model("default")
    if model.consistency is None:
        pytest.skip("the shipped model has no consistency stage")
    mid = project.add_measurement(batch / "beads_000")
    data = _open(qtbot, tab, project, mid, model=model)
    z = unlike_neighbours(data)
    assert z.shape == (len(data.fields),) and np.allclose(z, np.max(data.consistency, axis=1))
    k = tab.sort_combo.findData(UNLIKE_NEIGHBOURS)
    assert k > 0 and tab.sort_combo.model().item(k).isEnabled()
    tab.sort_combo.setCurrentIndex(k)
    order = tab.field_order()
    assert [round(float(v), 6) for v in z[order]] == sorted((round(float(v), 6) for v in z), reverse=True)
    assert f"unlike its neighbours z {z[order[0]]:.1f}" in tab.grid_model.tooltip(order[0])


def test_unlike_neighbours_is_none_without_features_and_nan_for_unknown_rows():
    from types import SimpleNamespace

    from app.logic.screening import unlike_neighbours

    assert unlike_neighbours(SimpleNamespace(consistency=None)) is None
    z = unlike_neighbours(SimpleNamespace(consistency=np.array([[0.0, 2.5, 1.0], [np.nan] * 3], np.float32)))
    assert z[0] == pytest.approx(2.5) and np.isnan(z[1])
