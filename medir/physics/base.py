"""The operator contract every simulator follows: ``y = noise(A(x))``.

- Linear parts expose ``A(x)`` and ``A_adjoint(y)`` (exact transpose).
- Noise laws take an explicit ``torch.Generator``; randomness is drawn apart from the
  signal wherever the law allows (Gaussian: draw N(0, 1), then scale).
- Physical parameters (dose, counts, speed-up, scale) are keyword arguments that a call
  may override; impossible values raise :class:`medir.errors.MedirError`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from medir.errors import MedirError


@runtime_checkable
class LinearOperator(Protocol):
    """``A: (B, C, H, W) -> measurements``; ``A_adjoint`` is its transpose."""

    def A(self, x: torch.Tensor) -> torch.Tensor: ...

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor: ...


def make_generator(x: torch.Tensor, *, generator: torch.Generator | None = None,
                   seed: int | None = None) -> torch.Generator | None:
    """The generator a simulation draws from: the given one, a fresh one seeded with ``seed`` on
    ``x``'s device, or ``None`` (torch's global RNG) when neither is given."""
    if generator is not None and seed is not None:
        raise MedirError("both generator and seed were given: pass only one of them")
    if generator is not None:
        return generator
    if seed is None:
        return None
    if int(seed) < 0:
        raise MedirError(f"seed={seed} is negative: give a seed >= 0")
    return torch.Generator(device=x.device).manual_seed(int(seed))


def check_image(x: torch.Tensor, *, channels: int | None = None, name: str = "image") -> torch.Tensor:
    """Refuse anything but a finite floating ``(B, C, H, W)`` tensor (with ``channels`` channels if given)."""
    if not isinstance(x, torch.Tensor):
        raise MedirError(f"{name} is a {type(x).__name__}: pass a torch.Tensor of shape (B, C, H, W)")
    if x.ndim != 4:
        raise MedirError(f"{name} has shape {tuple(x.shape)}: simulators take (B, C, H, W) tensors")
    if channels is not None and x.shape[1] != channels:
        raise MedirError(f"{name} has {x.shape[1]} channels: this task expects {channels}")
    if not x.is_floating_point():
        raise MedirError(f"{name} has dtype {x.dtype}: convert to float32 in physical units first")
    if not torch.isfinite(x).all():
        raise MedirError(f"{name} has NaN or infinite values: fix or mask them before simulating")
    return x


def check_range(name: str, value: float, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hint: str = "") -> float:
    """``value`` inside ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``) or a one-line :class:`MedirError`."""
    v = float(value)
    bad = v != v
    if lo is not None:
        bad = bad or (v <= lo if lo_open else v < lo)
    if hi is not None:
        bad = bad or v > hi
    if bad:
        low = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
        high = "" if hi is None else f"<= {hi:g}"
        allowed = " and ".join(p for p in (low, high) if p)
        raise MedirError(f"{name}={value} is impossible: it must be {allowed}{'; ' + hint if hint else ''}")
    return v


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with ``x``'s shape, device and dtype."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def poisson(rate: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson counts of mean ``rate`` (negative rates are clamped to 0)."""
    return torch.poisson(rate.clamp_min(0), generator=generator)
