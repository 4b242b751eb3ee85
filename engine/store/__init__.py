"""Storage: import of measurement folders, the SQLite project, and HDF5 result files.

* :mod:`engine.store.folders` — discover, inspect and load measurement folders
  (``docs/formats.md`` §1) and Tomocube TCF tomograms; never writes the originals.
* :mod:`engine.store.project` — the project folder: SQLite catalogue, screening decisions,
  override audit trail, job history.
* :mod:`engine.store.results` — ``<name>.odt.h5`` result files (§2), written atomically.
"""

from .folders import (MeasurementError, MeasurementInfo, TcfVolume, discover_measurements,
                      inspect_measurement, load_measurement, measurement_fingerprint, read_tcf)
from .project import MeasurementRecord, OverrideRecord, Project, ProjectError
from .results import (BirefringenceResult, ResultFile, ScreeningResult, TomogramResult, is_complete_result,
                      read_result, update_result, write_result)

__all__ = [
    "MeasurementError", "MeasurementInfo", "TcfVolume", "discover_measurements", "inspect_measurement",
    "load_measurement", "measurement_fingerprint", "read_tcf",
    "MeasurementRecord", "OverrideRecord", "Project", "ProjectError",
    "BirefringenceResult", "ResultFile", "ScreeningResult", "TomogramResult", "is_complete_result",
    "read_result", "update_result", "write_result",
]
