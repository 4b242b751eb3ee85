"""Saliency maps of the screening networks: CAM, guided back-propagation and Grad-CAM.

All maps are for the **noisy** output (the network's logit), computed on the preprocessed
input (:func:`engine.screening.network.preprocess`, images (y, x)), upsampled to the input
size (128 × 128 for the shipped models) and returned as float32 arrays scaled to 0..1 per
field, ready for the GUI to overlay on the cropped phase image.

* **CAM** (class activation map): the published net ends with adaptive *max* pooling and an
  MLP, not global average pooling and one linear layer, so the classic CAM weights do not
  exist. We use its direct generalisation: the classifier head is applied to the feature
  vector at every position of the last conv's activation map (as a 1×1 "convolution"),
  giving the logit each position would produce on its own; its positive part is the map.
* **Grad-CAM**: the last conv's activations weighted by the spatially averaged gradient of
  the logit, ReLU.
* **Guided back-propagation**: the gradient of the logit with respect to the input, with
  negative gradients stopped at every ReLU; we return its absolute value.

References
----------
B. Zhou et al., "Learning deep features for discriminative localization", CVPR (2016).
R. R. Selvaraju et al., "Grad-CAM: visual explanations from deep networks via
gradient-based localization", ICCV (2017).
J. T. Springenberg et al., "Striving for simplicity: the all convolutional net",
ICLR workshop (2015).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .network import SPECTRUM_KINDS, MinOfNetworks, ScreeningModel, preprocess

__all__ = ["cam", "grad_cam", "guided_backprop", "saliency_maps", "SALIENCY_METHODS"]

SALIENCY_METHODS = ("cam", "grad_cam", "guided_backprop")


def _as_input(model: ScreeningModel, fields_or_input: np.ndarray | torch.Tensor,
              unwrapped_phase: Optional[np.ndarray]) -> torch.Tensor:
    if isinstance(fields_or_input, torch.Tensor):
        x = fields_or_input.float()
        if x.ndim == 3:
            x = x[None]
    else:
        x = preprocess(fields_or_input, unwrapped_phase=unwrapped_phase,
                       input_kind=model.input_kind, crop=model.crop)
    return x.to(model.device)


def _normalise(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, h, w) → upsampled (B, H, W) float32 in 0..1 (each map divided by its maximum)."""
    m = maps.detach().float()
    if m.shape[-2:] != size:
        m = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    m = m.clamp_min(0)
    lo = m.flatten(1).min(dim=1).values[:, None, None]
    m = m - lo
    hi = m.flatten(1).max(dim=1).values[:, None, None]
    m = torch.where(hi > 0, m / hi.clamp_min(1e-12), torch.zeros_like(m))
    return m.cpu().numpy().astype(np.float32)


def cam(model: ScreeningModel, fields: np.ndarray | torch.Tensor, *,
        unwrapped_phase: Optional[np.ndarray] = None) -> np.ndarray:
    """Class activation map from the last conv layer.

    Parameters
    ----------
    model : ScreeningModel
    fields : ndarray (N, H, W) complex, or Tensor (N, C, h, w) already preprocessed

    Returns
    -------
    ndarray, shape (N, h, w), float32 in 0..1
    """
    x = _as_input(model, fields, unwrapped_phase)
    maps = _per_deciding_member(model.net.eval(), x, _cam_maps)
    return _normalise(maps, tuple(x.shape[-2:]))


def _cam_maps(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Positive part of the per-position logits of one single network, (B, h', w')."""
    with torch.no_grad():
        a = net.feature_maps(x)  # (B, C, h', w')
        b, c, hh, ww = a.shape
        return net.position_head(a.permute(0, 2, 3, 1).reshape(-1, c)).reshape(b, hh, ww).clamp_min(0)


def _per_deciding_member(net: nn.Module, x: torch.Tensor, maps_of: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                         ) -> torch.Tensor:
    """``maps_of(net, x)``; for a :class:`MinOfNetworks`, each field's map from the member that decides it.

    The ensemble's score is its least member logit, so the map that explains a decision is the map
    of the member whose logit was the least. Members may differ in map size: each map is brought to
    the input size before they are put together.
    """
    if not isinstance(net, MinOfNetworks):
        return maps_of(net, x)
    with torch.no_grad():
        who = net.deciding_member(x)
    out = torch.zeros((x.shape[0], *x.shape[-2:]), dtype=torch.float32, device=x.device)
    for k, member in enumerate(net.members):
        sel = (who == k).nonzero().flatten()
        if len(sel):
            m = maps_of(member, x[sel]).detach().float()
            out[sel] = F.interpolate(m[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    return out


def grad_cam(model: ScreeningModel, fields: np.ndarray | torch.Tensor, *,
             unwrapped_phase: Optional[np.ndarray] = None) -> np.ndarray:
    """Grad-CAM on the last conv layer for the noisy logit.

    Returns
    -------
    ndarray, shape (N, h, w), float32 in 0..1
    """
    x = _as_input(model, fields, unwrapped_phase)
    maps = _per_deciding_member(model.net.eval(), x, _grad_cam_maps)
    return _normalise(maps, tuple(x.shape[-2:]))


def _grad_cam_maps(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of one single network, (B, h', w')."""
    with torch.enable_grad():
        a = net.feature_maps(x)
        a.retain_grad()
        logit = net.head(net.pool(a).flatten(1))
        logit.sum().backward()
        weights = a.grad.mean(dim=(2, 3), keepdim=True)
        maps = F.relu((weights * a).sum(dim=1))
    net.zero_grad(set_to_none=True)
    return maps


@contextlib.contextmanager
def _guided_relus(net: nn.Module) -> Iterator[None]:
    """Make every ReLU pass only positive gradients backwards (guided back-propagation)."""
    handles = []
    for m in net.modules():
        if isinstance(m, nn.ReLU):
            handles.append(m.register_full_backward_hook(
                lambda mod, gin, gout: (gin[0].clamp_min(0),) if gin[0] is not None else gin))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def guided_backprop(model: ScreeningModel, fields: np.ndarray | torch.Tensor, *,
                    unwrapped_phase: Optional[np.ndarray] = None) -> np.ndarray:
    """Guided back-propagation of the noisy logit to the input, absolute value, max over the image channels.

    Returns
    -------
    ndarray, shape (N, h, w), float32 in 0..1
    """
    x = _as_input(model, fields, unwrapped_phase).clone().requires_grad_(True)
    net = model.net.eval()
    with torch.enable_grad(), _guided_relus(net):
        logit = net.logits(x)
        logit.sum().backward()
    images = x.grad[:, :2] if model.input_kind in SPECTRUM_KINDS else x.grad  # the spectrum is no image
    g = images.abs().amax(dim=1)
    net.zero_grad(set_to_none=True)
    return _normalise(g, tuple(x.shape[-2:]))


def saliency_maps(model: ScreeningModel, fields: np.ndarray | torch.Tensor, *,
                  methods: tuple[str, ...] = SALIENCY_METHODS,
                  unwrapped_phase: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """Several saliency maps at once: ``{"cam": ..., "grad_cam": ..., "guided_backprop": ...}``.

    Each value has shape (N, h, w), float32 in 0..1, h = w = the model's crop size.
    """
    funcs = {"cam": cam, "grad_cam": grad_cam, "guided_backprop": guided_backprop}
    unknown = [m for m in methods if m not in funcs]
    if unknown:
        raise ValueError(f"unknown saliency methods {unknown}; choose from {SALIENCY_METHODS}")
    x = _as_input(model, fields, unwrapped_phase)
    return {m: funcs[m](model, x) for m in methods}
