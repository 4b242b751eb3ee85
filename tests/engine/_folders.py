"""Helpers that write tiny measurement folders (docs/formats.md §1) for the store and batch tests.

Also holds module-level ``process_*`` functions for :func:`engine.pipeline.batch.run_batch`
(they must be importable by worker processes, so they live in a plain module).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import h5py
import numpy as np
import tifffile
from PIL import Image

BASE_META: dict[str, Any] = {
    "format": "odt-measurement/1",
    "wavelength_um": 0.532,
    "medium_index": 1.337,
    "na_objective": 1.2,
    "pixel_size_um": 0.1,
}


def meta(**changes: Any) -> dict:
    """A valid metadata dict; a change to ``None`` removes that key."""
    d = dict(BASE_META)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def images(n: int = 2, shape: tuple[int, int] = (8, 8), dtype: Any = np.uint16, seed: int = 0) -> np.ndarray:
    """Deterministic random test holograms (n, H, W)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 200, size=(n,) + tuple(shape))
    return a.astype(dtype)


def write_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        Image.fromarray(img).save(path)
    else:
        tifffile.imwrite(path, img, photometric="minisblack")


def write_multipage(path: Path, stack: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as w:
        for img in stack:
            w.write(img, photometric="minisblack", contiguous=False)


def make_measurement(root: Path, name: str = "m001", *, n: int = 2, shape: tuple[int, int] = (8, 8),
                     dtype: Any = np.uint16, form: str = "tif", background: str = "folder",
                     metadata: Optional[dict] = None, seed: int = 0) -> Path:
    """Write one measurement folder and return its path.

    Parameters
    ----------
    form : "tif", "png" (sample/NNN.*), "multipage" (sample.tif) or "h5" (measurement.h5)
    background : "folder" (background/NNN.*), "multipage" (background.tif, N pages) or
        "single" (background.tif, one page; for h5: a (H, W) dataset)
    """
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    sample = images(n, shape, dtype, seed)
    bg = images(n, shape, dtype, seed + 1000)
    md = meta() if metadata is None else metadata
    if form == "h5":
        with h5py.File(folder / "measurement.h5", "w") as f:
            f["sample"] = sample
            f["background"] = bg[0] if background == "single" else bg
            f.attrs["measurement_json"] = json.dumps(md)
        return folder
    (folder / "measurement.json").write_text(json.dumps(md, indent=1), encoding="utf-8")
    ext = ".png" if form == "png" else ".tif"
    if form == "multipage":
        write_multipage(folder / "sample.tif", sample)
    else:
        for i, img in enumerate(sample):
            write_image(folder / "sample" / f"{i:03d}{ext}", img)
    if background == "folder":
        for i, img in enumerate(bg):
            write_image(folder / "background" / f"{i:03d}{ext}", img)
    elif background == "multipage":
        write_multipage(folder / "background.tif", bg)
    else:
        write_image(folder / "background.tif", bg[0])
    return folder


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (mtime_ns, sha256)} of every file and folder under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                digest = "link:" + os.readlink(p)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = (st.st_mtime_ns, digest)
    return out


# ---------------------------------------------------------------------------- batch workers
def process_small(folder: Path, out_path: Path) -> dict:
    """A real tiny pipeline: load, 'retrieve' a field by FFT ratio, write a small result."""
    from engine.store.folders import load_measurement
    from engine.store.results import write_result

    m = load_measurement(folder)
    holo = m.holograms.astype(np.float32) + 1.0
    bg = np.broadcast_to(m.backgrounds.astype(np.float32) + 1.0, holo.shape)
    field = (np.fft.fft2(holo) / np.fft.fft2(bg)).astype(np.complex64)
    n = m.n_images
    decision = np.ones(n, np.uint8)
    decision[0] = 0 if n > 1 else 1
    write_result(out_path, measurement_json=m.metadata.to_json(), fields=field,
                 illumination_per_um=np.zeros((n, 2)),
                 screening={"score": np.linspace(0, 1, n), "rule_peak": np.zeros(n), "decision": decision,
                            "source": np.ones(n), "model": "test-rule 1"})
    return {"fields_used": int(decision.sum())}


def process_slow(folder: Path, out_path: Path, delay: float = 0.05) -> dict:
    """Like :func:`process_small` but slower, for the kill-and-resume test."""
    time.sleep(delay)
    return process_small(folder, out_path)


def process_cpu(folder: Path, out_path: Path, repeats: int = 20) -> dict:
    """CPU-heavy dummy for benchmarks: repeated FFTs of the holograms."""
    from engine.store.folders import load_measurement
    from engine.store.results import write_result

    cpu0 = time.process_time()
    m = load_measurement(folder)
    x = m.holograms.astype(np.complex64)
    for _ in range(repeats):
        x = np.fft.ifft2(np.fft.fft2(x) * np.float32(1.0001))
    write_result(out_path, measurement_json=m.metadata.to_json(), fields=x.astype(np.complex64))
    return {"fields_used": m.n_images, "cpu_seconds": time.process_time() - cpu0}
