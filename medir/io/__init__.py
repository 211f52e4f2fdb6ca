"""Read and write scans as :class:`Image`: DICOM (file, multi-frame, series folder), NIfTI, PNG/TIFF, NPY/NPZ.

``read_image(path)`` takes a file or a folder holding one DICOM series.
``write_image(image, path)`` writes in the format the path's suffix names (a
folder for a DICOM series), atomically, refusing to overwrite without ``force``.
``discover(paths)`` expands files, folders, DICOMDIRs and series into work items (``read_item`` reads one).
"""

from __future__ import annotations

from pathlib import Path

from medir.engine.atomic import atomic_dir, atomic_path
from medir.errors import InputError
from medir.io.discover import Discovery, InputItem, discover
from medir.io.image import Image, ImageMeta, normalize_modality

__all__ = [
    "Discovery", "Image", "ImageMeta", "InputItem", "collect_inputs", "discover", "format_of", "read_image",
    "read_item", "repair_spacing", "write_image",
]

RASTER = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
NUMPY = (".npy", ".npz")
NIFTI = (".nii", ".nii.gz")


def format_of(path: Path) -> str | None:
    """'dicom', 'nifti', 'raster', 'numpy', 'series' (a folder of DICOM files) or None."""
    name = path.name.lower()
    if path.is_dir():
        return "series" if _dicom_files(path) else None
    if name.endswith(NIFTI):
        return "nifti"
    if name.endswith(RASTER):
        return "raster"
    if name.endswith(NUMPY):
        return "numpy"
    from medir.io.dicom import is_dicom_file

    return "dicom" if is_dicom_file(path) else None


def _dicom_files(folder: Path) -> list[Path]:
    from medir.io.dicom import is_dicom_file

    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_dicom_file(p))


