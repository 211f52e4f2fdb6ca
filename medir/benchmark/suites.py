"""Benchmark suites: the test images (and training images) every method is scored on.

A suite is simulated offline from anatomy that ships inside packages (no download), so anyone can regenerate it:

- ``ct``: quarter-dose CT of pseudo-CT heads (:func:`medir.data.ldct.pseudo_ct_head`, MNI template) on a
  ``size`` x ``size`` grid of ``240 / size`` mm pixels, low dose by ``ct-lowdose`` noise insertion (dose 0.25).
  Training slices and test slices come from disjoint template slices (:data:`medir.data.ldct.PSEUDO_SPLIT`).
  Regions come from the noiseless reference: air (< -300 HU), soft tissue, bone (> 200 HU); lesion cases get
  hyperdense disks (+``CT_LESION_HU``, 3-6 mm radius) in brain tissue before the noise is inserted.
- ``pet``: low-count brain FDG PET/MR (:func:`medir.data.phantoms.brain_slice`, split by subject): high count with the
  ``mfdiff-high`` protocol, low count at 5e6 x 1/12 counts per slice (DiffCode's 12x dose reduction), both by
  attenuation-corrected FBP, as :mod:`medir.data.allinone`; the T1 MR comes with each slice (for MFdiff). Regions:
  the phantom's labels (CSF, grey, white matter, lesion); lesion cases carry hot lesions (2x local uptake).

Every test set has lesion-free cases (for the hallucination count) and lesion cases (for contrast recovery).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

CT_LESION_HU = 30.0
PET_FULL_COUNTS = 5e6
PET_DOSE = 1.0 / 12.0


@dataclass
class Case:
    """One test or training image, every array (H, W) float32 in physical units.

    ``regions``: int label map (names in the suite's ``region_names``); ``lesion``: bool mask of the simulated
    lesions (all False for a lesion-free case); ``aux``: the co-registered MR for PET (None elsewhere).
    """

    name: str
    lq: np.ndarray
    hq: np.ndarray
    regions: np.ndarray
    lesion: np.ndarray
    aux: np.ndarray | None = None

    @property
    def has_lesions(self) -> bool:
        return bool(self.lesion.any())


@dataclass(frozen=True)
class Suite:
    """What is restored, how it is scored, and which methods apply.

    ``window``: evaluation window (lo, hi) in ``units`` (None: full range); data range per image = reference max
    - min after clipping; ``preset``: the intensity preset the trained methods use; ``task``/``modality``: how
    shipped models are looked up; ``methods``: the contenders (see :mod:`medir.benchmark.contenders`).
    """

    name: str
    title: str
    task: str
    modality: str
    units: str
    preset: str
    window: tuple[float, float] | None
    region_names: dict[int, str]
    methods: tuple[str, ...]
    description: str = ""
    search_labels: tuple[int, ...] = ()


BASELINES = ("gaussian", "nlm", "bm3d")
SUITES: dict[str, Suite] = {
    "ct": Suite(
        name="ct", title="Low-dose CT (quarter dose, pseudo-CT heads)", task="ct-lowdose", modality="CT",
        units="HU", preset="ct-soft", window=(-160.0, 240.0),
        region_names={1: "air", 2: "soft tissue", 3: "bone", 4: "lesion"},
        methods=(*BASELINES, "supervised", "rat", "lrformer", "diffcode", "shipped"),
        description="pseudo-CT head slices (MNI template) with ct-lowdose noise insertion at 1/4 dose",
        search_labels=(2, 4)),
    "pet": Suite(
        name="pet", title="Low-count brain PET with MR (1/12 dose, FDG phantom)", task="pet-lowcount",
        modality="PT", units="activity (a.u.)", preset="pet-counts", window=None,
        region_names={1: "CSF", 2: "grey matter", 3: "white matter", 4: "lesion"},
        methods=(*BASELINES, "supervised", "rat", "lrformer", "spdvfm", "diffcode", "mfdiff", "shipped"),
        description="brain FDG phantom (MNI template, split by subject), FBP at 5e6/12 counts per slice",
        search_labels=(1, 2, 3, 4)),
}


def make_cases(suite: str, split: str, *, count: int, size: int, seed: int = 0, lesions: bool = False) -> list[Case]:
    """``count`` cases of ``suite`` from ``split`` ("train" or "test"), with simulated lesions if ``lesions``."""
    maker = {"ct": _ct_cases, "pet": _pet_cases}[suite]
    return maker(split, count=count, size=size, seed=seed, lesions=lesions)


def test_set(suite: str, *, per_kind: int, size: int, seed: int = 0) -> list[Case]:
    """``per_kind`` lesion-free cases then ``per_kind`` cases with lesions (different noise draws)."""
    return (make_cases(suite, "test", count=per_kind, size=size, seed=seed)
            + make_cases(suite, "test", count=per_kind, size=size, seed=seed + 500, lesions=True))


# --- CT ---------------------------------------------------------------------------------------------------


def _ct_reference(z: int, size: int, seed: int) -> tuple[np.ndarray, float]:
    """A pseudo-CT head slice centred on a ``size`` x ``size`` grid of air, and its pixel size (mm)."""
    from medir.data.ldct import pseudo_ct_head

    pixel = 240.0 / size
    fine = min(pixel, 2.0)  # the phantom's skull shells need pixels of 2 mm or less; coarser grids average them
    hu = pseudo_ct_head(z, seed=seed, pixel_mm=fine)
    if fine < pixel:
        hu = ndimage.zoom(hu, fine / pixel, order=1, prefilter=False)
    out = np.full((size, size), -1000.0, np.float32)
    h, w = min(size, hu.shape[0]), min(size, hu.shape[1])
    y0, x0 = (hu.shape[0] - h) // 2, (hu.shape[1] - w) // 2
    out[(size - h) // 2:(size - h) // 2 + h, (size - w) // 2:(size - w) // 2 + w] = hu[y0:y0 + h, x0:x0 + w]
    return out, pixel


def _disks(candidates: np.ndarray, n: int, radius_px: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Union of ``n`` disks centred on random pixels of ``candidates`` (bool (H, W))."""
    mask = np.zeros(candidates.shape, bool)
    points = np.argwhere(candidates)
    if len(points) == 0:
        return mask
    rows, cols = np.ogrid[:candidates.shape[0], :candidates.shape[1]]
    for _ in range(n):
        cy, cx = points[rng.integers(len(points))]
        r = rng.uniform(*radius_px)
        mask |= (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
    return mask


def _ct_cases(split: str, *, count: int, size: int, seed: int, lesions: bool) -> list[Case]:
    from medir.data.ldct import PSEUDO_SPLIT
    from medir.physics import simulate

    zs = [z for z, p in PSEUDO_SPLIT["train" if split == "train" else "test"] if p == 1.0]
    cases = []
    for k in range(count):
        z = zs[k % len(zs)]
        hq, pixel = _ct_reference(z, size, seed + k // len(zs))
        lesion = np.zeros(hq.shape, bool)
        if lesions:
            rng = np.random.default_rng([seed, k, 7])
            radius = (3.0 / pixel, max(6.0 / pixel, 3.0 / pixel + 1))
            brain = ndimage.binary_erosion((hq > 0) & (hq < 80), iterations=int(np.ceil(radius[1])) + 1)
            lesion = _disks(brain, 2, radius, rng)
            hq = np.where(lesion, hq + CT_LESION_HU, hq).astype(np.float32)
        lq = simulate("ct-lowdose", torch.from_numpy(hq)[None, None], seed=seed * 1009 + k, dose=0.25,
                      pixel_size_mm=pixel)[0, 0].numpy()
        regions = np.where(hq < -300, 1, np.where(hq > 200, 3, 2)).astype(np.int64)
        regions[lesion] = 4
        cases.append(Case(f"ct_{split}_z{z:03d}_{'lesion' if lesions else 'clean'}_{k}", lq.astype(np.float32),
                          hq.astype(np.float32), regions, lesion))
    return cases


# --- PET --------------------------------------------------------------------------------------------------


def _pet_cases(split: str, *, count: int, size: int, seed: int, lesions: bool) -> list[Case]:
    from medir.data.phantoms import brain_slice, make_subject, split_subjects, subject_slices
    from medir.physics.pet import simulate_pet_lowcount

    subjects = [make_subject(s) for s in split_subjects(split)]
    zs = subject_slices(count + 2)[1:-1]  # one slice per case, leaving out the nearly empty first and last
    cases = []
    for k in range(count):
        subject, z = subjects[k % len(subjects)], zs[k % len(zs)]
        g = torch.Generator().manual_seed(seed * 7 + k)
        angle = float(torch.rand(1, generator=g)) * 15.0
        s = brain_slice(z, size=size, subject=subject, angle_deg=angle, hot_lesions=2 if lesions else 0,
                        generator=torch.Generator().manual_seed(subject.seed * 1009 + z + seed))
        x, mu = s.activity[None], s.mu_map[None]
        common = dict(generator=g, mu_map=mu, pixel_size_mm=s.pixel_size_mm, recon="fbp")
        low = simulate_pet_lowcount(x, protocol="mfdiff-low", counts=PET_FULL_COUNTS, dose=PET_DOSE, **common)
        high = simulate_pet_lowcount(x, protocol="mfdiff-high", **common)
        lesion = s.lesion_mask[0].numpy() > 0
        cases.append(Case(f"pet_{split}_s{subject.seed}_z{z:03d}_{'lesion' if lesions else 'clean'}_{k}",
                          low[0, 0].numpy().astype(np.float32), high[0, 0].numpy().astype(np.float32),
                          s.labels[0].numpy().astype(np.int64), lesion, aux=s.mr[0].numpy().astype(np.float32)))
    return cases
