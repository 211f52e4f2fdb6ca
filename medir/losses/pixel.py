"""Pixel losses as functions of ``(pred, target)``, both ``(B, C, H, W)`` in network space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean |pred - target|."""
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean (pred - target)^2."""
    return F.mse_loss(pred, target)


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """NAFNet's PSNR loss: 10 / ln(10) * mean_b log(MSE_b + eps) = -PSNR in dB for a unit data range.

    The MSE is per image (over C, H, W), then the log is averaged over the batch, as in
    NAFNet's ``PSNRLoss`` (without its RGB-to-Y option).
    """
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    return (10.0 / math.log(10.0)) * torch.log(mse + eps).mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """1 - mean SSIM (Wang et al. 2004, 11x11 Gaussian window, :func:`medir.metrics.ssim_map`) over the batch.

    ``data_range`` is the span the SSIM constants are scaled to, in the units of ``pred`` (e.g. the evaluation
    window's width in network space), so the loss rewards what the windowed SSIM metric measures.
    """
    from medir.metrics.core import ssim_map

    return 1.0 - ssim_map(pred, target, data_range).mean()


PIXEL_LOSSES = {"l1": l1_loss, "mse": mse_loss, "psnr": psnr_loss}
