"""In-memory measurement: holograms, backgrounds and metadata of one acquisition."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .metadata import MeasurementMetadata

__all__ = ["Measurement"]


@dataclass
class Measurement:
    """One acquisition of one sample (``docs/formats.md`` §1), loaded into memory.

    Attributes
    ----------
    metadata : MeasurementMetadata
        Validated ``measurement.json``.
    holograms : ndarray, shape (N, H, W)
        Sample holograms in acquisition order (uint8, uint16 or float32 as stored).
    backgrounds : ndarray, shape (N, H, W) or (H, W)
        Background holograms, one per image or one for all.
    name : str
        Measurement name (the folder's name).
    path : Path or None
        Folder the measurement was read from (never written to).
    extra : dict
        Anything else a reader or simulator attaches (e.g. per-frame defect types).
    """

    metadata: MeasurementMetadata
    holograms: np.ndarray
    backgrounds: np.ndarray
    name: str = "measurement"
    path: Optional[Path] = None
    extra: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.holograms.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.holograms.shape[1]), int(self.holograms.shape[2])

    def background_for(self, i: int) -> np.ndarray:
        """The background hologram of image ``i`` (shape (H, W))."""
        return self.backgrounds if self.backgrounds.ndim == 2 else self.backgrounds[i]
