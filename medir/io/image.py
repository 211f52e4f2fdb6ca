"""The image every part of medir passes around: pixels in physical units plus metadata.

Array layout (``Image.array``, float32, physical units):

- 2-D grayscale: ``(H, W)``
- 2-D colour: ``(H, W, C)`` with ``meta.channels == C`` (RGB pathology)
- 3-D volume: ``(D, H, W)``, slices along the first axis

``meta.spacing`` follows the array axes (mm; ``(row, col)`` or ``(slice, row, col)``).
``meta.affine`` is a 4x4 voxel-to-world matrix in the NIfTI/RAS convention whose
index order is reversed array order ``(col, row, slice)``, as nibabel and ITK use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medir.errors import InputError

# DICOM Modality codes (PS3.3 C.7.3.1.1.1) medir recognises, whether or not a model exists for them yet.
DICOM_MODALITIES = (
    "CT", "MR", "PT", "NM", "SM", "CR", "DX", "MG", "XA", "RF", "US", "OT", "IO", "PX", "ES", "XC", "GM",
    "OP", "OCT", "RG", "DG", "BMD", "TG", "SC",
)

MODALITY_ALIASES = {
    **{code: code for code in DICOM_MODALITIES},
    "PET": "PT",
    "MRI": "MR",
    "SPECT": "NM",
    "SCINTIGRAPHY": "NM",
    "PATHOLOGY": "SM",
    "MAMMOGRAPHY": "MG",
    "ULTRASOUND": "US",
    "XRAY": "DX",
    "X-RAY": "DX",
}

DEFAULT_UNITS = {"CT": "HU", "PT": "counts", "MR": "a.u.", "NM": "counts", "SM": "RGB8", "OT": "a.u."}


def normalize_modality(name: str | None) -> str:
    """Map 'PET', 'pt', 'SPECT', ... to the DICOM code medir uses; unknown names are an error."""
    if name is None:
        return "OT"
    key = str(name).strip().upper()
    if key not in MODALITY_ALIASES:
        known = ", ".join(sorted(set(MODALITY_ALIASES)))
        raise InputError(f"unknown modality '{name}': use one of {known}")
    return MODALITY_ALIASES[key]


@dataclass
class ImageMeta:
    """What travels with the pixels. ``source`` keeps the format's own header (DICOM datasets, NIfTI header)."""

    modality: str = "OT"
    units: str = "a.u."
    spacing: tuple[float, ...] | None = None
    affine: np.ndarray | None = None
    channels: int = 1
    source_format: str | None = None
    source_path: str | None = None
    source: Any = None

    def replace(self, **changes: Any) -> "ImageMeta":
        return dataclasses.replace(self, **changes)


@dataclass
class Image:
    """Pixels in physical units (HU, counts, SUV, ...) plus :class:`ImageMeta`."""

    array: np.ndarray
    meta: ImageMeta = field(default_factory=ImageMeta)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)

    @property
    def is_volume(self) -> bool:
        return self.array.ndim == 3 and self.meta.channels == 1

    @property
    def slice_shape(self) -> tuple[int, int]:
        """(H, W) of one slice."""
        a = self.array
        return tuple(a.shape[:2]) if self.meta.channels > 1 else tuple(a.shape[-2:])

    def slices(self) -> np.ndarray:
        """All slices as ``(D, C, H, W)``, the layout networks take."""
        a = self.array
        if self.meta.channels > 1:
            return np.moveaxis(a, -1, 0)[None]
        return a[None, None] if a.ndim == 2 else a[:, None]

    def with_slices(self, stack: np.ndarray, *, scale: int = 1) -> "Image":
        """A new image from ``(D, C, H, W)`` slices in this image's layout; ``scale`` rescales spacing."""
        if self.meta.channels > 1:
            array = np.moveaxis(stack[0], 0, -1)
        else:
            array = stack[0, 0] if self.array.ndim == 2 else stack[:, 0]
        meta = self.meta.replace()
        if scale != 1:
            meta = meta.replace(spacing=_scaled_spacing(meta.spacing, scale), affine=_scaled_affine(meta.affine, scale))
        return Image(array, meta)

    def validate(self, name: str = "image") -> "Image":
        """Refuse what no model can restore: empty, NaN/inf, too small, too many dimensions."""
        a = self.array
        if a.size == 0:
            raise InputError(f"{name} is empty (shape {a.shape}): give an image with pixels")
        if a.ndim not in (2, 3):
            raise InputError(f"{name} has {a.ndim} dimensions (shape {a.shape}): medir takes 2-D images or 3-D volumes")
        if not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).sum())
            raise InputError(f"{name} has {bad} NaN or infinite values: fix or mask them before restoring")
        h, w = self.slice_shape
        if min(h, w) < 8:
            raise InputError(f"{name} is {h}x{w} pixels: medir needs at least 8x8 pixels per slice")
        return self


def _scaled_spacing(spacing: tuple[float, ...] | None, scale: int) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    s = list(spacing)
    s[-1] /= scale
    s[-2] /= scale
    return tuple(s)


def _scaled_affine(affine: np.ndarray | None, scale: int) -> np.ndarray | None:
    """In-plane axes are the first two affine columns (col, row); shift origin to the new pixel centre."""
    if affine is None:
        return None
    out = np.array(affine, dtype=np.float64, copy=True)
    old_origin = out[:3, 3].copy()
    out[:3, :2] /= scale
    out[:3, 3] = old_origin - (out[:3, 0] + out[:3, 1]) * (scale - 1) / 2
    return out
