"""Is a measurement inside the screening model's training domain? Warnings that say by how much.

A screening network judges texture: how a clean field of *its* training data looks. Three
things of a lab's setup change that texture without any defect, and each is stated in the
model card's ``domain`` (written at training time by :func:`training_domain`):

``pupil_fraction``
    The pupil's radius NA/λ as a fraction of the field's Nyquist frequency 1/(2·pixel), i.e.
    ``2·pixel·NA/λ``. It sets the size of the finest detail, of speckle grain and of defocus
    rings in pixels; a network trained at 0.38–0.45 sees a field sampled at 0.23 as blurred
    and its speckle as coarse blobs. (The three real holograms of ``tests/data`` sit at
    0.22–0.32.)
``crop_um``
    The width of the network's centre crop in µm (crop × pixel): the scale of cells and
    bacteria in the crop.
``background``
    ``"measured"`` when the training fields were ratios ``U_sample/U_background`` of a measured
    background hologram. A measurement whose background was *synthesised* (qpformat files
    without one, :mod:`engine.store.qpformat_hdf5`) keeps the instrument's own pattern in the
    field (reference-beam curvature, dust of the optics, the beams' envelopes), which such a
    network has never seen clean.

A field smaller than the crop is zero-padded and also warned about. None of these warnings
changes a decision; they tell the technician to review the screen's decisions of this
measurement rather than trust them, and say why.

Conventions: lengths in µm, NA dimensionless, frequencies in cycles/µm.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..domain import quantities_outside

__all__ = [
    "NO_BACKGROUND_SUFFIX",
    "SCREENING_DOMAIN_QUANTITIES",
    "background_kind",
    "measurement_screening_setup",
    "screening_domain_check",
    "training_domain",
    "widened_domain",
]

#: quantities of a screening card's ``domain`` compared by :func:`screening_domain_check`: key → (label, unit, format)
SCREENING_DOMAIN_QUANTITIES: dict[str, tuple[str, str, str]] = {
    "pupil_fraction": ("pupil sampling 2·pixel·NA/λ (pupil radius / Nyquist frequency)", "", "{:.3f}"),
    "crop_um": ("width of the network's crop", " µm", "{:.1f}"),
}


def background_kind(metadata: Any) -> str:
    """``"synthesised"`` when the metadata record a synthesised background (qpformat files
    without one, :mod:`engine.store.qpformat_hdf5`), else ``"measured"``."""
    extra = getattr(metadata, "extra", None) or (metadata if isinstance(metadata, dict) else {})
    qp = extra.get("qpformat") if isinstance(extra, dict) else None
    text = str(qp.get("background", "")) if isinstance(qp, dict) else ""
    return "synthesised" if text.startswith("synthesised") else "measured"


def measurement_screening_setup(metadata: Any, *, pixel_size_um: Optional[float] = None, crop: int = 128) -> dict:
    """The quantities of :data:`SCREENING_DOMAIN_QUANTITIES` and ``background`` of one measurement.

    Parameters
    ----------
    metadata : MeasurementMetadata
        ``wavelength_um``, ``na_objective``, ``pixel_size_um``.
    pixel_size_um : float, optional
        The retrieved field's pixel when it differs from the camera's (``RetrievedFields.pixel_size_um``).
    crop : int
        The network's crop, px.
    """
    px = float(pixel_size_um if pixel_size_um is not None else metadata.pixel_size_um)
    out = {"crop_um": crop * px, "background": background_kind(metadata)}
    na, lam = getattr(metadata, "na_objective", None), getattr(metadata, "wavelength_um", None)
    if na and lam:
        out["pupil_fraction"] = 2.0 * px * float(na) / float(lam)
    return out


def screening_domain_check(metadata: Any, card: dict, *, pixel_size_um: Optional[float] = None,
                           field_shape: Optional[Sequence[int]] = None) -> list[str]:
    """Warnings for each way a measurement lies outside a screening model's training domain.

    Parameters
    ----------
    metadata : MeasurementMetadata
    card : dict
        The model card (``ScreeningModel.card``); its ``domain`` maps ``pupil_fraction`` and
        ``crop_um`` to ``[min, max]`` and ``background`` to ``"measured"``.
    pixel_size_um : float, optional
        The field's pixel, µm (default the metadata's).
    field_shape : (H, W), optional
        The retrieved field's shape; smaller than the crop means zero padding.

    Returns
    -------
    list of str
        Empty when inside (or nothing known to compare); a card without ``domain`` gives one
        warning saying so.
    """
    label = f"screening model {card.get('name', '')} {card.get('version', '')}".rstrip()
    crop = int((card.get("input") or {}).get("crop", 128))
    domain = card.get("domain")
    warnings = []
    if field_shape is not None and min(int(s) for s in field_shape[-2:]) < crop:
        warnings.append(f"{label}: the fields ({field_shape[-2]} × {field_shape[-1]} px) are smaller than its "
                        f"{crop} × {crop} px crop; it sees zero padding and its decisions are less certain")
    if not isinstance(domain, dict):
        return warnings + [f"{label} does not state the setups it was trained for; review its decisions"]
    setup = measurement_screening_setup(metadata, pixel_size_um=pixel_size_um, crop=crop)
    warnings += [f"{label} outside its training domain: {name} {why}; review its decisions"
                 for name, why in quantities_outside(setup, domain, SCREENING_DOMAIN_QUANTITIES)]
    if domain.get("background") == "measured" and setup["background"] == "synthesised":
        warnings.append(f"{label} outside its training domain: this measurement has no background hologram (an "
                        "ideal one was synthesised), so the instrument's own pattern stays in the fields; the model "
                        "was trained on fields divided by a measured background and may call clean fields noisy")
    return warnings


_NA_IN_SETUP = re.compile(r"-na(\d+(?:\.\d+)?)")
#: ends the setup name of a training measurement retrieved with a synthesised background
NO_BACKGROUND_SUFFIX = "-nobg"


def training_domain(setups: Iterable[str], pixel_size_um: np.ndarray, wavelength_um: np.ndarray,
                    crop: int = 128) -> dict:
    """The ``domain`` entry of a screening card from its training frames.

    Parameters
    ----------
    setups : iterable of str
        Per-frame setup names (``CropSet.setup``, e.g. ``"cells-71-na1.20-noise1.0"``): the NA is read from them.
    pixel_size_um, wavelength_um : ndarray (M,)
        Per-frame field pixel and wavelength, µm.
    crop : int
        The network's crop, px.

    Returns
    -------
    dict
        ``{"pupil_fraction": [lo, hi], "crop_um": [lo, hi], "background": "measured"}``
        (ranges rounded outward to 3 decimals; ``"background": "any"`` when a setup name ends
        with :data:`NO_BACKGROUND_SUFFIX`); ``pupil_fraction`` is left out when a setup name
        carries no NA.
    """
    px = np.asarray(pixel_size_um, np.float64)
    lam = np.asarray(wavelength_um, np.float64)
    names = list(setups)
    out: dict = {"crop_um": _outward(crop * px.min(), crop * px.max()),
                 "background": "any" if any(s.endswith(NO_BACKGROUND_SUFFIX) for s in names) else "measured"}
    matches = [_NA_IN_SETUP.search(s) for s in names]
    if names and all(matches):
        na = np.array([float(m.group(1)) for m in matches if m])
        frac = 2.0 * px * na / lam
        out["pupil_fraction"] = _outward(frac.min(), frac.max())
    return out


def _outward(lo: float, hi: float) -> list[float]:
    """``[lo, hi]`` rounded outward to 3 decimals (float32 noise below 1e-6 ignored)."""
    return [float(np.floor(round(float(lo) * 1e3, 3)) / 1e3), float(np.ceil(round(float(hi) * 1e3, 3)) / 1e3)]


def widened_domain(domain: Optional[dict], setups: Sequence[dict]) -> Optional[dict]:
    """A card's ``domain`` widened to the measurements a fine-tuning was trained on.

    Parameters
    ----------
    domain : dict or None
        The base model's ``domain`` (None: nothing to widen, returned as is).
    setups : sequence of dict
        :func:`measurement_screening_setup` of each lab measurement the fine-tuning saw.

    Returns
    -------
    dict or None
        Each range stretched to cover the lab's values; ``background`` becomes ``"any"`` when
        a lab measurement had a synthesised one.
    """
    if not isinstance(domain, dict) or not setups:
        return domain
    out = dict(domain)
    for key in SCREENING_DOMAIN_QUANTITIES:
        values = [float(s[key]) for s in setups if key in s]
        rng = out.get(key)
        if values and isinstance(rng, (list, tuple)) and len(rng) == 2:
            out[key] = [min(float(rng[0]), *values), max(float(rng[1]), *values)]
    if any(s.get("background") == "synthesised" for s in setups):
        out["background"] = "any"
    out["widened_by_fine_tuning"] = len(setups)
    return out
