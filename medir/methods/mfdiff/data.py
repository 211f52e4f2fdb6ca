"""Simulated PET/MR pair sets for MFdiff's two learning stages (section 3.3), batched for speed.

- external set (the paper's large simulated corpus): the brain phantom (:mod:`medir.data.phantoms`) of the
  ``train`` subjects, high count ``mfdiff-high``, low count ``mfdiff-low`` (calibrated to MFdiff's input quality);
- internal set (standing in for the small in-vivo set and its shift): ``val`` subjects, and a different count level,
  PSF and tracer contrast (:data:`INTERNAL_SHIFT`);
- test sets: the ``test`` subjects under either protocol.
Subjects never cross sets (the phantom module splits by subject).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medir.data.phantoms import brain_slice, make_subject, split_subjects, subject_slices
from medir.physics.pet import PET_PROTOCOLS, simulate_pet_lowcount


@dataclass(frozen=True)
class Protocol:
    """What the simulation varies: low-count ``counts_scale`` x the protocol's counts, ``psf_fwhm_mm`` (None:
    the protocol's), grey : white : CSF ``uptake``, hot lesion contrast."""

    counts_scale: float = 1.0
    psf_fwhm_mm: float | None = None
    uptake: tuple[float, float, float] = (4.0, 1.0, 0.05)
    hot_contrast: float = 2.0


EXTERNAL = Protocol()
INTERNAL_SHIFT = Protocol(counts_scale=0.5, psf_fwhm_mm=5.0, uptake=(3.0, 1.0, 0.1), hot_contrast=1.6)


@dataclass
class PairSet:
    """(N, 1, H, W) tensors: low-count PET, MR, high-count PET, PET-only lesion mask (1 inside hot lesions)."""

    low: torch.Tensor
    mr: torch.Tensor
    high: torch.Tensor
    lesion: torch.Tensor

    def __len__(self) -> int:
        return int(self.low.shape[0])

    def subset(self, idx) -> "PairSet":
        return PairSet(self.low[idx], self.mr[idx], self.high[idx], self.lesion[idx])

    def center_crop(self, size: int) -> "PairSet":
        """The central ``size`` x ``size`` window of every image (all of it if smaller)."""
        h, w = self.low.shape[-2:]
        i, j = max((h - size) // 2, 0), max((w - size) // 2, 0)
        return PairSet(*(getattr(self, k)[..., i:i + size, j:j + size] for k in ("low", "mr", "high", "lesion")))

    @staticmethod
    def cat(sets: list["PairSet"]) -> "PairSet":
        return PairSet(*(torch.cat([getattr(s, k) for s in sets]) for k in ("low", "mr", "high", "lesion")))


def simulate_pairs(split: str, *, size: int = 64, subjects: int | None = None, slices: int = 8,
                   protocol: Protocol = EXTERNAL, hot_lesions: int = 2, seed: int = 0,
                   chunk: int = 32) -> PairSet:
    """Pairs of ``subjects`` x ``slices`` phantom slices of ``split``, hot lesions in PET only (not in the MR).

    Slices at random rotations of 0-15 degrees; high: ``mfdiff-high``; low: ``mfdiff-low`` scaled by ``protocol``.
    """
    g = torch.Generator().manual_seed(seed)
    parts = []
    for k in split_subjects(split, count=subjects):
        subject = make_subject(k)
        for z in subject_slices(slices):
            lesion_gen = torch.Generator().manual_seed(k * 1009 + z)
            angle = float(torch.rand(1, generator=g)) * 15.0
            parts.append(brain_slice(z, size=size, uptake=protocol.uptake, angle_deg=angle, hot_lesions=hot_lesions,
                                     hot_contrast=protocol.hot_contrast, subject=subject, generator=lesion_gen))
    lo_counts = PET_PROTOCOLS["mfdiff-low"].counts
    lows, highs = [], []
    for i in range(0, len(parts), chunk):
        batch = parts[i:i + chunk]
        x = torch.stack([p.activity for p in batch])
        mu = torch.stack([p.mu_map for p in batch])
        pix = batch[0].pixel_size_mm
        highs.append(simulate_pet_lowcount(x, generator=g, protocol="mfdiff-high", mu_map=mu, pixel_size_mm=pix))
        counts = float(torch.empty(1).uniform_(*lo_counts, generator=g)) * protocol.counts_scale
        lows.append(simulate_pet_lowcount(x, generator=g, protocol="mfdiff-low", counts=counts, mu_map=mu,
                                          psf_fwhm_mm=protocol.psf_fwhm_mm, pixel_size_mm=pix))
    return PairSet(torch.cat(lows), torch.stack([p.mr for p in parts]), torch.cat(highs),
                   torch.stack([p.lesion_mask for p in parts]))
