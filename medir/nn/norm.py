"""Normalisation layers for channel-first feature maps."""

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel axis of a (B, C, H, W) map.

    Every pixel's C-vector is normalised to zero mean and unit variance, then
    scaled and shifted per channel: the LayerNorm2d of NAFNet (Chen et al. 2022,
    section 3.2) and the "WithBias" LayerNorm of Restormer (Zamir et al. 2022).
    ``bias=False`` gives Restormer's "BiasFree" variant, which divides by the
    standard deviation without subtracting the mean (as its reference code does).

    Args:
        channels: C.
        eps: added to the variance (NAFNet 1e-6, Restormer 1e-5).
        bias: learn a shift and subtract the mean (True) or neither (False).
    """

    def __init__(self, channels: int, eps: float = 1e-6, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        # Two plain means over dim 1: torch.var_mean over a non-innermost dim is several
        # times slower on CPU (measured), and this is NAFNet's hottest op.
        centred = x - x.mean(dim=1, keepdim=True)
        inv_std = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        weight = self.weight.view(1, -1, 1, 1)
        if self.bias is None:
            return x * inv_std * weight
        return torch.addcmul(self.bias.view(1, -1, 1, 1), centred * inv_std, weight)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, bias={self.bias is not None}"
