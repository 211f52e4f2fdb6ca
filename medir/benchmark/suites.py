"""Benchmark suites: the test images (and training images) every method is scored on.

A suite is simulated offline from anatomy that ships inside packages (no download), so anyone can regenerate it:

- ``ct``: low-dose CT of pseudo-CT heads (:func:`medir.data.ldct.pseudo_ct_head`, MNI template) at 1 mm pixels,
  low dose by ``ct-lowdose`` noise insertion (1/20 of the dose) on the whole slice, then the central ``size`` x ``size``
  window. Training and test slices come from disjoint template slices (:data:`medir.data.ldct.PSEUDO_SPLIT`).
  Regions come from the noiseless reference: air (< -300 HU), soft tissue, bone (> 200 HU); lesion cases get
  hyperdense disks (+``CT_LESION_HU``, 3-6 mm radius) in brain tissue before the noise is inserted.
- ``pet``: low-count brain FDG PET/MR (:func:`medir.data.phantoms.brain_slice`, split by subject) simulated on the
  whole slice at 2 mm (256 mm field of view, 128 x 128) as the shipped PET models' data (:mod:`medir.data.petmr`):
  high count with the ``mfdiff-high`` protocol, low count at 5e6 x 1/12 counts per slice (DiffCode's 12x dose
  reduction) with the ``mfdiff-low`` PSF, both attenuation-corrected OSEM (the clinical reconstruction); then the
  ``size`` x ``size`` window around the lesions (central without lesions). The T1 MR comes with each slice (for
  MFdiff). Regions: the phantom's labels (CSF, grey, white matter, lesion); lesion cases carry hot lesions (2x local
  uptake, radius 6-10 mm).

Every test set has lesion-free cases (for the hallucination count) and lesion cases (for contrast recovery).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

CT_LESION_HU = 30.0
CT_PIXEL_MM = 1.0
CT_DOSE = 0.05  # 1/20 of the reference dose: about 10 HU of noise in the brain at 1 mm
PET_FULL_COUNTS = 5e6
PET_DOSE = 1.0 / 12.0
PET_PIXEL_MM = 2.0  # every PET case is simulated on the whole slice at 2 mm (the shipped PET models' pixel size)
PET_LESION_RADIUS_MM = (6.0, 10.0)


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

    ``window``: evaluation window (lo, hi) in ``units`` (None: full range); ``data_range``: of PSNR and SSIM, a number
    or ``"target"`` (the reference's max - min after clipping, per image); ``preset``: the intensity preset the trained methods use; ``task``/``modality``: how
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
    data_range: float | str = "target"


BASELINES = ("gaussian", "nlm", "bm3d")
SUITES: dict[str, Suite] = {
    "ct": Suite(
        name="ct", title="Low-dose CT (1/20 dose, pseudo-CT heads)", task="ct-lowdose", modality="CT",
        units="HU", preset="ct-soft", window=(-160.0, 240.0),
        region_names={1: "air", 2: "soft tissue", 3: "bone", 4: "lesion"},
        methods=(*BASELINES, "supervised", "rat", "lrformer", "diffcode", "shipped"),
        description="central windows of pseudo-CT head slices (MNI template) at 1 mm, ct-lowdose noise inserted on "
                    "the whole slice at 1/20 dose",
        search_labels=(2, 4), data_range=400.0),
    "pet": Suite(
        name="pet", title="Low-count brain PET with MR (1/12 dose, FDG phantom)", task="pet-lowcount",
        modality="PT", units="activity (a.u.)", preset="pet-counts", window=None,
        region_names={1: "CSF", 2: "grey matter", 3: "white matter", 4: "lesion"},
        methods=(*BASELINES, "supervised", "rat", "lrformer", "spdvfm", "diffcode", "mfdiff", "shipped"),
        description="brain FDG phantom (MNI template, split by subject) at 2 mm, OSEM at 5e6/12 counts per slice",
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


def _centre(shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """The central ``size`` x ``size`` window of an image of ``shape`` (at least ``size`` on each side)."""
    y0, x0 = (shape[0] - size) // 2, (shape[1] - size) // 2
    return slice(y0, y0 + size), slice(x0, x0 + size)


def _ct_reference(z: int, size: int, seed: int) -> np.ndarray:
    """A whole pseudo-CT head slice at 1 mm, padded with air to at least ``size`` on each side."""
    from medir.data.ldct import pseudo_ct_head

    hu = pseudo_ct_head(z, seed=seed, pixel_mm=CT_PIXEL_MM)
    pad = [(max(0, size - n) // 2, max(0, size - n) - max(0, size - n) // 2) for n in hu.shape]
    return np.pad(hu, pad, constant_values=-1000.0).astype(np.float32)


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
    """Noise is inserted on the whole slice (CT noise depends on the attenuation along every ray), then the central
    ``size`` x ``size`` window is kept."""
    from medir.data.ldct import PSEUDO_SPLIT
    from medir.physics import simulate

    zs = [z for z, p in PSEUDO_SPLIT["train" if split == "train" else "test"] if p == 1.0]
    cases = []
    for k in range(count):
        z = zs[k % len(zs)]
        hq = _ct_reference(z, size, seed + k // len(zs))
        window = _centre(hq.shape, size)
        lesion = np.zeros(hq.shape, bool)
        if lesions:
            rng = np.random.default_rng([seed, k, 7])
            radius = (3.0 / CT_PIXEL_MM, 6.0 / CT_PIXEL_MM)
            inside = np.zeros(hq.shape, bool)
            inside[window] = True
            brain = ndimage.binary_erosion((hq > 0) & (hq < 80) & inside, iterations=int(np.ceil(radius[1])) + 1)
            lesion = _disks(brain, 2, radius, rng)
            hq = np.where(lesion, hq + CT_LESION_HU, hq).astype(np.float32)
        lq = simulate("ct-lowdose", torch.from_numpy(hq)[None, None], seed=seed * 1009 + k, dose=CT_DOSE,
                      pixel_size_mm=CT_PIXEL_MM)[0, 0].numpy()
        hq, lq, lesion = hq[window], lq[window], lesion[window]
        regions = np.where(hq < -300, 1, np.where(hq > 200, 3, 2)).astype(np.int64)
        regions[lesion] = 4
        cases.append(Case(f"ct_{split}_z{z:03d}_{'lesion' if lesions else 'clean'}_{k}", lq.astype(np.float32),
                          hq.astype(np.float32), regions, lesion))
    return cases


# --- PET --------------------------------------------------------------------------------------------------


def _lesion_window(lesion: np.ndarray, size: int) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window centred on the lesions' centroid (the central window without lesions), kept
    inside the image."""
    if not lesion.any():
        return _centre(lesion.shape, size)
    cy, cx = (int(round(c)) for c in np.argwhere(lesion).mean(axis=0))
    y0 = min(max(cy - size // 2, 0), lesion.shape[0] - size)
    x0 = min(max(cx - size // 2, 0), lesion.shape[1] - size)
    return slice(y0, y0 + size), slice(x0, x0 + size)


def _pet_cases(split: str, *, count: int, size: int, seed: int, lesions: bool) -> list[Case]:
    """Whole slices at ``PET_PIXEL_MM`` (whatever ``size``), OSEM as the shipped PET models' data; then the window of
    ``size`` pixels around the lesions (central when there are none)."""
    from medir.data.phantoms import FOV_MM, brain_slice, make_subject, split_subjects, subject_slices
    from medir.physics.pet import simulate_pet_lowcount

    grid = max(size, round(FOV_MM / PET_PIXEL_MM))
    subjects = [make_subject(s) for s in split_subjects(split)]
    zs = subject_slices(count + 2)[1:-1]  # one slice per case, leaving out the nearly empty first and last
    cases = []
    for k in range(count):
        subject, z = subjects[k % len(subjects)], zs[k % len(zs)]
        g = torch.Generator().manual_seed(seed * 7 + k)
        angle = float(torch.rand(1, generator=g)) * 15.0
        s = brain_slice(z, size=grid, subject=subject, angle_deg=angle, hot_lesions=2 if lesions else 0,
                        lesion_radius_mm=PET_LESION_RADIUS_MM, generator=torch.Generator().manual_seed(subject.seed * 1009 + z + seed))
        x, mu = s.activity[None], s.mu_map[None]
        common = dict(generator=g, mu_map=mu, pixel_size_mm=s.pixel_size_mm, recon="osem")
        low = simulate_pet_lowcount(x, protocol="mfdiff-low", counts=PET_FULL_COUNTS, dose=PET_DOSE, **common)
        high = simulate_pet_lowcount(x, protocol="mfdiff-high", **common)
        lesion = s.lesion_mask[0].numpy() > 0
        window = _lesion_window(lesion, size)
        cases.append(Case(f"pet_{split}_s{subject.seed}_z{z:03d}_{'lesion' if lesions else 'clean'}_{k}",
                          low[0, 0].numpy()[window].astype(np.float32), high[0, 0].numpy()[window].astype(np.float32),
                          s.labels[0].numpy()[window].astype(np.int64), lesion[window],
                          aux=s.mr[0].numpy()[window].astype(np.float32)))
    return cases
