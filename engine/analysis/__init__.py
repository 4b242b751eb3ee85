"""Analysis of reconstructed tomograms: objects (cells, bacteria, droplets) and their measurements.

Conventions (``docs/formats.md``): volumes are (z, y, x) arrays, voxel sizes and origins in µm
ordered (z, y, x); voxel (0, 0, 0) sits at ``origin_um``.
"""

from .objects import (DEFAULT_ALPHA_UM3_PER_PG, DEFAULT_MASS_MARGIN_UM, MEASUREMENT_COLUMNS, ObjectMeasurement,
                      dn_threshold, measure_objects, order_parameter, segment_objects, write_measurements_csv)

__all__ = [
    "DEFAULT_ALPHA_UM3_PER_PG",
    "DEFAULT_MASS_MARGIN_UM",
    "MEASUREMENT_COLUMNS",
    "ObjectMeasurement",
    "dn_threshold",
    "measure_objects",
    "order_parameter",
    "segment_objects",
    "write_measurements_csv",
]
