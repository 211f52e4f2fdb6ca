"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def cosine_lr(step: int, *, base_lr: float, steps: int, warmup: int = 0, min_lr: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr`` at ``steps``.

    lr(s) = base_lr * (s + 1) / (warmup + 1) for s < warmup;
    lr(s) = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2 with p = (s - warmup) / (steps - warmup)
    (SGDR, Loshchilov & Hutter 2017, without restarts). Steps past ``steps`` stay at ``min_lr``.
    """
    if step < warmup:
        return base_lr * (step + 1) / (warmup + 1)
    if step >= steps:
        return min_lr
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
