"""Processes killed with SIGKILL lose nothing: no corrupt result file, batches resume,
overrides committed before the kill are there on reopening."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from _folders import make_measurement, process_small
from engine.pipeline.batch import read_summary, run_batch
from engine.store.folders import discover_measurements
from engine.store.project import Project
from engine.store.results import read_result, remove_stale_temporaries

HERE = Path(__file__).resolve().parent
ENGINE_TESTS = HERE.parent / "engine"
ROOT = HERE.parents[1]


def _spawn(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ENGINE_TESTS)]))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _wait_for(pred, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_in_the_middle_of_a_batch_then_resume(tmp_path, workers):
    n = 24
    for i in range(n):
        make_measurement(tmp_path / "in", f"m{i:03d}", n=2, seed=i)
    out = tmp_path / "out"
    proc = _spawn(f"""
        import functools
        from _folders import process_slow
        from engine.pipeline.batch import run_batch
        from engine.store.folders import discover_measurements
        folders = discover_measurements({str(tmp_path / 'in')!r})
        run_batch(folders, {str(out)!r}, functools.partial(process_slow, delay=0.1), workers={workers}, log=None)
    """)
    try:
        _wait_for(lambda: len(list(out.glob("*.odt.h5"))) >= 4 or proc.poll() is not None)
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    done_before = sorted(p.name for p in out.glob("*.odt.h5"))
    assert 4 <= len(done_before) < n
    for p in out.glob("*.odt.h5"):  # every result that exists is complete
        r = read_result(p)
        assert r.fields.shape == (2, 8, 8) and r.screening.decision.shape == (2,)
    # summary.csv, if already written, is a whole CSV file
    rows = read_summary(out / "summary.csv")
    assert all(set(r) == {"name", "status", "error", "fields_used", "seconds"} for r in rows)

    lines = []
    s = run_batch(discover_measurements(tmp_path / "in"), out, process_small, log=lines.append)
    assert s.exit_code == 0
    skipped = sorted(f"{it.name}.odt.h5" for it in s.items if it.status == "skipped")
    assert skipped == done_before
    assert s.n_ok == n - len(done_before)
    assert [r["status"] in ("ok", "skipped") for r in read_summary(out / "summary.csv")] == [True] * n
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # stale temporaries cleaned up


def test_sigkill_while_writing_a_large_result_never_leaves_a_partial_file(tmp_path):
    target = tmp_path / "big.odt.h5"
    proc = _spawn(f"""
        import numpy as np, sys
        from engine.store.results import write_result
        field = np.ones((40, 256, 256), np.complex64)   # 21 MB per write
        k = 0
        while True:
            k += 1
            field[0, 0, 0] = k
            write_result({str(target)!r}, measurement_json='{{"k": %d}}' % k, fields=field)
            print(k, flush=True)
    """)
    try:
        _wait_for(lambda: target.exists() or proc.poll() is not None)
        time.sleep(0.37)  # somewhere in the middle of a later write
    finally:
        _kill_group(proc)
    written = [int(x) for x in proc.stdout.read().split()]
    r = read_result(target)
    k = int(r.measurement_json.split(":")[1].strip(" }"))
    assert r.fields.shape == (40, 256, 256) and r.fields[0, 0, 0] == k
    assert k in (written[-1], written[-1] + 1) if written else k == 1
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert remove_stale_temporaries(tmp_path) == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.odt.h5"]


def test_override_survives_a_sigkill_right_after_it_was_made(tmp_path):
    folder = make_measurement(tmp_path / "data", "cell", n=5)
    with Project.create(tmp_path / "proj") as p:
        mid = p.add_measurement(folder)
        p.add_screening(mid, [1, 1, 0, 1, 1], score=[0.1, 0.2, 0.9, 0.3, 0.1], model_name="cnn", model_version="1")
        # keep this connection open: the killed writer shares the WAL with a live reader
        proc = _spawn(f"""
            import os, signal
            from engine.store.project import Project
            p = Project.open({str(tmp_path / 'proj')!r})
            p.set_override({mid}, 2, 1, user="tech", reason="fringe is dust on the lens")
            p.set_override({mid}, 4, 0, user="tech")
            os.kill(os.getpid(), signal.SIGKILL)   # no close, no cleanup
        """)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        dec, src = p.decisions(mid)
        np.testing.assert_array_equal(dec, [1, 1, 1, 1, 0])
    with Project.open(tmp_path / "proj") as q:
        dec, src = q.decisions(mid)
        np.testing.assert_array_equal(dec, [1, 1, 1, 1, 0])
        np.testing.assert_array_equal(src, [0, 0, 2, 0, 2])
        hist = q.override_history(mid)
        assert [(h.field_index, h.old_decision, h.new_decision, h.user) for h in hist] == [
            (2, 0, 1, "tech"), (4, 1, 0, "tech")]
        assert hist[0].reason == "fringe is dust on the lens"
        assert q._connect().execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_override_survives_when_killed_from_outside(tmp_path):
    folder = make_measurement(tmp_path / "data", "cell", n=3)
    with Project.create(tmp_path / "proj") as p:
        mid = p.add_measurement(folder)
    proc = _spawn(f"""
        import sys, time
        from engine.store.project import Project
        p = Project.open({str(tmp_path / 'proj')!r})
        p.set_override({mid}, 1, 0, user="tech")
        print("committed", flush=True)
        time.sleep(60)
    """)
    try:
        assert proc.stdout.readline().strip() == "committed"
    finally:
        _kill_group(proc)
    with Project.open(tmp_path / "proj") as q:
        dec, src = q.decisions(mid)
        np.testing.assert_array_equal(dec, [1, 0, 1])
        assert src[1] == 2 and len(q.override_history(mid)) == 1
