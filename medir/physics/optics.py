"""Optical degradations: surgical smoke (SPD-VFM's endoscopic dataset) and motion blur.

Smoke (SPD-VFM section IV-A 2): "Gaussian blur on random noise, blended with the original image".
Our model: uniform noise is blurred at ``octaves`` scales (sigma, sigma/2, ...; weights 1, 1/2, ...),
min-max normalised per image to a density field ``d`` in [0, 1], and alpha-blended towards a grey-white
smoke colour: ``y = (1 - a d) x + a d * smoke_level`` with ``a = density``. The noise field is drawn
apart from the image (:func:`smoke_field`) so a caller can reuse it.
"""

from __future__ import annotations

import torch

from medir.physics.base import check_image, check_range, make_generator
from medir.physics.filters import convolve, gaussian_blur, motion_kernel


def smoke_field(batch: int, height: int, width: int, *, sigma_px: float, octaves: int = 3,
                generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Smoke density ``(B, 1, H, W)`` in [0, 1]: multi-scale Gaussian-blurred uniform noise."""
    field = torch.zeros(batch, 1, height, width, device=device, dtype=dtype)
    for k in range(octaves):
        noise = torch.rand(batch, 1, height, width, generator=generator, device=device, dtype=dtype)
        field = field + 0.5 ** k * gaussian_blur(noise, sigma_px / 2 ** k, padding="reflect")
    lo = field.amin(dim=(2, 3), keepdim=True)
    hi = field.amax(dim=(2, 3), keepdim=True)
    return (field - lo) / (hi - lo).clamp_min(1e-12)


def blend_smoke(x: torch.Tensor, field: torch.Tensor, *, density: float, smoke_level: float) -> torch.Tensor:
    """``(1 - density * field) x + density * field * smoke_level`` on every channel."""
    alpha = density * field
    return (1.0 - alpha) * x + alpha * smoke_level


def simulate_endo_smoke(
    x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None, density: float = 0.6,
    sigma_px: float | None = None, octaves: int = 3, smoke_level: float = 230.0,
) -> torch.Tensor:
    """RGB (or grey) ``(B, C, H, W)`` in 0..255 -> smoky image, same units. ``sigma_px`` defaults to
    ``min(H, W) / 8``; ``density`` in [0, 1] is the opacity of the thickest smoke."""
    check_image(x)
    check_range("density", density, lo=0.0, hi=1.0)
    check_range("octaves", octaves, lo=1, hi=8)
    b, _, h, w = x.shape
    sigma = min(h, w) / 8.0 if sigma_px is None else check_range("sigma_px", sigma_px, lo=0.0, lo_open=True)
    gen = make_generator(x, generator=generator, seed=seed)
    field = smoke_field(b, h, w, sigma_px=sigma, octaves=int(octaves), generator=gen, device=x.device, dtype=x.dtype)
    return blend_smoke(x, field, density=density, smoke_level=smoke_level)


def motion_blur(x: torch.Tensor, *, length: float = 10.0, angle_deg: float = 5.0) -> torch.Tensor:
    """Linear motion blur of ``(B, C, H, W)`` (SPD-VFM: length 10, angle 5 degrees), replicate borders."""
    check_range("length", length, lo=0.0)
    if length == 0:
        return x
    return convolve(x, motion_kernel(length, angle_deg))
