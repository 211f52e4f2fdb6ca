"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018)."""

import torch
from torch import nn

from medir.models.args import record_args
from medir.nn.meanshift import image_mean
from medir.nn.padding import check_scale, residual_source
from medir.nn.residual_blocks import ResidualGroup, conv3x3
from medir.nn.sampling import SRUpsampler


class RCAN(nn.Module):
    """Residual in residual: residual groups of RCABs, a long skip, sub-pixel upsampler (figure 2 of the paper).

    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale); fully convolutional. RGB
    images are shifted by the DIV2K mean (a fixed buffer; the reference's MeanShift convs hold
    24 parameters, not counted here). scale 1 (not in the paper) drops the upsampler and adds
    the input back (global residual).

    Args:
        features: width (paper: 64).
        groups: residual groups (paper: 10).
        blocks: RCABs per group (paper: 20).
        reduction: channel-attention reduction r (paper: 16).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 2,
        features: int = 64,
        groups: int = 10,
        blocks: int = 20,
        reduction: int = 16,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 3, 4), "rcan")
        self.out_channels, self.scale = out_channels, scale
        self.register_buffer("in_mean", image_mean(in_channels, out_channels), persistent=False)
        self.register_buffer("out_mean", image_mean(out_channels, out_channels), persistent=False)
        self.head = conv3x3(in_channels, features)
        self.body = nn.Sequential(
            *[ResidualGroup(features, blocks, reduction) for _ in range(groups)], conv3x3(features, features)
        )
        self.tail = nn.Sequential(SRUpsampler(scale, features), conv3x3(features, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x - self.in_mean)
        y = self.tail(self.body(y) + y)
        base = residual_source(x, self.out_channels) if self.scale == 1 else None
        return y + self.out_mean if base is None else y + base
