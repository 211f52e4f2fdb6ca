"""How MFdiff is scored: image metrics, PET-only lesion contrast recovery, uncertainty vs error.

Metric policy (the AMIR / MFdiff convention of REFERENCE.md): PSNR and SSIM per slice with
``data_range = target max - min`` (SSIM 11 x 11 Gaussian, sigma 1.5), NMSE = ||x - y||^2 / ||y||^2, all in the
phantom's activity units against the high-count reconstruction, over the whole slice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medir.metrics import nmse, psnr, ssim


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-slice ``psnr`` (dB), ``ssim``, ``nmse`` of (N, 1, H, W) tensors, each (N,)."""
    return {"psnr": psnr(pred, target, data_range="target", reduce="none"),
            "ssim": ssim(pred, target, data_range="target", reduce="none"),
            "nmse": nmse(pred, target, reduce="none")}


def _ring(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels within ``width`` of ``mask`` (N, 1, H, W) but outside it."""
    grown = F.max_pool2d(mask.float(), 2 * width + 1, stride=1, padding=width) > 0
    return grown & ~(mask > 0)


def lesion_contrast_recovery(pred: torch.Tensor, reference: torch.Tensor, lesion: torch.Tensor, *,
                             ring: int = 2) -> torch.Tensor:
    """Contrast recovery ``(L_p / B_p - 1) / (L_r / B_r - 1)`` per slice holding a lesion, (M,).

    ``L`` is the mean inside the PET-only hot lesions (``lesion`` (N, 1, H, W) 0/1), ``B`` the mean of a ring
    ``ring`` pixels wide around them, in ``pred`` and in the ``reference`` (the high-count image). 1 means the
    restoration keeps the lesion's contrast, 0 that it erased it. Slices without lesion pixels are skipped.
    """
    inside, around = lesion > 0, _ring(lesion, ring)
    keep = inside.flatten(1).any(1) & around.flatten(1).any(1)

    def contrast(x: torch.Tensor) -> torch.Tensor:
        lm = (x * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)
        bm = (x * around).flatten(1).sum(1) / around.flatten(1).sum(1).clamp_min(1)
        return lm / bm.clamp_min(1e-6) - 1.0

    return (contrast(pred) / contrast(reference).clamp_min(1e-6))[keep]


def uncertainty_correlation(std: torch.Tensor, pred: torch.Tensor, target: torch.Tensor,
                            mask: torch.Tensor | None = None) -> float:
    """Pearson correlation of the per-pixel std with ``|pred - target|`` over ``mask`` (default: all pixels)."""
    err = (pred - target).abs()
    sel = torch.ones_like(err, dtype=torch.bool) if mask is None else mask.bool()
    a, b = std[sel].double(), err[sel].double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))
