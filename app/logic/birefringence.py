"""What the Birefringence tab shows: n_e, n_o, Δn and the director with their geometry (no Qt).

The volumes come from the ``birefringence`` group of a result file (``docs/formats.md`` §2:
``n_e``, ``n_o`` (Z, Y, X), ``director`` (Z, Y, X, 3) in (z, y, x) components), read with
:func:`engine.store.results.read_result`, or from a simulator's ``truth.h5``
(:func:`engine.store.birefringence.read_birefringence_truth`) for comparison. The loaders are
jobs for :class:`app.jobs.JobRunner` (``progress`` and ``cancel`` as in :mod:`engine.progress`).

Units: positions in µm, indices as refractive index (RI), Δn in RI units; volumes are (Z, Y, X).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from engine.progress import check_cancel, report
from engine.store.birefringence import read_birefringence_truth
from engine.store.results import read_result
from engine.tomogram import centred_origin

__all__ = [
    "QUANTITIES", "COLORMAPS", "MAX_3D_EDGE", "BirefringenceVolumes", "decimate_for_3d", "centred_origin",
    "load_birefringence_result", "load_truth", "describe_voxel", "slice_levels", "default_min_delta_n",
    "title_text", "ROUTES", "route_text",
]

#: Selector entries: key → label.
QUANTITIES = {"n_e": "n_e (extraordinary)", "n_o": "n_o (ordinary)", "delta_n": "Δn = n_e − n_o"}
COLORMAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo")
#: Largest edge (voxels) of the volume handed to the 3-D view; bigger volumes are subsampled.
MAX_3D_EDGE = 128


@dataclass
class BirefringenceVolumes:
    """What the tab shows: n_e, n_o, the director, their geometry, and a decimated 3-D copy.

    Attributes
    ----------
    n_e, n_o : ndarray, shape (Z, Y, X), float32
        Extraordinary and ordinary index (RI).
    director : ndarray, shape (Z, Y, X, 3), float32
        Unit optic axis, (z, y, x) components; zero where undefined.
    voxel_size_um, origin_um : (z, y, x) µm
    medium_index : float or None
    label : str
        Shown above the views, e.g. the file name, or "TRUTH (simulator)".
    source : Path or None
    is_truth : bool
        The volumes are the simulator's ground truth, not a reconstruction.
    delta_n : ndarray, shape (Z, Y, X), float32
        n_e − n_o.
    view3d : (delta_n, director, voxel_size_um) subsampled to at most :data:`MAX_3D_EDGE` per edge.
    route : str
        What made the volumes: the result file's ``tomogram/method`` (``"dtt-rytov"``,
        ``"dtt-refined"``, ``"learned-generator…"``), else its recorded ``birefringence_method``;
        ``""`` when the file does not say (see :func:`route_text`).
    route_reason : str
        Why ``auto`` chose that route (the file's ``birefringence_route`` attribute,
        :func:`engine.birefringence.routes.choose_route`); ``""`` for an explicit route or an
        older file.
    """

    n_e: np.ndarray
    n_o: np.ndarray
    director: np.ndarray
    voxel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    medium_index: Optional[float] = None
    label: str = ""
    source: Optional[Path] = None
    is_truth: bool = False
    delta_n: Optional[np.ndarray] = None
    view3d: Optional[tuple[np.ndarray, np.ndarray, tuple[float, float, float]]] = None
    route: str = ""
    route_reason: str = ""

    def __post_init__(self) -> None:
        self.n_e = np.asarray(self.n_e, dtype=np.float32)
        self.n_o = np.asarray(self.n_o, dtype=np.float32)
        self.director = np.asarray(self.director, dtype=np.float32)
        if self.n_e.ndim != 3 or self.n_o.shape != self.n_e.shape or self.director.shape != self.n_e.shape + (3,):
            raise ValueError(f"n_e, n_o must be (Z, Y, X) and director (Z, Y, X, 3); got {self.n_e.shape}, "
                             f"{self.n_o.shape}, {self.director.shape}")
        self.voxel_size_um = tuple(float(v) for v in self.voxel_size_um)  # type: ignore[assignment]
        self.origin_um = tuple(float(v) for v in self.origin_um)  # type: ignore[assignment]
        if self.delta_n is None:
            self.delta_n = self.n_e - self.n_o
        if self.view3d is None:
            self.view3d = decimate_for_3d(self.delta_n, self.director, self.voxel_size_um)

    def volume(self, quantity: str) -> np.ndarray:
        """The (Z, Y, X) volume of ``quantity`` ("n_e", "n_o" or "delta_n")."""
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}: one of {tuple(QUANTITIES)}")
        return {"n_e": self.n_e, "n_o": self.n_o, "delta_n": self.delta_n}[quantity]  # type: ignore[return-value]


def decimate_for_3d(delta_n: np.ndarray, director: np.ndarray, voxel_size_um: tuple[float, float, float],
                    max_edge: int = MAX_3D_EDGE) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Subsample by an integer stride so that no edge exceeds ``max_edge`` voxels (origin unchanged).

    Returns (delta_n, director, voxel_size_um) of the subsampled grid.
    """
    stride = max(1, math.ceil(max(delta_n.shape) / max_edge))
    if stride == 1:
        return delta_n, director, tuple(voxel_size_um)  # type: ignore[return-value]
    return (np.ascontiguousarray(delta_n[::stride, ::stride, ::stride]),
            np.ascontiguousarray(director[::stride, ::stride, ::stride]),
            tuple(float(v) * stride for v in voxel_size_um))  # type: ignore[return-value]


