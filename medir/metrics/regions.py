"""Metrics per region of a label map (e.g. grey matter, lesion, each SAM region)."""

from __future__ import annotations

import numpy as np

from medir.metrics.core import METRICS, NEEDS_RANGE


def per_region(
    name: str,
    pred,
    target,
    labels,
    *,
    data_range=None,
    window=None,
    min_pixels: int = 1,
) -> dict[int, float]:
    """``{label: metric within that region}`` for a 2-D label map the same size as the images.

    Regions smaller than ``min_pixels`` are skipped (a 6-pixel region has no meaningful SSIM).
    """
    fn = METRICS[name]
    labels = np.asarray(labels)
    kwargs = {"window": window}
    if name in NEEDS_RANGE:
        kwargs["data_range"] = data_range
    out = {}
    for lab in np.unique(labels):
        region = labels == lab
        if region.sum() >= min_pixels:
            out[int(lab)] = float(fn(pred, target, mask=region, **kwargs))
    return out
