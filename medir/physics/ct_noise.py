"""Noise measurements on CT slices: flat-region std, noise power spectrum, neighbour correlation, scan dose.

Used by the calibration benchmark, the LDCT data recipe and the tests. All images are 2-D arrays in HU.
"""

from __future__ import annotations

import numpy as np
import torch

SOFT_TISSUE_HU = (-100.0, 100.0)


def flat_windows(hu: np.ndarray, *, pixel_mm: float, window_mm: float = 5.0, fraction: float = 0.2,
                 tissue_hu: tuple[float, float] = SOFT_TISSUE_HU) -> list[tuple[int, int, int]]:
    """The flattest ``fraction`` of the non-overlapping ``window_mm`` squares lying wholly in soft tissue:
    ``(row, col, size)`` in pixels, flattest first. Flat windows are where a scan's std is its noise."""
    size = max(5, int(round(window_mm / pixel_mm)))
    found = []
    for r in range(0, hu.shape[0] - size + 1, size):
        for c in range(0, hu.shape[1] - size + 1, size):
            w = hu[r:r + size, c:c + size]
            if w.min() > tissue_hu[0] and w.max() < tissue_hu[1]:
                found.append((float(w.std()), r, c))
    found.sort()
    keep = found[:max(1, int(round(len(found) * fraction)))] if found else []
    return [(r, c, size) for _, r, c in keep]


def window_std(image: np.ndarray, windows: list[tuple[int, int, int]]) -> float:
    """Median over ``windows`` of the std inside each (HU); NaN when there is no window."""
    if not windows:
        return float("nan")
    return float(np.median([image[r:r + s, c:c + s].std() for r, c, s in windows]))


def own_noise_std(hu: np.ndarray, *, pixel_mm: float) -> float:
    """A scan's own noise: the median std of its flattest soft-tissue 5 mm windows (slightly low-biased:
    anatomy adds to every window, and picking the flattest favours low draws)."""
    return window_std(hu, flat_windows(hu, pixel_mm=pixel_mm))


def neighbour_correlation(noise: np.ndarray) -> float:
    """Correlation coefficient of horizontally adjacent pixels of a noise image (0 for white noise)."""
    a, b = noise[:, :-1].ravel(), noise[:, 1:].ravel()
    return float(np.corrcoef(a, b)[0, 1])


def nps_radial(noise: np.ndarray, *, pixel_mm: float, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged noise power spectrum of a (square-cropped, mean-removed) noise image:
    ``(frequency in cycles/mm, power in HU^2 mm^2)``."""
    n = min(noise.shape)
    x = noise[:n, :n] - noise[:n, :n].mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2 * pixel_mm ** 2 / (n * n)
    f = np.fft.fftshift(np.fft.fftfreq(n, d=pixel_mm))
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    edges = np.linspace(0, radius.max(), bins + 1)
    idx = np.clip(np.digitize(radius.ravel(), edges) - 1, 0, bins - 1)
    total = np.bincount(idx, power.ravel(), bins)
    count = np.maximum(np.bincount(idx, minlength=bins), 1)
    return 0.5 * (edges[1:] + edges[:-1]), total / count


def nps_peak(noise: np.ndarray, *, pixel_mm: float) -> float:
    """Frequency (cycles/mm) where the radial NPS peaks."""
    f, p = nps_radial(noise, pixel_mm=pixel_mm)
    return float(f[int(np.argmax(p))])


def estimate_scan_dose(hu: np.ndarray, *, pixel_mm: float, seed: int = 0, **ct_params) -> float:
    """The dose of a real scan relative to the reference ``I0``: ``(sigma_ref / sigma_own)^2``, ``sigma_ref`` the
    noise a full-dose scan of this body would have (simulated on the slice itself, noiseless assumption) and
    ``sigma_own`` its measured noise, both in the same flat windows. NaN when the slice has no flat soft tissue."""
    from medir.physics.ct import LowDoseCT

    windows = flat_windows(hu, pixel_mm=pixel_mm)
    own = window_std(hu, windows)
    op = LowDoseCT(dose=1.0, scan_dose=None, pixel_size_mm=pixel_mm, **ct_params)
    x = torch.from_numpy(np.ascontiguousarray(hu, dtype=np.float32))[None, None]
    ref = window_std(op.noise(x, generator=torch.Generator().manual_seed(seed))[0, 0].numpy(), windows)
    return float((ref / own) ** 2) if own > 0 else float("nan")
