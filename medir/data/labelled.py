"""Labelled images for segmentation methods: ``root/images/NAME`` with ``root/labels/NAME``.

Images are read once (any format :func:`medir.io.read_image` reads; volumes give one pair per
slice) and kept as ``(C, H, W)`` physical-unit slices with ``(H, W)`` int64 label maps.

As for the restoration datasets (:mod:`medir.data.datasets`), training sample ``index`` is a pure
function of ``(seed, index)``: which slice, where the patch lies and the D4 symmetry (flips and
quarter turns, exact for label maps: no interpolation) come from one generator seeded with both,
so a resumed run sees exactly the batches an uninterrupted one would.

A sample is ``{"image": (C, p, p) float32 in network space, "labels": (p, p) int64}``; the
intensity preset maps physical units to the network (``preset.to_network`` with the slice's
``(offset, span)``).

Run as a script to build the brain-phantom set (T1 MR slices and their tissue labels; training,
validation and test slices come from disjoint slice ranges of the template):

    python -m medir.data.labelled OUT [--train 10 --val 3 --test 6 --size 128]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medir.data.augment import random_dihedral
from medir.data.datasets import image_files, read_slices, sample_rngs
from medir.data.intensity import IntensityPreset, get_preset
from medir.errors import ConfigError

MR_FULL_SCALE = 3000.0  # phantom T1 (0..1) written in a.u. of a 12-bit scanner range


@dataclass
class LabelledSlices:
    """``images``: ``(C, H, W)`` physical units; ``labels``: ``(H, W)`` int64 class ids; one name per slice."""

    images: list[np.ndarray]
    labels: list[np.ndarray]
    names: list[str]

    @property
    def num_classes(self) -> int:
        """Largest class id + 1 over all label maps."""
        return int(max(int(lab.max()) for lab in self.labels)) + 1


def find_labelled(root: Path, name: str) -> list[tuple[Path, Path]]:
    """``root/images/NAME`` with ``root/labels/NAME``; every image needs its label map and vice versa."""
    img_dir, lab_dir = root / "images", root / "labels"
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            raise ConfigError(f"{name}: labelled folder {d} does not exist: put images in {img_dir} and "
                              f"label maps with the same names in {lab_dir}")
    images = {p.relative_to(img_dir): p for p in image_files(img_dir)}
    labels = {p.relative_to(lab_dir): p for p in image_files(lab_dir)}
    unmatched = sorted(set(images) ^ set(labels))
    if unmatched:
        raise ConfigError(f"{name}: {len(unmatched)} files in {root} have no partner in images/ or labels/ "
                          f"(first: {unmatched[0]})")
    if not images:
        raise ConfigError(f"{name}: no images in {img_dir}: add PNG, TIFF, NPY, NIfTI or DICOM files")
    return [(images[k], labels[k]) for k in sorted(images)]


def read_labelled(files: list[tuple[Path, Path]], *, rescale=None, min_std: float = 0.0) -> LabelledSlices:
    """Read (image, labels) file pairs into slices; labels must be non-negative integers of the image's size."""
    images, labels, names = [], [], []
    for img_path, lab_path in files:
        stack = read_slices(img_path, rescale)
        labs = read_slices(lab_path, None)[:, 0]
        if labs.shape != (stack.shape[0], *stack.shape[-2:]):
            raise ConfigError(f"{lab_path}: label map {labs.shape[1:]} x {labs.shape[0]} slices does not match "
                              f"image {stack.shape[-2:]} x {stack.shape[0]} slices")
        if labs.min() < 0 or np.any(labs != np.round(labs)):
            raise ConfigError(f"{lab_path}: labels must be non-negative integers (class ids)")
        for d in range(stack.shape[0]):
            if float(stack[d].std()) < min_std:
                continue
            images.append(stack[d])
            labels.append(labs[d].astype(np.int64))
            names.append(f"{img_path.name}[{d}]")
    if not images:
        raise ConfigError(f"no usable slices in {len(files)} labelled files (all flat below min_std={min_std})")
    return LabelledSlices(images, labels, names)


def to_network(image: np.ndarray, labels: np.ndarray, preset: IntensityPreset,
               offset_span: tuple[float, float]) -> dict[str, torch.Tensor]:
    """``(C, h, w)`` physical image and ``(h, w)`` labels -> the sample dict the segmentation methods take."""
    x = preset.to_network(image, offset_span).astype(np.float32)
    return {"image": torch.from_numpy(np.ascontiguousarray(x)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))}


