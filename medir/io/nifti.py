"""NIfTI (.nii, .nii.gz): volumes as (D, H, W) = nibabel's (x, y, z) reversed; the affine is kept as is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medir.errors import InputError
from medir.io.image import Image, ImageMeta


def read_nifti(path: Path) -> Image:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:
        raise InputError(f"{path.name} is not a readable NIfTI file ({type(err).__name__}): check the file")
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise InputError(f"{path.name} is {data.ndim}-D (shape {data.shape}): split it into 3-D volumes first")
    zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    array = data.T  # (x, y[, z]) -> ([z,] y, x)
    meta = ImageMeta(
        spacing=zooms[::-1],
        affine=np.asarray(img.affine, dtype=np.float64),
        source_format="nifti",
        source_path=str(path),
        source=img.header.copy(),
    )
    return Image(np.ascontiguousarray(array), meta)


def write_nifti(image: Image, path: Path, *, description: str) -> None:
    import nibabel as nib

    if image.meta.channels > 1:
        raise InputError("NIfTI output of colour images is not supported: write PNG or TIFF")
    data = np.asarray(image.array, dtype=np.float32).T
    affine = image.meta.affine if image.meta.affine is not None else _affine_from_spacing(image.meta.spacing, data.ndim)
    header = image.meta.source.copy() if isinstance(image.meta.source, nib.Nifti1Header) else None
    out = nib.Nifti1Image(data, affine, header=header)
    out.header.set_data_dtype(np.float32)
    out.header.set_slope_inter(1.0, 0.0)
    out.header["descrip"] = description[:79].encode("ascii", "replace")
    if image.meta.spacing is not None:
        out.header.set_zooms(tuple(image.meta.spacing[::-1])[: data.ndim])
    nib.save(out, str(path))


def _affine_from_spacing(spacing, ndim: int) -> np.ndarray:
    affine = np.eye(4)
    if spacing is not None:
        for i, s in enumerate(tuple(spacing)[::-1][:3]):
            affine[i, i] = s
    return affine
