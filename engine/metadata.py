"""Measurement metadata: the ``measurement.json`` contract of ``docs/formats.md``.

:class:`MeasurementMetadata` is parsed and validated from a dict (or a JSON file) and
written back unchanged in meaning. Unknown keys are kept in ``extra`` and written back,
so other tools' extensions survive a round trip. Units: µm and cycles/µm.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "FORMAT_MEASUREMENT",
    "MetadataError",
    "Frame",
    "MeasurementMetadata",
]

FORMAT_MEASUREMENT = "odt-measurement/1"
GEOMETRIES = ("illumination-scan", "sample-rotation")
LABELS = ("clean", "noisy", "")


class MetadataError(ValueError):
    """Invalid measurement metadata. The message names the file (when known) and the key."""


@dataclass(frozen=True)
class Frame:
    """One image of a polarisation-resolved acquisition."""

    illumination: int
    pol_in: str  # "x" or "y"
    pol_out: str  # "x" or "y"


def _num(d: dict, key: str, where: str, *, lo: float | None = None, hi: float | None = None,
         required: bool = True) -> Optional[float]:
    if key not in d:
        if required:
            raise MetadataError(f"{where}: required key '{key}' is missing")
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MetadataError(f"{where}: key '{key}' must be a number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise MetadataError(f"{where}: key '{key}' must be finite, got {v!r}")
    if lo is not None and v <= lo:
        raise MetadataError(f"{where}: key '{key}' = {v} must be > {lo}")
    if hi is not None and v >= hi:
        raise MetadataError(f"{where}: key '{key}' = {v} must be < {hi}")
    return v


def _pairs(v: Any, key: str, where: str) -> list[tuple[float, float]]:
    if not isinstance(v, (list, tuple)):
        raise MetadataError(f"{where}: key '{key}' must be a list of [fx, fy] pairs")
    out = []
    for i, p in enumerate(v):
        if (not isinstance(p, (list, tuple)) or len(p) != 2
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in p)):
            raise MetadataError(f"{where}: key '{key}' entry {i} must be two finite numbers [fx, fy], got {p!r}")
        out.append((float(p[0]), float(p[1])))
    return out


@dataclass
class MeasurementMetadata:
    """Validated contents of ``measurement.json`` (format ``odt-measurement/1``).

    Attributes
    ----------
    wavelength_um : float
        Vacuum wavelength λ in µm.
    medium_index : float
        Refractive index of the immersion medium n_m.
    na_objective : float
        Numerical aperture of the imaging objective.
    pixel_size_um : float
        Camera pixel size referred to the sample plane, µm.
    geometry : str
        ``"illumination-scan"`` or ``"sample-rotation"``.
    carrier_per_um : (fx, fy) or None
        Side-band position in the hologram spectrum, cycles/µm.
    illumination_per_um : list of (fx, fy) or None
        Transverse illumination frequency in the medium, cycles/µm; one per illumination.
    rotation_angles_rad : list of float or None
        Sample-rotation angles about y (right-handed), rad.
    frames : list of Frame or None
        Polarisation-resolved frame description, one per image.
    labels : list of str or None
        Known screening labels per image: ``"clean"``, ``"noisy"`` or ``""``.
    sample : dict
        Free description (``name``, ``id``, ...).
    acquired : str or None
        ISO 8601 acquisition time.
    extra : dict
        Keys this program does not know, kept verbatim.
    """

    wavelength_um: float
    medium_index: float
    na_objective: float
    pixel_size_um: float
    geometry: str = "illumination-scan"
    carrier_per_um: Optional[tuple[float, float]] = None
    illumination_per_um: Optional[list[tuple[float, float]]] = None
    rotation_angles_rad: Optional[list[float]] = None
    frames: Optional[list[Frame]] = None
    labels: Optional[list[str]] = None
    sample: dict = field(default_factory=dict)
    acquired: Optional[str] = None
    extra: dict = field(default_factory=dict)

    KNOWN_KEYS = (
        "format", "wavelength_um", "medium_index", "na_objective", "pixel_size_um", "geometry",
        "carrier_per_um", "illumination_per_um", "rotation_angles_rad", "frames", "sample",
        "acquired", "labels",
    )

    # ------------------------------------------------------------------ derived values
    @property
    def n_illuminations(self) -> Optional[int]:
        """Number of distinct illuminations, if the metadata says."""
        if self.frames:
            return max(f.illumination for f in self.frames) + 1
        if self.illumination_per_um is not None:
            return len(self.illumination_per_um)
        if self.rotation_angles_rad is not None:
            return len(self.rotation_angles_rad)
        return None

    @property
    def polarised(self) -> bool:
        return bool(self.frames)

    @property
    def wavenumber_medium_per_um(self) -> float:
        """n_m / λ in cycles/µm (radius of the Ewald sphere in frequency space)."""
        return self.medium_index / self.wavelength_um

    @property
    def name(self) -> str:
        return str(self.sample.get("name", "")) if isinstance(self.sample, dict) else ""

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_dict(cls, d: dict, source: str | Path = "measurement.json") -> "MeasurementMetadata":
        """Validate ``d`` and build the metadata; raises :class:`MetadataError` naming ``source``."""
        where = str(source)
        if not isinstance(d, dict):
            raise MetadataError(f"{where}: top level must be a JSON object, got {type(d).__name__}")
        fmt = d.get("format")
        if fmt != FORMAT_MEASUREMENT:
            raise MetadataError(f"{where}: key 'format' must be '{FORMAT_MEASUREMENT}', got {fmt!r}")
        wl = _num(d, "wavelength_um", where, lo=0.05, hi=20.0)
        nm = _num(d, "medium_index", where, lo=0.99, hi=4.0)
        na = _num(d, "na_objective", where, lo=0.0, hi=nm if nm else 4.0)
        px = _num(d, "pixel_size_um", where, lo=0.0, hi=100.0)
        geometry = d.get("geometry", "illumination-scan")
        if geometry not in GEOMETRIES:
            raise MetadataError(f"{where}: key 'geometry' must be one of {GEOMETRIES}, got {geometry!r}")
        carrier = None
        if d.get("carrier_per_um") is not None:
            c = _pairs([d["carrier_per_um"]], "carrier_per_um", where)
            carrier = c[0]
        illum = None
        if d.get("illumination_per_um") is not None:
            illum = _pairs(d["illumination_per_um"], "illumination_per_um", where)
        angles = None
        if d.get("rotation_angles_rad") is not None:
            a = d["rotation_angles_rad"]
            if not isinstance(a, (list, tuple)) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in a):
                raise MetadataError(f"{where}: key 'rotation_angles_rad' must be a list of finite numbers")
            angles = [float(x) for x in a]
        if geometry == "sample-rotation" and not angles:
            raise MetadataError(f"{where}: geometry 'sample-rotation' needs key 'rotation_angles_rad'")
        frames = None
        if d.get("frames") is not None:
            fr = d["frames"]
            if not isinstance(fr, (list, tuple)) or not fr:
                raise MetadataError(f"{where}: key 'frames' must be a non-empty list")
            frames = []
            for i, f in enumerate(fr):
                if not isinstance(f, dict):
                    raise MetadataError(f"{where}: frames[{i}] must be an object")
                ill = f.get("illumination")
                if isinstance(ill, bool) or not isinstance(ill, int) or ill < 0:
                    raise MetadataError(f"{where}: frames[{i}].illumination must be an integer >= 0, got {ill!r}")
                pi, po = f.get("pol_in"), f.get("pol_out")
                if pi not in ("x", "y") or po not in ("x", "y"):
                    raise MetadataError(f"{where}: frames[{i}] pol_in/pol_out must be 'x' or 'y', got {pi!r}/{po!r}")
                frames.append(Frame(ill, pi, po))
            n_ill = max(f.illumination for f in frames) + 1
            if illum is not None and len(illum) != n_ill:
                raise MetadataError(
                    f"{where}: 'illumination_per_um' has {len(illum)} rows but 'frames' name {n_ill} illuminations")
        labels = None
        if d.get("labels") is not None:
            lab = d["labels"]
            if not isinstance(lab, (list, tuple)) or not all(x in LABELS for x in lab):
                raise MetadataError(f"{where}: key 'labels' must be a list of 'clean', 'noisy' or ''")
            labels = list(lab)
        sample = d.get("sample", {})
        if sample is None:
            sample = {}
        if not isinstance(sample, dict):
            raise MetadataError(f"{where}: key 'sample' must be an object")
        acquired = d.get("acquired")
        if acquired is not None and not isinstance(acquired, str):
            raise MetadataError(f"{where}: key 'acquired' must be an ISO 8601 string")
        extra = {k: v for k, v in d.items() if k not in cls.KNOWN_KEYS}
        return cls(wavelength_um=wl, medium_index=nm, na_objective=na, pixel_size_um=px,
                   geometry=geometry, carrier_per_um=carrier, illumination_per_um=illum,
                   rotation_angles_rad=angles, frames=frames, labels=labels, sample=dict(sample),
                   acquired=acquired, extra=extra)

    @classmethod
    def from_json(cls, text: str, source: str | Path = "measurement.json") -> "MeasurementMetadata":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise MetadataError(f"{source}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
        return cls.from_dict(d, source)

    @classmethod
    def load(cls, path: str | Path) -> "MeasurementMetadata":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise MetadataError(f"{path}: file is missing") from e
        except (OSError, UnicodeDecodeError) as e:
            raise MetadataError(f"{path}: cannot be read ({e})") from e
        return cls.from_json(text, path)

    def check_count(self, n_images: int, source: str | Path = "measurement.json") -> None:
        """Check that per-image keys agree with ``n_images`` images; raise :class:`MetadataError`."""
        where = str(source)
        if self.frames is not None and len(self.frames) != n_images:
            raise MetadataError(f"{where}: 'frames' has {len(self.frames)} entries but there are {n_images} images")
        if self.frames is None and self.illumination_per_um is not None and len(self.illumination_per_um) != n_images:
            raise MetadataError(
                f"{where}: 'illumination_per_um' has {len(self.illumination_per_um)} rows but there are {n_images} images")
        if self.rotation_angles_rad is not None and self.frames is None and len(self.rotation_angles_rad) != n_images:
            raise MetadataError(
                f"{where}: 'rotation_angles_rad' has {len(self.rotation_angles_rad)} angles but there are {n_images} images")
        if self.labels is not None and len(self.labels) != n_images:
            raise MetadataError(f"{where}: 'labels' has {len(self.labels)} entries but there are {n_images} images")

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "format": FORMAT_MEASUREMENT,
            "wavelength_um": self.wavelength_um,
            "medium_index": self.medium_index,
            "na_objective": self.na_objective,
            "pixel_size_um": self.pixel_size_um,
            "geometry": self.geometry,
        }
        if self.carrier_per_um is not None:
            d["carrier_per_um"] = list(self.carrier_per_um)
        if self.illumination_per_um is not None:
            d["illumination_per_um"] = [list(p) for p in self.illumination_per_um]
        if self.rotation_angles_rad is not None:
            d["rotation_angles_rad"] = list(self.rotation_angles_rad)
        if self.frames is not None:
            d["frames"] = [{"illumination": f.illumination, "pol_in": f.pol_in, "pol_out": f.pol_out}
                           for f in self.frames]
        if self.labels is not None:
            d["labels"] = list(self.labels)
        if self.sample:
            d["sample"] = dict(self.sample)
        if self.acquired is not None:
            d["acquired"] = self.acquired
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
