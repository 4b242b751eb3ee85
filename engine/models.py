"""Shipped-model files: fp16 safetensors weights with a JSON model card, checked on load.

A model is two files side by side: ``<name>.safetensors`` (tensors only, never pickled) and
``<name>.json``, its card. The card names the architecture and input specification (free
entries owned by each model family), and this module fills in and checks the entries that make
loading safe:

* ``sha256`` — SHA-256 of the weights file's bytes (a changed or truncated file is refused);
* ``tensors`` — every tensor's name and shape (a file that does not match the card is refused);
* ``dtype``, ``weights_file``, ``parameters``, ``date``, ``format``.

Every model family (screening nets, learned regulariser, birefringence generator) saves with
:func:`save_safetensors_model` and loads through the one :func:`load_network`: one cache (keyed
by the file path and the modification times of weights and card, so a retrained file is read
again), one task check (a card for another task is refused) and one strict state load that
names the missing, unexpected and mis-shaped tensors. The network is rebuilt from the card's
``architecture`` entry by the family's own builder, without evaluating code.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from .resources import models_dir

__all__ = [
    "MODELS_DIR",
    "CARD_FORMAT",
    "ModelFileError",
    "sha256_bytes",
    "save_safetensors_model",
    "load_safetensors_model",
    "resolve_model_file",
    "load_network",
    "TrainingLog",
]

MODELS_DIR = models_dir()  # shipped models (see engine.resources)
CARD_FORMAT = "odt-studio-model-card/1"


class ModelFileError(ValueError):
    """A model file or card is missing, malformed, or does not match its checksum or shapes."""


def sha256_bytes(data: bytes) -> str:
    """Hexadecimal SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_safetensors_model(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                           card: Optional[dict] = None, *, format_tag: str = "odt-studio-model/1",
                           dtype: torch.dtype = torch.float16) -> dict:
    """Write ``state`` as safetensors (floating tensors cast to ``dtype``) and its JSON card.

    Parameters
    ----------
    state : mapping of str to torch.Tensor
        A ``state_dict``.
    path : path
        Weights file; ``.safetensors`` is appended if missing, the card goes to ``.json``.
    card : dict, optional
        Family-specific entries (``name``, ``version``, ``architecture``, ``input``, ...).
    format_tag : str
        Stored in the safetensors header metadata.
    dtype : torch.dtype
        Storage type of floating-point tensors (default float16).

    Returns
    -------
    dict
        The card as written (with ``sha256``, ``tensors``, ``dtype``, ``parameters`` filled in).
        Both files are written atomically (temporary file, then rename).
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.items()}
    data = save(tensors, metadata={"format": format_tag})
    card = dict(card or {})
    card.setdefault("name", path.stem)
    card.setdefault("version", "1.0.0")
    card.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    card["format"] = CARD_FORMAT
    card["dtype"] = str(dtype).replace("torch.", "")
    card["weights_file"] = path.name
    card.setdefault("parameters", int(sum(int(v.numel()) for v in tensors.values() if v.is_floating_point())))
    card["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
    card["sha256"] = sha256_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    card_path = path.with_suffix(".json")
    tmpj = card_path.with_name(card_path.name + ".tmp")
    tmpj.write_text(json.dumps(card, indent=2, default=_json_default), encoding="utf-8")
    os.replace(tmpj, card_path)
    return card


def resolve_model_file(name_or_path: str | os.PathLike, models_dir: Path = MODELS_DIR) -> Path:
    """The ``.safetensors`` file for a shipped model name or a path (to the weights or the card)."""
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json"):
        w = p.with_suffix(".safetensors")
        if w.exists():
            return w
        raise ModelFileError(f"{w}: model weights not found")
    cand = Path(models_dir) / f"{p.name}.safetensors"
    if cand.exists():
        return cand
    if p.with_name(p.name + ".safetensors").exists():
        return p.with_name(p.name + ".safetensors")
    raise ModelFileError(f"model {str(name_or_path)!r} not found (looked in {models_dir})")


def load_safetensors_model(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32
                           ) -> tuple[dict[str, torch.Tensor], dict]:
    """Read weights and card, checking the checksum and every tensor's name and shape.

    Parameters
    ----------
    path : path
        The ``.safetensors`` file (its ``.json`` card beside it).
    dtype : torch.dtype
        Floating tensors are returned in this type (default float32).

    Returns
    -------
    state : dict of str to torch.Tensor (CPU)
    card : dict

    Raises
    ------
    ModelFileError
        Missing or unreadable card or weights, SHA-256 mismatch, tensors that differ from the
        card's ``tensors`` entry.
    """
    from safetensors.torch import load

    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.exists():
        raise ModelFileError(f"{path}: weights file not found")
    if not card_path.exists():
        raise ModelFileError(f"{card_path}: model card not found next to {path.name}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{card_path}: unreadable model card ({exc})") from exc
    if not isinstance(card, dict) or "sha256" not in card or "tensors" not in card:
        raise ModelFileError(f"{card_path}: model card lacks 'sha256' or 'tensors'")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != card["sha256"]:
        raise ModelFileError(f"{path}: SHA-256 {digest[:12]}… does not match the card's "
                             f"{str(card['sha256'])[:12]}… (file changed or corrupted)")
    try:
        state = load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{path}: not a valid safetensors file ({exc})") from exc
    expected = {k: list(v) for k, v in card["tensors"].items()}
    got = {k: list(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise ModelFileError(f"{path}: tensors do not match the card (missing {missing[:3]}, "
                             f"unexpected {extra[:3]}, wrong shape {wrong[:3]})")
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    return state, card


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, weights_mtime_ns: int, card_mtime_ns: int) -> tuple[dict, dict]:
    return load_safetensors_model(path)


def load_network(name_or_path: str | os.PathLike, *, task: str, build: Callable[[dict], torch.nn.Module],
                 default_name: str, models_dir: Path = MODELS_DIR, device: str | torch.device = "cpu",
                 task_if_missing: Optional[str] = None) -> tuple[torch.nn.Module, dict, Path]:
    """Load any shipped network: resolve, read (cached, checked), check the task, build, load strictly.

    Parameters
    ----------
    name_or_path : str or path
        ``"default"`` (``default_name``), a model name in ``models_dir``, or a path to the
        ``.safetensors`` file (or its ``.json`` card).
    task : str
        The card's ``task`` this family accepts (e.g. ``"deep-regularizer"``).
    build : callable
        ``architecture dict -> nn.Module`` of the family (may raise :class:`ModelFileError`).
    default_name, models_dir
        Where ``"default"`` and bare names point.
    device : str or torch.device
    task_if_missing : str, optional
        The task of cards written before cards named it (the screening nets).

    Returns
    -------
    net : nn.Module
        In eval mode on ``device``.
    card : dict
        A copy of the card, with ``path`` set to the weights file.
    path : Path
        The weights file.

    Raises
    ------
    ModelFileError
        Missing files, a checksum or shape mismatch with the card, a card for another task, an
        unknown architecture, or weights that do not fit the architecture.
    """
    from .backend import resolve_device

    path = resolve_model_file(default_name if str(name_or_path) == "default" else name_or_path, models_dir)
    card_path = path.with_suffix(".json")
    state, card = _read_cached(str(path), path.stat().st_mtime_ns,
                               card_path.stat().st_mtime_ns if card_path.exists() else -1)
    card = dict(card)
    have = card.get("task", task_if_missing)
    if have != task:
        raise ModelFileError(f"{path}: model card is for task {have!r}, not {task!r}")
    if "architecture" not in card:
        raise ModelFileError(f"{card_path}: the card must name the 'architecture'")
    net = build(card["architecture"])
    ref = net.state_dict()
    expected = {k: tuple(v.shape) for k, v in ref.items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))[:3]
        extra = sorted(set(got) - set(expected))[:3]
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])[:3]
        raise ModelFileError(f"{path}: tensors do not match architecture {card['architecture']}: "
                             f"missing {missing}, unexpected {extra}, wrong shape {wrong}")
    net.load_state_dict({k: v.to(ref[k].dtype) for k, v in state.items()}, strict=True)
    net.eval().to(resolve_device(device))
    card["path"] = str(path)
    return net, card, path


class TrainingLog:
    """Timestamped lines (``[HH:MM:SS] message``, UTC) to stdout and to a training log file.

    The training scripts commit this log beside the weights they write. Call the object with a
    message; :meth:`close` (or a ``with`` block) closes the file.

    Parameters
    ----------
    path : path-like, optional
        Log file; None prints only.
    append : bool
        Continue an existing log (a warm-started run) instead of starting a new one.
    """

    def __init__(self, path: Optional[str | os.PathLike] = None, *, append: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a" if append else "w", encoding="utf-8")

    def __call__(self, message: str) -> None:
        line = f"[{_dt.datetime.now(_dt.timezone.utc).strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "TrainingLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
