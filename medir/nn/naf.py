"""NAFNet's building blocks (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022)."""

import torch
from torch import nn

from medir.nn.norm import LayerNorm2d


class SimpleGate(nn.Module):
    """Split channels in half and multiply: (B, 2C, H, W) -> (B, C, H, W) (equation 3 of the paper)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SimplifiedChannelAttention(nn.Module):
    """x * W pool(x): global average pool, 1x1 conv, no nonlinearity (equation 4 of the paper).

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.proj(x.mean(dim=(2, 3), keepdim=True))


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block (figure 3c of the paper), (B, C, H, W) -> (B, C, H, W).

    Spatial half: LayerNorm -> 1x1 conv (C -> eC) -> 3x3 depthwise -> SimpleGate ->
    SCA -> 1x1 conv, added with a learnt per-channel scale beta (zero at init).
    Channel half: LayerNorm -> 1x1 (C -> fC) -> SimpleGate -> 1x1, scaled by gamma.

    Args:
        channels: C.
        dw_expand: e, the expansion before the depthwise conv (paper: 2).
        ffn_expand: f, the expansion of the feed-forward half (paper: 2).
        dropout: dropout rate after each half (paper: 0).
    """

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0):
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        self.sca = SimplifiedChannelAttention(dw // 2)
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.dropout1 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(self.norm1(x)))
        y = self.conv3(self.sca(self.sg(y)))
        x = x + self.dropout1(y) * self.beta
        y = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + self.dropout2(y) * self.gamma


def naf_stage(
    channels: int, blocks: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0
) -> nn.Sequential:
    """``blocks`` NAFBlocks in a row at width ``channels`` (an empty Sequential for 0)."""
    return nn.Sequential(*[NAFBlock(channels, dw_expand, ffn_expand, dropout) for _ in range(blocks)])
