"""All-in-one restoration data (AMIR / DiffCode): MRI 4x super-resolution, low-dose CT and low-count PET in one
loader, each task in its own intensity convention, balanced within every batch, with task labels.

Tasks (the id is the label the router and the codebook bank use):

- 0 ``mri-sr``: T1 of the brain phantom (:func:`medir.data.phantoms.brain_slice`, 0..1) times ``MR_LEVEL`` = 3000
  a.u. (a 12-bit scanner's range); LQ = bicubic 4x down then bicubic up to the same size (the all-in-one models
  restore at the output size); network scale: the ``mr`` preset, [0, 4095] -> [0, 1].
- 1 ``ct-lowdose``: pseudo-CT head slices (:func:`medir.data.ldct.pseudo_ct_head`) at ``240 / size`` mm pixels,
  LQ = quarter dose by ``ct-lowdose`` noise insertion; the ``ct`` preset, [-1024, 3071] HU -> [0, 1].
- 2 ``pet-lowcount``: the brain PET/MR phantom's activity (grey matter 4, taken as SUV); HQ nearly noise-free
  (MFdiff high-count protocol), LQ with about 4e5 counts in the slice (1/12 dose), both reconstructed by FBP for
  speed; the ``pet`` preset, [0, 20] -> [0, 1].

Splits: MRI and PET by phantom subject (:func:`medir.data.phantoms.split_subjects`), CT by the pseudo-CT slice
lists of :mod:`medir.data.ldct` (train z 40-99, test z >= 110). Pairs are simulated once when the set is built
(``per_task`` per task) and cropped on the fly; item ``i`` is task ``i mod 3``, so the trainer's consecutive batch
indices hold the tasks in equal shares (exactly when the batch size is a multiple of 3).
"""

from __future__ import annotations

import numpy as np
import torch

from medir.data.augment import random_dihedral
from medir.data.datasets import centre_crop, paired_crop, sample_rngs, to_network
from medir.data.intensity import IntensityPreset, get_preset
from medir.errors import ConfigError

TASKS = ("mri-sr", "ct-lowdose", "pet-lowcount")
PRESETS = ("mr", "ct", "pet")
MODALITIES = ("MR", "CT", "PT")
MR_LEVEL = 3000.0
PET_FULL_COUNTS = 5e6  # counts in one 2-D slice at full dose (REFERENCE: 1e5-1e6 per slice after 4-12x reduction)
PET_DOSE = 1.0 / 12.0


def task_preset(task: int) -> IntensityPreset:
    """The intensity convention of task id ``task``."""
    return get_preset(PRESETS[task])


def _inner_slices(n: int) -> list[int]:
    """``n`` axial slices spread over the brain, leaving out its first and last slice (nearly empty)."""
    from medir.data.phantoms import subject_slices

    return subject_slices(max(1, n) + 2)[1:-1]