class LabelledPatches(torch.utils.data.Dataset):
    """Random training patches with their labels; item ``index`` depends only on ``(seed, index)``."""

    scale = 1

    def __init__(self, slices: LabelledSlices, preset: IntensityPreset, *, patch_size: int, augment: bool,
                 seed: int):
        self.slices, self.preset, self.patch, self.augment, self.seed = slices, preset, patch_size, augment, seed
        self.channels, self.num_classes = int(slices.images[0].shape[0]), slices.num_classes
        smallest = min(min(im.shape[-2:]) for im in slices.images)
        if patch_size > smallest:
            raise ConfigError(f"patch_size {patch_size} is larger than the smallest image ({smallest} pixels): "
                              "lower data.*.patch_size")

    def __len__(self) -> int:
        return 2**62  # indices are drawn by the trainer's sampler, never exhausted

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, _ = sample_rngs(self.seed, int(index))
        i = int(rng.integers(len(self.slices.images)))
        image, labels = self.slices.images[i], self.slices.labels[i]
        y = int(rng.integers(image.shape[-2] - self.patch + 1))
        x = int(rng.integers(image.shape[-1] - self.patch + 1))
        window = (slice(y, y + self.patch), slice(x, x + self.patch))
        sample = {"image": image[(...,) + window], "labels": labels[window]}
        if self.augment:
            sample = random_dihedral(sample, rng)
        return to_network(sample["image"], sample["labels"], self.preset, self.preset.scale_for(image))


class LabelledImages(torch.utils.data.Dataset):
    """A fixed validation set: whole slices (or centre crops of ``patch_size``), evenly spaced up to ``max_items``."""

    scale = 1

    def __init__(self, slices: LabelledSlices, preset: IntensityPreset, *, patch_size: int | None,
                 max_items: int | None):
        n = len(slices.images)
        keep = np.unique(np.linspace(0, n - 1, min(n, max_items or n)).round().astype(int))
        self.channels = int(slices.images[0].shape[0])
        self.items = []
        for i in keep:
            image, labels = slices.images[i], slices.labels[i]
            offset_span = preset.scale_for(image)
            if patch_size is not None:
                size = min(patch_size, *labels.shape)
                y, x = (labels.shape[0] - size) // 2, (labels.shape[1] - size) // 2
                image, labels = image[:, y : y + size, x : x + size], labels[y : y + size, x : x + size]
            self.items.append(to_network(image, labels, preset, offset_span))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def read_config_slices(cfg, name: str) -> LabelledSlices:
    """The slices a ``kind: labelled`` :class:`medir.engine.config.DatasetConfig` names."""
    if cfg.root is None or cfg.manifest is not None:
        raise ConfigError(f"{name}: labelled data needs 'root' (a folder with images/ and labels/), not a manifest")
    if cfg.params:
        raise ConfigError(f"{name}.params is set but labelled data is not simulated: remove it")
    if not isinstance(cfg.root, str):
        raise ConfigError(f"{name}.root lists several folders: labelled data takes one folder with images/ and labels/")
    root = Path(cfg.root)
    if not root.is_dir():
        raise ConfigError(f"{name}.root {root} is not a folder: check the path in the config")
    return read_labelled(find_labelled(root, name), rescale=cfg.rescale, min_std=cfg.min_std)


def build_labelled_train_set(cfg, *, seed: int) -> LabelledPatches:
    return LabelledPatches(read_config_slices(cfg, "data.train"), get_preset(cfg.preset),
                           patch_size=cfg.patch_size, augment=cfg.augment, seed=seed)


def build_labelled_val_set(cfg) -> LabelledImages:
    return LabelledImages(read_config_slices(cfg, "data.val"), get_preset(cfg.preset), patch_size=cfg.patch_size,
                          max_items=cfg.max_items)


# --- the brain-phantom labelled set -----------------------------------------------------------------

def evenly(items: list[int], n: int) -> list[int]:
    """``n`` evenly spaced items of ``items`` (all of them when ``n`` is larger)."""
    if n >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def write_phantom_split(out: Path, split: str, count: int, *, size: int) -> int:
    """T1 MR slices (a.u.) and tissue labels (0 background, 1 CSF, 2 grey, 3 white) of one template split,
    as NIfTI files with their pixel spacing (mm); returns the number written."""
    from medir.data import phantoms
    from medir.io import Image, ImageMeta, write_image

    zs = evenly(phantoms.split_slices(split), count)
    for d in ("images", "labels"):
        (out / split / d).mkdir(parents=True, exist_ok=True)
    for z in zs:
        s = phantoms.brain_slice(z, size=size)
        meta = ImageMeta(modality="MR", spacing=(s.pixel_size_mm, s.pixel_size_mm))
        name = f"z{z:03d}.nii.gz"
        write_image(Image(s.mr[0].numpy() * MR_FULL_SCALE, meta), out / split / "images" / name, force=True)
        write_image(Image(s.labels[0].numpy().astype(np.float32), meta), out / split / "labels" / name, force=True)
    return len(zs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the brain-phantom labelled set: OUT/{train,val,test}/{images,labels}")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=int, default=10, help="training slices (10 as in SPD-VFM)")
    p.add_argument("--val", type=int, default=3, help="validation slices (model selection)")
    p.add_argument("--test", type=int, default=6, help="held-out test slices (the report)")
    p.add_argument("--size", type=int, default=128, help="pixels per side over a 256 mm field of view")
    args = p.parse_args(argv)
    counts = {split: write_phantom_split(args.out, split, n, size=args.size)
              for split, n in (("train", args.train), ("val", args.val), ("test", args.test))}
    print(f"wrote {counts} labelled slices to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
