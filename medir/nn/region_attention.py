"""Region-based multi-head self-attention, R-MSA (Yang et al., "Region Attention Transformer for Medical
Image Restoration", MICCAI 2024, equations 2-4), and the attentions it is compared with (MSA, W-MSA).

Tokens attend only to tokens of their own region of a label map:

    M' = Reshape(NearestInterpolation(M))                          (equation 2)
    M_ATT = lambda * sum_i (1 - M'_i M'_i^T)                        (equation 3)
    R-MSA(Q, K, V) = Softmax(M_ATT + Q K^T * scale) V               (equation 4)

The paper's lambda is -1000 (a stand-in for -inf); every implementation here excludes the other regions
exactly (-inf), which differs from lambda = -1000 by less than exp(-1000) relative, i.e. not at all in
float32. All functions take ``q, k, v`` of shape ``(B, heads, N, d)`` and ``labels`` ``(B, N)`` (int,
any values: only equality matters) and return ``(B, heads, N, d)``.

Implementations (``REGION_ATTENTION``; timings and memory in ``benchmarks/region_attention.py``):

- ``dense``: the plain reference, an additive ``(B, 1, N, N)`` mask and an explicit softmax, as the
  official code does. Quadratic memory; kept for tests and as the benchmark's baseline.
- ``mask``: a boolean same-region mask ``(B, 1, N, N)`` into ``scaled_dot_product_attention``. Still an
  N x N mask (1 byte per entry) and PyTorch's CPU kernels still form N x N logits per head.
- ``sorted`` (default): tokens sorted by region, so attention is block diagonal (see
  :func:`region_segments`): large regions are attended chunk by chunk without any mask, small ones are
  packed into blocks of at most ``block`` tokens with a ``block x block`` mask. Memory at most
  ``block x largest region`` per head, work about ``sum_i n_i^2``; the index ranges are contiguous
  slices, so the backward pass is as cheap as the forward.
- ``loop``: one unmasked attention per region (the "loop-based computation" the paper calls slow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Attention = Callable[..., torch.Tensor]


def downsample_labels(labels: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour downsampling of ``(B, H, W)`` labels by an integer factor (equation 2).

    Equals ``F.interpolate(labels, scale_factor=1 / factor, mode="nearest")``: the top-left pixel of each
    ``factor x factor`` cell. ``H`` and ``W`` must be multiples of ``factor``.
    """
    if factor == 1:
        return labels
    return labels[:, ::factor, ::factor]


