"""RAT's focal region loss (equation 5 of Yang et al., "Region Attention Transformer for Medical Image
Restoration", MICCAI 2024).

    L_FR = sum_i (1 + gamma w_i) |I^_{M_i} - I_{M_i}|,   w_i = e_i^delta / max_j e_j^delta

where ``e_i`` is the mean absolute error of region ``i`` (detached: the weights steer the loss, they are
not optimised) and the max runs over the regions of the same image. We average over pixels instead of
summing, so ``gamma = 0`` gives exactly the mean L1 loss. The paper trains with ``gamma = 1e-3`` and
``delta = 1``, which is within 0.1 % of plain L1.

Choices where the official code differs: it normalises by the maximum over the whole batch (we use each
image's own regions, as the equation does) and it has no ``delta`` (it is ``delta = 1``).
"""

from __future__ import annotations

import torch
from torch import nn


def region_weights(error: torch.Tensor, labels: torch.Tensor, *, delta: float = 1.0) -> torch.Tensor:
    """``w`` of equation 5 per pixel: ``(B, C, H, W)`` absolute error and ``(B, H, W)`` int labels ->
    ``(B, 1, H, W)`` in ``[0, 1]``, constant within each region of each image (0 where an image has no error)."""
    b = error.shape[0]
    e = error.detach().mean(dim=1).reshape(b, -1).double()
    lab = labels.reshape(b, -1).long()
    lab = lab - lab.min(dim=1, keepdim=True).values
    span = int(lab.max()) + 1
    keys = lab + torch.arange(b, device=lab.device)[:, None] * span  # one id per (image, region)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    sums = torch.zeros(uniq.numel(), dtype=e.dtype, device=e.device).index_add_(0, inverse.view(-1), e.view(-1))
    counts = torch.bincount(inverse.view(-1), minlength=uniq.numel()).to(e.dtype)
    mean = (sums / counts).pow(delta)
    owner = uniq // span
    peak = torch.zeros(b, dtype=e.dtype, device=e.device).scatter_reduce(0, owner, mean, "amax", include_self=True)
    w = torch.where(peak[owner] > 0, mean / peak[owner].clamp_min(1e-300), torch.zeros_like(mean))
    return w.clamp(0, 1)[inverse].view(b, 1, *labels.shape[-2:]).to(error.dtype)


def focal_region_loss(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, *, gamma: float = 1e-3,
                      delta: float = 1.0) -> torch.Tensor:
    """Equation 5, averaged over pixels: ``mean(|pred - target| * (1 + gamma * w))``.

    ``pred``, ``target``: ``(B, C, H, W)``; ``labels``: ``(B, H, W)`` int regions of the target's grid.
    """
    if labels.shape != (pred.shape[0], *pred.shape[-2:]):
        raise ValueError(f"focal region loss: labels {tuple(labels.shape)} do not fit images {tuple(pred.shape)}")
    error = (pred - target).abs()
    if gamma == 0:
        return error.mean()
    return (error * (1 + gamma * region_weights(error, labels, delta=delta))).mean()


class FocalRegionLoss(nn.Module):
    """Module wrapper of :func:`focal_region_loss` with fixed ``gamma`` and ``delta``."""

    def __init__(self, gamma: float = 1e-3, delta: float = 1.0):
        super().__init__()
        self.gamma, self.delta = gamma, delta

    def forward(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return focal_region_loss(pred, target, labels, gamma=self.gamma, delta=self.delta)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}, delta={self.delta:g}"
