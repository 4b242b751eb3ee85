"""Batch processing: map one per-measurement function over many folders.

:func:`run_batch` is generic over ``process_one(folder, out_path) -> dict``, a picklable
(module-level or :func:`functools.partial`) function that processes one measurement
folder and writes ``out_path`` (``<out_dir>/<name>.odt.h5``, normally with
:func:`engine.store.results.write_result`, which writes atomically). It runs

* in this process (``workers=1``),
* on a local :class:`concurrent.futures.ProcessPoolExecutor` (``workers > 1``), or
* on a Dask distributed cluster (``scheduler`` = an address such as ``"tcp://host:8786"``,
  or a ``distributed.Client``); the workers then write to ``out_dir``, which must be a
  folder they all see (a shared file system).

Whatever the number of folders, at most ``2 × workers`` tasks are submitted at a time, so
memory stays bounded. A folder that fails (any exception in ``process_one``, or a worker
process that dies) is reported with status ``"failed"`` and its error, and the batch goes
on. ``<out_dir>/summary.csv`` (``docs/formats.md`` §3: name, status, error, fields_used,
seconds) is rewritten atomically as results come in. Re-running the batch skips folders
whose result file exists and is a complete ``odt-result/1`` file (status ``"skipped"``)
unless ``force=True``; because result files are only ever renamed into place, a batch
killed with SIGKILL leaves no corrupt result and simply resumes. Folders known to be
unprocessable beforehand (``unprocessable``: e.g. images without ``measurement.json``) get a
``"failed"`` row too, so every folder that looks like a measurement is accounted for.

With ``log_dir`` (``odt-studio batch`` passes ``<out_dir>/logs``), every folder processed gets
``<log_dir>/<name>.log``: what happened, its warnings, the log records its processing emitted
and, for a failure, the full traceback (``docs/formats.md`` §3). :class:`BatchConsole` prints
the batch's lines to a terminal at a chosen level, with a progress bar when stderr is one.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import multiprocessing
import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ..progress import Cancelled, CancelToken, check_cancel, report
from ..store.results import RESULT_SUFFIX, is_complete_result, remove_stale_temporaries, temporary_prefix

__all__ = [
    "SUMMARY_COLUMNS",
    "STATUS_OK",
    "STATUS_FAILED",
    "STATUS_SKIPPED",
    "STATUS_CANCELLED",
    "BatchItem",
    "BatchSummary",
    "BatchConsole",
    "run_batch",
    "run_one",
    "result_names",
    "read_summary",
]

SUMMARY_NAME = "summary.csv"
LOG_DIR_NAME = "logs"
LOG_LEVELS = ("debug", "info", "warning", "error")
SUMMARY_COLUMNS = ("name", "status", "error", "fields_used", "seconds")
STATUS_OK, STATUS_FAILED, STATUS_SKIPPED, STATUS_CANCELLED = "ok", "failed", "skipped", "cancelled"
_PENDING = "pending"


@dataclass
class BatchItem:
    """One folder of a batch and what became of it.

    Attributes
    ----------
    name : str
        Result name: the folder's name (made unique with ``_2``, ``_3``... if two folders
        share a name).
    folder : Path
    out_path : Path
        ``<out_dir>/<name>.odt.h5``.
    status : str
        "ok", "failed", "skipped", "cancelled" (or "pending" while running).
    error : str
        One-line error message for "failed".
    fields_used : int or None
        From ``process_one``'s returned dict (key ``fields_used``).
    seconds : float
        Wall time of ``process_one`` on its worker.
    info : dict
        Everything ``process_one`` returned.
    traceback : str
        Full traceback of a failure ("" otherwise).
    log_path : Path or None
        The folder's log file (``run_batch(log_dir=...)``), when one was written.
    """

    name: str
    folder: Path
    out_path: Path
    status: str = _PENDING
    error: str = ""
    fields_used: Optional[int] = None
    seconds: float = 0.0
    info: dict = field(default_factory=dict)
    traceback: str = ""
    log_path: Optional[Path] = None

    def as_dict(self) -> dict:
        """JSON-ready record (``odt-studio batch --json``)."""
        return {"name": self.name, "folder": str(self.folder), "result": str(self.out_path),
                "status": self.status, "error": self.error, "fields_used": self.fields_used,
                "seconds": round(self.seconds, 3), "warnings": [str(w) for w in self.info.get("warnings") or ()],
                "log": str(self.log_path) if self.log_path is not None else None}


@dataclass
class BatchSummary:
    """The outcome of :func:`run_batch`."""

    items: list[BatchItem]
    out_dir: Path
    summary_csv: Path
    seconds: float
    where: str  # "local (1 process)", "local (4 processes)" or "dask tcp://..."

    def count(self, status: str) -> int:
        return sum(1 for it in self.items if it.status == status)

    @property
    def n_ok(self) -> int:
        return self.count(STATUS_OK)

    @property
    def n_failed(self) -> int:
        return self.count(STATUS_FAILED)

    @property
    def n_skipped(self) -> int:
        return self.count(STATUS_SKIPPED)

    @property
    def ok(self) -> bool:
        """True if no folder failed or was cancelled."""
        return all(it.status in (STATUS_OK, STATUS_SKIPPED) for it in self.items)

    @property
    def exit_code(self) -> int:
        """0 if every folder succeeded (or was already done), else 1 (for ``odt-studio batch``)."""
        return 0 if self.ok else 1

    def failed(self) -> list[BatchItem]:
        return [it for it in self.items if it.status == STATUS_FAILED]

    def as_dict(self) -> dict:
        """JSON-ready summary (``odt-studio batch --json``, ``docs/formats.md`` §3)."""
        return {"out_dir": str(self.out_dir), "summary_csv": str(self.summary_csv),
                "seconds": round(self.seconds, 3), "where": self.where,
                "counts": {s: self.count(s) for s in (STATUS_OK, STATUS_FAILED, STATUS_SKIPPED, STATUS_CANCELLED)},
                "exit_code": self.exit_code, "items": [it.as_dict() for it in self.items]}


# ---------------------------------------------------------------------------- worker side
def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ThreadRecords(logging.Handler):
    """Collects the formatted log records of one thread (a Dask worker runs tasks in threads)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.lines.append(self.format(record))
            except Exception:  # a bad record must not fail the folder
                self.lines.append(f"{record.levelname} {record.name}: {record.msg!r}")


_capture_lock = threading.Lock()
_capture_state = {"count": 0, "root_level": logging.WARNING}


def _begin_capture(handler: _ThreadRecords) -> None:
    """Attach ``handler`` to the root logger, lowering its level while any capture runs
    (Dask runs several tasks at once in threads: the first one saves the level, the last one restores it)."""
    root = logging.getLogger()
    with _capture_lock:
        if _capture_state["count"] == 0:
            _capture_state["root_level"] = root.level
        _capture_state["count"] += 1
        root.addHandler(handler)
        if root.level > handler.level:
            root.setLevel(handler.level)


def _end_capture(handler: _ThreadRecords) -> None:
    root = logging.getLogger()
    with _capture_lock:
        root.removeHandler(handler)
        _capture_state["count"] -= 1
        if _capture_state["count"] == 0:
            root.setLevel(_capture_state["root_level"])


def _level(level: int | str | None) -> Optional[int]:
    if level is None or isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LOG_LEVELS)})")
    return value


def run_one(process_one: Callable[[Path, Path], dict], folder: str | Path, out_path: str | Path,
            log_level: int | str | None = None) -> dict:
    """Run ``process_one(folder, out_path)`` and never raise (runs on the worker).

    With ``log_level``, the :mod:`logging` records that this thread emits at that level or above
    while ``process_one`` runs are returned as ``log`` (lines), for the folder's log file.

    Returns
    -------
    dict
        ``status`` ("ok" or "failed"), ``error`` (one line), ``traceback``, ``seconds``,
        ``info`` (the dict ``process_one`` returned) and ``log``.
    """
    t0 = time.perf_counter()
    folder, out_path = Path(folder), Path(out_path)
    level = _level(log_level)
    records = _ThreadRecords(level) if level is not None else None
    if records is not None:
        _begin_capture(records)
    try:
        info = process_one(folder, out_path)
        info = dict(info) if info else {}
        if not out_path.is_file():
            raise RuntimeError(f"process_one returned without writing '{out_path}'")
        res = {"status": STATUS_OK, "error": "", "traceback": "", "seconds": time.perf_counter() - t0, "info": info}
    except Exception as e:  # a bad folder must not stop the batch
        msg = str(e) if isinstance(e, ValueError) and str(folder) in str(e) else f"{type(e).__name__}: {e}"
        res = {"status": STATUS_FAILED, "error": _one_line(msg), "traceback": traceback.format_exc(),
               "seconds": time.perf_counter() - t0, "info": {}}
    finally:
        if records is not None:
            _end_capture(records)
    res["log"] = records.lines if records is not None else []
    return res


