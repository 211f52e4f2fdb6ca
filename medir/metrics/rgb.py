"""Super-resolution conventions for 8-bit RGB images: the BT.601 luma (Y) and the border crop.

SR papers (EDSR, RCAN, SwinIR; RAT's released evaluation, via BasicSR) score PSNR/SSIM on the luma of
ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` computes it, ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B
in 0..255 (Y in 16..235), with data range 255, after cropping ``scale`` pixels from every border. medir reports
RGB (data range 255) first and the Y value as a labelled option.
"""

from __future__ import annotations

import numpy as np

BT601 = np.array([65.481, 128.553, 24.966]) / 255.0


def luma_bt601(rgb: np.ndarray, *, channel_axis: int = -1) -> np.ndarray:
    """ITU-R BT.601 luma (16..235) of RGB in 0..255 along ``channel_axis`` (3 channels); float64, that axis dropped."""
    x = np.moveaxis(np.asarray(rgb, dtype=np.float64), channel_axis, -1)
    if x.shape[-1] != 3:
        raise ValueError(f"luma needs 3 colour channels, got shape {np.shape(rgb)} (channel axis {channel_axis})")
    return 16.0 + x @ BT601


def crop_border(x: np.ndarray, border: int) -> np.ndarray:
    """``x[..., border:-border, border:-border, :]`` for (..., H, W, C) arrays; ``border`` 0 returns ``x``."""
    if border < 0:
        raise ValueError(f"border {border} must be >= 0")
    return x if border == 0 else x[..., border:-border, border:-border, :]
