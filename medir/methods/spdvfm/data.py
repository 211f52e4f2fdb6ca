"""SPD-VFM's data protocol (section IV-A): rapid bone scans on the planar phantom, and real planar scans
split by binomial thinning.

Phantom: ``rapid ~ Poisson(x / 2)`` and ``standard ~ Poisson(x)`` are independent acquisitions of the same
patient (:func:`medir.data.bonescan.bone_scan_pair`); with ``paper_extras`` the rapid scan then gets the
paper's Gaussian noise, speckle and motion blur in the paper's order
(:func:`medir.physics.scintigraphy.paper_degradations`). ``truth`` is the noise-free standard scan, the
reference a phantom allows.

Real scan (measured counts ``n``): ``kept ~ Binomial(n, keep)`` is the rapid input (``keep = 1/2``: a 2x
faster scan); the rest ``n - kept`` is independent of it (Poisson splitting) and, scaled by ``1 / (1 - keep)``,
an unbiased noisy estimate of the standard scan. Its expected squared error against a restoration is the
error against the truth plus the target's own variance, the same for every method, so it ranks methods
honestly without a clean reference (absolute PSNR values are lower than against a clean target).

The paper cuts whole-body images into 192 x 192 patches with stride 192 (:func:`grid_patches`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medir.data.bonescan import SPLIT_SEED_BASE, bone_scan_pair
from medir.physics.scintigraphy import (PAPER_GAUSSIAN_VAR, PAPER_MOTION_ANGLE, PAPER_MOTION_LENGTH,
                                        PAPER_SPECKLE_VAR, paper_degradations, split_counts)


def paper_extras(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The paper's Gaussian (var 0.01), speckle (var 0.01) and motion blur (10, 5 deg) on ``(B, C, H, W)`` counts."""
    return paper_degradations(x, gaussian_var=PAPER_GAUSSIAN_VAR, speckle_var=PAPER_SPECKLE_VAR,
                              motion_length=PAPER_MOTION_LENGTH, motion_angle_deg=PAPER_MOTION_ANGLE,
                              generator=generator)


def rapid_phantom(seed: int, *, extras: bool = True, speedup: float = 2.0, height: int = 1024,
                  width: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rapid, standard, truth)`` counts ``(2, H, W)`` (anterior, posterior) of phantom patient ``seed``."""
    rapid, standard, scan = bone_scan_pair(seed, speedup=speedup, height=height, width=width)
    if extras:
        gen = torch.Generator().manual_seed(int(seed) * 2 + 2)
        rapid = paper_extras(rapid[:, None].float(), gen)[:, 0]
    return rapid, standard, scan.expected


def write_phantom_split(out: Path, split: str, count: int, *, extras: bool = True, height: int = 1024,
                        width: int = 256, force: bool = False) -> int:
    """``count`` patients (two views each) as NIfTI counts under ``out/split/{lq,hq,truth}``; returns images written."""
    from medir.io import Image, ImageMeta, write_image

    for d in ("lq", "hq", "truth"):
        (out / split / d).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        seed = SPLIT_SEED_BASE[split] + k
        images = dict(zip(("lq", "hq", "truth"), rapid_phantom(seed, extras=extras, height=height, width=width)))
        meta = ImageMeta(modality="NM", units="counts")
        for v, view in enumerate(("ant", "post")):
            for d, img in images.items():
                write_image(Image(img[v].numpy().astype(np.float32), meta), out / split / d / f"bs{seed:07d}_{view}.nii.gz",
                            force=force)
    return 2 * count


def thinned_pair(counts: np.ndarray, *, seed: int, keep: float = 0.5, extras: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Measured counts ``(H, W)`` -> ``(rapid input, standard-level target)`` with independent noise (see above)."""
    gen = torch.Generator().manual_seed(int(seed))
    n = torch.from_numpy(np.asarray(counts, dtype=np.float32))[None, None]
    kept, rest = split_counts(n, keep, generator=gen)
    if extras:
        kept = paper_extras(kept, gen)
    return kept[0, 0].numpy(), (rest[0, 0] / (1.0 - keep)).numpy()


def real_planar_counts(name: str = "JPGExtended.dcm") -> np.ndarray:
    """A real whole-body planar NM scan that ships with pydicom (``(1024, 256)`` counts; needs pylibjpeg)."""
    from pydicom.data import get_testdata_file

    from medir.io import read_image

    image = read_image(Path(get_testdata_file(name)))
    return np.clip(image.slices()[0, 0].astype(np.float32), 0, None)


def grid_patches(x: np.ndarray, *, size: int = 192, stride: int = 192) -> list[tuple[int, int]]:
    """Top-left corners of the ``size`` patches with ``stride`` that fit in ``x (..., H, W)`` (paper: 192, 192)."""
    h, w = x.shape[-2:]
    return [(r, c) for r in range(0, h - size + 1, stride) for c in range(0, w - size + 1, stride)]


def main(argv: list[str] | None = None) -> int:
    """``python -m medir.methods.spdvfm.data OUT [--train 16 --val 2 --test 4] [--no-extras] [--height --width]``."""
    import argparse
    import sys

    from medir.errors import MedirError

    p = argparse.ArgumentParser(description="Write SPD-VFM rapid bone-scan phantom pairs (lq, hq, truth) for medir train")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=int, default=16, help="training patients (2 views each)")
    p.add_argument("--val", type=int, default=2, help="validation patients")
    p.add_argument("--test", type=int, default=4, help="test patients")
    p.add_argument("--no-extras", action="store_true", help="Poisson only: leave out the paper's noise and motion blur")
    p.add_argument("--height", type=int, default=1024, help="image rows (whole body, clinical 1024)")
    p.add_argument("--width", type=int, default=256, help="image columns (clinical 256)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(argv)
    try:
        written = {s: write_phantom_split(args.out, s, n, extras=not args.no_extras, height=args.height,
                                          width=args.width, force=args.force)
                   for s, n in (("train", args.train), ("val", args.val), ("test", args.test))}
    except MedirError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {written} images per folder to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
