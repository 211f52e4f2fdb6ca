"""LRformer (arXiv:2504.11286; only the abstract is public): a lightweight transformer guided by a reliable prior.

The prior (:class:`medir.priors.reliability.ReliablePriorProducer`, RLPP) is computed inside the
network from its own input, so inference needs nothing but the image: ``forward(x) =
restore(x, prior_for(x))``. Choices where the abstract is silent are documented in
docs/methods/lrformer.md (U-Net of Restormer levels, FFTformer's 8x8 patches, GDFN feed-forward).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import torch
from torch import nn

from medir.errors import ConfigError
from medir.models.args import record_args
from medir.nn.frequency_attention import GuidedFrequencyCrossAttention, SpatialCrossAttention
from medir.nn.norm import LayerNorm2d
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source, upsample_input
from medir.nn.sampling import PixelShuffleUp3x3, PixelUnshuffleDown
from medir.nn.transposed_attention import GDFN
from medir.priors.reliability import PRIOR_CHANNELS

PRIOR_CACHE_ENV = "MEDIR_PRIOR_CACHE"


class GuidedBlock(nn.Module):
    """``x + A(LN(x), p)`` then ``x + GDFN(LN(x))``; ``A`` is GFCA or spatial cross-attention, and the key
    comes from the prior features ``p`` (B, C, H, W), or from ``LN(x)`` itself when ``p`` is None
    (self-guided: FFTformer's frequency self-attention). (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, *, attention: str, patch: int, expansion: float, ffn_expansion: float,
                 heads: int):
        super().__init__()
        self.norm1 = LayerNorm2d(channels, eps=1e-5)
        if attention == "gfca":
            self.attn = GuidedFrequencyCrossAttention(channels, patch=patch, expansion=expansion)
        else:
            self.attn = SpatialCrossAttention(channels, patch=patch, expansion=expansion, heads=heads)
        self.norm2 = LayerNorm2d(channels, eps=1e-5)
        self.ffn = GDFN(channels, ffn_expansion)

    def forward(self, x: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y if p is None else p)
        return x + self.ffn(self.norm2(x))


