"""MFdiff's multi-modality feature fusion (section 3.1): intra-modality learning (IML) + cross-modality
aggregation (CMA).

- :class:`SpatialTransformer`: pre-norm block ``G' = MHA(LN(F)) + F, G = MLP(LN(G')) + G'`` (equation 3) with
  attention over the H*W pixels. Full spatial attention at 192 x 192 is 36,864 tokens (a 5 GiB logit matrix
  per head); ``kv_pool > 1`` average-pools keys and values (spatial-reduction attention, as PVT) so queries stay
  at full resolution; ``kv_pool = 1`` is the paper's plain MHA.
- :class:`IML`: per modality, a shallow encoder (3x3 conv + transformer blocks: the "modality encoder", equation 2)
  then two branches, by default global (transformer, equation 3) and detail (invertible couplings, equation 4).
  The ablations replace a branch by a copy of the other: ``branches=("global", "global")`` is GMUNet's,
  ``("detail", "detail")`` DMUNet's, keeping the parameter count close.
- :class:`CMA`: per branch, a 1x1 conv of the two modalities' features then a fusion layer of the same kind
  (global fusion = transformer block, detail fusion = coupling layers); a decoder of two transformer blocks maps
  the concatenated fused features to the fusion feature ``F`` (B, out_channels, H, W).
- :class:`FeatureFusion`: PET and MR encoders with separate weights, then CMA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.coupling import DetailBranch
from medir.nn.norm import LayerNorm2d

BRANCHES = ("global", "detail")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` over (..., N, d) queries and (..., M, d) keys / values.

    Written out rather than ``scaled_dot_product_attention``: torch's CPU math path spends most of its time in
    ``_safe_softmax``'s -inf checks, which unmasked attention does not need.
    """
    return torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1) @ v


class SpatialTransformer(nn.Module):
    """Equation 3 on (B, C, H, W) -> (B, C, H, W); ``heads`` must divide ``channels``."""

    def __init__(self, channels: int, *, heads: int = 2, mlp_ratio: float = 2.0, kv_pool: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"heads={heads} must divide channels={channels}")
        self.heads, self.kv_pool = heads, kv_pool
        self.norm1, self.norm2 = LayerNorm2d(channels), LayerNorm2d(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Conv2d(channels, 2 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, channels, 1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        src = F.avg_pool2d(x, self.kv_pool, ceil_mode=True) if self.kv_pool > 1 else x
        q = self.q(x).reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
        k, v = self.kv(src).reshape(b, 2, self.heads, c // self.heads, -1).transpose(-1, -2).unbind(1)
        out = attend(q, k, v)
        return self.proj(out.transpose(-1, -2).reshape(b, c, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def make_branch(kind: str, channels: int, *, heads: int, kv_pool: int, coupling_layers: int) -> nn.Module:
    """A global (transformer) or detail (invertible couplings) branch on ``channels``."""
    if kind == "global":
        return SpatialTransformer(channels, heads=heads, kv_pool=kv_pool)
    if kind == "detail":
        return DetailBranch(channels, layers=coupling_layers)
    raise ValueError(f"unknown branch '{kind}': use one of {', '.join(BRANCHES)}")


class IML(nn.Module):
    """One modality: (B, in_channels, H, W) -> one feature map (B, width, H, W) per branch."""

    def __init__(self, in_channels: int, width: int, *, branches: tuple[str, ...], heads: int, kv_pool: int,
                 encoder_blocks: int, coupling_layers: int):
        super().__init__()
        self.embed = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = nn.Sequential(*(SpatialTransformer(width, heads=heads, kv_pool=kv_pool)
                                       for _ in range(encoder_blocks)))
        self.branches = nn.ModuleList(make_branch(k, width, heads=heads, kv_pool=kv_pool,
                                                  coupling_layers=coupling_layers) for k in branches)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        shallow = self.encoder(self.embed(x))
        return [branch(shallow) for branch in self.branches]


class CMA(nn.Module):
    """Fuse per-branch features of two modalities -> (B, out_channels, H, W)."""

    def __init__(self, width: int, out_channels: int, *, branches: tuple[str, ...], heads: int, kv_pool: int,
                 decoder_blocks: int, coupling_layers: int):
        super().__init__()
        self.reduce = nn.ModuleList(nn.Conv2d(2 * width, width, 1) for _ in branches)
        self.fuse = nn.ModuleList(make_branch(k, width, heads=heads, kv_pool=kv_pool,
                                              coupling_layers=coupling_layers) for k in branches)
        self.merge = nn.Conv2d(len(branches) * width, width, 1)
        self.decoder = nn.Sequential(*(SpatialTransformer(width, heads=heads, kv_pool=kv_pool)
                                       for _ in range(decoder_blocks)))
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, pet: list[torch.Tensor], mr: list[torch.Tensor]) -> torch.Tensor:
        fused = [fuse(reduce(torch.cat([p, m], dim=1)))
                 for p, m, reduce, fuse in zip(pet, mr, self.reduce, self.fuse)]
        return self.out(self.decoder(self.merge(torch.cat(fused, dim=1))))


class FeatureFusion(nn.Module):
    """(PET (B, 1, H, W), MR (B, 1, H, W)) -> fusion feature (B, out_channels, H, W). Separate IML weights per
    modality (``f_theta_p != f_theta_m``)."""

    def __init__(self, *, in_channels: int = 1, width: int = 16, out_channels: int = 8,
                 branches: tuple[str, ...] = BRANCHES, heads: int = 2, kv_pool: int = 4, encoder_blocks: int = 1,
                 decoder_blocks: int = 2, coupling_layers: int = 3):
        super().__init__()
        branches = tuple(branches)
        common = dict(branches=branches, heads=heads, kv_pool=kv_pool, coupling_layers=coupling_layers)
        self.pet = IML(in_channels, width, encoder_blocks=encoder_blocks, **common)
        self.mr = IML(in_channels, width, encoder_blocks=encoder_blocks, **common)
        self.cma = CMA(width, out_channels, decoder_blocks=decoder_blocks, **common)

    def forward(self, pet: torch.Tensor, mr: torch.Tensor) -> torch.Tensor:
        return self.cma(self.pet(pet), self.mr(mr))
