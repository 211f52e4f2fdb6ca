"""NPY and NPZ arrays (no pickle). An NPZ holds its image under 'image' or as its only array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medir.errors import InputError
from medir.io.image import Image, ImageMeta


def read_array(path: Path) -> Image:
    try:
        loaded = np.load(str(path), allow_pickle=False)
    except Exception as err:
        raise InputError(f"{path.name} is not a readable NumPy file ({type(err).__name__}): check the file")
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            key = "image" if "image" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise InputError(f"{path.name} holds arrays {keys}: name the image array 'image'")
            data = loaded[key]
            spacing = tuple(float(v) for v in loaded["spacing"]) if "spacing" in keys else None
    else:
        data, spacing = loaded, None
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(f"{path.name} holds {data.dtype} values: medir needs real numbers")
    meta = ImageMeta(spacing=spacing, source_format="numpy", source_path=str(path))
    return Image(data, meta)


def write_array(image: Image, path: Path) -> None:
    data = np.asarray(image.array, dtype=np.float32)
    with open(path, "wb") as f:
        if path.suffix.lower() == ".npz":
            extra = {"spacing": np.asarray(image.meta.spacing)} if image.meta.spacing is not None else {}
            np.savez_compressed(f, image=data, **extra)
        else:
            np.save(f, data)
