"""napari reader for ODT Studio result files ``*.odt.h5`` (``docs/formats.md`` §2).

Returns napari "layer data" tuples ``(data, kwargs, layer_type)`` and never imports napari.

Units and axes: every layer lives in the tomogram's coordinates in µm, axes (z, y, x):
image and label layers carry ``scale`` = voxel size and ``translate`` = origin (the position
of voxel (0, 0, 0)), so they line up with each other and with other data in µm. Index
volumes get a contrast range from n_m (the medium is black) to their maximum.

Layers, as the file has them:

* images ``ri`` (and ``ri_tv``, ``ri_deep``, ``ri_ms``; only the regularised one shown at first),
  ``n_e``, ``n_o`` and ``dn`` = n_e − n_o (hidden at first);
* labels ``tomogram/labels``;
* vectors: the birefringence director, subsampled to at most ``max_vectors`` glyphs inside
  the sample. Vector data is given directly in µm (no scale): each row is
  ``[start, projection]`` (z, y, x), centred on its voxel (the director is headless), of
  length 0.9 × the sampling step, coloured by its in-plane (x, y) angle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import h5py
import numpy as np

__all__ = ["napari_get_reader", "read_odt_result", "result_layers", "director_vectors"]

SUFFIX = ".odt.h5"
LayerData = tuple  # (data, kwargs: dict, layer_type: str)
PathLike = Union[str, Path]


def napari_get_reader(path: Union[PathLike, Sequence[PathLike]]) -> Optional[Callable[..., list]]:
    """npe2 reader hook: :func:`read_odt_result` for ``*.odt.h5`` paths (or lists of them), else None."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if paths and all(str(p).endswith(SUFFIX) for p in paths):
        return read_odt_result
    return None


def read_odt_result(path: Union[PathLike, Sequence[PathLike]]) -> list[LayerData]:
    """The layers of one or more result files (see the module docstring)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        layers.extend(result_layers(p))
    return layers


def _name(path: Path) -> str:
    return path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem


def _image(data: np.ndarray, name: str, geo: dict, lo: float, visible: bool, colormap: str, meta: dict) -> LayerData:
    hi = float(np.nanmax(data)) if data.size else lo + 1.0
    kwargs = {"name": name, "scale": geo["scale"], "translate": geo["translate"],
              "contrast_limits": [float(lo), hi if hi > lo else float(lo) + 1e-3], "colormap": colormap,
              "visible": visible, "metadata": meta}
    return (data, kwargs, "image")


def result_layers(path: PathLike, *, max_vectors: int = 4000) -> list[LayerData]:
    """Layer data tuples for one result file.

    Parameters
    ----------
    path : path
        A ``<name>.odt.h5`` file.
    max_vectors : int
        Most director glyphs.

    Raises
    ------
    ValueError
        The file cannot be read or has no tomogram (the message names it).
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise ValueError(f"'{path}': not a readable ODT Studio result file ({type(e).__name__}: {e})") from None
    with f:
        if "tomogram" not in f or "ri" not in f["tomogram"]:
            raise ValueError(f"'{path}': no tomogram/ri in this result file")
        t = f["tomogram"]
        nm = float(t.attrs["medium_index"])
        voxel = [float(v) for v in t.attrs["voxel_size_um"]]
        geo = {"scale": voxel, "translate": [float(v) for v in t.attrs["origin_um"]]}
        meta = {"source": str(path), "medium_index": nm, "voxel_size_um": voxel, "units": "µm"}
        name = _name(path)
        shown = next(k for k in ("ri_ms", "ri_tv", "ri_deep", "ri") if k in t)
        layers = [_image(t[k][()], f"{name} {k}", geo, nm, k == shown, "gray", {**meta, "volume": k})
                  for k in ("ri", "ri_tv", "ri_deep", "ri_ms") if k in t]
        b = f["birefringence"] if "birefringence" in f else {}
        for k in ("n_e", "n_o"):
            if k in b:
                layers.append(_image(b[k][()], f"{name} {k}", geo, nm, False, "gray", {**meta, "volume": k}))
        if "n_e" in b and "n_o" in b:
            dn = b["n_e"][()].astype(np.float32) - b["n_o"][()].astype(np.float32)
            layers.append(_image(dn, f"{name} dn", geo, 0.0, False, "magma", {**meta, "volume": "dn"}))
        if "labels" in t:
            layers.append((t["labels"][()], {"name": f"{name} labels", "opacity": 0.5, **geo,
                                             "metadata": {**meta, "volume": "labels"}}, "labels"))
        if "director" in b:
            vec, angle = director_vectors(b["director"][()], voxel, geo["translate"], max_vectors=max_vectors)
            if len(vec):
                layers.append((vec, {"name": f"{name} director", "edge_width": 0.1 * min(voxel),
                                     "features": {"inplane_angle_deg": angle}, "edge_color": "inplane_angle_deg",
                                     "edge_colormap": "hsv", "metadata": {**meta, "volume": "director"}},
                               "vectors"))
    return layers


def director_vectors(director: np.ndarray, voxel_size_um: Sequence[float], origin_um: Sequence[float], *,
                     max_vectors: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """napari vectors (in µm) of a director field, on every ``step``-th voxel of the sample.

    Parameters
    ----------
    director : (Z, Y, X, 3) array
        Unit optic axis, (z, y, x) components; shorter than 0.5 (e.g. zero outside the
        sample) means no director there.
    voxel_size_um, origin_um : (z, y, x)
        Voxel size and position of voxel (0, 0, 0), µm.
    max_vectors : int
        The sampling step (the same along each axis) is the smallest that keeps at most
        this many vectors.

    Returns
    -------
    vectors : (N, 2, 3) float32
        ``[start, projection]`` in µm (z, y, x); each glyph is centred on its voxel.
    angle_deg : (N,) float32
        In-plane orientation atan2(d_y, d_x) folded to [0, 180) degrees (headless).
    """
    d = np.asarray(director, dtype=np.float32)
    inside = np.linalg.norm(d, axis=-1) > 0.5
    count = int(inside.sum())
    if count == 0:
        return np.zeros((0, 2, 3), np.float32), np.zeros(0, np.float32)
    step = max(1, math.ceil((count / max(1, max_vectors)) ** (1 / 3)))
    while int(inside[::step, ::step, ::step].sum()) > max_vectors:
        step += 1
    sub = inside[::step, ::step, ::step]
    idx = np.argwhere(sub) * step
    vox = np.asarray(voxel_size_um, np.float64)
    pos = np.asarray(origin_um, np.float64) + idx * vox
    dv = d[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64)
    dv /= np.linalg.norm(dv, axis=1, keepdims=True)
    length = 0.9 * step * float(vox.min())
    vectors = np.stack([pos - 0.5 * length * dv, length * dv], axis=1).astype(np.float32)
    angle = np.degrees(np.arctan2(dv[:, 1], dv[:, 2])) % 180.0
    return vectors, angle.astype(np.float32)
