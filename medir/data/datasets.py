"""Training and validation pairs: paired folders, or high-quality images degraded on the fly.

Images are read once with :func:`medir.io.read_image` (PNG/TIFF, NPY/NPZ, NIfTI, DICOM) and
kept in memory as slices ``(C, H, W)`` in physical units; volumes give one slice each.

A training sample is a pure function of ``(seed, index)``: which slice, where the patch
lies, the augmentation and the simulated noise all come from generators seeded with
both. The trainer asks for index ``step * batch * world + rank * batch + j``, so a run
resumed at any step sees exactly the batches an uninterrupted run would have seen.

A sample is ``{"lq": (C, p, p), "hq": (C, p*s, p*s), "offset": (), "span": ()}``: images in
network space (``preset.to_network`` with the per-slice ``(offset, span)`` taken from the
low-quality slice, as inference does), ``s`` the super-resolution factor.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medir.data.augment import random_dihedral
from medir.data.intensity import IntensityPreset, get_preset
from medir.data.lesions import LesionAugment, check_lesion_units
from medir.errors import ConfigError, MedirError

Simulate = Callable[..., torch.Tensor]
PIXEL_PARAM = "pixel_size_mm"
# Tasks whose degradation depends on the whole slice (CT noise depends on the attenuation of the whole body):
# ``simulate_on: patch`` simulates the slice and crops for them, so a patch has the noise of its slice.
WHOLE_SLICE_TASKS = frozenset({"ct-lowdose"})


def task_takes_pixel_size(task: str | None) -> bool:
    """Whether the registered simulation ``task`` has a pixel-size parameter (stand-in tasks do not)."""
    from medir.physics import TASKS

    return task in TASKS and any(p.name == PIXEL_PARAM for p in TASKS[task].params)


@dataclass
class Slices:
    """In-memory slices in physical units; ``lq`` is None for simulated data."""

    hq: list[np.ndarray]
    lq: list[np.ndarray] | None
    names: list[str]
    pixel_mm: list[float | None]


def image_files(root: Path) -> list[Path]:
    """Every readable image file under ``root`` (recursive, hidden files skipped), sorted."""
    from medir.io import format_of

    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not any(s.startswith(".") for s in p.parts)]
    return [p for p in files if format_of(p) is not None]


def read_manifest(path: Path, columns: tuple[str, ...]) -> list[tuple[Path, ...]]:
    """Rows of a CSV manifest; paths are relative to the manifest's folder."""
    if not path.is_file():
        raise ConfigError(f"manifest {path} does not exist: give a CSV file with columns {', '.join(columns)}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"manifest {path} lacks columns {missing}: it needs {', '.join(columns)}")
        rows = [tuple(path.parent / row[c].strip() for c in columns) for row in reader]
    if not rows:
        raise ConfigError(f"manifest {path} has no rows: list at least one image")
    return rows


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """``root/lq/NAME`` with ``root/hq/NAME``; every file must have its partner."""
    lq_dir, hq_dir = root / "lq", root / "hq"
    for d in (lq_dir, hq_dir):
        if not d.is_dir():
            raise ConfigError(f"paired data folder {d} does not exist: put inputs in {lq_dir} and targets in {hq_dir}")
    lq = {p.relative_to(lq_dir): p for p in image_files(lq_dir)}
    hq = {p.relative_to(hq_dir): p for p in image_files(hq_dir)}
    unmatched = sorted(set(lq) ^ set(hq))
    if unmatched:
        raise ConfigError(f"{len(unmatched)} files in {root} have no partner in lq/ or hq/ (first: {unmatched[0]})")
    if not lq:
        raise ConfigError(f"no images in {lq_dir}: add PNG, TIFF, NPY, NIfTI or DICOM files")
    return [(lq[k], hq[k]) for k in sorted(lq)]


def read_slices(path: Path, rescale: tuple[float, float] | None) -> np.ndarray:
    """All slices of one file, ``(D, C, H, W)`` float32, with ``physical = slope * stored + intercept``."""
    return read_stack(path, rescale)[0]


# Transfer syntaxes that may be lossy: JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000 (any),
# JPIP, HTJ2K (any), MPEG/HEVC video. A file that says LossyImageCompression "00" is trusted.
LOSSY_SYNTAXES = frozenset(
    ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91",
     "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203"] + [f"1.2.840.10008.1.2.4.{k}" for k in range(100, 109)]
)


