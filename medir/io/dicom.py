"""DICOM: single files, multi-frame files and series folders in; derived series out.

Reading applies the rescale (stored * slope + intercept, so CT comes out in HU),
and keeps every source dataset so that writing can make a *derived* series of
it: new SOP and series UIDs, ImageType DERIVED\\SECONDARY, a description naming
medir and the model, identity/geometry/spacing kept, pixels stored back in the
source representation (same dtype, same rescale), clipped to what it can hold.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import numpy as np

from medir.errors import InputError
from medir.io.image import DEFAULT_UNITS, MODALITY_ALIASES, Image, ImageMeta

UNCOMPRESSED = "1.2.840.10008.1.2.1"  # Explicit VR Little Endian


def _pydicom():
    import pydicom

    return pydicom


def is_dicom_file(path: Path) -> bool:
    """True for files with the DICM preamble or a .dcm suffix (cheap; no full parse)."""
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def read_dataset(path: Path, *, pixels: bool = True):
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except Exception as err:  # pydicom raises many types for garbage input
        raise InputError(f"{path.name} is not a readable DICOM file ({type(err).__name__}): check the file or re-export it")
    if pixels and "PixelData" not in ds:
        raise InputError(f"{path.name} holds no pixel data (a DICOM without an image): give an image file")
    return ds


def _rescale(ds) -> tuple[float, float]:
    slope, intercept = ds.get("RescaleSlope", None), ds.get("RescaleIntercept", None)
    if slope is None and "SharedFunctionalGroupsSequence" in ds:
        group = ds.SharedFunctionalGroupsSequence[0]
        if "PixelValueTransformationSequence" in group:
            t = group.PixelValueTransformationSequence[0]
            slope, intercept = t.get("RescaleSlope", 1), t.get("RescaleIntercept", 0)
    return float(slope if slope is not None else 1.0), float(intercept if intercept is not None else 0.0)


def _pixels(ds, name: str) -> np.ndarray:
    try:
        stored = ds.pixel_array
    except Exception as err:
        raise InputError(f"{name} has unreadable pixel data ({type(err).__name__}: truncated or unsupported compression)")
    slope, intercept = _rescale(ds)
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _units(ds, modality: str) -> str:
    if modality == "PT" and ds.get("Units"):
        return str(ds.Units)
    return DEFAULT_UNITS.get(modality, "a.u.")


def _geometry(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """(row cosine, column cosine, position, (row spacing, col spacing)) in LPS, with safe defaults."""
    iop = [float(v) for v in ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
    ipp = [float(v) for v in ds.get("ImagePositionPatient", [0, 0, 0])]
    ps = [float(v) for v in ds.get("PixelSpacing", [1, 1])]
    return np.array(iop[:3]), np.array(iop[3:]), np.array(ipp), (ps[0], ps[1])


def _affine(first, last, n: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """RAS affine in (col, row, slice) index order, and spacing in array order."""
    row_cos, col_cos, pos, (dr, dc) = _geometry(first)
    normal = np.cross(row_cos, col_cos)
    dz = float(first.get("SliceThickness", 1) or 1)
    step = normal * dz
    if n > 1 and last is not None:
        step = (_geometry(last)[2] - pos) / (n - 1)
        dz = float(np.linalg.norm(step)) or dz
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row_cos * dc, col_cos * dr, step, pos
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return affine, ((dz, dr, dc) if n > 1 else (dr, dc))


def _meta(ds, path: Path, sources, n_slices: int, last=None) -> ImageMeta:
    modality = MODALITY_ALIASES.get(str(ds.get("Modality", "OT")).upper(), "OT")
    affine, spacing = _affine(ds, last, n_slices)
    channels = int(ds.get("SamplesPerPixel", 1))
    return ImageMeta(
        modality=modality,
        units=_units(ds, modality),
        spacing=spacing,
        affine=affine,
        channels=channels,
        source_format="dicom",
        source_path=str(path),
        source=sources,
    )


def read_dicom_file(path: Path) -> Image:
    """One DICOM file: a 2-D image, or a volume when it is multi-frame."""
    ds = read_dataset(path)
    array = _pixels(ds, path.name)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    meta = _meta(ds, path, [ds], frames)
    return Image(array, meta)


def _sort_key(ds) -> float:
    row_cos, col_cos, pos, _ = _geometry(ds)
    if "ImagePositionPatient" in ds:
        return float(np.dot(np.cross(row_cos, col_cos), pos))
    return float(ds.get("InstanceNumber", 0) or 0)


def read_dicom_series(files: list[Path], name: str) -> Image:
    """A folder of single-frame files of one series -> volume sorted along the slice normal."""
    datasets = [read_dataset(f) for f in files]
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise InputError(f"{name} holds {len(series)} DICOM series: give one folder per series")
    datasets.sort(key=_sort_key)
    slices = [_pixels(ds, name) for ds in datasets]
    shapes = {s.shape for s in slices}
    if len(shapes) > 1 or slices[0].ndim != 2:
        raise InputError(f"{name} mixes slice sizes {sorted(shapes)} or multi-frame files: not one series")
    array = np.stack(slices) if len(slices) > 1 else slices[0]
    meta = _meta(datasets[0], Path(name), datasets, len(datasets), datasets[-1])
    return Image(array, meta)


def _stored_dtype(ds) -> tuple[np.dtype, float, float]:
    bits = int(ds.BitsAllocated)
    stored_bits = int(ds.get("BitsStored", bits))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    lo, hi = (-(2 ** (stored_bits - 1)), 2 ** (stored_bits - 1) - 1) if signed else (0, 2**stored_bits - 1)
    return dtype, float(lo), float(hi)


def _to_stored(ds, values: np.ndarray) -> np.ndarray:
    """Physical values -> stored integers of the source (inverse rescale, round, clip)."""
    dtype, lo, hi = _stored_dtype(ds)
    slope, intercept = _rescale(ds)
    stored = np.rint((values.astype(np.float64) - intercept) / slope)
    return np.clip(stored, lo, hi).astype(dtype)


def _derive(ds, *, series_uid: str, description: str, model: str | None, shape: tuple[int, int]):
    pydicom = _pydicom()
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    out = copy.deepcopy(ds)
    source_sop = ds.get("SOPInstanceUID")
    sop_uid = generate_uid()
    out.SOPInstanceUID = sop_uid
    out.SeriesInstanceUID = series_uid
    out.ImageType = ["DERIVED", "SECONDARY"] + [v for v in list(ds.get("ImageType", []))[2:]]
    out.SeriesDescription = description[:64]
    source_series = ds.get("SeriesDescription", "")
    out.DerivationDescription = f"{description}; model: {model or 'n/a'}; from series '{source_series}'"[:1024]
    now = datetime.datetime.now()
    out.ContentDate, out.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if source_sop is not None and "SOPClassUID" in ds:
        ref = pydicom.Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, source_sop
        out.SourceImageSequence = Sequence([ref])
    meta = FileMetaDataset(getattr(ds, "file_meta", FileMetaDataset()))
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", meta.get("MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.7"))
    meta.TransferSyntaxUID = UNCOMPRESSED
    out.file_meta = meta
    if shape != (int(ds.Rows), int(ds.Columns)):
        _resize_geometry(out, shape)
    return out


def _resize_geometry(ds, shape: tuple[int, int]) -> None:
    """Output of another size (super-resolution up, simulation down): same field of view, new pixel grid."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    factor = shape[0] / rows
    if abs(shape[1] / cols - factor) > 1e-9:
        raise InputError(f"image of {shape[0]}x{shape[1]} is not a uniform rescale of its {rows}x{cols} DICOM source")
    row_cos, col_cos, pos, (dr, dc) = _geometry(ds)
    ds.Rows, ds.Columns = shape
    ds.PixelSpacing = [f"{dr / factor:.6g}", f"{dc / factor:.6g}"]
    if "ImagePositionPatient" in ds:
        new = pos - (row_cos * dc + col_cos * dr) * (factor - 1) / (2 * factor)
        ds.ImagePositionPatient = [f"{v:.6g}" for v in new]


