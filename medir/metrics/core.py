"""PSNR, SSIM, NMSE and RMSE with an explicit data range (see ``medir.metrics``)."""

from __future__ import annotations

from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

from medir.errors import InputError

DataRange = Union[float, Literal["target"]]
Reduce = Literal["mean", "none"]


def _as_bchw(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach()
    t = t.to(device="cpu", dtype=torch.float64)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise InputError(f"{name} has shape {tuple(t.shape)}: metrics take (H, W), (C, H, W) or (B, C, H, W)")
    return t


def _prepare(pred, target, window, mask):
    p, t = _as_bchw(pred, "prediction"), _as_bchw(target, "target")
    if p.shape != t.shape:
        raise InputError(f"prediction {tuple(p.shape)} and target {tuple(t.shape)} differ in shape: resample first")
    if window is not None:
        lo, hi = window
        p, t = p.clamp(lo, hi), t.clamp(lo, hi)
    m = None
    if mask is not None:
        m = _as_bchw(mask, "mask").bool().expand_as(t)
    return p, t, m


def _range(t: torch.Tensor, data_range: DataRange, window) -> torch.Tensor:
    """Per-image data range, shape (B,)."""
    if data_range == "target":
        flat = t.flatten(1)
        r = flat.max(1).values - flat.min(1).values
        return torch.where(r > 0, r, torch.ones_like(r))
    if isinstance(data_range, str):
        raise InputError(f"data_range '{data_range}' is not a number or 'target'")
    return torch.full((t.shape[0],), float(data_range), dtype=t.dtype)


def _mean(x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Per-image mean over (C, H, W), optionally within a mask."""
    if m is None:
        return x.flatten(1).mean(1)
    w = m.flatten(1).to(x.dtype)
    return (x.flatten(1) * w).sum(1) / w.sum(1).clamp_min(1)


def _reduce(v: torch.Tensor, reduce: Reduce):
    return float(v.mean()) if reduce == "mean" else v.numpy()


def mse_per_image(pred, target, *, window=None, mask=None) -> torch.Tensor:
    p, t, m = _prepare(pred, target, window, mask)
    return _mean((p - t) ** 2, m)


def psnr(pred, target, *, data_range: DataRange, window=None, mask=None, reduce: Reduce = "mean"):
    """PSNR in dB = 10 log10(R^2 / MSE), R from the data-range policy."""
    p, t, m = _prepare(pred, target, window, mask)
    mse = _mean((p - t) ** 2, m)
    r = _range(t, data_range, window)
    value = 10 * torch.log10(r**2 / mse.clamp_min(1e-20))
    return _reduce(value, reduce)


def rmse(pred, target, *, window=None, mask=None, reduce: Reduce = "mean"):
    """Root-mean-square error in the images' physical units."""
    p, t, m = _prepare(pred, target, window, mask)
    return _reduce(_mean((p - t) ** 2, m).sqrt(), reduce)


def nmse(pred, target, *, window=None, mask=None, reduce: Reduce = "mean"):
    """Normalised MSE = ||pred - target||^2 / ||target||^2 (no data range needed)."""
    p, t, m = _prepare(pred, target, window, mask)
    return _reduce(_mean((p - t) ** 2, m) / _mean(t**2, m).clamp_min(1e-20), reduce)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_map(p: torch.Tensor, t: torch.Tensor, data_range: torch.Tensor | float, *, win_size: int = 11,
             sigma: float = 1.5) -> torch.Tensor:
    """The SSIM map (B, C, H - s + 1, W - s + 1) of Wang et al. 2004 on the "valid" region, differentiable.

    ``p``, ``t``: (B, C, H, W) of one dtype; ``data_range``: a number or (B,) per image. The window size ``s`` is
    ``win_size`` clipped to the image and made odd. K1 0.01, K2 0.03, population statistics.
    """
    r = torch.as_tensor(data_range, dtype=p.dtype, device=p.device).reshape(-1, 1, 1, 1)
    size = min(win_size, p.shape[-1], p.shape[-2])
    size -= 1 - size % 2
    c = p.shape[1]
    k = _gaussian_kernel(size, sigma).to(p)[None, None].repeat(c, 1, 1, 1)

    def blur(x):
        return F.conv2d(x, k, groups=c)

    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def ssim(
    pred,
    target,
    *,
    data_range: DataRange,
    window=None,
    mask=None,
    win_size: int = 11,
    sigma: float = 1.5,
    reduce: Reduce = "mean",
):
    """SSIM of Wang et al. 2004: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, population statistics.

    The SSIM map (:func:`ssim_map`) is computed where the window fits inside the image ("valid"), as in the
    original code and scikit-image's cropped mean; a mask is cropped the same way.
    """
    p, t, m = _prepare(pred, target, window, mask)
    s = ssim_map(p, t, _range(t, data_range, window), win_size=win_size, sigma=sigma)
    if m is not None:
        pad = (m.shape[-1] - s.shape[-1]) // 2
        m = m[..., pad : pad + s.shape[-2], pad : pad + s.shape[-1]]
    return _reduce(_mean(s, m), reduce)


METRICS = {"psnr": psnr, "ssim": ssim, "nmse": nmse, "rmse": rmse}
NEEDS_RANGE = {"psnr", "ssim"}
