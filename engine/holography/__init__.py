"""Hologram processing: off-axis field retrieval, phase unwrapping, angular-spectrum propagation.

Conventions (``docs/formats.md``): µm and cycles/µm; images (y, x); pixel ``j`` of ``n`` sits at
``(j - n//2)·pixel``; fields ``exp(+i(k·r − ωt))`` so a sample with n > n_m gives a positive phase;
propagation by +z multiplies the angular spectrum by ``exp(+2πi·ν_z·z)``.
"""

from .propagate import angular_spectrum_kernel, propagate
from .retrieval import RetrievedFields, find_carrier, refine_peak, retrieve_fields
from .unwrap import unwrap_phase

__all__ = [
    "RetrievedFields",
    "angular_spectrum_kernel",
    "find_carrier",
    "propagate",
    "refine_peak",
    "retrieve_fields",
    "unwrap_phase",
]
