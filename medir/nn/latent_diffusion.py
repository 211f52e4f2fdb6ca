"""DiffIR-style latent diffusion (Xia et al. 2023; DiffCode section 2.2): a few steps, x0 prediction, deterministic.

Schedule: ``beta_t = linspace(sqrt(0.1), sqrt(0.99), T)^2`` (DiffIR's "linear" schedule; the DiffCode paper says
"increasing linearly from 0.1 to 0.99"), ``alpha_t = 1 - beta_t``, ``abar_t = prod_{s<=t} alpha_s``, T = 8.

Forward (equation 4): ``z_T = sqrt(abar_T) z + sqrt(1 - abar_T) eps``.

Reverse step: the denoiser predicts ``x0`` from ``(z_t, c, t)``; the step returns the posterior mean of
``q(z_{t-1} | z_t, x0)`` without added noise (DiffIR removes the variance):

    z_{t-1} = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0 + (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) z_t.

Training runs the whole chain from ``q(z_T | z_gt)`` and takes L1 to ``z_gt`` (equation 6); inference starts from
``z_T ~ N(0, I)`` (with abar_T = 3e-4 for T = 8 the two starts are nearly the same distribution).
"""

from __future__ import annotations

import torch
from torch import nn


def diffir_betas(steps: int, *, start: float = 0.1, end: float = 0.99) -> torch.Tensor:
    """(T,) float64 betas ``linspace(sqrt(start), sqrt(end), T)^2``."""
    return torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64, device="cpu") ** 2


class Schedule:
    """Posterior-mean coefficients of a beta schedule; index ``t`` in ``0..T-1`` is the paper's step ``t + 1``.
    Plain Python floats, so a model built on any device (even ``meta``) uses them alike."""

    def __init__(self, betas: torch.Tensor):
        betas = betas.to("cpu", torch.float64)
        self.steps = betas.numel()
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        self.abar = abar.tolist()
        self.coef_x0 = (betas * abar_prev.sqrt() / (1.0 - abar)).tolist()
        self.coef_zt = ((1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar)).tolist()


class LatentDenoiser(nn.Module):
    """DiffIR's denoiser: 5 linear layers (LeakyReLU 0.1) on ``concat[c, t / (10 T)... , z]`` per latent position.

    ``forward(z, c, t)``: ``z`` (B, dim, H, W), condition ``c`` (B, cond_dim, H, W), ``t`` int step -> x0 (B, dim, H, W).
    The linear layers are 1x1 convolutions, i.e. the same MLP at every latent position.
    """

    def __init__(self, dim: int, cond_dim: int, *, hidden: int | None = None, steps: int = 8):
        super().__init__()
        hidden = hidden or 2 * dim
        self.steps = steps
        sizes = [dim + cond_dim + 1, hidden, hidden, hidden, hidden, dim]
        layers: list[nn.Module] = []
        for i in range(5):
            layers.append(nn.Conv2d(sizes[i], sizes[i + 1], 1))
            if i < 4:
                layers.append(nn.LeakyReLU(0.1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, c: torch.Tensor, t: int) -> torch.Tensor:
        time = z.new_full((z.shape[0], 1, *z.shape[-2:]), t / (10.0 * self.steps))
        return self.mlp(torch.cat([c, time, z], dim=1))


def reverse_chain(denoiser: nn.Module, z_t: torch.Tensor, c: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Deterministic posterior-mean steps from ``z_T`` down to the estimate of ``z_0``; returns it, same shape."""
    z = z_t
    for t in reversed(range(schedule.steps)):
        x0 = denoiser(z, c, t)
        if t == 0:
            return x0
        z = schedule.coef_x0[t] * x0 + schedule.coef_zt[t] * z
    return z


def noised(z: torch.Tensor, schedule: Schedule, *, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``z_T = sqrt(abar_T) z + sqrt(1 - abar_T) eps`` (equation 4)."""
    eps = torch.randn_like(z) if noise is None else noise
    abar = schedule.abar[-1]
    return abar**0.5 * z + (1.0 - abar) ** 0.5 * eps
