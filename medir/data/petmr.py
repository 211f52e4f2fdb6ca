"""Offline brain PET/MR pairs for the shipped low-count PET models (``pet-lowcount-*`` and ``pet-mr-*``).

Everything comes from the brain phantom (:mod:`medir.data.phantoms`: the MNI ICBM152 template shipped with
nilearn, hard tissue labels, FDG-like uptake grey : white : CSF = 4 : 1 : 0.05, one hot and one cold PET-only
lesion per slice, subjects = random smooth warps of the template, split by subject) and the emission simulator
(:func:`medir.physics.pet.simulate_pet_lowcount`, MFdiff's protocol, docs/physics_calibration_emission.md):

- target (``hq``): ``mfdiff-high``, 7.9e7 counts per slice, 2.5 mm PSF, OSEM 15 x 10;
- input (``lq``): ``mfdiff-low``, 4 mm PSF, OSEM 10 x 14, at 2.25e5-3e5 counts per slice (calibrated to MFdiff's
  input, 21.13 dB / NMSE 0.176) times a factor, log-uniform in ``TRAIN_COUNT_SCALE`` for train and val (so
  the models meet a range of count levels), exactly 1 for the held-out test set (MFdiff's protocol);
- the co-registered T1 MR of the same slice (``mr``), without the lesions (MR does not see them).

Images are 128 x 128 at 2 mm (256 mm field of view; ``--size 64``: the same items on 64 x 64 pixels of 4 mm, the
usual grid of whole-body PET), rotated 0-15 degrees; values in the phantom's activity
units (a.u.; grey matter 4). Split by subject: train = the first 8 of the 16 ``train`` subjects (12 slices each over
the whole brain; the generation is slow on a shared CPU), val = the 2 ``val`` subjects
(model selection / monitoring), test = the 2 ``test`` subjects (held out, ``TEST_SLICES`` slices each spread over
the whole brain).

    python -m medir.data.petmr data/pet      # data/pet/{train,val,test}/{lq,hq,mr}/NAME.npy
    python -m medir.data.petmr data/pet4mm --size 64
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from medir.data.phantoms import FOV_MM, brain_slice, make_subject, split_subjects, subject_slices
from medir.errors import MedirError

SIZE = 128     # pixels over the 256 mm field of view: 2 mm (``--size 64``: 4 mm, as whole-body PET)
TRAIN_COUNT_SCALE = (0.5, 4.0)   # x mfdiff-low counts, log-uniform (1.1e5 to 1.2e6 counts per slice)
SPLITS = {  # split -> (axial slices per subject, rotations per slice, count factor range, subjects)
    "train": (12, 1, TRAIN_COUNT_SCALE, 8),   # the first 8 of the phantom's 16 train subjects (CPU budget)
    "val": (12, 1, TRAIN_COUNT_SCALE, 2),
    "test": (16, 1, (1.0, 1.0), 2),
}
SEEDS = {"train": 0, "val": 1, "test": 2}


def split_items(split: str) -> list[tuple[int, int, int]]:
    """``(subject seed, axial slice, rotation index)`` of every item of ``split``."""
    n_slices, rotations, _, subjects = SPLITS[split]
    return [(k, z, r) for k in split_subjects(split, count=subjects) for z in subject_slices(n_slices)
            for r in range(rotations)]


CHUNK = 8  # items simulated together (batched OSEM is about twice as fast per item)


def chunk_phantoms(items: list[tuple[int, int, int]], *, split: str, chunk_index: int, size: int = SIZE):
    """The phantom slices of a chunk (true activity, lesion masks, MR), its generator (ready for the noise draws)
    and its count factor; cheap (no simulation), so evaluations can recover the lesion masks of stored items."""
    g = torch.Generator().manual_seed(SEEDS[split] * 1_000_003 + chunk_index)
    lo, hi = SPLITS[split][2]
    factor = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * float(torch.rand(1, generator=g)))
    slices = []
    for subject_seed, z, _ in items:
        angle = float(torch.rand(1, generator=g)) * 15.0
        lesion_gen = torch.Generator().manual_seed(subject_seed * 1009 + z)  # the subject's lesions at this slice
        slices.append(brain_slice(z, size=size, angle_deg=angle, hot_lesions=1, cold_lesions=1,
                                  subject=make_subject(subject_seed), generator=lesion_gen))
    return slices, g, factor


def lesion_masks(split: str, size: int = SIZE) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Item name -> (hot, cold) lesion masks ``(size, size)`` bool of every item of ``split`` (PET-only lesions:
    hot = twice the local uptake, cold = a quarter; a mask may be empty when the rotation or the slice loses it)."""
    items, out = split_items(split), {}
    for c in range(0, len(items), CHUNK):
        chunk = items[c:c + CHUNK]
        for it, s in zip(chunk, chunk_phantoms(chunk, split=split, chunk_index=c // CHUNK, size=size)[0]):
            lesion = (s.lesion_mask[0] > 0.5).numpy()
            hot = lesion & (s.activity[0].numpy() >= 1.5)  # hot: 8 (grey) or 2 (white); cold: 1 or 0.25
            out[item_name(*it)] = (hot, lesion & ~hot)
    return out


def simulate_chunk(items: list[tuple[int, int, int]], *, split: str, chunk_index: int,
                   size: int = SIZE) -> list[dict[str, np.ndarray]]:
    """Items ``{"lq", "hq", "mr"}``, each ``(1, size, size)`` float32; a pure function of the arguments.

    Each item has its own rotation and its own counts (uniform in mfdiff-low's range); the count factor
    (log-uniform in the split's range) is shared by the chunk.
    """
    from medir.physics.pet import simulate_pet_lowcount

    slices, g, factor = chunk_phantoms(items, split=split, chunk_index=chunk_index, size=size)
    x = torch.stack([s.activity for s in slices])
    mu = torch.stack([s.mu_map for s in slices])
    pixel = slices[0].pixel_size_mm
    high = simulate_pet_lowcount(x, generator=g, protocol="mfdiff-high", mu_map=mu, pixel_size_mm=pixel)
    low = simulate_pet_lowcount(x, generator=g, protocol="mfdiff-low", dose=factor, mu_map=mu, pixel_size_mm=pixel)
    return [{"lq": low[k].numpy(), "hq": high[k].numpy(), "mr": s.mr.numpy()} for k, s in enumerate(slices)]


def item_name(subject_seed: int, z: int, rotation: int) -> str:
    return f"s{subject_seed:05d}_z{z:03d}_r{rotation}.npy"


def write_split(root: Path, split: str, *, force: bool = False, size: int = SIZE) -> int:
    """Write every missing chunk of ``split`` under ``root/split/{lq,hq,mr}/``; return how many items were written."""
    from medir.engine.atomic import atomic_write_bytes

    out = root / split
    for k in ("lq", "hq", "mr"):
        (out / k).mkdir(parents=True, exist_ok=True)
    items = split_items(split)
    written = 0
    for c in range(0, len(items), CHUNK):
        chunk = items[c:c + CHUNK]
        names = [item_name(*it) for it in chunk]
        if not force and all((out / k / n).exists() for n in names for k in ("lq", "hq", "mr")):
            continue
        for name, item in zip(names, simulate_chunk(chunk, split=split, chunk_index=c // CHUNK, size=size)):
            for k, arr in item.items():
                atomic_write_bytes(out / k / name, _npy_bytes(arr.astype(np.float32)), force=True)
            written += 1
    return written


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def load_split(root: Path, split: str) -> dict[str, np.ndarray]:
    """``{"lq", "hq", "mr"}`` stacks ``(N, 1, H, W)`` and ``"names"`` of ``root/split`` (sorted by name)."""
    d = Path(root) / split
    names = sorted(p.name for p in (d / "hq").glob("*.npy")) if (d / "hq").is_dir() else []
    if not names:
        raise MedirError(f"no PET/MR pairs in {d}: generate them with python -m medir.data.petmr {root}")
    out = {k: np.stack([np.load(d / k / n) for n in names]) for k in ("lq", "hq", "mr")}
    out["names"] = np.array(names)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m medir.data.petmr", description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="output folder, e.g. data/pet")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    p.add_argument("--force", action="store_true", help="rewrite existing items")
    p.add_argument("--size", type=int, default=SIZE,
                   help=f"pixels over the {FOV_MM} mm field of view (default {SIZE}: 2 mm; 64: 4 mm)")
    args = p.parse_args(argv)
    if not 32 <= args.size <= 512:
        p.error(f"--size {args.size} is outside 32-512 pixels ({FOV_MM / 512:g}-{FOV_MM / 32:g} mm)")
    for split in args.splits:
        n = write_split(args.out, split, force=args.force, size=args.size)
        print(f"{split}: {n} written, {len(split_items(split))} in all under {args.out / split}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
