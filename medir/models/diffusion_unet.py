"""Denoising UNet with a timestep embedding and self-attention (Ho et al. 2020, appendix B; MFdiff section 3.2).

(B, in_channels, H, W), timesteps (B,) -> (B, out_channels, H, W); H and W are padded to a multiple of
``2 ** (levels - 1)`` and cropped back. Each level: ``res_blocks`` residual blocks (GroupNorm -> SiLU -> conv,
the time embedding added after the first conv), self-attention (a pre-norm single-head block over the level's
pixels) where ``attention[level]`` is true, stride-2 conv down; the decoder mirrors it with concatenated skips
and nearest-neighbour upsampling. ``t=None`` uses timestep 0: the same network then serves as the plain
regression UNet of the ablations (Table 5), so every variant has the same backbone.

MONAI's ``DiffusionModelUNet`` is the same design; MONAI is not a dependency of medir, so this is ours.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.fusion import attend
from medir.nn.padding import crop_to, pad_to_multiple


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of integer timesteps ``t`` (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class TimeResBlock(nn.Module):
    """(B, cin, H, W), embedding (B, E) -> (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(F.silu(emb))[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class SelfAttention(nn.Module):
    """Single-head self-attention over the H*W pixels with a residual: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = attend(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """``blocks`` time residual blocks, each followed by attention when ``attend``."""

    def __init__(self, cin: int, cout: int, emb: int, *, blocks: int, attend: bool):
        super().__init__()
        self.res = nn.ModuleList(TimeResBlock(cin if i == 0 else cout, cout, emb) for i in range(blocks))
        self.attn = nn.ModuleList(SelfAttention(cout) if attend else nn.Identity() for _ in range(blocks))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for res, attn in zip(self.res, self.attn):
            x = attn(res(x, emb))
        return x


class DiffusionUNet(nn.Module):
    """UNet denoiser; ``mults[i] * width`` channels at level i, ``attention[i]`` enables self-attention there."""

    def __init__(self, *, in_channels: int = 3, out_channels: int = 1, width: int = 32,
                 mults: tuple[int, ...] = (1, 2, 2), attention: tuple[bool, ...] = (False, False, True),
                 res_blocks: int = 1, scale: int = 1):
        super().__init__()
        if scale != 1:
            raise ValueError("DiffusionUNet restores at the input's size: scale must be 1")
        if len(attention) != len(mults):
            raise ValueError(f"attention has {len(attention)} entries for {len(mults)} levels")
        emb = 4 * width
        self.width, self.levels = width, len(mults)
        self.time = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        chans = [width * m for m in mults]
        self.down, self.pool = nn.ModuleList(), nn.ModuleList()
        prev = width
        for i, c in enumerate(chans):
            self.down.append(Level(prev, c, emb, blocks=res_blocks, attend=attention[i]))
            self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i + 1 < len(chans) else nn.Identity())
            prev = c
        self.middle = Level(prev, prev, emb, blocks=1, attend=True)
        below = chans[1:] + chans[-1:]  # channels arriving from the level below (the middle for the deepest)
        self.fuse = nn.ModuleList(nn.Conv2d(b + c, c, 1) for b, c in zip(below, chans))
        self.up = nn.ModuleList(Level(c, c, emb, blocks=res_blocks, attend=a) for c, a in zip(chans, attention))
        self.head = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, out_channels, 3,
                                                                                            padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        h0, w0 = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** (self.levels - 1))
        if t is None:
            t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        emb = self.time(timestep_embedding(t, self.width))
        h, skips = self.stem(x), []
        for level, pool in zip(self.down, self.pool):
            h = level(h, emb)
            skips.append(h)
            h = pool(h)
        h = self.middle(h, emb)
        for i in reversed(range(self.levels)):
            if h.shape[-2:] != skips[i].shape[-2:]:
                h = F.interpolate(h, size=skips[i].shape[-2:], mode="nearest")
            h = self.up[i](self.fuse[i](torch.cat([h, skips[i]], dim=1)), emb)
        return crop_to(self.head(h), h0, w0)
