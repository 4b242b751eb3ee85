"""Import of qpformat's raw off-axis hologram HDF5 files (``docs/formats.md`` §1, "Other inputs").

`qpformat <https://github.com/RI-imaging/qpformat>`_ (P. Müller, MIT licence) stores raw
off-axis holograms in a plain HDF5 layout that its readers ``SingleRawOAHQpformatHDF5`` and
``SeriesRawOAHQpformatHDF5`` (qpformat 0.14.5, ``file_formats/fmts_raw_oah/``) recognise by::

    file attributes   file_format = "qpformat", imaging_modality = "off-axis holography"
    "0", "1", ...     one 2-D hologram each, (H, W), in series order
                      attributes (SI units, qpimage's META_KEYS): "wavelength" [m],
                      "pixel size" [m], "medium index", "numerical aperture", optional
                      "focus" [m], "pos x" [m], "pos y" [m], "time" [s], "identifier", ...
    "reference"       optional, skipped by qpformat's off-axis readers ("logs" likewise)

:func:`read_qpformat_hdf5` turns such a file into this program's
:class:`~engine.measurement.Measurement`: holograms (N, H, W) in their stored dtype, metadata
in µm (``wavelength_um`` = wavelength·10⁶, ``pixel_size_um`` = pixel size·10⁶, ``medium_index``,
``na_objective``), and the per-frame extras (time in s, focus and stage position in µm, any
other attribute verbatim) under the metadata key ``"qpformat"``.

The background
--------------
These files hold **no background hologram**, which this program's retrieval needs
(``U_sample / U_background``). qpformat itself, without a background set by ``set_bg``,
returns the side band demodulated by the detected carrier only: the field relative to an
ideal, flat, tilt-free reference. That is what is done here, honestly labelled: the
background is *synthesised* as the ideal fringe pattern of a sample-free field,

    B(x, y) = ⟨I⟩ + A·cos(2π(c_x·x + c_y·y)),

with ``c`` the carrier (the brightest off-centre spectral peak of the mean hologram,
sub-pixel, :func:`engine.holography.retrieval.find_carrier`; the twin peak gives the same
cosine, so either side band can be chosen later), ``⟨I⟩`` the mean intensity and ``A`` the
mean fringe modulation ``2·|⟨(I − ⟨I⟩)·exp(−2πi c·r)⟩|``. One such background (H, W) serves
every frame. Consequences, also stated in ``docs/formats.md``: the phase is relative to a
perfect plane reference, so the real reference beam's curvature and aberrations and any error
of the estimated carrier (a residual phase tilt) stay in the field; the amplitude is
normalised by the mean fringe modulation, not pixel by pixel. If the file holds a 2-D
``"reference"`` dataset of the hologram size (the convention of qpformat's QLSI files), it is
taken as the measured background instead. Which one was used is recorded in the metadata
(``qpformat.background``).

The series files are time series of one sample under one illumination (quantitative phase
imaging), not tomographic scans, so they are not found by ``odt-studio batch``; read them
with :func:`read_qpformat_hdf5` or :func:`engine.store.folders.load_measurement` given the
file's path, and retrieve their fields with
:func:`engine.holography.retrieval.retrieve_fields`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import h5py
import numpy as np

from ..measurement import Measurement
from ..metadata import FORMAT_MEASUREMENT, MeasurementMetadata, MetadataError
from .folders import ALLOWED_DTYPES, MeasurementError, check_hologram_content

__all__ = [
    "QpformatInfo",
    "is_qpformat_hdf5",
    "inspect_qpformat_hdf5",
    "read_qpformat_hdf5",
    "synthesise_background",
]

FILE_FORMAT = "qpformat"
MODALITY = "off-axis holography"
REFERENCE = "reference"
SKIPPED = (REFERENCE, "logs")
# qpformat attribute -> (metadata key, factor to this program's unit)
REQUIRED_ATTRS = {
    "wavelength": ("wavelength_um", 1e6),
    "pixel size": ("pixel_size_um", 1e6),
    "medium index": ("medium_index", 1.0),
    "numerical aperture": ("na_objective", 1.0),
}
# optional per-frame attributes converted to µm; anything else is kept verbatim
LENGTH_ATTRS = {"focus": "focus_um", "pos x": "pos_x_um", "pos y": "pos_y_um"}


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.size == 1:
        return _text(v.item())
    return str(v)


def _plain(v: Any) -> Any:
    """An HDF5 attribute value as a JSON-compatible Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()] if v.size != 1 else _plain(v.item())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def is_qpformat_hdf5(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file with qpformat's raw off-axis hologram attributes.

    Same test as qpformat's ``verify`` (file attributes ``file_format = "qpformat"`` and
    ``imaging_modality = "off-axis holography"``, a dataset ``"0"``); never raises.
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return (_text(f.attrs.get("file_format", "")) == FILE_FORMAT
                    and _text(f.attrs.get("imaging_modality", "")) == MODALITY and "0" in f)
    except Exception:
        return False


