"""What the Acquisition import tab does and says, without Qt.

Jobs for :class:`app.jobs.JobRunner` (``progress`` and ``cancel`` as in :mod:`engine.progress`):

* :func:`scan_measurements` — every measurement folder under a root, checked
  (:func:`engine.store.folders.discover_measurements`, :func:`~engine.store.folders.inspect_measurement`);
  folders of images without ``measurement.json`` and folders that cannot be listed come back as
  invalid rows that say so, so a forgotten metadata file is never skipped silently;
* :func:`load_preview` — one measurement's holograms;
* :func:`import_into_project` — add folders to a project's catalogue, one :class:`ImportOutcome` each;
* :func:`sideband_status` — one line on how a measurement's side band was (or will be) chosen.

And the text the tab shows: :func:`cell_text` (the table), :func:`scan_summary`,
:func:`import_summary`, :func:`measurement_details`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from engine.measurement import Measurement
from engine.pipeline.project_screening import project_sideband, sideband_description
from engine.progress import check_cancel, report
from engine.store.folders import (MeasurementInfo, discover_measurements, inspect_measurement, load_measurement,
                                  read_metadata_text)

__all__ = ["VALID_TEXT", "NO_METADATA", "NO_METADATA_TEXT", "SIDEBAND_ITEMS", "COLUMNS", "ImportOutcome",
           "scan_measurements", "load_preview", "import_into_project", "sideband_status", "cell_text",
           "scan_summary", "import_summary", "measurement_details"]

log = logging.getLogger(__name__)

VALID_TEXT = "valid"
NO_METADATA = "no measurement.json"
NO_METADATA_TEXT = "no measurement.json (images only)"
#: The measurement table's columns.
COLUMNS = ("Name", "Sample", "Images", "Image size", "Status")

#: The project side-band setting's choices: (value, text in the combo, tooltip).
SIDEBAND_ITEMS = (
    ("auto", "Automatic (sample denser than medium)",
     "Of the two twin side bands, take the one that gives the sample a positive phase, decided once per "
     "measurement on all its fields. Right for cells, bacteria, beads: anything denser than its medium."),
    ("as-given", "As given (f_x > 0)",
     "Always take the side-band peak with f_x > 0 (docs/formats.md). For samples less dense than their "
     "medium (e.g. droplets of a lower index), where the automatic rule would flip the sign."),
)


@dataclass(frozen=True)
class ImportOutcome:
    """What happened to one folder of an import: ``status`` "imported", "already" or "failed"."""

    path: Path
    status: str
    measurement_id: Optional[int] = None
    error: str = ""


# ---------------------------------------------------------------------------- jobs
def scan_measurements(root: str | Path, progress: Optional[Callable[..., None]] = None,
                      cancel=None) -> list[MeasurementInfo]:  # noqa: ANN001 - CancelToken
    """Find and check every measurement folder under ``root`` (``root`` itself may be one).

    Returns
    -------
    list of MeasurementInfo
        One per folder found, in natural order, then the folders that cannot be read as a
        measurement (invalid, with their error text).
    """
    report(progress, 0.0, "looking for measurement folders")
    failed: list[MeasurementInfo] = []

    def not_a_measurement(folder: Path, message: str) -> None:
        failed.append(MeasurementInfo(name=Path(folder).name, path=Path(folder), valid=False, error=message))

    folders = discover_measurements(root, on_error=not_a_measurement, on_unrecognised=not_a_measurement)
    infos: list[MeasurementInfo] = []
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        report(progress, i / max(1, len(folders)), f"checking {folder.name}")
        infos.append(inspect_measurement(folder, thumbnail=False))
    report(progress, 1.0, f"{len(infos)} measurement(s) found"
           + (f", {len(failed)} folder(s) that cannot be read as one" if failed else ""))
    return infos + failed


def load_preview(folder: str | Path, progress: Optional[Callable[..., None]] = None,
                 cancel=None) -> Measurement:  # noqa: ANN001 - CancelToken
    """Load one measurement's holograms for the preview."""
    check_cancel(cancel)
    report(progress, 0.0, f"reading {Path(folder).name}")
    m = load_measurement(folder)
    report(progress, 1.0, "loaded")
    return m


def import_into_project(project: Any, folders: list[str | Path], progress: Optional[Callable[..., None]] = None,
                        cancel=None) -> list[ImportOutcome]:  # noqa: ANN001 - CancelToken
    """Add measurement folders to a project's catalogue.

    Each folder is checked again (:func:`engine.store.folders.inspect_measurement`); an invalid
    one, or one whose import raises, is reported as "failed" with the error and the others go
    on. A folder already in the project is reported as "already" (its id kept).

    Parameters
    ----------
    project : engine.store.project.Project
    folders : list of paths
    progress, cancel
        The :mod:`engine.progress` protocol (cancel stops before the next folder).

    Returns
    -------
    list of ImportOutcome, one per folder handled (fewer when cancelled).
    """
    known = {str(Path(r.path).resolve()): r.id for r in project.list_measurements()}
    out: list[ImportOutcome] = []
    for i, folder in enumerate(folders):
        check_cancel(cancel)
        folder = Path(folder)
        report(progress, i / max(1, len(folders)), f"importing {folder.name} ({i + 1} of {len(folders)})")
        try:
            key = str(folder.resolve())
            if key in known:
                out.append(ImportOutcome(folder, "already", known[key]))
                continue
            info = inspect_measurement(folder, thumbnail=False)
            if not info.valid:
                out.append(ImportOutcome(folder, "failed", None, info.error))
                continue
            mid = project.add_measurement(folder, info)
            known[key] = mid
            out.append(ImportOutcome(folder, "imported", mid))
        except Exception as exc:  # noqa: BLE001 - one folder's error never stops the rest
            log.exception("import of %s failed", folder)
            out.append(ImportOutcome(folder, "failed", None, f"{type(exc).__name__}: {exc}"))
    report(progress, 1.0, f"{sum(o.status == 'imported' for o in out)} measurement(s) imported")
    return out


