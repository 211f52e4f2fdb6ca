"""Planar scintigraphy / rapid bone scan (SPD-VFM, section IV-A).

A table speed ``s`` times faster collects ``1/s`` of the events. For measured counts this is
binomial thinning with ``p = 1/s``, exact for Poisson data (the thinned counts are Poisson
with mean ``m / s``); for an expected (noise-free) image it is Poisson resampling of ``x / s``.

Training pairs need independent noise, as a real rapid scan and a real standard scan are two
acquisitions. From an expected image (a phantom) draw both: ``Poisson(x)`` and ``Poisson(x / s)``
(:func:`phantom_pair`). From measured counts ``n`` split the events (:func:`split_counts`): the kept
part ``Binomial(n, 1/s)`` and the remainder ``n - kept`` are independent Poisson images of means
``m / s`` and ``m (1 - 1/s)``; thinning alone gives an input whose noise is a subset of the target's
(correlation ``sqrt(1/s)``, 0.71 at ``s = 2``).

The paper's extra degradations (section IV-A 1) are options, applied in the order the paper lists
them on the image normalised by its maximum: Gaussian noise (mean 0, variance 0.01), speckle (mean 0,
variance 0.01), each clipped to [0, 1] as scikit-image's ``random_noise`` does, then motion blur of
degree 10 at 5 degrees with the OpenCV kernel (:func:`medir.physics.optics.opencv_motion_kernel`).
Real rapid / standard pairs are aligned patch by patch (equation 14) with phase correlation.
Measured NM images with small negative values (rescaling, lossy compression) are clipped to 0 with a
warning on the ``medir`` logger.
"""

from __future__ import annotations

import logging
import math

import torch

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, make_generator
from medir.physics.noise import binomial_thinning, gaussian_noise, poisson_counts, speckle_noise
from medir.physics.optics import opencv_motion_blur

LOG = logging.getLogger("medir.physics.scintigraphy")
# negative values below this fraction of the image maximum are rescaling / compression artefacts
NEGATIVE_TOLERANCE = 0.2

PAPER_GAUSSIAN_VAR = 0.01
PAPER_SPECKLE_VAR = 0.01
PAPER_MOTION_LENGTH = 10.0
PAPER_MOTION_ANGLE = 5.0


