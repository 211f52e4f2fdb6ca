"""Paired data with an auxiliary guide image: ``root/lq/NAME``, ``root/hq/NAME`` and ``root/<aux>/NAME``.

For restoration guided by a co-registered image of another modality (low-count PET guided by its MR): the
network input is ``concat[lq, aux]`` along channels and the target ``hq``. ``lq`` and ``hq`` are mapped to the
network with the data preset and the per-slice ``(offset, span)`` of ``lq`` (as for plain pairs); the guide is
mapped with its own preset and its own per-slice scale (:data:`AUX_PRESETS`), so its units never leak into
the PET scaling. Patches, crops and D4 augmentation move all three images together.

A sample is ``{"lq": (C + A, p, p), "hq": (C, p, p), "offset": (), "span": ()}``; the datasets expose
``channels`` (C, restored channels), ``in_channels`` (C + A), ``scale`` (1), ``aux_preset`` and ``aux_modalities``.
"""

from __future__ import annotations

import numpy as np
import torch

from medir.data.augment import random_dihedral
from medir.data.datasets import centre_crop, image_files, paired_crop, read_slices, roots, sample_rngs, to_network
from medir.data.intensity import IntensityPreset, get_preset
from medir.errors import ConfigError

# Guide presets: per-image scaling, since MR intensities have no absolute unit.
AUX_PRESETS = {
    "mr": IntensityPreset("mr-guide", "MR", "a.u.", mode="per_image", percentile=99.5),
}


def aux_preset(name: str) -> IntensityPreset:
    if name not in AUX_PRESETS:
        raise ConfigError(f"unknown guide '{name}': use one of {', '.join(AUX_PRESETS)} (the folder beside lq/ hq/)")
    return AUX_PRESETS[name]


def load_guided(root, aux: str, name: str) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``(lq, hq, aux)`` slices ``(C, H, W)`` in physical units from ``root/{lq,hq,<aux>}/NAME``; all three must exist."""
    from pathlib import Path

    root = Path(root)
    dirs = [root / k for k in ("lq", "hq", aux)]
    for d in dirs:
        if not d.is_dir():
            raise ConfigError(f"{name}: guided data folder {d} does not exist: put inputs in lq/, targets in hq/ "
                              f"and the guide images in {aux}/ under {root}, with the same file names")
    files = [{p.relative_to(d): p for p in image_files(d)} for d in dirs]
    keys = set(files[0]) & set(files[1]) & set(files[2])
    unmatched = sorted((set(files[0]) | set(files[1]) | set(files[2])) - keys)
    if unmatched:
        raise ConfigError(f"{name}: {len(unmatched)} files under {root} lack a partner in lq/, hq/ or {aux}/ "
                          f"(first: {unmatched[0]})")
    if not keys:
        raise ConfigError(f"{name}: no images in {dirs[0]}: add NPY, NIfTI, PNG or DICOM files")
    out: tuple[list, list, list] = ([], [], [])
    for key in sorted(keys):
        stacks = [read_slices(f[key], None) for f in files]
        if len({s.shape for s in stacks}) != 1:
            raise ConfigError(f"{name}: {key} has shapes {[s.shape for s in stacks]} in lq/, hq/, {aux}/: "
                              "guided pairs must share one grid")
        for d in range(stacks[0].shape[0]):
            for lst, s in zip(out, stacks):
                lst.append(s[d])
    return out


def guided_sample(lq: np.ndarray, hq: np.ndarray, aux: np.ndarray, preset: IntensityPreset,
                  guide: IntensityPreset) -> dict[str, torch.Tensor]:
    """Network-space sample: ``lq``/``hq`` with the scale of ``lq``, ``aux`` with its own, stacked after ``lq``."""
    out = to_network({"lq": lq, "hq": hq}, preset, preset.scale_for(lq))
    g = torch.from_numpy(np.ascontiguousarray(guide.to_network(aux, guide.scale_for(aux))))
    out["lq"] = torch.cat([out["lq"], g])
    return out


class _Guided:
    def __init__(self, cfg, name: str):
        if not cfg.root:
            raise ConfigError(f"{name}.root is missing: guided data needs a folder with lq/, hq/ and the guide")
        self.aux_name = str(cfg.params.get("aux", "mr"))
        self.guide = aux_preset(self.aux_name)
        self.preset = get_preset(cfg.preset)
        self.lq, self.hq, self.aux = [], [], []
        for root in roots(cfg, name):
            for pooled, part in zip((self.lq, self.hq, self.aux), load_guided(root, self.aux_name, name)):
                pooled += part
        self.channels = int(self.hq[0].shape[0])
        self.in_channels = self.channels + int(self.aux[0].shape[0])
        self.scale = 1
        self.aux_modalities = [self.guide.modality]
        self.aux_preset = self.guide


class GuidedPatchDataset(_Guided, torch.utils.data.Dataset):
    """Random training patches; item ``index`` depends only on ``(seed, index)``."""

    def __init__(self, cfg, *, seed: int):
        super().__init__(cfg, "data.train")
        self.patch, self.augment, self.seed = int(cfg.patch_size), bool(cfg.augment), int(seed)
        smallest = min(min(h.shape[-2:]) for h in self.hq)
        if self.patch > smallest:
            raise ConfigError(f"patch_size {self.patch} is larger than the smallest image ({smallest} pixels)")

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, _ = sample_rngs(self.seed, int(index))
        i = int(rng.integers(len(self.hq)))
        lq, aux, hq = self.lq[i], self.aux[i], self.hq[i]
        stacked, hq = paired_crop(np.concatenate([lq, aux]), hq, self.patch, 1, rng)
        sample = {"lq": stacked, "hq": hq}
        if self.augment:
            sample = random_dihedral(sample, rng)
        c = lq.shape[0]
        # the scales come from the whole slices, as at inference
        s = self.preset.scale_for(lq)
        out = to_network({"lq": sample["lq"][:c], "hq": sample["hq"]}, self.preset, s)
        g = self.guide.to_network(sample["lq"][c:], self.guide.scale_for(aux))
        out["lq"] = torch.cat([out["lq"], torch.from_numpy(np.ascontiguousarray(g))])
        return out


class GuidedValDataset(_Guided, torch.utils.data.Dataset):
    """Whole slices (or centre crops), evenly spaced up to ``max_items``."""

    def __init__(self, cfg):
        super().__init__(cfg, "data.val")
        n = len(self.hq)
        keep = np.unique(np.linspace(0, n - 1, min(n, cfg.max_items or n)).round().astype(int))
        self.items = []
        for i in keep:
            item = guided_sample(self.lq[i], self.hq[i], self.aux[i], self.preset, self.guide)
            if cfg.patch_size is not None:
                item["lq"], item["hq"] = (torch.from_numpy(np.ascontiguousarray(a))
                                          for a in centre_crop(item["lq"].numpy(), item["hq"].numpy(), cfg.patch_size, 1))
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]
