"""The plain method: a backbone trained with a pixel loss on (lq, hq) pairs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medir.losses import PIXEL_LOSSES


class Supervised(nn.Module):
    """``forward(batch) -> (loss, logs)`` with ``loss = L(backbone(lq), hq)``.

    batch: ``lq`` (B, C, h, w) and ``hq`` (B, C, h*s, w*s) in network space.
    loss: ``l1`` (mean absolute error), ``mse``, or ``psnr`` (NAFNet's 10/ln10 * log(MSE + 1e-8)).
    """

    def __init__(self, network: nn.Module, *, loss: Literal["l1", "mse", "psnr"] = "l1"):
        super().__init__()
        if loss not in PIXEL_LOSSES:
            raise ValueError(f"unknown loss '{loss}': use one of {', '.join(PIXEL_LOSSES)}")
        self.network = network
        self.loss_name = loss
        self.loss_fn = PIXEL_LOSSES[loss]

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        pred = self.network(batch["lq"])
        loss = self.loss_fn(pred, batch["hq"])
        return loss, {self.loss_name: loss.detach()}

    @torch.no_grad()
    def restore(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The restored ``hq`` estimate in network space (what inference will compute)."""
        return self.network(batch["lq"])
