"""The command line (docs/formats.md §3): help with defaults, ``batch --json``, per-folder logs
with tracebacks, ``--log-level``, the progress bar, the reconstruction options reaching
:class:`engine.pipeline.process.ProcessOptions`, and the message when the 'gui' extra is missing.

The batch tests replace :func:`engine.pipeline.process.process_measurement` with a fake that
records its options (``--workers 1`` runs in this process), so they take about a second.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import pytest

from _folders import make_measurement, meta, process_small
from app import cli
from engine.pipeline import process as process_mod
from engine.pipeline.batch import BatchConsole
from engine.pipeline.process import ProcessOptions

PARSERS = {"odt-studio": cli._gui_parser, "demo": cli._demo_parser, "batch": cli._batch_parser,
           "export": cli._export_parser, "train-screening": cli._train_parser}


# ------------------------------------------------------------------ help
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help_with_its_default(name):
    parser = PARSERS[name]()
    fmt = cli.HelpFormatter(parser.prog)
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        assert action.help, f"{name}: {action.dest} has no help text"
        if not action.option_strings:
            continue  # positional: required, no default
        text = fmt._get_help_string(action) % {"default": action.default}
        assert "default" in text or (action.required and "required" in text), f"{name} {action.option_strings}: {text}"
    help_text = parser.format_help()
    assert "(default: " in help_text or name == "train-screening" and "default" in help_text


def test_batch_help_shows_the_defaults_of_the_new_options():
    text = " ".join(cli._batch_parser().format_help().split())
    for needed in ("--method {rytov,born", "(default: rytov)", "--non-negativity {on,off}", "(default: on)",
                   "--threshold", "(default: 0.5)", "--json", "--log-level", "(default: info)",
                   "(default: model)", "(default: none)", "(default: off)", "logs/<name>.log"):
        assert needed in text, needed


def test_bad_threshold_and_workers_are_refused(capsys):
    with pytest.raises(SystemExit):
        cli._batch_parser().parse_args(["in", "--out", "o", "--threshold", "1.5"])
    with pytest.raises(SystemExit):
        cli._batch_parser().parse_args(["in", "--out", "o", "--workers", "0"])
    assert "must be" in capsys.readouterr().err


# ------------------------------------------------------------------ batch
@pytest.fixture
def fake_processing(monkeypatch):
    """process_measurement replaced: records the ProcessOptions; a folder named bad* raises."""
    seen: list[tuple[str, ProcessOptions]] = []

    def explode_deep_inside(folder):
        raise RuntimeError(f"simulated failure in {folder.name}")

    def fake(folder, out_path, options=ProcessOptions(), **_):
        folder = Path(folder)
        seen.append((folder.name, options))
        logging.getLogger("engine.fake").info("processing %s", folder.name)
        if folder.name.startswith("bad"):
            explode_deep_inside(folder)
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_bytes(b"fake result")
        return type("R", (), {"fields_used": 2, "warnings": [f"{folder.name}: a warning"]})()

    monkeypatch.setattr(process_mod, "process_measurement", fake)
    return seen


@pytest.fixture
def batch_in(tmp_path):
    root = tmp_path / "in"
    for i, name in enumerate(("good_1", "bad_2")):
        make_measurement(root, name, seed=i)
    return root


def test_new_options_reach_process_options(batch_in, tmp_path, fake_processing):
    rc = cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out"), "--screen", "rule",
                   "--method", "born", "--non-negativity", "off", "--threshold", "0.7", "--device", "cpu"])
    assert rc == 1  # bad_2 failed
    assert sorted(n for n, _ in fake_processing) == ["bad_2", "good_1"]
    for _, opts in fake_processing:
        assert (opts.method, opts.non_negativity, opts.threshold, opts.screen, opts.device) == \
            ("born", False, 0.7, "rule", "cpu")
    fake_processing.clear()
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out2")])
    defaults = ProcessOptions()
    assert {(o.method, o.non_negativity, o.threshold) for _, o in fake_processing} == \
        {(defaults.method, defaults.non_negativity, defaults.threshold)}


def test_screen_consistency_reaches_process_options_and_needs_the_model_screen(batch_in, tmp_path, fake_processing,
                                                                               capsys):
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out"), "--screen-consistency"])
    assert {o.screen_consistency for _, o in fake_processing} == {True}
    fake_processing.clear()
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out2")])
    assert {o.screen_consistency for _, o in fake_processing} == {None}  # by default, as the model's card says
    fake_processing.clear()
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out2b"), "--no-screen-consistency"])
    assert {o.screen_consistency for _, o in fake_processing} == {False}
    fake_processing.clear()
    capsys.readouterr()
    assert cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out3"), "--screen", "rule",
                     "--screen-consistency"]) == 2
    assert "--screen-consistency needs --screen model" in capsys.readouterr().err and not fake_processing


def test_json_summary_and_per_folder_logs(batch_in, tmp_path, fake_processing, capsys):
    out = tmp_path / "out"
    rc = cli.main(["batch", str(batch_in), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout holds the JSON and nothing else
    assert rc == doc["exit_code"] == 1
    assert doc["counts"] == {"ok": 1, "failed": 1, "skipped": 0, "cancelled": 0}
    assert doc["summary_csv"] == str(out / "summary.csv")
    items = {it["name"]: it for it in doc["items"]}
    assert items["good_1"]["status"] == "ok" and items["good_1"]["fields_used"] == 2
    assert items["good_1"]["warnings"] == ["good_1: a warning"]
    assert items["bad_2"]["status"] == "failed"
    assert "RuntimeError: simulated failure in bad_2" in items["bad_2"]["error"]

    bad_log = Path(items["bad_2"]["log"])
    assert bad_log == out / "logs" / "bad_2.log"
    text = bad_log.read_text()
    assert "status: failed" in text and "Traceback (most recent call last)" in text
    assert "explode_deep_inside" in text and "RuntimeError: simulated failure in bad_2" in text
    assert "processing bad_2" in text  # the log records of its processing
    assert "method='rytov'" in text  # the options it ran with
    good_log = (out / "logs" / "good_1.log").read_text()
    assert "status: ok" in good_log and "good_1: a warning" in good_log and "Traceback" not in good_log
    assert f"(log: {bad_log})" in captured.err  # the failure line points at the log


def test_run_batch_logs_every_processed_folder_and_keeps_the_log_of_a_skipped_one(tmp_path):
    from engine.pipeline.batch import run_batch

    for i in range(2):
        make_measurement(tmp_path / "in", f"m{i}", seed=i)
    folders = sorted((tmp_path / "in").iterdir())
    logs = tmp_path / "out" / "logs"
    first = run_batch(folders, tmp_path / "out", process_small, log=None, log_dir=logs)
    assert first.ok and sorted(p.name for p in logs.iterdir()) == ["m0.log", "m1.log"]
    assert all(it.log_path == logs / f"{it.name}.log" for it in first.items)
    before = (logs / "m0.log").read_text()
    assert "status: ok" in before and "fields used: 1" in before and "process_small" in before
    again = run_batch(folders, tmp_path / "out", process_small, log=None, log_dir=logs)
    assert [it.status for it in again.items] == ["skipped", "skipped"]
    assert (logs / "m0.log").read_text() == before
    # without log_dir (the default) nothing is written
    run_batch(folders, tmp_path / "out2", process_small, log=None)
    assert not (tmp_path / "out2" / "logs").exists()


def test_worker_processes_send_back_the_traceback_for_the_log(tmp_path):
    from engine.pipeline.batch import run_batch

    make_measurement(tmp_path / "in", "good", seed=0)
    make_measurement(tmp_path / "in", "bad", seed=1, metadata=meta(wavelength_um=None))
    folders = sorted((tmp_path / "in").iterdir())
    logs = tmp_path / "out" / "logs"
    summary = run_batch(folders, tmp_path / "out", process_small, workers=2, log=None, log_dir=logs)
    assert {it.name: it.status for it in summary.items} == {"bad": "failed", "good": "ok"}
    text = (logs / "bad.log").read_text()
    assert "Traceback (most recent call last)" in text and "load_measurement" in text and "wavelength_um" in text


def test_json_when_there_is_nothing_to_do(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and doc["items"] == [] and "no measurement folders" in doc["error"]


def test_log_level_warning_keeps_only_warnings_and_failures(batch_in, tmp_path, fake_processing, capsys):
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out"), "--log-level", "warning"])
    err = capsys.readouterr().err
    assert "bad_2: failed" in err and "warning: good_1: a warning" in err
    assert "good_1: ok" not in err and "measurement folder(s) under" not in err and "done:" not in err
    assert "processing good_1" not in (tmp_path / "out" / "logs" / "good_1.log").read_text()

    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out2"), "--log-level", "debug"])
    err = capsys.readouterr().err
    assert "good_1: ok" in err and "done:" in err
    assert "info: engine.fake: processing good_1" in err
    # the console is gone afterwards: nothing left on the engine logger, its level restored
    assert not [h for h in logging.getLogger("engine").handlers if type(h).__name__ == "_ConsoleHandler"]
    assert logging.getLogger("engine").level == logging.NOTSET


def test_no_progress_bar_when_stderr_is_not_a_terminal(batch_in, tmp_path, fake_processing, capsys):
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "\r" not in err and "folder/s" not in err and "it/s" not in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_with_the_lines_above_it():
    term = _Terminal()
    with BatchConsole("info", stream=term) as console:
        assert console.progress_bar
        console.start(2)
        console.info("[1/2] a: ok")
        console.progress(0.5, "a: ok")
        console.progress(1.0, "b: ok")
        console.stop_bar()
        console.info("done")
    text = term.getvalue()
    assert "batch" in text and "2/2" in text and "[1/2] a: ok" in text
    assert text.rstrip().endswith("done")
    assert not BatchConsole("info", stream=io.StringIO()).progress_bar


# ------------------------------------------------------------------ the GUI without its extra
def test_missing_gui_extra_gives_a_clear_message(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        if name.split(".")[0] in ("PySide6", "vtkmodules"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert cli.missing_gui_packages() == ["PySide6-Essentials", "vtk"]
    assert cli.main([]) == 3
    err = capsys.readouterr().err
    assert 'pip install "odt-studio[gui]"' in err and "PySide6-Essentials, vtk" in err
    assert "odt-studio batch" in err  # what still works


def test_gui_extra_is_installed_here():
    assert cli.missing_gui_packages() == []


def test_birefringence_method_reaches_process_options(batch_in, tmp_path, fake_processing):
    """#20 item 4: ``--birefringence-method`` picks the route (and implies --birefringence); default auto."""
    from engine.pipeline.process import BIREFRINGENCE_METHODS

    assert cli.BIREFRINGENCE_METHODS == BIREFRINGENCE_METHODS
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "a"), "--birefringence-method", "dtt-refined"])
    assert {(o.birefringence, o.birefringence_method) for _, o in fake_processing} == {(True, "dtt-refined")}
    fake_processing.clear()
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "b"), "--birefringence"])
    assert {(o.birefringence, o.birefringence_method) for _, o in fake_processing} == {(True, "auto")}
    fake_processing.clear()
    cli.main(["batch", str(batch_in), "--out", str(tmp_path / "c")])
    assert {(o.birefringence, o.birefringence_method) for _, o in fake_processing} == {(False, "auto")}
    with pytest.raises(SystemExit):
        cli._batch_parser().parse_args(["in", "--out", "o", "--birefringence-method", "magic"])
    assert "--birefringence-method {auto,dtt,dtt-refined,learned}" in " ".join(cli._batch_parser().format_help().split())
