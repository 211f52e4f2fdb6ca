"""Down- and up-samplers for U-Nets and super-resolution heads."""

import math

from torch import nn


class StridedConvDown(nn.Sequential):
    """2x2 conv with stride 2, C -> 2C channels: (B, C, H, W) -> (B, 2C, H/2, W/2). NAFNet's and RAT's downsampler."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__(nn.Conv2d(channels, out_channels or 2 * channels, 2, stride=2))


class PixelShuffleUp(nn.Sequential):
    """1x1 conv (no bias) C -> 2C, PixelShuffle(2): (B, C, H, W) -> (B, C/2, 2H, 2W). NAFNet's and RAT's upsampler."""

    def __init__(self, channels: int):
        super().__init__(nn.Conv2d(channels, channels * 2, 1, bias=False), nn.PixelShuffle(2))


class PixelUnshuffleDown(nn.Sequential):
    """3x3 conv C -> C/2 then PixelUnshuffle(2): (B, C, H, W) -> (B, 2C, H/2, W/2). Restormer's downsampler."""

    def __init__(self, channels: int, bias: bool = False):
        super().__init__(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=bias), nn.PixelUnshuffle(2))


class PixelShuffleUp3x3(nn.Sequential):
    """3x3 conv C -> 2C then PixelShuffle(2): (B, C, H, W) -> (B, C/2, 2H, 2W). Restormer's upsampler."""

    def __init__(self, channels: int, bias: bool = False):
        super().__init__(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=bias), nn.PixelShuffle(2))


class SRUpsampler(nn.Sequential):
    """Sub-pixel upsampler of EDSR, RCAN and SwinIR: (B, C, H, W) -> (B, C, sH, sW).

    For s = 2^n: n times (3x3 conv C -> 4C, PixelShuffle(2)); for s = 3: 3x3 conv
    C -> 9C, PixelShuffle(3) (Shi et al. 2016). Identity for s = 1.
    """

    def __init__(self, scale: int, channels: int):
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(channels, 9 * channels, 3, padding=1), nn.PixelShuffle(3)]
        elif scale > 1:
            steps = int(math.log2(scale))
            if 2**steps != scale:
                raise ValueError(f"SRUpsampler supports scale 1, 2^n and 3, not {scale}")
            for _ in range(steps):
                layers += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)]
        super().__init__(*layers)
