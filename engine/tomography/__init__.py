"""3-D refractive-index tomography: Fourier diffraction theorem, non-negativity, TV.

Conventions (``docs/formats.md``): µm, cycles/µm; volumes (z, y, x); voxel ``j`` of ``n`` at
``(j − n//2)·d`` with x, y = 0 at the image centre and z = 0 at the focal plane; fields
``exp(+i(k·r − ωt))`` (n > n_m gives a positive phase).
"""

from .constraints import apply_non_negativity
from .fourier_mapping import (FourierData, map_fields_to_fourier, ri_to_scattering_potential,
                              scattering_potential_to_ri)
from .reconstruct import METHODS, Tomogram, first_order_fields, reconstruct
from .tv import regularize_tv, tv_denoise

__all__ = [
    "FourierData",
    "METHODS",
    "Tomogram",
    "apply_non_negativity",
    "first_order_fields",
    "map_fields_to_fourier",
    "reconstruct",
    "regularize_tv",
    "ri_to_scattering_potential",
    "scattering_potential_to_ri",
    "tv_denoise",
]
