"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022)."""

import torch
from torch import nn

from medir.errors import ConfigError
from medir.models.args import record_args
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source, upsample_input
from medir.nn.sampling import PixelShuffleUp3x3, PixelUnshuffleDown
from medir.nn.transposed_attention import restormer_stage


class Restormer(nn.Module):
    """Encoder-decoder of MDTA/GDFN transformer blocks with refinement blocks (figure 2 of the paper).

    Levels l = 0..L-1 run at width dim * 2^l and resolution H / 2^l; the last level is the
    latent. Decoder levels concatenate the skip and reduce channels by a 1x1 conv, except
    level 0, which keeps 2*dim channels, as do the refinement blocks. Global residual.
    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale), any H, W (reflect padding
    to a multiple of 2^(L-1)); scale > 1 restores the bicubically pre-upsampled input.

    Args:
        dim: width of level 0 (paper: 48).
        blocks: transformer blocks per level, latent last (paper: [4, 6, 6, 8]).
        refinement_blocks: blocks after the decoder (paper: 4).
        heads: attention heads per level (paper: [1, 2, 4, 8]).
        ffn_expansion: GDFN expansion factor (paper: 2.66).
        bias: biases in convs (paper: False).
        norm_bias: "WithBias" LayerNorm (True, paper default) or "BiasFree" (False, its denoisers).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 1,
        dim: int = 48,
        blocks: list[int] = (4, 6, 6, 8),
        refinement_blocks: int = 4,
        heads: list[int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        bias: bool = False,
        norm_bias: bool = True,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 4), "restormer")
        if len(blocks) != len(heads) or len(blocks) < 2:
            raise ConfigError(f"blocks and heads need the same length >= 2, got {blocks} and {heads}")
        self.out_channels, self.scale = out_channels, scale
        levels = len(blocks)
        self.multiple = 2 ** (levels - 1)
        stage = lambda c, n, h: restormer_stage(c, n, h, ffn_expansion, bias, norm_bias)  # noqa: E731
        self.patch_embed = nn.Conv2d(in_channels, dim, 3, padding=1, bias=bias)
        self.encoders = nn.ModuleList(stage(dim * 2**i, blocks[i], heads[i]) for i in range(levels - 1))
        self.downs = nn.ModuleList(PixelUnshuffleDown(dim * 2**i) for i in range(levels - 1))
        self.latent = stage(dim * 2 ** (levels - 1), blocks[-1], heads[-1])
        self.ups = nn.ModuleList(PixelShuffleUp3x3(dim * 2 ** (i + 1)) for i in reversed(range(levels - 1)))
        self.reduces = nn.ModuleList(
            nn.Conv2d(dim * 2 ** (i + 1), dim * 2**i, 1, bias=bias) for i in reversed(range(1, levels - 1))
        )
        self.decoders = nn.ModuleList(
            stage(dim * 2 ** max(i, 1), blocks[i], heads[i]) for i in reversed(range(levels - 1))
        )
        self.refinement = stage(dim * 2, refinement_blocks, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = upsample_input(x, self.scale)
        h, w = x.shape[-2:]
        y = self.patch_embed(pad_to_multiple(x, self.multiple))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        y = self.latent(y)
        for i, (up, decoder) in enumerate(zip(self.ups, self.decoders)):
            y = torch.cat([up(y), skips[-1 - i]], dim=1)
            if i < len(self.reduces):
                y = self.reduces[i](y)
            y = decoder(y)
        y = crop_to(self.output(self.refinement(y)), h, w)
        base = residual_source(x, self.out_channels)
        return y if base is None else y + base
