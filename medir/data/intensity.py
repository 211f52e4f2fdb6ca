"""Intensity presets: how physical values map to network input and back.

Every model stores its preset, so a CT model trained on HU in [-1024, 3071]
restores HU, whatever the input file's own scaling was.

``fixed`` presets map ``[lo, hi]`` linearly to ``[0, 1]`` (values outside are
kept unless ``clip``). ``per_image`` presets divide by a robust per-image scale
(the ``percentile`` of the image) and multiply it back after restoration, for
count data whose level depends on the acquisition (scintigraphy, PET in counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from medir.errors import ConfigError


@dataclass(frozen=True)
class IntensityPreset:
    name: str
    modality: str
    units: str
    mode: Literal["fixed", "per_image"] = "fixed"
    lo: float = 0.0
    hi: float = 1.0
    clip: bool = False
    percentile: float = 99.5
    eval_window: tuple[float, float] | None = None

    def scale_for(self, x: np.ndarray) -> tuple[float, float]:
        """(offset, span) used for ``x``; fixed presets ignore ``x``."""
        if self.mode == "fixed":
            return self.lo, self.hi - self.lo
        span = float(np.percentile(x, self.percentile)) if x.size else 0.0
        if span <= 0:
            span = float(np.max(x)) if x.size and np.max(x) > 0 else 1.0
        return 0.0, span

    def to_network(self, x: np.ndarray, scale: tuple[float, float] | None = None) -> np.ndarray:
        offset, span = scale if scale is not None else self.scale_for(x)
        y = (np.asarray(x, dtype=np.float32) - offset) / span
        return np.clip(y, 0.0, 1.0) if self.clip else y

    def from_network(self, y: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        offset, span = scale
        return np.asarray(y, dtype=np.float32) * span + offset

    def to_dict(self) -> dict:
        d = asdict(self)
        d["eval_window"] = list(self.eval_window) if self.eval_window else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IntensityPreset":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown intensity preset keys {sorted(unknown)}: allowed are {sorted(known)}")
        d = dict(d)
        if d.get("eval_window") is not None:
            d["eval_window"] = tuple(float(v) for v in d["eval_window"])
        return cls(**d)


PRESETS: dict[str, IntensityPreset] = {
    # AMIR/DiffCode convention: network sees HU normalised from [-1024, 3071]; metrics in the L40/W400 window.
    "ct": IntensityPreset("ct", "CT", "HU", lo=-1024.0, hi=3071.0, eval_window=(-160.0, 240.0)),
    # CT with the soft-tissue window [-160, 240] HU mapped to [0, 1], unclipped (bone and air fall outside): low-dose
    # noise of a few HU is then ten times larger in network units than with "ct", which a small denoiser needs.
    "ct-soft": IntensityPreset("ct-soft", "CT", "HU", lo=-160.0, hi=240.0, eval_window=(-160.0, 240.0)),
    # PET in SUV normalised from [0, 20] (AMIR); counts images use pet-counts.
    "pet": IntensityPreset("pet", "PT", "SUV", lo=0.0, hi=20.0),
    "pet-counts": IntensityPreset("pet-counts", "PT", "counts", mode="per_image", percentile=99.9),
    # MRI magnitude normalised from [0, 4095] (12-bit scanners, IXI).
    "mr": IntensityPreset("mr", "MR", "a.u.", lo=0.0, hi=4095.0),
    # MR magnitude divided by its own 99.5th percentile: MR units are arbitrary (scanner and protocol set the scale),
    # so a model meets every file at the same level (the shipped MRI super-resolution model uses it).
    "mr-auto": IntensityPreset("mr-auto", "MR", "a.u.", mode="per_image", percentile=99.5),
    # Planar scintigraphy: counts divided by a robust per-image maximum.
    "nm": IntensityPreset("nm", "NM", "counts", mode="per_image", percentile=99.5),
    # RGB pathology, 8-bit.
    "rgb8": IntensityPreset("rgb8", "SM", "RGB8", lo=0.0, hi=255.0, clip=True),
}

DEFAULT_PRESET_FOR_MODALITY = {"CT": "ct", "PT": "pet-counts", "MR": "mr", "NM": "nm", "SM": "rgb8"}


def get_preset(name: str) -> IntensityPreset:
    if name not in PRESETS:
        raise ConfigError(f"unknown intensity preset '{name}': use one of {', '.join(PRESETS)}")
    return PRESETS[name]
