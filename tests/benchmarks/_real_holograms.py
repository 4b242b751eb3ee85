"""The five real off-axis holograms of ``tests/data`` (another lab's), retrieved as the program does.

Provenance and licences: ``tests/data/README.md``. Holograms stored without a background or
without metadata get the conventions of ``tests/engine/test_real_holograms.py``: pixel 0.1 µm,
λ 0.55 µm, n_m 1.335 (any consistent choice gives the same phase), a pupil of 0.48 of the
carrier distance found by qpretrieve, and a synthesised background
(:func:`engine.store.qpformat_hdf5.synthesise_background`).

``split`` says how each hologram may be used when a screening model is judged (issue #19):
"test" holograms were looked at while candidates of earlier sessions were tuned, "validation"
ones entered later. Neither is training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
PX, LAM, NM = 0.1, 0.55, 1.335
PUPIL = 0.48


@dataclass
class RealHologram:
    """One real hologram's retrieved field(s) and what the screen needs beside them."""

    name: str
    split: str
    field: np.ndarray  # (N, H, W) complex64, sample/background
    illumination_per_um: np.ndarray
    metadata: object
    pixel_size_um: float


def metadata_for(carrier_per_um: float):
    """Metadata of a hologram stored without any: the conventions above, the pupil from the carrier (cycles/µm)."""
    from engine.metadata import MeasurementMetadata

    return MeasurementMetadata.from_dict({"format": "odt-measurement/1", "wavelength_um": LAM, "medium_index": NM,
                                          "na_objective": PUPIL * carrier_per_um * LAM, "pixel_size_um": PX})


def _carrier_per_um(holo: np.ndarray) -> float:
    import qpretrieve

    ref = qpretrieve.OffAxisHologram(holo)
    ref.run_pipeline(filter_size=1 / 2)
    return float(np.hypot(*ref.pipeline_kws["sideband_freq"]) / PX)


def _retrieved(name: str, split: str, holo: np.ndarray, bg: np.ndarray | None, md) -> RealHologram:
    from engine.holography.retrieval import retrieve_fields
    from engine.store.qpformat_hdf5 import synthesise_background

    if bg is None:
        bg = synthesise_background(holo, md)[0][None]
    r = retrieve_fields(holo, bg, md, device="cpu")
    return RealHologram(name, split, np.asarray(r.field, np.complex64), r.illumination_per_um, md, r.pixel_size_um)


def real_holograms() -> list[RealHologram]:
    """The five real holograms (qpretrieve, qpformat ×3, qpimage), retrieved; needs qpretrieve and PIL."""
    import tifffile
    from PIL import Image

    from engine.store.qpformat_hdf5 import read_qpformat_hdf5

    d = np.load(DATA / "hologram_cell.npz")
    out = [_retrieved("hl60 (qpretrieve)", "test", d["data"][None], d["bg_data"][None],
                      metadata_for(_carrier_per_um(d["data"])))]
    for name in ("single_hdf5_raw-oah.h5", "series_hdf5_raw-oah.h5"):
        m = read_qpformat_hdf5(DATA / name)
        out.append(_retrieved(f"{name} (qpformat)", "test", m.holograms, m.backgrounds, m.metadata))
    with tifffile.TiffFile(DATA / "single_holo.tif") as t:
        holo = t.pages[0].asarray()
    out.append(_retrieved("single_holo.tif (qpformat)", "validation", holo[None], None, metadata_for(_carrier_per_um(holo))))
    holo = np.array(Image.open(DATA / "hologram_cell_curved_bg.jpg"))
    out.append(_retrieved("hologram_cell_curved_bg.jpg (qpimage)", "validation", holo[None], None,
                          metadata_for(_carrier_per_um(holo))))
    return out
