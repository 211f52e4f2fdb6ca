"""Offline MR images for the shipped 4x MRI super-resolution model (``mr-sr4-edsr``), and how they are split.

Everything ships inside installed packages, so anyone can regenerate the data:

- training and simulated held-out slices from nilearn's MNI ICBM152 2009a template (197x233x189, 1 mm), in two
  contrasts: its T1 (scaled to 0..1000 a.u.) and a T2-like image synthesised from its tissue maps (CSF bright,
  grey over white matter, :func:`t2_like`); axial, coronal and sagittal slices, cropped to a multiple of 4;
- REAL held-out scans (never trained on, never used for model selection; :data:`REAL_TEST`): pydicom-data's
  ``MR2_UNCR.dcm`` (shoulder, 1024x1024, 0.195 mm, lossless original of ``MR2_J2KI.dcm``), pydicom-data's
  ``MR-SIEMENS-DICOM-WithOverlays.dcm`` (abdomen, 484x484, 0.72 mm) and nibabel's ``example4d.nii.gz`` (brain
  EPI, 128x96, 2 mm; axial slices 6, 9, 12, 15, 18 of volume 0). nibabel's ``0.dcm``/``1.dcm`` are left out: their
  pixels are a synthetic stripe pattern, not anatomy.

Split (no voxel is shared): training uses the template's sub-volume ``z < 100`` (axial slices, and coronal and
sagittal slices cropped to it); validation (monitoring only, the final weights are shipped) is axial 102, 106;
the simulated held-out test is axial ``z = 110..142`` step 8.

The low-resolution input is made by medir's ``mri-sr`` task with the seeds' protocol (DiffCode's ``ixi-4x``:
antialiased bicubic x4 in the image domain, no noise), on the fly during training.

    python -m medir.data.mri_sr data/mri_sr    # data/mri_sr/{train,val,test}/*.npz (a.u., 1 mm spacing)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medir.errors import MedirError
from medir.io import Image, ImageMeta, read_image, write_image

SCALE = 4
PEAK_AU = 1000.0  # template intensities (0..1) are written as 0..PEAK_AU arbitrary units
TRAIN_Z_END = 100
VAL_Z = (102, 106)
TEST_Z = tuple(range(110, 150, 8))
# (source, file name, slices): "pydicom" files via pydicom.data.get_testdata_file, "nibabel" from nibabel/tests/data
REAL_TEST = (
    ("pydicom", "MR2_UNCR.dcm", (0,)),
    ("pydicom", "MR-SIEMENS-DICOM-WithOverlays.dcm", (0,)),
    ("nibabel", "example4d.nii.gz", (6, 9, 12, 15, 18)),
)


def crop_to_multiple(x: np.ndarray, k: int = SCALE) -> np.ndarray:
    """Centre crop of a ``(..., H, W)`` array to the largest multiple of ``k`` in each of H and W."""
    h, w = x.shape[-2:]
    r, c = (h % k) // 2, (w % k) // 2
    return x[..., r:r + h - h % k, c:c + w - w % k]


def t2_like(grey: np.ndarray, white: np.ndarray, csf: np.ndarray) -> np.ndarray:
    """T2-weighted-like contrast in 0..1 from tissue fractions (CSF 1.0, grey 0.55, white 0.35), lightly smoothed."""
    from scipy import ndimage

    return ndimage.gaussian_filter(1.0 * csf + 0.55 * grey + 0.35 * white, 0.5).astype(np.float32)


def _volumes() -> dict[str, np.ndarray]:
    """The two contrasts as ``(x, y, z)`` volumes in 0..1."""
    from scipy import ndimage

    from medir.data.phantoms import load_template

    vol = load_template()
    brain = vol["grey"] + vol["white"]
    filled = np.stack([ndimage.binary_fill_holes(ndimage.binary_closing(brain[:, :, z] > 0.1, iterations=3))
                       for z in range(brain.shape[2])], axis=2)
    csf = np.clip(filled - brain, 0.0, 1.0)
    return {"t1": vol["t1"], "t2": t2_like(vol["grey"], vol["white"], csf)}


def template_slices(split: str) -> list[tuple[str, np.ndarray]]:
    """(name, slice ``(H, W)`` in a.u.) of one split: ``train``, ``val`` or ``test`` (see the module docstring)."""
    if split not in ("train", "val", "test"):
        raise MedirError(f"unknown split '{split}': use train, val or test")
    out = []
    for contrast, v in _volumes().items():
        if split != "train":
            zs = VAL_Z if split == "val" else TEST_Z
            out += [(f"mni_{contrast}_ax{z:03d}", np.rot90(v[:, :, z])) for z in zs]
            continue
        sub = v[:, :, :TRAIN_Z_END]
        out += [(f"mni_{contrast}_ax{z:03d}", np.rot90(sub[:, :, z])) for z in range(14, TRAIN_Z_END, 2)]
        out += [(f"mni_{contrast}_cor{y:03d}", np.rot90(sub[:, y, :])) for y in range(30, 200, 4)]
        out += [(f"mni_{contrast}_sag{x:03d}", np.rot90(sub[x, :, :])) for x in range(24, 174, 4)]
    return [(name, crop_to_multiple(np.ascontiguousarray(s)) * np.float32(PEAK_AU)) for name, s in out
            if float(s.std()) > 0.02]


def real_test_images() -> list[tuple[str, Image]]:
    """The real held-out MR slices (:data:`REAL_TEST`) as 2-D images in their stored units, cropped to a
    multiple of 4, with in-plane spacing. Never for training or model selection."""
    import nibabel
    from pydicom.data import get_testdata_file

    items = []
    for source, name, slices in REAL_TEST:
        if source == "pydicom":
            path = get_testdata_file(name)
            if path is None:
                raise MedirError(f"MR test file {name} is missing: pip install pydicom pydicom-data")
        else:
            path = Path(nibabel.__file__).parent / "tests" / "data" / name
        if name.endswith(".nii.gz"):  # 4-D EPI: axial slices of the first volume, displayed orientation
            img = nibabel.load(path)
            stack = np.rot90(np.asarray(img.dataobj[..., 0], dtype=np.float32)).transpose(2, 0, 1)[:, None]
            spacing = tuple(float(v) for v in img.header.get_zooms()[:2])
        else:
            image = read_image(Path(path))
            stack = image.slices().astype(np.float32)  # (D, C, H, W)
            spacing = image.meta.spacing[-2:] if image.meta.spacing else None
        for d in slices:
            meta = ImageMeta(modality="MR", units="a.u.", spacing=spacing)
            stem = name.split(".")[0] + (f"_z{d:02d}" if len(slices) > 1 else "")
            items.append((stem, Image(np.ascontiguousarray(crop_to_multiple(stack[d, 0])), meta)))
    return items


def write_mri_sr(out: Path, *, force: bool = False) -> dict[str, int]:
    """``out/{train,val,test}/*.npz`` high-resolution template slices (a.u., 1 mm); returns counts per split."""
    counts = {}
    for split in ("train", "val", "test"):
        items = template_slices(split)
        for name, arr in items:
            meta = ImageMeta(modality="MR", units="a.u.", spacing=(1.0, 1.0))
            write_image(Image(arr, meta), out / split / f"{name}.npz", force=force)
        counts[split] = len(items)
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the MNI template MR slices for 4x MRI super-resolution (.npz).")
    p.add_argument("out", type=Path)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    counts = write_mri_sr(args.out, force=args.force)
    print(f"wrote {counts['train']} training, {counts['val']} validation and {counts['test']} held-out slices "
          f"under {args.out}")


if __name__ == "__main__":
    main()