def lossy_reason(image) -> str | None:
    """Why a DICOM image is lossy-compressed (LossyImageCompression "01" or a lossy transfer syntax), else None."""
    if image.meta.source_format != "dicom":
        return None
    for ds in image.meta.source or []:
        flag = str(ds.get("LossyImageCompression", "")).strip()
        if flag == "01":
            ratio = ds.get("LossyImageCompressionRatio")
            return "LossyImageCompression is 01" + (f" (ratio {ratio})" if ratio else "")
        syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
        if syntax in LOSSY_SYNTAXES and flag != "00":
            return f"its transfer syntax {syntax} is lossy"
    return None


def read_stack(path: Path, rescale: tuple[float, float] | None, *, target: bool = False,
               allow_lossy: bool = False) -> tuple[np.ndarray, float | None]:
    """``read_slices`` plus the in-plane pixel size in mm (None when the file does not say).

    A ``target`` read refuses lossy-compressed DICOM (a lossy target teaches a model to erase texture)
    unless ``allow_lossy``.
    """
    from medir.io import read_image

    try:
        image = read_image(path)
    except MedirError as err:
        raise ConfigError(f"cannot read training image {path}: {err}") from err
    reason = lossy_reason(image) if target and not allow_lossy else None
    if reason:
        raise ConfigError(f"{path.name} is lossy-compressed ({reason}): use a lossless copy as the target, "
                          "or set allow_lossy: true in the data config")
    stack = image.slices().astype(np.float32)
    if rescale is not None:
        stack = stack * np.float32(rescale[0]) + np.float32(rescale[1])
    return stack, (float(image.meta.spacing[-1]) if image.meta.spacing else None)


def load_slices(files: list[tuple[Path, ...]], *, rescale=None, min_std: float = 0.0,
                allow_lossy: bool = False) -> Slices:
    """Read (hq,) or (lq, hq) file tuples; drop slices whose high-quality std is below ``min_std``.
    Lossy-compressed DICOM targets are refused unless ``allow_lossy``."""
    hq, lq, names, pixel_mm = [], [], [], []
    for paths in files:
        read = [read_stack(p, rescale, target=k == len(paths) - 1, allow_lossy=allow_lossy)
                for k, p in enumerate(paths)]
        stacks = [stack for stack, _ in read]
        if len(stacks) == 2 and stacks[0].shape[0] != stacks[1].shape[0]:
            raise ConfigError(f"{paths[0]} has {stacks[0].shape[0]} slices but {paths[1]} has {stacks[1].shape[0]}")
        for d in range(stacks[-1].shape[0]):
            if float(stacks[-1][d].std()) < min_std:
                continue
            hq.append(stacks[-1][d])
            if len(stacks) == 2:
                lq.append(stacks[0][d])
            names.append(f"{paths[-1].name}[{d}]")
            pixel_mm.append(read[-1][1])
    if not hq:
        raise ConfigError(f"no usable slices in {len(files)} files (all flat below min_std={min_std})")
    return Slices(hq=hq, lq=lq if len(files[0]) == 2 else None, names=names, pixel_mm=pixel_mm)


def sample_rngs(seed: int, index: int) -> tuple[np.random.Generator, torch.Generator]:
    """Independent numpy (geometry) and torch (noise) generators for one sample."""
    a, b = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint64)
    return np.random.default_rng(int(a)), torch.Generator().manual_seed(int(b) & ((1 << 63) - 1))


