"""Small linear filters shared by the simulators: Gaussian PSF, motion-blur kernels, resizing.

All take and return ``(B, C, H, W)`` tensors on the input's device. Gaussian blurs are
separable and self-adjoint with ``padding="zeros"`` (needed inside OSEM's system matrix).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548


def fwhm_to_sigma(fwhm_mm: float, pixel_size_mm: float) -> float:
    """Gaussian sigma in pixels for a FWHM in mm."""
    return fwhm_mm / FWHM_PER_SIGMA / pixel_size_mm


def gaussian_kernel1d(sigma_px: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``ceil(4 sigma)``."""
    radius = max(1, int(math.ceil(4.0 * sigma_px)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma_px) ** 2)
    return k / k.sum()


@lru_cache(maxsize=64)
def _blur_matrix(n: int, sigma_px: float, padding: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n, n)`` matrix of a 1-D Gaussian blur; "zeros" padding makes it symmetric (self-adjoint),
    "reflect" folds the weights that fall outside back inside (edge pixel not repeated)."""
    k = gaussian_kernel1d(sigma_px, dtype=torch.float64)
    r = k.numel() // 2
    rows = torch.arange(n)[:, None].expand(n, k.numel())
    cols = rows + torch.arange(-r, r + 1)[None, :]
    if padding == "reflect" and n > 1:
        period = 2 * (n - 1)
        cols = cols.remainder(period)
        cols = torch.where(cols >= n, period - cols, cols)
        keep = torch.ones_like(cols, dtype=torch.bool)
    else:
        keep = (cols >= 0) & (cols < n)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((rows[keep], cols[keep]), k.expand(n, -1)[keep], accumulate=True)
    return m.to(device=device, dtype=dtype)


def gaussian_blur(x: torch.Tensor, sigma_px: float, *, padding: str = "zeros") -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` as ``K_h x K_w^T`` (two small matmuls, fast on CPU);
    ``padding`` is "zeros" (self-adjoint, for system matrices) or "reflect" (for smoothing images)."""
    if sigma_px <= 0:
        return x
    if padding not in ("zeros", "reflect"):
        raise ValueError(f"padding must be 'zeros' or 'reflect', not {padding!r}")
    h, w = x.shape[-2:]
    kh = _blur_matrix(h, float(sigma_px), padding, x.device, x.dtype)
    kw = _blur_matrix(w, float(sigma_px), padding, x.device, x.dtype)
    return kh @ x @ kw.T


def motion_kernel(length: float, angle_deg: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Linear motion-blur kernel ``(k, k)`` of ``length`` pixels at ``angle_deg`` (counter-clockwise from
    the x axis), as MATLAB's ``fspecial('motion')`` that the SPD-VFM protocol names; sums to 1."""
    size = int(math.ceil(length)) | 1
    c = size // 2
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) - c, torch.arange(size, dtype=torch.float64) - c,
                            indexing="ij")
    theta = math.radians(angle_deg)
    along = xx * math.cos(theta) - yy * math.sin(theta)   # image rows grow downwards
    across = xx * math.sin(theta) + yy * math.cos(theta)
    # anti-aliased line segment: unit weight within half a pixel of the line, inside the length
    w = (1.0 - across.abs()).clamp_min(0) * ((length / 2 + 0.5) - along.abs()).clamp(0, 1)
    w = w / w.sum()
    return w.to(device=device, dtype=dtype)


def convolve(x: torch.Tensor, kernel: torch.Tensor, *, padding: str = "replicate") -> torch.Tensor:
    """Same-size 2-D convolution of every channel of ``(B, C, H, W)`` with one ``(k, k)`` kernel."""
    b, c, h, w = x.shape
    k = kernel.to(device=x.device, dtype=x.dtype)
    r0, r1 = k.shape[0] // 2, k.shape[1] // 2
    y = F.pad(x.reshape(b * c, 1, h, w), (r1, r1, r0, r0), mode=padding)
    # conv2d is a correlation: flip the kernel to convolve
    y = F.conv2d(y, torch.flip(k, dims=(0, 1))[None, None])
    return y.reshape(b, c, h, w)


def resize_bicubic(x: torch.Tensor, size: tuple[int, int], *, antialias: bool = True) -> torch.Tensor:
    """Bicubic resize (a = -0.75, as PyTorch; MATLAB's ``imresize`` uses a = -0.5) with antialiasing when shrinking."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=antialias)
