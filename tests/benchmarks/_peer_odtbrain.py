"""ODTbrain's whole run on one ``odt-measurement/1`` sample-rotation folder (a separate process).

Usage::

    .venv/bin/python tests/benchmarks/_peer_odtbrain.py MEASUREMENT_FOLDER OUT.npz [--cores N]

What a user of the RI-imaging tools would do, with their own tools only:

1. read ``measurement.json`` and the sample/background holograms (``tifffile``);
2. retrieve the fields with **qpretrieve** (``OffAxisHologram``: disk filter of the physical
   pupil radius NA/λ around the side band at ``+carrier`` — the side band the format puts the
   object field at, docs/formats.md — so dense samples get a positive phase) and divide by the
   background field;
3. ``odtbrain.sinogram_as_rytov`` (phase unwrapping by scikit-image) and
   ``odtbrain.backpropagate_3d`` (filtered back-propagation, Müller et al. 2015) with the
   measured rotation angles, ``res = λ/pixel``, ``n_m``, ``lD = 0`` (fields focused on the
   rotation centre), all cores;
4. ``odtbrain.odt_to_ri`` and the real part: the index volume, saved as ``ri`` in OUT.npz with
   ``pixel_size_um`` and ``origin_um`` (ODTbrain's (z, y, x) volume; it turns the volume about
   the array centre (N − 1)/2, so for even N the fields are first shifted by −½ pixel in x to put
   the rotation axis of docs/formats.md (pixel N//2) there, and x and z voxel j sit at
   (j − (N − 1)/2)·pixel).

No part of ODT Studio is imported. Prints the seconds of each step.

References
----------
P. Müller, M. Schürmann and J. Guck, BMC Bioinformatics 16, 367 (2015) (ODTbrain);
P. Müller et al., qpretrieve (https://github.com/RI-imaging/qpretrieve).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

t_start = time.perf_counter()

import numpy as np  # noqa: E402


def retrieve(holo: np.ndarray, bg: np.ndarray, meta: dict, qpretrieve) -> np.ndarray:
    """Background-normalised fields (N, H, W) from off-axis holograms with qpretrieve."""
    lam, na, px = meta["wavelength_um"], meta["na_objective"], meta["pixel_size_um"]
    if "carrier_per_um" in meta:
        cx, cy = meta["carrier_per_um"]
        side = (cy * px, cx * px)  # qpretrieve: (axis 0, axis 1) in cycles per pixel
    else:  # brightest peak of the upper half plane; the +c side band is its twin
        side = None
    # disk of radius NA/λ (cycles per pixel: NA·pixel/λ). qpretrieve 0.7's "physical radius"
    # mode divides an unpadded pixel count by the padded size (a 2.56× too small disk here), so
    # the radius is given as a frequency
    kw = dict(filter_name="disk", filter_size=na * px / lam, filter_size_interpretation="frequency")
    ho = qpretrieve.OffAxisHologram(holo, **kw)
    if side is None:
        f0 = qpretrieve.interfere.if_oah.find_peak_cosine(ho.fft.fft_origin[0])
        side = (-f0[0], -f0[1])
    u = ho.run_pipeline(sideband_freq=side, **kw)
    hb = qpretrieve.OffAxisHologram(bg, **kw)
    ub = hb.run_pipeline(sideband_freq=side, **kw)
    return np.asarray(u) / np.asarray(ub)



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--fields-h5", default=None,
                    help="skip the retrieval: take the fields 'fields/field' of this result file (e.g. the "
                         "ones ODT Studio retrieved), to compare the reconstructions alone")
    a = ap.parse_args()

    import odtbrain
    import qpretrieve
    import tifffile

    t0 = time.perf_counter()
    folder = Path(a.folder)
    meta = json.loads((folder / "measurement.json").read_text())
    assert meta.get("geometry") == "sample-rotation", "ODTbrain handles the sample-rotation geometry"
    lam, nm, px = meta["wavelength_um"], meta["medium_index"], meta["pixel_size_um"]
    angles = np.asarray(meta["rotation_angles_rad"], dtype=float)
    holo = np.stack([tifffile.imread(p) for p in sorted((folder / "sample").glob("*.tif"))]).astype(float)
    bg = np.stack([tifffile.imread(p) for p in sorted((folder / "background").glob("*.tif"))]).astype(float)
    t_read = time.perf_counter() - t0

    t0 = time.perf_counter()
    if a.fields_h5:
        import h5py

        with h5py.File(a.fields_h5, "r") as h5:
            field = h5["fields/field"][:].astype(np.complex128)
    else:
        field = retrieve(holo, bg, meta, qpretrieve)

    # ODTbrain turns its volume about the array centre, index (N − 1)/2 in x and z
    # (scipy.ndimage.rotate), while docs/formats.md puts the optical (rotation) axis at pixel
    # N//2: for even N, shift the fields by −½ pixel along x (exact Fourier shift of the
    # band-limited fields) so the axis sits where ODTbrain expects it; the volume's x and z
    # then have voxel j at (j − (N − 1)/2)·pixel (written as origin_um)
    ww = field.shape[-1]
    shift = ((ww - 1) / 2 - ww // 2)  # pixels: −½ for even N, 0 for odd
    if shift:
        nu = np.fft.fftfreq(ww)
        field = np.fft.ifft(np.fft.fft(field, axis=-1) * np.exp(-2j * np.pi * nu * shift), axis=-1)
    t_retrieve = time.perf_counter() - t0

    t0 = time.perf_counter()
    sino = odtbrain.sinogram_as_rytov(field)
    f = odtbrain.backpropagate_3d(sino, angles, lam / px, nm, lD=0, num_cores=a.cores)
    ri = odtbrain.odt_to_ri(f, lam / px, nm).real.astype(np.float32)
    t_recon = time.perf_counter() - t0
    nz, ny, nx = ri.shape
    origin = (-(nz - 1) / 2 * px, -(field.shape[1] // 2) * px, -(nx - 1) / 2 * px)
    np.savez(a.out, ri=ri, pixel_size_um=px, origin_um=np.asarray(origin))
    print(json.dumps(dict(read_s=t_read, retrieve_s=t_retrieve, reconstruct_s=t_recon,
                          total_in_process_s=time.perf_counter() - t_start, shape=list(ri.shape))))


if __name__ == "__main__":
    main()
