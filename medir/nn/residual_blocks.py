"""Convolutional residual blocks of EDSR (Lim et al., CVPRW 2017) and RCAN (Zhang et al., ECCV 2018)."""

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: x + res_scale * conv(relu(conv(x))) (figure 2c of EDSR).

    (B, C, H, W) -> (B, C, H, W). EDSR's large model uses res_scale 0.1 (section 3.2).
    """

    def __init__(self, channels: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y * self.res_scale if self.res_scale != 1 else x + y


class ChannelAttention(nn.Module):
    """RCAN channel attention (section 3.3, equations 5-6): x * sigmoid(W_U relu(W_D pool(x))).

    Global average pool, 1x1 conv C -> C/r, ReLU, 1x1 conv C/r -> C, sigmoid. (B, C, H, W) -> same.
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x.mean(dim=(2, 3), keepdim=True))


class RCAB(nn.Module):
    """Residual channel attention block (RCAN figure 4, equation 7): x + CA(conv(relu(conv(x))))."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels),
            ChannelAttention(channels, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """RCAN residual group (figure 2, equation 3): x + conv(RCAB^n(x)) (short skip connection)."""

    def __init__(self, channels: int, blocks: int, reduction: int = 16):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(channels, reduction) for _ in range(blocks)], conv3x3(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
