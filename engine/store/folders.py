"""Import of measurement folders (``docs/formats.md`` §1) and of Tomocube TCF files.

A measurement folder holds ``measurement.json`` and the holograms in one of these forms::

    sample/000.tif ... | sample/000.png ...   N single-page images (natural sort order), or
    sample.tif                                 one multi-page TIFF of N pages, or
    measurement.h5                             datasets ``sample`` (N,H,W), ``background``
                                               (N,H,W) or (H,W), attribute ``measurement_json``
    background/000.tif ... | background.tif    N images / pages, or one page for all

Everything here only *reads*: original folders are never written (files are opened
read-only and nothing is created next to them).

Two levels of checking:

* :func:`inspect_measurement` is fast: it validates the metadata and the file *headers*
  (number of images, sizes, dtypes, and that every TIFF strip lies inside its file, which
  catches truncated files) and decodes only the first image for a thumbnail. It never
  raises for a bad folder; it returns ``valid=False`` and the error text.
* :func:`load_measurement` decodes every pixel, also checks that float images are finite
  and that every image can be a hologram (:func:`check_hologram_content`: no constant image,
  not every image over-exposed), and raises :class:`MeasurementError` naming the folder, the
  file and the problem.

:func:`discover_measurements` can also report folders of images that lack
``measurement.json`` (``on_unrecognised``), so a batch lists them as failed instead of
silently skipping them. :func:`load_measurement` and :func:`inspect_measurement` also accept
the path of a qpformat raw off-axis hologram HDF5 file (:mod:`engine.store.qpformat_hdf5`).

Conventions: images are (y, x) arrays, stacks (N, y, x); dtypes uint8, uint16 or float32.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import h5py
import numpy as np
import tifffile
from PIL import Image

from ..measurement import Measurement
from ..metadata import MeasurementMetadata, MetadataError
from ..tomogram import centred_origin

__all__ = [
    "MeasurementError",
    "MeasurementInfo",
    "TcfVolume",
    "natural_key",
    "discover_measurements",
    "inspect_measurement",
    "load_measurement",
    "measurement_fingerprint",
    "read_metadata_text",
    "read_tcf",
    "check_hologram_content",
]

METADATA_FILE = "measurement.json"
H5_FILE = "measurement.h5"
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = TIFF_SUFFIXES + (".png",)
ALLOWED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
THUMBNAIL_SIZE = 64


class MeasurementError(ValueError):
    """A measurement folder breaks the ``odt-measurement/1`` contract.

    The message names the folder, the file (relative to the folder) and the problem;
    the three are also kept as attributes ``folder``, ``file`` and ``problem``.
    """

    def __init__(self, folder: str | Path, file: str | Path, problem: str) -> None:
        self.folder = Path(folder)
        self.file = str(file)
        self.problem = problem
        super().__init__(f"measurement folder '{self.folder}': file '{self.file}': {problem}")


@dataclass
class MeasurementInfo:
    """What :func:`inspect_measurement` found out about one folder, without loading pixels.

    Attributes
    ----------
    name : str
        Folder name (the measurement's name).
    path : Path
        The folder.
    n_images : int
        Number of sample holograms N (0 when unknown).
    image_shape : (H, W) or None
        Image size in pixels.
    dtype : str
        NumPy dtype name of the sample images ("" when unknown).
    metadata : MeasurementMetadata or None
        Validated metadata, None if it could not be read.
    valid : bool
        True when every check passed.
    error : str
        The :class:`MeasurementError` message when ``valid`` is False, else "".
    sample_name : str
        ``sample.name`` from the metadata, or the folder name.
    thumbnail : ndarray of float32, shape (h, w) with max(h, w) <= 64, or None
        First sample image, subsampled and scaled to 0..1.
    background_shared : bool
        True when one background image serves every illumination.
    form : str
        "folder", "multipage" or "h5" (how the sample images are stored).
    """

    name: str
    path: Path
    n_images: int = 0
    image_shape: Optional[tuple[int, int]] = None
    dtype: str = ""
    metadata: Optional[MeasurementMetadata] = None
    valid: bool = False
    error: str = ""
    sample_name: str = ""
    thumbnail: Optional[np.ndarray] = None
    background_shared: bool = False
    form: str = ""


# ---------------------------------------------------------------------------- discovery
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders ``img2`` before ``img10`` (digit runs compare as numbers).

    Examples
    --------
    >>> sorted(["b10", "b2", "a1"], key=natural_key)
    ['a1', 'b2', 'b10']
    """
    parts = _DIGITS.split(name)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)] + [name]


