"""RAT (Yang et al., "Region Attention Transformer for Medical Image Restoration", MICCAI 2024).

A NAFNet U-Net (NAFBlocks, 2x2 stride-2 conv down, 1x1 conv + PixelShuffle up, additive skips, global
residual) whose bottleneck is a stack of RAT blocks (figure 1 of the paper). Each RAT layer is

    x = x + lambda_r * R-MSA(LN(x), regions);  x = x + MLP(LN(x))
    x = x + lambda_w * W-MSA(LN(x));            x = x + MLP(LN(x))

with zero-initialised per-channel scales lambda (so the network starts as a plain NAFNet), a conv MLP
(1x1, GELU, 1x1) and W-MSA in non-overlapping windows (no shift, no position bias) for exchange across
regions. A block is ``layers_per_block`` layers and a 3x3 conv with a residual; the bottleneck has a
residual around all blocks, as in the official code.

The region map is an input: ``forward(x, labels)`` with ``labels`` ``(B, H, W)`` at the input
resolution; ``forward(x)`` computes it from ``x`` itself with the segmenter the model was built with
(``segmenter``, by default the weight-free classical partition at SAM-like granularity), in the
physical units of its intensity preset, cached by image content (:mod:`medir.priors.region_maps`).
So ``medir restore --model`` needs only the image.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medir.errors import ConfigError
from medir.models.args import record_args
from medir.nn.naf_unet import NAFDecoder, NAFEncoder
from medir.nn.norm import LayerNorm2d
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source, upsample_input
from medir.nn.region_attention import SpatialAttention, downsample_labels


class ConvMLP(nn.Sequential):
    """1x1 conv (C -> ratio C), GELU, 1x1 conv back: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, dim: int, ratio: float):
        hidden = int(dim * ratio)
        super().__init__(nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1))


class RATLayer(nn.Module):
    """One RAT layer (see the module docstring): R-MSA (or MSA / W-MSA for ablations) then W-MSA."""

    def __init__(self, dim: int, heads: int, *, window_size: int, mlp_ratio: float, attention: str,
                 scaling: str, impl: str, block: int):
        super().__init__()
        first = dict(kind=attention, window_size=window_size, scaling=scaling, impl=impl, block=block)
        self.norm1, self.attn1 = LayerNorm2d(dim), SpatialAttention(dim, heads, **first)
        self.norm2, self.mlp1 = LayerNorm2d(dim), ConvMLP(dim, mlp_ratio)
        self.norm3 = LayerNorm2d(dim)
        self.attn2 = SpatialAttention(dim, heads, kind="window", window_size=window_size, scaling=scaling)
        self.norm4, self.mlp2 = LayerNorm2d(dim), ConvMLP(dim, mlp_ratio)
        self.lambda1 = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.lambda2 = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = x + self.lambda1 * self.attn1(self.norm1(x), labels)
        x = x + self.mlp1(self.norm2(x))
        x = x + self.lambda2 * self.attn2(self.norm3(x))
        return x + self.mlp2(self.norm4(x))


