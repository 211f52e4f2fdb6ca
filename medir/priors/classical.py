"""The default segmenter: a fast "segment everything" partition without weights.

Pipeline for one slice (scikit-image / scipy; 512x512 in about 0.3 s on one idle CPU core):

1. window to ``[0, 1]`` (:func:`medir.priors.base.window_to_unit`: CT L40/W400, percentile clip
   elsewhere, square root for counts) and smooth with a Gaussian of ``sigma`` pixels;
2. background = pixels below ``background`` (air, outside the body): label 0;
3. intensity classes: multi-Otsu with ``classes`` classes on the foreground (tissue types), each
   threshold then moved to the midpoint of the two neighbouring class modes (:func:`mode_midpoints`);
4. superpixels: SLIC (or Felzenszwalb) clipped to the foreground, about one per ``region_size`` x ``region_size`` pixels;
5. regions = connected components of (superpixel x intensity class), so no region straddles a
   tissue boundary that the intensities show; components under ``min_size`` pixels are absorbed
   by their nearest neighbour (``expand_labels``), so noise does not leave specks;
6. granularity: adjacent regions are merged, cheapest first, until at most ``max_regions`` remain
   (:func:`merge_to_count`). The cost of merging two regions is Ward's
   ``n_a n_b / (n_a + n_b) (mean_a - mean_b)^2`` on the smoothed windowed image, and merges within an
   intensity class come before merges across classes, so fragments of one tissue and small specks go
   first and tissue boundaries last.

Granularity: SAM's automatic ("everything") mode, which RAT uses, gives tens of regions on a 512 x 512
slice (the RAT release's example: 39), and, since SAM resizes every input to 1024 pixels, tens on any
image size. Steps 1-5 alone give hundreds to a thousand regions on a 512 x 512 slice (122-345 on the brain
phantom here, 409-1178 with an earlier setting); the default ``max_regions = 40`` per image matches SAM.
Small images (training patches) usually have fewer regions than that before any merging, so the cap
matters from about 256 x 256 on. ``max_regions=None`` keeps the fine partition (superpixel-level
regions, e.g. for priors that want local regions).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu
from skimage.measure import label as connected_components
from skimage.segmentation import expand_labels, felzenszwalb, join_segmentations, slic

from medir.priors.base import Partition, check_image, relabel, window_to_unit


@dataclass(frozen=True)
class ClassicalSegmenter:
    """SLIC / Felzenszwalb superpixels split by multi-Otsu intensity classes; see the module docstring.

    ``region_size``: superpixel side in pixels; ``compactness``: SLIC's shape/intensity trade-off on the
    ``[0, 1]`` windowed image; ``classes``: multi-Otsu classes in the foreground (1 disables);
    ``refine``: rounds of extra thresholds halfway between neighbouring ones (finer bands, more regions);
    ``sigma``: Gaussian pre-smoothing in pixels; ``background``: windowed level below which a pixel is
    background; ``min_size``: smallest kept region in pixels; ``felzenszwalb_scale``: Felzenszwalb's scale;
    ``max_regions``: the granularity, at most this many foreground regions per image (SAM's everything
    mode gives tens; None: no merging, the fine partition).
    """

    method: Literal["slic", "felzenszwalb"] = "slic"
    region_size: float = 24.0
    compactness: float = 0.08
    classes: int = 4
    refine: int = 0
    sigma: float = 1.0
    background: float = 0.04
    min_size: int = 12
    felzenszwalb_scale: float = 200.0
    max_regions: int | None = 40
    name: str = "classical"

    def settings(self) -> str:
        return (
            f"classical:v1:{self.method}:rs={self.region_size:g}:c={self.compactness:g}:k={self.classes}/{self.refine}"
            f":s={self.sigma:g}:bg={self.background:g}:min={self.min_size}:fs={self.felzenszwalb_scale:g}"
            f":max={self.max_regions}"
        )

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        image = check_image(image)
        unit = window_to_unit(image, modality=modality)
        if self.sigma > 0:
            sig = (self.sigma, self.sigma, 0) if unit.ndim == 3 else self.sigma
            unit = ndimage.gaussian_filter(unit, sig)
        gray = unit.mean(axis=-1) if unit.ndim == 3 else unit
        foreground = gray >= self.background
        if foreground.sum() < 4:
            return Partition(np.zeros(gray.shape, np.int32))
        classes = intensity_classes(gray, foreground, classes=self.classes, refine=self.refine)
        superpixels = self._superpixels(unit, foreground)
        joined = join_segmentations(superpixels, classes)
        regions = connected_components(joined * foreground + foreground, connectivity=1, background=0)
        regions = absorb_small(regions, foreground, min_size=self.min_size)
        if self.max_regions is not None:
            regions = merge_to_count(regions, gray, target=self.max_regions, classes=classes)
        return Partition(relabel(regions))

    def _superpixels(self, unit: np.ndarray, foreground: np.ndarray) -> np.ndarray:
        """``(H, W)`` int superpixel labels (>= 1) on the foreground; 0 outside it."""
        channel_axis = -1 if unit.ndim == 3 else None
        if self.method == "felzenszwalb":
            seg = felzenszwalb(unit, scale=self.felzenszwalb_scale, sigma=0.0, min_size=self.min_size,
                               channel_axis=channel_axis) + 1
            return seg * foreground
        # SLIC over the whole image then clipped to the foreground: skimage's masked SLIC is ~10x slower.
        n_segments = max(1, int(round(foreground.size / self.region_size**2)))
        seg = slic(unit, n_segments=n_segments, compactness=self.compactness, channel_axis=channel_axis,
                   start_label=1, enforce_connectivity=True)
        return seg * foreground


def intensity_classes(gray: np.ndarray, foreground: np.ndarray, *, classes: int, refine: int = 0) -> np.ndarray:
    """Multi-Otsu classes ``1..classes`` of the foreground pixels of ``gray`` ``(H, W)``; 0 outside."""
    out = foreground.astype(np.int32)
    values = gray[foreground]
    if classes < 2 or np.ptp(values) <= 1e-6:
        return out
    try:
        thresholds = threshold_multiotsu(values, classes=classes, nbins=128)
    except ValueError:  # fewer distinct grey levels than classes
        return out
    thresholds = mode_midpoints(values, thresholds)
    for _ in range(refine):  # midpoints between neighbouring thresholds: partial-volume bands get their own class
        thresholds = np.sort(np.concatenate([thresholds, (thresholds[1:] + thresholds[:-1]) / 2]))
    out[foreground] = np.digitize(values, thresholds) + 1
    return out


def mode_midpoints(values: np.ndarray, thresholds: np.ndarray, *, bins: int = 128) -> np.ndarray:
    """Move each threshold to the midpoint of the histogram peaks (modes) of the two classes it separates.

    A tissue boundary blurred by the point-spread function or partial volume crosses 50 % mixing at
    the mean of the two pure-tissue intensities, i.e. between the modes; Otsu's thresholds sit
    between class *means*, which partial-volume pixels pull off. A class without a clear peak keeps
    its Otsu threshold.
    """
    hist, edges = np.histogram(values, bins=bins)
    hist = np.convolve(hist, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    bounds = np.concatenate([[-np.inf], thresholds, [np.inf]])
    modes = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = (centres > lo) & (centres <= hi)
        modes.append(centres[inside][np.argmax(hist[inside])] if inside.any() else np.nan)
    mids = (np.asarray(modes[:-1]) + np.asarray(modes[1:])) / 2
    return np.where(np.isfinite(mids), mids, thresholds)


def absorb_small(regions: np.ndarray, foreground: np.ndarray, *, min_size: int) -> np.ndarray:
    """Give foreground components smaller than ``min_size`` pixels to the nearest larger foreground region.

    ``regions``: ``(H, W)`` int, 0 = background, which stays background. Returns ``(H, W)`` int.
    """
    if min_size <= 1:
        return regions
    sizes = np.bincount(regions.ravel())
    small = (sizes < min_size)[regions] & foreground
    if not small.any():
        return regions
    work = np.where(small, 0, regions)
    if not work.any():
        return regions
    filled = expand_labels(work, distance=max(regions.shape))
    filled[~foreground] = 0
    return filled


def merge_to_count(regions: np.ndarray, gray: np.ndarray, *, target: int,
                   classes: np.ndarray | None = None) -> np.ndarray:
    """Merge 4-adjacent foreground regions, cheapest first, until at most ``target`` remain.

    ``regions``: ``(H, W)`` int, 0 = background (never merged); ``gray``: ``(H, W)`` float, the values whose
    region means decide; ``classes``: ``(H, W)`` int intensity classes, or None. Cost of a merge: Ward's
    ``n_a n_b / (n_a + n_b) (mean_a - mean_b)^2``, and any merge of two regions of the same class (a
    merged region keeps the class of its larger part) comes before any merge across classes, so tissue
    boundaries are the last to go. Merged regions are unions of adjacent ones, so they stay connected.
    Returns ``(H, W)`` int (not relabelled).
    """
    size = np.bincount(regions.ravel()).astype(np.float64)
    total = np.bincount(regions.ravel(), weights=gray.ravel().astype(np.float64), minlength=size.size)
    kind = np.zeros(size.size, np.int64)
    if classes is not None:
        kind[regions.ravel()] = classes.ravel()
    count = int(np.count_nonzero(size[1:]))
    if count <= target:
        return regions
    neighbours = _adjacency(regions)
    parent = np.arange(size.size)
    def cost(a: int, b: int) -> tuple[bool, float]:
        return bool(kind[a] != kind[b]), _ward(size, total, a, b)

    heap = [(*cost(a, b), a, b) for a, nb in neighbours.items() for b in nb if a < b]
    heapq.heapify(heap)
    while count > target and heap:
        across, ward, a, b = heapq.heappop(heap)
        if parent[a] != a or parent[b] != b:  # one side was merged since: a stale entry
            continue
        if (across, ward) != cost(a, b):  # the pair's statistics changed: requeue at the new cost
            heapq.heappush(heap, (*cost(a, b), a, b))
            continue
        keep, gone = (a, b) if size[a] >= size[b] else (b, a)
        parent[gone] = keep
        size[keep] += size[gone]
        total[keep] += total[gone]
        for c in neighbours.pop(gone):
            neighbours[c].discard(gone)
            if c != keep:
                neighbours[c].add(keep)
                neighbours[keep].add(c)
        neighbours[keep].discard(gone)
        count -= 1
        for c in neighbours[keep]:
            heapq.heappush(heap, (*cost(keep, c), min(keep, c), max(keep, c)))
    return _resolve(parent)[regions]


def _ward(size: np.ndarray, total: np.ndarray, a: int, b: int) -> float:
    diff = total[a] / size[a] - total[b] / size[b]
    return float(size[a] * size[b] / (size[a] + size[b]) * diff * diff)


def _adjacency(regions: np.ndarray) -> dict[int, set[int]]:
    """Foreground label -> the set of foreground labels 4-adjacent to it."""
    pairs = np.concatenate([
        np.stack([regions[:, :-1].ravel(), regions[:, 1:].ravel()], 1),
        np.stack([regions[:-1, :].ravel(), regions[1:, :].ravel()], 1),
    ])
    pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs > 0).all(1)]
    pairs = np.unique(np.sort(pairs, 1), axis=0)
    out: dict[int, set[int]] = {int(v): set() for v in np.unique(regions) if v > 0}
    for a, b in pairs.tolist():
        out[a].add(b)
        out[b].add(a)
    return out


def _resolve(parent: np.ndarray) -> np.ndarray:
    """Follow union-find parents to their roots: the final label of every original label."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt
