"""Plain convolutional U-Net with a global residual, the small CT baseline (FBPConvNet-style)."""

import torch
from torch import nn

from medir.models.args import record_args
from medir.nn.conv_unet import ConvDecoder, ConvEncoder
from medir.nn.padding import check_scale, crop_to, pad_to_multiple, residual_source, upsample_input


class UNet(nn.Module):
    """U-Net of Ronneberger et al. (2015) used as in FBPConvNet (Jin et al. 2017): the network
    predicts a residual added to its input.

    (B, in_channels, H, W) -> (B, out_channels, H*scale, W*scale), any H, W (reflect padding to
    a multiple of 2^levels); scale > 1 restores the bicubically pre-upsampled input.

    Args:
        width: channels at full resolution (Ronneberger: 64).
        levels: number of 2x downsamplings (Ronneberger: 4).
        batch_norm: batch norm after each conv (FBPConvNet: yes; Ronneberger: no).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        out_channels: int = 1,
        scale: int = 1,
        width: int = 64,
        levels: int = 4,
        batch_norm: bool = False,
    ):
        arch_args = record_args(locals())
        super().__init__()
        self.arch_args = arch_args
        check_scale(scale, (1, 2, 4), "unet")
        self.out_channels, self.scale, self.multiple = out_channels, scale, 2**levels
        self.encoder = ConvEncoder(in_channels, width, levels, batch_norm)
        self.decoder = ConvDecoder(self.encoder.out_channels, levels, batch_norm)
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = upsample_input(x, self.scale)
        h, w = x.shape[-2:]
        bottom, skips = self.encoder(pad_to_multiple(x, self.multiple))
        y = crop_to(self.head(self.decoder(bottom, skips)), h, w)
        base = residual_source(x, self.out_channels)
        return y if base is None else y + base
