"""Generated inputs for the batch/CLI tests: DICOM slices made from CT_small.dcm, small arrays."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ct_base(ct_small):
    import pydicom

    return pydicom.dcmread(ct_small)


def write_slice(base, path: Path, *, series_uid: str, k: int = 0, modality: str | None = None,
                crop: int | None = None, spacing=None) -> Path:
    """A copy of ``base`` as slice ``k`` of series ``series_uid`` (5 mm apart), optionally cropped/relabelled."""
    from pydicom.uid import generate_uid

    ds = copy.deepcopy(base)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = k + 1
    pos = [float(v) for v in base.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 5.0 * k]
    pixels = base.pixel_array.astype(np.int16) + np.int16(7 * k)
    if crop:
        pixels = np.ascontiguousarray(pixels[:crop, :crop])
        ds.Rows = ds.Columns = crop
    ds.PixelData = pixels.tobytes()
    if modality:
        ds.Modality = modality
    if spacing is not None:
        ds.PixelSpacing = spacing
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def write_series(base, folder: Path, n: int, *, prefix: str = "im", **kw) -> str:
    from pydicom.uid import generate_uid

    uid = generate_uid()
    for k in range(n):
        write_slice(base, folder / f"{prefix}{k}.dcm", series_uid=uid, k=k, **kw)
    return uid


def visible_files(folder: Path) -> dict[str, bytes]:
    """Every output file below ``folder`` (not medir's hidden records), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files anywhere below ``folder``."""
    return [p.as_posix() for p in folder.rglob("*") if ".part" in p.name or p.name.endswith(".old")]
