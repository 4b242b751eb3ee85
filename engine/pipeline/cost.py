"""How long a reconstruction will take, estimated before it starts from costs measured on this machine.

The model counts the work of each stage of :func:`engine.pipeline.process.process_measurement`
in units whose cost is timed once per process and device (:func:`calibrate`, about a second on
a 2-core CPU), by running the engine's own kernels on small grids:

* ``fft3``: one complex 3-D FFT and its inverse, seconds per ``V·log2 V`` (``V`` voxels);
* ``fft2``: one batched 2-D FFT pair, seconds per ``P·log2 P`` (``P = Y·X`` pixels);
* ``tv``: one FGP iteration of :func:`engine.tomography.tv.tv_denoise`, seconds per voxel;
* ``screen``: one SSNP screen of :class:`engine.tomography.multislice.MultisliceModel`, forward
  and gradient, for one illumination: ``a + b·P·log2 P`` seconds, fitted to two plane sizes
  (the fixed part ``a`` is the per-operation overhead that dominates small planes).

Stage counts (N fields used, Z×Y×X voxels, ``s`` SSNP sub-steps per slice):

==========================  ===================================================================
retrieval (if not reused)   ``400·N·fft2(P)`` (the guided unwrapping dominates)
first order                 ``10·N·fft2(P) + 4·fft3(V)`` (Fourier mapping, inverse transform)
non-negativity, k iter.     ``2·k·fft3(V)`` (a real FFT pair and a projection per iteration)
TV, o × i iterations        ``o·(2·fft3(V) + i·tv(V))``
learned regulariser         ``2·fft3(V)`` (a small 3-D U-Net on the CPU is of that order)
multislice, m iterations    a second first-order + non-negativity start, then
                            ``m·(min(B, N)·Z·s·screen(P) + 10·tv(V))`` (B the batch)
  frame "illumination"      every iteration's screens ×5 (:data:`ILLUMINATION_FRAME_FACTOR`)
  frame "auto"              as "lab", plus the optional stage ``illumination_frame``: 15
                            iterations at ×5, counted only in :attr:`CostEstimate.seconds_max`
                            (they run only when the iterate's peak Δn exceeds 0.2)
==========================  ===================================================================

The multislice term is the kernel itself timed; the integer factors of the others were fitted
once to measured stage times (64² and 128² beads, 15 and 31 fields). Screening is not counted.
The result is an estimate for a person deciding whether to wait, not a promise: on a shared
machine it is good to within a factor of about two (measured numbers in
``tests/engine/test_multislice_pipeline.py`` and the issue #21 report).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = ["CostCalibration", "CostEstimate", "calibrate", "estimate_seconds", "problem_size",
           "format_seconds"]

#: Illumination-frame SSNP screens cost this many lab-frame ones (forward + gradient, support box:
#: 80 ms vs 14 ms per illumination, 64×64×32 polystyrene, engine.tomography.multislice notes; a
#: support filling the volume costs up to ~50× at 64×128×128, so this is for compact samples)
ILLUMINATION_FRAME_FACTOR = 5.0

_CACHE: dict[str, "CostCalibration"] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class CostCalibration:
    """Unit costs measured on this machine (seconds; see the module notes).

    Attributes
    ----------
    fft3 : float
        Per ``V·log2 V`` of a complex 3-D FFT pair.
    fft2 : float
        Per ``P·log2 P`` of a 2-D FFT pair.
    tv : float
        Per voxel of one FGP (TV-proximal) iteration.
    screen_a, screen_b : float
        One SSNP screen, forward and gradient, one illumination: ``a + b·P·log2 P``.
    device : str
    seconds : float
        How long the calibration took.
    """

    fft3: float
    fft2: float
    tv: float
    screen_a: float
    screen_b: float
    device: str = "cpu"
    seconds: float = 0.0

    def screen(self, pixels: int) -> float:
        """Seconds of one SSNP screen (forward and gradient, one illumination) on ``pixels`` = Y·X."""
        return self.screen_a + self.screen_b * _plogp(pixels)


#: what each optional stage of a :class:`CostEstimate` is, for :meth:`CostEstimate.describe`
OPTIONAL_STAGES = {"illumination_frame": "in the illumination frame if dense",
                   "tv_fallback": "if TV runs in the learned step's place (measurement outside its domain)"}


@dataclass
class CostEstimate:
    """Estimated seconds of a reconstruction, per stage (``first_order``, ``non_negativity``, ``tv``,
    ``deep``, ``multislice``) and in total, with the problem size it was made for; ``optional``
    the stages that may not run (``illumination_frame`` of ``multislice_frame="auto"``, ``tv_fallback``
    of ``regularize="deep"``: TV's extra time when it runs in the learned step's place)."""

    stages: dict = field(default_factory=dict)
    shape: tuple = ()
    n_fields: int = 0
    substeps: int = 1
    optional: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Seconds of the stages that always run."""
        return float(sum(self.stages.values()))

    @property
    def seconds_max(self) -> float:
        """Seconds with the optional stages too (an upper bound of the estimate)."""
        return self.seconds + float(sum(self.optional.values()))

    def describe(self) -> str:
        """One line for a person, e.g. ``"≈ 42 s (multislice 38 s) for 64 × 128 × 128 voxels, 49 fields"``
        (``"; + up to 2 min 10 s in the illumination frame if dense"`` with the optional stage)."""
        z, y, x = self.shape
        big = max(self.stages, key=self.stages.get) if self.stages else ""
        part = f" ({big.replace('_', '-')} {format_seconds(self.stages[big])})" if len(self.stages) > 1 else ""
        extra = "".join(f"; + up to {format_seconds(v)} {OPTIONAL_STAGES.get(k, k.replace('_', ' '))}"
                        for k, v in self.optional.items())
        return f"≈ {format_seconds(self.seconds)}{part} for {z} × {y} × {x} voxels, {self.n_fields} fields{extra}"


