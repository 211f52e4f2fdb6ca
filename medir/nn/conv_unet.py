"""Plain convolutional U-Net pieces (Ronneberger et al., MICCAI 2015; FBPConvNet, Jin et al. 2017)."""

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two (3x3 conv, [batch norm], ReLU): (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = False):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ConvEncoder(nn.Module):
    """Levels of DoubleConv, 2x2 max-pool between them, width doubling per level.

    (B, C, H, W) -> (bottom (B, width * 2^L, H / 2^L, W / 2^L), skips at levels 0..L-1).
    """

    def __init__(self, in_channels: int, width: int, levels: int, batch_norm: bool = False):
        super().__init__()
        widths = [width * 2**i for i in range(levels + 1)]
        self.blocks = nn.ModuleList(
            DoubleConv(c_in, c_out, batch_norm) for c_in, c_out in zip([in_channels] + widths[:-1], widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.blocks[:-1]:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        return self.blocks[-1](x), skips


class ConvDecoder(nn.Module):
    """2x2 transposed conv up (halving width), concatenate the skip, DoubleConv; L levels.

    (B, C, h, w) and skips -> (B, C / 2^L, h * 2^L, w * 2^L).
    """

    def __init__(self, channels: int, levels: int, batch_norm: bool = False):
        super().__init__()
        widths = [channels // 2**i for i in range(levels + 1)]
        self.ups = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in widths[:-1])
        self.blocks = nn.ModuleList(DoubleConv(c, c // 2, batch_norm) for c in widths[:-1])
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for up, block, skip in zip(self.ups, self.blocks, reversed(skips)):
            x = block(torch.cat([up(x), skip], dim=1))
        return x
