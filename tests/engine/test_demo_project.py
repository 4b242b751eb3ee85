"""The demo project (engine.pipeline.demo_project), built headless with the tiny samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

import engine

from engine.pipeline import demo_project as dp
from engine.progress import CancelToken, Cancelled
from engine.store.project import Project
from engine.store.results import read_result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "demo-project"
    seen = []
    demo = dp.build_demo_project(folder, samples=dp.tiny_demo_samples(), device="cpu",
                                 progress=lambda f, m="": seen.append((f, m)))
    return demo, seen


def test_every_kind_is_imported_screened_and_reconstructed(built):
    demo, seen = built
    assert demo.built and set(demo.measurements) == {"bacteria", "cells", "beads", "lc-droplets"}
    fractions = [f for f, _m in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # progress only goes forward
    with Project.open(demo.project_path) as p:
        names = {r.name for r in p.list_measurements()}
        assert names == {m["name"] for m in demo.measurements.values()}
        for m in demo.measurements.values():
            res = read_result(m["result"])
            assert res.tomogram is not None and np.isfinite(res.tomogram.ri).all()
            # scalar: screened in the project, the file follows its decisions; the droplet: the
            # pipeline screened it per illumination and the project records that run
            assert p.screening(m["id"])["run"] == 1
            decision, _source = p.decisions(m["id"])
            np.testing.assert_array_equal(res.screening.decision, decision)
    bacteria = read_result(demo.measurements["bacteria"]["result"])
    assert bacteria.tomogram.ri_tv is not None  # raw and TV side by side in the Reconstruction tab
    droplet = read_result(demo.measurements["lc-droplets"]["result"])
    assert droplet.birefringence is not None
    dn = np.asarray(droplet.birefringence.n_e) - np.asarray(droplet.birefringence.n_o)
    assert np.abs(dn).max() > 0.005  # the droplet's birefringence is there


def test_overrides_are_in_the_audit_trail_and_used_by_the_reconstruction(built):
    demo, _ = built
    with Project.open(demo.project_path) as p:
        history = p.override_history()
        assert len(history) == 3  # two on the bacteria, one on the cells
        assert {h.user for h in history} == {dp.DEMO_USER} and all(h.reason for h in history)
        b = demo.measurements["bacteria"]
        decision, source = p.decisions(b["id"])
        for h in p.override_history(b["id"]):
            assert source[h.field_index] == 2 and decision[h.field_index] == h.new_decision
        res = read_result(b["result"])
        assert (res.screening.source == 2).sum() == 2
        assert any(j.kind == "reconstruction" and j.status == "done" for j in p.jobs())


def test_reused_when_complete_and_rebuilt_when_older(built, monkeypatch):
    demo, _ = built
    again = dp.ensure_demo_project(demo.folder, samples=dp.tiny_demo_samples(), device="cpu")
    assert not again.built and again.measurements == demo.measurements
    marker = demo.folder / dp.MARKER
    info = json.loads(marker.read_text())
    calls = []
    monkeypatch.setattr(dp, "build_demo_project", lambda folder, **kw: calls.append(folder) or "rebuilt")
    info["version"] = dp.DEMO_PROJECT_VERSION - 1
    marker.write_text(json.dumps(info))
    try:
        assert dp.read_demo_project(demo.folder) is None
        assert dp.ensure_demo_project(demo.folder) == "rebuilt" and calls == [demo.folder]
        info["version"] = dp.DEMO_PROJECT_VERSION
        info["engine_version"] = "0.0.1"  # made by an older program
        marker.write_text(json.dumps(info))
        assert dp.read_demo_project(demo.folder) is None
    finally:
        info["version"] = dp.DEMO_PROJECT_VERSION
        info["engine_version"] = engine.__version__
        marker.write_text(json.dumps(info))
    assert dp.read_demo_project(demo.folder) is not None


def test_cancel_leaves_no_marker(tmp_path):
    token = CancelToken()

    def progress(f, _m=""):
        if f > 0.05:
            token.cancel()

    with pytest.raises(Cancelled):
        dp.build_demo_project(tmp_path / "d", samples=dp.tiny_demo_samples(), device="cpu",
                              progress=progress, cancel=token)
    assert not (tmp_path / "d" / dp.MARKER).exists()
    assert dp.read_demo_project(tmp_path / "d") is None
