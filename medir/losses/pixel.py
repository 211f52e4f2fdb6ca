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


PIXEL_LOSSES = {"l1": l1_loss, "mse": mse_loss, "psnr": psnr_loss}
