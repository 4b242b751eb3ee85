"""Polarisation-resolved field retrieval: holograms → one Jones matrix of fields per illumination.

Conventions (``docs/formats.md``)
-----------------------------------
* µm and cycles/µm; images (y, x); pixel ``j`` of ``n`` sits at ``(j − n//2)·pixel``.
* Fields ``exp(+i(k·r − ωt))``: a sample with n > n_m gives a positive phase.
* Polarisations are the transverse field components x (index 0) and y (index 1) at the sample
  plane. A polarisation-resolved measurement has a ``frames`` list naming, for each image, its
  illumination, input polarisation ``pol_in`` and analyser ``pol_out``.
* The Jones element is ``J[out, in] = U_sample(in→out) / U_background(in→in)``: the analyser
  channels share one reference, and a sample-free background has no cross-polarised field, so
  every image is divided by the *co-polarised* background field of its input polarisation.
  A sample-free region therefore gives the identity matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..holography.retrieval import retrieve_fields
from ..measurement import Measurement
from ..metadata import MeasurementMetadata
from ..progress import CancelToken, check_cancel, report, sub_progress

__all__ = ["JonesFields", "jones_fields", "frame_table"]

_POL = {"x": 0, "y": 1}


@dataclass
class JonesFields:
    """Jones matrices of background-normalised fields, one per illumination.

    Attributes
    ----------
    field : ndarray, shape (N_ill, 2, 2, H, W), complex64
        ``field[n, out, in]``: analyser channel ``out`` (0 = x, 1 = y) for input polarisation
        ``in``, divided by the co-polarised background field of input ``in``, focused on z = 0.
    illumination_per_um : ndarray, shape (N_ill, 2), float64
        Transverse illumination frequency ``(f_x, f_y)`` in the medium, cycles/µm.
    pixel_size_um : float
        Pixel size of ``field`` in the sample plane, µm.
    """

    field: np.ndarray
    illumination_per_um: np.ndarray
    pixel_size_um: float

    @property
    def n_illuminations(self) -> int:
        return int(self.field.shape[0])


def frame_table(metadata: MeasurementMetadata, n_images: Optional[int] = None) -> np.ndarray:
    """Image index of every (illumination, out, in) combination of a polarisation-resolved set.

    Parameters
    ----------
    metadata : MeasurementMetadata
        With ``frames``.
    n_images : int, optional
        Number of images, checked against ``frames``.

    Returns
    -------
    ndarray, shape (N_ill, 2, 2), int64
        ``table[n, out, in]`` = index of the image of illumination ``n``, analyser ``out`` and
        input polarisation ``in``.

    Raises
    ------
    ValueError
        Without ``frames``, with a duplicated combination, or when an illumination lacks one of
        its four images.
    """
    frames = metadata.frames
    if not frames:
        raise ValueError("the measurement is not polarisation-resolved: its metadata have no 'frames'")
    if n_images is not None and len(frames) != n_images:
        raise ValueError(f"'frames' has {len(frames)} entries but there are {n_images} images")
    n_ill = max(f.illumination for f in frames) + 1
    table = np.full((n_ill, 2, 2), -1, dtype=np.int64)
    for k, f in enumerate(frames):
        o, i = _POL[f.pol_out], _POL[f.pol_in]
        if table[f.illumination, o, i] >= 0:
            raise ValueError(f"frames[{k}] repeats illumination {f.illumination}, pol_in {f.pol_in}, "
                             f"pol_out {f.pol_out}")
        table[f.illumination, o, i] = k
    missing = np.argwhere(table < 0)
    if len(missing):
        n, o, i = missing[0]
        raise ValueError(f"illumination {n} has no image with pol_in {'xy'[i]} and pol_out {'xy'[o]}: "
                         "each illumination needs all four polarisation combinations")
    return table


def jones_fields(
    data: Union[Measurement, Sequence],
    *,
    carrier_per_um: Optional[tuple[float, float]] = None,
    refocus_um: float = 0.0,
    device: str | torch.device = "auto",
    progress: Optional[Callable[..., None]] = None,
    cancel: Optional[CancelToken] = None,
) -> JonesFields:
    """Retrieve the Jones matrix of fields of every illumination of a polarisation-resolved set.

    All images are retrieved in one vectorised call of
    :func:`engine.holography.retrieval.retrieve_fields`, each with the co-polarised background
    of its input polarisation as the reference field (docs/formats.md: ``J[out,in] =
    U_sample(in→out) / U_background(in→in)``).

    Parameters
    ----------
    data : Measurement or (holograms, backgrounds, metadata)
        Holograms (N, H, W), backgrounds (N, H, W) in the same frame order or one (H, W) for
        all, and metadata with ``frames`` (4 images per illumination).
    carrier_per_um : (c_x, c_y), optional
        Overrides the metadata's carrier.
    refocus_um : float
        Propagation distance applied to all fields (µm, + = along +z).
    device : {"auto", "cpu", "cuda"}
        Torch device.
    progress, cancel
        Progress callback and cancel token (:mod:`engine.progress`).

    Returns
    -------
    JonesFields
        ``field`` (N_ill, 2 out, 2 in, H, W) complex64 and ``illumination_per_um`` (N_ill, 2).

    References
    ----------
    .. [1] S. Shin et al., "Tomographic measurement of dielectric tensors at optical frequency",
       Nat. Mater. 21, 317 (2022) (polarisation-resolved holograms per illumination).
    .. [2] R. C. Jones, "A new calculus for the treatment of optical systems", JOSA 31, 488 (1941).
    """
    if isinstance(data, Measurement):
        holograms, backgrounds, metadata = data.holograms, data.backgrounds, data.metadata
    else:
        holograms, backgrounds, metadata = data
    holograms = np.asarray(holograms)
    backgrounds = np.asarray(backgrounds)
    if holograms.ndim != 3:
        raise ValueError(f"holograms must be (N, H, W), got shape {holograms.shape}")
    table = frame_table(metadata, holograms.shape[0])
    check_cancel(cancel)
    if backgrounds.ndim == 3:
        if backgrounds.shape[0] != holograms.shape[0]:
            raise ValueError(f"{backgrounds.shape[0]} backgrounds for {holograms.shape[0]} holograms")
        # frame k = (n, out, in) is referenced to the background of frame (n, in, in)
        co = np.empty(holograms.shape[0], dtype=np.int64)
        for n in range(table.shape[0]):
            for o in range(2):
                for i in range(2):
                    co[table[n, o, i]] = table[n, i, i]
        backgrounds = backgrounds[co]
    report(progress, 0.0, "retrieving polarisation-resolved fields")
    ret = retrieve_fields(holograms, backgrounds, metadata, carrier_per_um=carrier_per_um,
                          refocus_um=refocus_um, unwrap=False, device=device,
                          progress=sub_progress(progress, 0.0, 0.95, ""), cancel=cancel)
    field = ret.field[table]  # (N_ill, 2, 2, H, W)
    illum = ret.illumination_per_um[table[:, 0, 0]]
    report(progress, 1.0, "Jones fields ready")
    return JonesFields(field=np.ascontiguousarray(field, dtype=np.complex64),
                       illumination_per_um=np.asarray(illum, dtype=np.float64),
                       pixel_size_um=float(ret.pixel_size_um))
