"""Dice and Hausdorff distance per class of a trained segmentation head on held-out labelled images.

The table of SPD-VFM's Table VII: for each class, Dice (%) and the symmetric Hausdorff distance (mm,
from each file's pixel spacing; 1 mm when the file has none), mean +- std over the held-out slices.
A class absent from both the truth and the prediction of a slice is left out of that slice's
numbers; a class present in only one of them gives an infinite distance (counted in ``missed``).

    python -m medir.data.labelled data/seg_phantom
    medir train configs/seg_head_phantom.yaml
    python benchmarks/seg_head.py runs/seg_head_phantom/model data/seg_phantom/test --names background,CSF,grey,white
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def per_slice_scores(model: str | Path, folder: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Dice ``(N, K)`` and Hausdorff ``(N, K)`` (mm) over the ``N`` slices of ``folder/images`` + ``folder/labels``,
    and the number of classes ``K`` of the head in ``model`` (a folder written by the head's save)."""
    from medir.data.labelled import find_labelled
    from medir.io import read_image
    from medir.priors.head import dice_per_class, hausdorff_per_class, load_head

    seg = load_head(model)
    k = seg.num_classes
    dice, hd = [], []
    for img_path, lab_path in find_labelled(Path(folder), "test data"):
        image = read_image(img_path)
        spacing = tuple(image.meta.spacing[-2:]) if image.meta.spacing else (1.0, 1.0)
        truths = read_image(lab_path).slices()[:, 0].round().astype(np.int64)
        for slice_, truth in zip(image.slices()[:, 0], truths):
            pred = seg(slice_, modality=image.meta.modality).labels
            dice.append(dice_per_class(pred, truth, num_classes=k))
            hd.append(hausdorff_per_class(pred, truth, num_classes=k, spacing=spacing))
    return np.array(dice), np.array(hd), k


def table(dice: np.ndarray, hd: np.ndarray, names: list[str]) -> str:
    """A markdown table: one row per class and one for the mean over foreground classes (k >= 1)."""
    lines = ["| class | Dice (%) | HD (mm) | missed | slices |", "|---|---:|---:|---:|---:|"]
    for k, name in enumerate(names):
        d, h = dice[:, k][~np.isnan(dice[:, k])], hd[:, k][~np.isnan(hd[:, k])]
        finite = h[np.isfinite(h)]
        lines.append(f"| {name} | {100 * d.mean():.1f} +- {100 * d.std():.1f} | {finite.mean():.2f} +- "
                     f"{finite.std():.2f} | {int((~np.isfinite(h)).sum())} | {len(d)} |" if len(d) else
                     f"| {name} | - | - | 0 | 0 |")
    fg_dice = np.nanmean(dice[:, 1:], axis=1)
    fg_hd = np.nanmean(np.where(np.isfinite(hd[:, 1:]), hd[:, 1:], np.nan), axis=1)
    lines.append(f"| mean (foreground) | {100 * np.nanmean(fg_dice):.1f} | {np.nanmean(fg_hd):.2f} | | {len(dice)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a head saved by training (RUN/model or RUN/model_best)")
    p.add_argument("data", help="held-out folder with images/ and labels/")
    p.add_argument("--names", default=None, help="comma-separated class names, class 0 first")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    dice, hd, k = per_slice_scores(args.model, args.data)
    names = args.names.split(",") if args.names else [f"class {i}" for i in range(k)]
    if len(names) != k:
        print(f"seg_head: error: --names gives {len(names)} names but the head has {k} classes", file=sys.stderr)
        return 2
    text = table(dice, hd, names)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
