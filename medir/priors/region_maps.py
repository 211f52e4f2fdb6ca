"""Region maps for networks that take one (RAT's R-MSA): network-space batches in, label maps out, cached.

A network sees images in network space (``medir.data.intensity``); segmenters see physical units. The
map back is the model's intensity preset: ``fixed`` presets invert their linear map; ``per_image``
presets (count data) are passed as they are, because every segmenter windows count images by their own
percentiles, which a per-image division leaves unchanged.

Maps are cached in memory (least recently used first out) under a key made of the image content and the
segmenter's ``settings()``, so a changed image, or changed segmenter settings, never reuse a stale map.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from medir.priors.base import Segmenter, content_hash


def make_segmenter(spec: str = "classical", *, max_regions: int | None = 40) -> Segmenter:
    """The segmenter a spec names (see :mod:`medir.priors`); ``classical`` gets the granularity ``max_regions``."""
    from medir.priors import get_segmenter
    from medir.priors.classical import ClassicalSegmenter

    if spec == "classical":
        return ClassicalSegmenter(max_regions=max_regions)
    return get_segmenter(spec)


class RegionMaps:
    """``maps(x) -> (B, H, W)`` int64 labels for a ``(B, C, H, W)`` network-space batch (channel 0, or RGB
    for modality SM with 3 channels), on ``x``'s device.

    ``segmenter``: any :class:`medir.priors.base.Segmenter`; ``modality``: what it is told the image is;
    ``intensity``: the preset's dict (``IntensityPreset.to_dict()``) or None (network space = physical);
    ``capacity``: how many maps the in-memory cache keeps. ``hits`` / ``misses`` count cache lookups.
    """

    def __init__(self, segmenter: Segmenter, *, modality: str = "OT", intensity: dict | None = None,
                 capacity: int = 256):
        self.segmenter, self.modality, self.capacity = segmenter, modality.upper(), capacity
        self.intensity = dict(intensity) if intensity else None
        self.hits = self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._settings = hashlib.sha256(f"{segmenter.settings()}|{self.intensity}".encode()).hexdigest()

    def physical(self, x: np.ndarray) -> np.ndarray:
        """Network space -> physical units (see the module docstring)."""
        p = self.intensity
        if p is None or p.get("mode", "fixed") != "fixed":
            return x
        return x * (p["hi"] - p["lo"]) + p["lo"]

    def key(self, image: np.ndarray) -> str:
        """The cache key of one ``(H, W)`` or ``(H, W, 3)`` image: its content and the segmenter's settings."""
        return content_hash(image, modality=self.modality) + self._settings

    def one(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` int32 labels of one network-space image (``(H, W)`` or ``(H, W, 3)``)."""
        key = self.key(image)
        if key in self._cache:
            self.hits += 1
            self._cache.move_to_end(key)
            return self._cache[key]
        self.misses += 1
        labels = self.segmenter(self.physical(image), modality=self.modality).labels
        self._cache[key] = labels
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return labels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().cpu().numpy()
        colour = arr.shape[1] == 3 and self.modality == "SM"
        maps = [self.one(np.ascontiguousarray(np.moveaxis(a, 0, -1) if colour else a[0])) for a in arr]
        return torch.from_numpy(np.stack(maps).astype(np.int64)).to(x.device)
