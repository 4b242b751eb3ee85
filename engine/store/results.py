"""Result files ``<name>.odt.h5`` (``docs/formats.md`` §2), written atomically.

Every write goes to a temporary file in the destination folder, is flushed and fsync'ed,
then renamed over the destination with :func:`os.replace` (atomic on POSIX and Windows
for files of one volume), and the folder is fsync'ed. A reader therefore sees either the
old file or the complete new one, never a half-written file — also when the writer is
killed (SIGKILL) or raises. Temporary files are named
``.<name>.odt.h5~<host>~<pid>~<random>.tmp``, so they are hidden, never end in ``.odt.h5``,
and a later batch can tell whether their writer is still alive
(:func:`remove_stale_temporaries`).

Conventions (docs/formats.md): fields are complex64 (N, h, w) = sample field / background
field; illumination frequencies (N, 2) in cycles/µm (fx, fy); volumes (Z, Y, X) float32,
voxel sizes and origins in µm, ordered (z, y, x).
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import h5py
import numpy as np

from .. import __version__
from ..tomogram import Tomogram

__all__ = [
    "FORMAT_RESULT",
    "ScreeningResult",
    "TomogramResult",
    "BirefringenceResult",
    "RetrievalResult",
    "ResultFile",
    "write_result",
    "read_result",
    "update_result",
    "is_complete_result",
    "atomic_h5",
    "remove_stale_temporaries",
    "temporary_prefix",
]

FORMAT_RESULT = "odt-result/1"
RESULT_SUFFIX = ".odt.h5"
GROUPS = ("fields", "screening", "tomogram", "birefringence", "retrieval")


@dataclass
class ScreeningResult:
    """The ``screening`` group: per-field score, rule metric and final decision.

    Attributes
    ----------
    score : (N,) float32
        Probability that a field is noisy, 0..1.
    rule_peak : (N,) float32
        Rule-based high-frequency peak metric (log10).
    decision : (N,) uint8
        1 = clean (used), 0 = noisy (excluded).
    source : (N,) uint8
        0 = model, 1 = rule, 2 = manual override.
    model : str
        Model name and version.
    consistency : (N, 5) float32 or None
        Optional: how far each field lies from the fields of nearest illumination
        (:data:`engine.screening.consistency.CONSISTENCY_FEATURES`).
    consistency_score : (N,) float32 or None
        Optional: the model's consistency-stage noisy-probability; it made ``score`` only if
        ``consistency_used``.
    consistency_used : bool
    """

    score: np.ndarray
    rule_peak: np.ndarray
    decision: np.ndarray
    source: np.ndarray
    model: str = ""
    consistency: Optional[np.ndarray] = None
    consistency_score: Optional[np.ndarray] = None
    consistency_used: bool = False


#: The ``tomogram`` group is the one tomogram container (:class:`engine.tomogram.Tomogram`); the
#: older name stays for readers written against it. ``labels`` (optional, (Z, Y, X) integers,
#: 0 = background, 1..K = objects) is stored as ``tomogram/labels``, uint16 (uint32 above 65535).
TomogramResult = Tomogram


@dataclass
class BirefringenceResult:
    """The ``birefringence`` group; every member optional (None when absent)."""

    n_e: Optional[np.ndarray] = None
    n_o: Optional[np.ndarray] = None
    director: Optional[np.ndarray] = None
    tensor: Optional[np.ndarray] = None


@dataclass
class RetrievalResult:
    """``retrieval/``: how the side band was chosen and the per-field quality numbers.

    ``quality`` maps each name of :data:`engine.holography.quality.QUALITY_KEYS` to an (N,) float32
    array; ``attrs`` holds ``carrier_per_um``, ``sideband_source``, ``sideband_flipped``,
    ``sideband_integrated_phase_rad_um2``, ``sideband_confidence``, ``sideband_ambiguous``,
    ``sideband_description``, ``unwrap_method`` (docs/formats.md §2).
    """

    quality: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


@dataclass
class ResultFile:
    """Contents of one result file, read eagerly. Groups absent from the file are None.

    ``attrs`` holds the file-level attributes other than ``format``, ``measurement_json``
    and ``software_version`` (the ``extra_attrs`` of :func:`write_result`).
    """

    path: Path
    format: str
    measurement_json: str
    software_version: str
    fields: Optional[np.ndarray] = None
    illumination_per_um: Optional[np.ndarray] = None
    screening: Optional[ScreeningResult] = None
    tomogram: Optional[TomogramResult] = None
    birefringence: Optional[BirefringenceResult] = None
    attrs: dict = field(default_factory=dict)
    retrieval: Optional[RetrievalResult] = None


# ---------------------------------------------------------------------------- atomic writing
def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class atomic_h5:
    """Context manager: an ``h5py.File`` open on a temporary file, renamed onto ``path`` on success.

    On an exception inside the ``with`` block the temporary file is removed and ``path``
    is left as it was.

    Examples
    --------
    >>> with atomic_h5(tmp_path / "x.odt.h5") as f:   # doctest: +SKIP
    ...     f["a"] = 1
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp: Optional[Path] = None
        self.file: Optional[h5py.File] = None

    def __enter__(self) -> h5py.File:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(self.path), suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        try:
            self.file = h5py.File(self.tmp, "w")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None and self.file is not None
        try:
            self.file.close()
            if exc_type is None:
                fd = os.open(self.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self.tmp, self.path)
                _fsync_dir(self.path.parent)
        finally:
            if self.tmp.exists():
                self.tmp.unlink(missing_ok=True)