class PairSource:
    """Full-size (lq, hq) slices in physical units: stored pairs, or simulated from ``hq``."""

    def __init__(self, slices: Slices, *, task: str | None = None, params: dict | None = None,
                 simulate: Simulate | None = None, cache_draws: int = 0, seed: int = 0):
        self.slices, self.task, self.params = slices, task, dict(params or {})
        self.simulate = simulate
        self.cache_draws, self.seed, self._cache = int(cache_draws), int(seed), {}
        self.takes_pixel_size = task_takes_pixel_size(task) and PIXEL_PARAM not in self.params
        if slices.lq is None and (task is None or simulate is None):
            raise ConfigError("simulated data needs 'task' (e.g. ct-lowdose) and a simulator")
        self.scale = self._scale()
        self.channels = int(slices.hq[0].shape[0])

    def __len__(self) -> int:
        return len(self.slices.hq)

    def degrade(self, hq: np.ndarray, generator: torch.Generator, pixel_mm: float | None = None) -> np.ndarray:
        """(C, H, W) physical -> simulated low-quality (C, H/s, W/s) physical.

        Tasks whose physics depends on the pixel size (CT, PET) get the file's own, unless the config fixes it.
        """
        x = torch.from_numpy(np.ascontiguousarray(hq))[None]
        params = dict(self.params)
        if self.takes_pixel_size and pixel_mm is not None:
            params[PIXEL_PARAM] = pixel_mm
        try:
            y = self.simulate(self.task, x, generator=generator, **params)
        except TypeError as err:
            raise ConfigError(f"bad simulation parameters for task '{self.task}': {err}") from err
        return y[0].detach().to(torch.float32).numpy()

    def pair(self, i: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        hq = self.slices.hq[i]
        lq = self.slices.lq[i] if self.slices.lq is not None else self.degrade(hq, generator, self.slices.pixel_mm[i])
        return lq, hq

    def cached_pair(self, i: int, draw: int) -> tuple[np.ndarray, np.ndarray]:
        """Simulated draw ``draw`` of slice ``i`` (``draw < cache_draws``), simulated once with a generator seeded
        by ``(seed, i, draw)`` and kept: expensive simulators (CT) then cost nothing per training step."""
        key = (i, draw)
        if key not in self._cache:
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, i, draw]).generate_state(1)[0]))
            self._cache[key] = self.degrade(self.slices.hq[i], gen, self.slices.pixel_mm[i])
        return self._cache[key], self.slices.hq[i]

    def _scale(self) -> int:
        """Super-resolution factor hq/lq, the same for every slice (checked on stored pairs, probed on one simulation)."""
        lqs = self.slices.lq or [self.degrade(self.slices.hq[0], torch.Generator().manual_seed(0), self.slices.pixel_mm[0])]
        scales = set()
        for i, (lq, hq) in enumerate(zip(lqs, self.slices.hq)):
            s = hq.shape[-1] // max(1, lq.shape[-1])
            if lq.shape[0] != hq.shape[0] or hq.shape[-2:] != (lq.shape[-2] * s, lq.shape[-1] * s):
                raise ConfigError(f"{self.slices.names[i]}: low-quality {lq.shape} and high-quality {hq.shape} "
                                  "do not differ by one integer scale factor")
            scales.add(s)
        if len(scales) > 1:
            raise ConfigError(f"pairs have different scale factors {sorted(scales)}: use one factor per dataset")
        return scales.pop()


class PatchDataset(torch.utils.data.Dataset):
    """Random training patches; item ``index`` depends only on ``(seed, index)``."""

    def __init__(self, source: PairSource, preset: IntensityPreset, *, patch_size: int, augment: bool,
                 seed: int, simulate_on: str = "slice", lesions: LesionAugment | None = None):
        self.source, self.preset, self.patch, self.augment, self.seed = source, preset, patch_size, augment, seed
        if lesions is not None and lesions.prob > 0:
            check_lesion_units(preset.units, scale=source.scale)
        self.lesions = lesions
        self.simulate_on = simulate_on if source.slices.lq is None else "slice"
        if source.task in WHOLE_SLICE_TASKS:
            self.simulate_on = "slice"  # a patch alone has the wrong body around it: simulate the slice, then crop
        smallest = min(min(h.shape[-2:]) for h in source.slices.hq)
        if patch_size * source.scale > smallest:
            raise ConfigError(f"patch_size {patch_size} (x{source.scale}) is larger than the smallest image "
                              f"({smallest} pixels): lower data.*.patch_size")

    @property
    def channels(self) -> int:
        return self.source.channels

    @property
    def scale(self) -> int:
        return self.source.scale

    def __len__(self) -> int:
        return 2**62  # indices are drawn by the trainer's sampler, never exhausted

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng, gen = sample_rngs(self.seed, int(index))
        i = int(rng.integers(len(self.source)))
        if self.simulate_on == "patch":
            hq = random_crop(self.source.slices.hq[i], self.patch * self.source.scale, rng)
            lq = self.source.degrade(hq, gen, self.source.slices.pixel_mm[i])
            scale_from = lq
        else:
            cached = self.source.slices.lq is None and self.source.cache_draws > 0
            lq, hq = self.source.cached_pair(i, int(rng.integers(self.source.cache_draws))) if cached \
                else self.source.pair(i, gen)
            scale_from = lq
            lq, hq = paired_crop(lq, hq, self.patch, self.source.scale, rng)
        if self.lesions is not None:
            lq, hq = self.lesions(lq, hq, rng)
        sample = {"lq": lq, "hq": hq}
        if self.augment:
            sample = random_dihedral(sample, rng)
        return to_network(sample, self.preset, self.preset.scale_for(scale_from))