def load_birefringence_result(path: str | Path, *, progress: Optional[Callable[..., None]] = None,
                              cancel=None) -> BirefringenceVolumes:  # noqa: ANN001 - CancelToken
    """Read the birefringence group (and the tomogram's geometry) of a result file ``<name>.odt.h5``.

    Without a tomogram group the geometry comes from the measurement: cubic voxels of the lateral
    pixel size and the centred origin.

    Raises
    ------
    ValueError
        The file has no ``birefringence`` group with n_e, n_o and director.
    """
    path = Path(path)
    report(progress, 0.05, f"Reading {path.name}")
    res = read_result(path, groups=("tomogram", "birefringence"))
    check_cancel(cancel)
    b = res.birefringence
    if b is None or b.n_e is None or b.n_o is None or b.director is None:
        raise ValueError(f"{path.name} holds no birefringence result (birefringence/n_e, n_o, director); "
                         "process polarisation-resolved data with --birefringence")
    if res.tomogram is not None:
        vox, origin, n_m = res.tomogram.voxel_size_um, res.tomogram.origin_um, res.tomogram.medium_index
    else:
        md = json.loads(res.measurement_json or "{}")
        p = float(md.get("pixel_size_um", 1.0))
        vox = (p, p, p)
        origin = centred_origin(b.n_e.shape, vox)
        n_m = md.get("medium_index")
    report(progress, 0.6, "Preparing the views")
    vols = BirefringenceVolumes(b.n_e, b.n_o, b.director, vox, origin, n_m, label=path.name, source=path,
                                route=_recorded_route(res), route_reason=_auto_reason(res))
    report(progress, 1.0, "Loaded")
    return vols


def _recorded_route(res) -> str:  # noqa: ANN001 - engine.store.results.ResultFile
    """The route that made a result's birefringence volumes: ``tomogram/method``, else the recorded
    route (``auto``'s choice, else the option)."""
    method = res.tomogram.method if res.tomogram is not None else ""
    if method:
        return str(method)
    try:
        rec = json.loads(res.attrs.get("processing_options") or "{}")
        return str(rec.get("birefringence_route") or rec.get("birefringence_method") or "")
    except (json.JSONDecodeError, AttributeError):
        return ""


def _auto_reason(res) -> str:  # noqa: ANN001 - engine.store.results.ResultFile
    """Why ``auto`` chose the route (the ``birefringence_route`` attribute), '' when not chosen automatically."""
    try:
        rec = json.loads(res.attrs.get("birefringence_route") or "{}")
    except (json.JSONDecodeError, AttributeError, TypeError):
        return ""
    return str(rec.get("reason") or "") if isinstance(rec, dict) and rec.get("requested") == "auto" else ""


#: How the tab names each birefringence route (``tomogram/method`` values and the
#: ``birefringence_method`` option, :data:`engine.pipeline.process.BIREFRINGENCE_METHODS`).
ROUTES = {
    "dtt-rytov": "DTT (first-order dielectric tensor tomography)",
    "dtt": "DTT (first-order dielectric tensor tomography)",
    "dtt-refined": "DTT refined (DTT + simulate-and-correct steps with the vectorial multi-slice)",
    "learned-generator+dtt-director": "learned generator (n_e, n_o) with the DTT director",
    "learned-generator": "learned generator",
    "learned": "learned generator (n_e, n_o) with the DTT director",
    "auto": "chosen automatically (which one is not recorded)",
}


