"""``medir segment IN... -o OUT``: write region partitions (label maps) and an overlay picture.

Label maps follow the input's format: NIfTI in -> NIfTI out (same affine, integer labels), PNG/TIFF
-> PNG (8- or 16-bit; more than 65535 regions -> 32-bit TIFF ``<name>_labels.tif``), NPY/NPZ -> NPZ
(``labels``), DICOM file or series -> NIfTI. Outputs mirror the inputs below their common root. Volumes are
segmented slice by slice (label ids are per slice). Next to each label map, ``<name>_overlay.png``
shows the (middle) slice with the regions coloured and their boundaries drawn.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from medir.commands._common import (
    Ledger, Result, check_output_folder, check_writable, output_root, parse_shard, read_input, run_batch,
    single_output, take_shard,
)
from medir.errors import InputError


LABEL_SUFFIXES = (".nii.gz", ".nii", ".png", ".npz", ".tif", ".tiff")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="files, folders or DICOM series folders")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (or label file, for one input)")
    p.add_argument("--segmenter", default="classical",
                   help="classical (default, no weights), sam:PATH, slimsam:PATH, medsam:PATH or head:PATH")
    p.add_argument("--box", help="MedSAM box prompt x0,y0,x1,y1 in pixels (default: the whole image)")
    p.add_argument("--modality", help="override the input's modality (CT, PT, MR, NM, SM); needed for NIfTI/PNG/NPY")
    p.add_argument("--cache", type=Path, help="folder caching partitions by image content and segmenter settings")
    p.add_argument("--shard", help="i/N: process every N-th input starting at i")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (of the same inputs)")


def build_segmenter(spec: str, box: str | None, cache: Path | None):
    """The segmenter for ``--segmenter`` (+ ``--box`` for MedSAM), wrapped in a disk cache if asked."""
    from medir.priors import get_segmenter, parse_spec

    name, path = parse_spec(spec)
    if name == "oracle":
        raise InputError("the oracle segmenter needs simulation ground truth: it is for experiments, not files")
    if box is not None:
        if name != "medsam":
            raise InputError("--box is a MedSAM prompt: use it with --segmenter medsam:PATH")
        from medir.priors.sam import MedSamSegmenter

        segmenter = MedSamSegmenter(path, boxes=[parse_box(box)])
    else:
        segmenter = get_segmenter(spec)
    if cache is not None:
        from medir.priors.cache import CachedSegmenter

        segmenter = CachedSegmenter(segmenter, cache)
    return segmenter


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--box '{text}' is not x0,y0,x1,y1 (four numbers, pixels)")
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"--box '{text}': need x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def output_paths(item, output: Path, items: list) -> tuple[Path, Path]:
    """(label map path, overlay path) for one input; the label format follows the input's."""
    name = item.output_name
    stem = name[:-7] if name.lower().endswith(".nii.gz") else Path(name).stem if item.kind != "series" else name
    suffix = {"nifti": ".nii.gz", "raster": ".png", "numpy": ".npz"}.get(item.kind, ".nii.gz")
    if single_output(output, items):
        if not output.name.lower().endswith(LABEL_SUFFIXES):
            raise InputError(f"-o {output.name}: label maps are written as {', '.join(LABEL_SUFFIXES)}")
        labels = output
    else:
        labels = output / item.rel.parent / f"{stem}_labels{suffix}"
    lname = labels.name
    base = lname[:-7] if lname.lower().endswith(".nii.gz") else Path(lname).stem
    base = base[: -len("_labels")] if base.endswith("_labels") else base
    return labels, labels.with_name(f"{base}_overlay.png")


def segment_stack(segmenter, image) -> np.ndarray:
    """Label maps for an :class:`medir.io.Image`: ``(H, W)`` for a 2-D image, ``(D, H, W)`` for a volume."""
    modality = image.meta.modality
    if image.meta.channels > 1:
        return segmenter(image.array, modality=modality).labels
    stack = image.slices()[:, 0]  # (D, H, W)
    labels = np.stack([segmenter(s, modality=modality).labels for s in stack])
    return labels[0] if image.array.ndim == 2 else labels


def segment_one(item, outputs: list[Path], overwrite: bool, segmenter, args) -> Result:
    from medir.priors.base import check_tiling

    labels_path, overlay_path = outputs
    image = read_input(item, modality=args.modality).validate(item.label)
    labels = segment_stack(segmenter, image)
    for lab in labels.reshape(-1, *labels.shape[-2:]):
        check_tiling(lab)
    if labels.ndim == 3 and labels_path.suffix.lower() == ".png":
        raise InputError(f"{item.label} is a volume: write its labels to .nii.gz or .npz, not PNG")
    if labels_path.suffix.lower() == ".png" and labels.max() > np.iinfo(np.uint16).max:
        wide = labels_path.with_suffix(".tif")
        print(f"note: {item.label}: {int(labels.max())} regions do not fit a 16-bit PNG: labels written to {wide.name}")
        labels_path = wide
    write_labels(labels, image, labels_path, force=overwrite)
    write_overlay(image, labels, overlay_path, force=overwrite)
    return Result(outputs=[labels_path, overlay_path])


