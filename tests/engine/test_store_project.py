"""Project folder: SQLite catalogue, screening decisions, override audit trail, jobs."""

from __future__ import annotations

import getpass
import sqlite3
import threading

import numpy as np
import pytest

from _folders import make_measurement, meta
from engine.progress import Cancelled
from engine.store.project import SCHEMA_VERSION, SOURCE_MANUAL, SOURCE_MODEL, SOURCE_RULE, Project, ProjectError


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "proj")
    yield p
    p.close()


@pytest.fixture
def mid(project, tmp_path):
    return project.add_measurement(make_measurement(tmp_path / "data", "cell", n=4))


def test_create_and_open(tmp_path):
    p = Project.create(tmp_path / "proj")
    assert (tmp_path / "proj" / "project.sqlite").is_file() and (tmp_path / "proj" / "results").is_dir()
    p.close()
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "proj")
    with pytest.raises(ProjectError, match="project.sqlite is missing"):
        Project.open(tmp_path / "nothing")
    with pytest.raises(TypeError):
        Project(tmp_path / "proj")
    with Project.open(tmp_path / "proj") as q:
        assert q.schema_version == SCHEMA_VERSION


def test_wal_and_foreign_keys_are_on(project):
    con = sqlite3.connect(project.db_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    con.close()
    c = project._connect()
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        c.execute("INSERT INTO overrides (measurement_id, field_index, user, time) VALUES (999, 0, 'u', 't')")


def test_migration_from_version_0(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    con = sqlite3.connect(folder / "project.sqlite")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 0
    con.close()
    with Project.open(folder) as p:
        assert p.schema_version == SCHEMA_VERSION >= 1
        tables = {r[0] for r in p._connect().execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"measurements", "screening", "overrides", "jobs"} <= tables
        assert (folder / "results").is_dir()


def test_database_newer_than_the_program_is_refused(tmp_path):
    Project.create(tmp_path / "p").close()
    con = sqlite3.connect(tmp_path / "p" / "project.sqlite")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(ProjectError, match="newer"):
        Project.open(tmp_path / "p")


def test_add_measurement_dedupes_and_keeps_names_unique(project, tmp_path):
    a = make_measurement(tmp_path / "d1", "cell", n=3)
    b = make_measurement(tmp_path / "d2", "cell", n=2)
    ia = project.add_measurement(a)
    assert project.add_measurement(a) == ia
    assert project.add_measurement(tmp_path / "d1" / "." / "cell") == ia
    ib = project.add_measurement(b)
    assert ib != ia
    recs = project.list_measurements()
    assert [(r.name, r.n_images, r.status) for r in recs] == [("cell", 3, "imported"), ("cell_2", 2, "imported")]
    assert recs[0].path == a.resolve() and len(recs[0].content_hash) == 64
    assert project.metadata(ia)["wavelength_um"] == 0.532
    assert project.result_path(ia) == project.results_dir / "cell.odt.h5"
    assert project.result_path(recs[1]) == project.results_dir / "cell_2.odt.h5"
    # a changed folder keeps its id but the catalogue follows the change
    h = recs[0].content_hash
    (a / "measurement.json").write_text('{"format": "odt-measurement/1"}')
    assert project.add_measurement(a) == ia
    rec = project.get_measurement(ia)
    assert rec.content_hash != h and rec.status == "invalid" and "wavelength_um" in rec.error
    with pytest.raises(KeyError):
        project.get_measurement(12345)


def test_moved_folder_keeps_its_id_and_missing_folder_is_refused(project, tmp_path):
    a = make_measurement(tmp_path / "d1", "cell", n=2)
    ia = project.add_measurement(a)
    project.set_override(ia, 0, 0)
    moved = tmp_path / "d2" / "cell"
    moved.parent.mkdir()
    a.rename(moved)  # a move keeps files' sizes and mtimes, hence the content hash
    assert project.add_measurement(moved) == ia
    assert project.get_measurement(ia).path == moved.resolve()
    assert project.decisions(ia)[0][0] == 0 and len(project.list_measurements()) == 1
    with pytest.raises(FileNotFoundError):
        project.add_measurement(tmp_path / "nowhere")


def test_invalid_folder_is_catalogued_with_its_error(project, tmp_path):
    bad = make_measurement(tmp_path, "bad", metadata=meta(pixel_size_um="0.1"))
    i = project.add_measurement(bad)
    rec = project.get_measurement(i)
    assert rec.status == "invalid" and "pixel_size_um" in rec.error and "bad" in rec.error


def test_decisions_screening_and_overrides(project, mid):
    dec, src = project.decisions(mid)  # never screened: every field used
    np.testing.assert_array_equal(dec, [1, 1, 1, 1])
    np.testing.assert_array_equal(src, [SOURCE_RULE] * 4)
    run = project.add_screening(mid, [1, 0, 1, 1], score=[0.1, 0.9, 0.2, 0.3], rule_peak=[1, 2, 3, 4],
                                source=SOURCE_MODEL, model_name="screen-cnn", model_version="1.0", threshold=0.5)
    assert run == 1
    s = project.screening(mid)
    np.testing.assert_allclose(s["score"], [0.1, 0.9, 0.2, 0.3], rtol=1e-6)
    assert s["model_name"] == "screen-cnn" and s["model_version"] == "1.0" and s["threshold"] == 0.5
    dec, src = project.decisions(mid)
    np.testing.assert_array_equal(dec, [1, 0, 1, 1])
    np.testing.assert_array_equal(src, [0, 0, 0, 0])

    o1 = project.set_override(mid, 1, 1, user="alice", reason="looks fine")
    project.set_override(mid, 2, 0)
    dec, src = project.decisions(mid)
    np.testing.assert_array_equal(dec, [1, 1, 0, 1])
    np.testing.assert_array_equal(src, [0, SOURCE_MANUAL, SOURCE_MANUAL, 0])
    project.set_override(mid, 1, None, user="bob")  # back to automatic
    dec, src = project.decisions(mid)
    np.testing.assert_array_equal(dec, [1, 0, 0, 1])
    np.testing.assert_array_equal(src, [0, 0, 2, 0])

    hist = project.override_history(mid)
    assert [(h.field_index, h.old_decision, h.new_decision, h.user) for h in hist] == [
        (1, 0, 1, "alice"), (2, 1, 0, getpass.getuser()), (1, 1, None, "bob")]
    assert hist[0].id == o1 and hist[0].reason == "looks fine" and hist[0].time < hist[2].time
    assert [h.field_index for h in project.override_history(mid, field_index=1)] == [1, 1]

    # a new screening run replaces the automatic decisions; manual ones stay on top
    project.add_screening(mid, [0, 0, 0, 0], source=SOURCE_RULE, model_name="rule")
    dec, src = project.decisions(mid)
    np.testing.assert_array_equal(dec, [0, 0, 0, 0])
    np.testing.assert_array_equal(src, [1, 1, 2, 1])

    with pytest.raises(IndexError):
        project.set_override(mid, 4, 1)
    with pytest.raises(ValueError):
        project.set_override(mid, 0, 2)
    with pytest.raises(KeyError):
        project.set_override(999, 0, 1)
    assert len(project.override_history()) == 3


def test_audit_rows_cannot_be_changed_or_deleted(project, mid):
    project.set_override(mid, 0, 0)
    con = project._connect()
    with pytest.raises(sqlite3.IntegrityError, match="audit"):
        con.execute("UPDATE overrides SET new_decision = 1")
    with pytest.raises(sqlite3.IntegrityError, match="audit"):
        con.execute("DELETE FROM overrides")
    assert project.override_history(mid)[0].new_decision == 0


def test_overrides_from_many_threads_are_all_kept(project, mid):
    errors = []
    all_connected = threading.Barrier(4, timeout=60)

    def work(k):
        try:
            for i in range(20):
                project.set_override(mid, (k + i) % 4, i % 2, user=f"t{k}")
                if i == 0:  # every worker holds its connection before any ends (ended threads' ones get closed)
                    all_connected.wait()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(project._all) == 5  # the fixture's thread and the four workers
    t = threading.Thread(target=project.list_measurements)  # a new connection closes the ended threads' ones
    t.start()
    t.join()
    assert len(project._all) == 2
    hist = project.override_history(mid)
    assert len(hist) == 80 and {h.user for h in hist} == {"t0", "t1", "t2", "t3"}
    # every audit row's old decision is what the previous row of that field set
    last = {}
    for h in hist:
        if h.field_index in last:
            assert h.old_decision == last[h.field_index]
        last[h.field_index] = h.new_decision


def test_jobs_history(project):
    j = project.start_job("import", "3 folders")
    project.finish_job(j, "done", "3 imported")
    with project.job("batch"):
        pass
    with pytest.raises(Cancelled):
        with project.job("reconstruct"):
            raise Cancelled("user")
    with pytest.raises(RuntimeError):
        with project.job("screen"):
            raise RuntimeError("boom")
    jobs = project.jobs()
    assert [(x.kind, x.status) for x in jobs] == [("import", "done"), ("batch", "done"),
                                                   ("reconstruct", "cancelled"), ("screen", "failed")]
    assert jobs[0].message == "3 imported" and jobs[0].finished >= jobs[0].started
    assert "boom" in jobs[3].message


def test_closed_project_refuses_use(tmp_path):
    p = Project.create(tmp_path / "p")
    p.close()
    with pytest.raises(ProjectError, match="closed"):
        p.list_measurements()


def test_settings_round_trip_and_survive_reopening(tmp_path):
    from engine.store.project import SIDEBAND_SETTING

    with Project.create(tmp_path / "p") as p:
        assert p.sideband == "auto" and p.get_setting(SIDEBAND_SETTING) is None
        assert p.get_setting("missing", 7) == 7
        p.set_setting(SIDEBAND_SETTING, "as-given")
        p.set_setting("note", {"a": [1, 2]})
        with pytest.raises(ValueError, match="sideband"):
            p.set_setting(SIDEBAND_SETTING, "left")
        with pytest.raises(ValueError, match="JSON"):
            p.set_setting("bad", object())
        assert p.sideband == "as-given"
    with Project.open(tmp_path / "p") as q:  # a new connection sees what was committed
        assert q.get_setting(SIDEBAND_SETTING) == "as-given" and q.sideband == "as-given"
        assert q.settings() == {"note": {"a": [1, 2]}, SIDEBAND_SETTING: "as-given"}
        q.set_setting(SIDEBAND_SETTING, "auto")
    with Project.open(tmp_path / "p") as r:
        assert r.sideband == "auto"


def test_version_1_database_gains_settings_and_keeps_its_rows(tmp_path):
    """A project written before the settings table (schema 1) opens, keeps its rows, and takes settings."""
    from engine.store.project import MIGRATIONS

    folder = tmp_path / "v1"
    folder.mkdir()
    con = sqlite3.connect(folder / "project.sqlite", isolation_level=None)
    con.execute("BEGIN")
    MIGRATIONS[0](con)
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT INTO jobs (kind, started, status) VALUES ('import', 't', 'done')")
    con.execute("COMMIT")
    con.close()
    with Project.open(folder) as p:
        assert p.schema_version == SCHEMA_VERSION >= 2
        assert [j.kind for j in p.jobs()] == ["import"]
        assert p.sideband == "auto" and p.settings() == {}
        p.set_setting("sideband", "as-given")
    with Project.open(folder) as p:
        assert p.sideband == "as-given"


def test_the_consistency_setting_is_a_bool_and_unset_leaves_it_to_the_model(tmp_path):
    from engine.pipeline.project_screening import project_screening_consistency
    from engine.screening.network import consistency_by_default
    from engine.store.project import SCREENING_CONSISTENCY_SETTING

    p = Project.create(tmp_path / "p")
    try:
        assert p.screening_consistency is None
        assert project_screening_consistency(p) is consistency_by_default("default")  # the shipped card decides
        p.set_setting(SCREENING_CONSISTENCY_SETTING, False)
        assert p.screening_consistency is False and project_screening_consistency(p) is False
        p.set_setting(SCREENING_CONSISTENCY_SETTING, True)
        assert p.screening_consistency is True and project_screening_consistency(p, "published") is True
        with pytest.raises(ValueError, match="true or false"):
            p.set_setting(SCREENING_CONSISTENCY_SETTING, "yes")
        assert p.screening_consistency is True
    finally:
        p.close()
