"""Planar whole-body bone-scan phantom (99mTc-MDP), anterior and posterior views, for SPD-VFM's rapid scans.

A patient is drawn from a seed: height (90-185 cm, children to adults, as SPD-VFM's 0.5-16-year cohort
and beyond), arm pose, position on the table, bone and soft-tissue uptake, kidney and bladder activity,
growth plates (hot physes, stronger in children) and 0-6 hot-spot lesions (metastasis-like, 2-6x the local
bone uptake, 6-20 mm) on the axial skeleton, pelvis and proximal limbs. The skeleton is a set of capsules
(segments with a radius) in body coordinates scaled by the height: skull, spine, ribs, sternum,
clavicles, scapulae, pelvis, limbs, hands and feet.

Image formation per view: each structure's uptake density is weighted by ``exp(-mu d)`` with ``d`` its
depth below the camera side (``mu`` = 0.012 / mm, broad-beam 140 keV in tissue), projected, blurred by
the collimator (Gaussian, 9 mm FWHM) and scaled so the anterior view holds ``total_counts`` expected
counts (0.8-3.5 million drawn; pydicom's real 1024 x 256 whole-body NM file holds 3.6-3.8 million).
The posterior view is shown from behind (mirrored), as cameras display it; its labels are mirrored too.

Counts: ``standard ~ Poisson(x)`` and ``rapid ~ Poisson(x / speedup)`` are independent draws (two
acquisitions). Labels (oracle priors): 0 background, 1 soft tissue, 2 bone, 3 kidney, 4 bladder, 5 lesion.

``python -m medir.data.bonescan OUT --train 40 --val 8 --test 8`` writes paired NIfTI files
``OUT/{train,val,test}/{lq,hq,truth,labels}/bsNNNNN_{ant,post}.nii.gz`` (counts, pixel spacing in mm) that
``medir train`` reads as ``kind: paired`` data with ``preset: nm`` (``truth``: the noise-free expected standard
counts, for ``kind: simulated`` training with fresh Poisson draws); the splits use disjoint seeds.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from medir.errors import MedirError
from medir.physics.filters import fwhm_to_sigma
from medir.physics.scintigraphy import phantom_pair

LABELS = {"background": 0, "soft_tissue": 1, "bone": 2, "kidney": 3, "bladder": 4, "lesion": 5}
VIEWS = ("anterior", "posterior")
MU_TC99M_PER_MM = 0.012     # broad-beam attenuation of 140 keV photons in soft tissue
COLLIMATOR_FWHM_MM = 9.0    # LEHR collimator at about 10 cm
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass(frozen=True)
class Capsule:
    """A segment ``(u0, v0) -> (u1, v1)`` with radius ``r``; ``u`` down from the vertex, ``v`` lateral (patient's
    right negative), all as fractions of the height. ``depth`` is the fraction of the body thickness between the
    anterior skin and the structure; ``uptake`` its activity per unit area (soft tissue = 1)."""

    u0: float
    v0: float
    u1: float
    v1: float
    r: float
    uptake: float
    depth: float
    label: int


@dataclass
class BoneScan:
    """One patient: ``expected (2, H, W)`` standard-speed expected counts (anterior, posterior), ``labels (2, H, W)``
    int64, ``pixel_size_mm``, ``lesions`` (number of hot spots) and ``height_cm``."""

    expected: torch.Tensor
    labels: torch.Tensor
    pixel_size_mm: float
    lesions: int
    height_cm: float


def _pairs(u0, v0, u1, v1, r, uptake, depth, label=LABELS["bone"]) -> list[Capsule]:
    """The structure on the patient's right (``-v``) and left (``+v``)."""
    return [Capsule(u0, s * v0, u1, s * v1, r, uptake, depth, label) for s in (-1.0, 1.0)]