def route_text(data: Optional[BirefringenceVolumes]) -> str:
    """``Route: …`` — which reconstruction made the shown volumes (the tab's route label)."""
    if data is None:
        return ""
    if data.is_truth:
        return "Route: the simulator's truth (no reconstruction)"
    if not data.route:
        return "Route: not recorded in this file"
    text = f"Route: {ROUTES.get(data.route, data.route)}"
    return f"{text}\nChosen automatically: {data.route_reason}" if data.route_reason else text


def load_truth(path: str | Path, *, progress: Optional[Callable[..., None]] = None,
               cancel=None) -> BirefringenceVolumes:  # noqa: ANN001 - CancelToken
    """Read a simulator's ``truth.h5``; where it marks no anisotropy (n_e = n_o) the director is zero."""
    path = Path(path)
    report(progress, 0.05, f"Reading {path.name}")
    t = read_birefringence_truth(path)
    check_cancel(cancel)
    vols = BirefringenceVolumes(t.n_e, t.n_o, t.director, t.voxel_size_um, t.origin_um, t.medium_index,
                                label=f"TRUTH (simulator) — {path.parent.name}/{path.name}", source=path,
                                is_truth=True)
    report(progress, 1.0, "Loaded")
    return vols


def title_text(data: BirefringenceVolumes) -> str:
    """``<label>   (X×Y×Z voxels of dx×dy×dz µm, x×y×z)``, the line above the views."""
    shape = "×".join(str(n) for n in data.n_e.shape[::-1])
    vox = "×".join(f"{v:g}" for v in data.voxel_size_um[::-1])
    return f"{data.label}   ({shape} voxels of {vox} µm, x×y×z)"


def default_min_delta_n(data: BirefringenceVolumes) -> float:
    """The director lines' default |Δn| threshold: 0.3 × the 99.5th percentile of |Δn| (≥ 1e-4), 4 decimals."""
    dn = data.delta_n
    big = float(np.percentile(np.abs(dn), 99.5)) if dn is not None and dn.size else 0.0
    return round(max(0.3 * big, 1e-4), 4)


def slice_levels(data: BirefringenceVolumes, quantity: str) -> tuple[float, float, str]:
    """Display range (low, high) RI and colour-bar label of ``quantity`` in the slices.

    Δn: 0 (or −high when a fifth of the range is negative) to the 99.8th percentile of |Δn|;
    n_e, n_o: the medium index (else the 0.5th percentile) to the 99.9th percentile.
    """
    vol = data.volume(quantity)
    if quantity == "delta_n":
        hi = float(np.percentile(np.abs(vol), 99.8)) or 1e-3
        return (-hi if vol.min() < -0.2 * hi else 0.0), hi, "Δn"
    lo = data.medium_index if data.medium_index is not None else float(np.percentile(vol, 0.5))
    hi = float(np.percentile(vol, 99.9))
    return min(lo, hi - 1e-3), hi, quantity


def describe_voxel(data: Optional[BirefringenceVolumes], z: int, y: int, x: int) -> str:
    """``x … y … z … µm  n_e …  n_o …  Δn …  director (x, y, z) …`` of voxel (z, y, x) ("" without data)."""
    if data is None:
        return ""
    zu, yu, xu = (o + i * v for o, i, v in zip(data.origin_um, (z, y, x), data.voxel_size_um))
    dz, dy, dx = (float(c) for c in data.director[z, y, x])
    dn = float(data.delta_n[z, y, x])  # type: ignore[index]
    text = (f"x {xu:+.2f}  y {yu:+.2f}  z {zu:+.2f} µm   n_e = {data.n_e[z, y, x]:.4f}   "
            f"n_o = {data.n_o[z, y, x]:.4f}   Δn = {dn:+.4f}   ")
    if dx == dy == dz == 0.0:
        return text + "director —"
    tilt = math.degrees(math.acos(min(1.0, abs(dz))))
    azim = math.degrees(math.atan2(dy, dx)) % 180.0
    return text + (f"director (x, y, z) = ({dx:+.2f}, {dy:+.2f}, {dz:+.2f}), azimuth {azim:.0f}°, "
                   f"tilt from z {tilt:.0f}°")
