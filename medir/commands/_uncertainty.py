"""Writing an uncertainty map beside a restored image (``medir restore --uncertainty``).

The map is a per-pixel standard deviation in the image's physical units (HU for CT). As DICOM it is a derived
series of the input of its own (new SeriesInstanceUID, ImageType DERIVED\\SECONDARY, a SeriesDescription saying
"uncertainty" and what the std is over). A std of a few HU would lose most of its value if rounded to the source's
integer steps (CT stores whole HU), so classic DICOM sources get a finer RescaleSlope (intercept 0) for this series:
the largest std then uses half the stored range.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from medir.io.image import Image


def uncertainty_description(what: str, units: str | None) -> str:
    """SeriesDescription / file description of a map, e.g. ``medir uncertainty: std (HU) of 8 flips/rotations``."""
    return f"medir uncertainty: std ({units or 'a.u.'}) of {what}"


def with_fine_rescale(std: Image) -> Image:
    """``std`` (>= 0, physical units) whose classic DICOM sources carry a RescaleSlope fine enough for its values;
    other formats and enhanced (per-frame) DICOM are returned as they are."""
    sources = std.meta.source if std.meta.source_format == "dicom" else None
    if not sources or any("RescaleSlope" not in ds or "PerFrameFunctionalGroupsSequence" in ds for ds in sources):
        return std
    top = float(np.max(std.array)) if std.array.size else 0.0
    datasets = []
    for ds in sources:
        bits = int(ds.get("BitsStored", ds.BitsAllocated))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        stored_max = 2 ** (bits - 1 if signed else bits) - 1
        slope = float(f"{max(top, 1e-6) / (stored_max / 2):.6g}")
        out = copy.deepcopy(ds)  # a pydicom shallow copy shares its elements: the source must stay as it is
        out.RescaleSlope, out.RescaleIntercept = slope, 0.0
        datasets.append(out)
    meta = copy.copy(std.meta)
    meta.source = datasets
    return Image(std.array, meta)


def write_uncertainty(std: Image, path: Path, *, force: bool, what: str, model: str) -> Path:
    """Write the map ``std`` to ``path`` (atomic, as :func:`medir.io.write_image`), described as an uncertainty."""
    from medir.io import write_image

    return write_image(with_fine_rescale(std), path, force=force,
                       description=uncertainty_description(what, std.meta.units), model=model)
