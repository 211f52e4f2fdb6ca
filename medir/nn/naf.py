"""NAFNet's building blocks (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022)."""

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.norm import LayerNorm2d


class SimpleGate(nn.Module):
    """Split channels in half and multiply: (B, 2C, H, W) -> (B, C, H, W) (equation 3 of the paper)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class SimplifiedChannelAttention(nn.Module):
    """x * W pool(x): average pool, 1x1 conv, no nonlinearity (equation 4 of the paper).

    (B, C, H, W) -> (B, C, H, W). The paper pools globally. With ``window`` set (feature
    pixels) and the module in eval mode, an input larger than the window is pooled
    locally instead: every pixel takes the mean of the ``window`` x ``window`` box
    around it (shifted inward at the borders so it always lies inside the input), as
    the NAFNet authors' test-time local converter (TLC, Chu et al., ECCV 2022) does.
    Trained on patches of P pixels, a window of about 1.5 P gives the statistics the
    network saw in training, and an output that no longer depends on how far the
    input extends beyond the window (so tiled inference matches whole-image inference).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.window: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.window is None or self.training or (self.window >= h and self.window >= w):
            pooled = x.mean(dim=(2, 3), keepdim=True)
        else:
            pooled = box_mean(x, min(self.window, h), min(self.window, w))
        return x * self.proj(pooled)

    def extra_repr(self) -> str:
        return f"window={self.window}" if self.window else ""


def box_mean(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Mean of the kh x kw box around each pixel of (B, C, H, W), boxes shifted to lie inside.

    Pixel i takes rows ``[s, s + kh)`` with ``s = clamp(i - (kh - 1) // 2, 0, H - kh)`` (columns
    alike). The box is separable, so this is a 1-D running mean along each axis, each from a
    cumulative sum (an integral image one axis at a time): O(1) per pixel whatever the box size,
    and the sums only run along one line, which keeps float32 rounding small on large inputs.
    """
    return _line_mean(_line_mean(x, kh, -2), kw, -1)


def _line_mean(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    if k >= n:
        return x.mean(dim=dim, keepdim=True).expand_as(x)
    c = x.cumsum(dim)
    sums = torch.cat([c.narrow(dim, k - 1, 1), c.narrow(dim, k, n - k) - c.narrow(dim, 0, n - k)], dim=dim)
    start = (torch.arange(n, device=x.device) - (k - 1) // 2).clamp(0, n - k)
    return sums.index_select(dim, start) / k


def set_pool_window(module: nn.Module, window: int | None) -> None:
    """Set the local-pooling window (feature pixels; None: global) of every SCA inside ``module``."""
    for m in module.modules():
        if isinstance(m, SimplifiedChannelAttention):
            m.window = None if window is None else max(1, int(window))


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block (figure 3c of the paper), (B, C, H, W) -> (B, C, H, W).

    Spatial half: LayerNorm -> 1x1 conv (C -> eC) -> 3x3 depthwise -> SimpleGate ->
    SCA -> 1x1 conv, added with a learnt per-channel scale beta (zero at init).
    Channel half: LayerNorm -> 1x1 (C -> fC) -> SimpleGate -> 1x1, scaled by gamma.

    Args:
        channels: C.
        dw_expand: e, the expansion before the depthwise conv (paper: 2).
        ffn_expand: f, the expansion of the feed-forward half (paper: 2).
        dropout: dropout rate after each half (paper: 0).
    """

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0):
        super().__init__()
        dw = channels * dw_expand
        ffn = channels * ffn_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sg = SimpleGate()
        self.sca = SimplifiedChannelAttention(dw // 2)
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.dropout1 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dropout2 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(self.norm1(x)))
        y = self.conv3(self.sca(self.sg(y)))
        x = x + self.dropout1(y) * self.beta
        y = self.conv5(self.sg(self.conv4(self.norm2(x))))
        return x + self.dropout2(y) * self.gamma


def naf_stage(
    channels: int, blocks: int, dw_expand: int = 2, ffn_expand: int = 2, dropout: float = 0.0
) -> nn.Sequential:
    """``blocks`` NAFBlocks in a row at width ``channels`` (an empty Sequential for 0)."""
    return nn.Sequential(*[NAFBlock(channels, dw_expand, ffn_expand, dropout) for _ in range(blocks)])