class StepSampler(torch.utils.data.Sampler):
    """Endless sample indices for one rank: batch ``b`` holds ``b * B * world + rank * B + [0, B)``.

    Starting at batch ``start`` reproduces exactly what an uninterrupted run draws from there on.
    """

    def __init__(self, batch_size: int, *, rank: int = 0, world_size: int = 1, start: int = 0):
        self.batch_size, self.rank, self.world_size, self.start = batch_size, rank, world_size, start

    def __iter__(self):
        b = self.start
        while True:
            first = (b * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)
            b += 1


class ValDataset(torch.utils.data.Dataset):
    """A fixed validation set: whole slices (or centre crops), simulated once with fixed seeds."""

    def __init__(self, source: PairSource, preset: IntensityPreset, *, patch_size: int | None,
                 max_items: int | None, seed: int):
        n = len(source)
        keep = np.unique(np.linspace(0, n - 1, min(n, max_items or n)).round().astype(int))
        self.channels, self.scale = source.channels, source.scale
        self.items = []
        for i in keep:
            lq, hq = source.pair(int(i), sample_rngs(seed, int(i))[1])
            offset_span = preset.scale_for(lq)
            if patch_size is not None:
                lq, hq = centre_crop(lq, hq, patch_size, source.scale)
            self.items.append(to_network({"lq": lq, "hq": hq}, preset, offset_span))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def random_crop(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(x.shape[-2] - size + 1))
    x0 = int(rng.integers(x.shape[-1] - size + 1))
    return x[..., y : y + size, x0 : x0 + size]


def paired_crop(lq: np.ndarray, hq: np.ndarray, size: int, scale: int, rng: np.random.Generator):
    """A ``size`` patch of ``lq`` and the matching ``size * scale`` patch of ``hq``."""
    y = int(rng.integers(lq.shape[-2] - size + 1))
    x = int(rng.integers(lq.shape[-1] - size + 1))
    s = scale
    return lq[..., y : y + size, x : x + size], hq[..., y * s : (y + size) * s, x * s : (x + size) * s]


def centre_crop(lq: np.ndarray, hq: np.ndarray, size: int, scale: int):
    size = min(size, *lq.shape[-2:])
    y, x = (lq.shape[-2] - size) // 2, (lq.shape[-1] - size) // 2
    s = scale
    return lq[..., y : y + size, x : x + size], hq[..., y * s : (y + size) * s, x * s : (x + size) * s]


def to_network(sample: dict[str, np.ndarray], preset: IntensityPreset, offset_span) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.ascontiguousarray(preset.to_network(v, offset_span))) for k, v in sample.items()}
    out["offset"] = torch.tensor(float(offset_span[0]), dtype=torch.float32)
    out["span"] = torch.tensor(float(offset_span[1]), dtype=torch.float32)
    return out


