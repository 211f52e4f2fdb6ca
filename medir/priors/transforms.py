"""Geometric transforms that move label maps together with their images.

Label maps are categorical: they are cropped, flipped, rotated by multiples of 90 degrees and
resized with nearest-neighbour sampling only, never interpolated. Every function takes numpy
arrays or torch tensors whose last two axes are ``(H, W)`` (``(H, W)``, ``(C, H, W)``,
``(B, C, H, W)``), and applies the same operation to the image and to the labels.

Nearest resizing samples the source pixel whose centre is nearest to each output pixel centre
(``src = floor((dst + 0.5) * in / out)``, torch's ``nearest-exact``), so downsampling by 4 picks a
pixel inside each 4x4 block rather than its top-left corner.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Array = np.ndarray | torch.Tensor


def crop(x: Array, *, top: int, left: int, height: int, width: int) -> Array:
    """``x[..., top:top+height, left:left+width]``; refuses a window outside the array."""
    h, w = x.shape[-2:]
    if top < 0 or left < 0 or top + height > h or left + width > w:
        raise ValueError(f"crop window ({top}, {left}, {height}, {width}) lies outside a {h}x{w} array")
    return x[..., top : top + height, left : left + width]


def flip(x: Array, *, axis: int) -> Array:
    """Flip along the last-two axis ``axis`` (-2 = vertical, -1 = horizontal)."""
    if axis not in (-2, -1):
        raise ValueError(f"flip axis must be -2 or -1, got {axis}")
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(axis,))
    return np.flip(x, axis=axis).copy()


def rot90(x: Array, *, k: int) -> Array:
    """Rotate by ``k`` x 90 degrees counter-clockwise in the ``(H, W)`` plane."""
    if isinstance(x, torch.Tensor):
        return torch.rot90(x, k=k, dims=(-2, -1))
    return np.rot90(x, k=k, axes=(-2, -1)).copy()


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source indices for nearest-exact resampling of one axis: ``floor((i + 0.5) * n_in / n_out)``."""
    idx = np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resize_labels(labels: Array, size: tuple[int, int]) -> Array:
    """Nearest resize of the last two axes to ``size = (H', W')``; dtype and leading axes are kept."""
    rows = nearest_indices(labels.shape[-2], size[0])
    cols = nearest_indices(labels.shape[-1], size[1])
    if isinstance(labels, torch.Tensor):
        r = torch.as_tensor(rows, device=labels.device)
        c = torch.as_tensor(cols, device=labels.device)
        return labels.index_select(-2, r).index_select(-1, c)
    return labels[..., rows[:, None], cols[None, :]]


def downsample_labels(labels: Array, factor: int) -> Array:
    """Nearest downsampling by an integer ``factor`` (feature maps at 1/2, 1/4, ... of the image)."""
    h, w = labels.shape[-2:]
    return resize_labels(labels, (max(1, h // factor), max(1, w // factor)))


def resize_pair(image: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Image ``(B, C, H, W)`` resized bilinearly (antialiased), labels ``(B, H, W)`` or ``(B, 1, H, W)`` nearest."""
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized, resize_labels(labels, size)


def random_pair(
    image: Array,
    labels: Array,
    *,
    size: tuple[int, int] | None,
    rng: np.random.Generator,
    flips: bool = True,
    rotations: bool = True,
) -> tuple[Array, Array]:
    """The same random crop of ``size``, flips and 90-degree rotation applied to an image and its labels.

    ``image``: ``(..., H, W)``; ``labels``: ``(..., H, W)`` of the same ``H, W``. Draws from ``rng``.
    """
    if image.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and labels {tuple(labels.shape)} differ in (H, W)")
    if size is not None:
        h, w = image.shape[-2:]
        top = int(rng.integers(0, h - size[0] + 1))
        left = int(rng.integers(0, w - size[1] + 1))
        image = crop(image, top=top, left=left, height=size[0], width=size[1])
        labels = crop(labels, top=top, left=left, height=size[0], width=size[1])
    if flips:
        for axis in (-2, -1):
            if rng.random() < 0.5:
                image, labels = flip(image, axis=axis), flip(labels, axis=axis)
    if rotations:
        k = int(rng.integers(0, 4))
        image, labels = rot90(image, k=k), rot90(labels, k=k)
    return image, labels


def one_hot(labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """``(B, H, W)`` int labels -> ``(B, num_labels, H, W)`` float one-hot masks."""
    return F.one_hot(labels.long(), num_labels).permute(0, 3, 1, 2).to(torch.float32)
