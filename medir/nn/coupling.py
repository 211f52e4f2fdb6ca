"""Invertible detail branch (MFdiff section 3.1.1, equation 4; built like CDDFuse's detail encoder).

The features ``F`` (B, C, H, W) are split along channels into halves ``(f, l)``; each affine coupling layer maps

    f' = f * exp(rho(l)) + eta(l),    l' = l                      (MFdiff equation 4)

with ``rho`` and ``eta`` MobileNetV2 inverted residual blocks (Sandler et al. 2018). The inverse is
``f = (f' - eta(l')) * exp(-rho(l'))``, exact up to floating point. Equation 4 alone would never change ``l``,
so (our choice, the paper is silent) the halves swap after every layer: three layers transform both halves.
"""

from __future__ import annotations

import torch
from torch import nn


class InvertedResidual(nn.Module):
    """MobileNetV2 block without batch norm: 1x1 expand -> ReLU6 -> 3x3 depthwise -> ReLU6 -> 1x1 project.

    (B, C, H, W) -> (B, C, H, W); the last 1x1 convolution starts at zero when ``zero_init`` (so a coupling
    layer starts as the identity).
    """

    def __init__(self, channels: int, *, expand: int = 2, zero_init: bool = True):
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU6(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(hidden, hidden, 3, groups=hidden, bias=False), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )
        if zero_init:
            nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class AffineCoupling(nn.Module):
    """One layer of equation 4 on ``(f, l)``, halves of ``channels`` each; ``inverse`` undoes ``forward``."""

    def __init__(self, half: int, *, expand: int = 2, zero_init: bool = True):
        super().__init__()
        self.rho = InvertedResidual(half, expand=expand, zero_init=zero_init)
        self.eta = InvertedResidual(half, expand=expand, zero_init=zero_init)

    def forward(self, f: torch.Tensor, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return f * torch.exp(self.rho(l)) + self.eta(l), l

    def inverse(self, f: torch.Tensor, l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (f - self.eta(l)) * torch.exp(-self.rho(l)), l


class DetailBranch(nn.Module):
    """``layers`` affine couplings with a swap of halves after each: (B, C, H, W) -> (B, C, H, W), invertible.

    ``channels`` must be even. ``forward(x)`` gives the detail features D; ``inverse(D)`` returns x.
    """

    def __init__(self, channels: int, *, layers: int = 3, expand: int = 2, zero_init: bool = True):
        super().__init__()
        if channels % 2:
            raise ValueError(f"channels={channels}: the detail branch splits channels in halves, use an even number")
        self.layers = nn.ModuleList(AffineCoupling(channels // 2, expand=expand, zero_init=zero_init)
                                    for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, l = x.chunk(2, dim=1)
        for layer in self.layers:
            f, l = layer(f, l)
            f, l = l, f
        return torch.cat([f, l], dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        f, l = y.chunk(2, dim=1)
        for layer in reversed(self.layers):
            f, l = l, f
            f, l = layer.inverse(f, l)
        return torch.cat([f, l], dim=1)
