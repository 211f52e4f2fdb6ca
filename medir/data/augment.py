"""Geometric augmentation that moves images, masks and auxiliary images together.

The eight symmetries of the square (dihedral group D4): ``k`` quarter turns, then an
optional left-right flip. Every array in a sample gets the same transform, so a
label map stays aligned with its image and an ``hq`` image at ``scale`` times the
size of ``lq`` stays aligned with it. Arrays are ``(..., H, W)``: (C, H, W) images
and (H, W) label maps alike.
"""

from __future__ import annotations

import numpy as np


def dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by ``k`` quarter turns (counter-clockwise), then flip left-right if ``flip``."""
    y = np.rot90(x, k % 4, axes=(-2, -1))
    if flip:
        y = y[..., ::-1]
    return np.ascontiguousarray(y)


def random_dihedral(sample: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Apply one random D4 symmetry, drawn from ``rng``, to every array of ``sample``."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    return {name: dihedral(x, k, flip) for name, x in sample.items()}
