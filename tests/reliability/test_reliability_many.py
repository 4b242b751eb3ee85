"""Several hundred small folders: import, catalogue and batch lose none; submissions stay bounded."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest

from _folders import make_measurement, meta, process_small
from engine.pipeline import batch as batch_mod
from engine.pipeline.batch import read_summary, run_batch
from engine.store.folders import discover_measurements, inspect_measurement
from engine.store.project import Project

N_FOLDERS = 300
BAD = {17, 150, 299}


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    for i in range(N_FOLDERS):
        md = meta(wavelength_um=None) if i in BAD else None
        make_measurement(root / f"plate{i // 100}", f"well_{i}", n=2, shape=(8, 8), seed=i,
                         form="multipage" if i % 3 else "tif", metadata=md)
    return root


def test_discover_inspect_and_catalogue_several_hundred(many, tmp_path):
    folders = discover_measurements(many)
    assert len(folders) == N_FOLDERS
    # natural order: well_2 before well_10 within a plate
    assert [f.name for f in folders[:3]] == ["well_0", "well_1", "well_2"] and folders[10].name == "well_10"
    infos = [inspect_measurement(f) for f in folders]
    bad = {int(i.name.split("_")[1]) for i in infos if not i.valid}
    assert bad == BAD
    assert all(i.n_images == 2 and i.image_shape == (8, 8) for i in infos if i.valid)
    with Project.create(tmp_path / "proj") as p:
        ids = [p.add_measurement(f, info=i) for f, i in zip(folders, infos)]
        assert len(set(ids)) == N_FOLDERS
        assert [p.add_measurement(f) for f in folders[:20]] == ids[:20]  # re-import: same ids
        recs = p.list_measurements()
        assert len(recs) == N_FOLDERS and sum(r.status == "invalid" for r in recs) == len(BAD)


@pytest.mark.slow
def test_batch_of_several_hundred_folders(many, tmp_path):
    folders = discover_measurements(many)
    s = run_batch(folders, tmp_path / "out", process_small, workers=1, log=None)
    assert (s.n_ok, s.n_failed) == (N_FOLDERS - len(BAD), len(BAD)) and s.exit_code == 1
    rows = read_summary(tmp_path / "out" / "summary.csv")
    assert [r["name"] for r in rows] == [f.name for f in folders]
    assert {int(r["name"].split("_")[1]) for r in rows if r["status"] == "failed"} == BAD
    assert len(list((tmp_path / "out").glob("*.odt.h5"))) == N_FOLDERS - len(BAD)
    again = run_batch(folders, tmp_path / "out", process_small, workers=1, log=None)
    assert again.n_skipped == N_FOLDERS - len(BAD) and again.n_ok == 0 and again.n_failed == len(BAD)


class _CountingPool(ProcessPoolExecutor):
    """Records the most futures ever outstanding at once."""

    outstanding = 0
    peak = 0

    def submit(self, *a, **k):
        fut = super().submit(*a, **k)
        cls = type(self)
        cls.outstanding += 1
        cls.peak = max(cls.peak, cls.outstanding)

        def done(_):
            cls.outstanding -= 1

        fut.add_done_callback(done)
        return fut


def test_local_pool_keeps_submissions_bounded(many, tmp_path, monkeypatch):
    folders = discover_measurements(many)[:60]
    monkeypatch.setattr(batch_mod, "ProcessPoolExecutor", _CountingPool)
    _CountingPool.outstanding = _CountingPool.peak = 0
    s = run_batch(folders, tmp_path / "out", process_small, workers=2, log=None)
    assert s.n_ok + s.n_failed == 60
    assert 2 <= _CountingPool.peak <= 4  # 2 × workers, whatever the number of folders
