"""Screening a project measurement lands in the database and the result file (docs/formats.md §2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.pipeline.project_screening import (CONSISTENCY_SUFFIX, SOURCE_MANUAL, SOURCE_MODEL, SOURCE_RULE, load_screening_model,
                                               screen_project_measurement)
from engine.progress import Cancelled, CancelToken
from engine.selftest import tiny_demo_config
from engine.simulate.demo import write_demo
from engine.store.project import Project
from engine.store.results import read_result


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    cfg = tiny_demo_config()
    cfg.defect_rate = 0.3
    return write_demo(tmp_path_factory.mktemp("in"), kind="beads", count=1, seed=11, config=cfg, device="cpu")[0]


@pytest.fixture
def project(tmp_path) -> Project:
    p = Project.create(tmp_path / "proj")
    yield p
    p.close()


def test_model_run_is_recorded_in_database_and_result_file(project, folder):
    mid = project.add_measurement(folder)
    ps = screen_project_measurement(project, mid, model="compact", device="cpu")
    n = len(ps.fields)
    assert n > 0 and ps.run == 1 and not ps.use_rule and ps.model is not None
    db = project.screening(mid)
    np.testing.assert_allclose(db["score"], ps.score, rtol=1e-6)
    assert db["model_name"] == ps.model.name and db["threshold"] == pytest.approx(0.5)
    np.testing.assert_array_equal(db["auto_decision"], (ps.score <= 0.5).astype(np.uint8))
    res = read_result(project.result_path(mid), groups=["fields", "screening"])
    s = res.screening
    np.testing.assert_allclose(s.score, ps.score, rtol=1e-6)
    np.testing.assert_allclose(s.rule_peak, ps.rule_peak, rtol=1e-6)
    np.testing.assert_array_equal(s.decision, ps.decision)
    np.testing.assert_array_equal(s.source, np.full(n, SOURCE_MODEL, np.uint8))
    assert s.model == ps.model_label and ps.model.name in s.model
    assert res.fields.shape == ps.fields.shape

    # an override made in the database is what the result file says after the next write
    project.set_override(mid, 0, 1 - int(ps.decision[0]), reason="test")
    again = screen_project_measurement(project, mid, model="compact", device="cpu")
    assert again.run == 1, "an existing run is reused, not screened again"
    assert again.manual[0] == 1 - int(ps.decision[0]) and again.source[0] == SOURCE_MANUAL
    redo = screen_project_measurement(project, mid, model="compact", device="cpu", rescreen=True)
    assert redo.run == 2
    s = read_result(project.result_path(mid), groups=["screening"]).screening
    assert s.source[0] == SOURCE_MANUAL and s.decision[0] == 1 - int(ps.decision[0])


def test_rule_when_no_model_and_cancel_changes_nothing(project, folder, tmp_path):
    model, note = load_screening_model(tmp_path / "missing.safetensors", device="cpu")
    assert model is None and "rule" in note
    mid = project.add_measurement(folder)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        screen_project_measurement(project, mid, model=None, cancel=token)
    assert project.screening(mid)["run"] == 0 and not Path(project.result_path(mid)).exists()
    ps = screen_project_measurement(project, mid, model=None, device="cpu")
    assert ps.use_rule and np.isnan(ps.score).all()
    s = read_result(project.result_path(mid), groups=["screening"]).screening
    np.testing.assert_array_equal(s.source, np.full(len(ps.fields), SOURCE_RULE, np.uint8))


def fake_fine_tuned(project: Project, stem: str = "screening-compact-ft1") -> Path:
    """The shipped compact weights copied into ``<project>/models/`` under a fine-tuned name (no training)."""
    import json
    import shutil

    from engine.screening.network import MODELS_DIR

    d = Path(project.path) / "models"
    d.mkdir(exist_ok=True)
    shutil.copyfile(MODELS_DIR / "screening-compact.safetensors", d / f"{stem}.safetensors")
    card = json.loads((MODELS_DIR / "screening-compact.json").read_text())
    card.update(name=stem, version="2.0.0+ft1", weights_file=f"{stem}.safetensors", parent_model="screening-compact 2.0.0")
    (d / f"{stem}.json").write_text(json.dumps(card))
    return d / f"{stem}.safetensors"


def test_default_model_is_the_projects_adopted_one(project, folder):
    """``model="default"`` screens with the project's fine-tuned model once it is adopted (#19 item 4)."""
    from engine.pipeline.project_screening import project_screening_model
    from engine.store.project import SCREENING_MODEL_SETTING

    mid = project.add_measurement(folder)
    shipped = screen_project_measurement(project, mid, device="cpu")
    assert shipped.model.name == "screening-compact" and project_screening_model(project) == "default"
    path = fake_fine_tuned(project)
    project.set_setting(SCREENING_MODEL_SETTING, "models/screening-compact-ft1.safetensors")
    assert project_screening_model(project) == path.resolve()
    assert project_screening_model(project, "published") == "published", "an explicit choice is kept"
    ps = screen_project_measurement(project, mid, device="cpu", rescreen=True)
    decided = CONSISTENCY_SUFFIX if ps.model.consistency is not None and ps.model.consistency["by_default"] else ""
    assert ps.model.name == "screening-compact-ft1" and ps.model_label == f"screening-compact-ft1 2.0.0+ft1{decided}"
    assert project.screening(mid)["model_name"] == "screening-compact-ft1"
    assert read_result(project.result_path(mid), groups=["screening"]).screening.model == ps.model_label
    np.testing.assert_allclose(ps.score, shipped.score, atol=1e-5)  # the same weights: the same scores
    path.unlink()  # a setting naming a file that is gone: the shipped model again
    again = screen_project_measurement(project, mid, device="cpu", rescreen=True)
    assert again.model.name == "screening-compact"


def test_formats_md_documents_the_project_models_setting_and_train_screening_record():
    """docs/formats.md §4 names ``models/``, the ``screening_model`` setting and every key of the
    ``train-screening`` job record (:meth:`RetrainReport.summary` plus what ``_record`` adds)."""
    import re

    from engine.screening.retrain import JOB_KIND, RetrainReport
    from engine.store.project import SCREENING_MODEL_SETTING

    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")
    section = text.split("## 4. Project folder", 1)[1]
    assert "models/<base>-ft<k>.safetensors" in section and f"`{SCREENING_MODEL_SETTING}`" in section
    assert f"kind `{JOB_KIND}`" in section
    rep = RetrainReport(before={}, after={}, improved=False, saved_path=None, model=None, n_train=0, n_holdout=0,
                        n_replay=0)
    keys = set(rep.summary()) | {"base", "base_sha256", "last_override_id"}
    documented = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", section, flags=re.M):
        documented |= set(re.findall(r"`([a-z_0-9]+)`", row))
    assert keys <= documented, sorted(keys - documented)
