"""Prior-guided cross-attention: LRformer's frequency form (GFCA) and the ordinary spatial form.

Both modules have one interface, ``module(x, prior) -> (B, C, H, W)``: ``x`` (B, C, H, W) image
features, ``prior`` (B, Cp, H, W) prior features, any H, W (reflect padding to a multiple of the
patch size, cropped back). Both project the same way (1x1 conv then 3x3 depthwise conv, as
Restormer's MDTA and FFTformer's FSAS): query ``q`` and value ``v`` from ``x``, key ``k`` from the
prior, ``hidden = expansion * C`` channels each, and end with a 1x1 conv ``hidden -> C``.
They differ only in how ``q`` meets ``k`` inside each non-overlapping ``patch x patch`` window:

- :class:`GuidedFrequencyCrossAttention` (GFCA; LRformer, arXiv:2504.11286, after FFTformer's FSAS,
  Kong et al. CVPR 2023): per channel and patch ``A = irfft2(rfft2(q) * rfft2(k))``, i.e. the
  circular convolution ``A[i, j] = sum_{m, n} q[m, n] k[(i - m) mod p, (j - n) mod p]``; then
  ``out = W_o (v * LN(A))``. ``rfft2`` keeps ``p * (p/2 + 1)`` of the ``p^2`` Fourier coefficients
  (the rest are complex conjugates of those: the spectrum of a real patch is conjugate symmetric),
  so the product and the transforms cost about half of a full complex ``fft2``
  (``spectrum="full"`` computes that, for comparison; same output up to rounding).
- :class:`SpatialCrossAttention`: softmax attention inside each window,
  ``out = W_o softmax(q k^T / sqrt(d)) v`` per head with the ``p^2`` pixels of a window as tokens
  (Swin-style window attention, queries from the image, keys from the prior); PyTorch's fused
  ``scaled_dot_product_attention``.

Cost per pixel, attention core only (d = hidden channels): spatial ``2 p^2 d`` MACs (``q k^T`` and
the product with ``v``); GFCA about ``3 * 2.5 log2(p^2) d`` real multiply-adds for two rffts and one
irfft plus ``4 (p/2 + 1) / p * d`` for the complex product. :func:`core_flops` gives the counts.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.norm import LayerNorm2d
from medir.nn.padding import crop_to, pad_to_multiple
from medir.nn.window_attention import window_merge, window_partition


class _Projections(nn.Module):
    """``q, v`` from the image features and ``k`` from the prior: 1x1 conv then 3x3 depthwise conv."""

    def __init__(self, channels: int, prior_channels: int, hidden: int, bias: bool):
        super().__init__()
        self.qv = nn.Sequential(nn.Conv2d(channels, 2 * hidden, 1, bias=bias),
                                nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias))
        self.k = nn.Sequential(nn.Conv2d(prior_channels, hidden, 1, bias=bias),
                               nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=bias))

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, v = self.qv(x).chunk(2, dim=1)
        return q, self.k(prior), v


class _CrossAttention(nn.Module):
    """Shared shell: checks, padding to the patch size, projections, output conv, cropping."""

    def __init__(self, channels: int, *, prior_channels: int | None, patch: int, expansion: float, bias: bool):
        super().__init__()
        if patch < 1:
            raise ValueError(f"patch must be positive, got {patch}")
        self.channels, self.patch = channels, patch
        self.hidden = max(1, int(channels * expansion))
        self.proj = _Projections(channels, prior_channels or channels, self.hidden, bias)
        self.project_out = nn.Conv2d(self.hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) image features, (B, Cp, H, W) prior features -> (B, C, H, W)."""
        if x.shape[-2:] != prior.shape[-2:] or x.shape[0] != prior.shape[0]:
            raise ValueError(f"image features {tuple(x.shape)} and prior {tuple(prior.shape)} differ in batch or size")
        h, w = x.shape[-2:]
        x, prior = pad_to_multiple(x, self.patch), pad_to_multiple(prior, self.patch)
        q, k, v = self.proj(x, prior)
        return crop_to(self.project_out(self.mix(q, k, v)), h, w)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def patch_view(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> the view (B, C, H/p, p, W/p, p); dims 3 and 5 run inside a patch. H, W multiples of p."""
    b, c, h, w = x.shape
    return x.view(b, c, h // patch, patch, w // patch, patch)


def patch_convolution(q: torch.Tensor, k: torch.Tensor, patch: int, *, spectrum: str = "half") -> torch.Tensor:
    """Per-channel circular convolution of ``q`` and ``k`` inside every ``patch x patch`` patch, via FFT.

    ``half``: ``irfft2(rfft2(q) * rfft2(k))`` on the ``p x (p/2 + 1)`` half spectrum; ``full``:
    ``real(ifft2(fft2(q) * fft2(k)))`` on all ``p^2`` coefficients. (B, C, H, W) twice -> (B, C, H, W).
    The transforms run on the patch dimensions of a strided view (no patch copies); the product is in place.
    """
    dims, shape = (3, 5), q.shape
    qp, kp = patch_view(q.float(), patch), patch_view(k.float(), patch)
    if spectrum == "half":
        prod = torch.fft.rfftn(qp, dim=dims).mul_(torch.fft.rfftn(kp, dim=dims))
        out = torch.fft.irfftn(prod, s=(patch, patch), dim=dims)
    elif spectrum == "full":
        prod = torch.fft.fftn(qp, dim=dims).mul_(torch.fft.fftn(kp, dim=dims))
        out = torch.fft.ifftn(prod, dim=dims).real
    else:
        raise ValueError(f"spectrum must be 'half' or 'full', got {spectrum!r}")
    return out.reshape(shape).to(q.dtype)


class GuidedFrequencyCrossAttention(_CrossAttention):
    """GFCA: ``W_o (v * LN(irfft2(rfft2(q) * rfft2(k))))`` per ``patch x patch`` patch (see the module docstring).

    Args:
        channels: C of the image features; ``prior_channels``: Cp of the prior features (default C).
        patch: FFT patch side (FFTformer: 8). ``expansion``: hidden = expansion * C (FFTformer: 2).
        spectrum: ``half`` (rfft2, GFCA) or ``full`` (complex fft2: the same result at about twice the cost).
    """

    def __init__(self, channels: int, *, prior_channels: int | None = None, patch: int = 8, expansion: float = 2.0,
                 bias: bool = False, spectrum: Literal["half", "full"] = "half"):
        super().__init__(channels, prior_channels=prior_channels, patch=patch, expansion=expansion, bias=bias)
        if spectrum not in ("half", "full"):
            raise ValueError(f"spectrum must be 'half' or 'full', got {spectrum!r}")
        self.spectrum = spectrum
        self.norm = LayerNorm2d(self.hidden, eps=1e-5)

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return v * self.norm(patch_convolution(q, k, self.patch, spectrum=self.spectrum))


class SpatialCrossAttention(_CrossAttention):
    """Window cross-attention: ``W_o softmax(q k^T / sqrt(d)) v`` per head inside each ``patch x patch`` window.

    Same projections and interface as :class:`GuidedFrequencyCrossAttention`; ``heads`` divides hidden.
    ``fused``: PyTorch's fused kernel (default), or the explicit ``(p^2, p^2)`` attention matrices of most
    restoration code (same result, the matrices held in memory).
    """

    def __init__(self, channels: int, *, prior_channels: int | None = None, patch: int = 8, expansion: float = 2.0,
                 bias: bool = False, heads: int = 1, fused: bool = True):
        super().__init__(channels, prior_channels=prior_channels, patch=patch, expansion=expansion, bias=bias)
        if self.hidden % heads:
            raise ValueError(f"heads ({heads}) must divide the hidden width {self.hidden}")
        self.heads, self.fused = heads, fused

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, d, h, w = q.shape
        p, n = self.patch, self.heads

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, d, H, W) -> (B, nW, heads, p*p, d/heads)
            t = window_partition(t.permute(0, 2, 3, 1), p)
            return t.view(*t.shape[:3], n, d // n).transpose(2, 3)

        if self.fused:
            out = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(v))  # scale 1/sqrt(d/heads)
        else:
            qt = tokens(q) * (d // n) ** -0.5
            out = torch.softmax(qt @ tokens(k).transpose(-1, -2), dim=-1) @ tokens(v)
        out = out.transpose(2, 3).reshape(b, -1, p * p, d)
        return window_merge(out, p, h, w).permute(0, 3, 1, 2)


def core_flops(*, height: int, width: int, hidden: int, patch: int, kind: str, heads: int = 1) -> int:
    """Real floating-point operations of the attention core (projections excluded) on one (hidden, H, W) map.

    ``spatial``: ``4 p^2`` per pixel and channel (q k^T and attn v, 2 FLOPs per MAC) plus the softmax
    (about 5 per logit); FFT kinds count ``5 N log2 N`` per complex FFT of N points (Cooley-Tukey's
    standard count), half that for a real FFT, plus 6 FLOPs per complex product.
    """
    n_pix = height * width
    pp = patch * patch
    patches = n_pix // pp * hidden
    if kind == "spatial":
        return int(4 * pp * n_pix * hidden + 5 * pp * n_pix * heads)
    fft = 5 * pp * math.log2(pp)
    if kind == "half":
        coeffs = patch * (patch // 2 + 1)
        return int(patches * (3 * fft / 2 + 6 * coeffs))
    if kind == "full":
        return int(patches * (3 * fft + 6 * pp))
    raise ValueError(f"kind must be spatial, half or full, got {kind!r}")
