"""Offline CT images for the shipped low-dose CT model, and how they are split.

Everything here ships inside installed packages, so anyone can regenerate the data:

- real CT slices from pydicom's test files: ``693_J2KI.dcm`` (head, 512x512),
  ``J2K_pixelrep_mismatch.dcm`` (head, 512x512), ``CT_small.dcm`` (neck, 128x128);
- pseudo-CT head slices built from the MNI ICBM152 2009a grey/white-matter maps that ship
  with nilearn: tissue fractions mapped to HU (grey 40, white 28, CSF 8), a skull of
  cortical bone and diploe grown around the brain, scalp, air at -1000 HU; training slices at 1 mm
  (the template's grid) and, every other one, at 0.5 mm like clinical head CT (more noise per pixel).

Split: ``J2K_pixelrep_mismatch.dcm`` and pseudo-CT slices z >= 110 are held out (test);
the other real slices and pseudo-CT slices 40 <= z < 100 are for training, so no slice is shared.

    python -m medir.data.ldct OUT           # OUT/train/*.npz and OUT/test/*.npz (HU + spacing)
    python -m medir.data.ldct OUT --pairs   # OUT/{train,test}/{lq,hq}/*.npz quarter-dose pairs
    python -m medir.data.ldct medir/samples --example --force   # the shipped example and its reference
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from medir.errors import MedirError
from medir.io import Image, ImageMeta, read_image, write_image

REAL_SPLIT = {"693_J2KI.dcm": "train", "CT_small.dcm": "train", "J2K_pixelrep_mismatch.dcm": "test"}
# (MNI z index, pixel size in mm): 1 mm as in the template, and 0.5 mm like clinical head CT (more noise per pixel).
PSEUDO_SPLIT = {
    "train": [(z, 1.0) for z in range(40, 100, 3)] + [(z, 0.5) for z in range(41, 100, 6)],
    "test": [(z, 1.0) for z in range(110, 150, 8)],
}
HU = {"air": -1000.0, "csf": 8.0, "grey": 40.0, "white": 28.0, "cortical": 1400.0, "diploe": 550.0, "scalp": 35.0}


def real_ct(name: str) -> Image:
    """One of pydicom's CT test slices, in HU, clipped to the CT preset's range [-1024, 3071]."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        raise MedirError(f"pydicom test file {name} is missing: reinstall pydicom")
    image = read_image(path)
    image.array = np.clip(image.array, -1024, 3071)
    return image


def pseudo_ct_head(z: int, *, seed: int = 0, pixel_mm: float = 1.0) -> np.ndarray:
    """Axial pseudo-CT slice in HU at MNI voxel index ``z``, on a grid of ``pixel_mm`` (the template is 1 mm:
    finer grids interpolate the tissue maps linearly, as a clinical head CT's 0.4-0.5 mm pixels would sample it)."""
    from medir.data.phantoms import tissue_maps

    maps = tissue_maps(z)
    gm, wm, csf = (ndimage.zoom(np.rot90(maps[k]), 1.0 / pixel_mm, order=1) for k in ("grey", "white", "csf"))
    brain = (gm + wm + csf) > 0.5
    hu = np.full(brain.shape, HU["air"], np.float32)
    hu[brain] = (gm * HU["grey"] + wm * HU["white"] + csf * HU["csf"])[brain]
    inner = brain
    for radius_mm, tissue in [(2, "cortical"), (5, "diploe"), (7, "cortical"), (12, "scalp")]:
        shell = ndimage.binary_dilation(brain, iterations=round(radius_mm / pixel_mm)) & ~inner
        hu[shell] = HU[tissue]
        inner = inner | shell
    rng = np.random.default_rng(seed + z)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, hu.shape), 3 / pixel_mm) * 40  # smooth tissue inhomogeneity
    hu[inner] += texture[inner].astype(np.float32)
    return ndimage.gaussian_filter(hu, 0.6 / pixel_mm)


def ldct_sources(split: str) -> list[tuple[str, Image]]:
    """(name, HU image) pairs of one split, real slices first."""
    items = [(Path(n).stem, real_ct(n)) for n, s in REAL_SPLIT.items() if s == split]
    for z, pixel_mm in PSEUDO_SPLIT[split]:
        meta = ImageMeta(modality="CT", units="HU", spacing=(pixel_mm, pixel_mm))
        suffix = "" if pixel_mm == 1.0 else f"_{pixel_mm:g}mm".replace(".", "p")
        items.append((f"mni_pseudo_ct_z{z:03d}{suffix}", Image(pseudo_ct_head(z, pixel_mm=pixel_mm), meta)))
    return items


