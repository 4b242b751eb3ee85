"""The birefringence route in the GUI (#20 item 4): the Method box's route control builds the
options, the Reconstruction tab offers it for polarisation-resolved measurements only, and the
Birefringence tab says which route made the volume and why ``auto`` chose it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.logic.birefringence import load_birefringence_result, route_text
from app.tabs.reconstruction_controls import BIREFRINGENCE_ROUTE_LABELS, MethodBox
from engine.birefringence.routes import ROUTE_SUMMARIES
from engine.pipeline.process import BIREFRINGENCE_METHODS, ProcessOptions, process_measurement


@pytest.fixture(scope="module")
def droplet_folder(tmp_path_factory) -> Path:
    """A tiny polarisation-resolved droplet measurement (32², 9 illuminations; n_m 1.46, r 1.0 µm)."""
    from engine.simulate.demo import DemoConfig, write_demo
    from engine.simulate.holograms import Setup

    cfg = DemoConfig(Setup(image_shape=(32, 32), pixel_size_um=0.1, medium_index=1.46, na_condenser=1.0,
                           n_angles=9, pattern="ring"),
                     depth_um=2.4, phantom_kwargs={"radius_um": 1.0, "n_o": 1.52, "n_e": 1.57},
                     defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    return write_demo(tmp_path_factory.mktemp("pol"), kind="lc-droplets", count=1, seed=3, config=cfg,
                      device="cpu")[0]


def test_route_control_builds_the_options(qtbot):
    box = MethodBox()
    qtbot.addWidget(box)
    box.show()
    rows = box._route_rows
    assert list(BIREFRINGENCE_ROUTE_LABELS) == list(BIREFRINGENCE_METHODS)
    # a scalar measurement: no route row, no birefringence asked for
    assert not any(box.form.isRowVisible(r) for r in rows)
    assert box.options().birefringence is False and box.options().birefringence_method == "auto"
    assert box.method_combo.isEnabled() and box.reg_combo.isEnabled()
    box.set_polarised(True)
    assert all(box.form.isRowVisible(r) for r in rows)
    # the scalar choices do not apply to a birefringence route: shown greyed, not editable
    assert not any(w.isEnabled() for w in (box.method_combo, box.reg_combo, box.nonneg_check, box.nonneg_iter))
    assert box.route_tip.text().startswith(ROUTE_SUMMARIES["auto"])
    for key in BIREFRINGENCE_METHODS[1:] + BIREFRINGENCE_METHODS[:1]:  # "auto" is shown first
        with qtbot.waitSignal(box.changed, timeout=1000):
            box.route_combo.setCurrentIndex(box.route_combo.findData(key))
        o = box.options()
        assert (o.birefringence, o.birefringence_method) == (True, key)
        assert box.route_tip.text().startswith(ROUTE_SUMMARIES[key])
    box.set_options(ProcessOptions(birefringence=True, birefringence_method="dtt-refined"))  # a loaded result's
    assert box.route_combo.currentData() == "dtt-refined" and box.options().birefringence
    box.set_polarised(False)
    assert box.options().birefringence is False and not box.form.isRowVisible(rows[0])
    assert box.method_combo.isEnabled() and box.reg_combo.isEnabled() and box.nonneg_check.isEnabled()


def test_reconstruction_tab_offers_the_route_for_polarised_data_and_runs_it(qtbot, runner, settings,
                                                                            droplet_folder):
    from app.tabs.reconstruction_tab import ReconstructionTab

    tab = ReconstructionTab(runner, settings)
    qtbot.addWidget(tab)
    tab.show_measurement(droplet_folder)
    assert tab.method_box.polarised and tab.method_box.form.isRowVisible(tab.method_box._route_rows[0])
    box = tab.method_box
    box.route_combo.setCurrentIndex(box.route_combo.findData("dtt"))
    opts = tab.options()
    assert (opts.birefringence, opts.birefringence_method) == (True, "dtt")
    with qtbot.waitSignal(tab.volume_shown, timeout=60_000):
        job = tab.run(ProcessOptions(screen="none", device="cpu", birefringence=True, birefringence_method="dtt",
                                     non_negativity=0))
        assert job is not None
    assert tab.result.birefringence.method == "dtt-rytov"


def test_birefringence_tab_shows_why_auto_chose_the_route(qtbot, runner, settings, droplet_folder, tmp_path):
    from app.tabs.birefringence_tab import BirefringenceTab

    out = tmp_path / "auto.odt.h5"
    res = process_measurement(droplet_folder, out, ProcessOptions(device="cpu", birefringence=True, screen="none"))
    data = load_birefringence_result(out)
    assert data.route == res.birefringence.method and data.route_reason == res.birefringence_route.reason
    text = route_text(data)
    assert text.splitlines()[1] == f"Chosen automatically: {res.birefringence_route.reason}"
    tab = BirefringenceTab(runner, settings)
    qtbot.addWidget(tab)
    tab.resize(1280, 800)
    with qtbot.waitSignal(tab.loaded, timeout=30_000):
        tab.open_result(out)
    assert tab.result_box.route_label.text() == text
