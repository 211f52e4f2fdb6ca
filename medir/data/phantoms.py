"""Phantoms: a brain PET/MR phantom from real anatomy, and simple CT test objects.

Brain phantom (MFdiff-style, section 4.2, with nilearn's MNI ICBM152 2009a template instead of
BrainWeb): the template's T1 and grey/white-matter probability maps (197 x 233 x 189 at 1 mm,
shipped inside nilearn, no download) give hard tissue labels (the argmax of background, CSF, grey,
white; CSF being the filled brain outline minus grey and white matter) and from them

- an FDG-like activity, constant per label: grey : white : CSF = 4 : 1 : 0.05 by default (FDG grey
  matter about 3-4x white matter, CSF nearly inactive);
- a T1 MR with the same labels: white 0.84, grey 0.66, CSF 0.21 (the template's median T1 inside the
  white and grey labels; CSF takes the lower quartile, its median being raised by sulcal partial volume);
  outside the brain the template's own T1;
- an attenuation map at 511 keV (soft tissue 0.0096 / mm, skull 0.0151 / mm); the template is
  brain-extracted, so skull and scalp are synthetic rings around the brain (absent from the MR);
- optional hot and cold lesions in PET only (absent from the MR);
- the label map: 0 background (air, scalp, skull), 1 CSF, 2 grey, 3 white, 4 lesion.

``partial_volume=True`` brings back the old mixed activity ``4 g + w + 0.05 c`` of the probability maps.

Subjects: one template is one anatomy, so a "subject" is the template under its own random smooth
deformation (anisotropic scaling 0.9-1.1, a 5 x 5 grid of displacements of about 3 mm, a shift) and its
own lesions (:func:`make_subject`). Splits are by subject (:func:`split_subjects`, disjoint seeds); every
subject contributes slices spread over the whole axial extent of the brain (:func:`subject_slices`), so the
test set covers the whole brain. Limitation: all subjects share the template's anatomy up to the warp.
Axial slices are padded to 256 x 256 mm, resampled to ``size`` pixels and rotated by random angles
(0-15 degrees as in the paper). ``split_slices`` (contiguous slice blocks of the undeformed template) is kept
for the labelled segmentation set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from medir.errors import MedirError, missing_extra

LABELS = {"background": 0, "csf": 1, "grey": 2, "white": 3, "lesion": 4}
MU_TISSUE_511 = 0.0096
MU_BONE_511 = 0.0151
FOV_MM = 256
SKULL_MM = (2.0, 8.0)  # bone ring, distance from the brain outline in mm (CSF gap, then about 6 mm of bone)
SCALP_MM = 12.0        # soft tissue up to this distance
T1_BY_LABEL = (0.21, 0.66, 0.84)  # CSF, grey, white: medians (CSF: lower quartile) of the template inside the labels
SPLIT_SEED_BASE = {"train": 0, "val": 10_000, "test": 20_000}
SPLIT_SUBJECTS = {"train": 16, "val": 2, "test": 2}   # 20 phantoms as MFdiff, split by subject


def _template_dir() -> Path:
    try:
        import nilearn
    except ImportError as err:  # pragma: no cover - nilearn is a dev dependency
        raise missing_extra("nilearn", "phantoms") from err
    return Path(nilearn.__file__).parent / "datasets" / "data"


@lru_cache(maxsize=1)
def load_template() -> dict[str, np.ndarray]:
    """MNI ICBM152 2009a volumes in [0, 1], ``(x, y, z) = (197, 233, 189)`` at 1 mm: t1, grey, white."""
    import nibabel as nib

    d = _template_dir()
    vol = {}
    for key, name in (("t1", "t1"), ("grey", "gm"), ("white", "wm")):
        path = d / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        if not path.exists():
            raise MedirError(f"{path.name} is missing from nilearn: reinstall nilearn (pip install -c constraints.txt nilearn)")
        vol[key] = np.asarray(nib.load(path).dataobj, dtype=np.float32) / 255.0
    return vol


def tissue_maps(z: int) -> dict[str, np.ndarray]:
    """Axial slice ``z`` (``(197, 233)``, 1 mm): t1, grey, white, csf (filled brain outline minus grey and
    white), and for attenuation only a synthetic skull ring and head outline (the template has no skull)."""
    vol = load_template()
    m = {k: vol[k][:, :, z] for k in ("t1", "grey", "white")}
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(m["grey"] + m["white"] > 0.1, iterations=3))
    m["csf"] = np.clip(brain - m["grey"] - m["white"], 0.0, 1.0).astype(np.float32)
    # the template is brain-extracted: add a skull and a scalp ring by distance from the brain outline
    inside = ndimage.binary_fill_holes(ndimage.binary_closing((m["t1"] > 0.08) | brain, iterations=2))
    dist = ndimage.distance_transform_edt(~inside)
    m["skull"] = ((dist > SKULL_MM[0]) & (dist <= SKULL_MM[1])).astype(np.float32)
    m["head"] = (dist <= SCALP_MM).astype(np.float32)
    return m


def brain_slice_range() -> tuple[int, int]:
    """Axial indices ``[lo, hi)`` whose slices hold at least 2000 mm^2 of grey + white matter."""
    vol = load_template()
    area = (vol["grey"] + vol["white"]).sum(axis=(0, 1))  # mm^2 per axial slice
    idx = np.nonzero(area > 2000)[0]
    return int(idx[0]), int(idx[-1]) + 1


def split_slices(split: str, *, fractions: tuple[float, float, float] = (0.8, 0.15, 0.05), gap: int = 3) -> list[int]:
    """Axial slice indices of ``split`` ("train", "val", "test"): consecutive blocks, ``gap`` slices
    dropped between blocks so neighbouring (nearly identical) slices never land in two splits."""
    names = ("train", "val", "test")
    if split not in names:
        raise MedirError(f"split='{split}' is unknown: use train, val or test")
    lo, hi = brain_slice_range()
    n = hi - lo - 2 * gap
    n_train, n_val = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    bounds = [0, n_train, n_train + n_val, n]
    k = names.index(split)
    start = lo + bounds[k] + k * gap
    return list(range(int(start), int(lo + bounds[k + 1] + k * gap)))


def _axial(sl: np.ndarray, size: int, *, nearest: bool = False) -> torch.Tensor:
    """Template slice ``(197, 233)`` as ``(1, 1, size, size)``: anterior up, padded to 256 mm, resampled."""
    sl = np.rot90(sl).copy()  # x (left-right) becomes columns, y (posterior-anterior) rows with anterior on top
    canvas = np.zeros((FOV_MM, FOV_MM), dtype=np.float32)
    r0, c0 = (FOV_MM - sl.shape[0]) // 2, (FOV_MM - sl.shape[1]) // 2
    canvas[r0:r0 + sl.shape[0], c0:c0 + sl.shape[1]] = sl
    t = torch.from_numpy(canvas)[None, None]
    if size == FOV_MM:
        return t
    if nearest:
        return F.interpolate(t, size=(size, size), mode="nearest")
    return F.interpolate(t, size=(size, size), mode="area") if FOV_MM % size == 0 else \
        F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def rotate(x: torch.Tensor, angle_deg: float, *, nearest: bool = False) -> torch.Tensor:
    """Rotate ``(B, C, H, W)`` about the centre, zeros outside."""
    a = math.radians(angle_deg)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]], dtype=x.dtype)
    grid = F.affine_grid(theta[None].expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest" if nearest else "bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class BrainSlice:
    """One phantom slice, every field ``(1, size, size)``; ``pixel_size_mm = 256 / size``."""

    activity: torch.Tensor  # true FDG-like activity (a.u.)
    mu_map: torch.Tensor    # attenuation at 511 keV, 1/mm
    mr: torch.Tensor        # T1, 0..1
    labels: torch.Tensor    # int64: 0 background, 1 CSF, 2 grey, 3 white, 4 lesion
    lesion_mask: torch.Tensor  # float 0/1
    pixel_size_mm: float


def brain_slice(z: int, *, size: int = 128, uptake: tuple[float, float, float] = (4.0, 1.0, 0.05),
                angle_deg: float = 0.0, hot_lesions: int = 0, cold_lesions: int = 0,
                lesion_radius_mm: tuple[float, float] = (3.0, 8.0), hot_contrast: float = 2.0,
                cold_contrast: float = 0.25, partial_volume: bool = False, subject: "Subject | None" = None,
                generator: torch.Generator | None = None) -> BrainSlice:
    """Phantom slice ``z`` of the template (warped by ``subject`` if given). ``uptake`` is grey : white : CSF
    activity, constant within each hard label; lesion activity is ``contrast x`` the local activity (hot > 1,
    cold < 1); lesion centres lie in grey or white matter."""
    depth = load_template()["t1"].shape[2]
    if subject is not None:
        z = int(np.clip(z + subject.z_shift, 0, depth - 1))
    if not 0 <= z < depth:
        raise MedirError(f"slice {z} is outside the template: use 0 to {depth - 1}")
    maps = tissue_maps(z)
    keys = ("grey", "white", "csf", "t1", "head", "skull")
    g, w, c, t1, head, skull = (_axial(maps[k], size) for k in keys)
    if subject is not None:
        g, w, c, t1, head, skull = warp(torch.cat([g, w, c, t1, head, skull], dim=1), subject).split(1, dim=1)
    probs = torch.cat([1.0 - (g + w + c).clamp(max=1.0), c, g, w], dim=1)
    labels = probs.argmax(dim=1, keepdim=True).float()
    if partial_volume:
        activity = uptake[0] * g + uptake[1] * w + uptake[2] * c
    else:
        activity = torch.tensor([0.0, uptake[2], uptake[0], uptake[1]])[labels.long()]
    mu = MU_TISSUE_511 * (head > 0.5).float() + (MU_BONE_511 - MU_TISSUE_511) * (skull > 0.5).float()
    mr = torch.where(labels > 0, torch.tensor((0.0, *T1_BY_LABEL))[labels.long()], t1)
    pixel = FOV_MM / size
    lesion = _lesion_mask(labels, hot_lesions + cold_lesions, lesion_radius_mm, pixel, generator)
    for k, m in enumerate(lesion):
        factor = hot_contrast if k < hot_lesions else cold_contrast
        activity = torch.where(m > 0, activity * factor, activity)
        labels = torch.where(m > 0, torch.full_like(labels, LABELS["lesion"]), labels)
    mask = torch.stack(lesion).amax(dim=0) if lesion else torch.zeros_like(labels)
    if angle_deg:
        activity, mu, mr = (rotate(t, angle_deg) for t in (activity, mu, mr))
        labels, mask = (rotate(t, angle_deg, nearest=True) for t in (labels, mask))
    return BrainSlice(activity[0], mu[0], mr[0], labels[0].long(), mask[0], pixel)


def _lesion_mask(labels: torch.Tensor, n: int, radius_mm: tuple[float, float], pixel: float,
                 generator: torch.Generator | None) -> list[torch.Tensor]:
    """``n`` disks ``(1, 1, H, W)`` centred on random grey/white-matter pixels."""
    if n == 0:
        return []
    h, w = labels.shape[-2:]
    candidates = torch.nonzero((labels[0, 0] == LABELS["grey"]) | (labels[0, 0] == LABELS["white"]))
    if len(candidates) == 0:
        raise MedirError("this slice has no grey or white matter to place lesions in: pick a central slice")
    rows = torch.arange(h, dtype=torch.float32)[:, None]
    cols = torch.arange(w, dtype=torch.float32)[None, :]
    disks = []
    for _ in range(n):
        i = int(torch.randint(len(candidates), (1,), generator=generator))
        r = radius_mm[0] + (radius_mm[1] - radius_mm[0]) * float(torch.rand(1, generator=generator))
        cy, cx = candidates[i].tolist()
        disks.append(((rows - cy) ** 2 + (cols - cx) ** 2 <= (r / pixel) ** 2).float()[None, None])
    return disks


@dataclass(frozen=True)
class Subject:
    """A simulated subject: the template warped by ``x -> A x + d(x) + t`` in normalised coordinates
    (``scale`` on the diagonal of ``A``, ``displacement (2, 5, 5)`` a coarse grid upsampled bicubically, ``shift``)
    and moved by ``z_shift`` axial slices."""

    seed: int
    scale: tuple[float, float]
    shift: tuple[float, float]
    displacement: torch.Tensor
    z_shift: int


def make_subject(seed: int, *, warp_mm: float = 3.0) -> Subject:
    """Subject ``seed``: scaling 0.9-1.1 per axis, shift up to 4 mm, smooth displacements of ``warp_mm`` std,
    axial shift of -3..3 slices."""
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    u = torch.rand(5, generator=g)
    to_norm = 2.0 / FOV_MM
    disp = torch.randn(2, 5, 5, generator=g) * warp_mm * to_norm
    return Subject(int(seed), (0.9 + 0.2 * float(u[0]), 0.9 + 0.2 * float(u[1])),
                   ((float(u[2]) - 0.5) * 8 * to_norm, (float(u[3]) - 0.5) * 8 * to_norm), disp, int(float(u[4]) * 7) - 3)


def warp(x: torch.Tensor, subject: Subject) -> torch.Tensor:
    """Resample ``(1, C, H, W)`` maps through the subject's deformation (bilinear, zeros outside)."""
    h, w = x.shape[-2:]
    theta = torch.tensor([[1.0 / subject.scale[1], 0.0, subject.shift[1]], [0.0, 1.0 / subject.scale[0], subject.shift[0]]])
    grid = F.affine_grid(theta[None], [1, 1, h, w], align_corners=False)
    d = F.interpolate(subject.displacement[None], size=(h, w), mode="bicubic", align_corners=True)[0]
    grid = grid + d.permute(1, 2, 0)[None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def split_subjects(split: str, *, count: int | None = None) -> list[int]:
    """Subject seeds of ``split`` ("train", "val", "test"); splits never share a seed."""
    if split not in SPLIT_SEED_BASE:
        raise MedirError(f"split='{split}' is unknown: use train, val or test")
    n = SPLIT_SUBJECTS[split] if count is None else int(count)
    return [SPLIT_SEED_BASE[split] + k for k in range(n)]


def subject_slices(count: int = 10) -> list[int]:
    """``count`` axial slices evenly spread from the lowest to the highest slice of the brain."""
    lo, hi = brain_slice_range()
    return sorted({int(round(v)) for v in np.linspace(lo, hi - 1, count)})


@dataclass
class PetMrSample:
    """A training tuple, every image ``(1, size, size)``: low-count PET, MR, high-count PET, lesion mask,
    plus the tissue labels and the true activity (for oracle priors and region checks)."""

    low_pet: torch.Tensor
    mr: torch.Tensor
    high_pet: torch.Tensor
    lesion_mask: torch.Tensor
    labels: torch.Tensor
    activity: torch.Tensor


class BrainPetMrDataset(torch.utils.data.Dataset):
    """Simulated PET/MR pairs from the template (MFdiff protocol), split by subject: each subject of ``split``
    gives ``slices`` axial slices spread over the whole brain, each ``rotations`` times at random angles in
    [0, ``max_angle_deg``], with the subject's own lesions; item ``i`` is the same for the same ``seed``.
    High count: ``high_protocol``; low count: ``low_protocol`` times ``dose``."""

    def __init__(self, split: str = "train", *, size: int = 128, rotations: int = 5, max_angle_deg: float = 15.0,
                 seed: int = 0, hot_lesions: int = 1, cold_lesions: int = 1, dose: float = 1.0,
                 high_protocol: str = "mfdiff-high", low_protocol: str = "mfdiff-low",
                 uptake: tuple[float, float, float] = (4.0, 1.0, 0.05), subjects: int | None = None, slices: int = 10):
        self.subjects = [make_subject(k) for k in split_subjects(split, count=subjects)]
        self.slices = subject_slices(slices)
        self.size, self.rotations, self.max_angle_deg, self.seed = size, rotations, max_angle_deg, seed
        self.hot_lesions, self.cold_lesions, self.dose, self.uptake = hot_lesions, cold_lesions, dose, uptake
        self.high_protocol, self.low_protocol = high_protocol, low_protocol

    def __len__(self) -> int:
        return len(self.subjects) * len(self.slices) * self.rotations

    def locate(self, i: int) -> tuple[Subject, int]:
        """The subject and the axial slice of item ``i``."""
        per_subject = len(self.slices) * self.rotations
        return self.subjects[i // per_subject], self.slices[(i % per_subject) // self.rotations]

    def __getitem__(self, i: int) -> PetMrSample:
        from medir.physics.pet import simulate_pet_lowcount

        subject, z = self.locate(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        angle = float(torch.rand(1, generator=g)) * self.max_angle_deg
        lesion_gen = torch.Generator().manual_seed(subject.seed * 1009 + z)  # the subject's lesions, whatever the seed
        s = brain_slice(z, size=self.size, uptake=self.uptake, angle_deg=angle, hot_lesions=self.hot_lesions,
                        cold_lesions=self.cold_lesions, subject=subject, generator=lesion_gen)
        x, mu = s.activity[None], s.mu_map[None]
        high = simulate_pet_lowcount(x, generator=g, protocol=self.high_protocol, mu_map=mu, pixel_size_mm=s.pixel_size_mm)
        low = simulate_pet_lowcount(x, generator=g, protocol=self.low_protocol, dose=self.dose, mu_map=mu,
                                    pixel_size_mm=s.pixel_size_mm)
        return PetMrSample(low[0], s.mr, high[0], s.lesion_mask, s.labels, s.activity)


# --- simple CT / test objects -----------------------------------------------------------------------

def water_disk(size: int, *, radius: float = 0.4, inside: float = 0.0, outside: float = -1000.0) -> torch.Tensor:
    """``(1, 1, size, size)`` disk of ``radius * size`` pixels: water (0 HU) in air (-1000 HU) by default."""
    c = torch.arange(size, dtype=torch.float32) - size / 2 + 0.5
    r = torch.hypot(c[:, None], c[None, :])
    return torch.where(r < radius * size, inside, outside)[None, None]


def shepp_logan(size: int = 128) -> torch.Tensor:
    """scikit-image's modified Shepp-Logan phantom (values 0..1) resized to ``(1, 1, size, size)``."""
    from skimage.data import shepp_logan_phantom

    t = torch.from_numpy(shepp_logan_phantom().astype(np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def shepp_logan_hu(size: int = 128) -> torch.Tensor:
    """Shepp-Logan in HU: value 0 -> -1000 (air), 0.2 (brain) -> 0 HU, i.e. ``HU = 5000 v - 1000``."""
    return 5000.0 * shepp_logan(size) - 1000.0
