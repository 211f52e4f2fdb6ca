"""Noise laws. Each takes an explicit ``torch.Generator`` (``None`` = torch's global RNG).

Gaussian-type laws draw standard normals first and then scale them (randomness apart from
the signal); count laws (Poisson, binomial) need the mean to draw and take it directly.
"""

from __future__ import annotations

import torch

from medir.physics.base import check_range, gaussian_like, poisson


def poisson_counts(expected: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Counts ``~ Poisson(expected)``; mean = variance = expected (expected clamped at 0)."""
    return poisson(expected, generator)


def binomial_thinning(counts: torch.Tensor, keep: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep each detected event with probability ``keep``: ``Binomial(counts, keep)``.

    For Poisson counts of mean ``m`` the result is exactly Poisson of mean ``keep * m``, which is how
    a shorter (or faster) acquisition of the same object behaves. ``counts`` are rounded to integers.
    """
    keep = check_range("keep", keep, lo=0.0, hi=1.0)
    n = counts.round().clamp_min(0)
    if keep == 1.0:
        return n
    return torch.binomial(n, torch.full_like(n, keep), generator=generator)


def gaussian_noise(x: torch.Tensor, std: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + std * N(0, 1)``."""
    return x + std * gaussian_like(x, generator) if std > 0 else x


def speckle_noise(x: torch.Tensor, variance: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiplicative speckle ``x + x * n``, ``n ~ N(0, variance)`` (MATLAB ``imnoise(..., 'speckle')`` uses
    uniform noise of the same variance; the SPD-VFM paper says mean 0, variance 0.01 without naming the law)."""
    return x + x * (variance ** 0.5) * gaussian_like(x, generator) if variance > 0 else x


def rician_noise(x: torch.Tensor, std: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Magnitude of a complex signal with Gaussian noise on both channels: ``|x + std (n1 + i n2)|``
    (MR magnitude images, Gudbjartsson & Patz 1995)."""
    if std <= 0:
        return x
    real = x + std * gaussian_like(x, generator)
    imag = std * gaussian_like(x, generator)
    return torch.sqrt(real ** 2 + imag ** 2)
