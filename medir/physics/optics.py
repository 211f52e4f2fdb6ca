"""Optical degradations: surgical smoke (SPD-VFM's endoscopic dataset) and motion blur.

Smoke (SPD-VFM section IV-A 2): "Gaussian blur on random noise, blended with the original image".
Our model: uniform noise is blurred at ``octaves`` scales (sigma, sigma/2, ...; weights 1, 1/2, ...),
min-max normalised per image to a density field ``d`` in [0, 1], and alpha-blended towards a grey-white
smoke colour: ``y = (1 - a d) x + a d * smoke_level`` with ``a = density``. The noise field is drawn
apart from the image (:func:`smoke_field`) so a caller can reuse it.

Motion blur (SPD-VFM section IV-A 1, "a degree of 10 and an angle of 5 degrees") follows the OpenCV recipe
those words come from: a ``degree x degree`` diagonal line ``diag(1, ..., 1)`` rotated by ``angle`` about
``(degree / 2, degree / 2)`` with ``cv2.getRotationMatrix2D`` + ``cv2.warpAffine`` (bilinear, zeros
outside), divided by ``degree``, applied with ``cv2.filter2D`` (correlation, anchor at the kernel centre
``degree // 2``, borders reflected without repeating the edge, BORDER_REFLECT_101).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def opencv_motion_kernel(degree: int, angle_deg: float, *, dtype=torch.float64) -> torch.Tensor:
    """The OpenCV-recipe motion kernel ``(degree, degree)`` (see the module docstring); sums to about 1.

    ``K = warpAffine(diag(ones(degree)), getRotationMatrix2D((d/2, d/2), angle, 1)) / degree``. warpAffine
    samples ``src(M^-1 [x, y])`` bilinearly with zeros outside (exact weights here; OpenCV rounds the
    sub-pixel position to 1/32). A positive angle turns the line counter-clockwise on screen (rows down).
    """
    degree = int(check_range("degree", degree, lo=1))
    a, b = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    c = degree / 2.0
    ys, xs = torch.meshgrid(torch.arange(degree, dtype=torch.float64), torch.arange(degree, dtype=torch.float64),
                            indexing="ij")
    # M = [[a, b], [-b, a]] about c maps source to destination; sample the source at M^-1 (dst - c) + c
    sx = a * (xs - c) - b * (ys - c) + c
    sy = b * (xs - c) + a * (ys - c) + c
    x0, y0 = torch.floor(sx), torch.floor(sy)
    out = torch.zeros(degree, degree, dtype=torch.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (sx - xi).abs()) * (1 - (sy - yi).abs())
            inside = (xi >= 0) & (xi < degree) & (yi >= 0) & (yi < degree)
            out = out + torch.where(inside & (xi == yi), w, torch.zeros_like(w))  # source is the identity diagonal
    return (out / degree).to(dtype)


def opencv_motion_blur(x: torch.Tensor, *, degree: int = 10, angle_deg: float = 5.0) -> torch.Tensor:
    """``cv2.filter2D(x, -1, opencv_motion_kernel(degree, angle))`` on every channel of ``(B, C, H, W)``:
    correlation, anchor ``(degree // 2, degree // 2)``, BORDER_REFLECT_101 (torch's ``reflect``)."""
    check_image(x)
    if degree < 1:
        return x
    k = opencv_motion_kernel(degree, angle_deg, dtype=x.dtype).to(x.device)
    b, c, h, w = x.shape
    a = degree // 2
    y = F.pad(x.reshape(b * c, 1, h, w), (a, degree - 1 - a, a, degree - 1 - a), mode="reflect")
    return F.conv2d(y, k[None, None]).reshape(b, c, h, w)