def temporary_prefix(path: str | Path) -> str:
    """Name prefix of the temporary files written before ``path`` is renamed into place:
    ``.<name>~<host>~<pid>~`` (then a random part and ``.tmp``)."""
    return f".{Path(path).name}~{socket.gethostname()}~{os.getpid()}~"


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete temporary files left in ``directory`` by writers on this host that have died.

    Only files named with :func:`temporary_prefix` (result files, ``summary.csv``) whose host
    is this one and whose process id is no longer running are removed; a live writer's files
    are kept. Returns the removed paths.
    """
    directory = Path(directory)
    host = socket.gethostname()
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for p in directory.iterdir():
        name = p.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        parts = name[1:-4].rsplit("~", 3)  # [target name, host, pid, random]
        if len(parts) != 4:
            continue
        tmp_host, pid_s = parts[1], parts[2]
        if tmp_host != host or not pid_s.isdigit():
            continue
        if _pid_alive(int(pid_s)):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    # a zombie (killed child not yet reaped) is not alive for our purpose
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except OSError:
        return True


# ---------------------------------------------------------------------------- validation
def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _vec3(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).ravel()
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be three finite numbers (z, y, x), got {v!r}")
    return a


def _volume(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim != 3 or a.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be a real (Z, Y, X) volume, got shape {a.shape} dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _labels(v: Any, shape: tuple) -> np.ndarray:
    """Object labels (Z, Y, X) as uint16, or uint32 when a label exceeds 65535."""
    a = np.asarray(v)
    if a.shape != tuple(shape) or a.dtype.kind not in "iub":
        raise ValueError(f"tomogram 'labels' must be integers of the tomogram's shape {tuple(shape)}, "
                         f"got shape {a.shape} dtype {a.dtype}")
    top = int(a.max(initial=0))
    if a.size and int(a.min()) < 0:
        raise ValueError("tomogram 'labels' must be ≥ 0 (0 = background)")
    if top >= 2 ** 32:
        raise ValueError(f"tomogram 'labels' exceed uint32 (largest {top})")
    return a.astype(np.uint16 if top < 2 ** 16 else np.uint32, copy=False)


#: attributes of ``tomogram/ri_ms`` (docs/formats.md §2) and their types; others are kept as given
MS_RECORD_TYPES = {"iterations": int, "iterations_asked": int, "batch": int, "step": float, "tv_weight": float,
                   "forward_model": str, "seconds": float, "cancelled": bool}


def _ms_record(record: Any) -> dict[str, Any]:
    """The attributes of ``tomogram/ri_ms`` from its record (a mapping; None: none known)."""
    out: dict[str, Any] = {}
    for k, v in dict(record or {}).items():
        if v is None:
            continue
        if k == "misfit":
            out[k] = np.asarray(v, np.float64).ravel()
        elif k in MS_RECORD_TYPES:
            out[k] = MS_RECORD_TYPES[k](v)
        elif isinstance(v, (str, bool, int, float, np.generic, np.ndarray, list, tuple)):
            out[str(k)] = v
        else:
            raise ValueError(f"tomogram 'ri_ms' record: {k!r} is a {type(v).__name__}, not a number, text or array")
    return out


def _read_ms_record(ds: h5py.Dataset) -> dict[str, Any]:
    """The record of ``tomogram/ri_ms`` (its attributes less ``element_size_um``) as Python values."""
    rec: dict[str, Any] = {}
    for k, v in ds.attrs.items():
        if k == "element_size_um":
            continue
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, np.ndarray):
            v = [float(x) for x in v.ravel()] if k == "misfit" else v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        rec[k] = v
    return rec


def _prepare_retrieval(retrieval: Any, n: Optional[int]) -> dict[str, Any]:
    q = {str(k): np.asarray(v, np.float32) for k, v in (dict(_get(retrieval, "quality", {}) or {})).items()}
    for k, a in q.items():
        if a.ndim != 1 or (n is not None and len(a) != n):
            raise ValueError(f"retrieval quality '{k}' must have shape (N,)"
                             f"{f' = ({n},)' if n is not None else ''}, got {a.shape}")
    attrs = dict(_get(retrieval, "attrs", {}) or {})
    return {"quality": q, "attrs": attrs}


def _prepare_tomogram(tomogram: Any) -> dict[str, Any]:
    """The ``tomogram`` group checked and converted (ValueError when it breaks the format)."""
    t: dict[str, Any] = {"ri": _volume(_get(tomogram, "ri"), "tomogram 'ri'")}
    for key in ("ri_tv", "ri_deep", "ri_ms"):
        v = _get(tomogram, key)
        if v is not None:
            t[key] = _volume(v, f"tomogram '{key}'")
            if t[key].shape != t["ri"].shape:
                raise ValueError(f"tomogram '{key}' shape {t[key].shape} differs from 'ri' {t['ri'].shape}")
    if "ri_ms" in t:
        t["ri_ms_record"] = _ms_record(_get(tomogram, "ri_ms_record"))
    labels = _get(tomogram, "labels")
    if labels is not None:
        t["labels"] = _labels(labels, t["ri"].shape)
    t["voxel_size_um"] = _vec3(_get(tomogram, "voxel_size_um"), "tomogram voxel_size_um")
    if not np.all(t["voxel_size_um"] > 0):
        raise ValueError("tomogram voxel_size_um must be positive")
    t["origin_um"] = _vec3(_get(tomogram, "origin_um"), "tomogram origin_um")
    nm = _get(tomogram, "medium_index")
    if nm is None or not np.isfinite(float(nm)):
        raise ValueError("tomogram needs a finite 'medium_index'")
    t["medium_index"] = float(nm)
    t["method"] = str(_get(tomogram, "method", "") or "")
    return t


def _prepare(measurement_json: str, fields_: Any, illumination_per_um: Any, screening: Any,
             tomogram: Any, birefringence: Any, retrieval: Any = None) -> dict[str, Any]:
    """Check and convert everything before the file is opened; raise ValueError."""
    if not isinstance(measurement_json, str):
        raise ValueError(f"measurement_json must be a str, got {type(measurement_json).__name__}")
    out: dict[str, Any] = {}
    n = None
    if fields_ is not None:
        f = np.asarray(fields_)
        if f.ndim != 3:
            raise ValueError(f"fields must have shape (N, h, w), got {f.shape}")
        out["fields"] = f.astype(np.complex64, copy=False)
        n = f.shape[0]
    if illumination_per_um is not None:
        il = np.asarray(illumination_per_um, dtype=np.float64)
        if il.ndim != 2 or il.shape[1] != 2:
            raise ValueError(f"illumination_per_um must have shape (N, 2), got {il.shape}")
        if n is not None and il.shape[0] != n:
            raise ValueError(f"illumination_per_um has {il.shape[0]} rows but there are {n} fields")
        out["illumination_per_um"] = il
    if screening is not None:
        s = {}
        for key, dt in (("score", np.float32), ("rule_peak", np.float32), ("decision", np.uint8),
                        ("source", np.uint8)):
            v = _get(screening, key)
            if v is None:
                raise ValueError(f"screening needs '{key}'")
            a = np.asarray(v)
            if a.ndim != 1:
                raise ValueError(f"screening '{key}' must be 1-D (N,), got shape {a.shape}")
            s[key] = a.astype(dt)
        lens = {len(a) for a in s.values()}
        if len(lens) != 1 or (n is not None and lens != {n}):
            raise ValueError(f"screening arrays must all have length N"
                             f"{f' = {n}' if n is not None else ''}, got {sorted(lens)}")
        if not np.isin(s["decision"], (0, 1)).all():
            raise ValueError("screening 'decision' must hold only 0 (noisy) or 1 (clean)")
        if not np.isin(s["source"], (0, 1, 2)).all():
            raise ValueError("screening 'source' must hold only 0 (model), 1 (rule) or 2 (manual)")
        s["model"] = str(_get(screening, "model", "") or "")
        _prepare_consistency(screening, s, len(s["score"]))
        out["screening"] = s
    if tomogram is not None:
        out["tomogram"] = _prepare_tomogram(tomogram)
    if birefringence is not None:
        b: dict[str, Any] = {}
        for key, nd in (("n_e", 3), ("n_o", 3), ("director", 4), ("tensor", 5)):
            v = _get(birefringence, key)
            if v is None:
                continue
            a = np.asarray(v)
            if a.ndim != nd or (nd >= 4 and a.shape[3:] != (3,) * (nd - 3)):
                raise ValueError(f"birefringence '{key}' has shape {a.shape}, expected "
                                 f"{'(Z, Y, X)' if nd == 3 else '(Z, Y, X, 3)' if nd == 4 else '(Z, Y, X, 3, 3)'}")
            b[key] = a.astype(np.float32, copy=False)
        if not b:
            raise ValueError("birefringence given but none of n_e, n_o, director, tensor")
        out["birefringence"] = b
    if retrieval is not None:
        out["retrieval"] = _prepare_retrieval(retrieval, n)
    return out


def _prepare_consistency(screening: Any, s: dict, n: int) -> None:
    """The optional consistency entries of a screening (``consistency`` (N, 5), ``consistency_score`` (N,))."""
    for key, nd in (("consistency", 2), ("consistency_score", 1)):
        v = _get(screening, key)
        if v is None:
            continue
        a = np.asarray(v, np.float32)
        if a.ndim != nd or a.shape[0] != n:
            raise ValueError(f"screening '{key}' must have {nd} dimension(s) and length N = {n}, got shape {a.shape}")
        s[key] = a
    if "consistency_score" in s:
        s["consistency_used"] = bool(_get(screening, "consistency_used", False))


def _write(f: h5py.File, measurement_json: str, data: dict[str, Any], extra_attrs: Optional[Mapping]) -> None:
    f.attrs["format"] = FORMAT_RESULT
    f.attrs["measurement_json"] = measurement_json
    f.attrs["software_version"] = __version__
    for k, v in (extra_attrs or {}).items():
        if k in ("format", "measurement_json", "software_version"):
            raise ValueError(f"extra_attrs may not set the reserved attribute '{k}'")
        f.attrs[k] = v
    if "fields" in data or "illumination_per_um" in data:
        g = f.require_group("fields")
        if "fields" in data:
            fl = data["fields"]
            g.create_dataset("field", data=fl, chunks=(1,) + fl.shape[1:] if fl.size else None)
        if "illumination_per_um" in data:
            g.create_dataset("illumination_per_um", data=data["illumination_per_um"])
    if "screening" in data:
        s = data["screening"]
        g = f.create_group("screening")
        for key in ("score", "rule_peak", "decision", "source", "consistency", "consistency_score"):
            if key in s:
                g.create_dataset(key, data=s[key])
        g.attrs["model"] = s["model"]
        if "consistency_used" in s:
            g.attrs["consistency_used"] = s["consistency_used"]
    if "tomogram" in data:
        t = data["tomogram"]
        g = f.create_group("tomogram")
        for key in ("ri", "ri_tv", "ri_deep", "ri_ms", "labels"):
            if key in t:
                g.create_dataset(key, data=t[key])
                g[key].attrs["element_size_um"] = t["voxel_size_um"]  # (z, y, x): Fiji HDF5 plugin, ilastik
        for k, v in t.get("ri_ms_record", {}).items():
            g["ri_ms"].attrs[k] = v
        g.attrs["voxel_size_um"] = t["voxel_size_um"]
        g.attrs["origin_um"] = t["origin_um"]
        g.attrs["medium_index"] = t["medium_index"]
        g.attrs["method"] = t["method"]
    if "birefringence" in data:
        g = f.create_group("birefringence")
        for key, v in data["birefringence"].items():
            g.create_dataset(key, data=v)
            if v.ndim == 3 and "tomogram" in data and v.shape == data["tomogram"]["ri"].shape:
                g[key].attrs["element_size_um"] = data["tomogram"]["voxel_size_um"]
    if "retrieval" in data:
        g = f.create_group("retrieval")
        for key, v in data["retrieval"]["quality"].items():
            g.create_dataset(key, data=v)
        for key, v in data["retrieval"]["attrs"].items():
            g.attrs[key] = v


def write_result(path: str | Path, *, measurement_json: str, fields: Any = None,
                 illumination_per_um: Any = None, screening: Any = None, tomogram: Any = None,
                 birefringence: Any = None, extra_attrs: Optional[Mapping[str, Any]] = None,
                 retrieval: Any = None) -> Path:
    """Write one result file atomically, exactly as ``docs/formats.md`` §2.

    Parameters
    ----------
    path : path
        Destination, normally ``<out>/<name>.odt.h5``; its folder is created if needed.
    measurement_json : str
        The measurement's metadata as imported (JSON text).
    fields : (N, h, w) complex, optional
        Sample field / background field at the sample plane; stored complex64.
    illumination_per_um : (N, 2) float, optional
        Illumination spatial frequency (fx, fy) of each field, cycles/µm.
    screening : mapping or object, optional
        ``score``, ``rule_peak``, ``decision``, ``source`` (each (N,)) and ``model`` (str).
    tomogram : mapping or object (e.g. :class:`TomogramResult`), optional
        ``ri`` (Z, Y, X), optional ``ri_tv``, ``ri_deep``, ``ri_ms`` (with its ``ri_ms_record``, the
        attributes of ``tomogram/ri_ms``); ``voxel_size_um`` and
        ``origin_um`` (z, y, x) in µm, ``medium_index``, ``method``.
    birefringence : mapping or object, optional
        Any of ``n_e``, ``n_o`` (Z, Y, X), ``director`` (Z, Y, X, 3), ``tensor`` (Z, Y, X, 3, 3).
    extra_attrs : mapping, optional
        More file-level attributes.
    retrieval : mapping or :class:`RetrievalResult`, optional
        ``quality`` (name → (N,) array) and ``attrs`` (side-band choice, unwrapping method).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If a shape or value breaks the format; nothing is written then.
    """
    data = _prepare(measurement_json, fields, illumination_per_um, screening, tomogram, birefringence, retrieval)
    path = Path(path)
    with atomic_h5(path) as f:
        _write(f, measurement_json, data, extra_attrs)
    return path


def _str_attr(obj: h5py.HLObject, key: str, default: str = "") -> str:
    v = obj.attrs.get(key, default)
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def read_result(path: str | Path, groups: Optional[Iterable[str]] = None) -> ResultFile:
    """Read a result file (also a partial one holding only some groups).

    Parameters
    ----------
    path : path
        A ``.odt.h5`` file.
    groups : iterable of str, optional
        Which of "fields", "screening", "tomogram", "birefringence" to load (default all);
        groups not asked for are left None.

    Returns
    -------
    ResultFile

    Raises
    ------
    ValueError
        If the file is not an ``odt-result/1`` file; the message names it.
    """
    path = Path(path)
    want = set(GROUPS if groups is None else groups)
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise ValueError(f"'{path}': not a readable HDF5 result file ({type(e).__name__}: {e})") from None
    with f:
        fmt = _str_attr(f, "format")
        if fmt != FORMAT_RESULT:
            raise ValueError(f"'{path}': attribute 'format' is {fmt!r}, expected '{FORMAT_RESULT}'")
        res = ResultFile(path=path, format=fmt, measurement_json=_str_attr(f, "measurement_json"),
                         software_version=_str_attr(f, "software_version"))
        res.attrs = {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in f.attrs.items()
                     if k not in ("format", "measurement_json", "software_version")}
        if "fields" in want and "fields" in f:
            g = f["fields"]
            res.fields = g["field"][()] if "field" in g else None
            res.illumination_per_um = g["illumination_per_um"][()] if "illumination_per_um" in g else None
        if "screening" in want and "screening" in f:
            g = f["screening"]
            res.screening = ScreeningResult(score=g["score"][()], rule_peak=g["rule_peak"][()],
                                            decision=g["decision"][()], source=g["source"][()],
                                            model=_str_attr(g, "model"),
                                            consistency=g["consistency"][()] if "consistency" in g else None,
                                            consistency_score=g["consistency_score"][()]
                                            if "consistency_score" in g else None,
                                            consistency_used=bool(g.attrs.get("consistency_used", False)))
        if "tomogram" in want and "tomogram" in f:
            g = f["tomogram"]
            res.tomogram = TomogramResult(
                ri=g["ri"][()], ri_tv=g["ri_tv"][()] if "ri_tv" in g else None,
                ri_deep=g["ri_deep"][()] if "ri_deep" in g else None,
                ri_ms=g["ri_ms"][()] if "ri_ms" in g else None,
                ri_ms_record=_read_ms_record(g["ri_ms"]) if "ri_ms" in g else None,
                labels=g["labels"][()] if "labels" in g else None,
                voxel_size_um=tuple(float(x) for x in g.attrs["voxel_size_um"]),  # type: ignore[arg-type]
                origin_um=tuple(float(x) for x in g.attrs["origin_um"]),  # type: ignore[arg-type]
                medium_index=float(g.attrs["medium_index"]), method=_str_attr(g, "method"))
        if "birefringence" in want and "birefringence" in f:
            g = f["birefringence"]
            res.birefringence = BirefringenceResult(
                **{k: (g[k][()] if k in g else None) for k in ("n_e", "n_o", "director", "tensor")})
        if "retrieval" in want and "retrieval" in f:
            g = f["retrieval"]
            res.retrieval = RetrievalResult(
                quality={k: g[k][()] for k in g.keys()},
                attrs={k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in g.attrs.items()})
    return res


def is_complete_result(path: str | Path, require: Iterable[str] = ()) -> bool:
    """True if ``path`` is a readable ``odt-result/1`` file holding every group in ``require``."""
    try:
        with h5py.File(path, "r") as f:
            return _str_attr(f, "format") == FORMAT_RESULT and all(g in f for g in require)
    except Exception:
        return False


def update_result(path: str | Path, **groups: Any) -> Path:
    """Rewrite a result file atomically, replacing the groups given and keeping the others.

    Parameters
    ----------
    path : path
        An existing result file.
    **groups
        Any keyword of :func:`write_result` (``fields``, ``illumination_per_um``,
        ``screening``, ``tomogram``, ``birefringence``, ``measurement_json``,
        ``extra_attrs`` (merged into the existing attributes)), and ``labels``: object labels
        (Z, Y, X) for ``tomogram/labels`` (the tomogram kept; 0 = background, 1..K = objects).
        A keyword given as None keeps what the file holds. A new ``tomogram`` without labels
        drops the stored labels (they belonged to the old one).

    Raises
    ------
    ValueError
        ``labels`` for a file without a tomogram, or of another shape than it.
    """
    allowed = {"fields", "illumination_per_um", "screening", "tomogram", "birefringence",
               "measurement_json", "extra_attrs", "retrieval", "labels"}
    unknown = set(groups) - allowed
    if unknown:
        raise TypeError(f"update_result got unknown groups {sorted(unknown)}")
    old = read_result(path)

    def pick(key: str, current: Any) -> Any:
        v = groups.get(key)
        return current if v is None else v

    attrs = dict(old.attrs)
    attrs.update(groups.get("extra_attrs") or {})
    tomogram = pick("tomogram", old.tomogram)
    if groups.get("labels") is not None:
        if tomogram is None:
            raise ValueError(f"'{path}' holds no tomogram: labels need one")
        tomogram = TomogramResult.from_tomogram(tomogram)
        tomogram.labels = np.asarray(groups["labels"])
    return write_result(
        path, measurement_json=pick("measurement_json", old.measurement_json),
        fields=pick("fields", old.fields), illumination_per_um=pick("illumination_per_um", old.illumination_per_um),
        screening=pick("screening", old.screening), tomogram=tomogram,
        birefringence=pick("birefringence", old.birefringence), extra_attrs=attrs,
        retrieval=pick("retrieval", old.retrieval))
