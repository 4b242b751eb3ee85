"""The batch framework: summary.csv, failures isolated, skip/force, local pool, Dask cluster."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from _folders import make_measurement, meta, process_small
from engine.pipeline.batch import (SUMMARY_COLUMNS, read_summary, result_names, run_batch, run_one)
from engine.progress import Cancelled, CancelToken
from engine.store.folders import discover_measurements
from engine.store.results import read_result


def _data(root: Path, n_good: int = 4, bad: bool = True) -> list[Path]:
    for i in range(n_good):
        make_measurement(root, f"m{i:02d}", n=3, seed=i)
    if bad:
        make_measurement(root, "m_bad", n=3, metadata=meta(medium_index="water"))
    return discover_measurements(root)


def process_raises_for_odd(folder: Path, out_path: Path) -> dict:
    if int(folder.name[1:]) % 2:
        raise RuntimeError(f"odd folder {folder.name}")
    return process_small(folder, out_path)


def process_writes_nothing(folder: Path, out_path: Path) -> dict:
    return {"fields_used": 1}


def process_dies_on_m02(folder: Path, out_path: Path) -> dict:
    if folder.name == "m02":
        os.kill(os.getpid(), signal.SIGKILL)  # a worker crash (segfault, OOM killer...)
    return process_small(folder, out_path)


def _rows(out: Path) -> list[dict]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        assert tuple(header) == SUMMARY_COLUMNS
        return [dict(zip(header, row)) for row in r]


def test_batch_writes_results_and_summary_and_goes_on_after_a_bad_folder(tmp_path):
    folders = _data(tmp_path / "in")
    lines, fracs = [], []
    s = run_batch(folders, tmp_path / "out", process_small, log=lines.append,
                  progress=lambda f, m="": fracs.append(f))
    assert (s.n_ok, s.n_failed, s.n_skipped, s.exit_code) == (4, 1, 0, 1)
    rows = _rows(tmp_path / "out")
    assert [r["name"] for r in rows] == ["m00", "m01", "m02", "m03", "m_bad"]
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["failed"]
    assert all(r["fields_used"] == "2" for r in rows[:4]) and rows[4]["fields_used"] == ""
    assert "m_bad" in rows[4]["error"] and "measurement.json" in rows[4]["error"] and "medium_index" in rows[4]["error"]
    assert all(float(r["seconds"]) >= 0 for r in rows)
    assert fracs[-1] == 1.0 and fracs == sorted(fracs)
    assert any("m_bad: failed" in ln for ln in lines)
    r = read_result(tmp_path / "out" / "m02.odt.h5")
    assert r.fields.shape == (3, 8, 8) and json.loads(r.measurement_json)["wavelength_um"] == 0.532
    assert not (tmp_path / "out" / "m_bad.odt.h5").exists()


def test_rerun_skips_finished_and_force_redoes(tmp_path):
    folders = _data(tmp_path / "in", 3, bad=False)
    run_batch(folders, tmp_path / "out", process_small, log=None)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.odt.h5")}
    (tmp_path / "out" / "m01.odt.h5").unlink()
    s = run_batch(folders, tmp_path / "out", process_small, log=None)
    assert [(it.name, it.status) for it in s.items] == [("m00", "skipped"), ("m01", "ok"), ("m02", "skipped")]
    assert s.exit_code == 0
    rows = _rows(tmp_path / "out")
    assert [r["fields_used"] for r in rows] == ["2", "2", "2"]  # kept for skipped rows too
    assert (tmp_path / "out" / "m00.odt.h5").stat().st_mtime_ns == mtimes["m00.odt.h5"]
    s = run_batch(folders, tmp_path / "out", process_small, force=True, log=None)
    assert s.n_ok == 3 and (tmp_path / "out" / "m00.odt.h5").stat().st_mtime_ns != mtimes["m00.odt.h5"]


def test_a_corrupt_existing_result_is_redone(tmp_path):
    folders = _data(tmp_path / "in", 1, bad=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m00.odt.h5").write_bytes(b"garbage")
    s = run_batch(folders, tmp_path / "out", process_small, log=None)
    assert s.items[0].status == "ok" and read_result(tmp_path / "out" / "m00.odt.h5").fields is not None


def test_process_one_exceptions_and_missing_output_are_failures(tmp_path):
    folders = _data(tmp_path / "in", 4, bad=False)
    s = run_batch(folders, tmp_path / "out", process_raises_for_odd, log=None)
    assert [it.status for it in s.items] == ["ok", "failed", "ok", "failed"]
    assert s.items[1].error == "RuntimeError: odd folder m01"
    s = run_batch(folders[:1], tmp_path / "out2", process_writes_nothing, log=None)
    assert s.items[0].status == "failed" and "without writing" in s.items[0].error
    res = run_one(process_raises_for_odd, folders[1], tmp_path / "x.odt.h5")
    assert res["status"] == "failed" and "RuntimeError" in res["traceback"]


def test_two_local_workers_give_the_same_results(tmp_path):
    folders = _data(tmp_path / "in", 6)
    a = run_batch(folders, tmp_path / "a", process_small, workers=1, log=None)
    b = run_batch(folders, tmp_path / "b", functools.partial(process_small), workers=2, max_in_flight=3, log=None)
    assert b.where == "local (2 processes)"
    assert [(i.name, i.status, i.fields_used) for i in a.items] == [(i.name, i.status, i.fields_used) for i in b.items]
    for it in a.items[:6]:
        np.testing.assert_array_equal(read_result(it.out_path).fields, read_result(b.out_dir / it.out_path.name).fields)
    assert [r["name"] for r in read_summary(tmp_path / "b" / "summary.csv")] == [i.name for i in a.items]


def process_dies_on_m02_and_m04(folder: Path, out_path: Path) -> dict:
    if folder.name in ("m02", "m04"):
        os.kill(os.getpid(), signal.SIGKILL)
    return process_small(folder, out_path)


@pytest.mark.parametrize("workers, max_in_flight", [(2, 2), (2, 4), (3, 6)])
def test_a_dying_worker_process_fails_its_folder_and_only_its_folder(tmp_path, workers, max_in_flight):
    folders = _data(tmp_path / "in", 6, bad=False)
    s = run_batch(folders, tmp_path / "out", process_dies_on_m02, workers=workers, max_in_flight=max_in_flight,
                  log=None)
    assert s.items[2].status == "failed" and "worker process died" in s.items[2].error
    assert "ran alone" in s.items[2].error
    # the folders that shared the dead pool ran again on a fresh one: none is blamed for m02's crash
    assert [it.status for i, it in enumerate(s.items) if i != 2] == ["ok"] * 5
    assert (s.n_ok, s.n_failed, s.exit_code) == (5, 1, 1)
    rows = _rows(tmp_path / "out")
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok", "ok", "ok"]


def test_two_crashing_folders_fail_and_the_rest_finish(tmp_path):
    folders = _data(tmp_path / "in", 6, bad=False)
    s = run_batch(folders, tmp_path / "out", process_dies_on_m02_and_m04, workers=2, max_in_flight=4, log=None)
    assert [it.status for it in s.items] == ["ok", "ok", "failed", "ok", "failed", "ok"]
    assert all("worker process died" in s.items[i].error for i in (2, 4))


def test_unpicklable_process_one_is_refused_for_a_pool(tmp_path):
    folders = _data(tmp_path / "in", 1, bad=False)
    with pytest.raises(TypeError, match="picklable"):
        run_batch(folders, tmp_path / "out", lambda f, o: process_small(f, o), workers=2, log=None)
    s = run_batch(folders, tmp_path / "out", lambda f, o: process_small(f, o), workers=1, log=None)
    assert s.exit_code == 0


def test_cancel_stops_and_still_writes_the_summary(tmp_path):
    folders = _data(tmp_path / "in", 5, bad=False)
    token = CancelToken()

    def progress(frac, msg=""):
        if frac >= 0.4:
            token.cancel()

    with pytest.raises(Cancelled):
        run_batch(folders, tmp_path / "out", process_small, progress=progress, cancel=token, log=None)
    rows = _rows(tmp_path / "out")
    assert [r["status"] for r in rows] == ["ok", "ok", "cancelled", "cancelled", "cancelled"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.odt.h5")) == ["m00.odt.h5", "m01.odt.h5"]


def test_duplicate_folder_names_get_distinct_results(tmp_path):
    a = make_measurement(tmp_path / "d1", "cell")
    b = make_measurement(tmp_path / "d2", "cell")
    assert result_names([a, b, a]) == ["cell", "cell_2", "cell_3"]
    s = run_batch([a, b], tmp_path / "out", process_small, log=None)
    assert [it.out_path.name for it in s.items] == ["cell.odt.h5", "cell_2.odt.h5"] and s.exit_code == 0


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results_as_the_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    folders = _data(tmp_path / "in", 6)
    local = run_batch(folders, tmp_path / "local", process_small, workers=1, log=None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, protocol="tcp") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert len(cluster.workers) == 2
        assert all(w.worker_address.startswith("tcp://127.0.0.1:") for w in cluster.workers.values())
        lines = []
        dask = run_batch(folders, tmp_path / "dask", process_small, scheduler=cluster.scheduler_address,
                         log=lines.append, log_dir=tmp_path / "dask" / "logs")
    assert dask.where.startswith("dask tcp://127.0.0.1") and "(2 threads)" in dask.where
    assert [(i.name, i.status, i.fields_used) for i in local.items] == \
        [(i.name, i.status, i.fields_used) for i in dask.items]
    assert "medium_index" in dask.items[-1].error
    # the worker's traceback reaches the failed folder's log (written by the client)
    assert "Traceback (most recent call last)" in dask.items[-1].log_path.read_text()
    assert len(list((tmp_path / "dask" / "logs").glob("*.log"))) == 7
    for it in local.items[:6]:
        a, b = read_result(it.out_path), read_result(tmp_path / "dask" / it.out_path.name)
        np.testing.assert_array_equal(a.fields, b.fields)
        np.testing.assert_array_equal(a.screening.decision, b.screening.decision)
    assert [r["status"] for r in read_summary(tmp_path / "dask" / "summary.csv")] == ["ok"] * 6 + ["failed"]


# ---------------------------------------------------------------------------- a pool that breaks under load
class _BreakingPool:
    """Stand-in for ProcessPoolExecutor: pool 1 breaks (a worker died) as ``breaks`` says."""

    made: list["_BreakingPool"] = []
    breaks = "after-first"

    def __init__(self, max_workers, mp_context=None):
        self.calls = 0
        self.first = not _BreakingPool.made
        _BreakingPool.made.append(self)

    def submit(self, fn, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool

        self.calls += 1
        if self.first and (self.breaks == "at-once" or self.calls == 2):
            raise BrokenProcessPool("a child process terminated abruptly")
        fut: Future = Future()
        if self.first:  # the task whose worker died
            fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        else:
            fut.set_result(fn(*args))
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


@pytest.mark.parametrize("breaks", ["after-first", "at-once"])
def test_a_pool_that_refuses_submission_after_a_worker_died_is_replaced(tmp_path, monkeypatch, breaks):
    """Under load a worker can die before any finished future says so; submit() then raises."""
    import engine.pipeline.batch as batch

    monkeypatch.setattr(batch, "ProcessPoolExecutor", _BreakingPool)
    monkeypatch.setattr(_BreakingPool, "made", [])
    monkeypatch.setattr(_BreakingPool, "breaks", breaks)
    folders = [make_measurement(tmp_path / "in", f"m{i}", n=2, seed=i) for i in range(4)]
    s = run_batch(folders, tmp_path / "out", process_small, workers=2, max_in_flight=2, log=None,
                  mp_context=object())
    assert len(_BreakingPool.made) == 2
    # pool 1 broke, not a folder: m0, lost with it ("after-first"), ran again alone on pool 2 and succeeded
    assert [it.status for it in s.items] == ["ok"] * 4
