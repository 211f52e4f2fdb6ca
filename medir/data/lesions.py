"""Low-contrast lesion augmentation for additive-noise training pairs (CT noise insertion).

A denoiser trained with a pixel loss on anatomy that has few small low-contrast objects learns to flatten them:
a 30 HU nodule under 40 HU of noise looks like noise. This augmentation adds the same small disks (random
contrast of either sign, random radius, anti-aliased edge) to the input and the target of a pair, so the network
sees low-contrast lesions it must keep. Adding the lesion after the noise is valid when the noise does not depend
on the image at this scale: CT noise insertion (the noise of a slice changes by well under 1 % for a 60 HU disk of
a few mm), not Poisson counts (PET, NM), whose noise grows with the signal; :func:`check_lesion_units` refuses
those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medir.errors import ConfigError

ADDITIVE_UNITS = ("HU",)  # units whose noise (CT noise insertion) does not follow a small local change of the image


def check_lesion_units(units: str, *, scale: int) -> None:
    """Refuse lesion augmentation where adding the same disk to input and target would mislabel the noise."""
    if units not in ADDITIVE_UNITS:
        raise ConfigError(f"lesion augmentation needs additive noise (units {', '.join(ADDITIVE_UNITS)}); this preset "
                          f"is in {units}, whose noise grows with the signal: set data.train.lesion_prob to 0")
    if scale != 1:
        raise ConfigError(f"lesion augmentation is for denoising pairs (scale 1), not x{scale} super-resolution: "
                          "set data.train.lesion_prob to 0")


def disk(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    """An anti-aliased disk in ``[0, 1]``: 1 inside ``radius - 0.5``, 0 beyond ``radius + 0.5``, linear between."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    distance = np.hypot(yy - centre[0], xx - centre[1])
    return np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32)


def add_lesions(lq: np.ndarray, hq: np.ndarray, rng: np.random.Generator, *, prob: float,
                contrast: tuple[float, float], radius: tuple[float, float], tissue: tuple[float, float],
                count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """With probability ``prob``, add up to ``count`` disks to both images (``(C, H, W)`` or ``(H, W)``, same shape).

    Each disk: |contrast| uniform in ``contrast`` (physical units) with a random sign, radius uniform in ``radius``
    pixels, centred on a target pixel inside ``tissue`` (e.g. the soft-tissue window; no disk where none is).
    Returns new arrays; the inputs are not modified.
    """
    if prob <= 0 or rng.random() >= prob:
        return lq, hq
    plane = hq if hq.ndim == 2 else hq[0]
    candidates = np.flatnonzero((plane >= tissue[0]) & (plane <= tissue[1]))
    if candidates.size == 0:
        return lq, hq
    bump = np.zeros(plane.shape, dtype=np.float32)
    for _ in range(int(rng.integers(1, count + 1))):
        y, x = np.unravel_index(int(candidates[rng.integers(candidates.size)]), plane.shape)
        value = float(rng.uniform(*contrast)) * (1.0 if rng.random() < 0.5 else -1.0)
        bump += value * disk(plane.shape, (float(y), float(x)), float(rng.uniform(*radius)))
    return lq + bump.astype(lq.dtype), hq + bump.astype(hq.dtype)


@dataclass(frozen=True)
class LesionAugment:
    """:func:`add_lesions` with its settings bound (``data.train.lesion_*`` in a config); ``tissue`` in physical
    units, where lesions may be centred (the preset's evaluation window)."""

    prob: float
    contrast: tuple[float, float] = (10.0, 60.0)
    radius: tuple[float, float] = (1.5, 6.0)
    tissue: tuple[float, float] = (-np.inf, np.inf)

    def __post_init__(self):
        if not 0 <= self.prob <= 1:
            raise ConfigError(f"lesion_prob {self.prob} is not a probability: give a value in [0, 1]")
        for name, (lo, hi) in (("lesion_contrast", self.contrast), ("lesion_radius", self.radius)):
            if not 0 <= lo <= hi:
                raise ConfigError(f"{name} ({lo}, {hi}) must be two numbers 0 <= lo <= hi")

    def __call__(self, lq: np.ndarray, hq: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return add_lesions(lq, hq, rng, prob=self.prob, contrast=self.contrast, radius=self.radius,
                           tissue=self.tissue)
