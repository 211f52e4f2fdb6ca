"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021)."""

import torch
from torch import nn

from medir.errors import ConfigError
from medir.models.args import record_args
from medir.nn.meanshift import image_mean
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source
from medir.nn.sampling import SRUpsampler
from medir.nn.window_attention import ShiftMask, SwinBlock, shifted_window_mask

class RSTB(nn.Module):
    """Residual Swin transformer block (figure 2 of the paper): Swin blocks alternating regular and
    shifted windows, a 3x3 conv, and a residual connection. (B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim: int, depth: int, heads: int, window_size: int, mlp_ratio: float, drop_path: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio, drop_path[i])
            for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, mask: ShiftMask | None) -> torch.Tensor:
        y = x
        for block in self.blocks:
            y = block(y, mask)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class SwinIR(nn.Module):
    """Shallow conv, residual Swin transformer blocks, reconstruction head (section 3.1 of the paper).

    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale), any H, W (reflect padding to
    a multiple of the window size). scale 1 is the paper's denoising/JPEG head: conv to
    out_channels added to the input (global residual). scale 2/3/4 is its SR head:
    "pixelshuffle" (conv + LeakyReLU to num_feat, sub-pixel upsampler, conv; classical SR)
    or "pixelshuffledirect" (one conv + PixelShuffle; lightweight SR). Three-channel images
    are shifted by the DIV2K mean as in the paper; other channel counts are not.

    Args:
        embed_dim: transformer width (paper: 180; lightweight 60).
        depths: Swin blocks per RSTB (paper: [6] * 6).
        heads: attention heads per RSTB.
        window_size: attention window (paper: 8).
        mlp_ratio: MLP hidden / embed_dim (paper: 2).
        upsampler: SR head for scale > 1, "pixelshuffle" or "pixelshuffledirect".
        num_feat: width of the "pixelshuffle" head (paper: 64).
        drop_path: stochastic depth rate, linearly increasing over blocks (reference default 0.1).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        scale: int = 1,
        embed_dim: int = 180,
        depths: list[int] = (6, 6, 6, 6, 6, 6),
        heads: list[int] = (6, 6, 6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upsampler: str = "pixelshuffle",
        num_feat: int = 64,
        drop_path: float = 0.1,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 3, 4), "swinir")
        if upsampler not in ("pixelshuffle", "pixelshuffledirect"):
            raise ConfigError(f"upsampler must be 'pixelshuffle' or 'pixelshuffledirect', not {upsampler!r}")
        self.out_channels, self.scale, self.window_size = out_channels, scale, window_size
        self.register_buffer("in_mean", image_mean(in_channels, out_channels), persistent=False)
        self.register_buffer("out_mean", image_mean(out_channels, out_channels), persistent=False)
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.patch_norm = nn.LayerNorm(embed_dim)
        n = sum(depths)
        rates = [drop_path * i / max(n - 1, 1) for i in range(n)]
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(
            RSTB(embed_dim, d, h, window_size, mlp_ratio, rates[s:s + d]) for d, h, s in zip(depths, heads, starts)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.head = _head(scale, upsampler, embed_dim, num_feat, out_channels)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): the deep feature extraction of equation 2."""
        h, w = x.shape[-2:]
        shift = self.window_size // 2
        mask = shifted_window_mask(h, w, self.window_size, shift).like(x) if shift else None
        y = self.patch_norm(x.permute(0, 2, 3, 1))
        for layer in self.layers:
            y = layer(y, mask)
        return self.norm(y).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        shallow = self.conv_first(pad_to_multiple(x, self.window_size) - self.in_mean)
        deep = self.conv_after_body(self.forward_features(shallow)) + shallow
        y = crop_to(self.head(deep), h * self.scale, w * self.scale)
        if self.scale == 1:
            base = residual_source(x, self.out_channels)
            return y if base is None else y + base
        return y + self.out_mean


def _head(scale: int, upsampler: str, embed_dim: int, num_feat: int, out_channels: int) -> nn.Sequential:
    """Reconstruction module: (B, embed_dim, H, W) -> (B, out_channels, sH, sW)."""
    if scale == 1:
        return nn.Sequential(nn.Conv2d(embed_dim, out_channels, 3, padding=1))
    if upsampler == "pixelshuffledirect":
        return nn.Sequential(nn.Conv2d(embed_dim, scale * scale * out_channels, 3, padding=1), nn.PixelShuffle(scale))
    return nn.Sequential(
        nn.Conv2d(embed_dim, num_feat, 3, padding=1),
        nn.LeakyReLU(inplace=True),
        SRUpsampler(scale, num_feat),
        nn.Conv2d(num_feat, out_channels, 3, padding=1),
    )


def _init_weights(m: nn.Module) -> None:
    """Truncated-normal linear weights (std 0.02), zero biases, unit LayerNorms, as the reference."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
