"""PNG and TIFF, 8 or 16 bit, grayscale or RGB; written back in the source's bit depth.

A 2-D TIFF's pixel size (XResolution/YResolution per inch or centimetre, as slide scanners write it) is read into
``meta.spacing`` (mm, (row, col)) and written back, so a 4x super-resolved TIFF says its pixels are 4x smaller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medir.errors import InputError
from medir.io.image import Image, ImageMeta

TIFF = (".tif", ".tiff")
UNIT_MM = {2: 25.4, 3: 10.0}  # TIFF ResolutionUnit: 2 inch, 3 centimetre (1: no absolute unit)


def tiff_spacing(path: Path) -> tuple[float, float] | None:
    """(row, col) pixel size in mm from the first page's resolution tags, or None when absent or unitless."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        tags = tf.pages[0].tags
        unit = tags.get("ResolutionUnit")
        xres, yres = tags.get("XResolution"), tags.get("YResolution")
        if unit is None or xres is None or yres is None or int(unit.value) not in UNIT_MM:
            return None
        per_unit = [num / den if den else 0.0 for num, den in (yres.value, xres.value)]
    if min(per_unit) <= 0:
        return None
    return UNIT_MM[int(unit.value)] / per_unit[0], UNIT_MM[int(unit.value)] / per_unit[1]


def read_raster(path: Path) -> Image:
    spacing = None
    try:
        if path.suffix.lower() in TIFF:
            import tifffile

            data = tifffile.imread(str(path))
            spacing = tiff_spacing(path)
        else:
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                data = np.asarray(im.convert("RGB") if im.mode in ("P", "CMYK", "YCbCr") else im)
    except Exception as err:
        raise InputError(f"{path.name} is not a readable image ({type(err).__name__}): check the file or re-export it")
    if data.ndim == 3 and data.shape[-1] == 4:
        data = data[..., :3]  # drop alpha
    channels = data.shape[-1] if data.ndim == 3 and data.shape[-1] == 3 else 1
    meta = ImageMeta(
        modality="SM" if channels == 3 else "OT",
        units="RGB8" if channels == 3 else "a.u.",
        channels=channels,
        source_format="raster",
        source_path=str(path),
        source={"dtype": str(data.dtype)},
        spacing=spacing if data.ndim == 2 or channels == 3 else None,
    )
    return Image(data, meta)


def _out_dtype(image: Image) -> np.dtype:
    src = image.meta.source if isinstance(image.meta.source, dict) else {}
    if "dtype" in src:
        return np.dtype(src["dtype"])
    lo, hi = float(image.array.min()), float(image.array.max())
    return np.dtype(np.uint8) if lo >= 0 and hi <= 255 else np.dtype(np.uint16) if lo >= 0 and hi <= 65535 else np.dtype(np.float32)


def to_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip to what ``dtype`` can hold (floats pass through)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(array), info.min, info.max).astype(dtype)
    return array.astype(dtype)


def write_raster(image: Image, path: Path, *, description: str) -> None:
    dtype = _out_dtype(image)
    data = to_dtype(image.array, dtype)
    if path.suffix.lower() in TIFF:
        import tifffile

        spacing = image.meta.spacing
        resolution = {}
        if spacing is not None and len(spacing) == 2 and min(spacing) > 0:  # pixels per cm, (x, y)
            resolution = {"resolution": (10.0 / spacing[1], 10.0 / spacing[0]), "resolutionunit": "CENTIMETER"}
        tifffile.imwrite(str(path), data, description=description, **resolution)
        return
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    if data.dtype not in (np.uint8, np.uint16) or (data.dtype == np.uint16 and data.ndim == 3):
        raise InputError(f"PNG cannot hold {data.dtype} {'colour' if data.ndim == 3 else ''} pixels: write TIFF or NPY")
    if data.ndim != 2 and not (data.ndim == 3 and data.shape[-1] == 3):
        raise InputError(f"PNG holds one 2-D image, not shape {data.shape}: write NIfTI or NPY for volumes")
    info = PngInfo()
    info.add_text("Description", description)
    PILImage.fromarray(data).save(path, format="PNG", pnginfo=info)
