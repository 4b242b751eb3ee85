"""Birefringence volumes on disk: the simulator's truth file, and whether a result file holds one.

Two files carry n_e, n_o and the director:

* a result file ``<name>.odt.h5`` (``docs/formats.md`` §2), whose ``birefringence`` group is read
  by :func:`engine.store.results.read_result`; :func:`has_birefringence` only looks whether the
  group is there (no array is read);
* the simulator's ``truth.h5`` beside a simulated measurement folder
  (:func:`engine.simulate.demo.write_truth`): datasets ``n_e``, ``n_o`` (Z, Y, X) RI and
  ``director`` (Z, Y, X, 3) in (z, y, x) components; attributes ``voxel_size_um`` (z, y, x) µm,
  ``origin_um`` (z, y, x) µm (optional: the centred origin ``−(n // 2)·d`` of ``docs/formats.md``
  otherwise) and ``medium_index`` (optional). :func:`read_birefringence_truth` reads it.

Units: positions and sizes in µm, indices as refractive index (RI).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from ..tomogram import centred_origin

__all__ = ["BirefringenceTruth", "read_birefringence_truth", "has_birefringence"]


@dataclass(frozen=True)
class BirefringenceTruth:
    """The simulator's true birefringent sample.

    Attributes
    ----------
    n_e, n_o : ndarray, shape (Z, Y, X), float32
        Extraordinary and ordinary index (RI).
    director : ndarray, shape (Z, Y, X, 3), float32
        Unit optic axis, (z, y, x) components; zero where the truth has no anisotropy (n_e = n_o).
    voxel_size_um, origin_um : tuple of 3 float
        (z, y, x) µm.
    medium_index : float or None
    """

    n_e: np.ndarray
    n_o: np.ndarray
    director: np.ndarray
    voxel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    medium_index: Optional[float]


def read_birefringence_truth(path: str | Path) -> BirefringenceTruth:
    """Read n_e, n_o, the director and the geometry of a simulator's ``truth.h5``.

    Raises
    ------
    ValueError
        The file lacks one of ``n_e``, ``n_o``, ``director`` (e.g. the truth of an isotropic sample).
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        missing = [k for k in ("n_e", "n_o", "director") if k not in f]
        if missing:
            raise ValueError(f"{path} is not a birefringent truth file (missing {', '.join(missing)})")
        n_e = np.asarray(f["n_e"][()], np.float32)
        n_o = np.asarray(f["n_o"][()], np.float32)
        director = np.asarray(f["director"][()], np.float32)
        vox = tuple(float(v) for v in f.attrs["voxel_size_um"])
        if "origin_um" in f.attrs:
            origin = tuple(float(v) for v in f.attrs["origin_um"])
        else:
            origin = centred_origin(n_e.shape, vox)
        n_m = float(f.attrs["medium_index"]) if "medium_index" in f.attrs else None
    director = np.where((np.abs(n_e - n_o) > 0)[..., None], director, 0.0).astype(np.float32)
    return BirefringenceTruth(n_e, n_o, director, vox, origin, n_m)  # type: ignore[arg-type]


def has_birefringence(path: str | Path) -> bool:
    """Whether the HDF5 file ``path`` holds a ``birefringence`` group (False if it cannot be opened)."""
    try:
        with h5py.File(path, "r") as f:
            return "birefringence" in f
    except (OSError, ValueError):
        return False
