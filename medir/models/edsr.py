"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017)."""

import torch
from torch import nn

from medir.models.args import record_args
from medir.nn.meanshift import image_mean
from medir.nn.padding import check_scale, residual_source
from medir.nn.residual_blocks import ResBlock, conv3x3
from medir.nn.sampling import SRUpsampler


class EDSR(nn.Module):
    """Head conv, residual blocks + conv with a long skip, sub-pixel upsampler, conv (figure 3 of the paper).

    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale); fully convolutional, so
    no padding is needed. RGB images are shifted by the DIV2K mean (a fixed buffer; the
    reference's MeanShift convs hold 24 frozen parameters, not counted here). scale 1 (not
    in the paper) drops the upsampler and adds the input back (global residual).

    Args:
        features: width (paper: 64 baseline, 256 large).
        blocks: residual blocks (paper: 16 baseline, 32 large).
        res_scale: residual scaling (paper: 1 baseline, 0.1 large).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 2,
        features: int = 64,
        blocks: int = 16,
        res_scale: float = 1.0,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 3, 4), "edsr")
        self.out_channels, self.scale = out_channels, scale
        self.register_buffer("in_mean", image_mean(in_channels, out_channels), persistent=False)
        self.register_buffer("out_mean", image_mean(out_channels, out_channels), persistent=False)
        self.head = conv3x3(in_channels, features)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)], conv3x3(features, features))
        self.tail = nn.Sequential(SRUpsampler(scale, features), conv3x3(features, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x - self.in_mean)
        y = self.tail(self.body(y) + y)
        base = residual_source(x, self.out_channels) if self.scale == 1 else None
        return y + self.out_mean if base is None else y + base
