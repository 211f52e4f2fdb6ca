"""Where a DICOM image lies in the patient: per-frame geometry of classic and enhanced files.

Classic images carry ImagePositionPatient, ImageOrientationPatient and PixelSpacing at
the top level. Enhanced multi-frame images (Enhanced CT/MR, functional groups) carry
them per frame in PerFrameFunctionalGroupsSequence, or once for all frames in
SharedFunctionalGroupsSequence (PlanePositionSequence, PlaneOrientationSequence,
PixelMeasuresSequence, PixelValueTransformationSequence). Missing or unusable values
(anonymised exports) get safe defaults, and each default is logged once per file,
naming the file, never the patient.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("medir.io.dicom")

IDENTITY_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@contextlib.contextmanager
def pydicom_warnings_logged(name: str):
    """Log the warnings raised inside this block (INFO, naming the file) instead of printing them.

    Only this block is affected (``warnings.catch_warnings``), never the rest of the process.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        log.info("%s: pydicom: %s", name, w.message)


@dataclass(frozen=True)
class FrameGeometry:
    """One frame in LPS (mm): first-pixel centre, row/column direction cosines, pixel spacing."""

    position: np.ndarray  # (3,) ImagePositionPatient
    row_cos: np.ndarray  # (3,) direction of increasing column index
    col_cos: np.ndarray  # (3,) direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns)
    thickness: float | None

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cos, self.col_cos)


def _group_item(ds, k: int | None, sequence: str):
    """Item 0 of ``sequence`` in frame k's functional groups, else in the shared groups, else None."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", k), ("SharedFunctionalGroupsSequence", 0)):
        if index is None or groups not in ds or len(ds[groups].value) <= index:
            continue
        group = ds[groups].value[index]
        if sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
    return None


def is_enhanced(ds) -> bool:
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _numbers(value, n: int) -> list[float] | None:
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return values if len(values) == n and np.all(np.isfinite(values)) else None


class _Assumptions:
    """Collects what had to be assumed for one file and logs it once."""

    def __init__(self, name: str):
        self.name, self.items = name, []

    def add(self, text: str) -> None:
        if text not in self.items:
            self.items.append(text)

    def log(self) -> None:
        if self.items:
            log.warning("%s: %s", self.name, "; ".join(self.items))


def _frame(ds, k: int | None, notes: _Assumptions) -> FrameGeometry:
    pos_item, ori_item, mea_item = (_group_item(ds, k, s) for s in (
        "PlanePositionSequence", "PlaneOrientationSequence", "PixelMeasuresSequence"))
    ipp = _numbers((pos_item or ds).get("ImagePositionPatient"), 3)
    iop = _numbers((ori_item or ds).get("ImageOrientationPatient"), 6)
    source = mea_item if mea_item is not None and "PixelSpacing" in mea_item else ds
    ps = _numbers(source.get("PixelSpacing"), 2)
    if ps is None or min(ps) <= 0:
        ps = _numbers(ds.get("ImagerPixelSpacing"), 2)  # projection radiographs (CR, DX)
    if ps is None or min(ps) <= 0:
        notes.add("no usable PixelSpacing, assuming 1 mm pixels")
        ps = [1.0, 1.0]
    if iop is None or np.linalg.norm(np.cross(iop[:3], iop[3:])) < 0.5:
        if "ImagePositionPatient" in ds or pos_item is not None:
            notes.add("no usable ImageOrientationPatient, assuming axial")
        iop = list(IDENTITY_IOP)
    if ipp is None:
        ipp = [0.0, 0.0, 0.0]
    thick = _numbers([(mea_item or ds).get("SliceThickness")], 1)
    return FrameGeometry(np.array(ipp), np.array(iop[:3]), np.array(iop[3:]), (ps[0], ps[1]),
                         thick[0] if thick and thick[0] > 0 else None)


def frame_geometries(ds, name: str, *, report: bool = True) -> list[FrameGeometry]:
    """Geometry of every frame (one for a classic single-frame image); defaults logged if ``report``."""
    notes = _Assumptions(name)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if is_enhanced(ds):
        result = [_frame(ds, k, notes) for k in range(frames)]
    else:
        one = _frame(ds, None, notes)
        result = [one] * frames
    if report:
        notes.log()
    return result


def has_position(ds) -> bool:
    return _numbers(ds.get("ImagePositionPatient"), 3) is not None or _group_item(ds, 0, "PlanePositionSequence") is not None


def frame_order(geoms: list[FrameGeometry]) -> list[int]:
    """Frame indices sorted along the first frame's normal (stable: equal positions keep their order)."""
    normal = geoms[0].normal
    return sorted(range(len(geoms)), key=lambda k: float(np.dot(normal, geoms[k].position)))


