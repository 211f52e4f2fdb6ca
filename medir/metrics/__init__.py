"""Image quality metrics in physical units, with an explicit data-range policy.

Every function takes ``pred`` and ``target`` as numpy arrays or torch tensors of
the same shape: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``. Values are in
physical units (HU, counts, SUV) unless the caller says otherwise.

Data-range policy (``data_range``), which PSNR and SSIM need and which silently
moves results by 1-2 dB when left implicit:

- a number: a fixed range (e.g. 400 for the CT window [-160, 240], 255 for 8-bit);
- ``"target"``: per image, ``max(target) - min(target)`` (AMIR / DiffCode convention).

``window=(lo, hi)`` clips both images to an evaluation window first (CT L40/W400
is ``(-160, 240)``). With ``mask`` only pixels where the mask is true count.
Batched inputs give one value per image, averaged (``reduce="mean"``) or not.

Perceptual metrics (FID, LPIPS on a VGG16 feature network, labelled default without download) live in
:mod:`medir.metrics.perceptual`, imported on demand.
For 8-bit RGB super-resolution, :func:`luma_bt601` and :func:`crop_border` give the SR papers' Y-channel
convention (``medir.metrics.rgb``).
"""

from medir.metrics.core import METRICS, nmse, psnr, rmse, ssim, ssim_map
from medir.metrics.regions import per_region
from medir.metrics.rgb import crop_border, luma_bt601

__all__ = ["METRICS", "crop_border", "luma_bt601", "nmse", "per_region", "psnr", "rmse", "ssim", "ssim_map"]