class QpformatInfo:
    """What :func:`inspect_qpformat_hdf5` read from a file's headers (no pixels).

    Attributes
    ----------
    path : Path
    keys : list of str
        Hologram datasets in series order ("0", "1", ...).
    shape : (H, W)
    dtype : numpy.dtype
        Stored dtype of the holograms.
    metadata : MeasurementMetadata
        With the background choice recorded in ``extra["qpformat"]["background"]``.
    has_reference : bool
        The file holds a usable ``"reference"`` (background) hologram.
    """

    def __init__(self, path: Path, keys: list[str], shape: tuple[int, int], dtype: np.dtype,
                 metadata: MeasurementMetadata, has_reference: bool) -> None:
        self.path, self.keys, self.shape, self.dtype = path, keys, shape, dtype
        self.metadata, self.has_reference = metadata, has_reference

    @property
    def n_images(self) -> int:
        return len(self.keys)


def _error(path: Path, where: str, problem: str) -> MeasurementError:
    return MeasurementError(path.parent, f"{path.name}{':/' + where if where else ''}", problem)


def _frame_keys(path: Path, f: h5py.File) -> list[str]:
    keys = [k for k in f.keys() if k not in SKIPPED]
    bad = [k for k in keys if not k.isdigit()]
    if bad:
        raise _error(path, bad[0], "unexpected entry: a qpformat hologram file holds datasets "
                                   "'0', '1', ... (and optionally 'reference', 'logs')")
    keys = sorted(keys, key=int)
    expected = [str(i) for i in range(len(keys))]
    if keys != expected:
        missing = sorted(set(expected) - set(keys), key=int)
        raise _error(path, "", f"hologram datasets must be numbered 0..{len(keys) - 1} without gaps"
                               + (f"; '{missing[0]}' is missing" if missing else f"; found {keys}"))
    return keys


def _check_frame(path: Path, k: str, ds: Any, shape: Optional[tuple[int, int]],
                 dtype: Optional[np.dtype]) -> tuple[tuple[int, int], np.dtype]:
    """Check that frame ``k`` is a real 2-D image of the first frame's ``shape`` and ``dtype``
    (None for the first frame); returns the shape and dtype."""
    if not isinstance(ds, h5py.Dataset):
        raise _error(path, k, "is a group, expected a 2-D hologram dataset")
    if ds.ndim != 2 or min(ds.shape) == 0:
        raise _error(path, k, f"shape {ds.shape} is not a 2-D image (H, W)")
    if np.dtype(ds.dtype).kind not in "uif":
        raise _error(path, k, f"dtype {ds.dtype} is not a real number type")
    if shape is None or dtype is None:
        return (int(ds.shape[0]), int(ds.shape[1])), np.dtype(ds.dtype)
    if tuple(ds.shape) != shape:
        raise _error(path, k, f"image size {ds.shape} differs from {shape} of '0'")
    if np.dtype(ds.dtype) != dtype:
        raise _error(path, k, f"dtype {ds.dtype} differs from {dtype} of '0'")
    return shape, dtype


def _collect_required(path: Path, k: str, attrs: dict, values: dict[str, float], metadata: Optional[dict]) -> None:
    """Add frame ``k``'s :data:`REQUIRED_ATTRS` (in µm units) to ``values``; they must agree between frames.

    A missing one is an error unless ``metadata`` supplies its key.
    """
    for name, (key, factor) in REQUIRED_ATTRS.items():
        if name not in attrs:
            if metadata and key in metadata:
                continue
            raise _error(path, k, f"attribute '{name}' is missing (pass metadata={{'{key}': ...}} to supply it)")
        try:
            v = float(np.asarray(attrs[name]).ravel()[0]) * factor
        except (TypeError, ValueError, IndexError):
            raise _error(path, k, f"attribute '{name}' = {attrs[name]!r} is not a number") from None
        if name in values and not np.isclose(v, values[name], rtol=1e-9, atol=0):
            raise _error(path, k, f"attribute '{name}' = {attrs[name]!r} differs from frame '0' "
                                  "(one measurement needs one wavelength, pixel size, medium and NA)")
        values.setdefault(name, v)


