"""DICOM in: single files, classic and enhanced multi-frame files, series folders.

Reading applies the rescale (stored * slope + intercept, per frame for enhanced files,
so CT comes out in HU) and the geometry (:mod:`medir.io.dicom_geometry`, per frame for
enhanced files), and keeps every source dataset so that writing
(:mod:`medir.io.dicom_derive`) can make a *derived* series of it.

Compressed transfer syntaxes decode through pydicom's plugins (pylibjpeg with its
openjpeg, libjpeg and rle plugins are dependencies of medir); when one is missing the
error names the transfer syntax and the package to install. pydicom's warnings about a
file are logged (logger ``medir.io.dicom``, level INFO, naming the file) instead of
being printed; nothing is silenced outside these calls.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from medir.errors import InputError
from medir.io.dicom_derive import derived_datasets  # noqa: F401  (the writing half, re-exported)
from medir.io.dicom_geometry import (
    affine_and_spacing, frame_geometries, frame_order, frame_rescale, has_position, pydicom_warnings_logged,
)
from medir.io.image import DEFAULT_UNITS, MODALITY_ALIASES, Image, ImageMeta

log = logging.getLogger("medir.io.dicom")

# Transfer syntax UID prefixes -> the package whose pydicom plugin decodes them.
DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg-libjpeg",  # JPEG baseline / extended (.50, .51)
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.8": "pylibjpeg-libjpeg",  # JPEG-LS (.80, .81)
    "1.2.840.10008.1.2.4.9": "pylibjpeg-openjpeg",  # JPEG 2000 (.90, .91)
    "1.2.840.10008.1.2.4.20": "pylibjpeg-openjpeg",  # HTJ2K (.201-.203)
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE lossless
}


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
    """Parse a file; files without the DICOM preamble/meta header (some anonymisers strip it) are read too."""
    pydicom = _pydicom()
    with pydicom_warnings_logged(path.name):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels)
        except pydicom.errors.InvalidDicomError:
            ds = _read_forced(path, pixels)
        except Exception as err:  # pydicom raises many types for garbage input
            raise InputError(f"{path.name} is not a readable DICOM file ({type(err).__name__}): check the file or re-export it")
        for _ in ds.iterall():  # convert every element now, so that pydicom's value warnings are logged here
            pass
    if pixels and "PixelData" not in ds:
        raise InputError(f"{path.name} holds no pixel data (a DICOM without an image): give an image file")
    return ds


def _read_forced(path: Path, pixels: bool):
    """A bare data set without preamble and meta header: accept it only if it looks like an image."""
    pydicom = _pydicom()
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=not pixels, force=True)
        ok = "Rows" in ds and "Columns" in ds
    except Exception:
        ok = False
    if not ok:
        raise InputError(f"{path.name} is not a readable DICOM file (no DICOM header): check the file or re-export it")
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"
        log.warning("%s: no DICOM meta header, read as %s VR little endian", path.name, "implicit" if implicit else "explicit")
    return ds


def _decoder_package(uid: str) -> str | None:
    return next((pkg for prefix, pkg in DECODER_PACKAGES.items() if uid.startswith(prefix)), None)


def stored_pixels(ds, name: str) -> np.ndarray:
    """The stored values (before rescale); a one-line error naming the codec and its package if undecodable."""
    uid = ds.file_meta.get("TransferSyntaxUID", "") if hasattr(ds, "file_meta") else ""
    try:
        with pydicom_warnings_logged(name):
            return ds.pixel_array
    except Exception as err:
        package = _decoder_package(str(uid))
        ts_name = getattr(uid, "name", str(uid)) or "unknown"
        if package and any(word in str(err).lower() for word in ("plugin", "missing", "dependenc")):
            raise InputError(
                f"{name} is compressed ({ts_name}, {uid}) and no installed decoder reads it: pip install {package}"
            )
        raise InputError(f"{name} has unreadable pixel data ({type(err).__name__}; transfer syntax {ts_name}): "
                         "truncated file or unsupported compression")


def _pixels(ds, name: str) -> np.ndarray:
    """Physical values: stored * slope + intercept, per frame for enhanced multi-frame files."""
    stored = stored_pixels(ds, name).astype(np.float32)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and "RescaleSlope" not in ds and "PerFrameFunctionalGroupsSequence" in ds:
        for k in range(frames):
            slope, intercept = frame_rescale(ds, k)
            stored[k] = stored[k] * np.float32(slope) + np.float32(intercept)
        return stored
    slope, intercept = frame_rescale(ds)
    return stored * np.float32(slope) + np.float32(intercept)


def _units(ds, modality: str) -> str:
    if modality == "PT" and ds.get("Units"):
        return str(ds.Units)
    return DEFAULT_UNITS.get(modality, "a.u.")


def _modality(ds) -> str:
    return MODALITY_ALIASES.get(str(ds.get("Modality", "OT") or "OT").upper(), "OT")


def _meta(ds, path: Path, sources, geoms) -> ImageMeta:
    modality = _modality(ds)
    affine, spacing = affine_and_spacing(geoms)
    return ImageMeta(
        modality=modality,
        units=_units(ds, modality),
        spacing=spacing,
        affine=affine,
        channels=int(ds.get("SamplesPerPixel", 1)),
        source_format="dicom",
        source_path=str(path),
        source=sources,
    )


def read_dicom_file(path: Path) -> Image:
    """One DICOM file: a 2-D image, or a volume when it is multi-frame (frames sorted along the normal)."""
    ds = read_dataset(path)
    array = _pixels(ds, path.name)
    geoms = frame_geometries(ds, path.name)
    if len(geoms) > 1 and int(ds.get("SamplesPerPixel", 1)) == 1:
        order = frame_order(geoms)
        if order != sorted(order):
            array, geoms = array[order], [geoms[k] for k in order]
            ds.medir_frame_order = order  # the writer keeps each frame's functional groups with its pixels
    return Image(array, _meta(ds, path, [ds], geoms))


def _sort_key(ds) -> float:
    g = frame_geometries(ds, "", report=False)[0]
    if has_position(ds):
        return float(np.dot(g.normal, g.position))
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
    geoms = [frame_geometries(ds, name, report=k == 0)[0] for k, ds in enumerate(datasets)]
    return Image(array, _meta(datasets[0], Path(name), datasets, geoms))


def save_dataset(ds, path: Path) -> None:
    with pydicom_warnings_logged(path.name):
        ds.save_as(str(path), enforce_file_format=True)