def _mri_pairs(split: str, count: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from medir.data.phantoms import brain_slice, make_subject, split_subjects
    from medir.physics.mri import simulate_mri_sr

    subjects = [make_subject(s) for s in split_subjects(split)]
    zs = _inner_slices(-(-count // len(subjects)))
    out = []
    for k in range(count):
        g = torch.Generator().manual_seed(seed * 7 + k)
        angle = float(torch.rand(1, generator=g)) * 15.0
        s = brain_slice(zs[(k // len(subjects)) % len(zs)], size=size, subject=subjects[k % len(subjects)],
                        angle_deg=angle)
        hq = s.mr[None] * MR_LEVEL
        lq = simulate_mri_sr(hq, scale=4, upsample=True, generator=g)
        out.append((lq[0, 0].numpy(), hq[0, 0].numpy()))
    return out


def _ct_pairs(split: str, count: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from medir.data.ldct import PSEUDO_SPLIT, pseudo_ct_head
    from medir.physics import simulate

    pixel = 240.0 / size
    zs = [z for z, p in PSEUDO_SPLIT["test" if split != "train" else "train"] if p == 1.0]
    out = []
    for k in range(count):
        hu = pseudo_ct_head(zs[k % len(zs)], seed=seed + k // len(zs), pixel_mm=pixel)
        hq = np.full((size, size), -1000.0, np.float32)
        h, w = min(size, hu.shape[0]), min(size, hu.shape[1])
        y0, x0 = (hu.shape[0] - h) // 2, (hu.shape[1] - w) // 2
        hq[(size - h) // 2 : (size - h) // 2 + h, (size - w) // 2 : (size - w) // 2 + w] = hu[y0 : y0 + h, x0 : x0 + w]
        lq = simulate("ct-lowdose", torch.from_numpy(hq)[None, None], seed=seed * 1009 + k, dose=0.25,
                      pixel_size_mm=pixel)
        out.append((lq[0, 0].numpy(), hq))
    return out


def _pet_pairs(split: str, count: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Brain phantom activity (subjects of ``split``, with their lesions): HQ through the MFdiff high-count
    protocol (1e10 counts), LQ at ``PET_FULL_COUNTS`` x ``PET_DOSE`` counts in the slice (about 4e5, DiffCode's 12x
    dose reduction), both reconstructed by attenuation-corrected FBP (OSEM costs about 40 s per slice on a CPU)."""
    from medir.data.phantoms import brain_slice, make_subject, split_subjects
    from medir.physics.pet import simulate_pet_lowcount

    subjects = [make_subject(s) for s in split_subjects(split)]
    zs = _inner_slices(-(-count // len(subjects)))
    out = []
    for k in range(count):
        subject, z = subjects[k % len(subjects)], zs[(k // len(subjects)) % len(zs)]
        g = torch.Generator().manual_seed(seed * 7 + k)
        angle = float(torch.rand(1, generator=g)) * 15.0
        s = brain_slice(z, size=size, subject=subject, angle_deg=angle, hot_lesions=1, cold_lesions=1,
                        generator=torch.Generator().manual_seed(subject.seed * 1009 + z))
        x, mu = s.activity[None], s.mu_map[None]
        common = dict(generator=g, mu_map=mu, pixel_size_mm=s.pixel_size_mm, recon="fbp")
        low = simulate_pet_lowcount(x, protocol="mfdiff-low", counts=PET_FULL_COUNTS, dose=PET_DOSE, **common)
        high = simulate_pet_lowcount(x, protocol="mfdiff-high", **common)
        out.append((low[0, 0].numpy(), high[0, 0].numpy()))
    return out


SIMULATORS = (_mri_pairs, _ct_pairs, _pet_pairs)


def simulate_pairs(split: str, *, per_task: int, size: int, seed: int = 0) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """``per_task`` (LQ, HQ) pairs in physical units, (size, size) each, for every task (index = task id)."""
    if per_task < 1 or size < 32:
        raise ConfigError(f"all-in-one data needs per_task >= 1 and size >= 32 (got {per_task}, {size})")
    return [make(split, per_task, size, seed) for make in SIMULATORS]


class AllInOneDataset(torch.utils.data.Dataset):
    """Random training patches; item ``i`` is task ``i mod 3`` and depends only on ``(seed, i)``.

    Items: ``lq``, ``hq`` (1, p, p) in the task's network scale, ``task`` (int64), ``offset``, ``span`` (that scale).
    """

    channels, scale = 1, 1

    def __init__(self, pairs: list[list[tuple[np.ndarray, np.ndarray]]], *, patch_size: int, seed: int = 0,
                 augment: bool = True):
        smallest = min(p[1].shape[-1] for task in pairs for p in task)
        if patch_size > smallest:
            raise ConfigError(f"patch_size {patch_size} is larger than the images ({smallest}): lower it")
        self.pairs, self.patch, self.seed, self.augment = pairs, patch_size, seed, augment

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, _ = sample_rngs(self.seed, int(index))
        task = int(index) % len(self.pairs)
        lq, hq = self.pairs[task][int(rng.integers(len(self.pairs[task])))]
        lq, hq = paired_crop(lq[None], hq[None], self.patch, 1, rng)
        sample = random_dihedral({"lq": lq, "hq": hq}, rng) if self.augment else {"lq": lq, "hq": hq}
        preset = task_preset(task)
        return {**to_network(sample, preset, preset.scale_for(lq)), "task": torch.tensor(task)}


class AllInOneEval(torch.utils.data.Dataset):
    """Fixed evaluation items (whole images, or centre crops of ``patch_size``), all tasks, task-major order."""

    channels, scale = 1, 1

    def __init__(self, pairs: list[list[tuple[np.ndarray, np.ndarray]]], *, patch_size: int | None = None):
        self.items = []
        for task, task_pairs in enumerate(pairs):
            preset = task_preset(task)
            for lq, hq in task_pairs:
                if patch_size is not None:
                    lq, hq = centre_crop(lq[None], hq[None], patch_size, 1)
                else:
                    lq, hq = lq[None], hq[None]
                item = to_network({"lq": lq, "hq": hq}, preset, preset.scale_for(lq))
                self.items.append({**item, "task": torch.tensor(task)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def build_allinone_set(cfg, *, seed: int, train: bool) -> torch.utils.data.Dataset:
    """The all-in-one set of a ``kind: allinone`` dataset config; ``params``: ``per_task``, ``size``, ``split``."""
    params = dict(cfg.params)
    unknown = set(params) - {"per_task", "size", "split"}
    if unknown:
        raise ConfigError(f"data params {sorted(unknown)} are unknown for kind allinone: use per_task, size, split")
    split = params.get("split", "train" if train else "test")
    pairs = simulate_pairs(split, per_task=int(params.get("per_task", 8)), size=int(params.get("size", 128)),
                           seed=cfg.seed if not train else seed)
    if train:
        return AllInOneDataset(pairs, patch_size=cfg.patch_size, seed=seed, augment=cfg.augment)
    return AllInOneEval(pairs, patch_size=cfg.patch_size)
