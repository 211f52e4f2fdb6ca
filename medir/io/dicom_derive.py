"""DICOM out: a *derived* series of the source, classic or enhanced multi-frame.

Every output dataset is a copy of its source with new SOP Instance and Series UIDs,
ImageType DERIVED\\SECONDARY (and FrameType for enhanced images), a SeriesDescription
and DerivationDescription naming medir and the model, and a reference to the source
image (SourceImageSequence; for enhanced images the Derivation Image functional
group). Identity, geometry and spacing are kept (per frame for enhanced images; an
output of another size gets the same field of view on its new grid), and pixels are
stored back in the source representation (same dtype, same rescale, per frame where
the source has per-frame rescale), clipped to what it can hold. Overlay planes of a resized
output are magnified with it (integer factors) or dropped.

Anonymised sources lack what a derived series needs (empty or missing SOP Class,
Study or Frame of Reference UIDs, modality): these are created (a SOP Class from
the modality, generated UIDs shared by the whole output series), and what was
assumed is logged once per series, naming the file, never the patient.
"""

from __future__ import annotations

import copy
import datetime
import logging
from dataclasses import dataclass, field

import numpy as np

from medir.errors import InputError
from medir.io.dicom_geometry import frame_rescale, has_position, is_enhanced, pydicom_warnings_logged, resize_geometry
from medir.io.image import Image

log = logging.getLogger("medir.io.dicom")

UNCOMPRESSED = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SOP_CLASS_FOR_MODALITY = {
    "CT": ("1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"),
    "MR": ("1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"),
    "PT": ("1.2.840.10008.5.1.4.1.1.128", "PET Image Storage"),
    "NM": ("1.2.840.10008.5.1.4.1.1.20", "NM Image Storage"),
    "CR": ("1.2.840.10008.5.1.4.1.1.1", "CR Image Storage"),
    "DX": ("1.2.840.10008.5.1.4.1.1.1.1", "Digital X-Ray Image Storage - For Presentation"),
    "MG": ("1.2.840.10008.5.1.4.1.1.1.2", "Digital Mammography X-Ray Image Storage - For Presentation"),
    "US": ("1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"),
    "XA": ("1.2.840.10008.5.1.4.1.1.12.1", "X-Ray Angiographic Image Storage"),
}
ENHANCED_SOP_CLASS_FOR_MODALITY = {
    "CT": ("1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"),
    "MR": ("1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"),
    "PT": ("1.2.840.10008.5.1.4.1.1.130", "Enhanced PET Image Storage"),
}
FRAME_TYPE_SEQUENCES = ("CTImageFrameTypeSequence", "MRImageFrameTypeSequence", "PETFrameTypeSequence")


def _blank(ds, keyword: str) -> bool:
    return not str(ds.get(keyword, "") or "").strip()


@dataclass
class SeriesContext:
    """What all datasets of one output series share, and what had to be assumed for them."""

    name: str
    modality: str
    series_uid: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def log(self) -> None:
        if self.notes:
            log.warning("%s: anonymised or incomplete header: %s", self.name, "; ".join(self.notes))


def _sop_class(ds, ctx: SeriesContext) -> str:
    if not _blank(ds, "SOPClassUID"):
        return str(ds.SOPClassUID)
    modality = str(ds.get("Modality", "") or ctx.modality).upper()
    table = ENHANCED_SOP_CLASS_FOR_MODALITY if is_enhanced(ds) else SOP_CLASS_FOR_MODALITY
    uid, label = table.get(modality, (SECONDARY_CAPTURE, "Secondary Capture Image Storage"))
    ctx.note(f"no SOP Class UID, using {label} (modality {modality or 'unknown'})")
    return uid


