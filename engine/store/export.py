"""Export the volumes of a result file to formats that Fiji, napari, OMERO and ilastik read, scale kept.

``odt-studio export RESULT.odt.h5 --to ome-tiff|ome-zarr|imagej [--volume V] [--out PATH]``
(``docs/formats.md`` §3) calls :func:`export_result`.

Units and axes (``docs/formats.md``): volumes (z, y, x); voxel sizes and origins in µm,
ordered (z, y, x); the origin is the position of the centre of voxel (0, 0, 0) in the
tomogram's coordinates (x, y = 0 at the image centre, z = 0 at the focal plane). Every
format below keeps both:

* **OME-TIFF** (tifffile): ``PhysicalSizeX/Y/Z`` in µm, and the origin as the position
  (``PositionX/Y/Z``, µm) of every plane.
* **OME-Zarr** (NGFF 0.4, zarr v2 layout): one scale level ``0`` with the
  coordinate transformations ``scale`` = voxel size and ``translation`` = origin, axes
  z, y, x in micrometres. Needs the optional ``zarr`` package.
* **ImageJ hyperstack TIFF**: pixel width/height (resolution), ``spacing`` (z) in µm, and
  ``xorigin``/``yorigin``/``zorigin`` (ImageJ's calibration origin, in voxels: physical
  x = (i − xorigin)·dx); display range from n_m up for index volumes.

Volumes: ``ri``, ``ri_tv``, ``ri_deep``, ``ri_ms`` (``tomogram/``), ``n_e``, ``n_o`` (``birefringence/``),
``dn`` = n_e − n_o, and ``labels``: ``tomogram/labels`` when the file holds it, else computed
by :func:`engine.analysis.segment_objects` (Otsu on the best RI volume: ri_ms, ri_tv, ri_deep, ri).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import h5py
import numpy as np

from .results import RESULT_SUFFIX, temporary_prefix

__all__ = ["EXPORT_FORMATS", "VOLUMES", "ExportError", "ExportVolume", "available_volumes", "load_volume",
           "default_export_path", "export_result", "write_ome_tiff", "write_ome_zarr", "write_imagej_tiff"]

EXPORT_FORMATS = ("ome-tiff", "ome-zarr", "imagej")
VOLUMES = ("ri", "ri_tv", "ri_deep", "ri_ms", "n_e", "n_o", "dn", "labels")
_SUFFIX = {"ome-tiff": ".ome.tif", "ome-zarr": ".ome.zarr", "imagej": ".tif"}
_DESCRIPTION = {"ri": "refractive index", "ri_tv": "refractive index, total-variation regularised",
                "ri_deep": "refractive index, learned regulariser",
                "ri_ms": "refractive index, multiple-scattering inversion", "n_e": "extraordinary index n_e",
                "n_o": "ordinary index n_o", "dn": "birefringence n_e - n_o", "labels": "object labels"}
ZARR_EXTRA = "export"  # the optional-dependency extra that brings zarr


class ExportError(ValueError):
    """A volume cannot be exported; the message names the file and the problem."""


@dataclass
class ExportVolume:
    """One volume of a result file with its geometry.

    Attributes
    ----------
    name : str
        One of :data:`VOLUMES`.
    data : (Z, Y, X) array
        float32 for indices, uint16/uint32 for labels.
    voxel_size_um, origin_um : (z, y, x) tuple of float
        Voxel size and position of voxel (0, 0, 0), µm.
    medium_index : float
        n_m of the tomogram.
    source : Path
        The result file.
    """

    name: str
    data: np.ndarray
    voxel_size_um: tuple[float, float, float]
    origin_um: tuple[float, float, float]
    medium_index: float
    source: Path

    @property
    def description(self) -> str:
        return _DESCRIPTION[self.name]

    @property
    def is_labels(self) -> bool:
        return self.name == "labels"

    def display_range(self) -> tuple[float, float]:
        """Contrast limits: from n_m to the maximum for indices, from 0 for Δn and labels."""
        hi = float(np.nanmax(self.data)) if self.data.size else 1.0
        lo = self.medium_index if self.name in ("ri", "ri_tv", "ri_deep", "ri_ms", "n_e", "n_o") else 0.0
        return (lo, hi if hi > lo else lo + 1e-3)


def _result_name(path: Path) -> str:
    return path.name[: -len(RESULT_SUFFIX)] if path.name.endswith(RESULT_SUFFIX) else path.stem


def available_volumes(path: Union[str, Path]) -> list[str]:
    """The volumes :func:`load_volume` can give for this file (``labels`` whenever there is a tomogram)."""
    with _open(Path(path)) as f:
        return _volumes_in(f)


def _volumes_in(f: h5py.File) -> list[str]:
    t = f["tomogram"] if "tomogram" in f else {}
    b = f["birefringence"] if "birefringence" in f else {}
    have = [k for k in ("ri", "ri_tv", "ri_deep", "ri_ms") if k in t] + [k for k in ("n_e", "n_o") if k in b]
    if "n_e" in b and "n_o" in b:
        have.append("dn")
    if "ri" in t:
        have.append("labels")
    return have


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except Exception as e:
        raise ExportError(f"'{path}': not a readable result file ({type(e).__name__}: {e})") from None


def load_volume(path: Union[str, Path], volume: str = "ri", *, threshold: Union[None, str, float] = "otsu",
                min_volume_um3: float = 0.1) -> ExportVolume:
    """Read one volume of a result file with its voxel size, origin and n_m.

    Parameters
    ----------
    path : path
        A ``<name>.odt.h5`` result file.
    volume : str
        One of :data:`VOLUMES`.
    threshold, min_volume_um3
        For ``labels`` computed on the fly (:func:`engine.analysis.segment_objects`).

    Raises
    ------
    ExportError
        Unknown volume, or one the file does not hold (the message lists those it holds).
    """
    path = Path(path)
    if volume not in VOLUMES:
        raise ExportError(f"unknown volume {volume!r}: one of {', '.join(VOLUMES)}")
    with _open(path) as f:
        have = _volumes_in(f)
        if volume not in have:
            raise ExportError(f"'{path}' has no volume '{volume}'; it has: {', '.join(have) or 'none'}")
        if "tomogram" not in f or "voxel_size_um" not in f["tomogram"].attrs:
            raise ExportError(f"'{path}' has no tomogram group with voxel_size_um and origin_um")
        g = f["tomogram"]
        geo = dict(voxel_size_um=tuple(float(v) for v in g.attrs["voxel_size_um"]),
                   origin_um=tuple(float(v) for v in g.attrs["origin_um"]),
                   medium_index=float(g.attrs["medium_index"]))
        if volume in ("ri", "ri_tv", "ri_deep", "ri_ms"):
            data = g[volume][()].astype(np.float32)
        elif volume in ("n_e", "n_o"):
            data = f["birefringence"][volume][()].astype(np.float32)
        elif volume == "dn":
            b = f["birefringence"]
            data = (b["n_e"][()].astype(np.float32) - b["n_o"][()].astype(np.float32))
        elif "labels" in g:
            data = g["labels"][()]
        else:
            from ..analysis.objects import segment_objects

            ri = g[next(k for k in ("ri_ms", "ri_tv", "ri_deep", "ri") if k in g)][()]
            data = segment_objects(ri, geo["medium_index"], geo["voxel_size_um"], threshold=threshold,
                                   min_volume_um3=min_volume_um3)
    if volume == "labels":
        data = data.astype(np.uint16 if int(data.max(initial=0)) < 2 ** 16 else np.uint32)
    return ExportVolume(name=volume, data=data, source=path, **geo)


def default_export_path(path: Union[str, Path], to: str, volume: str) -> Path:
    """``<folder>/<name>.<volume>.ome.tif`` / ``.ome.zarr`` / ``.tif`` beside the result file."""
    path = Path(path)
    return path.with_name(f"{_result_name(path)}.{volume}{_SUFFIX[to]}")


# ---------------------------------------------------------------------------- writers
def _atomic_file(out: Path, write) -> Path:
    """Call ``write(tmp_path)`` and rename the temporary file onto ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(out), suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def write_ome_tiff(out: Union[str, Path], vol: ExportVolume) -> Path:
    """Write ``vol`` as an OME-TIFF (ZYX) with physical sizes and plane positions in µm."""
    import tifffile

    (dz, dy, dx), (z0, y0, x0) = vol.voxel_size_um, vol.origin_um
    nz = vol.data.shape[0]
    meta = {"axes": "ZYX", "Name": f"{_result_name(vol.source)} {vol.name}",
            "PhysicalSizeX": dx, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": dy, "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": dz, "PhysicalSizeZUnit": "µm",
            "Plane": {"PositionX": [x0] * nz, "PositionXUnit": ["µm"] * nz,
                      "PositionY": [y0] * nz, "PositionYUnit": ["µm"] * nz,
                      "PositionZ": [z0 + k * dz for k in range(nz)], "PositionZUnit": ["µm"] * nz},
            "Description": f"{vol.description}; n_m {vol.medium_index}; from {vol.source.name}"}

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, vol.data, ome=True, photometric="minisblack", metadata=meta,
                         bigtiff=vol.data.nbytes > 2 ** 31)
    return _atomic_file(Path(out), write)


