"""Reverse-process samplers, pure functions with one signature (see :mod:`medir.diffusion`).

Both are the generalised step of Song et al. 2021 ("Denoising Diffusion Implicit Models", equation 12)
on a subsequence ``tau`` of the T training timesteps::

    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z
    sigma  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)

- :func:`ddpm`: ancestral sampling, ``eta = 1``; with ``steps = T`` this is exactly DDPM's update
  (MFdiff equation 8) with ``sigma_t^2 = beta~_t``, the posterior variance;
- :func:`ddim`: deterministic, ``eta = 0``, any number of steps (our default: 50).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from medir.diffusion.schedules import Schedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int], None]


def timesteps(total: int, steps: int) -> list[int]:
    """``steps`` timesteps evenly spread over [0, total), descending and always ending at 0 (DDIM's tau)."""
    if not 1 <= steps <= total:
        raise ValueError(f"steps={steps}: choose 1 to {total} (the schedule's T)")
    idx = torch.linspace(0, total - 1, steps).round().long().unique()
    return idx.flip(0).tolist()


def _generalized(eps_fn: EpsFn, x: torch.Tensor, *, schedule: Schedule, steps: int, eta: float,
                 generator: torch.Generator | None, clip: tuple[float, float] | None,
                 callback: Callback | None) -> torch.Tensor:
    abar = schedule.alphas_cumprod
    seq = timesteps(schedule.steps, steps)
    for i, t in enumerate(seq):
        a_t = float(abar[t])
        a_prev = float(abar[seq[i + 1]]) if i + 1 < len(seq) else 1.0
        eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x - a_t ** 0.5 * x0) / (1.0 - a_t) ** 0.5
        sigma = eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)) ** 0.5
        x = a_prev ** 0.5 * x0 + max(1.0 - a_prev - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if callback is not None:
            callback(i + 1, len(seq))
    return x


def ddpm(eps_fn: EpsFn, x: torch.Tensor, *, schedule: Schedule, steps: int | None = None,
         generator: torch.Generator | None = None, clip: tuple[float, float] | None = None,
         callback: Callback | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, algorithm 2) from ``x = x_T``; ``steps`` defaults to T."""
    return _generalized(eps_fn, x, schedule=schedule, steps=steps or schedule.steps, eta=1.0, generator=generator,
                        clip=clip, callback=callback)


def ddim(eps_fn: EpsFn, x: torch.Tensor, *, schedule: Schedule, steps: int | None = 50,
         generator: torch.Generator | None = None, clip: tuple[float, float] | None = None,
         callback: Callback | None = None) -> torch.Tensor:
    """Deterministic DDIM sampling (Song et al. 2021, eta = 0) from ``x = x_T`` in ``steps`` steps."""
    return _generalized(eps_fn, x, schedule=schedule, steps=steps or schedule.steps, eta=0.0, generator=generator,
                        clip=clip, callback=callback)


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddpm": ddpm, "ddim": ddim}


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    """The sampler called ``name``; ValueError naming the choices otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}': use one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


def sample_stats(sampler: Callable[..., torch.Tensor], eps_fn: EpsFn, shape: tuple[int, ...], *, samples: int,
                 schedule: Schedule, steps: int | None, generator: torch.Generator | None = None,
                 clip: tuple[float, float] | None = None, callback: Callback | None = None,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-pixel standard deviation (the uncertainty map) over ``samples`` draws of ``shape``.

    Each draw starts from its own ``x_T ~ N(0, I)``; with one sample the std is zeros. The std is the
    population std (divides by ``samples``). ``callback(step, total)`` counts steps over all draws.
    """
    if samples < 1:
        raise ValueError(f"samples={samples}: draw at least one sample")
    total = [0]
    n_steps = len(timesteps(schedule.steps, steps or schedule.steps))

    def tick(i: int, n: int) -> None:
        total[0] += 1
        if callback is not None:
            callback(total[0], n_steps * samples)

    mean = torch.zeros(shape, device=device)
    sq = torch.zeros(shape, device=device)
    for _ in range(samples):
        x_t = torch.randn(shape, generator=generator, device=device)
        x0 = sampler(eps_fn, x_t, schedule=schedule, steps=steps, generator=generator, clip=clip, callback=tick)
        mean += x0
        sq += x0 * x0
    mean /= samples
    var = (sq / samples - mean * mean).clamp_min(0.0)
    return mean, var.sqrt()
