"""The demo *project*: what a first launch shows, built through the engine like any project.

:func:`ensure_demo_project` makes (once) a project folder holding several simulated
measurements — bacteria, adherent cells, a silica bead and a liquid-crystal droplet — that are

1. simulated (:func:`engine.simulate.demo.write_demo`, small setups so the whole build takes
   about a minute on two CPU cores) into ``<folder>/measurements/``;
2. imported into a project (:class:`engine.store.project.Project`, ``<folder>/project/``);
3. screened (:func:`engine.pipeline.project_screening.screen_project_measurement`: the shipped
   network, or the rule without one), with two manual overrides written to the audit trail
   (user ``demo``, with their reasons), as a reviewer would;
4. reconstructed with the project's decisions through the one pipeline
   (:func:`engine.pipeline.process.process_measurement` with ``screening=`` and ``retrieved=``):
   Rytov + non-negativity, and TV beside it for the bacteria;
5. for the droplet (polarisation-resolved), processed with ``ProcessOptions(birefringence=True,
   birefringence_method="dtt")`` (first-order dielectric tensor tomography: n_e, n_o, director).
   Not ``auto``: its 4-rad droplet would get ``dtt-refined``, ~30 s more on the first launch.

A marker file ``demo_project.json`` (the builder's :data:`DEMO_PROJECT_VERSION`, the engine
version, the measurements and their ids) is written last: a folder without it, or made by
another version of the builder or of the program, is built again from scratch; otherwise it is reused as it is (including any
review the user did since). Nothing here imports Qt; long steps report progress and honour a
cancel token (:mod:`engine.progress`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..progress import CancelToken, check_cancel, report, sub_progress

__all__ = ["DEMO_PROJECT_VERSION", "MARKER", "DemoSample", "DemoProject", "demo_samples",
           "tiny_demo_samples", "build_demo_project", "ensure_demo_project", "read_demo_project"]

log = logging.getLogger(__name__)

#: Bump when what the demo project holds changes: older demo folders are then rebuilt.
DEMO_PROJECT_VERSION = 2  # 2: the droplet's screening is recorded in the project
MARKER = "demo_project.json"
PROJECT_DIR = "project"
MEASUREMENTS_DIR = "measurements"
DEMO_USER = "demo"


@dataclass
class DemoSample:
    """One measurement of the demo project.

    Attributes
    ----------
    kind : {"beads", "bacteria", "cells", "lc-droplets"}
    config : engine.simulate.demo.DemoConfig
        The acquisition (kept small: the demo must build in about a minute).
    seed : int
    regularize : {"none", "tv"}
        Regularisation of its reconstruction (TV is shown beside the raw tomogram).
    tv_iterations : (outer, inner)
        TV iterations when ``regularize == "tv"``.
    overrides : int
        How many manual overrides the demo reviewer writes for it (0, 1 or 2).
    """

    kind: str
    config: object
    seed: int = 0
    regularize: str = "none"
    tv_iterations: tuple[int, int] = (12, 10)
    overrides: int = 0


@dataclass
class DemoProject:
    """A built (or reused) demo project.

    Attributes
    ----------
    folder : Path
        The demo folder (``measurements/``, ``project/``, the marker).
    project_path : Path
        The project folder (open it with :meth:`engine.store.project.Project.open`).
    measurements_dir : Path
        The simulated measurement folders.
    measurements : dict
        Kind → ``{"id", "name", "folder", "result"}`` (paths as str).
    built : bool
        True when this call built it, False when an earlier build was reused.
    seconds : float
        Build time (of the build that made it).
    version : int
    """

    folder: Path
    project_path: Path
    measurements_dir: Path
    measurements: dict = field(default_factory=dict)
    built: bool = False
    seconds: float = 0.0
    version: int = DEMO_PROJECT_VERSION

    def measurement(self, kind: str) -> Optional[dict]:
        return self.measurements.get(kind)


def demo_samples() -> list[DemoSample]:
    """The shipped demo: bacteria (with TV), adherent cells, a silica bead, a liquid-crystal droplet.

    Camera pixel 0.1 µm everywhere (the off-axis side band must stay inside the camera's
    Nyquist limit); simulation grids of 0.2 µm for the larger samples.
    """
    from ..simulate.demo import DEMO_DEFAULTS, DemoConfig
    from ..simulate.holograms import Setup

    bact = DemoConfig(Setup(image_shape=(128, 128), pixel_size_um=0.1, n_angles=31, pattern="spiral",
                            na_condenser=1.1), depth_um=3.2, defect_rate=0.15, imperfection_rate=0.1,
                      near_edge_probability=0.0)
    cells = DemoConfig(Setup(image_shape=(192, 192), pixel_size_um=0.1, sim_pixel_um=0.2, voxel_z_um=0.2,
                             n_angles=25, pattern="spiral", na_condenser=1.1), depth_um=8.0,
                       defect_rate=0.15, imperfection_rate=0.1, near_edge_probability=0.0)
    bead = DemoConfig(Setup(image_shape=(96, 96), pixel_size_um=0.1, sim_pixel_um=0.2, n_angles=25,
                            pattern="ring", na_condenser=1.1), depth_um=4.0,
                      phantom_kwargs={"count": 1, "radius_range_um": (1.2, 1.5), "material": "silica"},
                      defect_rate=0.1, imperfection_rate=0.1, near_edge_probability=0.0)
    lc = DEMO_DEFAULTS["lc-droplets"]
    # a weak bipolar droplet (Δn 0.06): dielectric tensor tomography is first-order, strong 5CB-like
    # droplets come out wrong (README, "How good is it")
    droplet = DemoConfig(replace(lc.setup, image_shape=(112, 112), n_angles=17), depth_um=6.4,
                         phantom_kwargs={"radius_um": 2.4, "configuration": "bipolar", "n_o": 1.50, "n_e": 1.56},
                         defect_rate=0.0, imperfection_rate=0.0, near_edge_probability=0.0)
    return [DemoSample("bacteria", bact, seed=3, regularize="tv", overrides=2),
            DemoSample("cells", cells, seed=1, overrides=1),
            DemoSample("beads", bead, seed=2),
            DemoSample("lc-droplets", droplet, seed=0)]


def tiny_demo_samples() -> list[DemoSample]:
    """The same four kinds at 64 × 64 px and few angles (seconds in all): for tests."""
    from ..selftest import tiny_demo_config
    from ..simulate.demo import DEMO_DEFAULTS, DemoConfig

    tiny = tiny_demo_config(n_angles=11)
    lc = DEMO_DEFAULTS["lc-droplets"]
    droplet = DemoConfig(replace(lc.setup, image_shape=(64, 64), n_angles=5), depth_um=4.0,
                         phantom_kwargs={"radius_um": 1.5}, defect_rate=0.0, imperfection_rate=0.0,
                         near_edge_probability=0.0)
    noisy = replace(tiny, defect_rate=0.2)
    return [DemoSample("bacteria", replace(noisy, phantom_kwargs={}), seed=3, regularize="tv",
                       tv_iterations=(2, 2), overrides=2),
            DemoSample("cells", replace(noisy, phantom_kwargs={}, depth_um=4.0), seed=1, overrides=1),
            DemoSample("beads", tiny, seed=2),
            DemoSample("lc-droplets", droplet, seed=0)]


# ---------------------------------------------------------------------- reuse
def read_demo_project(folder: str | Path) -> Optional[DemoProject]:
    """The demo project in ``folder`` if it is complete and of :data:`DEMO_PROJECT_VERSION`, else None."""
    folder = Path(folder)
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from .. import __version__

    if not isinstance(info, dict) or info.get("version") != DEMO_PROJECT_VERSION \
            or info.get("engine_version") != __version__:
        return None  # built by another version of the program: the demo must show this one's work
    project_path = folder / PROJECT_DIR
    measurements = info.get("measurements") or {}
    if not (project_path / "project.sqlite").is_file() or not measurements:
        return None
    for m in measurements.values():
        if not (Path(m.get("folder", "")).is_dir() and Path(m.get("result", "")).is_file()):
            return None
    return DemoProject(folder=folder, project_path=project_path, measurements_dir=folder / MEASUREMENTS_DIR,
                       measurements=measurements, built=False, seconds=float(info.get("seconds", 0.0)))


def ensure_demo_project(folder: str | Path, *, samples: Optional[list[DemoSample]] = None, device: str = "auto",
                        force: bool = False, progress: Optional[Callable[..., None]] = None,
                        cancel: Optional[CancelToken] = None) -> DemoProject:
    """The demo project in ``folder``: reused when complete and current, else built (:func:`build_demo_project`)."""
    if not force:
        report(progress, 0.0, "looking for the demo project")
        found = read_demo_project(folder)
        if found is not None:
            report(progress, 1.0, "demo project found")
            return found
    return build_demo_project(folder, samples=samples, device=device, progress=progress, cancel=cancel)


# ---------------------------------------------------------------------- building
def build_demo_project(folder: str | Path, *, samples: Optional[list[DemoSample]] = None, device: str = "auto",
                       progress: Optional[Callable[..., None]] = None,
                       cancel: Optional[CancelToken] = None) -> DemoProject:
    """Build the demo project in ``folder`` from scratch (anything there before is removed).

    Parameters
    ----------
    folder : path
        Demo folder (created); gets ``measurements/``, ``project/`` and, last, :data:`MARKER`.
    samples : list of DemoSample, optional
        Default :func:`demo_samples`; tests pass :func:`tiny_demo_samples`.
    device : {"auto", "cpu", "cuda"}
    progress, cancel
        :mod:`engine.progress`. A cancelled build leaves no marker, so the next call builds again.

    Returns
    -------
    DemoProject
    """
    from ..simulate.demo import write_demo
    from ..store.project import Project

    t0 = time.perf_counter()
    samples = samples if samples is not None else demo_samples()
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    mdir = folder / MEASUREMENTS_DIR
    mdir.mkdir(parents=True)
    n = len(samples)
    # weights: simulation 45 %, screening 15 %, reconstruction 40 %
    folders = []
    for k, s in enumerate(samples):
        check_cancel(cancel)
        sub = sub_progress(progress, 0.45 * k / n, 0.45 * (k + 1) / n, f"simulating {s.kind} ({k + 1}/{n}): ")
        folders.append(write_demo(mdir, kind=s.kind, count=1, seed=s.seed, config=s.config, device=device,
                                  progress=sub, cancel=cancel)[0])
    report(progress, 0.45, "importing into the demo project")
    project = Project.create(folder / PROJECT_DIR)
    try:
        ids = [project.add_measurement(f) for f in folders]
        for k, (s, mid) in enumerate(zip(samples, ids)):
            if s.kind == "lc-droplets":  # polarised: screened per illumination by the pipeline (_reconstruct)
                continue
            sub = sub_progress(progress, 0.45 + 0.15 * k / n, 0.45 + 0.15 * (k + 1) / n, f"screening {s.kind}: ")
            _screen_and_review(project, mid, s, device, sub, cancel)
        out = {}
        for k, (s, mid, f) in enumerate(zip(samples, ids, folders)):
            sub = sub_progress(progress, 0.6 + 0.4 * k / n, 0.6 + 0.4 * (k + 1) / n, f"reconstructing {s.kind}: ")
            result = _reconstruct(project, mid, f, s, device, sub, cancel)
            out[s.kind] = {"id": int(mid), "name": project.get_measurement(mid).name, "folder": str(f.resolve()),
                           "result": str(result.resolve())}
    finally:
        project.close()
    seconds = time.perf_counter() - t0
    from .. import __version__

    marker = {"version": DEMO_PROJECT_VERSION, "engine_version": __version__, "seconds": round(seconds, 1),
              "measurements": out}
    (folder / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    report(progress, 1.0, f"demo project ready ({seconds:.0f} s)")
    log.info("demo project built in %.1f s: %s", seconds, folder)
    return DemoProject(folder=folder, project_path=folder / PROJECT_DIR, measurements_dir=mdir,
                       measurements=out, built=True, seconds=seconds)


def _screen_and_review(project, mid: int, sample: DemoSample, device: str, progress, cancel) -> None:
    """Screen one measurement and write the demo reviewer's overrides (with reasons) to the audit trail."""
    from .project_screening import screen_project_measurement

    with project.job("screening", f"demo: {sample.kind}"):
        ps = screen_project_measurement(project, mid, device=device, progress=progress, cancel=cancel)
    if sample.overrides <= 0:
        return
    md = project.metadata(mid)
    for index, decision, reason in _review(ps, _per_field(md, "labels"), _per_field(md, "imperfections"))[
            : sample.overrides]:
        project.set_override(mid, index, decision, user=DEMO_USER, reason=reason)


