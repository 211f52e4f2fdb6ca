"""Semantic Prior Integration (SPD-VFM section III-C): the teacher f^IR2 that sees segmentation priors.

``I2 = f_IR2(Concat[I, P])`` (equation 6; the image comes first so every backbone's global residual adds
back the image), where ``P`` is built from the teacher's own encoder features ``F = E(I)`` and the label
map ``S`` of the high-quality image:

- ``spi`` (the paper): ``P = M(F, S)``, mask average pooling (equation 4, :mod:`medir.nn.mask_pooling`)
  with mask dropout in training (half of an image's regions join the background, SAM-Deblur's 0.5);
- ``cat`` (Table VI's concatenation baseline, after "Let segment anything help image dehaze"):
  ``P = Concat[F, code(S)]``, the unpooled features and the label map as one grey channel.

``E`` is SAM-Deblur's shape (3x3 conv then 1x1 conv to ``C`` channels) with a GELU between them, so that the
frozen encoder is a (shallow) non-linear feature network for the Semantic Consistency Module when no VGG
weights are given. The backbone is any architecture of :mod:`medir.models`, built with
``in_channels = channels + prior_channels``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medir.nn.mask_pooling import MaskAveragePool, resize_labels

Prior = Literal["spi", "cat"]


class SemanticEncoder(nn.Module):
    """``E``: ``(B, channels, H, W)`` -> ``(B, features, H, W)``; 3x3 conv, GELU, 1x1 conv."""

    def __init__(self, channels: int, features: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, features, 3, padding=1), nn.GELU(), nn.Conv2d(features, features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def label_code(labels: torch.Tensor) -> torch.Tensor:
    """The label map as a grey image: ``(B, H, W)`` int -> ``(B, 1, H, W)`` in ``[0, 1]`` (label / largest label
    of the image; an image of one region is 0)."""
    top = labels.flatten(1).amax(dim=1).clamp_min(1).view(-1, 1, 1)
    return (labels.float() / top)[:, None]


def prior_channels(prior: Prior, features: int) -> int:
    """Channels ``P`` adds to the backbone's input."""
    if prior not in ("spi", "cat"):
        raise ValueError(f"unknown prior '{prior}': use spi (mask average pooling) or cat (concatenation)")
    return features if prior == "spi" else features + 1


class PriorTeacher(nn.Module):
    """f^IR2: ``forward(image (B, C, H, W), labels (B, H, W)) -> (B, C, H, W)`` (equation 6)."""

    def __init__(self, backbone: nn.Module, encoder: SemanticEncoder, *, prior: Prior = "spi", mask_dropout: float = 0.5):
        super().__init__()
        prior_channels(prior, 1)
        self.backbone, self.encoder, self.prior = backbone, encoder, prior
        self.pool = MaskAveragePool(dropout=mask_dropout)

    def priors(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``P``: ``(B, prior_channels, H, W)``."""
        feats = self.encoder(image)
        labels = resize_labels(labels, feats.shape[-2:])
        if self.prior == "spi":
            return self.pool(feats, labels)
        return torch.cat([feats, label_code(labels).to(feats)], dim=1)

    def forward(self, image: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.backbone(torch.cat([image, self.priors(image, labels)], dim=1))
