"""The FDTD (MEEP) cell-phantom sinogram of qpformat's test data through either program.

Usage (one program per process, so each is timed whole)::

    .venv/bin/python tests/benchmarks/_peer_meep.py odtbrain tests/data/series_hdf5_meep.h5 OUT.npz
    .venv/bin/python tests/benchmarks/_peer_meep.py studio   tests/data/series_hdf5_meep.h5 OUT.npz

Data: ``tests/data/series_hdf5_meep.h5`` (qpformat 0.14.5 test data, MIT licence; format
"qpformat Meep", written by P. Müller from the FDTD simulations of the ODTbrain paper): 18 views
over 360° (attribute ``ACQUISITION_PHI``) of 47² px, the complex field in a plane
``extraction focus distance [px]`` (13.875 px) behind the rotation centre, ``background/field``
the same without the cell, sampled ``SAMPLING`` = 1.625 px per vacuum wavelength, medium
``MEDIUM_RI`` 1.333. Both programs get ``u = field / background``. Lengths: the simulation is
in units of the wavelength; we take λ = 0.5 µm (qpformat's default), so a pixel is
0.5/1.625 µm (any λ gives the same index).

* ``odtbrain``: ``sinogram_as_rytov`` and ``backpropagate_3d(res = SAMPLING, n_m, lD = focus
  distance)``, all cores; volume turned about the array centre (voxel j at (j − (N − 1)/2)·pixel
  in x and z, which for odd N = 47 is also N//2).
* ``studio``: ODT Studio's engine on the same fields (not a measurement folder: the FDTD gives
  fields, not holograms): refocus by −lD with :func:`engine.holography.propagate.propagate`
  (times ``exp(−2πi k_m d)``: the fields are relative to the incident wave),
  then :func:`engine.tomography.reconstruct` (Rytov, sample rotation, non-negativity as
  ``odt-studio batch`` runs it; the whole grid inside the pupil: NA 1.2 > the grid's 0.81).

Writes OUT.npz with ``ri`` (z, y, x), ``pixel_size_um`` and ``origin_um``; prints the seconds.
"""

from __future__ import annotations

import json
import sys
import time

t_start = time.perf_counter()

import numpy as np  # noqa: E402

LAMBDA_UM = 0.5


def load(path: str):
    import h5py

    with h5py.File(path, "r") as h5:
        keys = sorted(h5["sinogram"].keys(), key=int)
        field = np.stack([h5["sinogram"][k]["field"][:] for k in keys])
        angles = np.array([float(h5["sinogram"][k]["field"].attrs["ACQUISITION_PHI"]) for k in keys])
        bg = h5["background"]["field"][:]
        at = h5["sinogram"][keys[0]]["field"].attrs
        meta = dict(sampling=float(at["SAMPLING"]), nm=float(at["MEDIUM_RI"]),
                    lD=float(at["extraction focus distance [px]"]))
    return field / bg, angles, meta


def main() -> None:
    program, path, out = sys.argv[1:4]
    u, angles, meta = load(path)
    px = LAMBDA_UM / meta["sampling"]
    t0 = time.perf_counter()
    if program == "odtbrain":
        import odtbrain

        sino = odtbrain.sinogram_as_rytov(u)
        f = odtbrain.backpropagate_3d(sino, angles, meta["sampling"], meta["nm"], lD=meta["lD"])
        ri = odtbrain.odt_to_ri(f, meta["sampling"], meta["nm"]).real.astype(np.float32)
        origin = (-(ri.shape[0] - 1) / 2 * px, -(u.shape[1] // 2) * px, -(ri.shape[2] - 1) / 2 * px)
    elif program == "studio":
        from engine.holography.propagate import propagate
        from engine.metadata import MeasurementMetadata
        from engine.tomography import reconstruct

        md = MeasurementMetadata(wavelength_um=LAMBDA_UM, medium_index=meta["nm"], na_objective=1.2,
                                 pixel_size_um=px, geometry="sample-rotation", rotation_angles_rad=angles.tolist())
        # u is the field over the incident wave: propagate it and remove the incident wave's own
        # phase exp(2πi k_m d) (the refocused background stays 1)
        d = -meta["lD"] * px
        uf = propagate(u.astype(np.complex64), d, px, LAMBDA_UM, meta["nm"], device="cpu")
        uf = (uf * np.exp(-2j * np.pi * meta["nm"] / LAMBDA_UM * d)).astype(np.complex64)
        tm = reconstruct(uf, np.zeros((len(angles), 2)), md, non_negativity=True, device="cpu")
        ri, origin = tm.ri, tm.origin_um
    else:
        raise SystemExit(f"unknown program {program!r}: odtbrain or studio")
    t_rec = time.perf_counter() - t0
    np.savez(out, ri=ri, pixel_size_um=px, origin_um=np.asarray(origin, float))
    print(json.dumps(dict(reconstruct_s=t_rec, total_in_process_s=time.perf_counter() - t_start,
                          shape=list(ri.shape))))


if __name__ == "__main__":
    main()
