"""Oracle priors: label maps from simulation ground truth, for comparing perfect, classical and learned priors.

The brain phantom (``medir.data.phantoms``) gives true tissue labels (0 background, 1 CSF, 2 grey
matter, 3 white matter, 4 lesion). An oracle partition is that map itself (``split_components=False``,
semantic: label k always means tissue k) or its connected components (``split_components=True``,
regions like SAM's: two separate lesions become two regions).

Because a segmenter only sees pixels, :class:`OracleSegmenter` looks the truth up by image content:
``oracle.add(image, labels)`` when the simulation makes the image, then ``oracle(image)`` anywhere a
segmenter is expected. Asking for an image it was never given is an error, never a silent guess.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_components

from medir.errors import InputError
from medir.priors.base import Partition, check_tiling, content_hash, relabel

TISSUES = ("background", "csf", "grey", "white", "lesion")


def oracle_partition(truth: np.ndarray, *, split_components: bool = False) -> Partition:
    """``(H, W)`` int ground-truth labels -> a :class:`Partition` (confidence 1 for every present label)."""
    truth = np.asarray(truth)
    check_tiling(truth.astype(np.int64) if np.issubdtype(truth.dtype, np.integer) else truth)
    labels = truth.astype(np.int32)
    if split_components:
        comps = connected_components(labels + 1, connectivity=1, background=0)
        comps[labels == 0] = 0  # background stays one region, label 0
        labels = relabel(comps)
    conf = np.where(np.bincount(labels.ravel()) > 0, 1.0, np.nan).astype(np.float32)
    return Partition(labels, conf)


class OracleSegmenter:
    """A segmenter that returns the ground truth registered for an image (see the module docstring)."""

    name = "oracle"

    def __init__(self, *, split_components: bool = False):
        self.split_components = split_components
        self._truth: dict[str, np.ndarray] = {}

    def settings(self) -> str:
        return f"oracle:v1:split={self.split_components}"

    def add(self, image: np.ndarray, truth: np.ndarray, *, modality: str = "OT") -> None:
        """Register ``truth`` ``(H, W)`` for ``image`` (same ``(H, W)``)."""
        check_tiling(np.asarray(truth), np.asarray(image).shape)
        self._truth[content_hash(np.asarray(image), modality=modality)] = np.asarray(truth)

    def __len__(self) -> int:
        return len(self._truth)

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        key = content_hash(np.asarray(image), modality=modality)
        if key not in self._truth:
            raise InputError("the oracle segmenter has no ground truth for this image: register it with "
                             "OracleSegmenter.add(image, labels) where the simulation creates it")
        return oracle_partition(self._truth[key], split_components=self.split_components)


def region_purity(regions: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Purity of a partition w.r.t. true labels: for each region the fraction of its pixels in its
    majority true class. Returns (mean over regions, pixel-weighted mean); both in [0, 1]."""
    regions = np.asarray(regions).ravel().astype(np.int64)
    truth = np.asarray(truth).ravel().astype(np.int64)
    n_t = truth.max() + 1
    joint = np.bincount(regions * n_t + truth, minlength=(regions.max() + 1) * n_t).reshape(-1, n_t)
    sizes = joint.sum(1)
    present = sizes > 0
    purity = joint.max(1)[present] / sizes[present]
    return float(purity.mean()), float(np.average(purity, weights=sizes[present]))
