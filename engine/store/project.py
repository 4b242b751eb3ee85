"""Project folder: a SQLite catalogue of measurements, decisions, overrides and jobs.

A project is a folder holding ``project.sqlite`` and ``results/`` (one ``<name>.odt.h5``
per measurement, :mod:`engine.store.results`). The database runs in WAL mode with
foreign keys on and ``synchronous=FULL``; its schema version is ``PRAGMA user_version``
and :data:`MIGRATIONS` brings any older database up to date when it is opened.

Nothing a technician decides may be lost: :meth:`Project.set_override` appends an audit
row and commits it before returning, so a process killed right after the call finds the
override on reopening. Overrides are never updated or deleted; the latest row of a field
is its current manual decision (``new_decision`` NULL means "back to automatic").

Per-project settings (:meth:`Project.get_setting` / :meth:`Project.set_setting`, JSON values in
the ``settings`` table) hold choices that decide how a project's data are processed, e.g. the
side-band rule :data:`SIDEBAND_SETTING`, the adopted screening model
:data:`SCREENING_MODEL_SETTING` and whether its consistency stage decides,
:data:`SCREENING_CONSISTENCY_SETTING`.

Threads: every thread gets its own connection (``threading.local``), so the GUI thread
and a background worker can use one :class:`Project`; SQLite serialises the writers
(``BEGIN IMMEDIATE`` with a busy timeout). Connections of threads that have ended are
closed the next time a thread opens one, so short-lived worker threads leak nothing.

Decision codes follow ``docs/formats.md``: decision 1 = clean (used), 0 = noisy (excluded);
source 0 = model, 1 = rule, 2 = manual override.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .folders import MeasurementInfo, inspect_measurement, measurement_fingerprint, read_metadata_text
from .results import RESULT_SUFFIX

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "SOURCE_MODEL",
    "SOURCE_RULE",
    "SOURCE_MANUAL",
    "SIDEBAND_SETTING",
    "SIDEBAND_CHOICES",
    "SCREENING_MODEL_SETTING",
    "SCREENING_CONSISTENCY_SETTING",
    "ProjectError",
    "MeasurementRecord",
    "OverrideRecord",
    "JobRecord",
    "Project",
]

DB_NAME = "project.sqlite"
RESULTS_DIR = "results"
SOURCE_MODEL, SOURCE_RULE, SOURCE_MANUAL = 0, 1, 2
#: Project setting: how the off-axis side band is chosen when measurement.json gives no carrier,
#: ``"auto"`` (the twin that gives the sample a positive phase: samples denser than their medium)
#: or ``"as-given"`` (the peak with f_x > 0: for samples less dense than their medium). See
#: :func:`engine.holography.retrieval.retrieve_fields`.
SIDEBAND_SETTING = "sideband"
SIDEBAND_CHOICES = ("auto", "as-given")
#: Project setting: the screening model this project screens with, a ``.safetensors`` path
#: relative to the project folder (e.g. ``"models/screening-compact-ft1.safetensors"``), set when
#: a model fine-tuned on the project's overrides is adopted (``odt-studio train-screening``,
#: :mod:`engine.screening.retrain`). Unset: the shipped default. See :attr:`Project.screening_model`.
SCREENING_MODEL_SETTING = "screening_model"
#: Project setting (bool): screen with the model's consistency stage deciding (each field against the
#: fields of nearest illumination, :mod:`engine.screening.consistency`). Unset: as the screening model's
#: card says (``consistency.decides_by_default``: on from screening 3.4.0; before it, off). See
#: :attr:`Project.screening_consistency`.
SCREENING_CONSISTENCY_SETTING = "screening_consistency"


class ProjectError(RuntimeError):
    """A project folder cannot be created or opened; the message names it."""


def _exec_script(con: sqlite3.Connection, script: str) -> None:
    """Run SQL statements one by one (``executescript`` would COMMIT the open transaction)."""
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                con.execute(buf)
            buf = ""
    if buf.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement in migration: {buf!r}")


def _migration_0_to_1(con: sqlite3.Connection) -> None:
    _exec_script(con, """
        CREATE TABLE measurements (
            id            INTEGER PRIMARY KEY,
            name          TEXT NOT NULL UNIQUE,
            path          TEXT NOT NULL UNIQUE,
            content_hash  TEXT NOT NULL,
            metadata_json TEXT NOT NULL DEFAULT '',
            n_images      INTEGER NOT NULL DEFAULT 0,
            status        TEXT NOT NULL DEFAULT 'imported',
            error         TEXT NOT NULL DEFAULT '',
            imported_at   TEXT NOT NULL
        );
        CREATE INDEX measurements_by_hash ON measurements(content_hash);
        -- one row per field and screening run; the latest run of a measurement is current
        CREATE TABLE screening (
            measurement_id INTEGER NOT NULL REFERENCES measurements(id),
            run            INTEGER NOT NULL,
            field_index    INTEGER NOT NULL CHECK (field_index >= 0),
            score          REAL,
            rule_peak      REAL,
            auto_decision  INTEGER NOT NULL CHECK (auto_decision IN (0, 1)),
            auto_source    INTEGER NOT NULL CHECK (auto_source IN (0, 1)),
            model_name     TEXT NOT NULL DEFAULT '',
            model_version  TEXT NOT NULL DEFAULT '',
            threshold      REAL,
            created_at     TEXT NOT NULL,
            PRIMARY KEY (measurement_id, run, field_index)
        );
        -- audit trail: rows are only ever inserted
        CREATE TABLE overrides (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            measurement_id INTEGER NOT NULL REFERENCES measurements(id),
            field_index    INTEGER NOT NULL CHECK (field_index >= 0),
            old_decision   INTEGER CHECK (old_decision IN (0, 1)),
            new_decision   INTEGER CHECK (new_decision IN (0, 1)),
            user           TEXT NOT NULL,
            time           TEXT NOT NULL,
            reason         TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX overrides_by_field ON overrides(measurement_id, field_index, id);
        CREATE TRIGGER overrides_append_only_u BEFORE UPDATE ON overrides
            BEGIN SELECT RAISE(ABORT, 'overrides are an audit trail: rows cannot be changed'); END;
        CREATE TRIGGER overrides_append_only_d BEFORE DELETE ON overrides
            BEGIN SELECT RAISE(ABORT, 'overrides are an audit trail: rows cannot be deleted'); END;
        CREATE TABLE jobs (
            id       INTEGER PRIMARY KEY AUTOINCREMENT,
            kind     TEXT NOT NULL,
            started  TEXT NOT NULL,
            finished TEXT,
            status   TEXT NOT NULL,
            message  TEXT NOT NULL DEFAULT ''
        );
    """)


def _migration_1_to_2(con: sqlite3.Connection) -> None:
    """Per-project settings (key → JSON value), e.g. :data:`SIDEBAND_SETTING`."""
    _exec_script(con, """
        CREATE TABLE settings (
            key        TEXT PRIMARY KEY,
            value_json TEXT NOT NULL,
            changed_at TEXT NOT NULL
        );
    """)


#: ``MIGRATIONS[v]`` turns a schema of version ``v`` into version ``v + 1`` (run in one transaction).
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_0_to_1, _migration_1_to_2]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class MeasurementRecord:
    """One row of the catalogue."""

    id: int
    name: str
    path: Path
    content_hash: str
    metadata_json: str
    n_images: int
    status: str
    error: str
    imported_at: str


@dataclass(frozen=True)
class OverrideRecord:
    """One audit row: a manual decision (``new_decision`` None = back to automatic)."""

    id: int
    measurement_id: int
    field_index: int
    old_decision: Optional[int]
    new_decision: Optional[int]
    user: str
    time: str
    reason: str


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    started: str
    finished: Optional[str]
    status: str
    message: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still record something
        return "unknown"


class Project:
    """A project folder (``project.sqlite`` + ``results/``). Use :meth:`create` or :meth:`open`.

    Examples
    --------
    >>> p = Project.create(tmp_path / "proj")            # doctest: +SKIP
    >>> mid = p.add_measurement("data/cell_001")         # doctest: +SKIP
    >>> p.set_override(mid, 3, 0, reason="dust")         # doctest: +SKIP
    """

    def __init__(self, path: str | Path, _ok: bool = False) -> None:
        if not _ok:
            raise TypeError("use Project.create(path) or Project.open(path)")
        self.path = Path(path).resolve()
        self.db_path = self.path / DB_NAME
        self.results_dir = self.path / RESULTS_DIR
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | Path) -> "Project":
        """Create a new project in ``path`` (created if missing; must not hold a project yet)."""
        path = Path(path)
        if (path / DB_NAME).exists():
            raise ProjectError(f"'{path}' already holds a project ({DB_NAME}); use Project.open")
        path.mkdir(parents=True, exist_ok=True)
        (path / RESULTS_DIR).mkdir(exist_ok=True)
        p = cls(path, _ok=True)
        p._migrate()
        return p

    @classmethod
    def open(cls, path: str | Path) -> "Project":
        """Open an existing project, migrating its database to :data:`SCHEMA_VERSION` if older."""
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise ProjectError(f"'{path}' is not a project folder: {DB_NAME} is missing")
        (path / RESULTS_DIR).mkdir(exist_ok=True)
        p = cls(path, _ok=True)
        p._migrate()
        return p

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise ProjectError(f"project '{self.path}' is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db_path, isolation_level=None, timeout=30.0, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
            with self._all_lock:
                # close the connections of threads that have ended (e.g. finished GUI jobs)
                for t, c in [x for x in self._all if not x[0].is_alive()]:
                    with contextlib.suppress(Exception):
                        c.close()
                    self._all.remove((t, c))
                self._all.append((threading.current_thread(), con))
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on error."""
        con = self._connect()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _migrate(self) -> None:
        con = self._connect()
        with self._tx():
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ProjectError(f"'{self.db_path}' has schema version {version}, newer than this "
                                   f"program's {SCHEMA_VERSION}; update ODT Studio")
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](con)
                con.execute(f"PRAGMA user_version = {v + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._connect().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close every connection this object opened (from any thread)."""
        with self._all_lock:
            for _, con in self._all:
                with contextlib.suppress(Exception):
                    con.close()
            self._all.clear()
        self._local = threading.local()
        self._closed = True

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ catalogue
    def add_measurement(self, folder: str | Path, info: Optional[MeasurementInfo] = None) -> int:
        """Add a measurement folder to the catalogue and return its id.

        The folder is inspected (:func:`engine.store.folders.inspect_measurement`, headers
        only); an invalid folder is still catalogued, with status ``"invalid"`` and the error.
        Importing the same folder again returns the existing id (its hash, metadata and
        status are refreshed if the folder changed); a folder that was moved (same content
        hash, old path gone) keeps its id and its decisions, with the new path recorded. A
        folder whose name is already taken by another measurement gets a unique name
        (``name_2``, ...), used for its result file.
        """
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"measurement folder '{folder}' does not exist")
        if info is None:
            info = inspect_measurement(folder, thumbnail=False)
        digest = measurement_fingerprint(folder)
        meta_json = info.metadata.to_json() if info.metadata is not None else read_metadata_text(folder)
        status = "imported" if info.valid else "invalid"
        with self._tx() as con:
            row = con.execute("SELECT id, content_hash FROM measurements WHERE path = ?", (str(folder),)).fetchone()
            if row is not None:
                if row[1] != digest:
                    con.execute("UPDATE measurements SET content_hash=?, metadata_json=?, n_images=?, status=?, "
                                "error=? WHERE id=?", (digest, meta_json, info.n_images, status, info.error, row[0]))
                return int(row[0])
            for mid, old_path in con.execute("SELECT id, path FROM measurements WHERE content_hash = ?", (digest,)):
                if not Path(old_path).exists():  # the same folder, moved: keep its id, decisions and name
                    con.execute("UPDATE measurements SET path = ? WHERE id = ?", (str(folder), mid))
                    return int(mid)
            name, k = folder.name, 1
            while con.execute("SELECT 1 FROM measurements WHERE name = ?", (name,)).fetchone():
                k += 1
                name = f"{folder.name}_{k}"
            cur = con.execute(
                "INSERT INTO measurements (name, path, content_hash, metadata_json, n_images, status, error, "
                "imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, str(folder), digest, meta_json, info.n_images, status, info.error, _now()))
            return int(cur.lastrowid)

    def list_measurements(self) -> list[MeasurementRecord]:
        """Every catalogued measurement, in import order."""
        rows = self._connect().execute(
            "SELECT id, name, path, content_hash, metadata_json, n_images, status, error, imported_at "
            "FROM measurements ORDER BY id").fetchall()
        return [MeasurementRecord(r[0], r[1], Path(r[2]), *r[3:]) for r in rows]

    def get_measurement(self, measurement: int | MeasurementRecord) -> MeasurementRecord:
        mid = measurement.id if isinstance(measurement, MeasurementRecord) else int(measurement)
        r = self._connect().execute(
            "SELECT id, name, path, content_hash, metadata_json, n_images, status, error, imported_at "
            "FROM measurements WHERE id = ?", (mid,)).fetchone()
        if r is None:
            raise KeyError(f"no measurement with id {mid} in project '{self.path}'")
        return MeasurementRecord(r[0], r[1], Path(r[2]), *r[3:])

    def set_status(self, measurement_id: int, status: str, error: str = "") -> None:
        with self._tx() as con:
            if con.execute("UPDATE measurements SET status=?, error=? WHERE id=?",
                           (status, error, int(measurement_id))).rowcount != 1:
                raise KeyError(f"no measurement with id {measurement_id}")

    def result_path(self, measurement: int | MeasurementRecord) -> Path:
        """``<project>/results/<name>.odt.h5`` of a measurement (id or record)."""
        rec = self.get_measurement(measurement)
        return self.results_dir / f"{rec.name}{RESULT_SUFFIX}"

    # ------------------------------------------------------------------ screening
    def add_screening(self, measurement_id: int, auto_decision: Sequence[int], *,
                      score: Optional[Sequence[float]] = None, rule_peak: Optional[Sequence[float]] = None,
                      source: int | Sequence[int] = SOURCE_MODEL, model_name: str = "", model_version: str = "",
                      threshold: Optional[float] = None) -> int:
        """Record one screening run (all N fields of a measurement) and return its run number.

        Parameters
        ----------
        auto_decision : (N,) int
            Automatic decision per field, 1 = clean, 0 = noisy.
        score, rule_peak : (N,) float, optional
            Model probability of "noisy" and the rule metric (log10).
        source : 0 (model) or 1 (rule), or (N,) of them
        model_name, model_version : str
        threshold : float, optional
            Threshold the decision used.
        """
        dec = np.asarray(auto_decision, dtype=np.int64).ravel()
        n = len(dec)
        src = np.broadcast_to(np.asarray(source, dtype=np.int64), (n,))
        sc = np.full(n, np.nan) if score is None else np.asarray(score, dtype=np.float64).ravel()
        rp = np.full(n, np.nan) if rule_peak is None else np.asarray(rule_peak, dtype=np.float64).ravel()
        if len(sc) != n or len(rp) != n:
            raise ValueError(f"score/rule_peak must have {n} entries like auto_decision")
        if not np.isin(dec, (0, 1)).all() or not np.isin(src, (0, 1)).all():
            raise ValueError("auto_decision must be 0/1 and source 0 (model) or 1 (rule)")
        now = _now()

        def f(x: float) -> Optional[float]:
            return None if not np.isfinite(x) else float(x)

        with self._tx() as con:
            self._require(con, measurement_id)
            run = con.execute("SELECT COALESCE(MAX(run), 0) + 1 FROM screening WHERE measurement_id = ?",
                              (int(measurement_id),)).fetchone()[0]
            con.executemany(
                "INSERT INTO screening (measurement_id, run, field_index, score, rule_peak, auto_decision, "
                "auto_source, model_name, model_version, threshold, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(int(measurement_id), run, i, f(sc[i]), f(rp[i]), int(dec[i]), int(src[i]), model_name,
                  model_version, None if threshold is None else float(threshold), now) for i in range(n)])
        return int(run)

    def screening(self, measurement_id: int) -> dict[str, np.ndarray | str | float | None]:
        """The latest screening run: arrays ``score``, ``rule_peak``, ``auto_decision``,
        ``auto_source`` and ``model_name``, ``model_version``, ``threshold``, ``run`` (0 if none)."""
        con = self._connect()
        run = con.execute("SELECT MAX(run) FROM screening WHERE measurement_id = ?",
                          (int(measurement_id),)).fetchone()[0]
        rows = [] if run is None else con.execute(
            "SELECT field_index, score, rule_peak, auto_decision, auto_source, model_name, model_version, "
            "threshold FROM screening WHERE measurement_id = ? AND run = ? ORDER BY field_index",
            (int(measurement_id), run)).fetchall()
        return {
            "run": int(run or 0),
            "score": np.array([np.nan if r[1] is None else r[1] for r in rows], np.float32),
            "rule_peak": np.array([np.nan if r[2] is None else r[2] for r in rows], np.float32),
            "auto_decision": np.array([r[3] for r in rows], np.uint8),
            "auto_source": np.array([r[4] for r in rows], np.uint8),
            "model_name": rows[0][5] if rows else "",
            "model_version": rows[0][6] if rows else "",
            "threshold": rows[0][7] if rows else None,
        }

    # ------------------------------------------------------------------ overrides
    def _require(self, con: sqlite3.Connection, measurement_id: int) -> int:
        r = con.execute("SELECT n_images FROM measurements WHERE id = ?", (int(measurement_id),)).fetchone()
        if r is None:
            raise KeyError(f"no measurement with id {measurement_id} in project '{self.path}'")
        return int(r[0])

    def _n_fields(self, con: sqlite3.Connection, measurement_id: int) -> int:
        n = self._require(con, measurement_id)
        m = con.execute("SELECT COUNT(*) FROM screening WHERE measurement_id = ? AND run = "
                        "(SELECT MAX(run) FROM screening WHERE measurement_id = ?)",
                        (int(measurement_id), int(measurement_id))).fetchone()[0]
        return int(m) if m else n

    def _decisions(self, con: sqlite3.Connection, measurement_id: int) -> tuple[np.ndarray, np.ndarray]:
        n = self._n_fields(con, measurement_id)
        decision = np.ones(n, np.uint8)  # unscreened: every field used ("none" rule)
        source = np.full(n, SOURCE_RULE, np.uint8)
        for i, d, s in con.execute(
                "SELECT field_index, auto_decision, auto_source FROM screening WHERE measurement_id = ? AND run = "
                "(SELECT MAX(run) FROM screening WHERE measurement_id = ?)",
                (int(measurement_id), int(measurement_id))):
            if i < n:
                decision[i], source[i] = d, s
        for i, new in con.execute(
                "SELECT o.field_index, o.new_decision FROM overrides o JOIN "
                "(SELECT field_index, MAX(id) AS last FROM overrides WHERE measurement_id = ? GROUP BY field_index) "
                "l ON o.id = l.last", (int(measurement_id),)):
            if new is not None and i < n:
                decision[i], source[i] = new, SOURCE_MANUAL
        return decision, source

    def decisions(self, measurement_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Final decision and its source per field.

        Returns
        -------
        decision : (N,) uint8
            1 = clean (used), 0 = noisy (excluded).
        source : (N,) uint8
            0 = model, 1 = rule, 2 = manual override. A measurement never screened counts
            every field as clean with source 1 (the trivial "use all" rule).
        """
        con = self._connect()
        con.execute("BEGIN")  # one consistent snapshot for both queries
        try:
            return self._decisions(con, measurement_id)
        finally:
            con.execute("COMMIT")

    def set_override(self, measurement_id: int, field_index: int, decision: Optional[int],
                     user: Optional[str] = None, reason: str = "") -> int:
        """Record a manual decision for one field, committed before this returns.

        Parameters
        ----------
        measurement_id : int
        field_index : int
            0 <= field_index < N.
        decision : 1 (clean), 0 (noisy) or None (back to the automatic decision)
        user : str, optional
            Who decided; default the OS login name.
        reason : str
            Optional free text.

        Returns
        -------
        int
            Id of the new audit row.
        """
        if decision is not None and (isinstance(decision, bool) or int(decision) not in (0, 1)):
            raise ValueError(f"decision must be 0 (noisy), 1 (clean) or None (automatic), got {decision!r}")
        user = user or _default_user()
        with self._tx() as con:
            n = self._n_fields(con, measurement_id)
            if not 0 <= int(field_index) < n:
                raise IndexError(f"field {field_index} out of range: measurement {measurement_id} has {n} fields")
            old, _ = self._decisions(con, measurement_id)
            cur = con.execute(
                "INSERT INTO overrides (measurement_id, field_index, old_decision, new_decision, user, time, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (int(measurement_id), int(field_index), int(old[int(field_index)]),
                 None if decision is None else int(decision), user, _now(), reason or ""))
            return int(cur.lastrowid)

    def override_history(self, measurement_id: Optional[int] = None,
                         field_index: Optional[int] = None) -> list[OverrideRecord]:
        """Audit rows, oldest first, optionally for one measurement and one field."""
        q = ("SELECT id, measurement_id, field_index, old_decision, new_decision, user, time, reason "
             "FROM overrides")
        cond, args = [], []
        if measurement_id is not None:
            cond.append("measurement_id = ?")
            args.append(int(measurement_id))
        if field_index is not None:
            cond.append("field_index = ?")
            args.append(int(field_index))
        if cond:
            q += " WHERE " + " AND ".join(cond)
        return [OverrideRecord(*r) for r in self._connect().execute(q + " ORDER BY id", args).fetchall()]

    # ------------------------------------------------------------------ jobs
    def start_job(self, kind: str, message: str = "") -> int:
        with self._tx() as con:
            return int(con.execute("INSERT INTO jobs (kind, started, status, message) VALUES (?, ?, 'running', ?)",
                                   (kind, _now(), message)).lastrowid)

    def finish_job(self, job_id: int, status: str = "done", message: str = "") -> None:
        with self._tx() as con:
            con.execute("UPDATE jobs SET finished = ?, status = ?, message = ? WHERE id = ?",
                        (_now(), status, message, int(job_id)))

    @contextlib.contextmanager
    def job(self, kind: str, message: str = "") -> Iterator[int]:
        """Record a job around a block: status "done", or "failed"/"cancelled" with the error."""
        jid = self.start_job(kind, message)
        try:
            yield jid
        except BaseException as e:
            status = "cancelled" if type(e).__name__ == "Cancelled" else "failed"
            self.finish_job(jid, status, f"{type(e).__name__}: {e}")
            raise
        self.finish_job(jid, "done", message)

    def jobs(self) -> list[JobRecord]:
        return [JobRecord(*r) for r in self._connect().execute(
            "SELECT id, kind, started, finished, status, message FROM jobs ORDER BY id").fetchall()]

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A per-project setting (any JSON value), or ``default`` when it was never set."""
        row = self._connect().execute("SELECT value_json FROM settings WHERE key = ?", (str(key),)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:
            return default

    def set_setting(self, key: str, value: Any) -> None:
        """Store a per-project setting (committed before this returns).

        Raises
        ------
        ValueError
            ``value`` is not JSON-serialisable, or :data:`SIDEBAND_SETTING` is not one of
            :data:`SIDEBAND_CHOICES`.
        """
        if key == SCREENING_CONSISTENCY_SETTING and not isinstance(value, bool):
            raise ValueError(f"setting '{SCREENING_CONSISTENCY_SETTING}' must be true or false, got {value!r}")
        if key == SIDEBAND_SETTING and value not in SIDEBAND_CHOICES:
            raise ValueError(f"setting '{SIDEBAND_SETTING}' must be one of {SIDEBAND_CHOICES}, got {value!r}")
        if key == SCREENING_MODEL_SETTING and value is not None and (
                not isinstance(value, str) or Path(value).is_absolute() or ".." in Path(value).parts):
            raise ValueError(f"setting '{SCREENING_MODEL_SETTING}' must be a path inside the project folder "
                             f"(relative), or None, got {value!r}")
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"setting '{key}': value {value!r} is not JSON-serialisable ({exc})") from None
        with self._tx() as con:
            con.execute("INSERT INTO settings (key, value_json, changed_at) VALUES (?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, "
                        "changed_at = excluded.changed_at", (str(key), text, _now()))

    def settings(self) -> dict[str, Any]:
        """Every per-project setting that was set, as a dict."""
        out: dict[str, Any] = {}
        for k, v in self._connect().execute("SELECT key, value_json FROM settings ORDER BY key"):
            with contextlib.suppress(json.JSONDecodeError):
                out[k] = json.loads(v)
        return out

    @property
    def sideband(self) -> str:
        """The project's side-band setting, :data:`SIDEBAND_CHOICES` (default ``"auto"``)."""
        v = self.get_setting(SIDEBAND_SETTING, "auto")
        return v if v in SIDEBAND_CHOICES else "auto"

    @property
    def screening_consistency(self) -> Optional[bool]:
        """Whether this project screens with the model's consistency stage deciding; None when the project has
        not said (the model's card then decides: :func:`engine.screening.network.consistency_by_default`)."""
        v = self.get_setting(SCREENING_CONSISTENCY_SETTING, None)
        return v if isinstance(v, bool) else None

    @property
    def screening_model(self) -> Optional[Path]:
        """The project's adopted screening model file (absolute path), or None for the shipped default.

        None also when the setting names a file that is no longer there (the default is used then).
        """
        v = self.get_setting(SCREENING_MODEL_SETTING)
        if not isinstance(v, str) or not v:
            return None
        path = (self.path / v).resolve()
        return path if path.is_file() else None

    # ------------------------------------------------------------------ export
    def metadata(self, measurement_id: int) -> dict:
        """The catalogued metadata as a dict ({} if it could not be read at import)."""
        text = self.get_measurement(measurement_id).metadata_json
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {}
