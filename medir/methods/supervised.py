"""The plain method: a backbone trained with a pixel loss on (lq, hq) pairs, scored by PSNR / SSIM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from medir.losses import PIXEL_LOSSES, ssim_loss


@dataclass(frozen=True)
class RestorationScore:
    """PSNR (dB) and SSIM of a restoration in physical units, as the validation data's preset says.

    ``window``: the preset's evaluation window ``(lo, hi)`` in physical units (e.g. CT L40/W400), or None;
    ``data_range``: a number, or ``"target"`` (the target's own range). See :mod:`medir.metrics`.
    """

    window: tuple[float, float] | None = None
    data_range: float | str = "target"

    def __call__(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``pred`` (B, C, H, W) network space -> ``psnr``, ``ssim`` and, without a scale change, ``psnr_input``."""
        from medir.data.datasets import from_network
        from medir.metrics import psnr, ssim

        rng = dict(data_range=self.data_range, window=self.window)
        pred = from_network(pred.float(), batch).cpu()
        target = from_network(batch["hq"], batch).cpu()
        scores = {"psnr": psnr(pred, target, **rng), "ssim": ssim(pred, target, **rng)}
        if batch["lq"].shape == batch["hq"].shape:
            scores["psnr_input"] = psnr(from_network(batch["lq"], batch).cpu(), target, **rng)
        return scores


class Supervised(nn.Module):
    """``forward(batch) -> (loss, logs)`` with ``loss = L(backbone(lq), hq)``.

    batch: ``lq`` (B, C, h, w) and ``hq`` (B, C, h*s, w*s) in network space.
    loss: ``l1`` (mean absolute error), ``mse``, or ``psnr`` (NAFNet's 10/ln10 * log(MSE + 1e-8)).
    score: how :meth:`validate` scores a restoration (set from the data config by the method's builder).
    window: ``(lo, hi)`` in network space (the evaluation window, e.g. [-160, 240] HU; the builder converts it), or
    None: the loss is then ``L(clip(pred), clip(hq)) + outside_weight * L(pred, hq)`` with ``clip`` to ``[lo, hi]``,
    so the network spends its capacity where the windowed metric looks (soft tissue, not bone edges or air) while
    values outside the window stay trained (with a small weight).
    ssim_weight: adds ``ssim_weight * (1 - SSIM)`` (:func:`medir.losses.ssim_loss`), computed in the window when
    there is one (its width is the SSIM data range) and on ``[0, 1]`` otherwise; 0 (the default) leaves it out.
    """

    def __init__(self, network: nn.Module, *, loss: Literal["l1", "mse", "psnr"] = "l1",
                 score: RestorationScore = RestorationScore(), window: tuple[float, float] | None = None,
                 outside_weight: float = 0.1, ssim_weight: float = 0.0):
        super().__init__()
        if loss not in PIXEL_LOSSES:
            raise ValueError(f"unknown loss '{loss}': use one of {', '.join(PIXEL_LOSSES)}")
        self.network = network
        self.loss_name = loss
        self.loss_fn = PIXEL_LOSSES[loss]
        self.score = score
        if window is not None and not window[0] < window[1]:
            raise ValueError(f"the loss window {window} is empty: give (lo, hi) with lo < hi")
        if outside_weight < 0:
            raise ValueError(f"outside_weight {outside_weight} must be >= 0")
        if ssim_weight < 0:
            raise ValueError(f"ssim_weight {ssim_weight} must be >= 0")
        self.window, self.outside_weight, self.ssim_weight = window, float(outside_weight), float(ssim_weight)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        pred = self.network(batch["lq"])
        if pred.shape != batch["hq"].shape:  # a shape check, not a sync: caught at start-up, before any step
            raise ValueError(f"the model maps {tuple(batch['lq'].shape[1:])} to {tuple(pred.shape[1:])} but the "
                             f"data needs {tuple(batch['hq'].shape[1:])}: set model.args (channels, scale) to fit")
        if self.window is None:
            loss = self.loss_fn(pred, batch["hq"])
            logs = {self.loss_name: loss.detach()}
            inside_pred, inside_hq, span = pred, batch["hq"], 1.0
        else:
            lo, hi = self.window
            inside_pred, inside_hq, span = pred.clamp(lo, hi), batch["hq"].clamp(lo, hi), hi - lo
            inside = self.loss_fn(inside_pred, inside_hq)
            loss = inside + self.outside_weight * self.loss_fn(pred, batch["hq"])
            logs = {self.loss_name: loss.detach(), f"{self.loss_name}_window": inside.detach()}
        if self.ssim_weight > 0:
            structural = ssim_loss(inside_pred, inside_hq, data_range=span)
            loss = loss + self.ssim_weight * structural
            logs["ssim_loss"] = structural.detach()
        return loss, logs

    @torch.no_grad()
    def restore(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The restored ``hq`` estimate in network space (what inference will compute)."""
        return self.network(batch["lq"])

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR / SSIM of :meth:`restore` in physical units (see :class:`RestorationScore`)."""
        return self.score(self.restore(batch), batch)