def _options_text(process_one: Callable) -> str:
    """The keyword options of a ``functools.partial`` process function, for the folder log."""
    parts: list[str] = []
    func = process_one
    while isinstance(func, functools.partial):
        parts = [f"{k}={v!r}" for k, v in func.keywords.items()] + parts
        func = func.func
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    return f"{name}({', '.join(parts)})"


def write_folder_log(path: Path, item: BatchItem, *, options: str = "", log_lines: Iterable[str] = ()) -> Path:
    """Write one folder's log file (what happened; warnings; log records; the traceback)."""
    out = [f"odt-studio batch: {item.name}",
           f"time: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
           f"folder: {item.folder}",
           f"result: {item.out_path}",
           f"status: {item.status}",
           f"seconds: {item.seconds:.3f}"]
    if item.fields_used is not None:
        out.append(f"fields used: {item.fields_used}")
    if options:
        out.append(f"processing: {options}")
    if item.error:
        out.append(f"error: {item.error}")
    warnings = list(item.info.get("warnings") or ())
    if warnings:
        out += ["", "warnings:"] + [f"  {w}" for w in warnings]
    lines = list(log_lines)
    if lines:
        out += ["", "log:"] + [f"  {line}" for line in lines]
    if item.traceback:
        out += ["", "traceback:", item.traceback.rstrip()]
    elif item.status == STATUS_FAILED:
        out += ["", "traceback: none (the folder was not processed, or its worker process died; see error)"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------- terminal
class _ConsoleHandler(logging.Handler):
    def __init__(self, console: "BatchConsole") -> None:
        super().__init__()
        self.console = console

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.name == BatchConsole.LOGGER:
            return msg  # the batch's own lines, as they always were
        return f"{record.levelname.lower()}: {record.name}: {msg}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.write(self.format(record))
        except Exception:
            self.handleError(record)


class BatchConsole:
    """The terminal side of ``odt-studio batch``.

    While open, the records of the ``engine`` loggers at ``level`` or above — the batch's own
    lines (``[k/n] name: status``, ``warning: ...``) and whatever the engine logs — are printed
    to ``stream`` (default stderr). With ``progress_bar`` (default: when ``stream`` is a
    terminal) a tqdm bar of the folders done stays under those lines. Use as a context manager;
    :attr:`logger` goes to :func:`run_batch`'s ``logger`` and :meth:`progress` to its
    ``progress``.
    """

    LOGGER = "engine.pipeline.batch"

    def __init__(self, level: int | str = "info", *, progress_bar: Optional[bool] = None, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.level = _level(level)
        if progress_bar is None:
            isatty = getattr(self.stream, "isatty", None)
            progress_bar = bool(isatty()) if callable(isatty) else False
        self.progress_bar = progress_bar
        self.bar: Any = None
        self.logger = logging.getLogger(self.LOGGER)
        self._handler = _ConsoleHandler(self)
        self._engine = logging.getLogger("engine")
        self._engine_level = self._engine.level
        self._open = False

    def __enter__(self) -> "BatchConsole":
        self._handler.setLevel(self.level or logging.INFO)
        self._engine.addHandler(self._handler)
        self._engine.setLevel(self.level or logging.INFO)
        self._open = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stop_bar(self) -> None:
        """Close the progress bar (lines printed from now on come after it)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.stop_bar()
        if self._open:
            self._engine.removeHandler(self._handler)
            self._engine.setLevel(self._engine_level)
            self._open = False

    def start(self, total: int) -> None:
        """Show the progress bar for ``total`` folders (if there is to be one)."""
        if self.progress_bar and total > 0 and self.bar is None:
            import shutil

            from tqdm import tqdm

            # the size from shutil (COLUMNS/LINES, else the terminal's, else 80x24): tqdm's own
            # query gives 0x0 on a terminal that reports no size, and then it hides the bar
            size = shutil.get_terminal_size()
            self.bar = tqdm(total=total, file=self.stream, unit="folder", desc="batch",
                            ncols=max(40, min(size.columns, 120)), nrows=max(size.lines, 2))

    def progress(self, fraction: float, message: str = "") -> None:
        """A :mod:`engine.progress` callback that moves the bar."""
        if self.bar is None:
            return
        n = min(self.bar.total, max(0, int(round(fraction * self.bar.total))))
        if n > self.bar.n:
            self.bar.update(n - self.bar.n)
        if message:
            self.bar.set_postfix_str(message[:60])

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def info(self, line: str) -> None:
        self.logger.info(line)

    def warning(self, line: str) -> None:
        self.logger.warning(line)

    def error(self, line: str) -> None:
        self.logger.error(line)


# ---------------------------------------------------------------------------- summary.csv
def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _write_summary(path: Path, items: list[BatchItem]) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SUMMARY_COLUMNS)
    for it in items:
        if it.status != _PENDING:
            w.writerow([it.name, it.status, it.error, _cell(it.fields_used), _cell(round(it.seconds, 3))])
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_summary(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``summary.csv`` as dicts keyed by :data:`SUMMARY_COLUMNS` ([] if missing)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------- helpers
def result_names(folders: Iterable[Path]) -> list[str]:
    """Result names: each folder's name, made unique with ``_2``, ``_3``... in order."""
    seen: dict[str, int] = {}
    taken: set[str] = set()
    names = []
    for f in folders:
        base = Path(f).name
        name, k = base, seen.get(base, 1)
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        seen[base] = k
        taken.add(name)
        names.append(name)
    return names


def _fields_used_from_result(path: Path, previous: Optional[dict]) -> Optional[int]:
    if previous and previous.get("fields_used", "").strip().isdigit():
        return int(previous["fields_used"])
    try:
        import h5py

        with h5py.File(path, "r") as f:
            if "screening/decision" in f:
                return int(f["screening/decision"][()].sum())
            if "fields/field" in f:
                return int(f["fields/field"].shape[0])
    except Exception:
        pass
    return None


def _default_mp_context(process_one: Callable) -> multiprocessing.context.BaseContext:
    """forkserver on Linux (fork is unsafe once threads exist: GUI, BLAS, torch), else spawn.

    The fork server imports the heavy modules once (numpy, h5py, the store, and the module
    that defines ``process_one``), so each worker starts as a cheap fork instead of
    re-importing them. This only takes effect if the fork server is not running yet.
    """
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    func = process_one
    while isinstance(func, functools.partial):
        func = func.func
    modules = ["numpy", "h5py", "tifffile", "engine.store.folders", "engine.store.results", "engine.pipeline.batch"]
    mod = getattr(func, "__module__", None)
    if mod and mod != "__main__" and mod in sys.modules:
        modules.append(mod)
    ctx.set_forkserver_preload(modules)
    return ctx


# ---------------------------------------------------------------------------- the batch
def run_batch(folders: Iterable[str | Path], out_dir: str | Path, process_one: Callable[[Path, Path], dict], *,
              workers: int = 1, scheduler: Any = None, force: bool = False,
              progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None,
              log: Optional[Callable[[str], None]] = print, max_in_flight: Optional[int] = None,
              mp_context: Any = None, unprocessable: Iterable[tuple[str | Path, str]] = (),
              log_dir: Optional[str | Path] = None, log_level: int | str = "info",
              logger: Optional[logging.Logger] = None) -> BatchSummary:
    """Process every folder to ``<out_dir>/<name>.odt.h5`` and write ``summary.csv``.

    Parameters
    ----------
    folders : iterable of path
        Measurement folders (e.g. from :func:`engine.store.folders.discover_measurements`).
    out_dir : path
        Output folder (created if missing). With a Dask scheduler it must be reachable by
        the workers under the same path.
    process_one : callable ``(folder: Path, out_path: Path) -> dict``
        Processes one folder and writes ``out_path``; returns a dict (``fields_used``, ...).
        Must be picklable (a module-level function or a ``functools.partial`` of one).
    workers : int
        Local worker processes; 1 runs everything in this process.
    scheduler : str or distributed.Client, optional
        Dask scheduler address (or a connected client): run on that cluster instead.
    force : bool
        Re-process folders whose complete result already exists.
    progress, cancel
        See :mod:`engine.progress`. On cancel, no new folder is started, the running ones
        finish, ``summary.csv`` is written and :class:`engine.progress.Cancelled` is raised.
    log : callable or None
        Receives one line per finished folder (default ``print``).
    max_in_flight : int, optional
        Most tasks submitted at once (default 2 × workers, or 2 × the cluster's threads).
    mp_context : multiprocessing context, optional
        For the local pool (default forkserver on Linux, spawn elsewhere).
    unprocessable : iterable of ``(folder, error)``
        Folders known to be unprocessable before the batch starts (e.g. a folder of images
        without ``measurement.json``, from the ``on_unrecognised`` callback of
        :func:`engine.store.folders.discover_measurements`). Each gets a ``"failed"`` row with
        its error in ``summary.csv`` and a log line, is never handed to ``process_one`` and
        makes the exit code 1; its name is made unique together with ``folders``.
    log_dir : path, optional
        Write ``<log_dir>/<name>.log`` for every folder that is processed or rejected (not for
        skipped ones, whose earlier log stays): status, error, warnings, the log records of its
        processing at ``log_level`` or above and, for a failure, the full traceback.
    log_level : {"debug", "info", "warning", "error"} or int
        Least level of the log records kept in the folder logs.
    logger : logging.Logger, optional
        Send the batch's lines there instead of to ``log``: a failed folder as an error,
        warnings as warnings, the rest as info.

    Returns
    -------
    BatchSummary
        ``exit_code`` is 0 only if every folder succeeded or was skipped.
    """
    t_start = time.perf_counter()
    record_level = _level(log_level) if log_dir is not None else None
    if workers > 1 and scheduler is None:
        _check_picklable(process_one, workers)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    say = functools.partial(_say, logger, log)
    paths = [Path(f) for f in folders]
    rejected = [(Path(f), str(err)) for f, err in unprocessable]
    summary_csv = out_dir / SUMMARY_NAME
    previous = {row.get("name", ""): row for row in read_summary(summary_csv)}
    stale = remove_stale_temporaries(out_dir)
    if stale:
        say(f"removed {len(stale)} temporary file(s) left by an interrupted run")

    all_folders = paths + [f for f, _ in rejected]
    items = [BatchItem(name, folder, out_dir / f"{name}{RESULT_SUFFIX}")
             for name, folder in zip(result_names(all_folders), all_folders)]
    rejected_items = items[len(paths):]
    rec = _Recorder(items, summary_csv, say, progress, Path(log_dir) if log_dir is not None else None,
                    _options_text(process_one) if log_dir is not None else "")
    finish, handle, flush_summary = rec.finish, rec.handle, rec.flush
    # folders that cannot be processed at all: a failed row each, never processed or skipped
    for it, (_, err) in zip(rejected_items, rejected):
        finish(it, STATUS_FAILED, _one_line(err))
    # already finished folders
    todo: list[BatchItem] = []
    for it in items[:len(paths)]:
        if not force and is_complete_result(it.out_path):
            it.fields_used = _fields_used_from_result(it.out_path, previous.get(it.name))
            finish(it, STATUS_SKIPPED)
        else:
            todo.append(it)

    cancelled = False
    where = "local (1 process)"
    try:
        if scheduler is not None:
            where, cancelled = _run_dask(todo, process_one, scheduler, max_in_flight, handle, finish, cancel,
                                         record_level)
        elif workers <= 1:
            cancelled = _run_here(todo, process_one, handle, cancel, record_level)
        else:
            where = f"local ({workers} processes)"
            cancelled = _run_pool(todo, process_one, workers, max_in_flight or 2 * workers,
                                  mp_context or _default_mp_context(process_one), handle, finish, cancel,
                                  record_level)
    finally:
        for it in items:
            if it.status == _PENDING:
                it.status = STATUS_CANCELLED
        flush_summary(final=True)
    summary = BatchSummary(items, out_dir, summary_csv, time.perf_counter() - t_start, where)
    say(f"batch done in {summary.seconds:.1f} s on {where}: {summary.n_ok} ok, {summary.n_failed} failed, "
        f"{summary.n_skipped} skipped" + (f", {summary.count(STATUS_CANCELLED)} cancelled" if cancelled else ""),
        logging.INFO)
    if cancelled:
        check_cancel(cancel)
        raise Cancelled("batch cancelled")
    return summary


def _check_picklable(process_one: Callable, workers: int) -> None:
    """Raise TypeError unless ``process_one`` can be sent to worker processes."""
    try:
        pickle.dumps(process_one)
    except Exception as e:
        raise TypeError(f"process_one must be picklable to run on {workers} worker processes (use a "
                        f"module-level function or functools.partial of one): {e}") from None


def _say(logger: Optional[logging.Logger], log: Optional[Callable[[str], None]], line: str,
         level: int = logging.INFO) -> None:
    """One batch line: to ``logger`` at ``level`` if given, else to ``log`` (if any)."""
    if logger is not None:
        logger.log(level, line)
    elif log is not None:
        log(line)


class _Recorder:
    """Records each folder's outcome: its row, its line, its folder log, the progress and ``summary.csv``."""

    def __init__(self, items: list[BatchItem], summary_csv: Path, say: Callable[..., None],
                 progress: Optional[Callable[..., None]], log_dir: Optional[Path], options_text: str) -> None:
        self.items, self.summary_csv, self.say, self.progress = items, summary_csv, say, progress
        self.log_dir, self.options_text = log_dir, options_text
        self.total = len(items)
        self.done_count = 0
        self.last_write = 0.0

    def flush(self, final: bool = False) -> None:
        """Write ``summary.csv`` (at most once a second unless ``final``)."""
        now = time.perf_counter()
        if final or now - self.last_write >= 1.0:
            _write_summary(self.summary_csv, self.items)
            self.last_write = now

    def finish(self, item: BatchItem, status: str, error: str = "", seconds: float = 0.0,
               info: Optional[dict] = None, tb: str = "", log_lines: Iterable[str] = ()) -> None:
        """Record that ``item`` ended with ``status``."""
        item.status, item.error, item.seconds, item.info = status, error, seconds, dict(info or {})
        item.traceback = tb
        fu = item.info.get("fields_used")
        if fu is not None and item.fields_used is None:
            try:
                item.fields_used = int(fu)
            except (TypeError, ValueError):
                pass
        self.done_count += 1
        line = f"[{self.done_count}/{self.total}] {item.name}: {status}"
        if status == STATUS_OK:
            used = f", {item.fields_used} fields" if item.fields_used is not None else ""
            line += f" ({seconds:.1f} s{used})"
        elif error:
            line += f": {error}"
        if self.log_dir is not None and status in (STATUS_OK, STATUS_FAILED):
            try:
                item.log_path = write_folder_log(self.log_dir / f"{item.name}.log", item,
                                                 options=self.options_text, log_lines=log_lines)
            except OSError as e:  # a full disk must not hide the folder's own outcome
                line += f" [log not written: {e}]"
            else:
                if status == STATUS_FAILED:
                    line += f" (log: {item.log_path})"
        self.say(line, logging.ERROR if status == STATUS_FAILED else logging.INFO)
        for warning in item.info.get("warnings") or ():
            self.say(f"warning: {warning}", logging.WARNING)
        report(self.progress, self.done_count / max(self.total, 1), f"{item.name}: {status}")
        self.flush()

    def handle(self, item: BatchItem, res: dict) -> None:
        """Record the result dict of :func:`run_one`."""
        self.finish(item, res["status"], res.get("error", ""), float(res.get("seconds", 0.0)), res.get("info"),
                    tb=res.get("traceback", ""), log_lines=res.get("log") or ())


def _run_here(todo: list[BatchItem], process_one: Callable, handle: Callable, cancel: Optional[CancelToken],
              record_level: Optional[int]) -> bool:
    """Process the folders one after the other in this process; returns True if cancelled."""
    for it in todo:
        if cancel is not None and cancel.cancelled:
            return True
        handle(it, run_one(process_one, it.folder, it.out_path, record_level))
    return False


def _run_pool(todo: list[BatchItem], process_one: Callable, workers: int, max_in_flight: int, ctx: Any,
              handle: Callable, finish: Callable, cancel: Optional[CancelToken],
              record_level: Optional[int] = None) -> bool:
    """Local process pool with at most ``max_in_flight`` submitted tasks; returns True if cancelled.

    When a worker process dies (a segfault, the OOM killer), a :class:`ProcessPoolExecutor` cannot say
    which task killed it: every task in flight ends with :class:`BrokenProcessPool`. Those folders are
    *suspects*, not failures: each runs again on a fresh pool, alone, and only a folder whose worker dies
    while nothing else runs is reported failed. A folder that crashes its worker therefore fails once,
    with a clear error, and never takes the folders that shared its pool along.
    """
    queue = iter(todo)
    suspects: deque[BatchItem] = deque()  # lost to a dead pool: each runs again, alone
    alone: Optional[BatchItem] = None  # the suspect running now, with nothing else in flight
    unsubmitted: Optional[BatchItem] = None  # refused by a pool that broke before its futures said so
    pending: dict[Future, BatchItem] = {}
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    cancelled = False

    def submit(it: BatchItem) -> bool:
        nonlocal executor, unsubmitted
        try:
            pending[executor.submit(run_one, process_one, it.folder, it.out_path, record_level)] = it
            return True
        except BrokenProcessPool:
            if pending:  # the futures in flight report the breakage below; this one goes after
                unsubmitted = it
                return False
        executor.shutdown(wait=False, cancel_futures=True)  # nothing left to report it: a new pool
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        pending[executor.submit(run_one, process_one, it.folder, it.out_path, record_level)] = it
        return True

    try:
        while True:
            if not cancelled and suspects and not pending:
                alone = suspects.popleft()
                submit(alone)
            while not cancelled and alone is None and not suspects and len(pending) < max_in_flight:
                it, unsubmitted = (unsubmitted if unsubmitted is not None else next(queue, None)), None
                if it is None or not submit(it):
                    break
            if not pending:
                break
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            broken = _collect_pool_results(done, pending, alone, handle, finish, suspects)
            if alone is not None and alone not in pending.values():
                alone = None
            if broken:  # every task still in the dead pool is lost too: each runs again, alone, on a new pool
                suspects.extend(pending.values())
                pending.clear()
                executor.shutdown(wait=False, cancel_futures=True)
                executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            if cancel is not None and cancel.cancelled:
                cancelled = True
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return cancelled


def _collect_pool_results(done: set[Future], pending: dict[Future, BatchItem], alone: Optional[BatchItem],
                          handle: Callable, finish: Callable, suspects: deque[BatchItem]) -> bool:
    """Record the finished futures of :func:`_run_pool`; returns True if the pool broke.

    A folder lost to a dead worker joins ``suspects``, unless it was ``alone`` in the pool: then its own
    worker died and it fails.
    """
    broken = False
    for fut in done:
        it = pending.pop(fut)
        try:
            handle(it, fut.result())
        except BrokenProcessPool as e:
            broken = True
            if it is alone:
                finish(it, STATUS_FAILED, _one_line(f"worker process died while processing this folder "
                                                    f"({type(e).__name__}; it ran alone, after a first crash)"))
            else:
                suspects.append(it)
        except Exception as e:  # e.g. unpicklable process_one
            finish(it, STATUS_FAILED, _one_line(f"{type(e).__name__}: {e}"))
    return broken


def _run_dask(todo: list[BatchItem], process_one: Callable, scheduler: Any, max_in_flight: Optional[int],
              handle: Callable, finish: Callable, cancel: Optional[CancelToken],
              record_level: Optional[int] = None) -> tuple[str, bool]:
    """Run on a Dask distributed cluster; returns (description, cancelled)."""
    from distributed import Client, as_completed

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    cancelled = False
    try:
        nthreads = sum(client.nthreads().values()) or 1
        limit = max_in_flight or 2 * nthreads
        address = client.scheduler.address if client.scheduler is not None else str(scheduler)
        where = f"dask {address} ({nthreads} threads)"
        queue = iter(todo)
        pending: dict[Any, BatchItem] = {}

        def submit() -> Optional[Any]:
            it = next(queue, None)
            if it is None:
                return None
            fut = client.submit(run_one, process_one, str(it.folder), str(it.out_path), record_level, pure=False,
                                key=f"odt-batch-{it.name}-{os.getpid()}-{time.monotonic_ns()}")
            pending[fut] = it
            return fut

        first = [f for f in (submit() for _ in range(limit)) if f is not None]
        ac = as_completed(first)
        for fut in ac:
            it = pending.pop(fut)
            try:
                handle(it, fut.result())
            except Exception as e:  # worker died, task lost, unpicklable function...
                finish(it, STATUS_FAILED, _one_line(f"{type(e).__name__}: {e}"))
            fut.release()
            if cancel is not None and cancel.cancelled:
                cancelled = True
            if not cancelled:
                nxt = submit()
                if nxt is not None:
                    ac.add(nxt)
        return where, cancelled
    finally:
        if own:
            client.close()
