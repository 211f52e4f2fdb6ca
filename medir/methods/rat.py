"""RAT as a method: the RAT U-Net (:class:`medir.models.rat.RAT`) trained with the focal region loss.

Region maps come, in order of preference, from the batch (``batch["regions"]``, ``(B, h, w)`` int on the
low-quality grid: oracle labels of a simulation, or maps made offline with SAM) or from the network's own
segmenter applied to the low-quality input, exactly what inference does (the paper: ``M =
Postprocess(SAM(I^LQ))``). We segment the training patch itself, not the whole slice before cropping
(the paper cropped maps made offline): a patch gets at most as many regions as a whole slice, so
training patches are partitioned somewhat more finely per pixel than the paper's cropped maps.

``forward(batch) -> (loss, logs)``, ``validate(batch) -> {psnr, ssim, psnr_input}`` (as ``supervised``);
the trained ``network`` is saved as a plain medir model file, so ``medir restore --model`` runs it and
computes region maps on the fly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medir.errors import ConfigError
from medir.losses.region import focal_region_loss
from medir.methods.supervised import RestorationScore


class RATMethod(nn.Module):
    """``loss``: ``focal`` (equation 5, ``gamma``, ``delta``) or ``l1`` (the paper's ablation baseline)."""

    def __init__(self, network: nn.Module, *, loss: Literal["focal", "l1"] = "focal", gamma: float = 1e-3,
                 delta: float = 1.0, score: RestorationScore = RestorationScore()):
        super().__init__()
        if loss not in ("focal", "l1"):
            raise ValueError(f"unknown loss '{loss}': use focal or l1")
        if gamma < 0 or delta <= 0:
            raise ValueError(f"gamma must be >= 0 and delta > 0 (got gamma={gamma}, delta={delta})")
        self.network, self.loss_name, self.gamma, self.delta, self.score = network, loss, gamma, delta, score

    def regions(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, h, w) int labels of the low-quality images: the batch's own, else the network's segmenter."""
        if "regions" in batch:
            return batch["regions"].long()
        return self.network.region_maps(batch["lq"])

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        uses_regions = self.network.needs_regions or self.loss_name == "focal"
        labels = self.regions(batch) if uses_regions else None
        pred = self.network(batch["lq"], labels if self.network.needs_regions else None)
        target = batch["hq"]
        if pred.shape != target.shape:
            raise ValueError(f"the model maps {tuple(batch['lq'].shape[1:])} to {tuple(pred.shape[1:])} but the "
                             f"data needs {tuple(target.shape[1:])}: set model.args (channels, scale) to fit")
        if self.loss_name == "l1":
            loss = (pred - target).abs().mean()
        else:
            s = target.shape[-1] // batch["lq"].shape[-1]
            hq_labels = labels.repeat_interleave(s, -2).repeat_interleave(s, -1) if s > 1 else labels
            loss = focal_region_loss(pred, target, hq_labels, gamma=self.gamma, delta=self.delta)
        return loss, {self.loss_name: loss.detach()}

    @torch.no_grad()
    def restore(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The restored ``hq`` estimate in network space (inference computes the same maps from ``lq``)."""
        labels = self.regions(batch) if self.network.needs_regions else None
        return self.network(batch["lq"], labels)

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return self.score(self.restore(batch), batch)


def build_rat(config, *, data) -> nn.Module:
    """:class:`RATMethod` on ``model.arch: rat`` (or a ``rat_*`` preset, or a RAT model file in ``model.init``).

    The network is told the training data's modality and intensity preset (unless ``model.args`` says
    otherwise) so that it can segment images given in network space, at training and at inference.
    """
    from medir.data.intensity import get_preset
    from medir.methods import construct, initial_weights
    from medir.models import build_model, build_preset
    from medir.models.rat import RAT

    m = config.model
    preset = get_preset(config.data.train.preset)
    if m.arch is None and m.preset is None and m.init is None:
        raise ConfigError("method 'rat' trains a RAT network: set model.arch: rat (with model.args) or "
                          "model.preset: rat_tiny / rat_base")
    if (m.arch is not None and m.arch != "rat") or (m.preset is not None and not m.preset.startswith("rat_")):
        raise ConfigError(f"method 'rat' needs a RAT network, got {m.arch or m.preset}: set model.arch: rat or "
                          "model.preset: rat_tiny / rat_base")
    if m.arch is None and m.preset is None:
        network = initial_weights(m.init, None)
    else:
        kwargs = {"in_channels": data.channels, "out_channels": data.channels, "modality": preset.modality,
                  "intensity": preset.name, **m.args}
        network = build_model(m.arch, **kwargs) if m.arch else build_preset(m.preset, **kwargs)
        if m.init:
            network = initial_weights(m.init, network)
    if not isinstance(network, RAT):
        raise ConfigError(f"method 'rat' needs a RAT network, got {type(network).__name__}: set model.arch: rat")
    score = RestorationScore(window=get_preset((config.data.val or config.data.train).preset).eval_window,
                             data_range=config.data.data_range)
    return construct(RATMethod, "rat", config.method.args, network, score=score)
