"""Restormer's transformer block (Zamir et al., "Restormer", CVPR 2022): MDTA and GDFN."""

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.norm import LayerNorm2d


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (section 3.1, equation 2 of the paper).

    Attention across channels instead of pixels: per head, the (C/h, HW) query and key
    are L2-normalised along HW, their (C/h, C/h) product is scaled by a learnt
    temperature, softmaxed and applied to the value. Cost is linear in HW.
    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, heads: int, bias: bool = False):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(channels * 3, channels * 3, 3, padding=1, groups=channels * 3, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        # Channels are the "tokens" here and pixels the feature axis; the temperature goes into
        # q so that the fused kernel (scale 1) computes softmax(T q k^T) v (faster on CPU, measured).
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.project_out(out.reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network (section 3.2, equation 3 of the paper).

    1x1 conv C -> 2C', 3x3 depthwise conv, GELU(first half) * second half, 1x1 conv C' -> C,
    with C' = int(C * expansion). (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, expansion: float = 2.66, bias: bool = False):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class RestormerBlock(nn.Module):
    """x + MDTA(LN(x)), then x + GDFN(LN(x)) (figure 2 of the paper). (B, C, H, W) -> (B, C, H, W).

    ``norm_bias=False`` is the paper's "BiasFree" LayerNorm (used for its denoising models).
    """

    def __init__(self, channels: int, heads: int, expansion: float = 2.66, bias: bool = False, norm_bias: bool = True):
        super().__init__()
        self.norm1 = LayerNorm2d(channels, eps=1e-5, bias=norm_bias)
        self.attn = MDTA(channels, heads, bias)
        self.norm2 = LayerNorm2d(channels, eps=1e-5, bias=norm_bias)
        self.ffn = GDFN(channels, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def restormer_stage(
    channels: int, blocks: int, heads: int, expansion: float, bias: bool, norm_bias: bool
) -> nn.Sequential:
    """``blocks`` RestormerBlocks in a row."""
    return nn.Sequential(*[RestormerBlock(channels, heads, expansion, bias, norm_bias) for _ in range(blocks)])
