"""Phantoms: a brain PET/MR phantom from real anatomy, and simple CT test objects.

Brain phantom (MFdiff-style, section 4.2, with nilearn's MNI ICBM152 2009a template instead of
BrainWeb): the template's T1 and grey/white-matter probability maps (197 x 233 x 189 at 1 mm,
shipped inside nilearn, no download) give

- an FDG-like activity map ``grey * g + white * w + csf * c`` (default 4 : 1 : 0.05), CSF being the
  filled brain outline minus grey and white matter;
- an attenuation map at 511 keV (soft tissue 0.0096 / mm, skull 0.0151 / mm); the template is
  brain-extracted, so skull and scalp are synthetic rings around the brain (absent from the MR);
- the registered T1 as the MR;
- optional hot and cold lesions in PET only (absent from the MR);
- the tissue label map: 0 background (air, scalp, skull), 1 CSF, 2 grey, 3 white, 4 lesion.

Axial slices are padded to 256 x 256 mm, resampled to ``size`` pixels and rotated by random angles
(0-15 degrees as in the paper). Train, validation and test use disjoint slice ranges with a gap.
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
                cold_contrast: float = 0.25, partial_volume: bool = True,
                generator: torch.Generator | None = None) -> BrainSlice:
    """Phantom slice ``z`` of the template. ``uptake`` is grey : white : CSF activity; lesion activity is
    ``contrast x`` the local activity (hot > 1, cold < 1); lesion centres lie in grey or white matter.
    ``partial_volume=False`` makes activity constant within each label (exact region purity)."""
    depth = load_template()["t1"].shape[2]
    if not 0 <= z < depth:
        raise MedirError(f"slice {z} is outside the template: use 0 to {depth - 1}")
    maps = tissue_maps(z)
    g, w, c = (_axial(maps[k], size) for k in ("grey", "white", "csf"))
    probs = torch.cat([1.0 - (g + w + c).clamp(max=1.0), c, g, w], dim=1)
    labels = probs.argmax(dim=1, keepdim=True).float()
    if partial_volume:
        activity = uptake[0] * g + uptake[1] * w + uptake[2] * c
    else:
        activity = torch.tensor([0.0, uptake[2], uptake[0], uptake[1]])[labels.long()]
    mu = MU_TISSUE_511 * _axial(maps["head"], size) + (MU_BONE_511 - MU_TISSUE_511) * _axial(maps["skull"], size)
    mr = _axial(maps["t1"], size)
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
    """Simulated PET/MR pairs from the template (MFdiff protocol): each slice of ``split`` appears
    ``rotations`` times at random angles in [0, ``max_angle_deg``]; item ``i`` is the same for the same
    ``seed``. High count: ``high_protocol``; low count: ``low_protocol`` times ``dose``."""

    def __init__(self, split: str = "train", *, size: int = 128, rotations: int = 5, max_angle_deg: float = 15.0,
                 seed: int = 0, hot_lesions: int = 1, cold_lesions: int = 1, dose: float = 1.0,
                 high_protocol: str = "mfdiff-high", low_protocol: str = "mfdiff-low",
                 uptake: tuple[float, float, float] = (4.0, 1.0, 0.05)):
        self.slices = split_slices(split)
        self.size, self.rotations, self.max_angle_deg, self.seed = size, rotations, max_angle_deg, seed
        self.hot_lesions, self.cold_lesions, self.dose, self.uptake = hot_lesions, cold_lesions, dose, uptake
        self.high_protocol, self.low_protocol = high_protocol, low_protocol

    def __len__(self) -> int:
        return len(self.slices) * self.rotations

    def __getitem__(self, i: int) -> PetMrSample:
        from medir.physics.pet import simulate_pet_lowcount

        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        angle = float(torch.rand(1, generator=g)) * self.max_angle_deg
        s = brain_slice(self.slices[i // self.rotations], size=self.size, uptake=self.uptake, angle_deg=angle,
                        hot_lesions=self.hot_lesions, cold_lesions=self.cold_lesions, generator=g)
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
