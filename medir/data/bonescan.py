"""Planar whole-body bone-scan phantom (99mTc-MDP), anterior and posterior views, for SPD-VFM's rapid scans.

A patient is drawn from a seed: height (90-185 cm, children to adults, as SPD-VFM's 0.5-16-year cohort
and beyond), habitus (slim to heavy: trunk, hip and limb widths, body thickness), arm pose, position on the
table, bone-to-soft-tissue ratio, kidney and bladder activity, growth plates (hot physes, stronger in children),
collimator blur, scatter and 0-6 hot-spot lesions (metastasis-like, 2-6x the local bone uptake, 6-20 mm) on the
axial skeleton, pelvis and proximal limbs. The anatomy (:mod:`medir.data.bonescan_anatomy`) is a set of capsules
(segments with a radius) in body coordinates scaled by the height: a skull shell with skull base, facial bones,
cold orbits and a U-shaped mandible; 24 vertebral bodies as separate blocks with disc gaps and posterior
facets, sacrum, coccyx and sacroiliac joints; manubrium, sternal body, sternoclavicular and acromioclavicular
joints, clavicles, triangular scapulae; 12 thin curved ribs whose front arcs stop short of the sternum (costal
cartilage takes no tracer); iliac wings as fans from the sacroiliac joints, acetabula, pubic and ischial rami
round the obturator foramina; long bones with brighter ends (humeral and femoral heads, elbows, wrists, knees,
ankles: x 1.0-1.6 per patient), radius and ulna, tibia and fibula, hand and foot rays. Every bone has its own
uptake factor (lognormal, 15 %) and the whole skeleton is modulated by smooth random fields (``exp`` of
low-passed noise: 20 % at 40 mm, 12 % at 5 mm), for uptake inhomogeneity.

Calibration (literature; the real scan was only a check, see below):

- Timing and tracer: delayed whole-body images 2-4 h (SNM guideline 2.0, Donohoe et al. 2003) or 2-5 h
  (EANM guideline, Van den Wyngaert et al., Eur J Nucl Med Mol Imaging 2016) after 99mTc-MDP; by then about
  half the activity is in bone and most of the rest has been excreted by the kidneys, so the bladder is the
  hottest structure and the soft-tissue background is low.
- Bone vs soft tissue: bone activity per unit area = (tracer-avid bone thickness in mm: vertebral body 24-38,
  rib 8, long-bone shaft 10-20, joints 16-26) x (bone / soft-tissue concentration ratio, ``BONE_TO_SOFT``,
  log-uniform 15-40) x ``exp(-mu d)``; soft tissue emits ``(1 - exp(-mu t)) / mu`` per unit concentration through
  its thickness ``t`` (a slab seen through itself). This gives planar skeleton-to-soft-tissue count ratios in
  the single digits, as for diphosphonates at 2-4 h: the 90th percentile of the bone pixels over the median
  soft-tissue pixel is 2.9-6.6 on the 8 test patients (both views, expected counts, from the label maps); the
  brain takes up no MDP (head soft tissue 0.3). Kidneys: 1-4x soft tissue x 100 mm (faint to clearly visible,
  posterior), bladder 300-1500 mm-equivalent (the hottest structure).
- Attenuation: ``mu`` = 0.012 / mm (broad-beam 140 keV in soft tissue); body thickness 0.12 x height x
  habitus^0.7 (210 mm for a 175 cm adult of habitus 1).
- Resolution: LEHR collimator, system FWHM 9 mm at 10 cm (drawn x 0.85-1.2 per patient), growing linearly with
  the distance to the collimator (:func:`collimator_fwhm_mm`: 0.4x at the face, 1.6x at 20 cm, the usual
  geometric-resolution law of parallel holes). The activity is binned by its distance (camera-to-skin gap
  20-60 mm + its depth; bins ``DEPTH_BINS_MM``) and each bin is blurred with its own FWHM, so the spine is sharper
  in the posterior view and the sternum in the anterior; a broad scatter halo (Gaussian, sigma 25 mm) holds 5-12 %
  of the counts.
- Proportions: segment lengths as fractions of height after Drillis and Contini (1966), as tabulated in Winter's
  Biomechanics (chin 0.13 H below the vertex, shoulders 0.18 H, hip 0.47-0.50 H, knee 0.72 H, ankle 0.96 H).
- Counts: the anterior view holds ``total_counts`` expected counts (0.8-3.5 million, log-uniform; SNM/EANM
  whole-body scans at 10-15 cm/min give a few million; pydicom's real 1024 x 256 scan holds 3.6 million).

Realism check: ``python benchmarks/bonescan_realism.py`` prints global statistics (count percentiles, body
fraction, bone / soft-tissue contrast, radial power spectrum) of the phantom next to the only real lossless
planar scan available here, pydicom-data's ``JPEG-LL.dcm``. That scan is also the real TEST scan of
``benchmarks/bonescan_eval.py``: it was used to check realism with those global statistics, never to train or to
select a model, and no parameter was fitted to it pixel by pixel.

Image formation per view: bones, lesions and organs add ``uptake x exp(-mu d)`` with ``d`` their depth below
the camera side, soft tissue the self-attenuated slab above (the union of the body's capsules), then the
depth-dependent collimator blur and scatter, scaled to ``total_counts``. The posterior view is shown from behind (mirrored),
as cameras display it; its labels are mirrored too.

Counts: ``standard ~ Poisson(x)`` and ``rapid ~ Poisson(x / speedup)`` are independent draws (two
acquisitions). Labels (oracle priors): 0 background, 1 soft tissue, 2 bone, 3 kidney, 4 bladder, 5 lesion.

``python -m medir.data.bonescan OUT --train 40 --val 8 --test 8`` writes paired NIfTI files
``OUT/{train,val,test}/{lq,hq,truth,labels}/bsNNNNN_{ant,post}.nii.gz`` (counts, pixel spacing in mm) that
``medir train`` reads as ``kind: paired`` data with ``preset: nm`` (``truth``: the noise-free expected standard
counts, for ``kind: simulated`` training with fresh Poisson draws); the splits use disjoint seeds. A patient
takes about 0.3 s (one core).
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

from medir.data.bonescan_anatomy import LABELS, Capsule, skeleton, soft_tissue
from medir.errors import MedirError
from medir.physics.filters import fwhm_to_sigma
from medir.physics.scintigraphy import phantom_pair

VIEWS = ("anterior", "posterior")
MU_TC99M_PER_MM = 0.012     # broad-beam attenuation of 140 keV photons in soft tissue
COLLIMATOR_FWHM_MM = 9.0    # LEHR system resolution at 10 cm (each patient: x 0.85-1.2; depth: collimator_fwhm_mm)
DEPTH_BINS_MM = (30.0, 90.0, 150.0, 220.0, 300.0)   # collimator distances the activity is binned to for the blur
BONE_TO_SOFT = (15.0, 40.0)  # bone / soft-tissue tracer concentration ratio, log-uniform (see the docstring)
SPLIT_SEED_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}


@dataclass
class BoneScan:
    """One patient: ``expected (2, H, W)`` standard-speed expected counts (anterior, posterior), ``labels (2, H, W)``
    int64, ``pixel_size_mm``, ``lesions`` (number of hot spots) and ``height_cm``."""

    expected: torch.Tensor
    labels: torch.Tensor
    pixel_size_mm: float
    lesions: int
    height_cm: float


def lesions(rng: np.random.Generator, bones: list[Capsule], count: int) -> list[Capsule]:
    """``count`` hot spots on random points of the axial skeleton, pelvis and proximal limbs."""
    sites = [c for c in bones if c.r >= 0.005 and c.u0 < 0.75 and c.uptake > 0]
    out = []
    for _ in range(count):
        c = sites[int(rng.integers(len(sites)))]
        t = rng.uniform(0.1, 0.9)
        u, v = c.u0 + t * (c.u1 - c.u0), c.v0 + t * (c.v1 - c.v0)
        out.append(Capsule(u, v, u, v, rng.uniform(0.0035, 0.011), min(c.uptake, 40.0) * rng.uniform(2.0, 6.0), c.depth,
                           LABELS["lesion"]))
    return out


def _profile(c: Capsule, shape: tuple[int, int], *, top: float, centre: float, scale: float):
    """``(rows, cols, chord, inside)`` of capsule ``c`` in its bounding box: ``chord`` the projected thickness of a
    cylinder of radius ``r`` over ``2 r`` (a dome, 1 on the axis), ``inside`` the anti-aliased coverage; None if the
    capsule lies outside the image."""
    h, w = shape
    r0 = int(max(0, math.floor(top + min(c.u0, c.u1) * scale - c.r * scale - 2)))
    r1 = int(min(h, math.ceil(top + max(c.u0, c.u1) * scale + c.r * scale + 3)))
    c0 = int(max(0, math.floor(centre + min(c.v0, c.v1) * scale - c.r * scale - 2)))
    c1 = int(min(w, math.ceil(centre + max(c.v0, c.v1) * scale + c.r * scale + 3)))
    if r0 >= r1 or c0 >= c1:
        return None
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    ay, ax = top + c.u0 * scale, centre + c.v0 * scale
    dy, dx = (c.u1 - c.u0) * scale, (c.v1 - c.v0) * scale
    t = np.clip(((yy - ay) * dy + (xx - ax) * dx) / max(dy * dy + dx * dx, 1e-12), 0.0, 1.0)
    dist = np.hypot(yy - ay - t * dy, xx - ax - t * dx)
    inside = np.clip(c.r * scale - dist + 0.5, 0.0, 1.0)
    chord = np.sqrt(np.clip(1.0 - (dist / (c.r * scale + 0.5)) ** 2, 0.0, 1.0))
    return slice(r0, r1), slice(c0, c1), chord, inside


def _render(caps: list[Capsule], shape: tuple[int, int], *, top: float, centre: float, scale: float,
            thickness_mm: float, mm_per_unit: float, gap_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Both views (anterior, then posterior not yet mirrored) at once: ``(soft (H, W), bone (2, B, H, W),
    organs (2, B, H, W), labels (H, W))``, ``B = len(DEPTH_BINS_MM)``. Soft tissue: the union (max) of the
    capsules' thickness ``t`` in mm, emitting ``(1 - exp(-mu t)) / mu`` per unit concentration (a uniform slab seen
    through itself; the same from both sides). Bones, lesions and organs add ``uptake x chord x exp(-mu d)``,
    ``d`` their depth below the camera side, in the bin of their distance ``gap_mm + d`` to the collimator."""
    thick = np.zeros(shape, np.float64)
    bone = np.zeros((2, len(DEPTH_BINS_MM), *shape), np.float64)
    organs = np.zeros_like(bone)
    labels = np.zeros(shape, np.int64)
    edges = [(a + b) / 2 for a, b in zip(DEPTH_BINS_MM[:-1], DEPTH_BINS_MM[1:])]
    for c in sorted(caps, key=lambda c: c.label):
        prof = _profile(c, shape, top=top, centre=centre, scale=scale)
        if prof is None:
            continue
        rows, cols, chord, inside = prof
        if c.label == LABELS["soft_tissue"]:
            t = 2.0 * c.r * mm_per_unit * c.ap * c.uptake * chord * inside   # uptake: relative concentration
            thick[rows, cols] = np.maximum(thick[rows, cols], t)
        else:
            target = organs if c.label in (LABELS["kidney"], LABELS["bladder"]) else bone
            for view, depth in enumerate((c.depth, 1.0 - c.depth)):
                weight = math.exp(-MU_TC99M_PER_MM * depth * thickness_mm)
                b = int(np.searchsorted(edges, gap_mm + depth * thickness_mm))
                target[view, b, rows, cols] += c.uptake * weight * chord * inside
        if c.uptake > 0:
            labels[rows, cols] = np.where(inside > 0.5, np.maximum(labels[rows, cols], c.label), labels[rows, cols])
    soft = (1.0 - np.exp(-MU_TC99M_PER_MM * thick)) / MU_TC99M_PER_MM
    return soft, np.clip(bone, 0.0, None), organs, labels


