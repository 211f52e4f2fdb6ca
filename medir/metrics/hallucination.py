"""Does a restoration invent lesions, or erase them? False hot spots and lesion contrast recovery.

**False hot spots** (on inputs whose reference has no lesion). With ``x`` the restoration, ``r`` the reference and
``y`` the degraded input, all (H, W) in the same physical units:

- local noise ``sigma(p) = sqrt(box_w * (y - r)^2)(p)``: the input's noise around pixel ``p`` (a ``window`` x
  ``window`` box mean), floored at ``floor`` x the global noise std ``std(y - r)`` so a noise-free area (air outside
  a PET body) does not make every rounding difference a spot;
- excess ``e = x - r``; a hot spot is a connected component (8-neighbourhood) of ``e > k sigma`` inside ``mask``
  (default: everywhere) with at least ``min_area`` pixels.

The count per image is the number of such components. The reference is the noise-free (or high-count) image, so
what remains is what the method added: noise it let through in clumps, or structure it invented. The input itself is
scored the same way, which tells how many spots noise alone makes (white noise rarely forms clumps above 3 sigma;
correlated noise does).

**Contrast recovery** (on inputs with simulated lesions), per lesion (a connected component of the lesion mask):

    CR = (mean_lesion(x) - mean_background(x)) / (mean_lesion(r) - mean_background(r))

with the background a ring ``ring`` pixels wide around the lesion (other lesions excluded). The true contrast is
measured on the reference the methods are scored against. CR = 1 keeps the lesion's contrast, 0 erases it, above 1
exaggerates it. Lesions whose reference contrast is below ``min_contrast`` (in the images' units) are skipped.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)


def local_noise(noisy: np.ndarray, reference: np.ndarray, *, window: int = 15, floor: float = 0.1) -> np.ndarray:
    """(H, W) local noise std of ``noisy`` around each pixel (box of ``window`` pixels), >= ``floor`` x global std."""
    diff = np.asarray(noisy, np.float64) - np.asarray(reference, np.float64)
    sigma = np.sqrt(np.maximum(ndimage.uniform_filter(diff**2, size=window, mode="reflect"), 0.0))
    return np.maximum(sigma, floor * float(diff.std()) + 1e-12)


def hot_spot_map(restored: np.ndarray, reference: np.ndarray, noisy: np.ndarray, *, k: float = 3.0,
                 min_area: int = 4, window: int = 15, floor: float = 0.1,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(labels (H, W) int of the false hot spots, their count); see the module docstring for the definition."""
    restored, reference = np.asarray(restored, np.float64), np.asarray(reference, np.float64)
    if restored.shape != reference.shape or np.shape(noisy) != reference.shape:
        raise ValueError(f"shapes differ: restored {restored.shape}, reference {reference.shape}, "
                         f"input {np.shape(noisy)}")
    hot = (restored - reference) > k * local_noise(noisy, reference, window=window, floor=floor)
    if mask is not None:
        hot &= np.asarray(mask, bool)
    labels, n = ndimage.label(hot, structure=EIGHT)
    if n == 0:
        return labels, 0
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = areas >= min_area
    kept = np.where(keep[labels], labels, 0)
    return kept, int(keep.sum())


def false_hot_spots(restored: np.ndarray, reference: np.ndarray, noisy: np.ndarray, **kwargs) -> int:
    """Number of false hot spots of ``restored`` (keyword arguments as :func:`hot_spot_map`)."""
    return hot_spot_map(restored, reference, noisy, **kwargs)[1]


def contrast_recovery(restored: np.ndarray, reference: np.ndarray, lesion: np.ndarray, *, ring: int = 3,
                      min_contrast: float = 0.0) -> np.ndarray:
    """Contrast recovery of every lesion (connected component of ``lesion``), (n_lesions,) float64."""
    restored, reference = np.asarray(restored, np.float64), np.asarray(reference, np.float64)
    lesion = np.asarray(lesion, bool)
    labels, n = ndimage.label(lesion, structure=EIGHT)
    out = []
    for i in range(1, n + 1):
        inside = labels == i
        around = ndimage.binary_dilation(inside, structure=EIGHT, iterations=ring) & ~lesion
        if not around.any():
            continue
        true = reference[inside].mean() - reference[around].mean()
        if abs(true) <= min_contrast or true == 0:
            continue
        out.append((restored[inside].mean() - restored[around].mean()) / true)
    return np.asarray(out, np.float64)
