"""Real pathology images that ship inside packages, and how the shipped 4x pathology SR model splits them.

- ``ihc``: scikit-image's ``ihc.png`` (``skimage.data.immunohistochemistry()``), 512x512 RGB 8-bit,
  an immunohistochemistry (DAB + haematoxylin) image; lossless PNG.
- ``he``: stardist's ``histo.jpg`` (``stardist.data.test_image_he_2d()``, "H&E stained RGB example image
  from the Cancer Imaging Archive"), 300x500 RGB 8-bit, a JPEG (so the target carries JPEG artefacts).
  ``pip install stardist --no-deps`` is enough: the file is found without importing stardist (which would
  need csbdeep and TensorFlow). When it is absent the H&E image is skipped with a note.

- ``natural``: scikit-image's lossless RGB photographs (``astronaut``, ``chelsea``, ``coffee``, ``motorcycle_left``),
  added to training only: the left half of one IHC image alone is too little (a 0.23 M parameter EDSR trained on it
  alone gained 3.3 dB over bicubic on its training pixels but 0.05 dB on the validation strip: it memorised).

Split (one IHC image, split in space; columns are x):

    ihc[:, 0:256]    train   (two files of 256 x 256 px, rows 0..255 and 256..511, so pathology is a third of the
                              training images the sampler draws from; the other four are the natural photographs)
    ihc[:, 288:352]  val     (512 x 64 px, inside the gap: never trained on; used to compare architectures)
    ihc[:, 384:512]  test    (512 x 128 px, held out: never trained on, never used to choose anything)
    The train/test gap is 128 px, wider than the 96 px high-resolution training patch: no patch spans both.
    he  [:300, :500] test    (a second stain and tissue, entirely held out)

    python -m medir.data.pathology data/path_sr    # OUT/{train,val,test}/*.png
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

from medir.errors import MedirError

NATURAL = ("astronaut", "chelsea", "coffee", "motorcycle_left")
TRAIN_COLS = (0, 256)
VAL_COLS = (288, 352)
TEST_COLS = (384, 512)
GAP = TEST_COLS[0] - TRAIN_COLS[1]


def ihc() -> np.ndarray:
    """scikit-image's immunohistochemistry image, (512, 512, 3) uint8."""
    from skimage import data

    return np.asarray(data.immunohistochemistry())


def he_path() -> Path | None:
    """stardist's packaged H&E JPEG, located without importing stardist; None when stardist is not installed."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "histo.jpg"
    return path if path.is_file() else None


def he() -> np.ndarray | None:
    """stardist's H&E image, (300, 500, 3) uint8 cropped to multiples of 4, or None when not installed."""
    path = he_path()
    if path is None:
        return None
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    return np.ascontiguousarray(rgb[:h, :w])


def natural(name: str) -> np.ndarray:
    """One of scikit-image's lossless RGB sample photographs, (H, W, 3) uint8 cropped to multiples of 4."""
    from skimage import io

    path = Path(importlib.util.find_spec("skimage").submodule_search_locations[0]) / "data" / f"{name}.png"
    rgb = np.asarray(io.imread(path))[..., :3]
    return np.ascontiguousarray(rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4])


def split_images() -> dict[str, dict[str, np.ndarray]]:
    """``{"train" | "val" | "test": {name: (H, W, 3) uint8}}`` as the module docstring says."""
    image = ihc()
    train = image[:, slice(*TRAIN_COLS)]
    out = {"train": {"ihc_train_top": train[:256], "ihc_train_bottom": train[256:],
                     **{f"skimage_{name}": natural(name) for name in NATURAL}},
           "val": {"ihc_val": image[:, slice(*VAL_COLS)]},
           "test": {"ihc_test": image[:, slice(*TEST_COLS)]}}
    extra = he()
    if extra is not None:
        out["test"]["he_stardist"] = extra
    return out


def write_split(root: Path, *, force: bool = False) -> list[Path]:
    """Write the split as 8-bit RGB PNGs under ``root/{train,test}/`` (refuses to overwrite without ``force``)."""
    from medir.io import Image, ImageMeta, write_image

    written = []
    for part, images in split_images().items():
        (root / part).mkdir(parents=True, exist_ok=True)
        for name, rgb in images.items():
            meta = ImageMeta(modality="SM", units="RGB8", channels=3, source_format="raster",
                             source={"dtype": "uint8"})
            written.append(write_image(Image(np.ascontiguousarray(rgb), meta), root / part / f"{name}.png",
                                       force=force, description=f"medir pathology split: {part}"))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medir.data.pathology", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="output folder (gets train/, val/ and test/)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(argv)
    try:
        paths = write_split(args.out, force=args.force)
    except MedirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if he_path() is None:
        print("note: stardist is not installed (pip install stardist --no-deps): the H&E test image is skipped",
              file=sys.stderr)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