def _per_field(metadata: dict, key: str) -> list:
    """A per-field list of the catalogued metadata (the simulator's ``labels``, ``imperfections``), or []."""
    v = metadata.get(key) or []
    return v if isinstance(v, list) else []


def _review(ps, labels: list, imperfections: list) -> list[tuple[int, int, str]]:
    """What a careful reviewer changes, most telling first: the automatic mistakes (known from the
    simulator's labels), clean fields with an imperfection that the screening kept (excluded by
    hand, to be safe), then the most uncertain fields (their decision confirmed by a person)."""
    decision = np.asarray(ps.decision)
    n = len(decision)
    out: list[tuple[int, int, str]] = []
    if len(labels) == n:
        for i in range(n):
            truth = {"clean": 1, "noisy": 0}.get(labels[i])
            if truth is not None and truth != int(decision[i]):
                why = ("fringes look clean: the score was too cautious" if truth else
                       "a defect the screening missed (dust or a fringe artefact)")
                out.append((i, truth, why))
    if len(imperfections) == n:
        for i in range(n):
            if imperfections[i] and int(decision[i]) == 1 and all(i != j for j, _d, _r in out):
                out.append((i, 0, f"{imperfections[i]} (a mild imperfection the screening let through): "
                                  "excluded by hand, to be safe"))
    score = np.asarray(ps.score, dtype=float)
    if np.isfinite(score).any():
        thr = ps.threshold if ps.threshold is not None else 0.5
        order = np.argsort(np.abs(np.nan_to_num(score, nan=np.inf) - thr))
    else:
        order = np.arange(n)
    done = {i for i, _d, _r in out}
    for i in order:
        if int(i) not in done:
            out.append((int(i), int(decision[i]), "borderline score: checked by eye, decision confirmed"))
    return out


