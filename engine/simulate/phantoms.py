"""Refractive-index phantoms: beads, bacteria, eukaryotic cells and liquid-crystal droplets.

Conventions (``docs/formats.md``)
-----------------------------------
* Volumes are (z, y, x) arrays, voxel sizes ``(dz, dy, dx)`` in µm; voxel ``k`` of an axis of
  ``n`` voxels sits at ``(k - n//2) * d`` (so x = y = 0 at the image centre and z = 0, the
  focal plane, at slice ``Z//2``).
* Vectors (centres, directors) are given in (z, y, x) component order.
* Indices are real (no absorption); the medium has index ``medium_index``.
* Edges are anti-aliased: each shape is painted with a sub-voxel coverage
  ``clip(0.5 - d/h, 0, 1)`` of its signed distance ``d`` (``h`` = voxel size), so the
  volume fraction of boundary voxels is right to first order.

Every generator takes a ``numpy.random.Generator`` (or an integer seed) and is reproducible.
Truth parameters (centres, radii, indices) are kept in ``Phantom.params``.

References
----------
.. [1] Ryu et al., "Deep learning-based optical field screening for robust optical
   diffraction tomography", Sci. Rep. 9, 15239 (2019/2021) — bacteria and cells imaged by ODT.
.. [2] Kim et al., "Tomographic measurement of the dielectric tensor" / Shin et al., Nat.
   Mater. 21, 317 (2022) — liquid-crystal droplets, bipolar and radial configurations.
.. [3] Refractive indices: silica 1.46, polystyrene 1.598 at 532 nm; bacteria 1.37–1.40
   (Liu et al., Sci. Rep. 2016); cells 1.35–1.40, lipid droplets ≥ 1.42.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

__all__ = [
    "Phantom",
    "PHANTOM_KINDS",
    "as_rng",
    "make_bead",
    "make_bacterium",
    "make_cell",
    "make_lc_droplet",
    "make_phantom",
    "lc_director",
    "shift_phantom",
    "shift_near_edge",
]

PHANTOM_KINDS = ("beads", "bacteria", "cells", "lc-droplets")
BEAD_MATERIALS = {"silica": 1.46, "polystyrene": 1.598}

RngLike = Union[np.random.Generator, int, None]


def as_rng(rng: RngLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a generator, an integer seed or ``None`` (seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else int(rng))


@dataclass
class Phantom:
    """A 3-D refractive-index volume and its truth.

    Attributes
    ----------
    ri : ndarray, shape (Z, Y, X), float32
        Refractive index (for anisotropic samples: ``sqrt(trace(ε)/3)``, the mean index).
    voxel_size_um : (dz, dy, dx)
        Voxel size in µm.
    medium_index : float
        Index of the surrounding medium n_m.
    kind : str
        One of :data:`PHANTOM_KINDS` (or a single-object kind such as ``"bead"``).
    params : dict
        Truth parameters (``objects``: list of dicts with centres in µm (z, y, x), sizes, indices).
    n_o, n_e : ndarray (Z, Y, X) float32, optional
        Ordinary and extraordinary indices (liquid crystals; ``n_m`` outside).
    director : ndarray (Z, Y, X, 3) float32, optional
        Unit optic axis, (z, y, x) components (zero outside the droplets).
    epsilon : ndarray (Z, Y, X, 3, 3) float32, optional
        Relative permittivity tensor in the (z, y, x) basis (``n_m² I`` outside).
    """

    ri: np.ndarray
    voxel_size_um: tuple[float, float, float]
    medium_index: float
    kind: str
    params: dict = field(default_factory=dict)
    n_o: Optional[np.ndarray] = None
    n_e: Optional[np.ndarray] = None
    director: Optional[np.ndarray] = None
    epsilon: Optional[np.ndarray] = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.ri.shape)  # type: ignore[return-value]

    @property
    def anisotropic(self) -> bool:
        return self.epsilon is not None

    def axes_um(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates (µm) of the voxel centres along z, y and x."""
        return tuple((np.arange(n) - n // 2) * d for n, d in zip(self.ri.shape, self.voxel_size_um))


# --------------------------------------------------------------------------- painting helpers
def _coverage(sd: np.ndarray, h: float) -> np.ndarray:
    """Sub-voxel coverage from a signed distance (µm, negative inside)."""
    return np.clip(0.5 - sd / h, 0.0, 1.0)


class _Canvas:
    """Paints shapes given by signed-distance functions into a volume, inside a bounding box."""

    def __init__(self, shape: Sequence[int], voxel: Sequence[float], background: float):
        self.shape = tuple(int(s) for s in shape)
        self.voxel = tuple(float(v) for v in voxel)
        self.vol = np.full(self.shape, background, dtype=np.float64)
        self.h = float(np.mean(self.voxel))
        self.axes = [(np.arange(n) - n // 2) * d for n, d in zip(self.shape, self.voxel)]

    def box(self, lo: Sequence[float], hi: Sequence[float]):
        sl = []
        for ax, d, a, b in zip(self.axes, self.voxel, lo, hi):
            i0 = int(np.clip(np.searchsorted(ax, a - 2 * d), 0, ax.size))
            i1 = int(np.clip(np.searchsorted(ax, b + 2 * d), 0, ax.size))
            sl.append(slice(i0, i1))
        return tuple(sl)

    def grids(self, sl):
        z, y, x = (ax[s] for ax, s in zip(self.axes, sl))
        return z[:, None, None], y[None, :, None], x[None, None, :]

    def paint(self, sd_func: Callable, lo, hi, value: float) -> np.ndarray | None:
        """Blend ``value`` in with the coverage of ``sd_func(z, y, x)``; returns the coverage."""
        sl = self.box(lo, hi)
        if any(s.stop <= s.start for s in sl):
            return None
        z, y, x = self.grids(sl)
        f = _coverage(sd_func(z, y, x), self.h)
        self.vol[sl] = self.vol[sl] * (1 - f) + value * f
        return f


def _paint_sphere(cv: _Canvas, centre, radius: float, value: float):
    cz, cy, cx = centre

    def sd(z, y, x):
        return np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) - radius
    return cv.paint(sd, (cz - radius, cy - radius, cx - radius), (cz + radius, cy + radius, cx + radius), value)


def _paint_capsule(cv: _Canvas, p0, p1, radius: float, value: float):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    dd = float(d @ d)

    def sd(z, y, x):
        qz, qy, qx = z - p0[0], y - p0[1], x - p0[2]
        t = np.clip((qz * d[0] + qy * d[1] + qx * d[2]) / dd, 0.0, 1.0)
        return np.sqrt((qz - t * d[0]) ** 2 + (qy - t * d[1]) ** 2 + (qx - t * d[2]) ** 2) - radius
    lo = np.minimum(p0, p1) - radius
    hi = np.maximum(p0, p1) + radius
    return cv.paint(sd, lo, hi, value)


def _paint_ellipsoid(cv: _Canvas, centre, semi_axes, value: float, rotation: np.ndarray | None = None):
    c = np.asarray(centre, float)
    ax = np.asarray(semi_axes, float)
    R = np.eye(3) if rotation is None else rotation  # columns: ellipsoid axes in (z, y, x)

    def sd(z, y, x):
        q = [z - c[0], y - c[1], x - c[2]]
        u = [(R[0, i] * q[0] + R[1, i] * q[1] + R[2, i] * q[2]) / ax[i] for i in range(3)]
        rho = np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2)
        return (rho - 1.0) * ax.min()  # first-order distance, exact for spheres
    r = ax.max()
    return cv.paint(sd, c - r, c + r, value)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def _extent(shape, voxel) -> np.ndarray:
    """Half-extent (µm) of the volume along z, y, x."""
    return np.array([(n // 2) * d for n, d in zip(shape, voxel)], dtype=float)


def _place(rng, shape, voxel, margin_um: Sequence[float], existing: list, radius: float,
           z_range: float | None = None, tries: int = 200) -> np.ndarray:
    """A random centre inside the volume (margin kept), away from ``existing`` (centre, radius)."""
    half = _extent(shape, voxel) - np.asarray(margin_um, float)
    half = np.maximum(half, 0.0)
    for _ in range(tries):
        c = rng.uniform(-half, half)
        if z_range is not None:
            c[0] = rng.uniform(-z_range, z_range)
        if all(np.linalg.norm(c - e) > radius + r + 0.3 for e, r in existing):
            return c
    return c


def _finish(cv: _Canvas, voxel, medium_index, kind, params) -> Phantom:
    return Phantom(ri=cv.vol.astype(np.float32), voxel_size_um=tuple(float(v) for v in voxel),
                   medium_index=float(medium_index), kind=kind, params=params)


# --------------------------------------------------------------------------- beads
def make_bead(shape: Sequence[int], voxel_size_um: Sequence[float], medium_index: float = 1.337,
              rng: RngLike = None, *, radius_um: float | None = None, index: float | None = None,
              material: str | None = None, centre_um: Sequence[float] | None = None,
              count: int = 1, radius_range_um: tuple[float, float] = (0.5, 2.5)) -> Phantom:
    """Silica or polystyrene microspheres.

    Parameters
    ----------
    shape : (Z, Y, X)
        Volume size in voxels.
    voxel_size_um : (dz, dy, dx)
        Voxel size, µm.
    medium_index : float
        Medium index n_m.
    rng : Generator or int
        Random source (material, radius 0.5–2.5 µm, position).
    radius_um, index, material, centre_um : optional
        Fix the radius (µm), the index, the material (``"silica"`` 1.46 or ``"polystyrene"``
        1.598) or the centre (z, y, x) µm of the first bead.
    count : int
        Number of beads (non-overlapping).
    radius_range_um : (min, max)
        Range of the random radii, µm.

    Returns
    -------
    Phantom
        ``params["objects"]``: list of ``{"type": "bead", "material", "centre_um", "radius_um", "index"}``.

    References
    ----------
    .. [1] Sultanova et al., "Dispersion properties of optical polymers", Acta Phys. Pol. A 116,
       585 (2009) (polystyrene 1.598 at 532 nm); Malitson, JOSA 55, 1205 (1965) (silica 1.46).
    """
    rng = as_rng(rng)
    cv = _Canvas(shape, voxel_size_um, medium_index)
    objects, placed = [], []
    for i in range(count):
        mat = material or str(rng.choice(list(BEAD_MATERIALS)))
        n = float(index if index is not None else BEAD_MATERIALS[mat])
        r = float(radius_um if radius_um is not None else rng.uniform(*radius_range_um))
        half_z = _extent(shape, voxel_size_um)[0]
        if i == 0 and centre_um is not None:
            c = np.asarray(centre_um, float)
        else:
            c = _place(rng, shape, voxel_size_um, (r + 0.2, r + 1.0, r + 1.0), placed, r,
                       z_range=max(0.0, min(0.5, half_z - r - 0.2)))
        _paint_sphere(cv, c, r, n)
        placed.append((c, r))
        objects.append({"type": "bead", "material": mat, "centre_um": c.tolist(), "radius_um": r, "index": n})
    return _finish(cv, voxel_size_um, medium_index, "beads", {"objects": objects})


# --------------------------------------------------------------------------- bacteria
def _add_bacterium(cv: _Canvas, rng, shape, voxel, placed: list, objects: list, morphology: str):
    n = float(rng.uniform(1.37, 1.40))
    if morphology == "rod":  # E. coli-like: 0.8–1.2 µm × 1.5–4 µm, lying roughly flat
        d = float(rng.uniform(0.8, 1.2))
        length = float(rng.uniform(max(1.5, d + 0.1), 4.0))
        half = (length - d) / 2
        c = _place(rng, shape, voxel, (d / 2 + 0.2, length / 2 + 0.8, length / 2 + 0.8), placed, length / 2,
                   z_range=0.2)
        phi = rng.uniform(0, np.pi)
        tilt = rng.uniform(-0.2, 0.2)
        axis = np.array([np.sin(tilt), np.cos(tilt) * np.sin(phi), np.cos(tilt) * np.cos(phi)])
        _paint_capsule(cv, c - half * axis, c + half * axis, d / 2, n)
        placed.append((c, length / 2))
        objects.append({"type": "rod", "centre_um": c.tolist(), "axis": axis.tolist(), "diameter_um": d,
                        "length_um": length, "index": n})
    elif morphology == "coccus":  # S. epidermidis-like single coccus 0.8–1.1 µm
        d = float(rng.uniform(0.8, 1.1))
        c = _place(rng, shape, voxel, (d / 2 + 0.2, d + 0.8, d + 0.8), placed, d / 2, z_range=0.2)
        _paint_sphere(cv, c, d / 2, n)
        placed.append((c, d / 2))
        objects.append({"type": "coccus", "centre_um": c.tolist(), "diameter_um": d, "index": n})
    elif morphology == "cluster":  # grape-like cluster of 4–12 touching cocci
        k = int(rng.integers(4, 13))
        d = float(rng.uniform(0.8, 1.0))
        extent = d * (1.0 + np.sqrt(k) * 0.7)
        c0 = _place(rng, shape, voxel, (d + 0.2, extent + 0.8, extent + 0.8), placed, extent, z_range=0.1)
        centres = [c0]
        while len(centres) < k:
            base = centres[int(rng.integers(len(centres)))]
            v = rng.normal(size=3)
            v[0] *= 0.4  # clusters sit mostly flat on the coverslip
            v /= np.linalg.norm(v)
            cand = base + 0.95 * d * v
            if all(np.linalg.norm(cand - q) > 0.85 * d for q in centres):
                centres.append(cand)
        cells = []
        for q in centres:
            ni = float(np.clip(n + rng.normal(0, 0.004), 1.37, 1.40))
            _paint_sphere(cv, q, d / 2, ni)
            cells.append({"centre_um": q.tolist(), "diameter_um": d, "index": ni})
        placed.append((c0, extent))
        objects.append({"type": "cluster", "centre_um": c0.tolist(), "cocci": cells})
    else:
        raise ValueError(f"unknown bacterium morphology {morphology!r}")


def make_bacterium(shape: Sequence[int], voxel_size_um: Sequence[float], medium_index: float = 1.337,
                   rng: RngLike = None, *, morphology: str | None = None, count: int | None = None) -> Phantom:
    """Bacteria: rods (E. coli-like), single cocci and coccus clusters (S. epidermidis-like).

    Parameters
    ----------
    shape, voxel_size_um, medium_index
        Volume size (Z, Y, X), voxel (dz, dy, dx) µm, medium index.
    rng : Generator or int
        Random source.
    morphology : {"rod", "coccus", "cluster", "mixed"}, optional
        Shape of every bacterium; default: drawn per bacterium.
    count : int, optional
        Number of bacteria (default 1–3).

    Returns
    -------
    Phantom
        Rods 0.8–1.2 µm thick, 1.5–4 µm long; cocci 0.8–1.1 µm; clusters of 4–12 cocci; RI
        1.37–1.40. ``params["objects"]`` holds each one's truth.

    References
    ----------
    .. [1] Liu et al., "Optical diffraction tomography of bacteria", Sci. Rep. 6 (2016).
    """
    rng = as_rng(rng)
    cv = _Canvas(shape, voxel_size_um, medium_index)
    count = int(count if count is not None else rng.integers(1, 4))
    placed: list = []
    objects: list = []
    for _ in range(count):
        m = morphology if morphology not in (None, "mixed") else str(rng.choice(["rod", "rod", "coccus", "cluster"]))
        _add_bacterium(cv, rng, shape, voxel_size_um, placed, objects, m)
    return _finish(cv, voxel_size_um, medium_index, "bacteria", {"objects": objects})


# --------------------------------------------------------------------------- eukaryotic cells
def make_cell(shape: Sequence[int], voxel_size_um: Sequence[float], medium_index: float = 1.337,
              rng: RngLike = None, *, morphology: str | None = None) -> Phantom:
    """A eukaryotic cell: round (suspension, 8–15 µm) or flat (adherent), with organelles.

    Cytoplasm 1.355–1.365, nucleus 1.355–1.375 (ellipsoid), 1–4 nucleoli 1.38–1.40, lipid
    droplets 1.40–1.42 (0.3–0.8 µm) and granules 1.37–1.39 (0.15–0.3 µm).

    Parameters
    ----------
    shape, voxel_size_um, medium_index
        Volume size (Z, Y, X), voxel (dz, dy, dx) µm, medium index.
    rng : Generator or int
        Random source.
    morphology : {"suspension", "adherent"}, optional
        Default: drawn.

    Returns
    -------
    Phantom
        ``params["objects"]``: the cell body then each organelle, with centres (z, y, x) µm.

    References
    ----------
    .. [1] Park, Depeursinge and Popescu, "Quantitative phase imaging in biomedicine",
       Nat. Photonics 12, 578 (2018) (indices of cells and organelles).
    """
    rng = as_rng(rng)
    voxel = tuple(float(v) for v in voxel_size_um)
    cv = _Canvas(shape, voxel, medium_index)
    half = _extent(shape, voxel)
    morphology = morphology or str(rng.choice(["suspension", "adherent"]))
    objects = []
    n_cyto = float(rng.uniform(1.355, 1.365))
    if morphology == "suspension":
        r = float(min(rng.uniform(4.0, 7.5), half[1] - 1.0, half[2] - 1.0, half[0] - 0.3))
        c = np.array([0.0, *rng.uniform(-0.15, 0.15, 2) * (half[1:] - r)])
        axes = r * np.array([rng.uniform(0.92, 1.0), rng.uniform(0.95, 1.05), rng.uniform(0.95, 1.05)])
        axes = np.minimum(axes, r)
        _paint_ellipsoid(cv, c, axes, n_cyto)
        body = {"type": "suspension-cell", "centre_um": c.tolist(), "semi_axes_um": axes.tolist(), "index": n_cyto}

        def inside_body(p, margin):
            return np.sum(((p - c) / (axes - margin)) ** 2) < 1.0
        nuc_axes = axes * rng.uniform(0.45, 0.6) * np.array([1.0, rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)])
        nuc_c = c + rng.uniform(-0.15, 0.15, 3) * axes
    else:  # adherent: a flat dome with an irregular outline, lying on the coverslip (bottom)
        R = float(min(rng.uniform(8.0, 14.0), half[1] - 1.0, half[2] - 1.0))
        height = float(min(rng.uniform(3.0, 5.0), 2 * half[0] - 0.6))
        z_bottom = -height / 2
        c = np.array([z_bottom, *rng.uniform(-0.1, 0.1, 2) * (half[1:] - R)])
        n_harm = 4
        amps = rng.uniform(0.0, 0.12, n_harm) / (1 + np.arange(n_harm))
        phases = rng.uniform(0, 2 * np.pi, n_harm)

        def outline(phi):
            return R * (1 + sum(a * np.cos((k + 2) * phi + p) for k, (a, p) in enumerate(zip(amps, phases))))

        def sd(z, y, x):
            dy, dx = y - c[1], x - c[2]
            rho = np.sqrt(dy ** 2 + dx ** 2)
            rr = outline(np.arctan2(dy, dx))
            s = np.clip(rho / rr, 0, 1)
            top = z_bottom + height * np.sqrt(np.clip(1 - s ** 2, 0, 1)) ** 0.8
            return np.maximum(np.maximum(rho - rr, z - top), z_bottom - z)
        rmax = R * (1 + amps.sum())
        cv.paint(sd, (z_bottom, c[1] - rmax, c[2] - rmax), (z_bottom + height, c[1] + rmax, c[2] + rmax), n_cyto)
        body = {"type": "adherent-cell", "centre_um": c.tolist(), "radius_um": R, "height_um": height,
                "outline_harmonics": {"amplitudes": amps.tolist(), "phases": phases.tolist()}, "index": n_cyto}

        def inside_body(p, margin):
            dy, dx = p[1] - c[1], p[2] - c[2]
            rho = np.hypot(dy, dx)
            rr = outline(np.arctan2(dy, dx))
            top = z_bottom + height * np.sqrt(max(0.0, 1 - (rho / rr) ** 2)) ** 0.8
            return rho < rr - margin and z_bottom + margin < p[0] < top - margin
        nuc_axes = np.array([height * 0.3, R * rng.uniform(0.3, 0.4), R * rng.uniform(0.3, 0.4)])
        nuc_c = np.array([z_bottom + height * 0.45, c[1], c[2]]) + np.r_[0, rng.uniform(-0.2, 0.2, 2) * R]
    objects.append(body)
    n_nuc = float(rng.uniform(1.355, 1.375))
    rot = _random_rotation(rng) if morphology == "suspension" else None
    _paint_ellipsoid(cv, nuc_c, nuc_axes, n_nuc, rot)
    objects.append({"type": "nucleus", "centre_um": nuc_c.tolist(), "semi_axes_um": nuc_axes.tolist(),
                    "index": n_nuc})
    for _ in range(int(rng.integers(1, 5))):  # nucleoli inside the nucleus
        rr = float(rng.uniform(0.4, 0.9)) * min(1.0, nuc_axes.min() / 1.5)
        q = nuc_c + rng.uniform(-0.5, 0.5, 3) * np.maximum(nuc_axes - rr, 0)
        nn = float(rng.uniform(1.38, 1.40))
        _paint_sphere(cv, q, rr, nn)
        objects.append({"type": "nucleolus", "centre_um": q.tolist(), "radius_um": rr, "index": nn})
    for kind, count, rlo, rhi, nlo, nhi in (("lipid-droplet", int(rng.integers(3, 12)), 0.3, 0.8, 1.40, 1.42),
                                            ("granule", int(rng.integers(10, 40)), 0.15, 0.3, 1.37, 1.39)):
        for _ in range(count):
            for _try in range(30):
                rr = float(rng.uniform(rlo, rhi))
                q = c.copy() if morphology == "suspension" else np.array([nuc_c[0], c[1], c[2]])
                reach = (axes if morphology == "suspension" else np.array([height / 2, R, R]))
                q = q + rng.uniform(-1, 1, 3) * reach
                near_nucleus = np.sum(((q - nuc_c) / (nuc_axes + rr)) ** 2) < 1.0
                if inside_body(q, rr + 0.2) and not near_nucleus:
                    nn = float(rng.uniform(nlo, nhi))
                    _paint_sphere(cv, q, rr, nn)
                    objects.append({"type": kind, "centre_um": q.tolist(), "radius_um": rr, "index": nn})
                    break
    return _finish(cv, voxel, medium_index, "cells", {"morphology": morphology, "objects": objects})


# --------------------------------------------------------------------------- liquid crystals
def lc_director(z: np.ndarray, y: np.ndarray, x: np.ndarray, radius_um: float, configuration: str,
                axis: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Director field of a nematic droplet centred at the origin, (…, 3) in (z, y, x) components.

    ``"radial"``: ``d = r̂`` (hedgehog). ``"bipolar"``: tangent to the circles through the two
    poles ``±R·axis``; in the droplet frame (axis = z') ``d ∝ (R² + ρ² − z'², −2 z' ρ)`` in
    (z', ρ) components. Singular points get ``axis``.
    """
    z, y, x = np.broadcast_arrays(z, y, x)
    p = np.stack([z, y, x], axis=-1).astype(np.float64)
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    if configuration == "radial":
        d = p
    elif configuration == "bipolar":
        zp = p @ a
        perp = p - zp[..., None] * a
        rho2 = np.sum(perp ** 2, axis=-1)
        d = (radius_um ** 2 + rho2 - zp ** 2)[..., None] * a - 2 * zp[..., None] * perp
    else:
        raise ValueError(f"unknown director configuration {configuration!r}: 'bipolar' or 'radial'")
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    return np.where(norm > 1e-12, d / np.where(norm > 1e-12, norm, 1.0), a)


def make_lc_droplet(shape: Sequence[int], voxel_size_um: Sequence[float], medium_index: float = 1.46,
                    rng: RngLike = None, *, configuration: str | None = None, radius_um: float | None = None,
                    n_o: float | None = None, n_e: float | None = None, axis: Sequence[float] | None = None,
                    centre_um: Sequence[float] = (0.0, 0.0, 0.0)) -> Phantom:
    """A nematic liquid-crystal droplet (uniaxial, bipolar or radial director field).

    Parameters
    ----------
    shape, voxel_size_um, medium_index
        Volume size (Z, Y, X), voxel (dz, dy, dx) µm, medium index (default 1.46, glycerol-like).
    rng : Generator or int
        Random source.
    configuration : {"bipolar", "radial"}, optional
        Director configuration (default drawn).
    radius_um : float, optional
        Radius, default 2–8 µm clipped to fit the volume.
    n_o, n_e : float, optional
        Ordinary/extraordinary indices (default 5CB-like: n_o 1.52–1.54, n_e 1.68–1.72).
    axis : (z, y, x), optional
        Bipolar axis (default: random, mostly in the image plane).
    centre_um : (z, y, x)
        Droplet centre.

    Returns
    -------
    Phantom
        With ``n_o``, ``n_e``, ``director`` and ``epsilon = n_o² I + (n_e² − n_o²) d dᵀ`` per voxel,
        blended with ``n_m² I`` by the sub-voxel coverage at the edge; ``ri = sqrt(tr ε / 3)``.

    References
    ----------
    .. [1] Shin et al., "Tomographic measurement of dielectric tensors at optical frequency",
       Nat. Mater. 21, 317 (2022).
    .. [2] Lavrentovich, "Topological defects in dispersed liquid crystals", Liq. Cryst. 24,
       117 (1998) (bipolar and radial droplets).
    """
    rng = as_rng(rng)
    voxel = tuple(float(v) for v in voxel_size_um)
    configuration = configuration or str(rng.choice(["bipolar", "radial"]))
    half = _extent(shape, voxel)
    r = float(radius_um if radius_um is not None else rng.uniform(2.0, 8.0))
    r = float(min(r, half[0] - 0.2, half[1] - 0.5, half[2] - 0.5))
    no = float(n_o if n_o is not None else rng.uniform(1.52, 1.54))
    ne = float(n_e if n_e is not None else rng.uniform(1.68, 1.72))
    if axis is None:
        phi = rng.uniform(0, np.pi)
        tilt = rng.uniform(-0.3, 0.3)
        axis = (np.sin(tilt), np.cos(tilt) * np.sin(phi), np.cos(tilt) * np.cos(phi))
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    c = np.asarray(centre_um, float)
    zz, yy, xx = ((np.arange(n) - n // 2) * d for n, d in zip(shape, voxel))
    Z, Y, X = zz[:, None, None] - c[0], yy[None, :, None] - c[1], xx[None, None, :] - c[2]
    rr = np.sqrt(Z ** 2 + Y ** 2 + X ** 2)
    f = _coverage(rr - r, float(np.mean(voxel)))
    director = lc_director(Z, Y, X, r, configuration, a)
    director = director * (f > 0)[..., None]
    nm2 = medium_index ** 2
    eye = np.eye(3)
    eps_lc = no ** 2 * eye + (ne ** 2 - no ** 2) * director[..., :, None] * director[..., None, :]
    eps = f[..., None, None] * eps_lc + (1 - f)[..., None, None] * nm2 * eye
    ri = np.sqrt(np.trace(eps, axis1=-2, axis2=-1) / 3.0)
    n_o_vol = f * no + (1 - f) * medium_index
    n_e_vol = f * ne + (1 - f) * medium_index
    params = {"objects": [{"type": "lc-droplet", "configuration": configuration, "centre_um": c.tolist(),
                           "radius_um": r, "n_o": no, "n_e": ne, "axis": a.tolist()}]}
    return Phantom(ri=ri.astype(np.float32), voxel_size_um=voxel, medium_index=float(medium_index),
                   kind="lc-droplets", params=params, n_o=n_o_vol.astype(np.float32),
                   n_e=n_e_vol.astype(np.float32), director=director.astype(np.float32),
                   epsilon=eps.astype(np.float32))


# --------------------------------------------------------------------------- dispatcher
def make_phantom(kind: str, shape: Sequence[int], voxel_size_um: Sequence[float], medium_index: float,
                 rng: RngLike = None, **kwargs) -> Phantom:
    """A random phantom of one of :data:`PHANTOM_KINDS`.

    ``"beads"``: 1–3 silica/polystyrene beads; ``"bacteria"``: 1–3 bacteria of mixed shapes;
    ``"cells"``: one suspension or adherent cell; ``"lc-droplets"``: one bipolar or radial
    droplet. Extra keyword arguments go to the generator.
    """
    rng = as_rng(rng)
    if kind == "beads":
        kwargs.setdefault("count", int(rng.integers(1, 4)))
        return make_bead(shape, voxel_size_um, medium_index, rng, **kwargs)
    if kind == "bacteria":
        return make_bacterium(shape, voxel_size_um, medium_index, rng, **kwargs)
    if kind == "cells":
        return make_cell(shape, voxel_size_um, medium_index, rng, **kwargs)
    if kind == "lc-droplets":
        return make_lc_droplet(shape, voxel_size_um, medium_index, rng, **kwargs)
    raise ValueError(f"unknown phantom kind {kind!r}: one of {PHANTOM_KINDS}")


def shift_phantom(phantom: Phantom, shift_yx_um: Sequence[float]) -> Phantom:
    """The phantom moved laterally by ``(dy, dx)`` µm (whole voxels, periodic), truth updated.

    Used to put a sample near the edge of the field of view. Centres in ``params["objects"]``
    (and nested ``cocci``) are moved; ``params["shift_um"]`` records the shift.
    """
    dy, dx = phantom.voxel_size_um[1:]
    sy, sx = int(round(shift_yx_um[0] / dy)), int(round(shift_yx_um[1] / dx))

    def roll(a, axes=(1, 2)):
        return None if a is None else np.roll(a, (sy, sx), axis=axes)
    params = copy.deepcopy(phantom.params)

    def move(obj):
        if isinstance(obj, dict):
            if "centre_um" in obj:
                c = list(obj["centre_um"])
                obj["centre_um"] = [c[0], c[1] + sy * dy, c[2] + sx * dx]
            for v in obj.values():
                move(v)
        elif isinstance(obj, list):
            for v in obj:
                move(v)
    move(params.get("objects", []))
    prev = params.get("shift_um", [0.0, 0.0])
    params["shift_um"] = [prev[0] + sy * dy, prev[1] + sx * dx]
    return Phantom(ri=roll(phantom.ri), voxel_size_um=phantom.voxel_size_um, medium_index=phantom.medium_index,
                   kind=phantom.kind, params=params, n_o=roll(phantom.n_o), n_e=roll(phantom.n_e),
                   director=roll(phantom.director), epsilon=roll(phantom.epsilon))


def shift_near_edge(phantom: Phantom, rng: RngLike = None, gap_um: tuple[float, float] = (0.3, 1.5)) -> Phantom:
    """Move the phantom's content so that it ends ``gap_um`` µm from a random edge of the field."""
    rng = as_rng(rng)
    mask = np.abs(phantom.ri - phantom.medium_index).max(axis=0) > 1e-4
    if phantom.epsilon is not None:
        mask |= np.abs(phantom.epsilon - phantom.medium_index ** 2 * np.eye(3, dtype=np.float32)).max(axis=(0, 3, 4)) > 1e-4
    if not mask.any():
        return phantom
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    Y, X = mask.shape
    dy, dx = phantom.voxel_size_um[1:]
    gap = rng.uniform(*gap_um)
    side = int(rng.integers(4))
    if side == 0:
        shift = (-(ys[0] * dy - gap), 0.0)
    elif side == 1:
        shift = ((Y - 1 - ys[-1]) * dy - gap, 0.0)
    elif side == 2:
        shift = (0.0, -(xs[0] * dx - gap))
    else:
        shift = (0.0, (X - 1 - xs[-1]) * dx - gap)
    return shift_phantom(phantom, shift)