def rapid_counts(x: torch.Tensor, speedup: float, *, mode: str = "thin",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Counts of a scan ``speedup`` times faster: ``(B, C, H, W)`` counts -> counts (about ``1/speedup`` of them).

    ``mode="thin"``: ``x`` are measured counts, keep each event with probability ``1/speedup``.
    ``mode="resample"``: ``x`` is an expected image, draw ``Poisson(x / speedup)``.
    """
    speedup = check_range("speedup", speedup, lo=1.0, hint="a rapid scan is at least as fast as the standard (e.g. 2)")
    x = clip_negative_counts(x)
    if mode == "thin":
        return binomial_thinning(x, 1.0 / speedup, generator=generator)
    if mode == "resample":
        return poisson_counts(x / speedup, generator=generator)
    raise MedirError(f"mode='{mode}' is unknown: use 'thin' (measured counts) or 'resample' (expected image)")


def clip_negative_counts(x: torch.Tensor, *, tolerance: float = NEGATIVE_TOLERANCE) -> torch.Tensor:
    """Counts ``(B, C, H, W)`` with negatives set to 0. Small negatives (down to ``-tolerance x max``, from
    rescaling or lossy compression of real NM files) are clipped and reported on the log; larger ones are an
    error (the image is not counts)."""
    low = float(x.min())
    if low >= 0:
        return x
    peak = float(x.max())
    if peak <= 0 or -low > tolerance * peak:
        raise MedirError(f"scintigraphy counts go down to {low:g} (maximum {peak:g}): this is not a counts image; "
                         "give counts >= 0 (small negatives from rescaling are clipped)")
    neg = x < 0
    LOG.warning("clipped %d negative pixels (down to %g, %.2g %% of the total counts) to 0: the image is treated as counts",
                int(neg.sum()), low, 100.0 * float(-x[neg].sum()) / max(float(x.clamp_min(0).sum()), 1e-12))
    return x.clamp_min(0)


def split_counts(counts: torch.Tensor, keep: float, *,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Measured counts ``n (B, C, H, W)`` -> ``(kept, rest)``, ``kept ~ Binomial(n, keep)``, ``rest = n - kept``.

    For Poisson ``n`` of mean ``m`` the two are independent Poisson images of means ``keep m`` and
    ``(1 - keep) m`` (Poisson splitting), so ``(kept, rest)`` is a training pair with independent noise.
    """
    n = clip_negative_counts(counts).round()
    kept = binomial_thinning(n, keep, generator=generator)
    return kept, n - kept


def phantom_pair(expected: torch.Tensor, speedup: float, *,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected standard-scan counts ``(B, C, H, W)`` -> ``(rapid, standard)`` with independent Poisson noise:
    ``standard ~ Poisson(x)``, ``rapid ~ Poisson(x / speedup)`` (two acquisitions)."""
    speedup = check_range("speedup", speedup, lo=1.0, hint="a rapid scan is at least as fast as the standard (e.g. 2)")
    if float(expected.min()) < 0:
        raise MedirError("expected counts are negative somewhere: a phantom must be >= 0")
    standard = poisson_counts(expected, generator=generator)
    rapid = poisson_counts(expected / speedup, generator=generator)
    return rapid, standard


def paper_degradations(x: torch.Tensor, *, gaussian_var: float, speckle_var: float, motion_length: float,
                       motion_angle_deg: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SPD-VFM's extra degradations on ``y = x / max(x)`` (per image), in the paper's order, back in ``x``'s units:

    ``y <- clip(y + N(0, gaussian_var))``, ``y <- clip(y + y N(0, speckle_var))`` (clip to [0, 1], as
    scikit-image's ``random_noise``), ``y <- motion_blur(y)`` (OpenCV kernel of degree ``motion_length``)."""
    peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    y = x / peak
    if gaussian_var > 0:
        y = gaussian_noise(y, math.sqrt(gaussian_var), generator=generator).clamp(0, 1)
    if speckle_var > 0:
        y = speckle_noise(y, speckle_var, generator=generator).clamp(0, 1)
    if motion_length > 0:
        y = opencv_motion_blur(y, degree=int(round(motion_length)), angle_deg=motion_angle_deg)
    return y.clamp_min(0) * peak


def simulate_scinti_rapid(
    x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None, speedup: float = 2.0,
    mode: str = "thin", paper_extras: bool = False, gaussian_var: float | None = None, speckle_var: float | None = None,
    motion_length: float | None = None, motion_angle_deg: float = PAPER_MOTION_ANGLE, rescale: bool = False,
) -> torch.Tensor:
    """Standard-scan counts ``(B, C, H, W)`` -> rapid-scan counts (``rescale=True`` multiplies by ``speedup``
    so intensities match the standard scan). ``paper_extras=True`` turns on the paper's Gaussian noise,
    speckle and motion blur; any of ``gaussian_var``, ``speckle_var``, ``motion_length`` given explicitly wins."""
    check_image(x)
    gen = make_generator(x, generator=generator, seed=seed)
    y = rapid_counts(x, speedup, mode=mode, generator=gen)
    gv = (PAPER_GAUSSIAN_VAR if paper_extras else 0.0) if gaussian_var is None else gaussian_var
    sv = (PAPER_SPECKLE_VAR if paper_extras else 0.0) if speckle_var is None else speckle_var
    ml = (PAPER_MOTION_LENGTH if paper_extras else 0.0) if motion_length is None else motion_length
    for name, v in (("gaussian_var", gv), ("speckle_var", sv), ("motion_length", ml)):
        check_range(name, v, lo=0.0)
    if gv > 0 or sv > 0 or ml > 0:
        y = paper_degradations(y, gaussian_var=gv, speckle_var=sv, motion_length=ml, motion_angle_deg=motion_angle_deg,
                               generator=gen)
    return y * speedup if rescale else y


# --- patch-wise rigid registration (equation 14) -----------------------------------------------------

def phase_correlation(moving: torch.Tensor, fixed: torch.Tensor) -> tuple[int, int]:
    """Integer shift ``(dy, dx)`` such that ``moving`` shifted by it best matches ``fixed``; 2-D tensors.

    Normalised cross-power spectrum with a Hann window against edge effects (Kuglin & Hines 1975).
    """
    h, w = fixed.shape
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                      torch.hann_window(w, periodic=False, dtype=torch.float64)).to(fixed.device)
    a = torch.fft.fft2((fixed.double() - fixed.double().mean()) * win)
    b = torch.fft.fft2((moving.double() - moving.double().mean()) * win)
    cross = a * b.conj()
    corr = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-12)).real
    idx = int(torch.argmax(corr))
    dy, dx = divmod(idx, w)
    dy = dy - h if dy > h // 2 else dy
    dx = dx - w if dx > w // 2 else dx
    return dy, dx


def _tiles(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def register_patches(moving: torch.Tensor, fixed: torch.Tensor, *, patch: int = 192,
                     max_shift: int = 16) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """Align ``moving`` (rapid scan) to ``fixed`` (standard scan) tile by tile, equation 14 of SPD-VFM.

    Both ``(H, W)``. Each ``patch x patch`` tile of ``fixed`` gets the tile of ``moving`` translated by the
    phase-correlation shift (limited to ``max_shift`` pixels; larger estimates are treated as failures and
    the tile is left unshifted). Pixels shifted in from outside the image are 0. Returns the registered
    image and ``(row, col, dy, dx)`` per tile.
    """
    if moving.shape != fixed.shape or moving.ndim != 2:
        raise MedirError(f"registration needs two 2-D images of the same shape, got {tuple(moving.shape)} and {tuple(fixed.shape)}")
    check_range("patch", patch, lo=8)
    h, w = fixed.shape
    padded = torch.nn.functional.pad(moving[None, None], (max_shift,) * 4)[0, 0]
    out = torch.zeros_like(moving)
    shifts = []
    for r0, r1 in _tiles(h, patch):
        for c0, c1 in _tiles(w, patch):
            dy, dx = phase_correlation(moving[r0:r1, c0:c1], fixed[r0:r1, c0:c1])
            if max(abs(dy), abs(dx)) > max_shift:
                dy, dx = 0, 0
            # the fixed tile at (r, c) matches moving at (r - dy, c - dx)
            rr, cc = r0 - dy + max_shift, c0 - dx + max_shift
            out[r0:r1, c0:c1] = padded[rr:rr + (r1 - r0), cc:cc + (c1 - c0)]
            shifts.append((r0, c0, dy, dx))
    return out, shifts