def _set_pixels(ds, values: np.ndarray) -> None:
    stored = _to_stored(ds, values)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if stored.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:
        ds.NumberOfFrames = stored.shape[0]
    ds["PixelData"].VR = "OW" if stored.dtype.itemsize > 1 else "OB"
    ds["PixelData"].is_undefined_length = False


def derived_datasets(image: Image, *, description: str, model: str | None) -> list:
    """The datasets of a derived series holding ``image``'s pixels (one per source dataset)."""
    from pydicom.uid import generate_uid

    sources = image.meta.source
    if image.meta.source_format != "dicom" or not sources:
        raise InputError("DICOM output needs a DICOM source to derive from: write NIfTI, PNG or NPY instead")
    series_uid = generate_uid()
    if len(sources) == 1:
        out = _derive(sources[0], series_uid=series_uid, description=description, model=model, shape=image.slice_shape)
        _set_pixels(out, image.array)
        return [out]
    if image.array.ndim != 3 or image.array.shape[0] != len(sources):
        raise InputError(f"volume of shape {image.array.shape} does not match its {len(sources)}-file source series")
    result = []
    for k, src in enumerate(sources):
        out = _derive(src, series_uid=series_uid, description=description, model=model, shape=image.slice_shape)
        out.InstanceNumber = k + 1
        _set_pixels(out, image.array[k])
        result.append(out)
    return result


def save_dataset(ds, path: Path) -> None:
    ds.save_as(str(path), enforce_file_format=True)
