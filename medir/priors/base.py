"""The segmenter protocol and the partition helpers every segmenter shares.

A *segmenter* maps one 2-D image in physical units (HU, counts, a.u.; ``(H, W)``
or ``(H, W, C)`` for colour) plus its modality to a :class:`Partition`: an integer
label map ``(H, W)`` that tiles the image (every pixel carries exactly one
non-negative label) and, optionally, one confidence per label.

Label convention: label 0 is the background / "covered by no mask" region (it
may be empty); regions are ``1..L-1``. Partitions from unsupervised segmenters
(classical, SAM) are relabelled to consecutive labels; semantic segmenters
(fine-tuned head, oracle) keep their class ids so that label 3 always means the
same tissue, so some values in ``0..L-1`` may be absent from one image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from medir.errors import InputError

# CT window L40/W400 (the RAT / AMIR convention) used to make 8-bit inputs for segmenters.
CT_WINDOW = (-160.0, 240.0)


@dataclass
class Partition:
    """A label map that tiles an image.

    ``labels``: ``(H, W)`` int32, values in ``0..num_labels-1``, 0 = background / uncovered.
    ``confidence``: ``(num_labels,)`` float32 in ``[0, 1]`` (NaN for a label without a score), or None.
    """

    labels: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels).astype(np.int32, copy=False)
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float32)

    @property
    def num_labels(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def num_regions(self) -> int:
        """Number of labels that actually occur in the map."""
        return int(np.unique(self.labels).size)


@runtime_checkable
class Segmenter(Protocol):
    """``segmenter(image, modality=...) -> Partition``; ``settings()`` names everything that changes the output."""

    name: str

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition: ...

    def settings(self) -> str: ...


def check_tiling(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    """Raise ``ValueError`` unless ``labels`` is an integer ``(H, W)`` map of non-negative labels (of ``shape``)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map is (H, W); got shape {labels.shape}")
    if shape is not None and tuple(labels.shape) != tuple(shape[:2]):
        raise ValueError(f"label map shape {labels.shape} does not match image shape {tuple(shape[:2])}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{int((labels < 0).sum())} pixels carry no label (negative values)")


def relabel(labels: np.ndarray, *, keep_zero: bool = True) -> np.ndarray:
    """Map the labels present to consecutive integers, preserving order; ``keep_zero`` keeps 0 as 0.

    ``(H, W)`` int -> ``(H, W)`` int32 with values ``0..n-1`` (or ``1..n`` when 0 is absent and kept reserved).
    """
    values, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape).astype(np.int32)
    if keep_zero and (values.size == 0 or values[0] != 0):
        inverse += 1
    return inverse


def paint_masks(masks: np.ndarray, *, scores: np.ndarray | None = None) -> Partition:
    """RAT's post-processing: binary masks -> a partition.

    ``masks``: ``(N, H, W)`` bool. Masks are sorted by area and painted largest first, so a pixel in
    several masks ends in the smallest one; pixels in no mask get label 0. Labels follow painting
    order (1 = largest mask); masks fully covered by smaller ones vanish and the map is relabelled.
    ``scores``: ``(N,)`` per-mask confidence, carried to the surviving labels.
    """
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[0]
    if n == 0:
        return Partition(np.zeros(masks.shape[1:], np.int32), None if scores is None else np.full(1, np.nan))
    labels = np.zeros(masks.shape[1:], dtype=np.int32)
    order = np.argsort(-masks.reshape(n, -1).sum(1), kind="stable")
    for rank, i in enumerate(order, start=1):
        labels[masks[i]] = rank
    conf_by_rank = np.full(n + 1, np.nan, dtype=np.float32)
    if scores is not None:
        conf_by_rank[1:] = np.asarray(scores, dtype=np.float32)[order]
    present = np.unique(labels)
    out = relabel(labels)
    confidence = None
    if scores is not None:
        confidence = conf_by_rank[present] if present[0] == 0 else np.concatenate([[np.nan], conf_by_rank[present]])
    return Partition(out, confidence)


def window_to_unit(image: np.ndarray, *, modality: str = "OT") -> np.ndarray:
    """Physical units -> ``[0, 1]`` float32, windowed the way segmenters see images.

    CT: the L40/W400 window [-160, 240] HU. MR, PET, NM, OT: clip to the 0.5-99.5 percentiles of
    the non-zero pixels (MedSAM's MR convention); count images (PT, NM) take a square root first,
    which stabilises Poisson variance so that low-count noise does not dominate the partition.
    SM (RGB8): divided by 255. Shape is kept: ``(H, W)`` or ``(H, W, C)``.
    """
    x = np.asarray(image, dtype=np.float32)
    modality = modality.upper()
    if modality == "CT":
        lo, hi = CT_WINDOW
    elif modality == "SM":
        lo, hi = 0.0, 255.0
    else:
        if modality in ("PT", "NM"):
            x = np.sqrt(np.clip(x, 0.0, None))
        nonzero = x[x != 0]
        ref = nonzero if nonzero.size >= 16 else x.reshape(-1)
        lo, hi = (float(v) for v in np.percentile(ref, [0.5, 99.5]))
    if hi <= lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def to_uint8_rgb(image: np.ndarray, *, modality: str = "OT") -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` physical units -> ``(H, W, 3)`` uint8 after :func:`window_to_unit`."""
    unit = window_to_unit(image, modality=modality)
    if unit.ndim == 2:
        unit = np.repeat(unit[..., None], 3, axis=-1)
    elif unit.shape[-1] == 1:
        unit = np.repeat(unit, 3, axis=-1)
    elif unit.shape[-1] > 3:
        unit = unit[..., :3]
    return np.round(unit * 255.0).astype(np.uint8)


def check_image(image: np.ndarray) -> np.ndarray:
    """Refuse what no segmenter can take: not 2-D (or 2-D colour), empty, NaN."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError(f"a segmenter takes one (H, W) or (H, W, C) slice; got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InputError("the image has NaN or infinite values: fix or mask them before segmenting")
    return image


def content_hash(image: np.ndarray, *, modality: str = "OT") -> str:
    """SHA-256 of the pixels, their shape and dtype and the modality (hex)."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256()
    h.update(f"{a.shape}|{a.dtype}|{modality.upper()}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def slice_partitions(segmenter: Segmenter, stack: np.ndarray, *, modality: str = "OT") -> list[Partition]:
    """Segment each ``(H, W)`` slice of a ``(D, H, W)`` volume (or one 2-D image): a list of partitions."""
    stack = np.asarray(stack)
    if stack.ndim == 2:
        return [segmenter(stack, modality=modality)]
    return [segmenter(s, modality=modality) for s in stack]


def batch_labels(segmenter: Segmenter, images, *, modality: str = "OT"):
    """Label maps for a batch, the layout methods train with: ``(B, C, H, W)`` physical units
    (torch or numpy; colour when C = 3 and modality SM, else channel 0) -> ``(B, H, W)`` int64 tensor."""
    import torch

    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    colour = arr.shape[1] == 3 and modality.upper() == "SM"
    maps = [segmenter(np.moveaxis(x, 0, -1) if colour else x[0], modality=modality).labels for x in arr]
    return torch.from_numpy(np.stack(maps).astype(np.int64))
