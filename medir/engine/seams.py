"""A seam detector for tiled outputs: is the change across tile borders larger than elsewhere?

Tiling artefacts are offsets between neighbouring tiles, spread over the blending band.
Across a band of ``d = overlap + 1`` lines the signed difference ``out[y + d] - out[y]``
averaged over one tile's length is near zero in a natural image (structure and noise
average out) but equals the offset at a seam. The score is the largest such mean at a
tile border divided by the largest at lines away from every border:

    score = max_{y at borders, segment} |mean(out[y + d] - out[y])| / max_{y elsewhere, segment} |...|

A score near or below 1 means the borders look like anywhere else; a seam gives a score
above 1.5 (a 10 HU offset in white noise of 10 HU scores about 2; offsets far below
the noise divided by the square root of the segment length cannot be seen by this or any eye).
"""

from __future__ import annotations

import numpy as np


def _line_stats(img: np.ndarray, d: int, segment: int) -> np.ndarray:
    """Per line y: max over segments (of ``segment`` pixels along the line) of |mean(img[y+d] - img[y])|."""
    diff = img[d:].astype(np.float64) - img[:-d].astype(np.float64)
    n = diff.shape[1] // segment * segment
    parts = [diff[:, :n].reshape(diff.shape[0], -1, segment).mean(-1)]
    if n < diff.shape[1]:
        parts.append(diff[:, n:].mean(-1, keepdims=True))
    return np.abs(np.concatenate(parts, axis=1)).max(axis=1)


def seam_score(img: np.ndarray, *, bounds: list[int], overlap: int, segment: int) -> float:
    """Seam score of a 2-D image along its first axis, for tile borders at rows ``bounds`` (inner ones).

    Transpose the image (and pass the column borders) for the other axis.
    """
    d = overlap + 1
    stats = _line_stats(img, d, segment)
    y = np.arange(len(stats))
    near = np.zeros(len(stats), bool)  # lines whose span [y, y + d] meets a border band
    for b in bounds:
        near |= (y + d >= b - overlap) & (y <= b + overlap)
    at_border = np.zeros(len(stats), bool)
    for b in bounds:
        at_border |= np.abs(y + d / 2 - b) <= max(1, overlap // 4)
    if not at_border.any() or near.all():
        return 0.0
    return float(stats[at_border].max() / max(stats[~near].max(), 1e-12))
