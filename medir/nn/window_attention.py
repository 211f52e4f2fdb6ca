"""Shifted-window self-attention with relative position bias (Liu et al., Swin Transformer, ICCV 2021).

Feature maps are kept channels-last, (B, H, W, C), inside the transformer stages.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, nW, size*size, C), windows in row-major order; H, W multiples of size."""
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c).transpose(2, 3)
    return x.reshape(b, (h // size) * (w // size), size * size, c)


def window_merge(x: torch.Tensor, size: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B, nW, size*size, C) -> (B, H, W, C)."""
    b, c = x.shape[0], x.shape[-1]
    x = x.view(b, height // size, width // size, size, size, c).transpose(2, 3)
    return x.reshape(b, height, width, c)


def relative_position_index(size: int) -> torch.Tensor:
    """(N, N) long index into the (2*size-1)^2 bias table, N = size*size (Swin, section 3.2)."""
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]) + (size - 1)
    return rel[0] * (2 * size - 1) + rel[1]


class ShiftMask(NamedTuple):
    """The shifted-window mask, kept only where it is not zero.

    Only windows on the last row and column of windows mix pixels from different image
    regions after the roll; interior windows need no mask. At 512x512 with window 8 that is
    127 of 4096 windows, so keeping the mask for those alone saves hundreds of MiB per block.
    """

    interior: torch.Tensor  # (nW - k,) long: windows without mask
    border: torch.Tensor  # (k,) long: windows with mask
    mask: torch.Tensor  # (k, N, N) additive: -100 between regions, 0 within

    def like(self, x: torch.Tensor) -> "ShiftMask":
        """The same mask on x's device, in x's dtype."""
        return ShiftMask(self.interior.to(x.device), self.border.to(x.device), self.mask.to(x))


def shifted_window_mask(height: int, width: int, size: int, shift: int) -> ShiftMask:
    """Mask for cyclically shifted windows (Swin, figure 4): -100 (as in SwinIR) between tokens from
    different image regions that the roll brought into one window, 0 otherwise."""
    region = torch.zeros(1, height, width, 1)
    cuts = (slice(0, -size), slice(-size, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, ws in enumerate(cuts):
            region[:, hs, ws, :] = 3 * i + j
    labels = window_partition(region, size)[0, :, :, 0]
    same = labels[:, :, None] == labels[:, None, :]
    mixed = ~same.all(dim=(1, 2))
    mask = torch.zeros(same.shape).masked_fill(~same, -100.0)
    return ShiftMask(torch.nonzero(~mixed)[:, 0], torch.nonzero(mixed)[:, 0], mask[mixed])


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learnt relative position bias.

    softmax(q k^T / sqrt(d) + B + mask) v (equation 4 of Swin), through PyTorch's fused
    scaled_dot_product_attention. (B, nW, N, C) -> (B, nW, N, C).
    """

    def __init__(self, dim: int, window_size: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("rel_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) relative position bias."""
        n = self.window_size**2
        return self.relative_position_bias_table[self.rel_index.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: ShiftMask | None = None) -> torch.Tensor:
        """x: (B, nW, N, C); mask: the shift mask of this map size, or None."""
        b, nw, n, c = x.shape
        h, d = self.heads, c // self.heads
        qkv = self.qkv(x).view(b, nw, n, 3, h, d).permute(3, 0, 1, 4, 2, 5)
        bias = self.position_bias().to(x.dtype).unsqueeze(0)  # (1, heads, N, N), broadcast over windows
        if mask is None or mask.border.numel() == 0:
            out = _attention(qkv, bias).view(b, nw, h, n, d)
        else:
            out = qkv.new_empty(b, nw, h, n, d)
            out[:, mask.interior] = _attention(qkv[:, :, mask.interior], bias).view(b, -1, h, n, d)
            border = (bias + mask.mask.unsqueeze(1)).repeat(b, 1, 1, 1)  # (B*k, heads, N, N)
            out[:, mask.border] = _attention(qkv[:, :, mask.border], border).view(b, -1, h, n, d)
        return self.proj(out.transpose(2, 3).reshape(b, nw, n, c))


def _attention(qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(3, B, W, heads, N, d) and an additive bias broadcastable to (B*W, heads, N, N) -> (B*W, heads, N, d)."""
    q, k, v = qkv.flatten(1, 2).unbind(0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class SwinBlock(nn.Module):
    """Swin transformer block: x + (S)W-MSA(LN(x)), then x + MLP(LN(x)) (Swin, equation 3).

    (B, H, W, C) -> (B, H, W, C), H and W multiples of the window size. ``shift`` > 0 rolls
    the map by -shift before partitioning and back after (shifted windows).
    """

    def __init__(self, dim: int, heads: int, window_size: int, shift: int = 0, mlp_ratio: float = 2.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.window_size, self.shift = window_size, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, mask: ShiftMask | None = None) -> torch.Tensor:
        """x: (B, H, W, C); mask: the shift mask for this size, used when shift > 0."""
        h, w = x.shape[1:3]
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window_size), mask if self.shift else None)
        y = window_merge(y, self.window_size, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): zero a sample's residual branch with probability p in
    training and rescale the rest by 1/(1-p); identity in eval."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)