def _frame_extra(attrs: dict) -> dict:
    """A frame's other attributes as plain values: lengths in µm (``LENGTH_ATTRS``), ``time`` as ``time_s``."""
    extra = {}
    for a, v in attrs.items():
        if a in REQUIRED_ATTRS:
            continue
        if a in LENGTH_ATTRS:
            try:
                extra[LENGTH_ATTRS[a]] = float(np.asarray(v).ravel()[0]) * 1e6
                continue
            except (TypeError, ValueError, IndexError):
                pass
        if a == "time":
            try:
                extra["time_s"] = float(np.asarray(v).ravel()[0])
                continue
            except (TypeError, ValueError, IndexError):
                pass
        extra[a] = _plain(v)
    return extra


def inspect_qpformat_hdf5(path: str | Path, metadata: Optional[dict] = None) -> QpformatInfo:
    """Validate a qpformat raw off-axis HDF5 file from its headers and attributes only.

    Parameters
    ----------
    path : path
        The ``.h5`` file.
    metadata : dict, optional
        ``measurement.json`` keys (µm units) that replace or complete what the file says,
        e.g. ``{"na_objective": 1.2}`` for a file without ``"numerical aperture"``.

    Returns
    -------
    QpformatInfo

    Raises
    ------
    MeasurementError
        Naming the folder, the file and dataset, and the problem (not a qpformat file, a
        hologram that is not 2-D, a missing or disagreeing attribute, ...).
    """
    path = Path(path)
    if not is_qpformat_hdf5(path):
        raise _error(path, "", "not a qpformat off-axis hologram HDF5 file (needs the file attributes "
                               "file_format='qpformat', imaging_modality='off-axis holography' and "
                               "a dataset '0')")
    try:
        with h5py.File(path, "r") as f:
            keys = _frame_keys(path, f)
            shape: Optional[tuple[int, int]] = None
            dtype: Optional[np.dtype] = None
            values: dict[str, float] = {}
            frames: list[dict] = []
            for k in keys:
                ds = f[k]
                shape, dtype = _check_frame(path, k, ds, shape, dtype)
                attrs = {a: ds.attrs[a] for a in ds.attrs}
                _collect_required(path, k, attrs, values, metadata)
                frames.append(_frame_extra(attrs))
            has_reference = False
            if REFERENCE in f:
                ref = f[REFERENCE]
                has_reference = (isinstance(ref, h5py.Dataset) and tuple(ref.shape) == shape
                                 and np.dtype(ref.dtype).kind in "uif")
            file_attrs = {a: _plain(f.attrs[a]) for a in f.attrs}
    except MeasurementError:
        raise
    except Exception as e:
        raise _error(path, "", f"not a readable HDF5 file ({type(e).__name__}: {e})") from None
    assert shape is not None and dtype is not None
    d: dict[str, Any] = {"format": FORMAT_MEASUREMENT}
    for name, (key, _) in REQUIRED_ATTRS.items():
        if name in values:
            d[key] = values[name]
    d["sample"] = {"name": path.stem}
    background = (f"measured: the file's '{REFERENCE}' dataset" if has_reference else
                  "synthesised: ideal fringes of the detected carrier (the file holds no background "
                  "hologram); the phase is relative to a flat reference")
    d["qpformat"] = {"file": path.name, "file_attributes": file_attrs, "background": background,
                     "frames": frames}
    if metadata:
        d.update(metadata)
    try:
        meta = MeasurementMetadata.from_dict(d, source=path.name)
        meta.check_count(len(keys), source=path.name)
    except MetadataError as e:
        raise _error(path, "", str(e).removeprefix(f"{path.name}: ")) from None
    return QpformatInfo(path, keys, shape, dtype, meta, has_reference)  # type: ignore[arg-type]


