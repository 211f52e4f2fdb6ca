"""Losses: functions first (``medir.losses.pixel``), thin ``nn.Module`` wrappers where a method wants one."""

from medir.losses.pixel import PIXEL_LOSSES, l1_loss, mse_loss, psnr_loss

__all__ = ["PIXEL_LOSSES", "l1_loss", "mse_loss", "psnr_loss"]