class RATBlock(nn.Module):
    """``layers`` RAT layers, a 3x3 conv and a residual: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, dim: int, layers: int, **layer_args):
        super().__init__()
        self.layers = nn.ModuleList([RATLayer(dim, **layer_args) for _ in range(layers)])
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y, labels)
        return x + self.conv(y)


class RAT(nn.Module):
    """RAT U-Net: (B, in_channels, H, W) [+ labels (B, H, W)] -> (B, out_channels, H*scale, W*scale), any H, W.

    Args:
        in_channels, out_channels: image channels.
        scale: 1, 2 or 4; scale > 1 runs on the bicubically pre-upsampled input (as NAFNet here; the
            paper's super-resolution task restores an already upsampled image at scale 1).
        width: channels after the intro conv (paper: 64); enc_blocks / dec_blocks: NAFBlocks per level
            (paper: [2, 2] and [2, 2]); the bottleneck runs at 1 / 2^len(enc_blocks) resolution.
        rat_blocks, layers_per_block: the bottleneck (paper: 4 blocks of 3 layers, N3 = 12).
        heads, window_size, mlp_ratio: attention heads (8), W-MSA window (4), MLP ratio (2).
        attention: ``region`` (R-MSA, the paper), ``global`` (MSA) or ``window`` (W-MSA) for the first
            attention of each layer, the paper's ablation (equal parameters).
        scaling: ``head_dim`` (default, standard) or ``heads`` (the official code's num_heads ** -0.5).
        impl, block: the R-MSA implementation (:data:`medir.nn.region_attention.REGION_ATTENTION`).
        segmenter: the segmenter spec used when no labels are given (``classical``, ``sam:PATH``,
            ``medsam:PATH``, ...); max_regions: the classical partition's granularity per 512 x 512.
        modality, intensity: what the segmenter is told the image is, and the intensity preset name
            that maps network space back to physical units (set by the training method).
        checkpoint: recompute the encoder, each RAT block and the decoder in the backward pass instead of
            storing their activations (less training memory, about one more forward of time).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        scale: int = 1,
        width: int = 64,
        enc_blocks: list[int] = (2, 2),
        dec_blocks: list[int] = (2, 2),
        rat_blocks: int = 4,
        layers_per_block: int = 3,
        heads: int = 8,
        window_size: int = 4,
        mlp_ratio: float = 2.0,
        attention: Literal["region", "global", "window"] = "region",
        scaling: Literal["head_dim", "heads"] = "head_dim",
        impl: str = "sorted",
        block: int = 256,
        segmenter: str = "classical",
        max_regions: int | None = 40,
        modality: str = "OT",
        intensity: str | None = None,
        checkpoint: bool = False,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 4), "rat")
        if len(enc_blocks) != len(dec_blocks):
            raise ConfigError(f"enc_blocks and dec_blocks need the same length, got {enc_blocks} and {dec_blocks}")
        self.out_channels, self.scale, self.attention = out_channels, scale, attention
        self.factor = 2 ** len(enc_blocks)
        self.multiple = self.factor * window_size
        self.segmenter, self.max_regions, self.modality, self.intensity = segmenter, max_regions, modality, intensity
        self.checkpoint = checkpoint
        self._region_maps = None
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = NAFEncoder(width, list(enc_blocks))
        dim = self.encoder.out_channels
        try:
            self.middle = nn.ModuleList([
                RATBlock(dim, layers_per_block, heads=heads, window_size=window_size, mlp_ratio=mlp_ratio,
                         attention=attention, scaling=scaling, impl=impl, block=block) for _ in range(rat_blocks)
            ])
        except ValueError as err:
            raise ConfigError(f"rat: {err}") from err
        self.decoder = NAFDecoder(dim, list(dec_blocks))
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)

    @property
    def needs_regions(self) -> bool:
        return self.attention == "region"

    @property
    def region_maps(self):
        """The :class:`medir.priors.region_maps.RegionMaps` that labels images given without labels."""
        if self._region_maps is None:
            from medir.data.intensity import get_preset
            from medir.priors.region_maps import RegionMaps, make_segmenter

            preset = get_preset(self.intensity).to_dict() if self.intensity else None
            self._region_maps = RegionMaps(make_segmenter(self.segmenter, max_regions=self.max_regions),
                                           modality=self.modality, intensity=preset)
        return self._region_maps

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) network space; labels: (B, H, W) int regions of x, or None to compute them."""
        if self.needs_regions and labels is None:
            labels = self.region_maps(x) if not x.is_meta else x.new_zeros(x.shape[0], *x.shape[-2:], dtype=torch.long)
        x = upsample_input(x, self.scale)
        h, w = x.shape[-2:]
        feats, skips = self._run(self.encoder, self.intro(pad_to_multiple(x, self.multiple)))
        tokens = self.bottleneck_labels(labels, h, w) if self.needs_regions else None
        y = feats
        for blk in self.middle:
            y = self._run(blk, y, tokens)
        y = self.ending(self._run(self.decoder, y + feats, skips))
        y = crop_to(y, h, w)
        base = residual_source(x, self.out_channels)
        return y if base is None else y + base

    def _run(self, module: nn.Module, *args):
        """``module(*args)``, recomputed in the backward pass instead of stored when ``checkpoint`` is on."""
        if self.checkpoint and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(module, *args, use_reentrant=False)
        return module(*args)

    def bottleneck_labels(self, labels: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, h/scale, w/scale) labels -> (B, H', W') at the bottleneck: nearest up by ``scale``, padded like
        the image (reflect), nearest down by 2^levels (equation 2)."""
        if labels.shape[-2:] != (h // self.scale, w // self.scale):
            raise ValueError(f"labels of shape {tuple(labels.shape[-2:])} do not match the input "
                             f"{(h // self.scale, w // self.scale)}")
        lab = labels.long()
        if self.scale > 1:
            lab = lab.repeat_interleave(self.scale, -2).repeat_interleave(self.scale, -1)
        lab = pad_to_multiple(lab[:, None].float(), self.multiple)[:, 0].long()  # exact: labels < 2^24
        return downsample_labels(lab, self.factor)


def rat_param_count(**kw) -> int:
    """Trainable parameters of ``RAT(**kw)`` built on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in RAT(**kw).parameters() if p.requires_grad)


__all__ = ["RAT", "RATBlock", "RATLayer", "rat_param_count"]
