"""The fixed mean shift of EDSR, RCAN and SwinIR (DIV2K RGB mean)."""

import torch

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def image_mean(channels: int, image_channels: int) -> torch.Tensor:
    """(1, channels, 1, 1) mean to subtract: the DIV2K RGB mean on the first three channels
    when the image is RGB (image_channels == 3), zero elsewhere (extra conditioning channels,
    grey-level images), as SwinIR does for non-RGB input. Intensities in [0, 1]."""
    mean = torch.zeros(1, channels, 1, 1)
    if image_channels == 3 and channels >= 3:
        mean[0, :3, 0, 0] = torch.tensor(DIV2K_RGB_MEAN)
    return mean