def _fill_identity(out, src, ctx: SeriesContext) -> None:
    """UIDs and codes a derived series needs, created where the source lacks them."""
    from pydicom.uid import generate_uid

    out.SOPClassUID = _sop_class(src, ctx)
    if _blank(src, "Modality"):
        out.Modality = ctx.modality
        ctx.note(f"no Modality, writing {ctx.modality}")
    if _blank(src, "StudyInstanceUID"):
        ctx.study_uid = ctx.study_uid or generate_uid()
        out.StudyInstanceUID = ctx.study_uid
        ctx.note("no Study Instance UID, generated one")
    if _blank(src, "FrameOfReferenceUID") and has_position(src):
        ctx.frame_of_reference_uid = ctx.frame_of_reference_uid or generate_uid()
        out.FrameOfReferenceUID = ctx.frame_of_reference_uid
        ctx.note("no Frame of Reference UID, generated one (positions are not linked to other series)")


def _source_reference(src, ctx: SeriesContext):
    from pydicom import Dataset

    if _blank(src, "SOPInstanceUID"):
        ctx.note("no SOP Instance UID, the derived images cannot reference their source")
        return None
    ref = Dataset()
    ref.ReferencedSOPClassUID = _sop_class(src, ctx)
    ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
    return ref


def _mark_derived(out, src, *, description: str, model: str | None, ctx: SeriesContext) -> None:
    from pydicom import Dataset
    from pydicom.sequence import Sequence

    out.ImageType = ["DERIVED", "SECONDARY"] + [v for v in list(src.get("ImageType", []))[2:]]
    out.SeriesDescription = description[:64]
    source_series = src.get("SeriesDescription", "") or "unnamed"
    derivation = f"{description}; model: {model or 'n/a'}; from series '{source_series}'"[:1024]
    out.DerivationDescription = derivation
    now = datetime.datetime.now()
    out.ContentDate, out.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ref = _source_reference(src, ctx)
    if not is_enhanced(out):
        if ref is not None:
            out.SourceImageSequence = Sequence([ref])
        return
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in out.get(groups, []):
            for seq in FRAME_TYPE_SEQUENCES:
                if seq in group and "FrameType" in group[seq][0]:
                    group[seq][0].FrameType = ["DERIVED"] + list(group[seq][0].FrameType)[1:]
    if "SharedFunctionalGroupsSequence" not in out:
        out.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    item = Dataset()
    item.DerivationDescription = derivation
    item.SourceImageSequence = Sequence([ref] if ref is not None else [])
    out.SharedFunctionalGroupsSequence[0].DerivationImageSequence = Sequence([item])


def _derive(src, ctx: SeriesContext, *, description: str, model: str | None, shape: tuple[int, int]):
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    out = copy.deepcopy(src)
    order = getattr(src, "medir_frame_order", None)
    if order is not None and "PerFrameFunctionalGroupsSequence" in out:
        groups = list(out.PerFrameFunctionalGroupsSequence)
        out.PerFrameFunctionalGroupsSequence = Sequence([groups[k] for k in order])  # sorted on reading
    out.SOPInstanceUID = generate_uid()
    out.SeriesInstanceUID = ctx.series_uid
    _fill_identity(out, src, ctx)
    _mark_derived(out, src, description=description, model=model, ctx=ctx)
    meta = FileMetaDataset(getattr(src, "file_meta", FileMetaDataset()))
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    meta.MediaStorageSOPClassUID = out.SOPClassUID
    meta.TransferSyntaxUID = UNCOMPRESSED
    out.file_meta = meta
    if str(out.get("PhotometricInterpretation", "")).startswith("YBR"):
        out.PhotometricInterpretation = "RGB"  # pydicom decodes compressed colour to RGB
    if shape != (int(src.Rows), int(src.Columns)):
        _resize(out, shape)
    return out


