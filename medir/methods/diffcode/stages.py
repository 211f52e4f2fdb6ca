"""DiffCode's three training stages, each a method ``forward(batch) -> (loss, logs)`` over one :class:`DiffCodeNet`.

Batches come from :mod:`medir.data.allinone`: ``lq``, ``hq`` (B, 1, H, W) in each task's network scale and
``task`` (B,) int64.

- Stage I (equation 3): the VQ autoencoder on HQ images, ``|hq - G(q(E(hq)))|_1 + codebook + 0.25 commitment``;
  the task label picks the codebook of the bank.
- Stage II (equation 6): condition encoder + latent denoiser, ``|z - z_hat|_1`` with ``z = E_vq(hq)`` (frozen,
  detached) and ``z_hat`` the reverse chain run from ``q(z_T | z)``; without diffusion, ``z_hat`` = the direct
  1x1 head on the condition (the V3 variant of Table 2a). Stage I's parts are frozen.
- Stage III (equation 7): the restorer on concat[LQ, reference], ``|hq - y|_1``, plus the task classifier's
  cross-entropy and ``balance_weight`` x the load-balance loss of the task gate; the label picks the codebook and
  the experts (the classifier, fed the LQ image in physical units, learns to predict it for inference). Stage I and II parts are frozen.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medir.models.diffcode import DiffCodeNet
from medir.nn.latent_diffusion import noised, reverse_chain
from medir.nn.routing import load_balance_loss

PRIOR_PARTS = ("vq_encoder", "bank", "vq_decoder")
RETRIEVAL_PARTS = ("cond_encoder", "denoiser", "direct")


def _freeze(network: nn.Module, names: tuple[str, ...], *, frozen: bool) -> None:
    for name in names:
        part = getattr(network, name, None)
        if part is not None:
            part.requires_grad_(not frozen)


class _Stage(nn.Module):
    stage = 0
    trains: tuple[str, ...] = ()  # the parts of the network this stage trains (stages I and II)

    def __init__(self, network: DiffCodeNet):
        super().__init__()
        self.network = network
        if self.stage < 3 and not network.prior:
            raise ValueError(f"stage {self.stage} trains the prior, but the network has prior=False")
        if self.trains:
            network.requires_grad_(False)
            _freeze(network, self.trains, frozen=False)

    def save(self, path: Path, *, metrics: dict, training: dict) -> None:
        from medir.methods.diffcode.runner import save_diffcode

        save_diffcode(self.network, path, metrics=metrics, training={**training, "stage": self.stage})


class StageOne(_Stage):
    """VQ autoencoder with the codebook bank, on HQ images."""

    stage = 1
    trains = PRIOR_PARTS

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        net, hq = self.network, batch["hq"]
        zq, _, vq = net.bank(net.vq_encoder(hq), batch["task"])
        recon = F.l1_loss(net.vq_decoder(zq), hq)
        return recon + vq["codebook"] + vq["commitment"], {"l1": recon.detach(), **{k: v.detach() for k, v in vq.items()}}


class StageTwo(_Stage):
    """Latent retrieval: condition encoder + latent diffusion (or the direct head)."""

    stage = 2
    trains = RETRIEVAL_PARTS

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        net = self.network
        with torch.no_grad():
            z = net.vq_encoder(batch["hq"])
        if net.diffusion:
            z_hat = reverse_chain(net.denoiser, noised(z, net.schedule), net.cond_encoder(batch["lq"]), net.schedule)
        else:
            z_hat = net.direct(net.cond_encoder(batch["lq"]))
        loss = F.l1_loss(z_hat, z)
        return loss, {"latent_l1": loss.detach()}


class StageThree(_Stage):
    """Prior-guided, routed restoration; trains the classifier, the gate and the restorer."""

    stage = 3

    def __init__(self, network: DiffCodeNet, *, balance_weight: float = 1e-3, classifier_weight: float = 1.0):
        super().__init__(network)
        network.requires_grad_(True)
        _freeze(network, PRIOR_PARTS + RETRIEVAL_PARTS, frozen=True)
        self.balance_weight, self.classifier_weight = balance_weight, classifier_weight

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        net, lq, task = self.network, batch["lq"], batch["task"]
        logits = net.classifier(physical(lq, batch))
        v, weights = net.gate(F.one_hot(task, net.tasks).float())
        if net.prior:
            with torch.no_grad():
                ref = net.reference(lq, task)
            lq_in = torch.cat([lq, ref], dim=1)
        else:
            lq_in = lq
        l1 = F.l1_loss(net.restorer(lq_in, weights), batch["hq"])
        ce = F.cross_entropy(logits, task)
        balance = load_balance_loss(v, weights)
        loss = l1 + self.classifier_weight * ce + self.balance_weight * balance
        accuracy = (logits.argmax(dim=1) == task).float().mean()
        return loss, {"l1": l1.detach(), "ce": ce.detach(), "balance": balance.detach(), "acc": accuracy}

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """PSNR (per-image data range = target max - min, network scale) with the classifier choosing the task."""
        lq, hq = batch["lq"], batch["hq"]
        task = self.network.classifier(physical(lq, batch)).argmax(dim=1)
        y = self.network.restore(lq, task)
        mse = F.mse_loss(y, hq).clamp_min(1e-12)
        data_range = (hq.max() - hq.min()).clamp_min(1e-12)
        return {"psnr": float(10 * torch.log10(data_range**2 / mse)), "task_ok": float((task == batch["task"]).all())}


def physical(x: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Network-scale ``x`` back to physical units (the classifier's input) with each sample's offset and span."""
    return x * batch["span"].view(-1, 1, 1, 1) + batch["offset"].view(-1, 1, 1, 1)


STAGES = {1: StageOne, 2: StageTwo, 3: StageThree}
