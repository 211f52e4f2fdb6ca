"""Mask average pooling (MAP), equation 4 of SPD-VFM, and the mask dropout that goes with it.

``M(F, S)_p = mean of F_q over the pixels q with S(q) = S(p)``: every feature vector is replaced by the
mean of its region. ``S`` is a label map that tiles the image (:mod:`medir.priors`): label 0 is the
background / "in no mask" region and gets one shared mean like any other label (as SAM-Deblur pools the
uncovered pixels together). Regions are label values, not connected components; label values may be
absent from an image (a semantic class outside a crop) and each image of a batch may have its own
number of regions. Everything is one ``scatter_add`` per batch, no loop over regions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _flat_labels(labels: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """``(B, H, W)`` labels (resized to ``size`` by nearest neighbour) -> batch-offset flat ids ``(B*H*W,)``
    and the number of ids per image ``L`` (largest label + 1)."""
    if labels.ndim != 3:
        raise ValueError(f"labels must be (B, H, W), got shape {tuple(labels.shape)}")
    labels = resize_labels(labels, size).long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("labels must be >= 0 (0 = background / uncovered)")
    per_image = int(labels.max()) + 1 if labels.numel() else 1
    offsets = torch.arange(labels.shape[0], device=labels.device).view(-1, 1, 1) * per_image
    return (labels + offsets).reshape(-1), per_image


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` integer labels -> ``(B, *size)`` by nearest neighbour (never interpolated)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].to(labels.dtype)


def region_means(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-region mean features: ``features (B, C, H, W)``, ``labels (B, H, W)`` ->
    ``means (B, L, C)`` and pixel ``counts (B, L)`` (0 for a label absent from an image; its mean is 0)."""
    b, c, h, w = features.shape
    flat, per_image = _flat_labels(labels, (h, w))
    x = features.permute(0, 2, 3, 1).reshape(-1, c)
    sums = x.new_zeros(b * per_image, c).index_add_(0, flat, x)
    counts = torch.bincount(flat, minlength=b * per_image).to(x.dtype)
    means = sums / counts.clamp_min(1.0)[:, None]
    return means.view(b, per_image, c), counts.view(b, per_image)


def mask_average_pool(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Equation 4: ``features (B, C, H, W)``, ``labels (B, h, w)`` int -> ``(B, C, H, W)``, each pixel's
    feature replaced by the mean over its region. Labels of another size are resized by nearest neighbour."""
    b, c, h, w = features.shape
    means, _ = region_means(features, labels)
    flat, per_image = _flat_labels(labels, (h, w))
    pooled = means.reshape(b * per_image, c)[flat]
    return pooled.view(b, h, w, c).permute(0, 3, 1, 2)


def drop_regions(labels: torch.Tensor, p: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask dropout: in each image, ``floor(p * M)`` of its ``M`` present non-zero regions, drawn at random,
    join the background (label 0), so their pixels share the uncovered region's mean (SAM-Deblur's rule).
    ``labels (B, H, W)`` -> new labels; ``p = 0`` returns the input unchanged."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"mask dropout p={p} must be in [0, 1]")
    if p == 0.0:
        return labels
    out = labels.clone()
    for i in range(labels.shape[0]):
        present = torch.unique(labels[i])
        present = present[present != 0]
        n_drop = int(p * present.numel())
        if n_drop == 0:
            continue
        order = torch.randperm(present.numel(), generator=generator, device="cpu")[:n_drop]
        dropped = present[order.to(present.device)]
        out[i][torch.isin(labels[i], dropped)] = 0
    return out


class MaskAveragePool(nn.Module):
    """:func:`mask_average_pool` with mask dropout ``p`` in training mode (``p = 0``: none; eval: none)."""

    def __init__(self, *, dropout: float = 0.5):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"mask dropout {dropout} must be in [0, 1]")
        self.dropout = dropout

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout > 0:
            labels = drop_regions(labels, self.dropout)
        return mask_average_pool(features, labels)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"