def sideband_status(project: Any, folder: str | Path, progress: Optional[Callable[..., None]] = None,
                    cancel=None) -> str:  # noqa: ANN001 - CancelToken
    """How the side band of measurement ``folder`` was (or will be) chosen, one line.

    From the result file's ``retrieval/`` record when ``project`` holds the measurement and has
    processed it; else what will decide it: ``carrier_per_um`` in measurement.json (always
    honoured) or the project's side-band setting.
    """
    from engine.metadata import MeasurementMetadata
    from engine.store.results import read_result

    check_cancel(cancel)
    setting = project_sideband(project) if project is not None else "auto"
    target = Path(folder).resolve()
    rec = None
    if project is not None:
        rec = next((r for r in project.list_measurements() if Path(r.path).resolve() == target), None)
    if rec is not None:
        path = Path(project.result_path(rec))
        if path.is_file():
            try:
                res = read_result(path, groups=["retrieval"])
            except ValueError as exc:
                return f"side band: the result file cannot be read ({exc})"
            r = res.retrieval
            return sideband_description({"attrs": dict(r.attrs)} if r is not None else {}, setting)
        meta_json = rec.metadata_json
    else:
        meta_json = read_metadata_text(target)
    try:
        carrier = MeasurementMetadata.from_json(meta_json).carrier_per_um if meta_json else None
    except Exception:  # noqa: BLE001 - an invalid folder has its own error in the table
        carrier = None
    if carrier is not None:
        return "side band: carrier_per_um from measurement.json (always honoured)"
    return sideband_description(None, setting)


# ---------------------------------------------------------------------------- text
def cell_text(info: MeasurementInfo, col: int) -> str:
    """The text of column ``col`` (:data:`COLUMNS`) for one measurement."""
    if col == 0:
        return info.name
    if col == 1:
        return info.sample_name or info.name
    if col == 2:
        return str(info.n_images) if info.n_images else "–"
    if col == 3:
        return f"{info.image_shape[1]} × {info.image_shape[0]}" if info.image_shape else "–"
    if not info.valid and info.error.startswith(NO_METADATA):  # the start says it: keep it short
        return NO_METADATA_TEXT
    return VALID_TEXT if info.valid else info.error


def scan_summary(infos: list[MeasurementInfo], n_in_project: int) -> str:
    """The line under the table after a scan ("" when nothing was found)."""
    if not infos:
        return ""
    n_meta = sum(not i.valid and i.error.startswith(NO_METADATA) for i in infos)
    n_found = len(infos) - n_meta
    n_bad = sum(not i.valid for i in infos) - n_meta
    return (f"{n_found} measurement folder(s) found: {n_found - n_bad} valid"
            + (f", {n_bad} with errors (hover the status for details)" if n_bad else "") + "."
            + (f" {n_meta} folder(s) of images without measurement.json: not imported until one is added."
               if n_meta else "")
            + (f" {n_in_project} already in the project (marked P)." if n_in_project else ""))


def import_summary(outcomes: list[ImportOutcome]) -> str:
    """``"3 imported, 1 already in the project, 1 failed: name: error."``"""
    ok = sum(o.status == "imported" for o in outcomes)
    already = sum(o.status == "already" for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    text = f"{ok} imported"
    if already:
        text += f", {already} already in the project"
    if failed:
        text += f", {len(failed)} failed: " + "; ".join(f"{o.path.name}: {o.error}" for o in failed)
    return text + "."


def _fmt(v: Optional[float], unit: str = "", digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}{(' ' + unit) if unit else ''}"


def measurement_details(info: MeasurementInfo) -> dict[str, str]:
    """The preview's details of one measurement: label → text ("–" where unknown)."""
    m = info.metadata
    shape = f", {info.image_shape[1]} × {info.image_shape[0]} px" if info.image_shape else ""
    return {
        "Wavelength": _fmt(m.wavelength_um * 1000, "nm") if m else "–",
        "Medium index": _fmt(m.medium_index) if m else "–",
        "Objective NA": _fmt(m.na_objective) if m else "–",
        "Pixel size": _fmt(m.pixel_size_um, "µm") if m else "–",
        "Geometry": m.geometry + (", polarisation-resolved" if m.polarised else "") if m else "–",
        "Images": f"{info.n_images}{shape} ({info.dtype})" if info.n_images else "–",
    }