def window_labels(height: int, width: int, size: int, *, device=None) -> torch.Tensor:
    """``(height, width)`` long map of non-overlapping ``size x size`` window indices (W-MSA as R-MSA)."""
    rows = torch.arange(height, device=device) // size
    cols = torch.arange(width, device=device) // size
    return rows[:, None] * ((width + size - 1) // size) + cols[None, :]


def region_attention_dense(q, k, v, labels, *, scale: float, bias: float | None = None) -> torch.Tensor:
    """Equations 3-4 as written: ``softmax(M_ATT + q k^T scale) v`` with an explicit ``(B, 1, N, N)`` mask.

    ``bias``: the paper's lambda (-1000 in the official code); None = -inf (exact exclusion).
    """
    same = labels[:, None, :, None] == labels[:, None, None, :]
    lam = float("-inf") if bias is None else bias
    mask = torch.zeros(same.shape, dtype=q.dtype, device=q.device).masked_fill(~same, lam)
    logits = (q @ k.transpose(-2, -1)) * scale + mask
    return logits.softmax(dim=-1) @ v


def region_attention_mask(q, k, v, labels, *, scale: float) -> torch.Tensor:
    """A boolean same-region mask ``(B, 1, N, N)`` into PyTorch's fused attention."""
    same = labels[:, None, :, None] == labels[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=same, scale=scale)


def region_attention_sorted(q, k, v, labels, *, scale: float, block: int = 256) -> torch.Tensor:
    """Sort tokens by region, then attend block by block over contiguous ranges (:func:`region_segments`)."""
    return torch.stack([_sorted_one(q[i], k[i], v[i], labels[i], scale, block) for i in range(q.shape[0])])


def _sorted_one(q, k, v, labels, scale: float, block: int) -> torch.Tensor:
    """One sample: ``(heads, N, d)`` and ``(N,)`` labels -> ``(heads, N, d)``."""
    lab, order = torch.sort(labels, stable=True)
    qs, ks, vs = (t[None, :, order] for t in (q, k, v))  # 4-D: PyTorch's fused CPU kernel needs it
    outs = []
    for q0, q1, k0, k1, mixed in region_segments(lab, block):
        mask = lab[q0:q1, None] == lab[None, k0:k1] if mixed else None
        outs.append(F.scaled_dot_product_attention(qs[:, :, q0:q1], ks[:, :, k0:k1], vs[:, :, k0:k1],
                                                   attn_mask=mask, scale=scale))
    return torch.cat(outs, dim=2)[0, :, torch.argsort(order)]


def region_segments(sorted_labels: torch.Tensor, block: int) -> list[tuple[int, int, int, int, bool]]:
    """Attention calls for tokens sorted by region: ``(q0, q1, k0, k1, mixed)`` index ranges.

    Regions of more than ``block`` tokens are cut into query chunks of ``block`` that attend to the whole
    region (no mask: the fused kernel never forms the chunk's logits in full). Smaller consecutive
    regions are packed together up to ``block`` tokens and attend to the pack under a same-region mask
    (``mixed`` = the pack holds more than one region). Every query appears in exactly one call.
    """
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    segments, pack, start = [], None, 0
    for n in counts.tolist():
        end = start + n
        if pack is not None and (n > block or end - pack[0] > block):
            segments.append((pack[0], pack[1], pack[0], pack[1], pack[2] > 1))
            pack = None
        if n > block:
            segments += [(c, min(c + block, end), start, end, False) for c in range(start, end, block)]
        else:
            pack = (start, end, 1) if pack is None else (pack[0], end, pack[2] + 1)
        start = end
    if pack is not None:
        segments.append((pack[0], pack[1], pack[0], pack[1], pack[2] > 1))
    return segments


def region_attention_loop(q, k, v, labels, *, scale: float) -> torch.Tensor:
    """One unmasked attention per region of each sample."""
    out = torch.empty_like(q)
    for i in range(q.shape[0]):
        for value in torch.unique(labels[i]).tolist():
            idx = torch.nonzero(labels[i] == value)[:, 0]
            qi, ki, vi = (t[i : i + 1, :, idx] for t in (q, k, v))  # 4-D: the fused CPU kernel needs it
            out[i, :, idx] = F.scaled_dot_product_attention(qi, ki, vi, scale=scale)[0]
    return out


REGION_ATTENTION: dict[str, Attention] = {
    "dense": region_attention_dense,
    "mask": region_attention_mask,
    "sorted": region_attention_sorted,
    "loop": region_attention_loop,
}


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the pixels of a ``(B, C, H, W)`` map: R-MSA, W-MSA or MSA.

    ``kind``: ``region`` (R-MSA: within the regions of ``labels``), ``window`` (W-MSA: non-overlapping
    ``window_size`` windows, no shift, no position bias, as RAT uses it) or ``global`` (MSA: all pixels).
    The three have the same parameters (1x1 qkv and output projections), so they swap at equal size.
    ``scaling``: ``head_dim`` multiplies logits by ``(C / heads) ** -0.5`` (the standard transformer
    scaling, our default); ``heads`` by ``heads ** -0.5``, what the official RAT code does and what the
    paper's "d is the attention head number" says.
    ``impl``: the R-MSA implementation (``REGION_ATTENTION``); ``block``: its block size for ``sorted``.
    """

    def __init__(self, dim: int, heads: int, *, kind: Literal["region", "window", "global"] = "region",
                 window_size: int = 4, scaling: Literal["head_dim", "heads"] = "head_dim", impl: str = "sorted",
                 block: int = 256, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not a multiple of {heads} heads")
        if kind not in ("region", "window", "global") or scaling not in ("head_dim", "heads"):
            raise ValueError(f"unknown attention kind {kind!r} or scaling {scaling!r}")
        if impl not in REGION_ATTENTION:
            raise ValueError(f"unknown R-MSA implementation {impl!r}: use one of {', '.join(REGION_ATTENTION)}")
        self.heads, self.kind, self.window_size, self.impl, self.block = heads, kind, window_size, impl, block
        self.scale = (dim // heads) ** -0.5 if scaling == "head_dim" else heads**-0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1, bias=qkv_bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W); labels: (B, H, W) int at this resolution (R-MSA only) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        heads, d = self.heads, c // self.heads
        q, k, v = self.qkv(x).view(b, 3, heads, d, h * w).transpose(-2, -1).unbind(1)  # (B, heads, N, d)
        if self.kind == "region" and q.is_meta:  # shape-only runs (MAC counts): full attention, the upper bound
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        elif self.kind == "region":
            if labels is None or labels.shape != (b, h, w):
                raise ValueError(f"R-MSA needs (B, H, W) = {(b, h, w)} labels, got "
                                 f"{None if labels is None else tuple(labels.shape)}")
            kw = {"block": self.block} if self.impl == "sorted" else {}
            out = REGION_ATTENTION[self.impl](q, k, v, labels.reshape(b, -1), scale=self.scale, **kw)
        elif self.kind == "window":
            out = _window_attention(q, k, v, h, w, self.window_size, self.scale)
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(-2, -1).reshape(b, c, h, w))


def _window_attention(q, k, v, h: int, w: int, size: int, scale: float) -> torch.Tensor:
    """Attention inside non-overlapping ``size x size`` windows; (B, heads, N, d) in and out, N = h * w."""
    if h % size or w % size:
        raise ValueError(f"W-MSA needs a map whose sides are multiples of the window {size}, got {h}x{w}")
    b, heads, n, d = q.shape

    def part(t):  # (B, heads, h*w, d) -> (B, heads * nW, size*size, d)
        t = t.reshape(b, heads, h // size, size, w // size, size, d).transpose(3, 4)
        return t.reshape(b, heads * (h // size) * (w // size), size * size, d)

    out = F.scaled_dot_product_attention(part(q), part(k), part(v), scale=scale)
    out = out.reshape(b, heads, h // size, w // size, size, size, d).transpose(3, 4)
    return out.reshape(b, heads, n, d)
