"""The multislice frame in the product (issue #21): ``ProcessOptions.multislice_frame`` is validated,
recorded in ``processing_options`` and as ``frame`` / ``frame_iterations`` on ``tomogram/ri_ms``,
reaches :class:`engine.tomography.multislice.MultisliceOptions`, ``odt-studio batch
--multislice-frame`` sets it, and the cost estimate counts the illumination frame.

The multislice iterations themselves are replaced by a stand-in here (the physics of both frames
is tested in ``tests/engine/test_multislice.py``): these tests check the wiring only.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from app import cli
from engine.pipeline import process as process_mod
from engine.pipeline.cost import ILLUMINATION_FRAME_FACTOR, CostCalibration, estimate_seconds
from engine.pipeline.process import (MULTISLICE_FRAMES, OPTIONS_ATTR, ProcessOptions, multislice_options,
                                     process_measurement, recorded_options)
from engine.store.results import read_result
from engine.tomography import multislice as ms_mod
from engine.tomography.multislice import MultisliceOptions

ITERATIONS = 3


@pytest.fixture(scope="module")
def bead_folder(tmp_path_factory) -> Path:
    """A tiny simulated silica bead (64×64 px, 15 angles)."""
    from engine.selftest import tiny_demo_config
    from engine.simulate.demo import write_demo

    return write_demo(tmp_path_factory.mktemp("in"), kind="beads", count=1, seed=1, config=tiny_demo_config(),
                      device="cpu")[0]


def test_frame_is_validated_and_defaults_to_the_lab_frame():
    assert ProcessOptions().multislice_frame == "lab" == MultisliceOptions().frame
    assert MULTISLICE_FRAMES == ("lab", "auto", "illumination")
    for frame in MULTISLICE_FRAMES:
        assert ProcessOptions(multislice_frame=frame).multislice_frame == frame
    with pytest.raises(ValueError, match="multislice_frame"):
        ProcessOptions(multislice_frame="rotated")
    with pytest.raises(ValueError, match="multislice_frame"):
        ProcessOptions.from_record({"multislice_frame": "Lab"})


@pytest.mark.parametrize("frame", MULTISLICE_FRAMES)
def test_frame_reaches_the_multislice_options_and_the_record(frame):
    opts = ProcessOptions(method="multislice", multislice_frame=frame, non_negativity=50)
    assert multislice_options(opts).frame == frame
    rec = json.loads(json.dumps(opts.record()))
    assert rec["multislice_frame"] == frame
    assert ProcessOptions.from_record(rec) == opts
    # a record written before the option existed reads as the lab frame
    rec.pop("multislice_frame")
    assert ProcessOptions.from_record(rec).multislice_frame == "lab"


def _stand_in(done: int, seen: list):
    """``reconstruct_multislice`` replaced: ``done`` iterations, Δn 0.01 everywhere (no physics)."""
    def fake(fields, ill, meta, *, shape_z=None, options=None, **_):
        from engine.tomogram import Tomogram

        seen.append(options)
        ri = np.full((int(shape_z), fields.shape[1], fields.shape[2]), meta.medium_index + 0.01, np.float32)
        return Tomogram(ri=ri, voxel_size_um=(0.1, 0.1, 0.1), origin_um=(0.0, 0.0, 0.0),
                        medium_index=meta.medium_index, method="multislice", misfit=list(np.linspace(0.3, 0.1, done)))
    return fake


@pytest.mark.parametrize("frame, done, asked, in_frame", [
    ("lab", ITERATIONS, ITERATIONS, 0),
    ("illumination", ITERATIONS, ITERATIONS, ITERATIONS),
    ("auto", ITERATIONS, ITERATIONS, 0),  # not dense: no refinement
    ("auto", ITERATIONS + 15, ITERATIONS + 15, 15),  # refined: the 15 illumination-frame iterations asked too
    ("auto", 2, ITERATIONS, 0),  # stopped in the lab stage
])
def test_ri_ms_records_the_frame_and_its_iterations(bead_folder, tmp_path, monkeypatch, frame, done, asked,
                                                    in_frame):
    seen: list = []
    monkeypatch.setattr(ms_mod, "reconstruct_multislice", _stand_in(done, seen))
    opts = ProcessOptions(screen="none", method="multislice", shape_z=8, non_negativity=2,
                          multislice_iterations=ITERATIONS, multislice_frame=frame, device="cpu")
    path = tmp_path / "r.odt.h5"
    process_measurement(bead_folder, path, opts)
    assert [o.frame for o in seen] == [frame]
    with h5py.File(path, "r") as f:
        attrs = f["tomogram/ri_ms"].attrs
        got = (attrs["frame"], int(attrs["frame_iterations"]), int(attrs["iterations"]), int(attrs["iterations_asked"]))
        assert json.loads(f.attrs[OPTIONS_ATTR])["multislice_frame"] == frame
    assert (got[0].decode() if isinstance(got[0], bytes) else got[0], *got[1:]) == (frame, in_frame, done, asked)
    result = read_result(path)
    assert result.tomogram.ri_ms_record["frame"] == frame
    assert result.tomogram.ri_ms_record["frame_iterations"] == in_frame
    assert recorded_options(result).multislice_frame == frame


def test_batch_flag_parses_and_reaches_the_options(tmp_path, monkeypatch):
    assert cli.MULTISLICE_FRAMES == MULTISLICE_FRAMES
    parser = cli._batch_parser()
    assert parser.parse_args(["in", "--out", "o"]).multislice_frame == "lab"
    for frame in MULTISLICE_FRAMES:
        assert parser.parse_args(["in", "--out", "o", "--multislice-frame", frame]).multislice_frame == frame
    with pytest.raises(SystemExit):
        parser.parse_args(["in", "--out", "o", "--multislice-frame", "rotated"])
    assert "--multislice-frame {lab,auto,illumination}" in " ".join(parser.format_help().split())
    seen: dict = {}
    monkeypatch.setattr(process_mod, "run_batch_command", lambda *a, **kw: seen.update(kw) or 0)
    assert cli.main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "multislice",
                     "--multislice-frame", "auto"]) == 0
    assert seen["multislice_frame"] == "auto" and seen["method"] == "multislice"
    # and run_batch_command hands it to every folder's ProcessOptions
    got: list = []
    monkeypatch.setattr(process_mod, "process_measurement", lambda folder, out, options, **_: got.append(options)
                        or type("R", (), {"fields_used": 1, "warnings": []})())
    process_mod.process_folder(tmp_path, tmp_path / "x.odt.h5", method="multislice", multislice_frame="illumination")
    assert got[0].multislice_frame == "illumination"


def test_cost_estimate_counts_the_illumination_frame():
    cal = CostCalibration(fft3=1e-9, fft2=1e-9, tv=2e-8, screen_a=1e-4, screen_b=1e-8)
    shape, n, substeps = (64, 128, 128), 49, 2

    def est(frame, method="multislice"):
        return estimate_seconds(ProcessOptions(screen="none", method=method, multislice_frame=frame, device="cpu"),
                                shape, n, substeps, cal)

    lab, ill, auto = est("lab"), est("illumination"), est("auto")
    start = lab.stages["first_order"] + lab.stages["non_negativity"]
    assert ill.stages["multislice"] - start > 0.8 * ILLUMINATION_FRAME_FACTOR * (lab.stages["multislice"] - start)
    assert ill.seconds > 3 * lab.seconds and not ill.optional and ill.seconds_max == ill.seconds
    # auto: the lab-frame run for sure, the 15 illumination-frame iterations as an upper bound
    assert auto.seconds == pytest.approx(lab.seconds) and set(auto.optional) == {"illumination_frame"}
    per_ill = (ill.stages["multislice"] - start) / ProcessOptions().multislice_iterations
    assert auto.optional["illumination_frame"] == pytest.approx(15 * per_ill)
    assert auto.seconds_max > lab.seconds and "+ up to" in auto.describe() and "+ up to" not in lab.describe()
    assert est("illumination", "rytov").seconds == pytest.approx(est("lab", "rytov").seconds)  # no multislice