def format_seconds(s: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 20 s``, ``1 h 05 min``."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        m, r = divmod(int(round(s)), 60)
        return f"{m} min {r:02d} s"
    h, r = divmod(int(round(s)) // 60, 60)
    return f"{h} h {r:02d} min"


def _plogp(n: float) -> float:
    return float(n) * math.log2(max(2.0, float(n)))


def _best_of(fn, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _screen_seconds(n: int, dev: Any, illuminations: int = 4, depth: int = 4) -> float:
    """One SSNP screen (forward + gradient) per illumination on an n × n plane, seconds."""
    import torch

    from ..tomography.multislice import MultisliceModel

    model = MultisliceModel((depth, n, n), (0.1, 0.1, 0.1), 0.532, 1.337, 1.0, substeps=1, device=dev)
    ill = np.stack([np.linspace(0.0, 1.0, illuminations), np.zeros(illuminations)], 1)
    dn = torch.full((depth, n, n), 0.01, dtype=torch.float32, device=dev)

    def once() -> None:
        x = dn.clone().requires_grad_(True)
        model.fields(x, ill).abs().square().sum().backward()

    once()  # warm-up (plans, allocations)
    return _best_of(once, 2) / (illuminations * depth)


def calibrate(device: str = "cpu", *, refresh: bool = False) -> CostCalibration:
    """Unit costs of this machine (cached per device for the process; ≈ 1 s the first time).

    On the CPU the multislice kernels run on one thread, as :func:`reconstruct_multislice` does.
    """
    import torch

    from ..backend import resolve_device
    from ..tomography.tv import tv_denoise

    dev = resolve_device(device)
    key = str(dev)
    with _LOCK:
        if not refresh and key in _CACHE:
            return _CACHE[key]
        t0 = time.perf_counter()
        v = torch.randn((32, 64, 64), dtype=torch.complex64, device=dev)
        fft3 = _best_of(lambda: torch.fft.ifftn(torch.fft.fftn(v))) / _plogp(v.numel())
        p = torch.randn((8, 128, 128), dtype=torch.complex64, device=dev)
        fft2 = _best_of(lambda: torch.fft.ifft2(torch.fft.fft2(p))) / (8 * _plogp(128 * 128))
        x = torch.rand((32, 64, 64), dtype=torch.float32, device=dev)
        tv = _best_of(lambda: tv_denoise(x, 1e-3, iterations=5), 2) / (5 * x.numel())
        threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)
        try:
            small, large = _screen_seconds(32, dev), _screen_seconds(96, dev)
        finally:
            torch.set_num_threads(threads)
        b = max(0.0, (large - small) / (_plogp(96 * 96) - _plogp(32 * 32)))
        a = max(0.0, small - b * _plogp(32 * 32))
        cal = CostCalibration(fft3=fft3, fft2=fft2, tv=tv, screen_a=a, screen_b=b, device=key,
                              seconds=time.perf_counter() - t0)
        _CACHE[key] = cal
        return cal


def problem_size(metadata: Any, image_shape: tuple, shape_z: Optional[int] = None) -> tuple[tuple, int]:
    """The (Z, Y, X) grid the reconstruction will use and the SSNP sub-steps per slice.

    As :func:`engine.tomography.reconstruct.reconstruct` (Z = min(H, W) // 2 unless given, dz =
    the pixel size) and :class:`engine.tomography.multislice.MultisliceModel` (``k·h ≤ 2``).
    """
    h, w = (int(s) for s in image_shape)
    z = int(shape_z) if shape_z else max(2, min(h, w) // 2)
    k = 2 * math.pi * float(metadata.medium_index) / float(metadata.wavelength_um)
    substeps = max(1, math.ceil(k * float(metadata.pixel_size_um) / 2.0 - 1e-9))
    return (z, h, w), substeps


def _deep_polish(options: Any) -> tuple[int, int]:
    """(outer, inner) TV iterations after the learned regulariser's network (the card's by default)."""
    try:
        from ..tomography.deep_regularizer import model_card, polish_iterations_of

        return polish_iterations_of(model_card(), getattr(options, "deep_polish_iterations", None))
    except Exception:  # noqa: BLE001 - an estimate: no card, no polish counted
        return 0, 0


def estimate_seconds(options: Any, shape: tuple, n_fields: int, substeps: int = 1,
                     calibration: Optional[CostCalibration] = None, *, retrieve: bool = False) -> CostEstimate:
    """Estimated seconds of ``process_measurement`` with ``options`` (a ProcessOptions) on a
    (Z, Y, X) grid from ``n_fields`` fields, per stage (module notes).

    Parameters
    ----------
    options : engine.pipeline.process.ProcessOptions
    shape : (Z, Y, X)
    n_fields : int
        Fields the reconstruction uses (after screening).
    substeps : int
        SSNP sub-steps per slice (:func:`problem_size`).
    calibration : CostCalibration, optional
        Default :func:`calibrate` for ``options.device``.
    retrieve : bool
        Count the retrieval of the fields too (they are not reused).
    """
    cal = calibration or calibrate("cpu" if options.device == "auto" else options.device)
    z, y, x = (int(s) for s in shape)
    vox, pix = z * y * x, y * x
    n = max(1, int(n_fields))
    f3 = cal.fft3 * _plogp(vox)
    first = 10 * n * cal.fft2 * _plogp(pix) + 4 * f3
    nonneg = 2 * options.non_negativity_iterations * f3
    stages = {"retrieval": 400 * n * cal.fft2 * _plogp(pix)} if retrieve else {}
    stages.update(first_order=first, non_negativity=nonneg)
    optional: dict = {}
    tv = options.tv_outer_iterations * (2 * f3 + options.tv_inner_iterations * cal.tv * vox)
    if options.regularize == "tv":
        stages["tv"] = tv
    elif options.regularize == "deep":
        outer, inner = _deep_polish(options)  # the network ≈ 2 FFTs; then its TV iterations
        stages["deep"] = 2 * f3 + outer * (2 * f3 + inner * cal.tv * vox)
        if getattr(options, "deep_domain_tolerance", None) is not None:  # TV in its place, outside its domain
            optional["tv_fallback"] = tv - stages["deep"]
    if options.method == "multislice":
        frame = getattr(options, "multislice_frame", "lab")
        screens = min(int(options.multislice_batch), n) * z * int(substeps) * cal.screen(pix)
        ill = screens * ILLUMINATION_FRAME_FACTOR + 10 * cal.tv * vox  # one illumination-frame iteration
        per_iteration = ill if frame == "illumination" else screens + 10 * cal.tv * vox
        stages["multislice"] = first + nonneg + int(options.multislice_iterations) * per_iteration
        if frame == "auto":
            optional["illumination_frame"] = _refine_iterations() * ill
    return CostEstimate(stages=stages, shape=(z, y, x), n_fields=n, substeps=int(substeps), optional=optional)


def _refine_iterations() -> int:
    """Illumination-frame iterations of ``frame="auto"`` (``MultisliceOptions.refine_iterations``)."""
    from ..tomography.multislice import MultisliceOptions

    return int(MultisliceOptions().refine_iterations)