def from_network(y: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Network-space ``(B, C, H, W)`` back to physical units with each sample's ``(offset, span)``."""
    return y * batch["span"].view(-1, 1, 1, 1).to(y) + batch["offset"].view(-1, 1, 1, 1).to(y)


def dataset_files(cfg, name: str) -> list[tuple[Path, ...]]:
    """(lq, hq) tuples for paired data, (hq,) tuples for simulated data, from ``root`` or ``manifest``."""
    if (cfg.root is None) == (cfg.manifest is None):
        raise ConfigError(f"{name}: give exactly one of 'root' (a folder) or 'manifest' (a CSV file)")
    columns = ("lq", "hq") if cfg.kind == "paired" else ("hq",)
    if cfg.manifest is not None:
        rows = read_manifest(Path(cfg.manifest), columns)
        missing = [p for row in rows for p in row if not p.exists()]
        if missing:
            raise ConfigError(f"{name}: {len(missing)} files in {cfg.manifest} do not exist (first: {missing[0]})")
        return rows
    files = []
    for root in roots(cfg, name):
        if cfg.kind == "paired":
            files += find_pairs(root)
            continue
        found = [(p,) for p in image_files(root)]
        if not found:
            raise ConfigError(f"no images in {root}: add PNG, TIFF, NPY, NIfTI or DICOM high-quality images")
        files += found
    return files


def roots(cfg, name: str) -> list[Path]:
    """The folder(s) ``cfg.root`` names, each checked to exist; a folder listed twice is refused (its images would
    count double)."""
    listed = [cfg.root] if isinstance(cfg.root, str) else list(cfg.root or [])
    out = [Path(r) for r in listed]
    for root in out:
        if not root.is_dir():
            raise ConfigError(f"{name}.root {root} is not a folder: check the path in the config")
    resolved = [r.resolve() for r in out]
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"{name}.root lists a folder twice: give each folder once")
    return out


def build_source(cfg, name: str, *, simulate: Simulate | None = None) -> PairSource:
    """Read the files a :class:`medir.engine.config.DatasetConfig` names into a :class:`PairSource`."""
    if cfg.kind == "simulated" and simulate is None:
        from medir.physics import simulate
    if cfg.kind == "simulated" and not cfg.task:
        raise ConfigError(f"{name}.task is missing: simulated data needs a task such as ct-lowdose")
    slices = load_slices(dataset_files(cfg, name), rescale=cfg.rescale, min_std=cfg.min_std,
                         allow_lossy=getattr(cfg, "allow_lossy", False))
    return PairSource(slices, task=cfg.task if cfg.kind == "simulated" else None, params=cfg.params,
                      simulate=simulate, cache_draws=getattr(cfg, "cache_draws", 0), seed=cfg.seed)


def build_train_set(cfg, *, seed: int, simulate: Simulate | None = None) -> torch.utils.data.Dataset:
    """Training samples of any kind; every kind exposes ``channels`` and ``scale``."""
    if cfg.kind == "allinone":
        from medir.data.allinone import build_allinone_set

        return build_allinone_set(cfg, seed=seed, train=True)
    if cfg.kind == "labelled":
        from medir.data.labelled import build_labelled_train_set

        return build_labelled_train_set(cfg, seed=seed)
    if cfg.kind == "guided":
        from medir.data.guided import GuidedPatchDataset

        return GuidedPatchDataset(cfg, seed=seed)
    source = build_source(cfg, "data.train", simulate=simulate)
    preset = get_preset(cfg.preset)
    lesions = None
    if cfg.lesion_prob != 0:  # a negative or > 1 value is refused by LesionAugment
        lesions = LesionAugment(prob=cfg.lesion_prob, contrast=tuple(cfg.lesion_contrast),
                                radius=tuple(cfg.lesion_radius), tissue=preset.eval_window or (-np.inf, np.inf))
    return PatchDataset(source, preset, patch_size=cfg.patch_size, augment=cfg.augment, seed=seed,
                        simulate_on=cfg.simulate_on, lesions=lesions)


def build_val_set(cfg, *, simulate: Simulate | None = None) -> torch.utils.data.Dataset:
    if cfg.kind == "allinone":
        from medir.data.allinone import build_allinone_set

        return build_allinone_set(cfg, seed=cfg.seed, train=False)
    if cfg.kind == "labelled":
        from medir.data.labelled import build_labelled_val_set

        return build_labelled_val_set(cfg)
    if cfg.kind == "guided":
        from medir.data.guided import GuidedValDataset

        return GuidedValDataset(cfg)
    source = build_source(cfg, "data.val", simulate=simulate)
    return ValDataset(source, get_preset(cfg.preset), patch_size=cfg.patch_size, max_items=cfg.max_items,
                      seed=cfg.seed)
