"""Losses: functions first (``medir.losses.pixel``), thin ``nn.Module`` wrappers where a method wants one."""

from medir.losses.pixel import PIXEL_LOSSES, l1_loss, mse_loss, psnr_loss, ssim_loss
from medir.losses.region import FocalRegionLoss, focal_region_loss, region_weights

__all__ = ["PIXEL_LOSSES", "FocalRegionLoss", "focal_region_loss", "l1_loss", "mse_loss", "psnr_loss", "region_weights",
           "ssim_loss"]
