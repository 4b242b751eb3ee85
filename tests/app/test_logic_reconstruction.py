"""The Reconstruction tab's non-Qt half (app.logic.reconstruction): no widget, no Qt import."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.logic import reconstruction as logic
from app.logic.reconstruction import (
    MeasurementSize,
    PartialKeeper,
    VolumeSet,
    cost_text,
    export_volumes,
    load_volume_file,
    multislice_summary,
    refined_keys,
    run_reconstruction,
    shown_pair,
    volume_info,
)
from engine.metadata import MeasurementMetadata
from engine.pipeline.cost import CostCalibration
from engine.pipeline.process import OPTIONS_ATTR, ProcessOptions, ProcessResult
from engine.progress import Cancelled
from engine.store.results import write_result
from engine.tomogram import Tomogram


def _set(ms: bool = True, tv: bool = False, cancelled: bool = False) -> VolumeSet:
    ri = np.full((4, 6, 8), 1.337, np.float32)
    rec = {"iterations": 2 if cancelled else 5, "iterations_asked": 5, "misfit": [0.2, 0.1, 0.05, 0.04, 0.03][
        : 2 if cancelled else 5], "seconds": 3.5, "cancelled": cancelled}
    t = Tomogram(ri=ri, voxel_size_um=(0.2, 0.1, 0.1), origin_um=(0, 0, 0), medium_index=1.337,
                 method="rytov+nonneg", ri_tv=ri if tv else None, ri_ms=ri + 0.01 if ms else None,
                 ri_ms_record=rec if ms else None)
    return VolumeSet(name="bead", tomogram=t, cancelled=cancelled)


def test_the_module_imports_no_qt():
    code = "import sys, app.logic.reconstruction; print(any(m.startswith('PySide6') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_views_show_raw_beside_the_best_refined_volume():
    vs = _set(ms=True, tv=True)
    assert list(vs.volumes) == ["raw", "tv", "ms"] and refined_keys(vs) == ["ms", "tv"]
    assert shown_pair(vs, "tv", True) == ("raw", "tv")
    assert shown_pair(vs, "raw", True) == ("raw", "ms")  # raw chosen: beside the best one
    assert shown_pair(vs, "ms", False) == ("ms", None)
    assert shown_pair(vs, None, False) == ("raw", None)
    assert "ri_ms" in export_volumes(vs) and vs.misfit == pytest.approx([0.2, 0.1, 0.05, 0.04, 0.03])
    assert refined_keys(_set(ms=False)) == [] and _set(ms=False).misfit == []


def test_multislice_lines_say_how_it_converged_and_whether_it_is_saved():
    assert multislice_summary(_set()) == "multislice 5 iterations, data misfit 0.200 → 0.030, 3.5 s"
    part = _set(cancelled=True)
    assert multislice_summary(part) == "multislice 2/5 iterations, data misfit 0.200 → 0.100, 3.5 s, cancelled: last iterate"
    assert "not saved" in volume_info(part) and "not saved" not in volume_info(_set())
    assert "8 × 6 × 4 voxels" in volume_info(_set())
    assert multislice_summary(_set(ms=False)) == ""


def test_run_reconstruction_keeps_a_cancelled_runs_last_iterate(monkeypatch):
    partial = ProcessResult(name="bead", fields=np.zeros((1, 2, 2), np.complex64), illumination_per_um=np.zeros((1, 2)),
                            screening=None, tomogram=_set(cancelled=True).tomogram, fields_used=1)

    def cancelled(*_a, **_k):
        exc = Cancelled()
        exc.partial = partial
        raise exc

    keeper = PartialKeeper()
    monkeypatch.setattr(logic, "process_measurement", cancelled)
    with pytest.raises(Cancelled):
        run_reconstruction("folder", None, ProcessOptions(), keeper=keeper)
    assert keeper.take() is partial and keeper.take() is None  # taken once
    monkeypatch.setattr(logic, "process_measurement", lambda *a, **k: "done")
    assert run_reconstruction("folder", None, ProcessOptions(), keeper=keeper) == "done" and keeper.take() is None
    # and the partial becomes a cancelled, unsaved VolumeSet
    vs = logic.volume_set_from_result(partial, folder=Path("/x"), cancelled=True)
    assert vs.cancelled and vs.out_path is None and "ms" in vs.volumes


def test_cost_text_before_and_after_the_calibration():
    meta = MeasurementMetadata(wavelength_um=0.532, medium_index=1.337, na_objective=1.2, pixel_size_um=0.1)
    size = MeasurementSize(image_shape=(64, 64), n_fields=15, metadata=meta)
    assert "choose a measurement" in cost_text(None, ProcessOptions())
    assert "timing" in cost_text(size, ProcessOptions())
    cal = CostCalibration(fft3=1e-9, fft2=1e-9, tv=2e-8, screen_a=1e-4, screen_b=1e-8)
    ry = cost_text(size, ProcessOptions(), calibration=cal)
    ms = cost_text(size, ProcessOptions(method="multislice"), n_used=10, calibration=cal)
    assert ry.startswith("Estimated time ≈") and "32 × 64 × 64 voxels, 15 fields" in ry
    assert "multislice" in ms and "10 fields" in ms
    # the cost model is scalar only: a polarised measurement gets no (misleading) scalar figure
    polar = SimpleNamespace(polarised=True)  # MeasurementMetadata.polarised: it has polarisation frames
    text = cost_text(MeasurementSize(image_shape=(64, 64), n_fields=15, metadata=polar), ProcessOptions(),
                     calibration=cal)
    assert "not modelled for birefringence" in text and "≈" not in text


def test_a_loaded_result_carries_the_options_it_was_made_with(tmp_path):
    made = ProcessOptions(method="multislice", multislice_iterations=12, regularize="tv", device="cpu")
    path = write_result(tmp_path / "bead.odt.h5", measurement_json="{}", tomogram=_set().tomogram,
                        extra_attrs={OPTIONS_ATTR: json.dumps(made.record())})
    vs = load_volume_file(path)
    # non-negativity is recorded as its iteration count (True = the default 50)
    assert vs.options == dataclasses.replace(made, non_negativity=50)
    assert vs.name == "bead" and set(vs.volumes) == {"raw", "ms"}
    assert vs.misfit == pytest.approx([0.2, 0.1, 0.05, 0.04, 0.03])
