"""Birefringence: polarisation-resolved fields, dielectric tensor tomography, director lines.

Conventions (``docs/formats.md``): µm and cycles/µm; volumes (z, y, x); tensors and
directors in (z, y, x) components; fields ``exp(+i(k·r − ωt))`` (n > n_m gives a positive phase).
"""

from .director import director_lines
from .generator import load_generator, reconstruct_tensor_learned
from .jones import JonesFields, frame_table, jones_fields
from .refine import refine_tensor
from .tensor_tomography import TensorTomogram, jones_rytov, reconstruct_tensor, uniaxial_decomposition

__all__ = [
    "JonesFields",
    "TensorTomogram",
    "director_lines",
    "frame_table",
    "jones_fields",
    "jones_rytov",
    "load_generator",
    "reconstruct_tensor_learned",
    "reconstruct_tensor",
    "refine_tensor",
    "uniaxial_decomposition",
]