def label_dtype(labels: np.ndarray) -> np.dtype:
    """The smallest unsigned type holding the labels (uint8, uint16, else int32)."""
    top = int(labels.max()) if labels.size else 0
    return np.dtype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32)


def write_labels(labels: np.ndarray, image, path: Path, *, force: bool) -> None:
    """Integer label map ``(H, W)`` or ``(D, H, W)`` to NIfTI / PNG (8/16-bit) / TIFF (32-bit) / NPZ, atomically."""
    from medir.engine.atomic import atomic_path

    name = path.name.lower()
    dtype = label_dtype(labels)
    with atomic_path(path, force=force) as tmp:
        if name.endswith((".nii", ".nii.gz")):
            _write_nifti_labels(labels.astype(np.int16 if dtype != np.int32 else np.int32), image, tmp, path.name)
        elif name.endswith(".png"):
            from PIL import Image as PILImage

            if dtype == np.int32:
                raise InputError(f"{int(labels.max())} regions do not fit a 16-bit PNG: write .tif, .npz or .nii.gz")
            PILImage.fromarray(labels.astype(dtype)).save(tmp, format="PNG")
        elif name.endswith((".tif", ".tiff")):
            from PIL import Image as PILImage

            PILImage.fromarray(labels.astype(np.int32)).save(tmp, format="TIFF", compression="tiff_deflate")
        else:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, labels=labels.astype(np.int32))


def _write_nifti_labels(labels: np.ndarray, image, tmp: Path, name: str) -> None:
    import nibabel as nib

    affine = image.meta.affine
    if affine is None:
        spacing = list(image.meta.spacing or [1.0] * labels.ndim)[::-1]
        affine = np.diag([*spacing, *[1.0] * (4 - len(spacing))])[:4, :4]
        affine[3, 3] = 1.0
    out = nib.Nifti1Image(labels.T, affine)  # medir arrays are (D, H, W); NIfTI is (col, row, slice)
    out.header.set_data_dtype(labels.dtype)
    out.header["descrip"] = b"medir segment: region labels"
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else ".nii"
    nib.save(out, str(tmp) + suffix)
    os.replace(str(tmp) + suffix, tmp)


def write_overlay(image, labels: np.ndarray, path: Path, *, force: bool) -> None:
    """``<name>_overlay.png``: windowed (middle) slice, regions tinted, boundaries in yellow."""
    from PIL import Image as PILImage
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries

    from medir.engine.atomic import atomic_path
    from medir.priors.base import window_to_unit

    if image.meta.channels > 1:
        pixels, lab = image.array, labels
    else:
        stack = image.slices()[:, 0]
        mid = stack.shape[0] // 2
        pixels, lab = stack[mid], labels if labels.ndim == 2 else labels[mid]
    unit = window_to_unit(pixels, modality=image.meta.modality)
    gray = unit.mean(-1) if unit.ndim == 3 else unit
    rgb = label2rgb(lab, image=gray, alpha=0.25, bg_label=0, bg_color=None, kind="overlay")
    rgb[find_boundaries(lab, mode="inner")] = (1.0, 0.85, 0.0)
    with atomic_path(path, force=force) as tmp:
        PILImage.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(tmp, format="PNG")


def run(args: argparse.Namespace) -> int:
    from medir.io import discover

    if args.modality:
        from medir.io.image import normalize_modality

        normalize_modality(args.modality)
    if args.box is not None:
        parse_box(args.box)
    check_writable(args.output, "output")
    if args.cache is not None:
        check_writable(args.cache, "--cache")
    found = discover(list(args.inputs))
    found.items = take_shard(found.items, parse_shard(args.shard))
    if not found.items:
        raise InputError("no inputs to segment (empty folder or empty shard): check the paths")
    check_output_folder(args.output, found.items)
    segmenter = build_segmenter(args.segmenter, args.box, args.cache)  # a bad model fails once, up front
    items = found.items
    settings = {"segmenter": args.segmenter, "box": args.box, "modality": args.modality}
    report = run_batch(
        found, "segment", force=args.force,
        plan=lambda item: list(output_paths(item, args.output, items)),
        work=lambda item, outs, overwrite: segment_one(item, outs, overwrite, segmenter, args),
        ledger=Ledger(output_root(args.output, items), "segment", settings),
    )
    if report.done:
        print(f"segmented {report.done} input(s) into {args.output} with {segmenter.name}")
    return report.exit_code("segment")