def quarter_dose(image: Image, *, seed: int, dose: float = 0.25) -> np.ndarray:
    """The image at ``dose`` x the reference flux (ct-lowdose with the image's own pixel size), in HU."""
    import torch

    from medir.physics import simulate

    pixel = float(image.meta.spacing[-1]) if image.meta.spacing else 1.0
    x = torch.from_numpy(np.ascontiguousarray(image.array))[None, None]
    return simulate("ct-lowdose", x, seed=seed, dose=dose, pixel_size_mm=pixel)[0, 0].numpy()


def write_ldct_pairs(out: Path, *, realizations: int = 4, dose: float = 0.25, force: bool = False) -> dict[str, int]:
    """Paired folders ``out/{train,test}/{lq,hq}`` (NPZ, HU): ``realizations`` noise draws per training slice, one per test slice."""
    from tqdm.auto import tqdm

    counts = {}
    for split in ("train", "test"):
        jobs = [(n, im, r) for n, im in ldct_sources(split) for r in range(realizations if split == "train" else 1)]
        for k, (name, image, r) in enumerate(tqdm(jobs, desc=f"ldct {split}", unit="slice")):
            meta = ImageMeta(modality="CT", units="HU", spacing=image.meta.spacing)
            seed = 1000 * (split == "test") + 10 * k + r
            stem = f"{name}_r{r}.npz"
            write_image(Image(quarter_dose(image, seed=seed, dose=dose), meta), out / split / "lq" / stem, force=force)
            write_image(Image(image.array, meta), out / split / "hq" / stem, force=force)
        counts[split] = len(jobs)
    return counts


EXAMPLE = "J2K_pixelrep_mismatch.dcm"


def write_example(folder: Path, *, force: bool = False) -> tuple[Path, Path]:
    """The shipped example: the held-out real slice at quarter dose (the same draw as the test pair) and its
    full-dose reference, as DICOM derived from pydicom's test file, with a sample identity instead of its own."""
    image = real_ct(EXAMPLE)
    low = Image(quarter_dose(image, seed=1000), image.meta)  # seed of test item 0 in write_ldct_pairs
    paths = []
    for name, img, text in [("ldct_example.dcm", low, "quarter-dose (simulated)"), ("ldct_reference.dcm", image, "full dose")]:
        for ds in img.meta.source:
            ds.PatientName, ds.PatientID = "SAMPLE^MEDIR", "MEDIR-SAMPLE"
        paths.append(write_image(img, folder / name, force=force, description=f"medir sample: {text}"))
    return paths[0], paths[1]


def write_ldct_folders(out: Path, *, force: bool = False) -> dict[str, int]:
    """Write ``out/train`` and ``out/test`` as NPZ slices (HU, with pixel spacing); returns counts per split."""
    counts = {}
    for split in ("train", "test"):
        items = ldct_sources(split)
        for name, image in items:
            meta = ImageMeta(modality="CT", units="HU", spacing=image.meta.spacing)
            write_image(Image(image.array, meta), out / split / f"{name}.npz", force=force)
        counts[split] = len(items)
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the offline CT slices (HU, .npz), optionally as quarter-dose pairs.")
    p.add_argument("out", type=Path)
    p.add_argument("--pairs", action="store_true", help="write {train,test}/{lq,hq} quarter-dose pairs")
    p.add_argument("--realizations", type=int, default=4, help="noise draws per training slice (with --pairs)")
    p.add_argument("--dose", type=float, default=0.25)
    p.add_argument("--example", action="store_true", help="write the shipped example DICOMs into OUT instead")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    if args.example:
        low, ref = write_example(args.out, force=args.force)
        print(f"wrote {low} and {ref}")
        return
    if args.pairs:
        counts = write_ldct_pairs(args.out, realizations=args.realizations, dose=args.dose, force=args.force)
    else:
        counts = write_ldct_folders(args.out, force=args.force)
    print(f"wrote {counts['train']} training and {counts['test']} held-out items under {args.out}")


if __name__ == "__main__":
    main()