def _reconstruct(project, mid: int, folder: Path, sample: DemoSample, device: str, progress, cancel) -> Path:
    """Reconstruct one measurement through the pipeline with the project's decisions; the result path."""
    from .process import ProcessOptions, process_measurement
    from .project_screening import project_screening_record

    out = Path(project.result_path(mid))
    if sample.kind == "lc-droplets":
        opts = ProcessOptions(screen="model", birefringence=True, birefringence_method="dtt", device=device)
        screening, retrieved = None, None
    else:
        outer, inner = sample.tv_iterations
        opts = ProcessOptions(screen="none", regularize=sample.regularize, device=device,
                              sideband=project.sideband, tv_outer_iterations=outer, tv_inner_iterations=inner)
        screening, retrieved = project_screening_record(project, mid), out
    with project.job("reconstruction", f"demo: {sample.kind} ({opts.describe()})"):
        res = process_measurement(folder, out, opts, screening=screening, retrieved=retrieved,
                                  progress=progress, cancel=cancel)
    if sample.kind == "lc-droplets":  # the pipeline screened it per illumination: the review tab lists that run
        s = res.screening
        project.add_screening(mid, s.decision, score=s.score, rule_peak=s.rule_peak,
                              source=[min(int(v), 1) for v in s.source], model_name=s.model_name,
                              model_version=s.model_version, threshold=opts.threshold)
    return out
