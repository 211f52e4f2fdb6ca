"""Encoder and decoder halves of NAFNet's U-Net, reusable around any bottleneck (NAFNet, RAT)."""

import torch
from torch import nn

from medir.nn.naf import naf_stage
from medir.nn.sampling import PixelShuffleUp, StridedConvDown


class NAFEncoder(nn.Module):
    """Stages of NAFBlocks, each followed by a 2x2 stride-2 conv doubling the width.

    (B, width, H, W) -> ((B, width * 2^L, H / 2^L, W / 2^L), skips) with L = len(blocks);
    ``skips[i]`` is the output of stage i, (B, width * 2^i, H / 2^i, W / 2^i).
    """

    def __init__(self, width: int, blocks: list[int], dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0):
        super().__init__()
        self.stages = nn.ModuleList()
        self.downs = nn.ModuleList()
        chan = width
        for n in blocks:
            self.stages.append(naf_stage(chan, n, dw_expand, ffn_expand, dropout))
            self.downs.append(StridedConvDown(chan))
            chan *= 2
        self.out_channels = chan

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for stage, down in zip(self.stages, self.downs):
            x = stage(x)
            skips.append(x)
            x = down(x)
        return x, skips


class NAFDecoder(nn.Module):
    """Mirror of :class:`NAFEncoder`: 1x1 conv + PixelShuffle up, additive skip, stage of NAFBlocks.

    (B, C, h, w) and the encoder's skips -> (B, C / 2^L, h * 2^L, w * 2^L).
    """

    def __init__(self, channels: int, blocks: list[int], dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0):
        super().__init__()
        self.ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        chan = channels
        for n in blocks:
            self.ups.append(PixelShuffleUp(chan))
            chan //= 2
            self.stages.append(naf_stage(chan, n, dw_expand, ffn_expand, dropout))
        self.out_channels = chan

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for up, stage, skip in zip(self.ups, self.stages, reversed(skips)):
            x = stage(up(x) + skip)
        return x
