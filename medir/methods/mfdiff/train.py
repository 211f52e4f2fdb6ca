"""Two-stage supervise-assisted learning (MFdiff section 3.3) and the single-stage mixed baseline (Table 7).

Every stage is the same small loop (AdamW, random crops, a fixed number of steps) over a :class:`PairSet`:
external stage on the simulated corpus, then the internal stage fine-tunes all weights on the small shifted set.
"""

from __future__ import annotations

import torch

from medir.methods.mfdiff.data import PairSet
from medir.methods.mfdiff.network import MFdiff


def random_batch(data: PairSet, *, batch: int, crop: int | None, generator: torch.Generator) -> PairSet:
    """``batch`` items drawn with replacement, the same random ``crop`` x ``crop`` window for all four images."""
    idx = torch.randint(len(data), (batch,), generator=generator)
    out = data.subset(idx)
    h, w = out.low.shape[-2:]
    if crop is None or crop >= min(h, w):
        return out
    i = int(torch.randint(h - crop + 1, (1,), generator=generator))
    j = int(torch.randint(w - crop + 1, (1,), generator=generator))
    return PairSet(*(getattr(out, k)[..., i:i + crop, j:j + crop] for k in ("low", "mr", "high", "lesion")))


def fit(network: MFdiff, data: PairSet, *, steps: int, batch: int = 4, lr: float = 1e-4, crop: int | None = None,
        seed: int = 0, log_every: int = 0) -> list[float]:
    """Train ``network`` in place for ``steps`` AdamW steps of ``network.loss``; returns the loss of every step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(network.parameters(), lr=lr)
    network.train()
    losses = []
    for step in range(steps):
        b = random_batch(data, batch=batch, crop=crop, generator=g)
        loss = network.loss(b.low, b.mr, b.high, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}/{steps} loss {sum(losses[-log_every:]) / log_every:.4f}", flush=True)
    network.eval()
    return losses


def two_stage(network: MFdiff, external: PairSet, internal: PairSet, *, external_steps: int, internal_steps: int,
              **kw) -> MFdiff:
    """External stage on the simulated corpus, then the internal stage on the small shifted set (paper 50k + 20k)."""
    fit(network, external, steps=external_steps, **kw)
    fit(network, internal, steps=internal_steps, **{**kw, "seed": kw.get("seed", 0) + 1})
    return network


def single_stage(network: MFdiff, external: PairSet, internal: PairSet, *, steps: int, **kw) -> MFdiff:
    """The mixed baseline: one stage on the union of both sets, as many steps as the two stages together."""
    fit(network, PairSet.cat([external, internal]), steps=steps, **kw)
    return network