class GuidedStage(nn.ModuleList):
    """``n`` guided blocks sharing one prior map."""

    def forward(self, x: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        for block in self:
            x = block(x, p)
        return x


class LRformer(nn.Module):
    """U-Net of guided blocks; level l has width dim * 2^l at resolution H / 2^l, the last level is the latent.

    The prior ``(B, 3, H, W)`` is embedded by a 3x3 conv and brought down the levels by its own
    PixelUnshuffle downsamplers, so every level's blocks get prior features of their size and width.
    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale), any H, W; scale > 1 restores the
    bicubically pre-upsampled input (the prior is computed on that). Global residual.

    Args:
        dim, blocks (per level, latent last), refinement_blocks, heads (spatial attention only).
        attention: ``gfca`` (frequency) or ``spatial`` (window softmax) cross-attention; ``patch``: their window.
        expansion: attention hidden width / C; ffn_expansion: GDFN's.
        prior: ``reliable`` (RLPP), ``raw`` (one segmenter pass) or ``none`` (self-guided blocks).
        segmenter: spec string (``classical``, ``medsam:PATH``, ...; see :mod:`medir.priors`); ``boxes``:
        MedSAM's prompt (``body`` or ``image``); samples, rate, placement, jitter, noise, prior_seed: RLPP.
        modality, intensity: how network values map back to physical units for the segmenter (the
        model's intensity preset as a dict; None: the values are used as they are).
    """

    def __init__(
        self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 1, dim: int = 16,
        blocks: list[int] = (1, 1, 2), refinement_blocks: int = 1, heads: int = 1,
        attention: Literal["gfca", "spatial"] = "gfca", patch: int = 8, expansion: float = 2.0,
        ffn_expansion: float = 2.0, prior: Literal["reliable", "raw", "none"] = "reliable",
        segmenter: str = "classical", boxes: str = "body", samples: int = 4, rate: float = 0.1,
        placement: str = "decoder", jitter: float = 0.2, noise: float = 0.02, prior_seed: int = 0,
        modality: str = "OT", intensity: dict | None = None,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 4), "lrformer")
        if attention not in ("gfca", "spatial") or prior not in ("reliable", "raw", "none") or len(blocks) < 2:
            raise ConfigError(f"lrformer: attention gfca|spatial, prior reliable|raw|none and at least 2 levels "
                              f"(got {attention!r}, {prior!r}, blocks {list(blocks)})")
        self.out_channels, self.scale, self.prior = out_channels, scale, prior
        self.prior_settings = dict(segmenter=segmenter, boxes=boxes, samples=samples, rate=rate, placement=placement,
                                   jitter=jitter, noise=noise, seed=prior_seed)
        self.modality, self.intensity = modality, intensity
        self.prior_cache: str | None = None
        self._producer = None
        levels = len(blocks)
        self.multiple = 2 ** (levels - 1)
        stage = lambda c, n: GuidedStage(  # noqa: E731
            GuidedBlock(c, attention=attention, patch=patch, expansion=expansion, ffn_expansion=ffn_expansion,
                        heads=heads) for _ in range(n))
        width = [dim * 2**i for i in range(levels)]
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1)
        if prior != "none":
            self.prior_embed = nn.Conv2d(PRIOR_CHANNELS, dim, 3, padding=1)
            self.prior_downs = nn.ModuleList(PixelUnshuffleDown(width[i]) for i in range(levels - 1))
        self.encoders = nn.ModuleList(stage(width[i], blocks[i]) for i in range(levels - 1))
        self.downs = nn.ModuleList(PixelUnshuffleDown(width[i]) for i in range(levels - 1))
        self.latent = stage(width[-1], blocks[-1])
        self.ups = nn.ModuleList(PixelShuffleUp3x3(width[i + 1]) for i in reversed(range(levels - 1)))
        self.reduces = nn.ModuleList(nn.Conv2d(2 * width[i], width[i], 1) for i in reversed(range(levels - 1)))
        self.decoders = nn.ModuleList(stage(width[i], blocks[i]) for i in reversed(range(levels - 1)))
        self.refinement = stage(dim, refinement_blocks)
        self.output = nn.Conv2d(dim, out_channels, 3, padding=1)

    # The prior: computed from the network's own input, without gradients.
    def producer(self):
        """The RLPP of this network's settings, built on first use (loading a MedSAM model only then)."""
        cache = self.prior_cache or os.environ.get(PRIOR_CACHE_ENV) or None
        if self._producer is None or self._producer.mc.cache != cache:
            from medir.priors.reliability import ReliablePriorProducer

            s = dict(self.prior_settings)
            self._producer = ReliablePriorProducer(
                build_segmenter(s.pop("segmenter"), boxes=s.pop("boxes")), mode=self.prior, cache=cache, **s)
        return self._producer

    def physical(self, values: np.ndarray) -> np.ndarray:
        """Network values -> the units the segmenter windows (a fixed preset's affine map; per-image presets
        keep the values: the windows of count modalities do not change with a positive scale)."""
        if not self.intensity or self.intensity.get("mode", "fixed") != "fixed":
            return values
        lo, hi = float(self.intensity.get("lo", 0.0)), float(self.intensity.get("hi", 1.0))
        return values * (hi - lo) + lo

    @torch.no_grad()
    def prior_for(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, C, H, W) network input -> (B, 3, H*scale, W*scale) prior from channel 0 (None for ``prior="none"``).
        On the meta device (FLOP counting) the prior is zeros: segmenter costs are not network MACs."""
        if self.prior == "none":
            return None
        x = upsample_input(x, self.scale)
        b, _, h, w = x.shape
        if x.device.type == "meta":
            return torch.zeros(b, PRIOR_CHANNELS, h, w, device=x.device, dtype=x.dtype)
        values = x[:, 0].detach().float().cpu().numpy()
        producer = self.producer()
        maps = [producer(self.physical(v), values=v, modality=self.modality) for v in values]
        return torch.from_numpy(np.stack(maps)).to(x.device, x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restore(x, self.prior_for(x))

    def restore(self, x: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        """The network proper: ``x`` (B, C, H, W), ``prior`` (B, 3, H*scale, W*scale) or None."""
        x = upsample_input(x, self.scale)
        h, w = x.shape[-2:]
        y = self.embed(pad_to_multiple(x, self.multiple))
        priors = self._prior_pyramid(prior, h, w)
        skips = []
        for i, (encoder, down) in enumerate(zip(self.encoders, self.downs)):
            y = encoder(y, priors[i])
            skips.append(y)
            y = down(y)
        y = self.latent(y, priors[-1])
        for i, (up, reduce, decoder) in enumerate(zip(self.ups, self.reduces, self.decoders)):
            level = len(skips) - 1 - i
            y = decoder(reduce(torch.cat([up(y), skips[level]], dim=1)), priors[level])
        y = crop_to(self.output(self.refinement(y, priors[0])), h, w)
        base = residual_source(x, self.out_channels)
        return y if base is None else y + base

    def _prior_pyramid(self, prior: torch.Tensor | None, h: int, w: int) -> list[torch.Tensor | None]:
        levels = len(self.downs) + 1
        if self.prior == "none":
            return [None] * levels
        if prior is None or prior.shape[-2:] != (h, w):
            raise ValueError(f"LRformer needs a prior of size {(h, w)}, got "
                             f"{None if prior is None else tuple(prior.shape)}: use prior_for(x)")
        p = self.prior_embed(pad_to_multiple(prior, self.multiple))
        out = [p]
        for down in self.prior_downs:
            p = down(p)
            out.append(p)
        return out


def build_segmenter(spec: str, *, boxes: str = "body"):
    """A segmenter from its spec string; MedSAM gets the ``boxes`` prompt (``body``: derived per image)."""
    from medir.priors import get_segmenter, parse_spec

    name, path = parse_spec(spec)
    if name == "medsam":
        from medir.priors.sam import MedSamSegmenter

        return MedSamSegmenter(path, boxes=boxes)
    return get_segmenter(spec)
