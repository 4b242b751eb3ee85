"""Exponential moving average of a network's weights, for validation and the checkpoint choice.

Shared by the trainings of the learned regulariser and of the screening network.

References
----------
B. T. Polyak and A. B. Juditsky, "Acceleration of stochastic approximation by averaging",
SIAM J. Control Optim. 30, 838 (1992).
"""

from __future__ import annotations

import copy

import torch

__all__ = ["WeightEMA"]


class WeightEMA:
    """Exponential moving average of a network's weights (Polyak averaging) for the checkpoint choice.

    ``decay_t = min(decay, (1 + t) / (10 + t))`` at update ``t`` (a short warm-up, so that the
    average does not remember the initial weights for ``1/(1 − decay)`` steps). Buffers (batch-norm
    running statistics) are copied, not averaged.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.net = copy.deepcopy(net).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for pe, p in zip(self.net.parameters(), net.parameters()):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.net.buffers(), net.buffers()):
            be.copy_(b)
        self.updates += 1