def collimator_fwhm_mm(distance_mm: float, *, fwhm_10cm: float = COLLIMATOR_FWHM_MM) -> float:
    """System resolution (FWHM, mm) of a parallel-hole LEHR collimator at ``distance_mm`` from its face: grows
    linearly with distance, ``fwhm_10cm x (0.4 + 0.6 z / 100 mm)`` (0.4x at the face, 1.6x at 20 cm)."""
    return fwhm_10cm * (0.4 + 0.6 * distance_mm / 100.0)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], *, sigma_px: float, std: float) -> np.ndarray:
    """``exp(std g)``, ``g`` white noise low-passed by a Gaussian of ``sigma_px`` and scaled to unit variance."""
    g = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return np.exp(std * g / max(float(g.std()), 1e-12))


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
    rng = np.random.default_rng([int(seed), 0xB0E, 2])
    pixel = float(rng.uniform(2.2, 2.4)) if pixel_size_mm is None else float(pixel_size_mm)
    counts = float(math.exp(rng.uniform(math.log(0.8e6), math.log(3.5e6)))) if total_counts is None else float(total_counts)
    n_les = int(rng.integers(0, 7)) if lesion_count is None else int(lesion_count)
    if pixel <= 0 or counts <= 0 or n_les < 0:
        raise MedirError("pixel_size_mm and total_counts must be > 0 and lesion_count >= 0")
    height_cm = float(rng.uniform(90.0, 185.0))
    child = float(np.clip((160.0 - height_cm) / 70.0, 0.0, 1.0))
    habitus = float(rng.uniform(0.85, 1.4))
    arm = float(rng.uniform(0.0, 0.03) + 0.05 * max(habitus - 1.0, 0.0))
    scale = height_cm * 10.0 / pixel                                  # pixels per unit height
    scale = min(scale, 0.95 * height / 1.0)                           # the patient fits in the field of view
    top = rng.uniform(0.02, 0.1) * height
    centre = width / 2 + rng.uniform(-0.03, 0.03) * width
    bones = skeleton(rng, child=child, arm=arm)
    caps = soft_tissue(rng, child=child, arm=arm, habitus=habitus) + bones + lesions(rng, bones, n_les)
    thickness = 0.12 * height_cm * 10.0 * habitus ** 0.7
    shape = (height, width)
    gap = rng.uniform(20.0, 60.0)                                     # collimator to skin (body contouring)
    soft, bone, organs, lab = _render(caps, shape, top=top, centre=centre, scale=scale, thickness_mm=thickness,
                                      mm_per_unit=height_cm * 10.0, gap_mm=gap)
    mm = pixel
    ratio = float(math.exp(rng.uniform(math.log(BONE_TO_SOFT[0]), math.log(BONE_TO_SOFT[1]))))
    bone *= ratio * (height_cm / 175.0) * _smooth_field(rng, shape, sigma_px=40.0 / mm, std=0.2) \
        * _smooth_field(rng, shape, sigma_px=5.0 / mm, std=0.12)
    soft = soft * _smooth_field(rng, shape, sigma_px=60.0 / mm, std=0.12)
    fwhm10 = COLLIMATOR_FWHM_MM * rng.uniform(0.85, 1.2)             # per patient: camera and collimator
    scatter = rng.uniform(0.05, 0.12)                                 # scatter in the photopeak window
    blurred = []
    for v in (0, 1):                                                  # each depth bin with its own blur
        sharp = [(soft, gap + thickness / 2)] + [(bone[v, b] + organs[v, b], z) for b, z in enumerate(DEPTH_BINS_MM)]
        img = sum(ndimage.gaussian_filter(a, fwhm_to_sigma(collimator_fwhm_mm(z, fwhm_10cm=fwhm10), pixel),
                                          mode="constant", truncate=3.0) for a, z in sharp)
        total = soft + (bone[v] + organs[v]).sum(axis=0)
        blurred.append((1 - scatter) * img + scatter * ndimage.gaussian_filter(total, 25.0 / pixel, mode="constant",
                                                                               truncate=3.0))
    blurred[1] = blurred[1][:, ::-1]
    x = torch.from_numpy(np.stack(blurred).astype(np.float32)).clamp_min(0)
    x = x * (counts / float(x[0].sum()))
    maps = np.stack([lab, lab[:, ::-1]])
    return BoneScan(x, torch.from_numpy(np.ascontiguousarray(maps)), pixel, n_les, height_cm)


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