def synthesise_background(holograms: np.ndarray, metadata: MeasurementMetadata) -> tuple[np.ndarray, np.ndarray]:
    """The ideal background hologram of a sample-free field (see the module docstring).

    Parameters
    ----------
    holograms : ndarray, shape (N, H, W) or (H, W)
        Sample holograms.
    metadata : MeasurementMetadata
        Pixel size, wavelength and NA (the zero order within 0.5·NA/λ is ignored when the
        carrier is searched, as in the retrieval).

    Returns
    -------
    background : ndarray of float32, shape (H, W)
        ``⟨I⟩ + A·cos(2π(c_x·x + c_y·y))`` on the pixel grid ``x = (j − W//2)·pixel``.
    carrier_per_um : ndarray, shape (2,)
        The carrier ``(c_x, c_y)`` found, cycles/µm.
    """
    from ..holography.retrieval import find_carrier  # torch: imported only when needed

    h = np.asarray(holograms, dtype=np.float64)
    mean_img = h.reshape((-1,) + h.shape[-2:]).mean(axis=0)
    px = float(metadata.pixel_size_um)
    carrier = np.asarray(find_carrier(mean_img.astype(np.float32), px,
                                      exclude_radius_per_um=0.5 * metadata.na_objective / metadata.wavelength_um,
                                      device="cpu"), dtype=np.float64).reshape(2)
    hh, ww = mean_img.shape
    y = (np.arange(hh) - hh // 2) * px
    x = (np.arange(ww) - ww // 2) * px
    phase = 2 * np.pi * (carrier[0] * x[None, :] + carrier[1] * y[:, None])
    level = float(mean_img.mean())
    modulation = 2.0 * abs(np.mean((mean_img - level) * np.exp(-1j * phase)))
    return (level + modulation * np.cos(phase)).astype(np.float32), carrier


def read_qpformat_hdf5(path: str | Path, metadata: Optional[dict] = None) -> Measurement:
    """Read a qpformat raw off-axis hologram HDF5 file as a :class:`Measurement`.

    Parameters
    ----------
    path : path
        The ``.h5`` file (single hologram or series).
    metadata : dict, optional
        ``measurement.json`` keys (µm units) that replace or complete the file's attributes.

    Returns
    -------
    Measurement
        ``holograms`` (N, H, W) in the stored dtype (uint8, uint16 or float32; other real
        types become float32), ``backgrounds`` (H, W): the file's ``"reference"`` hologram, or
        the synthesised background of :func:`synthesise_background` (float32);
        ``name`` = the file's stem, ``path`` = the file, ``extra["background"]`` =
        ``"measured"`` or ``"synthesised"`` and, when synthesised,
        ``extra["carrier_per_um"]``.

    Raises
    ------
    MeasurementError
        If the file is not such a file or breaks its layout, or an image is constant (no
        hologram); the message names the folder, file, dataset and problem.
    """
    path = Path(path)
    info = inspect_qpformat_hdf5(path, metadata)
    n = info.n_images
    dtype = info.dtype if info.dtype in ALLOWED_DTYPES else np.dtype(np.float32)
    holograms = np.empty((n,) + info.shape, dtype=dtype)
    try:
        with h5py.File(path, "r") as f:
            for i, k in enumerate(info.keys):
                holograms[i] = f[k][()]
            reference = np.asarray(f[REFERENCE][()]) if info.has_reference else None
    except Exception as e:
        raise _error(path, "", f"cannot read the holograms ({type(e).__name__}: {e})") from None
    if dtype.kind == "f":
        bad = ~np.isfinite(holograms.reshape(n, -1)).all(axis=1)
        if bad.any():
            raise _error(path, info.keys[int(np.argmax(bad))], "image holds non-finite values (NaN or inf)")
    check_hologram_content(holograms, path.parent, lambda i: f"{path.name}:/{info.keys[i]}", label="sample")
    extra: dict[str, Any] = {}
    if reference is not None:
        if reference.dtype not in ALLOWED_DTYPES:
            reference = reference.astype(np.float32)
        check_hologram_content(reference, path.parent, lambda i: f"{path.name}:/{REFERENCE}", label="background")
        backgrounds = reference
        extra["background"] = "measured"
    else:
        backgrounds, carrier = synthesise_background(holograms, info.metadata)
        extra["background"] = "synthesised"
        extra["carrier_per_um"] = tuple(float(c) for c in carrier)
    return Measurement(metadata=info.metadata, holograms=holograms, backgrounds=backgrounds,
                       name=path.stem, path=path, extra=extra)
