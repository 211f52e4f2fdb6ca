"""Noise schedules of denoising diffusion (Ho et al. 2020, "Denoising Diffusion Probabilistic Models").

Forward process (MFdiff equations 6-7): ``q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`` with
``abar_t = prod_{s <= t} (1 - beta_s)``. Timesteps are 0-based here: ``t = 0`` is the paper's ``t = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    """``betas`` (T,) float64 and the cumulative ``alphas_cumprod`` (T,) float64."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @property
    def steps(self) -> int:
        return int(self.betas.shape[0])


def linear_schedule(steps: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 2e-2) -> Schedule:
    """DDPM's linear schedule: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end`` over ``steps`` (T)."""
    if steps < 1:
        raise ValueError(f"steps={steps}: a schedule needs at least one step")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"betas must satisfy 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    return Schedule(betas, torch.cumprod(1.0 - betas, dim=0))


def _at(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped (B, 1, 1, 1) in ``like``'s dtype and device."""
    return values.to(like.device)[t.to(like.device)].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` (MFdiff equation 7); ``t`` (B,) integer timesteps."""
    abar = _at(schedule.alphas_cumprod, t, x0)
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise
