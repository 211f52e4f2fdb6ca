"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022)."""

import torch
from torch import nn

from medir.errors import ConfigError
from medir.models.args import record_args
from medir.nn.naf import naf_stage, set_pool_window
from medir.nn.naf_unet import NAFDecoder, NAFEncoder
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source, upsample_input


class NAFNet(nn.Module):
    """U-Net of NAFBlocks with additive skips and a global residual (figure 3 of the paper).

    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale), any H, W (reflect
    padding to a multiple of 2^len(enc_blocks), cropped back). The paper restores at
    the output size, so scale > 1 runs on the bicubically pre-upsampled input. The
    global residual adds back the first out_channels input channels.

    Args:
        in_channels: image channels plus any conditioning channels.
        out_channels: image channels.
        scale: 1, 2 or 4 (pre-upsampled input for 2 and 4).
        width: channels after the intro conv (paper: 32 or 64).
        enc_blocks: NAFBlocks per encoder level; each level halves the resolution.
        middle_blocks: NAFBlocks at the bottleneck.
        dec_blocks: NAFBlocks per decoder level; as many levels as the encoder.
        dw_expand, ffn_expand, dropout: NAFBlock settings (paper: 2, 2, 0).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 1,
        width: int = 32,
        enc_blocks: list[int] = (2, 2, 4, 8),
        middle_blocks: int = 12,
        dec_blocks: list[int] = (2, 2, 2, 2),
        dw_expand: int = 2,
        ffn_expand: int = 2,
        dropout: float = 0.0,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 4), "nafnet")
        if len(enc_blocks) != len(dec_blocks):
            raise ConfigError(f"enc_blocks and dec_blocks need the same length, got {enc_blocks} and {dec_blocks}")
        self.out_channels = out_channels
        self.scale = scale
        self.multiple = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = NAFEncoder(width, list(enc_blocks), dw_expand, ffn_expand, dropout)
        self.middle = naf_stage(self.encoder.out_channels, middle_blocks, dw_expand, ffn_expand, dropout)
        self.decoder = NAFDecoder(self.encoder.out_channels, list(dec_blocks), dw_expand, ffn_expand, dropout)
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)
        self.pool_window: int | None = None
        self.conv_radius = _conv_radius(list(enc_blocks), middle_blocks, list(dec_blocks))

    def set_local_pooling(self, window: int | None) -> None:
        """Pool channel attention over ``window`` x ``window`` pixels (of the network's input) in eval mode.

        None restores the paper's global pooling. Each level gets the window in its own
        pixels (window / 2^level), so every block pools the same patch of the image (TLC).
        """
        levels = len(self.encoder.stages)
        scaled = (lambda lvl: None) if window is None else (lambda lvl: max(1, window // 2**lvl))
        for lvl, stage in enumerate(self.encoder.stages):
            set_pool_window(stage, scaled(lvl))
        set_pool_window(self.middle, scaled(levels))
        for i, stage in enumerate(self.decoder.stages):
            set_pool_window(stage, scaled(levels - 1 - i))
        self.pool_window = window

    @property
    def tile_context(self) -> int:
        """Input pixels around a tile that reach its centre: the convolutions' receptive radius plus,
        with local pooling, the pooling window (measured on the shipped CT model: tiles with this
        context differ from the whole image by about 0.01 HU at most; benchmarks/tiling_memory.py)."""
        pixels = self.conv_radius + (self.pool_window or 0)
        return -(-pixels // self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = upsample_input(x, self.scale)
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.multiple)
        feats, skips = self.encoder(self.intro(padded))
        y = self.ending(self.decoder(self.middle(feats), skips))
        y = crop_to(y, h, w)
        base = residual_source(x, self.out_channels)
        return y if base is None else y + base


def _conv_radius(enc_blocks: list[int], middle_blocks: int, dec_blocks: list[int]) -> int:
    """Receptive radius (input pixels) of the convolutions: each NAFBlock's 3x3 depthwise conv and
    each 2x2 stride-2 down-sampling reach one pixel of their level (2^level input pixels); the
    intro and ending 3x3 convs one pixel each."""
    levels = len(enc_blocks)
    radius = 2 + middle_blocks * 2**levels
    for lvl, (enc, dec) in enumerate(zip(enc_blocks, reversed(dec_blocks))):
        radius += (enc + dec + 1) * 2**lvl
    return radius
