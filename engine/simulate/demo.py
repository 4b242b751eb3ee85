"""Demo data: simulated measurement folders in the ``odt-measurement/1`` format, with truth.

``write_demo(out_dir, kind, count, seed)`` writes ``count`` folders ``<kind>_<k>/`` each holding
``measurement.json``, ``sample/000.tif …``, ``background/000.tif …`` (``docs/formats.md`` §1)
and ``truth.h5`` (the phantom: ``ri`` (Z, Y, X) float32 and, for liquid crystals, ``n_o``,
``n_e``, ``director`` (Z, Y, X, 3), ``epsilon`` (Z, Y, X, 3, 3); attributes ``voxel_size_um``
(dz, dy, dx), ``origin_um`` (z0, y0, x0) of voxel (0, 0, 0), ``medium_index``, ``kind``,
``params`` (JSON truth), ``seed``). Besides the contract's keys, ``measurement.json`` carries
``labels``, ``defects`` (per-image defect type, ``""`` when clean), ``imperfections`` and
``simulator`` (name, version, seed). Each folder is written under a temporary name and renamed,
so a reader never sees half a folder.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import h5py
import numpy as np
import tifffile

from ..progress import CancelToken, check_cancel, report, sub_progress
from .holograms import Setup, SimulatedMeasurement, simulate_measurement
from .phantoms import PHANTOM_KINDS, Phantom, make_phantom, shift_near_edge

__all__ = ["DemoConfig", "DEMO_DEFAULTS", "write_demo", "simulate_demo", "write_measurement_folder", "write_truth"]


@dataclass
class DemoConfig:
    """A realistic acquisition of one kind of sample.

    Attributes
    ----------
    setup : Setup
        The microscope.
    depth_um : float
        Axial extent of the phantom volume, µm (z = 0 at its centre, the focal plane).
    phantom_kwargs : dict
        Extra arguments to :func:`~engine.simulate.phantoms.make_phantom`.
    defect_rate, imperfection_rate : float
        Fractions of noisy images and of imperfect clean images.
    near_edge_probability : float
        Chance that the sample sits near the edge of the field of view.
    """

    setup: Setup
    depth_um: float
    phantom_kwargs: dict = field(default_factory=dict)
    defect_rate: float = 0.12
    imperfection_rate: float = 0.15
    near_edge_probability: float = 0.15


#: Per kind, a realistic setup (λ 0.532 µm, water n_m 1.337 or glycerol 1.46 for liquid
#: crystals, objective NA 1.2, camera pixel 0.1 µm at the sample) sized to simulate in seconds.
DEMO_DEFAULTS: dict[str, DemoConfig] = {
    "beads": DemoConfig(Setup(image_shape=(256, 256), pixel_size_um=0.1, sim_pixel_um=0.2, n_angles=49,
                              pattern="ring", na_condenser=1.1),
                        depth_um=3.6, phantom_kwargs={"count": 2, "radius_range_um": (0.5, 1.5)}),
    "bacteria": DemoConfig(Setup(image_shape=(256, 256), pixel_size_um=0.1, n_angles=71, pattern="spiral",
                                 na_condenser=1.1),
                           depth_um=3.2),
    "cells": DemoConfig(Setup(image_shape=(384, 384), pixel_size_um=0.1, sim_pixel_um=0.2, voxel_z_um=0.2,
                              n_angles=49, pattern="spiral", na_condenser=1.1),
                        depth_um=16.0),
    "lc-droplets": DemoConfig(Setup(image_shape=(192, 192), pixel_size_um=0.1, sim_pixel_um=0.2, voxel_z_um=0.2,
                                    medium_index=1.46, na_objective=1.2, na_condenser=1.0, n_angles=25,
                                    pattern="spiral"),
                              depth_um=9.2, phantom_kwargs={"radius_um": None}, near_edge_probability=0.0),
}


def _lc_radius(rng: np.random.Generator) -> float:
    return float(rng.uniform(2.0, 4.0))


def simulate_demo(kind: str = "bacteria", seed: int = 0, index: int = 0, device: str = "auto",
                  progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None,
                  config: Optional[DemoConfig] = None) -> SimulatedMeasurement:
    """Simulate demo measurement number ``index`` of a kind (reproducible from ``seed``)."""
    if kind not in DEMO_DEFAULTS:
        raise ValueError(f"unknown demo kind {kind!r}: one of {PHANTOM_KINDS}")
    cfg = config or DEMO_DEFAULTS[kind]
    st = cfg.setup
    rng = np.random.default_rng([int(seed), int(index)])
    kwargs = dict(cfg.phantom_kwargs)
    if kind == "lc-droplets" and kwargs.get("radius_um") is None:
        kwargs["radius_um"] = _lc_radius(rng)
    phantom = make_phantom(kind, st.phantom_shape(cfg.depth_um), st.voxel_size_um, st.medium_index, rng, **kwargs)
    if rng.random() < cfg.near_edge_probability:
        phantom = shift_near_edge(phantom, rng)
    return simulate_measurement(phantom, st, int(rng.integers(0, 2 ** 62)), defect_rate=cfg.defect_rate,
                                imperfection_rate=cfg.imperfection_rate, device=device, progress=progress,
                                cancel=cancel, name=f"{kind}_{index:03d}")


def write_truth(path: Path, phantom: Phantom, seed: int) -> None:
    """Write the phantom's truth volumes to ``path`` (HDF5)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("ri", data=phantom.ri.astype(np.float32), compression="gzip", compression_opts=4)
        for name in ("n_o", "n_e", "director", "epsilon"):
            a = getattr(phantom, name)
            if a is not None:
                f.create_dataset(name, data=a.astype(np.float32), compression="gzip", compression_opts=4)
        Z, Y, X = phantom.ri.shape
        dz, dy, dx = phantom.voxel_size_um
        f.attrs["voxel_size_um"] = np.asarray(phantom.voxel_size_um, dtype=np.float64)
        f.attrs["origin_um"] = np.asarray([-(Z // 2) * dz, -(Y // 2) * dy, -(X // 2) * dx], dtype=np.float64)
        f.attrs["medium_index"] = float(phantom.medium_index)
        f.attrs["kind"] = phantom.kind
        f.attrs["params"] = json.dumps(phantom.params)
        f.attrs["seed"] = int(seed)


def write_measurement_folder(folder: Path, sim: SimulatedMeasurement) -> Path:
    """Write one simulated measurement as an ``odt-measurement/1`` folder plus ``truth.h5``.

    The folder is assembled under a temporary name beside ``folder`` and renamed at the end.
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "sample").mkdir(parents=True)
    (tmp / "background").mkdir()
    m = sim.measurement
    for i in range(m.n_images):
        tifffile.imwrite(tmp / "sample" / f"{i:03d}.tif", m.holograms[i])
        tifffile.imwrite(tmp / "background" / f"{i:03d}.tif", m.background_for(i))
    md = m.metadata
    md.extra = dict(md.extra)
    md.extra["truth"] = "truth.h5"
    (tmp / "measurement.json").write_text(md.to_json(), encoding="utf-8")
    write_truth(tmp / "truth.h5", sim.phantom, sim.seed)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def write_demo(out_dir: str | os.PathLike, kind: str = "bacteria", count: int = 1, seed: int = 0,
               progress: Optional[Callable[..., None]] = None, cancel: Optional[CancelToken] = None,
               device: str = "auto", config: Optional[DemoConfig] = None) -> list[Path]:
    """Write ``count`` simulated measurement folders of one kind under ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if missing; folders are named ``<kind>_000``, ``<kind>_001`` …
    kind : {"beads", "bacteria", "cells", "lc-droplets"}
        Sample kind (its setup from :data:`DEMO_DEFAULTS`).
    count : int
        Number of measurements.
    seed : int
        Seed: the same seed writes the same images.
    progress, cancel
        Progress callback and cancel token.
    device : {"auto", "cpu", "cuda"}
        Torch device for the propagation.
    config : DemoConfig, optional
        Replace the kind's defaults.

    Returns
    -------
    list of Path
        The measurement folders written.
    """
    if kind not in DEMO_DEFAULTS:
        raise ValueError(f"unknown demo kind {kind!r}: one of {PHANTOM_KINDS}")
    if int(count) < 1:
        raise ValueError("count must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(int(count)):
        check_cancel(cancel)
        sub = sub_progress(progress, k / count, (k + 1) / count, f"{kind} {k + 1}/{count}: ")
        sim = simulate_demo(kind, seed, k, device=device, progress=sub, cancel=cancel, config=config)
        paths.append(write_measurement_folder(out / f"{kind}_{k:03d}", sim))
    report(progress, 1.0, f"wrote {len(paths)} measurement(s) to {out}")
    return paths