def skeleton(rng: np.random.Generator, *, child: float) -> list[Capsule]:
    """Bones as capsules; ``child`` in [0, 1] (1 = youngest) scales the head and the growth plates."""
    b = LABELS["bone"]
    head = 0.065 + 0.02 * child
    arm = rng.uniform(0.0, 0.03)       # abduction of the arms
    caps = [Capsule(head * 0.9, 0, head * 1.1, 0, head * 0.72, 2.2, 0.5, b),            # skull vault
            Capsule(head * 1.6, -0.02, head * 1.6, 0.02, 0.010, 1.5, 0.2, b),            # face / mandible
            Capsule(2 * head, 0, 2 * head + 0.045, 0, 0.009, 3.0, 0.7, b),               # cervical spine
            Capsule(2 * head + 0.045, 0, 0.50, 0, 0.012, 3.2, 0.75, b),                  # thoracic + lumbar spine
            Capsule(0.50, 0, 0.55, 0, 0.02, 3.5, 0.7, b),                                # sacrum
            Capsule(0.195, 0, 0.29, 0, 0.008, 2.2, 0.05, b)]                             # sternum
    caps += _pairs(0.19, 0.005, 0.185, 0.10, 0.006, 2.5, 0.15)                           # clavicles
    caps += _pairs(0.195, 0.05, 0.29, 0.045, 0.012, 2.0, 0.9)                            # scapulae
    for k in range(12):                                                                  # ribs: back arc, front arc
        u = 0.20 + 0.0145 * k
        w = 0.075 + 0.012 * min(k, 6) - 0.006 * max(k - 8, 0)
        caps += _pairs(u, 0.012, u - 0.004, w, 0.004, 1.3, 0.85)
        caps += _pairs(u - 0.004, w, u + 0.045, 0.035, 0.0035, 0.9, 0.15)
    caps += _pairs(0.49, 0.02, 0.515, 0.095, 0.022, 2.6, 0.6)                            # iliac wings
    caps += _pairs(0.55, 0.03, 0.56, 0.06, 0.012, 2.6, 0.4)                              # pubis / acetabulum
    caps += _pairs(0.535, 0.06, 0.73, 0.045, 0.013, 2.4, 0.5)                            # femurs
    caps += _pairs(0.74, 0.045, 0.95, 0.042, 0.011, 2.4, 0.4)                            # tibias
    caps += _pairs(0.95, 0.042, 0.99, 0.055, 0.012, 2.6, 0.5)                            # feet
    caps += _pairs(0.195, 0.105, 0.37, 0.12 + arm, 0.011, 2.2, 0.5)                      # humeri
    caps += _pairs(0.38, 0.12 + arm, 0.52, 0.13 + 1.5 * arm, 0.009, 2.0, 0.5)            # forearms
    caps += _pairs(0.525, 0.13 + 1.5 * arm, 0.59, 0.13 + 1.8 * arm, 0.012, 2.2, 0.5)     # hands
    physis = 1.0 + 2.5 * child                                                           # growth plates
    for u, v in ((0.727, 0.045), (0.745, 0.045), (0.945, 0.042), (0.205, 0.107), (0.515, 0.13 + 1.5 * arm)):
        caps += _pairs(u, v - 0.012, u, v + 0.012, 0.004, 2.4 * physis, 0.5)
    return caps


def soft_tissue(rng: np.random.Generator, *, child: float) -> list[Capsule]:
    """Body outline (uptake per unit thickness) with kidneys and bladder."""
    s = LABELS["soft_tissue"]
    head = 0.065 + 0.02 * child
    body = [Capsule(head * 0.9, 0, head * 1.2, 0, head * 0.85, 1.0, 0.5, s),
            Capsule(2 * head - 0.01, 0, 2 * head + 0.04, 0, 0.035, 1.0, 0.5, s),
            Capsule(0.23, 0, 0.50, 0, 0.10 + rng.uniform(-0.01, 0.02), 1.0, 0.5, s),
            Capsule(0.50, 0, 0.55, 0, 0.095, 1.0, 0.5, s)]
    body += _pairs(0.55, 0.055, 0.97, 0.045, 0.035, 1.0, 0.5, s)
    body += _pairs(0.2, 0.11, 0.58, 0.135, 0.022, 1.0, 0.5, s)
    kidney = rng.uniform(1.5, 5.0)
    organs = _pairs(0.36, 0.035, 0.41, 0.04, 0.017, kidney, 0.75, LABELS["kidney"])
    organs.append(Capsule(0.535, 0, 0.54, 0, rng.uniform(0.012, 0.025), rng.uniform(8.0, 40.0), 0.3, LABELS["bladder"]))
    return body + organs