def affine_and_spacing(geoms: list[FrameGeometry]) -> tuple[np.ndarray, tuple[float, ...]]:
    """RAS affine in (col, row, slice) index order and spacing in array order, from frames in array order."""
    g = geoms[0]
    (dr, dc), n = g.spacing, len(geoms)
    dz = g.thickness or 1.0
    step = g.normal * dz
    if n > 1:
        step = (geoms[-1].position - g.position) / (n - 1)
        dz = float(np.linalg.norm(step)) or dz
        if not np.any(step):
            step = g.normal * dz
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = g.row_cos * dc, g.col_cos * dr, step, g.position
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return affine, ((dz, dr, dc) if n > 1 else (dr, dc))


def frame_rescale(ds, k: int | None = None) -> tuple[float, float]:
    """(slope, intercept) of frame k: top level, else the frame's or shared PixelValueTransformation; else (1, 0)."""
    slope, intercept = ds.get("RescaleSlope", None), ds.get("RescaleIntercept", None)
    if slope is None and is_enhanced(ds):
        item = _group_item(ds, 0 if k is None else k, "PixelValueTransformationSequence")
        if item is not None:
            slope, intercept = item.get("RescaleSlope", None), item.get("RescaleIntercept", None)
    slope = _numbers([slope], 1) if slope not in (None, "") else None
    intercept = _numbers([intercept], 1) if intercept not in (None, "") else None
    s = slope[0] if slope and slope[0] != 0 else 1.0
    return s, (intercept[0] if intercept else 0.0)


def _resized(position, row_cos, col_cos, spacing, factor: float) -> tuple[list[str], list[str]]:
    """Same field of view on a grid ``factor`` times finer: new first-pixel centre and spacing (DS strings)."""
    dr, dc = spacing
    new = np.asarray(position) - (np.asarray(row_cos) * dc + np.asarray(col_cos) * dr) * (factor - 1) / (2 * factor)
    return [f"{v:.6g}" for v in new], [f"{dr / factor:.6g}", f"{dc / factor:.6g}"]


def resize_geometry(ds, factor: float) -> None:
    """Rewrite positions and spacings (top level and functional groups) for a grid ``factor`` times finer."""
    geoms = frame_geometries(ds, "", report=False)
    g = geoms[0]
    pos, spacing = _resized(g.position, g.row_cos, g.col_cos, g.spacing, factor)
    if "PixelSpacing" in ds:
        ds.PixelSpacing = spacing
    if "ImagePositionPatient" in ds:
        ds.ImagePositionPatient = pos
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for k, group in enumerate(ds.get(groups, [])):
            gk = geoms[min(k, len(geoms) - 1)] if groups.startswith("PerFrame") else g
            pos, spacing = _resized(gk.position, gk.row_cos, gk.col_cos, gk.spacing, factor)
            if "PixelMeasuresSequence" in group and "PixelSpacing" in group.PixelMeasuresSequence[0]:
                group.PixelMeasuresSequence[0].PixelSpacing = spacing
            if "PlanePositionSequence" in group:
                group.PlanePositionSequence[0].ImagePositionPatient = pos
