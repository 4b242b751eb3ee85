"""``odt-studio batch --measure``: objects and measurements of every result, in one CSV.

A post-pass over the result files a batch wrote (``docs/formats.md`` §3): each
``<out_dir>/<name>.odt.h5`` is read, its objects are segmented (:func:`engine.analysis.segment_objects`;
a stored ``tomogram/labels`` is used as it is) and measured, and ``<out_dir>/measurements.csv``
gets one row per object, the measurement's name first.

The RI volume measured is ``tomogram/ri_ms`` if the file has it, else ``tomogram/ri_tv``, else ``tomogram/ri_deep``,
else ``tomogram/ri``; the column ``source_volume`` says which. Birefringent results add the
mean n_e − n_o and the director order parameter.

Units (``docs/formats.md``): µm, µm², µm³, pg; positions in the tomogram's coordinates
(voxel (0, 0, 0) at ``tomogram/origin_um``), components (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import h5py
import numpy as np

from ..analysis.objects import (DEFAULT_ALPHA_UM3_PER_PG, MEASUREMENT_COLUMNS, dn_threshold, measure_objects,
                                segment_objects, write_measurements_csv)
from ..store.results import RESULT_SUFFIX

__all__ = ["MEASUREMENTS_NAME", "MEASUREMENTS_COLUMNS", "RI_PREFERENCE", "MeasureSummary", "measure_result",
           "measure_results"]

MEASUREMENTS_NAME = "measurements.csv"
#: Which tomogram volume is measured: the first of these the file has.
RI_PREFERENCE = ("ri_ms", "ri_tv", "ri_deep", "ri")
#: Columns of measurements.csv: the context of each row, then the object's measurements.
MEASUREMENTS_COLUMNS: tuple[str, ...] = (("name", "source_volume", "medium_index", "threshold_dn",
                                          "alpha_um3_per_pg") + MEASUREMENT_COLUMNS)


@dataclass
class MeasureSummary:
    """What :func:`measure_results` did."""

    csv_path: Path
    n_objects: int = 0
    objects_per_name: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # name -> one-line message

    @property
    def ok(self) -> bool:
        return not self.errors


def _read_volumes(path: Path) -> dict[str, Any]:
    """The RI volume to measure, its geometry, stored labels and birefringence of one result file."""
    with h5py.File(path, "r") as f:
        if "tomogram" not in f or "ri" not in f["tomogram"]:
            raise ValueError(f"{path}: no tomogram/ri in this result file")
        g = f["tomogram"]
        source = next(k for k in RI_PREFERENCE if k in g)
        out: dict[str, Any] = {
            "source": source, "ri": g[source][()],
            "voxel_size_um": tuple(float(v) for v in g.attrs["voxel_size_um"]),
            "origin_um": tuple(float(v) for v in g.attrs["origin_um"]),
            "medium_index": float(g.attrs["medium_index"]),
            "labels": g["labels"][()] if "labels" in g else None, "birefringence": None}
        if "birefringence" in f:
            b = f["birefringence"]
            bire = {k: b[k][()] for k in ("n_e", "n_o", "director") if k in b}
            if bire and all(v.shape[:3] == out["ri"].shape for v in bire.values()):
                out["birefringence"] = bire
    return out


def measure_result(path: Union[str, Path], *, threshold: Union[None, str, float] = "otsu",
                   min_volume_um3: float = 0.1, split_touching: bool = False,
                   alpha_um3_per_pg: float = DEFAULT_ALPHA_UM3_PER_PG) -> list[dict[str, Any]]:
    """Segment and measure the objects of one result file.

    Parameters
    ----------
    path : path
        A ``<name>.odt.h5`` result file.
    threshold, min_volume_um3, split_touching
        As :func:`engine.analysis.segment_objects` (not used if the file has ``tomogram/labels``).
    alpha_um3_per_pg : float
        Specific refraction increment for the dry mass, µm³/pg.

    Returns
    -------
    list of dict
        One row per object, with the columns :data:`MEASUREMENTS_COLUMNS` (``name`` from
        the file name).

    Raises
    ------
    ValueError
        The file is not a result file or holds no tomogram (the message names the file).
    """
    path = Path(path)
    try:
        v = _read_volumes(path)
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: cannot read the tomogram ({type(e).__name__}: {e})") from None
    nm, voxel = v["medium_index"], v["voxel_size_um"]
    th = dn_threshold(v["ri"], nm, threshold)
    labels = v["labels"]
    if labels is None and not np.isfinite(th):  # nothing above the medium
        labels = np.zeros(v["ri"].shape, np.int32)
    elif labels is None:
        labels = segment_objects(v["ri"], nm, voxel, threshold=th, min_volume_um3=min_volume_um3,
                                 split_touching=split_touching)
    elif labels.shape != v["ri"].shape:
        raise ValueError(f"{path}: tomogram/labels shape {labels.shape} differs from the tomogram's {v['ri'].shape}")
    objs = measure_objects(v["ri"], labels, nm, voxel, v["origin_um"], alpha_um3_per_pg=alpha_um3_per_pg,
                           threshold=th if np.isfinite(th) else None, birefringence=v["birefringence"])
    name = path.name[: -len(RESULT_SUFFIX)] if path.name.endswith(RESULT_SUFFIX) else path.stem
    context = {"name": name, "source_volume": v["source"], "medium_index": nm,
               "threshold_dn": th if np.isfinite(th) else None, "alpha_um3_per_pg": alpha_um3_per_pg}
    return [{**context, **o.as_row()} for o in objs]


def measure_results(out_dir: Union[str, Path], names: Iterable[str], *, threshold: Union[None, str, float] = "otsu",
                    min_volume_um3: float = 0.1, split_touching: bool = False,
                    alpha_um3_per_pg: float = DEFAULT_ALPHA_UM3_PER_PG,
                    log: Optional[Callable[[str], None]] = None) -> MeasureSummary:
    """Measure the objects of ``<out_dir>/<name>.odt.h5`` for every name; write ``measurements.csv``.

    A file that cannot be measured is reported (``errors``, and ``log``) and the others go
    on; ``measurements.csv`` (written atomically) holds the rows of the files measured, in
    the order of ``names``. A file without objects adds no row.

    Parameters
    ----------
    out_dir : path
        The batch's output folder.
    names : iterable of str
        Result names (measurement folder names).
    threshold, min_volume_um3, split_touching, alpha_um3_per_pg
        See :func:`measure_result`.
    log : callable, optional
        Called with one line per file.

    Returns
    -------
    MeasureSummary
    """
    out_dir = Path(out_dir)
    summary = MeasureSummary(csv_path=out_dir / MEASUREMENTS_NAME)
    rows: list[dict[str, Any]] = []
    for name in names:
        path = out_dir / f"{name}{RESULT_SUFFIX}"
        try:
            found = measure_result(path, threshold=threshold, min_volume_um3=min_volume_um3,
                                   split_touching=split_touching, alpha_um3_per_pg=alpha_um3_per_pg)
        except Exception as e:  # one bad file must not stop the others
            summary.errors[name] = " ".join(f"{type(e).__name__}: {e}".split())
            if log:
                log(f"measure {name}: FAILED {summary.errors[name]}")
            continue
        rows.extend(found)
        summary.objects_per_name[name] = len(found)
        if log:
            log(f"measure {name}: {len(found)} object(s)")
    summary.n_objects = len(rows)
    write_measurements_csv(summary.csv_path, rows, columns=MEASUREMENTS_COLUMNS)
    return summary
