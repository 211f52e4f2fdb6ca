"""Synthetic labelled slices (for tests and benchmarks of segmenters): ellipses of 3 tissue classes on a background.

Class 0 background (0 a.u.), classes 1-3 ellipses with intensities 300, 600, 900 a.u. (MR-like);
smaller ellipses are drawn over larger ones. Gaussian noise of ``noise`` a.u. and a smooth bias field.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.0, 300.0, 600.0, 900.0)


def labelled_slice(rng: np.random.Generator, *, size: int = 64, noise: float = 60.0):
    """One ``(size, size)`` float32 image in a.u. and its ``(size, size)`` int labels 0..3."""
    yy, xx = np.mgrid[:size, :size] / size
    labels = np.zeros((size, size), np.int64)
    body = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.38) ** 2 <= 1
    labels[body] = 1
    for k in (2, 3, 2, 3):
        cy, cx = rng.uniform(0.3, 0.7, 2)
        ry, rx = rng.uniform(0.06, 0.16, 2)
        t = rng.uniform(0, np.pi)
        u = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t)
        v = -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        labels[((u / ry) ** 2 + (v / rx) ** 2 <= 1) & body] = k
    bias = 1 + 0.1 * np.sin(2 * np.pi * (yy * rng.uniform(0.5, 1) + xx * rng.uniform(0.5, 1)))
    image = np.asarray(LEVELS)[labels] * bias + rng.normal(0, noise, labels.shape)
    return image.astype(np.float32), labels


def labelled_set(n: int, *, seed: int, size: int = 64, noise: float = 60.0):
    rng = np.random.default_rng(seed)
    pairs = [labelled_slice(rng, size=size, noise=noise) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]