def read_image(path: str | Path, *, modality: str | None = None) -> Image:
    """Read a file or a DICOM series folder; ``modality`` overrides what the file says (or does not say)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: check the path")
    kind = format_of(path)
    if kind is None:
        raise InputError(
            f"{path.name} is not a format medir reads: use DICOM, NIfTI (.nii/.nii.gz), PNG/TIFF or NPY/NPZ"
        )
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path.name} is an empty file (0 bytes): check the export")
    image = _READERS[kind](path)
    if modality is not None:
        image.meta.modality = normalize_modality(modality)
    return image


def _read_dicom(path: Path) -> Image:
    from medir.io.dicom import read_dicom_file

    return read_dicom_file(path)


def _read_series(path: Path) -> Image:
    from medir.io.dicom import read_dicom_series

    return read_dicom_series(_dicom_files(path), path.name)


def _read_nifti(path: Path) -> Image:
    from medir.io.nifti import read_nifti

    return read_nifti(path)


def _read_raster(path: Path) -> Image:
    from medir.io.raster import read_raster

    return read_raster(path)


def _read_numpy(path: Path) -> Image:
    from medir.io.arrays import read_array

    return read_array(path)


_READERS = {
    "dicom": _read_dicom,
    "series": _read_series,
    "nifti": _read_nifti,
    "raster": _read_raster,
    "numpy": _read_numpy,
}


def write_image(
    image: Image,
    path: str | Path,
    *,
    force: bool = False,
    description: str = "medir",
    model: str | None = None,
) -> Path:
    """Write ``image`` to ``path`` in the format its suffix names (no suffix + DICOM source -> series folder).

    ``description`` and ``model`` go into the file (DICOM SeriesDescription/DerivationDescription,
    NIfTI descrip, PNG/TIFF description). A DICOM output of another size than its source (super-resolution,
    simulated low resolution) gets its rows, columns, spacing and position updated for the same field of view.
    """
    path = Path(path)
    name = path.name.lower()
    if image.meta.source_format == "dicom" and not name.endswith(NIFTI + RASTER + NUMPY):
        return _write_dicom(image, path, force=force, description=description, model=model)
    text = f"{description}; model: {model}" if model else description
    if not name.endswith(NIFTI + RASTER + NUMPY):
        raise InputError(f"{path.name}: unknown output format; end the name with .nii.gz, .png, .tif, .npy or .dcm")
    with atomic_path(path, force=force) as tmp:
        if name.endswith(NIFTI):
            from medir.io.nifti import write_nifti

            write_nifti(image, tmp, description=text)
        elif name.endswith(RASTER):
            from medir.io.raster import write_raster

            write_raster(image, tmp, description=text)
        else:
            from medir.io.arrays import write_array

            write_array(image, tmp)
    return path


def _write_dicom(image: Image, path: Path, *, force: bool, description: str, model: str | None) -> Path:
    from medir.io.dicom import derived_datasets, save_dataset

    datasets = derived_datasets(image, description=description, model=model)
    if len(datasets) == 1 and image.meta.source_format == "dicom" and path.suffix:
        with atomic_path(path, force=force) as tmp:
            save_dataset(datasets[0], tmp)
        return path
    with atomic_dir(path, force=force) as tmp:
        for k, ds in enumerate(datasets):
            save_dataset(ds, tmp / f"slice_{k + 1:04d}.dcm")
    return path


def collect_inputs(paths: list[str | Path]) -> list[InputItem]:
    """Work items for ``paths`` (see :func:`medir.io.discover.discover`, which also says what was skipped)."""
    return discover(paths).items


def read_item(item: InputItem, *, modality: str | None = None) -> Image:
    """Read one work item: a series item reads exactly its grouped files, others read their path."""
    if item.kind == "invalid":
        raise InputError(f"{item.label} {item.reason}")
    if item.kind != "series" or not item.files:
        return read_image(item.path, modality=modality)
    from medir.io.dicom import read_dicom_series

    image = read_dicom_series(list(item.files), item.label)
    if modality is not None:
        image.meta.modality = normalize_modality(modality)
    return image


def repair_spacing(image: Image) -> str | None:
    """Pixel spacing 0 (or negative, NaN), as some anonymisers and secondary captures write, is treated as
    missing: 1 mm is assumed along those axes and the affine rebuilt so it stays invertible.

    Returns a note saying what was assumed, or None when the spacing was usable.
    """
    import numpy as np

    spacing = image.meta.spacing
    if spacing is None or all(np.isfinite(v) and v > 0 for v in spacing):
        return None
    bad = [k for k, v in enumerate(spacing) if not (np.isfinite(v) and v > 0)]
    image.meta.spacing = tuple(1.0 if k in bad else float(v) for k, v in enumerate(spacing))
    affine = image.meta.affine
    if affine is not None:
        affine = np.array(affine, dtype=np.float64, copy=True)
        directions = _index_directions(image)
        for col in range(3):
            if not np.linalg.norm(affine[:3, col]) > 0:
                affine[:3, col] = directions[:, col]
        image.meta.affine = affine
    values = ", ".join(f"{v:g}" for v in spacing)
    return f"pixel spacing ({values}) is not usable: treated as missing, 1 mm assumed"


def _index_directions(image: Image):
    """Unit directions (RAS) of the (col, row, slice) index axes: the DICOM orientation if known, else identity."""
    import numpy as np

    sources = image.meta.source if image.meta.source_format == "dicom" else None
    iop = sources[0].get("ImageOrientationPatient") if sources else None
    if not iop or len(iop) != 6:
        return np.eye(3)
    row, col = np.array([float(v) for v in iop[:3]]), np.array([float(v) for v in iop[3:]])
    if not (np.linalg.norm(row) > 0 and np.linalg.norm(col) > 0):
        return np.eye(3)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    normal = np.cross(row, col)
    return lps_to_ras @ np.stack([row, col, normal / (np.linalg.norm(normal) or 1.0)], axis=1)
