"""LRformer as a training method: RLPP prior (no gradient) + the guided restorer + a pixel loss.

``loss = L(net.restore(lq, RLPP(lq)), hq)``: the prior is computed from the low-quality input, as at
inference where only the image is given (:class:`medir.models.lrformer.LRformer` computes it inside its
``forward``). The abstract names no loss; L1 is the default as in Restormer and FFTformer.
"""

from __future__ import annotations

from typing import Literal

import torch

from medir.errors import ConfigError
from medir.methods.supervised import RestorationScore, Supervised
from medir.models.lrformer import LRformer


class LRformerMethod(Supervised):
    """``forward(batch) -> (loss, logs)``; logs the loss and the mean prior reliability of the batch.

    ``prior_cache``: a folder where the segmenter's label maps are kept (:mod:`medir.priors.cache`), worth it
    when the same inputs come back (fixed pairs without augmentation); None computes them every step.
    """

    def __init__(self, network: LRformer, *, loss: Literal["l1", "mse", "psnr"] = "l1",
                 score: RestorationScore = RestorationScore(), prior_cache: str | None = None):
        if not isinstance(network, LRformer):
            raise ValueError(f"method 'lrformer' trains an LRformer network, not {type(network).__name__}")
        super().__init__(network, loss=loss, score=score)
        network.prior_cache = prior_cache

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        prior = self.network.prior_for(batch["lq"])
        pred = self.network.restore(batch["lq"], prior)
        if pred.shape != batch["hq"].shape:
            raise ValueError(f"the model maps {tuple(batch['lq'].shape[1:])} to {tuple(pred.shape[1:])} but the "
                             f"data needs {tuple(batch['hq'].shape[1:])}: set model.args (channels, scale) to fit")
        loss = self.loss_fn(pred, batch["hq"])
        logs = {self.loss_name: loss.detach()}
        if prior is not None:
            logs["reliability"] = prior[:, 2].mean()
        return loss, logs


def build_lrformer(config, *, data) -> LRformerMethod:
    """The LRformer network from ``model.arch: lrformer`` (+ args) or an ``lrformer_*`` preset (default
    ``lrformer_tiny``), told the training data's modality and intensity preset so that its segmenter sees
    physical units; then :class:`LRformerMethod` with ``method.args`` (loss, prior_cache)."""
    from medir.data.intensity import get_preset
    from medir.methods import construct, initial_weights
    from medir.models import build_model, build_preset

    m = config.model
    if m.arch not in (None, "lrformer") or (m.preset is not None and not m.preset.startswith("lrformer")):
        raise ConfigError("method 'lrformer' trains the lrformer architecture: set model.arch: lrformer or "
                          "model.preset: lrformer_tiny / lrformer_base")
    train_preset = get_preset(config.data.train.preset)
    kwargs = {"in_channels": data.channels, "out_channels": data.channels, "scale": data.scale,
              "modality": train_preset.modality, "intensity": train_preset.to_dict(), **m.args}
    network = build_model("lrformer", **kwargs) if m.arch else build_preset(m.preset or "lrformer_tiny", **kwargs)
    if m.init:
        network = initial_weights(m.init, network)
    val_preset = get_preset((config.data.val or config.data.train).preset)
    score = RestorationScore(window=val_preset.eval_window, data_range=config.data.data_range)
    return construct(LRformerMethod, "lrformer", config.method.args, network, score=score)