def lesions(rng: np.random.Generator, bones: list[Capsule], count: int) -> list[Capsule]:
    """``count`` hot spots on random points of the axial skeleton, pelvis and proximal limbs."""
    sites = [c for c in bones if c.r >= 0.005 and c.u0 < 0.75]
    out = []
    for _ in range(count):
        c = sites[int(rng.integers(len(sites)))]
        t = rng.uniform(0.1, 0.9)
        u, v = c.u0 + t * (c.u1 - c.u0), c.v0 + t * (c.v1 - c.v0)
        out.append(Capsule(u, v, u, v, rng.uniform(0.0035, 0.011), c.uptake * rng.uniform(2.0, 6.0), c.depth,
                           LABELS["lesion"]))
    return out


def _render(caps: list[Capsule], shape: tuple[int, int], *, top: float, centre: float, scale: float,
            view: int, thickness_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Sum of capsule densities weighted for ``view`` (0 anterior) and the label map (later capsules win)."""
    h, w = shape
    density = np.zeros(shape, np.float64)
    labels = np.zeros(shape, np.int64)
    for c in sorted(caps, key=lambda c: c.label):
        r0 = int(max(0, math.floor(top + min(c.u0, c.u1) * scale - c.r * scale - 2)))
        r1 = int(min(h, math.ceil(top + max(c.u0, c.u1) * scale + c.r * scale + 3)))
        c0 = int(max(0, math.floor(centre + min(c.v0, c.v1) * scale - c.r * scale - 2)))
        c1 = int(min(w, math.ceil(centre + max(c.v0, c.v1) * scale + c.r * scale + 3)))
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        ay, ax = top + c.u0 * scale, centre + c.v0 * scale
        dy, dx = (c.u1 - c.u0) * scale, (c.v1 - c.v0) * scale
        t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / max(dy * dy + dx * dx, 1e-12), 0.0, 1.0)
        dist = np.hypot(yy - ay - t * dy, xx - ax - t * dx)
        inside = np.clip(c.r * scale - dist + 0.5, 0.0, 1.0)
        # projected thickness of a cylinder of radius r: chord length, a smooth dome profile
        chord = np.sqrt(np.clip(1.0 - (dist / (c.r * scale + 0.5)) ** 2, 0.0, 1.0))
        depth = c.depth if view == 0 else 1.0 - c.depth
        weight = 1.0 if c.label == LABELS["soft_tissue"] else math.exp(-MU_TC99M_PER_MM * depth * thickness_mm)
        density[r0:r1, c0:c1] += c.uptake * weight * chord * inside
        labels[r0:r1, c0:c1] = np.where(inside > 0.5, np.maximum(labels[r0:r1, c0:c1], c.label), labels[r0:r1, c0:c1])
    return density, labels


def bone_scan_phantom(seed: int, *, height: int = 1024, width: int = 256, pixel_size_mm: float | None = None,
                      total_counts: float | None = None, lesion_count: int | None = None) -> BoneScan:
    """Patient ``seed`` -> expected counts of both views ``(2, height, width)`` at standard speed.

    ``pixel_size_mm`` defaults to a draw in [2.2, 2.4]; ``total_counts`` (anterior view) to a log-uniform draw in
    [0.8e6, 3.5e6]; ``lesion_count`` to a draw in 0..6. Same seed, same patient.
    """
    if int(seed) < 0:
        raise MedirError(f"seed={seed} is negative: give a seed >= 0")
    if height < 64 or width < 32:
        raise MedirError(f"a {height} x {width} bone scan is too small: use at least 64 x 32 pixels (1024 x 256 is clinical)")
    rng = np.random.default_rng([int(seed), 0xB0E])
    pixel = float(rng.uniform(2.2, 2.4)) if pixel_size_mm is None else float(pixel_size_mm)
    counts = float(math.exp(rng.uniform(math.log(0.8e6), math.log(3.5e6)))) if total_counts is None else float(total_counts)
    n_les = int(rng.integers(0, 7)) if lesion_count is None else int(lesion_count)
    if pixel <= 0 or counts <= 0 or n_les < 0:
        raise MedirError("pixel_size_mm and total_counts must be > 0 and lesion_count >= 0")
    height_cm = float(rng.uniform(90.0, 185.0))
    child = float(np.clip((160.0 - height_cm) / 70.0, 0.0, 1.0))
    scale = height_cm * 10.0 / pixel                                  # pixels per unit height
    scale = min(scale, 0.95 * height / 1.0)                           # the patient fits in the field of view
    top = rng.uniform(0.02, 0.05) * height
    centre = width / 2 + rng.uniform(-0.03, 0.03) * width
    bones = skeleton(rng, child=child)
    bone_gain = rng.uniform(0.8, 1.3)
    bones = [Capsule(c.u0, c.v0, c.u1, c.v1, c.r, c.uptake * bone_gain, c.depth, c.label) for c in bones]
    caps = soft_tissue(rng, child=child) + bones + lesions(rng, bones, n_les)
    thickness = 0.12 * height_cm * 10.0
    views, maps = [], []
    for view in (0, 1):
        d, lab = _render(caps, (height, width), top=top, centre=centre, scale=scale, view=view, thickness_mm=thickness)
        views.append(d if view == 0 else d[:, ::-1])
        maps.append(lab if view == 0 else lab[:, ::-1])
    sigma = fwhm_to_sigma(COLLIMATOR_FWHM_MM, pixel)
    blurred = [ndimage.gaussian_filter(v, sigma, mode="constant", truncate=3.0) for v in views]
    x = torch.from_numpy(np.stack(blurred).astype(np.float32)).clamp_min(0)
    x = x * (counts / float(x[0].sum()))
    return BoneScan(x, torch.from_numpy(np.ascontiguousarray(np.stack(maps))), pixel, n_les, height_cm)


def bone_scan_pair(seed: int, *, speedup: float = 2.0, **phantom_args) -> tuple[torch.Tensor, torch.Tensor, BoneScan]:
    """``(rapid, standard, phantom)``: counts ``(2, H, W)`` of a scan ``speedup`` times faster and of the
    standard scan, independent Poisson draws seeded by ``seed``."""
    scan = bone_scan_phantom(seed, **phantom_args)
    gen = torch.Generator().manual_seed(int(seed) * 2 + 1)
    rapid, standard = phantom_pair(scan.expected[None], speedup, generator=gen)
    return rapid[0], standard[0], scan


def write_split(out: Path, split: str, count: int, *, speedup: float, force: bool) -> int:
    """``count`` patients of ``split`` as NIfTI counts under ``out/split/{lq,hq,truth,labels}`` (``truth``: the
    noise-free expected standard-scan counts); returns files per folder."""
    from medir.io import Image, ImageMeta, write_image

    for d in ("lq", "hq", "truth", "labels"):
        (out / split / d).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        seed = SPLIT_SEED_BASE[split] + k
        rapid, standard, scan = bone_scan_pair(seed, speedup=speedup)
        meta = ImageMeta(modality="NM", units="counts", spacing=(scan.pixel_size_mm, scan.pixel_size_mm))
        for v, view in enumerate(("ant", "post")):
            name = f"bs{seed:07d}_{view}.nii.gz"
            for d, img in (("lq", rapid[v]), ("hq", standard[v]), ("truth", scan.expected[v]),
                           ("labels", scan.labels[v].float())):
                write_image(Image(img.numpy().astype(np.float32), meta), out / split / d / name, force=force)
    return 2 * count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write simulated rapid / standard planar bone-scan pairs for medir train")
    p.add_argument("out", type=Path)
    p.add_argument("--train", type=int, default=40, help="training patients (2 views each)")
    p.add_argument("--val", type=int, default=8, help="validation patients")
    p.add_argument("--test", type=int, default=8, help="test patients")
    p.add_argument("--speedup", type=float, default=2.0, help="rapid-scan speed-up (SPD-VFM: 2, 40 vs 20 cm/min)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    args = p.parse_args(argv)
    try:
        written = {s: write_split(args.out, s, n, speedup=args.speedup, force=args.force)
                   for s, n in (("train", args.train), ("val", args.val), ("test", args.test))}
    except MedirError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {written} image pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
