"""Planar scintigraphy / rapid bone scan (SPD-VFM, section IV-A).

A table speed ``s`` times faster collects ``1/s`` of the events. For measured counts this is
binomial thinning with ``p = 1/s``, exact for Poisson data (the thinned counts are Poisson
with mean ``m / s``); for an expected (noise-free) image it is Poisson resampling of ``x / s``.
The paper's extra degradations are options, applied on the image normalised by its maximum:
motion blur (length 10 px, 5 degrees), speckle (variance 0.01) then Gaussian noise (variance 0.01).
Real rapid / standard pairs are aligned patch by patch (equation 14) with phase correlation.
"""

from __future__ import annotations

import math

import torch

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, make_generator
from medir.physics.filters import convolve, motion_kernel
from medir.physics.noise import binomial_thinning, gaussian_noise, poisson_counts, speckle_noise

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
    if float(x.min()) < 0:
        raise MedirError("scintigraphy counts are negative somewhere: give counts >= 0")
    if mode == "thin":
        return binomial_thinning(x, 1.0 / speedup, generator=generator)
    if mode == "resample":
        return poisson_counts(x / speedup, generator=generator)
    raise MedirError(f"mode='{mode}' is unknown: use 'thin' (measured counts) or 'resample' (expected image)")


def paper_degradations(x: torch.Tensor, *, gaussian_var: float, speckle_var: float, motion_length: float,
                       motion_angle_deg: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SPD-VFM's extra degradations on ``x / max(x)`` (per image), mapped back to ``x``'s units, clipped at 0."""
    peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    y = x / peak
    if motion_length > 0:
        y = convolve(y, motion_kernel(motion_length, motion_angle_deg))
    y = speckle_noise(y, speckle_var, generator=generator)
    y = gaussian_noise(y, math.sqrt(gaussian_var), generator=generator)
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