def write_imagej_tiff(out: Union[str, Path], vol: ExportVolume) -> Path:
    """Write ``vol`` as an ImageJ hyperstack TIFF with voxel size, origin and display range.

    ImageJ stores 8/16-bit integers and 32-bit floats only: labels above 65535 are written
    as float32.
    """
    import tifffile

    (dz, dy, dx), (z0, y0, x0) = vol.voxel_size_um, vol.origin_um
    data = vol.data if vol.data.dtype in (np.uint8, np.uint16, np.float32) else vol.data.astype(np.float32)
    lo, hi = vol.display_range()
    meta = {"axes": "ZYX", "spacing": dz, "unit": "um", "xorigin": -x0 / dx, "yorigin": -y0 / dy,
            "zorigin": -z0 / dz, "min": lo, "max": hi, "info": f"{vol.description}; n_m {vol.medium_index}"}

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, imagej=True, resolution=(1.0 / dx, 1.0 / dy), metadata=meta)
    return _atomic_file(Path(out), write)


def _import_zarr():
    try:
        import zarr
    except ImportError:
        raise ExportError("OME-Zarr export needs the optional package 'zarr': "
                          f"pip install 'odt-studio[{ZARR_EXTRA}]' (or pip install zarr)") from None
    return zarr


def ngff_attrs(vol: ExportVolume) -> dict:
    """The group attributes of an NGFF 0.4 image: one scale level with scale and translation (µm)."""
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    transforms = [{"type": "scale", "scale": [float(v) for v in vol.voxel_size_um]},
                  {"type": "translation", "translation": [float(v) for v in vol.origin_um]}]
    attrs: dict = {"multiscales": [{"version": "0.4", "name": f"{_result_name(vol.source)} {vol.name}", "axes": axes,
                                    "datasets": [{"path": "0", "coordinateTransformations": transforms}]}],
                   "odt-studio": {"volume": vol.name, "description": vol.description,
                                  "medium_index": vol.medium_index, "source": vol.source.name}}
    if vol.is_labels:
        attrs["image-label"] = {"version": "0.4"}
    else:
        lo, hi = vol.display_range()
        attrs["omero"] = {"version": "0.4", "channels": [{"label": vol.name, "color": "FFFFFF", "active": True,
                                                           "window": {"start": lo, "end": hi, "min": lo, "max": hi}}]}
    return attrs


