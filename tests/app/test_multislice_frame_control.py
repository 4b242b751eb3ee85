"""The multislice frame in the Method box (issue #21): the "Steep light" combo builds
``ProcessOptions.multislice_frame``, ``set_options`` shows a loaded result's, the row is shown for
the multislice method only, and the cost estimate line grows when the illumination frame is asked."""

from __future__ import annotations

import os

import pytest

from app.tabs.reconstruction_controls import MS_FRAME_LABELS, MS_FRAME_TIPS, MethodBox
from engine.pipeline.cost import CostCalibration, estimate_seconds
from engine.pipeline.process import MULTISLICE_FRAMES, ProcessOptions


def _frame_row(box: MethodBox) -> int:
    return next(r for r in box._ms_rows if box.form.itemAt(r, box.form.ItemRole.FieldRole).widget() is box.ms_frame)


def test_steep_light_combo_builds_and_restores_the_frame(qtbot):
    box = MethodBox()
    qtbot.addWidget(box)
    box.show()
    assert [key for _, key in MS_FRAME_LABELS] == list(MULTISLICE_FRAMES) and set(MS_FRAME_TIPS) == set(MULTISLICE_FRAMES)
    assert box.options().multislice_frame == "lab" == ProcessOptions().multislice_frame  # default: GUI/batch parity
    row = _frame_row(box)
    assert not box.form.isRowVisible(row)  # Rytov: no multislice rows
    box.method_combo.setCurrentIndex(box.method_combo.findData("multislice"))
    assert box.form.isRowVisible(row) and box.ms_frame.toolTip()
    for key in ("illumination", "auto", "lab"):
        with qtbot.waitSignal(box.changed, timeout=1000):
            box.ms_frame.setCurrentIndex(box.ms_frame.findData(key))
        o = box.options()
        assert (o.method, o.multislice_frame) == ("multislice", key)
    for key in ("auto", "illumination", "lab"):  # a loaded result's options
        box.set_options(ProcessOptions(method="multislice", multislice_frame=key, multislice_iterations=7))
        assert box.ms_frame.currentData() == key and box.options().multislice_frame == key
        assert box.options().multislice_iterations == 7


def test_estimate_shown_grows_with_the_illumination_frame(qtbot):
    box = MethodBox()
    qtbot.addWidget(box)
    cal = CostCalibration(fft3=1e-9, fft2=1e-9, tv=2e-8, screen_a=1e-4, screen_b=1e-8)
    box.set_options(ProcessOptions(method="multislice"))
    seconds = {}
    for key in MULTISLICE_FRAMES:
        box.ms_frame.setCurrentIndex(box.ms_frame.findData(key))
        seconds[key] = estimate_seconds(box.options(), (32, 64, 64), 15, 1, cal)
    assert seconds["illumination"].seconds > 3 * seconds["lab"].seconds
    assert seconds["auto"].seconds_max > seconds["lab"].seconds_max
    assert "+ up to" in seconds["auto"].describe()


@pytest.mark.skipif(not os.environ.get("ODT_SCREENSHOT_DIR"), reason="screenshots only on request")
def test_render_the_method_box(qtbot):
    """``ODT_SCREENSHOT_DIR=/tmp/shots``: the Method box with the multislice rows, combo open text."""
    box = MethodBox()
    qtbot.addWidget(box)
    box.set_options(ProcessOptions(method="multislice", multislice_frame="auto"))
    box.cost_label.setText(estimate_seconds(box.options(), (32, 64, 64), 15, 1, CostCalibration(
        fft3=1e-9, fft2=1e-9, tv=2e-8, screen_a=1e-4, screen_b=1e-8)).describe())
    box.resize(460, box.sizeHint().height())
    box.show()
    qtbot.wait(50)
    assert box.grab().save(os.path.join(os.environ["ODT_SCREENSHOT_DIR"], "multislice_frame_control.png"))


def test_info_line_says_how_many_iterations_ran_in_the_illumination_frame():
    import numpy as np

    from app.logic.reconstruction import VolumeSet, multislice_summary
    from engine.tomogram import Tomogram

    def line(rec):
        ri = np.full((4, 6, 8), 1.337, np.float32)
        t = Tomogram(ri=ri, voxel_size_um=(0.2, 0.1, 0.1), origin_um=(0, 0, 0), medium_index=1.337,
                     method="rytov+nonneg", ri_ms=ri + 0.01, ri_ms_record=dict(rec, misfit=[0.2] * rec["iterations"]))
        return multislice_summary(VolumeSet(name="bead", tomogram=t))

    assert line({"iterations": 35, "iterations_asked": 35, "frame": "auto", "frame_iterations": 15}).startswith(
        "multislice 35 iterations (15 in the illumination frame),")
    assert line({"iterations": 20, "iterations_asked": 20, "frame": "illumination", "frame_iterations": 20}) \
        .startswith("multislice 20 iterations (illumination frame),")
    assert line({"iterations": 20, "iterations_asked": 20}).startswith("multislice 20 iterations,")  # older files