def _is_measurement_dir(names: Iterable[str]) -> bool:
    s = set(names)
    return METADATA_FILE in s or H5_FILE in s


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _no_metadata_message(folder: Path, images: list[str], subdirs: list[str]) -> str:
    """The error for a folder of images without ``measurement.json`` (names folder and file)."""
    parts = []
    if subdirs:
        parts.append(" and ".join(f"{d}/" for d in subdirs) + (" folders" if len(subdirs) > 1 else " folder"))
    if images:
        names = sorted(images, key=natural_key)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        parts.append(f"{len(names)} TIFF/PNG image(s) ({shown})")
    return (f"no measurement.json: folder '{folder}' holds {' and '.join(parts)} but neither "
            f"{METADATA_FILE} nor {H5_FILE}, so it cannot be processed; add {METADATA_FILE} "
            "(wavelength, medium index, NA, pixel size: docs/formats.md section 1)")


def discover_measurements(root: str | Path,
                          on_error: Optional[Callable[[Path, str], None]] = None,
                          on_unrecognised: Optional[Callable[[Path, str], None]] = None) -> list[Path]:
    """Find every measurement folder under ``root`` (``root`` itself included).

    A measurement folder is one that holds ``measurement.json`` or ``measurement.h5``.
    The search is recursive, skips hidden directories (names starting with "."), follows
    symbolic links to folders (each real folder is visited once, so link loops end), and
    never descends into a found measurement's ``sample/`` or ``background/`` image folders.

    It also notices *folders of images without metadata*, which look like measurements
    whose ``measurement.json`` was forgotten: a folder that holds TIFF/PNG images or a
    ``sample/`` or ``background/`` subfolder, but neither ``measurement.json`` nor
    ``measurement.h5``. Not reported as such: folders inside a measurement folder (its own
    ``sample/``, ``background/`` or any other subfolder), the ``sample/`` and ``background/``
    subfolders of a reported folder, and folders that hold a measurement or another reported
    folder somewhere below them (parents, e.g. a day folder with an overview picture).

    Parameters
    ----------
    root : path
        Folder to search.
    on_error : callable ``(folder, message)``, optional
        Called for every folder that cannot be listed (e.g. no permission), so that no
        measurement is skipped silently. Default: a :class:`UserWarning` per folder.
    on_unrecognised : callable ``(folder, message)``, optional
        Called, in natural sort order after the search, for every folder of images without
        metadata; ``message`` starts with ``"no measurement.json: "`` and names the folder
        and what it holds. Default: such folders are silently not returned.

    Returns
    -------
    list of Path
        Measurement folders in natural sort order of their paths relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"'{root}' is not a folder")
    found: list[Path] = []
    candidates: list[tuple[Path, list[str], list[str]]] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(err: OSError) -> None:
        msg = f"folder '{err.filename}' cannot be searched for measurements ({err.strerror})"
        if on_error is not None:
            on_error(Path(err.filename), msg)
        else:
            warnings.warn(msg, stacklevel=3)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # a symbolic link back up the tree: do not loop
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        # a measurement.json that is (wrongly) a folder still marks a measurement, to be reported
        if _is_measurement_dir(filenames) or _is_measurement_dir(dirnames):
            found.append(Path(dirpath))
            dirnames[:] = [d for d in dirnames if d not in ("sample", "background", METADATA_FILE, H5_FILE)]
        elif on_unrecognised is not None:
            imgs = [f for f in filenames if _is_image_name(f)]
            subs = [d for d in ("sample", "background") if d in dirnames]
            if imgs or subs:
                candidates.append((Path(dirpath), imgs, subs))

    def order(p: Path) -> list:
        return [natural_key(part) for part in p.relative_to(root).parts]

    if on_unrecognised is not None and candidates:
        measurements = set(found)
        above_measurements = {a for m in found for a in m.parents}
        cand_paths = {c[0] for c in candidates}
        # folders above a candidate, not counting a candidate's own sample/ and background/
        above_candidates = {a for c in cand_paths for a in c.parents
                            if not (c.name in ("sample", "background") and c.parent in cand_paths)}
        for path, imgs, subs in sorted(candidates, key=lambda c: order(c[0])):
            if path in above_measurements or any(a in measurements for a in path.parents):
                continue  # a parent of a measurement, or inside one
            if path.name in ("sample", "background") and path.parent in cand_paths:
                continue  # the image folder of a reported folder
            if path in above_candidates:
                continue  # a parent of a reported folder: the deepest one is named
            on_unrecognised(path, _no_metadata_message(path, imgs, subs))
    return sorted(found, key=order)


# ---------------------------------------------------------------------------- headers
@dataclass
class _Frame:
    """One image on disk: file, page index (TIFF) or frame index (HDF5)."""

    file: Path
    page: int
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass
class _Stack:
    """A group of images (sample or background) and where they live."""

    label: str  # "sample" or "background"
    form: str  # "folder", "multipage", "h5"
    frames: list[_Frame] = field(default_factory=list)
    h5_dataset: str = ""

    @property
    def n(self) -> int:
        return len(self.frames)


def _rel(folder: Path, path: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


def _tiff_frames(folder: Path, path: Path) -> list[_Frame]:
    """Header of every page of a TIFF: shape, dtype, strips inside the file."""
    rel = _rel(folder, path)
    try:
        size = path.stat().st_size
        with tifffile.TiffFile(path, is_shaped=False, is_imagej=False) as tif:
            frames = []
            for i, page in enumerate(tif.pages):
                if not isinstance(page, tifffile.TiffPage):  # a TiffFrame: read its full header
                    page = page.aspage()
                if page.samplesperpixel != 1 or len(page.shape) != 2:
                    raise MeasurementError(
                        folder, rel,
                        f"page {i} has shape {page.shape} ({page.samplesperpixel} samples per pixel); "
                        "images must be 2-D grayscale")
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
                if not ends or min(page.databytecounts) == 0 or max(ends) > size:
                    raise MeasurementError(
                        folder, rel, f"page {i} is truncated: its pixel data ends at byte "
                                     f"{max(ends) if ends else 0} but the file has {size} bytes")
                frames.append(_Frame(path, i, tuple(int(s) for s in page.shape), np.dtype(page.dtype)))
    except MeasurementError:
        raise
    except IsADirectoryError:
        raise MeasurementError(folder, rel, "is a folder, expected an image file") from None
    except Exception as e:  # tifffile raises TiffFileError, struct.error, ValueError...
        raise MeasurementError(folder, rel, f"not a readable TIFF ({type(e).__name__}: {e})") from None
    if not frames:
        raise MeasurementError(folder, rel, "TIFF holds no image")
    return frames


_PNG_MODES = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.uint16,
              "F": np.float32}


def _png_frames(folder: Path, path: Path) -> list[_Frame]:
    rel = _rel(folder, path)
    try:
        with Image.open(path) as im:
            mode, (w, h) = im.mode, im.size
            if getattr(im, "n_frames", 1) != 1:
                raise MeasurementError(folder, rel, f"holds {im.n_frames} frames, expected one image")
    except MeasurementError:
        raise
    except IsADirectoryError:
        raise MeasurementError(folder, rel, "is a folder, expected an image file") from None
    except Exception as e:
        raise MeasurementError(folder, rel, f"not a readable PNG ({type(e).__name__}: {e})") from None
    if mode not in _PNG_MODES:
        raise MeasurementError(folder, rel, f"PNG mode '{mode}' is not 2-D grayscale (8 or 16 bit)")
    return [_Frame(path, 0, (h, w), np.dtype(_PNG_MODES[mode]))]


def _image_frames(folder: Path, path: Path, single: bool) -> list[_Frame]:
    if path.suffix.lower() == ".png":
        return _png_frames(folder, path)
    frames = _tiff_frames(folder, path)
    if single and len(frames) != 1:
        raise MeasurementError(folder, _rel(folder, path),
                               f"has {len(frames)} pages; files in an image folder must hold one image each")
    return frames


def _list_images(folder: Path, directory: Path) -> list[Path]:
    try:
        entries = list(os.scandir(directory))
    except OSError as e:
        raise MeasurementError(folder, _rel(folder, directory) + "/", f"cannot be listed ({e.strerror})") from None
    files = [Path(e.path) for e in entries
             if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


def _find_single(folder: Path, stem: str) -> Optional[Path]:
    hits = [folder / f"{stem}{s}" for s in TIFF_SUFFIXES if (folder / f"{stem}{s}").exists()]
    if len(hits) > 1:
        raise MeasurementError(folder, hits[1].name, f"both {hits[0].name} and {hits[1].name} exist")
    return hits[0] if hits else None


def _scan_image_stack(folder: Path, label: str, required: bool) -> Optional[_Stack]:
    directory = folder / label
    single = _find_single(folder, label)
    if directory.is_dir() and single is not None:
        raise MeasurementError(folder, single.name,
                               f"both '{label}/' and '{single.name}' exist; keep only one form")
    if directory.is_dir():
        files = _list_images(folder, directory)
        if not files:
            raise MeasurementError(folder, f"{label}/", "holds no .tif, .tiff or .png image")
        stack = _Stack(label, "folder")
        for f in files:
            stack.frames.extend(_image_frames(folder, f, single=True))
        return stack
    if single is not None:
        return _Stack(label, "multipage", _image_frames(folder, single, single=False))
    if required:
        raise MeasurementError(folder, f"{label}/",
                               f"no {label} images: expected a '{label}/' folder of images or '{label}.tif'")
    return None


def _check_stack_uniform(folder: Path, stack: _Stack) -> None:
    first = stack.frames[0]
    for fr in stack.frames:
        where = _rel(folder, fr.file) + (f" (page {fr.page})" if stack.form != "folder" else "")
        if fr.shape != first.shape:
            raise MeasurementError(folder, where, f"image size {fr.shape} differs from {first.shape} of "
                                                  f"'{_rel(folder, first.file)}'; all images must have one size")
        if fr.dtype not in ALLOWED_DTYPES:
            raise MeasurementError(folder, where, f"dtype {fr.dtype} is not allowed (uint8, uint16 or float32)")
        if fr.dtype != first.dtype:
            raise MeasurementError(folder, where, f"dtype {fr.dtype} differs from {first.dtype} of "
                                                  f"'{_rel(folder, first.file)}'; mixed dtypes")


def read_metadata_text(folder: str | Path) -> str:
    """The raw metadata JSON of a folder (``measurement.json``, else the h5 attribute); "" if none."""
    folder = Path(folder)
    try:
        return (folder / METADATA_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    try:
        with h5py.File(folder / H5_FILE, "r") as f:
            v = f.attrs.get("measurement_json", "")
            return v.decode("utf-8") if isinstance(v, bytes) else str(v)
    except Exception:
        return ""


def _load_metadata(folder: Path, h5: Optional[h5py.File]) -> MeasurementMetadata:
    json_path = folder / METADATA_FILE
    try:
        if h5 is not None and "measurement_json" in h5.attrs:
            text = h5.attrs["measurement_json"]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            return MeasurementMetadata.from_json(text, source="measurement_json")
        if json_path.is_dir():
            raise MeasurementError(folder, METADATA_FILE, "is a folder, expected a JSON file")
        if not json_path.exists():
            raise MeasurementError(folder, METADATA_FILE, "is missing")
        return MeasurementMetadata.load(json_path)
    except MetadataError as e:
        where = "measurement.h5 (attribute measurement_json)" if h5 is not None and "measurement_json" in h5.attrs \
            else METADATA_FILE
        msg = str(e)
        for prefix in (str(json_path) + ": ", "measurement_json: "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        raise MeasurementError(folder, where, msg) from None


def _h5_stack(folder: Path, f: h5py.File, label: str, required: bool) -> Optional[_Stack]:
    where = f"{H5_FILE}:/{label}"
    if label not in f:
        if required:
            raise MeasurementError(folder, H5_FILE, f"dataset '{label}' is missing")
        return None
    ds = f[label]
    if not isinstance(ds, h5py.Dataset):
        raise MeasurementError(folder, where, "is a group, expected a dataset")
    shape = ds.shape
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) == 0:
        raise MeasurementError(folder, where, f"shape {ds.shape} is not (N, H, W) with N, H, W > 0")
    dt = np.dtype(ds.dtype)
    frames = [_Frame(folder / H5_FILE, i, tuple(shape[1:]), dt) for i in range(shape[0])]
    return _Stack(label, "h5", frames, h5_dataset=label)


@dataclass
class _Layout:
    metadata: MeasurementMetadata
    sample: _Stack
    background: _Stack


def _scan(folder: Path) -> _Layout:
    """Validate metadata and headers; raise MeasurementError."""
    if not folder.is_dir():
        raise MeasurementError(folder, ".", "is not a folder")
    h5_path = folder / H5_FILE
    if h5_path.exists():
        try:
            with h5py.File(h5_path, "r") as f:
                meta = _load_metadata(folder, f)
                sample = _h5_stack(folder, f, "sample", True)
                background = _h5_stack(folder, f, "background", True)
        except MeasurementError:
            raise
        except Exception as e:
            raise MeasurementError(folder, H5_FILE, f"not a readable HDF5 file ({type(e).__name__}: {e})") from None
    else:
        meta = _load_metadata(folder, None)
        sample = _scan_image_stack(folder, "sample", True)
        background = _scan_image_stack(folder, "background", True)
    _check_stack_uniform(folder, sample)
    _check_stack_uniform(folder, background)
    n = sample.n
    if background.n not in (n, 1) or (background.form == "folder" and background.n != n):
        allowed = f"{n}" if background.form == "folder" else f"{n} or 1"
        raise MeasurementError(folder, _bg_name(background),
                               f"has {background.n} background images but there are {n} sample images "
                               f"(expected {allowed})")
    if background.frames[0].shape != sample.frames[0].shape:
        raise MeasurementError(folder, _bg_name(background),
                               f"background size {background.frames[0].shape} differs from the sample "
                               f"size {sample.frames[0].shape}")
    try:
        meta.check_count(n)
    except MetadataError as e:
        raise MeasurementError(folder, METADATA_FILE, str(e).removeprefix("measurement.json: ")) from None
    return _Layout(meta, sample, background)


def _bg_name(stack: _Stack) -> str:
    if stack.form == "h5":
        return f"{H5_FILE}:/background"
    return "background/" if stack.form == "folder" else stack.frames[0].file.name


# ---------------------------------------------------------------------------- pixels
def _read_frame_file(folder: Path, fr: _Frame) -> np.ndarray:
    rel = _rel(folder, fr.file)
    try:
        if fr.file.suffix.lower() == ".png":
            with Image.open(fr.file) as im:
                img = np.asarray(im)
            if img.dtype != fr.dtype:
                img = img.astype(fr.dtype)
        else:
            img = tifffile.imread(fr.file, key=fr.page, is_shaped=False, is_imagej=False)
    except Exception as e:
        raise MeasurementError(folder, rel, f"cannot decode image (page {fr.page}): {type(e).__name__}: {e}") from None
    if img.shape != fr.shape:
        raise MeasurementError(folder, rel, f"decoded image has shape {img.shape}, header says {fr.shape}")
    return img


def _read_stack(folder: Path, stack: _Stack) -> np.ndarray:
    fr0 = stack.frames[0]
    if stack.form == "h5":
        try:
            with h5py.File(fr0.file, "r") as f:
                data = np.asarray(f[stack.h5_dataset][()])
        except Exception as e:
            raise MeasurementError(folder, f"{H5_FILE}:/{stack.h5_dataset}",
                                   f"cannot read ({type(e).__name__}: {e})") from None
        out = data.reshape((stack.n,) + fr0.shape)
    else:
        out = np.empty((stack.n,) + fr0.shape, dtype=fr0.dtype)
        if stack.form == "multipage":
            try:
                out[...] = tifffile.imread(fr0.file, key=range(stack.n), is_shaped=False,
                                           is_imagej=False).reshape(out.shape)
            except Exception as e:
                raise MeasurementError(folder, _rel(folder, fr0.file),
                                       f"cannot decode pages ({type(e).__name__}: {e})") from None
        else:
            for i, fr in enumerate(stack.frames):
                out[i] = _read_frame_file(folder, fr)
    if out.dtype.kind == "f":
        bad = ~np.isfinite(out)
        if bad.any():
            i = int(np.argmax(bad.reshape(stack.n, -1).any(axis=1)))
            fr = stack.frames[i]
            where = _rel(folder, fr.file) if stack.form == "folder" else (
                f"{_rel(folder, fr.file)}:/{stack.h5_dataset}" if stack.form == "h5" else _rel(folder, fr.file))
            n_nan, n_inf = int(np.isnan(out[i]).sum()), int(np.isinf(out[i]).sum())
            raise MeasurementError(folder, where, f"image {i} holds non-finite values "
                                                  f"({n_nan} NaN, {n_inf} inf)")
    check_hologram_content(out, folder, lambda i: _frame_name(folder, stack, i), label=stack.label)
    return out


def _frame_name(folder: Path, stack: _Stack, i: int) -> str:
    """How an error message names image ``i`` of a stack: file, page or dataset index."""
    fr = stack.frames[i]
    if stack.form == "folder":
        return _rel(folder, fr.file)
    if stack.form == "h5":
        return f"{_rel(folder, fr.file)}:/{stack.h5_dataset}[{i}]"
    return f"{_rel(folder, fr.file)} (page {i})" if stack.n > 1 else _rel(folder, fr.file)


def _value_text(v: float, dtype: np.dtype) -> str:
    return str(int(v)) if dtype.kind in "ui" else f"{float(v):g}"


def check_hologram_content(images: np.ndarray, folder: str | Path, name_of: Callable[[int], str],
                           label: str = "sample", clipping: bool = True) -> None:
    """Reject images that cannot be holograms; cheap (one min/max pass over the pixels).

    Two checks, chosen to have no false positives on real holograms (whose fringes always
    give contrast, and of which at most a few pixels reach full scale):

    * **constant images** — every pixel has one value (zero variance: all black, all at full
      scale, or a camera that delivered an empty frame). When *every* image of the stack is
      constant the measurement holds no hologram at all and is rejected. A few constant frames
      among good ones are dropped frames: the pipeline excludes those fields (their retrieval
      fails its sanity check, :func:`engine.pipeline.process.failed_retrievals`) and says so,
      because one bad field must not cost the measurement.
    * **every image over-exposed** — in *each* image of the stack at least half the pixels
      sit at that image's maximum value (clipped). A single clipped frame among good ones is an
      acquisition defect that screening excludes, so it is not an error here.

    Parameters
    ----------
    images : ndarray, shape (N, H, W) or (H, W)
        Decoded images (finite).
    folder : path
        The measurement folder (for the message).
    name_of : callable ``i -> str``
        Names image ``i`` in the message (file relative to the folder, page or dataset).
    label : str
        "sample" or "background", for the message.
    clipping : bool
        Also apply the over-exposure check (only meaningful on the whole stack).

    Raises
    ------
    MeasurementError
        Naming the folder, the first offending image and the problem, e.g.
        ``sample/003.tif: constant image (all 0): no hologram``.
    """
    stack = images.reshape((-1,) + images.shape[-2:])
    n = stack.shape[0]
    if n == 0 or stack[0].size == 0:
        return
    flat = stack.reshape(n, -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    const = np.flatnonzero(lo == hi)
    if const.size == n:
        i = int(const[0])
        v = hi[i]
        hint = ""
        if stack.dtype.kind in "ui" and v == np.iinfo(stack.dtype).max:
            hint = f" (the full scale of {stack.dtype.name}: over-exposed)"
        elif v == 0:
            hint = " (black: no light or no camera signal)"
        more = f"; {const.size} of the {n} {label} images are constant" if const.size > 1 else ""
        raise MeasurementError(folder, name_of(i), f"constant image (all {_value_text(v, stack.dtype)}): "
                                                   f"no hologram{hint}{more}")
    if clipping and flat.shape[1] >= 16:
        clipped = (flat == hi[:, None]).mean(axis=1)
        if np.all(clipped >= 0.5):
            i = int(np.argmax(clipped))
            every = f"every one of the {n} {label} images" if n > 1 else f"the {label} image"
            raise MeasurementError(
                folder, name_of(i),
                f"over-exposed: {100 * clipped[i]:.0f}% of its pixels sit at its maximum "
                f"{_value_text(hi[i], stack.dtype)}, and {every} has at least half its pixels clipped: "
                "no usable hologram")


def _thumbnail(img: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    step = max(1, int(np.ceil(max(img.shape) / size)))
    t = np.asarray(img[::step, ::step], dtype=np.float32)
    finite = np.isfinite(t)
    if not finite.any():
        return np.zeros_like(t)
    lo, hi = float(t[finite].min()), float(t[finite].max())
    t = np.where(finite, t, lo)
    return ((t - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(t)


# ---------------------------------------------------------------------------- public API
def inspect_measurement(folder: str | Path, full: bool = False, thumbnail: bool = True) -> MeasurementInfo:
    """Check one measurement folder quickly; never raises for a bad folder.

    Parameters
    ----------
    folder : path
        The measurement folder.
    full : bool
        Also decode every pixel, check that float images are finite and that no image is
        constant (as
        :func:`load_measurement` does).
    thumbnail : bool
        Decode the first sample image for :attr:`MeasurementInfo.thumbnail`.

    Returns
    -------
    MeasurementInfo
        ``valid=False`` and ``error`` set when the folder breaks the contract.
    """
    folder = Path(folder)
    if folder.is_file():
        return _inspect_file(folder, full, thumbnail)
    info = MeasurementInfo(name=folder.name, path=folder, sample_name=folder.name)
    try:
        layout = _scan(folder)
        info.metadata = layout.metadata
        info.sample_name = layout.metadata.name or folder.name
        fr0 = layout.sample.frames[0]
        info.n_images, info.image_shape, info.dtype = layout.sample.n, tuple(fr0.shape), fr0.dtype.name
        info.background_shared = layout.background.n == 1 and layout.sample.n > 1
        info.form = layout.sample.form
        if full:
            sample = _read_stack(folder, layout.sample)
            _read_stack(folder, layout.background)
            if thumbnail:
                info.thumbnail = _thumbnail(sample[0])
        elif thumbnail:
            if layout.sample.form == "h5":
                with h5py.File(fr0.file, "r") as f:
                    ds = f[layout.sample.h5_dataset]
                    first = np.asarray(ds[0] if ds.ndim == 3 else ds[()])
            else:
                first = _read_frame_file(folder, fr0)
            # the one decoded image: a constant one is fatal only when it is the only one
            if layout.sample.n == 1:
                check_hologram_content(first, folder, lambda i: _frame_name(folder, layout.sample, 0),
                                       label="sample", clipping=False)
            info.thumbnail = _thumbnail(first)
        info.valid = True
    except MeasurementError as e:
        info.valid, info.error = False, str(e)
    except Exception as e:  # anything unforeseen still must not escape
        info.valid, info.error = False, str(MeasurementError(folder, ".", f"{type(e).__name__}: {e}"))
    return info


def _not_a_folder(path: Path) -> MeasurementError:
    return MeasurementError(path.parent, path.name, "is a file, expected a measurement folder or a qpformat "
                                                    "off-axis hologram HDF5 file (docs/formats.md section 1)")


def _inspect_file(path: Path, full: bool, thumbnail: bool) -> MeasurementInfo:
    """:func:`inspect_measurement` of a file: a qpformat hologram HDF5 file, or an error."""
    from .qpformat_hdf5 import inspect_qpformat_hdf5, is_qpformat_hdf5, read_qpformat_hdf5

    info = MeasurementInfo(name=path.stem, path=path, sample_name=path.stem, form="qpformat-h5")
    try:
        if not is_qpformat_hdf5(path):
            raise _not_a_folder(path)
        q = inspect_qpformat_hdf5(path)
        info.metadata, info.n_images, info.image_shape, info.dtype = q.metadata, q.n_images, q.shape, q.dtype.name
        info.sample_name = q.metadata.name or path.stem
        info.background_shared = q.n_images > 1
        if full:
            first = read_qpformat_hdf5(path).holograms[0]
        elif thumbnail:
            with h5py.File(path, "r") as f:
                first = np.asarray(f[q.keys[0]][()])
            check_hologram_content(first, path.parent, lambda i: f"{path.name}:/{q.keys[0]}", clipping=False)
        if full or thumbnail:
            info.thumbnail = _thumbnail(first) if thumbnail else None
        info.valid = True
    except MeasurementError as e:
        info.valid, info.error = False, str(e)
    except Exception as e:
        info.valid, info.error = False, str(MeasurementError(path.parent, path.name, f"{type(e).__name__}: {e}"))
    return info


def load_measurement(folder: str | Path) -> Measurement:
    """Read and fully validate one measurement folder (or a qpformat hologram HDF5 file).

    Parameters
    ----------
    folder : path
        A folder in one of the forms of ``docs/formats.md`` §1, or the path of a qpformat
        raw off-axis hologram ``.h5`` file (§1 "Other inputs";
        :func:`engine.store.qpformat_hdf5.read_qpformat_hdf5`, which synthesises the missing
        background).

    Returns
    -------
    Measurement
        ``holograms`` (N, H, W) and ``backgrounds`` (N, H, W) or (H, W) in the stored dtype
        (uint8, uint16 or float32), the validated metadata, ``name`` = folder name.

    Raises
    ------
    MeasurementError
        If anything breaks the contract; the message names the folder, file and problem.
    """
    folder = Path(folder)
    if folder.is_file():
        from .qpformat_hdf5 import is_qpformat_hdf5, read_qpformat_hdf5

        if is_qpformat_hdf5(folder):
            return read_qpformat_hdf5(folder)
        raise _not_a_folder(folder)
    layout = _scan(folder)
    holograms = _read_stack(folder, layout.sample)
    backgrounds = _read_stack(folder, layout.background)
    if backgrounds.shape[0] == 1:
        backgrounds = backgrounds[0]
    return Measurement(metadata=layout.metadata, holograms=holograms, backgrounds=backgrounds,
                       name=folder.name, path=folder)


def measurement_fingerprint(folder: str | Path) -> str:
    """A fast content hash of a measurement folder (hex SHA-256).

    Hashes the bytes of ``measurement.json`` (if present) and, for every other regular file in
    the folder and its ``sample/`` and ``background/`` folders, the relative name, size and
    modification time (ns). Pixels are not read, so it costs a few ``stat`` calls.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    try:
        h.update((folder / METADATA_FILE).read_bytes())
    except OSError:
        h.update(b"<no measurement.json>")
    entries = []
    for sub in ("", "sample", "background"):
        d = folder / sub if sub else folder
        if not d.is_dir():
            continue
        for e in os.scandir(d):
            if e.is_file(follow_symlinks=True):
                st = e.stat()
                entries.append((f"{sub}/{e.name}" if sub else e.name, st.st_size, st.st_mtime_ns))
    for name, size, mtime in sorted(entries):
        h.update(f"\0{name}\0{size}\0{mtime}".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


# ---------------------------------------------------------------------------- Tomocube TCF
@dataclass
class TcfVolume:
    """One refractive-index volume read from a Tomocube TCF file.

    Attributes
    ----------
    ri : ndarray of float32, shape (Z, Y, X)
        Refractive index.
    voxel_size_um : (dz, dy, dx)
        From the ``ResolutionZ/Y/X`` attributes of ``/Data/3D``, µm.
    time_index : int
        Which time point (``/Data/3D/NNNNNN``) this is.
    n_timepoints : int
        Number of 3-D time points in the file.
    mip : ndarray of float32, shape (Y, X), or None
        The matching ``/Data/2DMIP`` maximum-intensity projection, if present.
    format_version : str
        The file's ``FormatVersion`` attribute ("" if absent).
    path : Path
        The file.
    """

    ri: np.ndarray
    voxel_size_um: tuple[float, float, float]
    time_index: int
    n_timepoints: int
    mip: Optional[np.ndarray]
    format_version: str
    path: Path

    @property
    def origin_um(self) -> tuple[float, float, float]:
        """Position of voxel (0,0,0) with the FFT-centre convention of ``docs/formats.md``."""
        return centred_origin(self.ri.shape, self.voxel_size_um)


def _attr_scalar(obj: h5py.HLObject, name: str, default=None):
    if name not in obj.attrs:
        return default
    v = obj.attrs[name]
    v = np.asarray(v).ravel()
    if v.size == 0:
        return default
    v = v[0]
    return v.decode("utf-8") if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v


def _tcf_ri(node: h5py.HLObject, shape: Sequence[int]) -> np.ndarray:
    """RI from a TCF time-point node: a dataset, or a group of ``TILE_*`` datasets."""
    if isinstance(node, h5py.Dataset):
        data = node[()]
        if data.dtype.kind in "ui":
            return (data.astype(np.float32) / np.float32(1e4))
        return data.astype(np.float32)
    # tiled layout (newer writers): TILE_nn datasets placed at DataIndexOffsetPoint{Z,Y,X}
    is_uint8 = bool(_attr_scalar(node, "ScalarType", False))
    out = np.zeros(tuple(int(s) for s in shape), np.float32)
    tiles = sorted((k for k in node.keys() if re.fullmatch(r"TILE_\d+", k)), key=natural_key)
    if not tiles:
        raise ValueError(f"'{node.name}' is a group without TILE_* datasets")
    for k in tiles:
        t = node[k]
        if int(_attr_scalar(t, "SamplingStep", 1)) != 1:
            continue
        lo = [int(_attr_scalar(t, f"DataIndexOffsetPoint{a}", 0)) for a in "ZYX"]
        hi = [int(_attr_scalar(t, f"DataIndexLastPoint{a}", lo[i] + t.shape[i] - 1)) for i, a in enumerate("ZYX")]
        dst = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
        src = tuple(slice(0, b - a + 1) for a, b in zip(lo, hi))
        out[dst] += t[src].astype(np.float32)
    if is_uint8:
        return out / np.float32(1e3) + np.float32(_attr_scalar(node, "RIMin", 0.0))
    return out / np.float32(1e4)


def read_tcf(path: str | Path, time_index: int = 0) -> TcfVolume:
    """Read one refractive-index volume from a Tomocube TCF file (HDF5).

    Layout assumed (from Tomocube's public readers; the format is proprietary and not
    documented, so this is a best reading, tested only on files made to match it):

    * group ``/Data/3D`` with attributes ``ResolutionX/Y/Z`` (µm per voxel), ``SizeX/Y/Z``
      and ``DataCount`` (number of time points); each attribute may be a 1-element array;
    * ``/Data/3D/000000``, ``000001``, ... one per time point: a (Z, Y, X) dataset holding
      RI directly as float (``FormatVersion`` < 1.3) or RI·10⁴ as uint16 (1.3 and later), or
      a group of ``TILE_*`` datasets (uint16 RI·10⁴, or uint8 (RI − RIMin)·10³ when the
      group's ``ScalarType`` is true) placed at ``DataIndexOffsetPoint{Z,Y,X}``;
    * ``/Data/2DMIP/NNNNNN``: (Y, X) maximum-intensity projections, same scaling.

    Integer data are always read as RI·10⁴ (uint8 tiles as above); float data as RI.

    Parameters
    ----------
    path : path
        The ``.TCF`` file.
    time_index : int
        Time point to read (negative counts from the end).

    Returns
    -------
    TcfVolume

    Raises
    ------
    ValueError
        If the file lacks ``/Data/3D`` or the time point; the message names the file.

    References
    ----------
    Tomocube Inc., TCF (Tomocube Common Format), as read by the open ``TCFile`` package
    (github.com/ehgus/TCFile).
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise ValueError(f"'{path}': not a readable TCF/HDF5 file ({type(e).__name__}: {e})") from None
    with f:
        if "Data/3D" not in f:
            raise ValueError(f"'{path}': no '/Data/3D' group, not a TCF file with RI tomograms")
        g3 = f["Data/3D"]
        points = sorted((k for k in g3.keys() if k.isdigit()), key=int)
        n = int(_attr_scalar(g3, "DataCount", len(points)) or len(points))
        if not points:
            raise ValueError(f"'{path}': '/Data/3D' holds no time point")
        if not -len(points) <= time_index < len(points):
            raise ValueError(f"'{path}': time point {time_index} out of range (0..{len(points) - 1})")
        key = points[time_index]
        node = g3[key]
        shape = node.shape if isinstance(node, h5py.Dataset) else tuple(
            int(_attr_scalar(g3, f"Size{a}", 0)) for a in "ZYX")
        ri = _tcf_ri(node, shape)
        if ri.ndim != 3:
            raise ValueError(f"'{path}': '/Data/3D/{key}' has shape {ri.shape}, expected (Z, Y, X)")
        vox = tuple(float(_attr_scalar(g3, f"Resolution{a}", 1.0)) for a in "ZYX")
        mip = None
        if "Data/2DMIP" in f and key in f["Data/2DMIP"]:
            g2 = f["Data/2DMIP"]
            node2 = g2[key]
            if isinstance(node2, h5py.Dataset) and node2.ndim == 2:  # tiled MIPs are not read
                mip = _tcf_ri(node2, node2.shape)
        version = str(_attr_scalar(f, "FormatVersion", "") or "")
    return TcfVolume(ri=np.ascontiguousarray(ri, np.float32), voxel_size_um=vox,  # type: ignore[arg-type]
                     time_index=int(key), n_timepoints=max(n, len(points)), mip=mip,
                     format_version=version, path=path)