def write_ome_zarr(out: Union[str, Path], vol: ExportVolume) -> Path:
    """Write ``vol`` as an OME-Zarr (NGFF 0.4) image folder; an existing one at ``out`` is replaced."""
    zarr = _import_zarr()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(out), suffix=".tmp", dir=out.parent))
    try:
        chunks = tuple(min(n, c) for n, c in zip(vol.data.shape, (64, 256, 256)))
        if int(zarr.__version__.split(".")[0]) >= 3:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            arr = root.create_array("0", shape=vol.data.shape, dtype=vol.data.dtype, chunks=chunks,
                                    chunk_key_encoding={"name": "v2", "separator": "/"})
            arr[...] = vol.data
        else:  # zarr 2
            root = zarr.open_group(str(tmp), mode="w")
            root.create_dataset("0", data=vol.data, chunks=chunks, dimension_separator="/")
        root.attrs.update(json.loads(json.dumps(ngff_attrs(vol))))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


_WRITERS = {"ome-tiff": write_ome_tiff, "ome-zarr": write_ome_zarr, "imagej": write_imagej_tiff}


def export_result(path: Union[str, Path], to: str, volume: str = "ri", out: Optional[Union[str, Path]] = None) -> Path:
    """Export one volume of a result file (``odt-studio export``).

    Parameters
    ----------
    path : path
        A ``<name>.odt.h5`` result file.
    to : {"ome-tiff", "ome-zarr", "imagej"}
    volume : str
        One of :data:`VOLUMES` that the file has (see :func:`available_volumes`).
    out : path, optional
        Destination; default :func:`default_export_path` (beside the result file).

    Returns
    -------
    Path
        What was written.

    Raises
    ------
    ExportError
        Unknown format or volume, a volume the file lacks, or zarr missing for OME-Zarr.
    """
    if to not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {to!r}: one of {', '.join(EXPORT_FORMATS)}")
    if to == "ome-zarr":
        _import_zarr()  # fail before reading (or segmenting) anything
    vol = load_volume(path, volume)
    return _WRITERS[to](Path(out) if out is not None else default_export_path(path, to, volume), vol)