def _resize(ds, shape: tuple[int, int]) -> None:
    """Output of another size (super-resolution up, simulation down): same field of view, new pixel grid."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    factor = shape[0] / rows
    if abs(shape[1] / cols - factor) > 1e-9:
        raise InputError(f"image of {shape[0]}x{shape[1]} is not a uniform rescale of its {rows}x{cols} DICOM source")
    resize_geometry(ds, factor)
    _resize_overlays(ds, factor)
    ds.Rows, ds.Columns = shape


def _resize_overlays(ds, factor: float) -> None:
    """Overlay planes (groups 60xx, e.g. a marked lesion) are drawn on the image's pixel grid: magnify each by an
    integer ``factor`` (every overlay bit becomes a ``factor x factor`` block, OverlayOrigin moved to match), and drop
    those that cannot follow the grid (down-sampling, multi-frame overlays), with a warning naming the group."""
    from pydicom.pixels import pack_bits

    k = round(factor)
    for g in sorted({t.group for t in ds.keys() if 0x6000 <= t.group <= 0x601E and t.group % 2 == 0}):
        frames = int(ds[g, 0x0015].value) if (g, 0x0015) in ds else 1
        if abs(factor - k) > 1e-9 or k < 1 or frames != 1 or (g, 0x3000) not in ds or (g, 0x0010) not in ds:
            for tag in [t for t in ds.keys() if t.group == g]:
                del ds[tag]
            log.warning("overlay group %04X dropped: it cannot follow a %gx resize of the image", g, factor)
            continue
        bits = ds.overlay_array(g)
        big = np.kron(bits, np.ones((k, k), dtype=bits.dtype))
        ds[g, 0x0010].value, ds[g, 0x0011].value = big.shape
        ds[g, 0x3000].value = pack_bits(big)
        if (g, 0x0050) in ds:  # OverlayOrigin: 1-based (row, column) of the overlay's first pixel on the image
            r0, c0 = (int(v) for v in ds[g, 0x0050].value)
            ds[g, 0x0050].value = [(r0 - 1) * k + 1, (c0 - 1) * k + 1]


def _stored_dtype(ds) -> tuple[np.dtype, float, float]:
    bits = int(ds.BitsAllocated)
    stored_bits = int(ds.get("BitsStored", bits))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    lo, hi = (-(2 ** (stored_bits - 1)), 2 ** (stored_bits - 1) - 1) if signed else (0, 2**stored_bits - 1)
    return dtype, float(lo), float(hi)


def _to_stored(ds, values: np.ndarray, frame: int | None = None) -> np.ndarray:
    """Physical values -> stored integers of the source (inverse rescale of the frame, round, clip)."""
    dtype, lo, hi = _stored_dtype(ds)
    slope, intercept = frame_rescale(ds, frame)
    stored = np.rint((values.astype(np.float64) - intercept) / slope)
    return np.clip(stored, lo, hi).astype(dtype)


def _set_pixels(ds, values: np.ndarray) -> None:
    frames = values.shape[0] if values.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1 else 1
    if frames > 1 and "RescaleSlope" not in ds and "PerFrameFunctionalGroupsSequence" in ds:
        stored = np.stack([_to_stored(ds, values[k], k) for k in range(frames)])
    else:
        stored = _to_stored(ds, values)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if frames > 1:
        ds.NumberOfFrames = frames
    ds["PixelData"].VR = "OW" if stored.dtype.itemsize > 1 else "OB"
    ds["PixelData"].is_undefined_length = False


def derived_datasets(image: Image, *, description: str, model: str | None) -> list:
    """The datasets of a derived series holding ``image``'s pixels (one per source dataset)."""
    name = (image.meta.source_path or "image").replace("\\", "/").rsplit("/", 1)[-1]
    with pydicom_warnings_logged(name):
        return _derived_datasets(image, name, description=description, model=model)


def _derived_datasets(image: Image, name: str, *, description: str, model: str | None) -> list:
    from pydicom.uid import generate_uid

    sources = image.meta.source
    if image.meta.source_format != "dicom" or not sources:
        raise InputError("DICOM output needs a DICOM source to derive from: write NIfTI, PNG or NPY instead")
    ctx = SeriesContext(name=name, modality=image.meta.modality, series_uid=generate_uid())
    kw = dict(description=description, model=model, shape=image.slice_shape)
    if len(sources) == 1:
        out = _derive(sources[0], ctx, **kw)
        _set_pixels(out, image.array)
        ctx.log()
        return [out]
    if image.array.ndim != 3 or image.array.shape[0] != len(sources):
        raise InputError(f"volume of shape {image.array.shape} does not match its {len(sources)}-file source series")
    result = []
    for k, src in enumerate(sources):
        out = _derive(src, ctx, **kw)
        out.InstanceNumber = k + 1
        _set_pixels(out, image.array[k])
        result.append(out)
    ctx.log()
    return result
