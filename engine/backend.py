"""Compute-device selection: the same torch code runs on CPU and CUDA."""

from __future__ import annotations

import functools

import torch

__all__ = ["resolve_device", "device_description", "cuda_available"]


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # broken driver: behave as CPU-only
        return False


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``None`` into a torch device.

    ``"auto"`` (and ``None``) picks CUDA when available, else the CPU. Asking for CUDA on a
    machine without it raises ``RuntimeError`` with a clear message.
    """
    if isinstance(device, torch.device):
        return device
    name = "auto" if device is None else str(device).lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name.startswith("cuda"):
        if not cuda_available():
            raise RuntimeError(f"device {device!r} was asked for, but no CUDA GPU is available")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")


def device_description(device: str | torch.device | None = "auto") -> str:
    """A short label for status bars: ``"CPU (2 threads)"`` or ``"CUDA: NVIDIA H100"``."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    return f"CPU ({torch.get_num_threads()} threads)"
