"""``medir restore IN... -o OUT``: restore files, folders, DICOMDIRs, DICOM series and volumes with a model.

Outputs mirror the inputs below their common root (``-o`` may name a file when there is one input);
each DICOM series is restored on its own; a rerun skips finished outputs (see ``_records.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medir.commands._common import (
    Ledger, check_device, check_output_folder, check_tiling_args, check_writable, output_path, output_root,
    parse_shard, read_input, run_batch, take_shard,
)
from medir.errors import InputError, MedirError

# Shipped model used when --model is not given, by modality (others: any shipped model declaring it).
DEFAULT_MODELS = {
    "CT": "ct-ldct-nafnet",
    "PT": "pet-lowcount-nafnet",
    "PT+MR": "pet-mr-nafnet",       # PET with --aux MR
    "NM": "nm-bonescan-nafnet",
    "MR": "mr-sr4-edsr",            # 4x super-resolution: the output grid is 4x finer
    "SM": "sm-sr4-edsr",            # 4x super-resolution of 8-bit RGB
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="IN", help="files, folders, DICOMDIR files or DICOM series folders")
    p.add_argument("--example", action="store_true", help="restore the quarter-dose CT example shipped with medir")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (or file, for one input)")
    p.add_argument("--model", help="shipped model name or model folder; default: the shipped model for the modality")
    p.add_argument("--modality", help="override the input's modality (DICOM code: CT, PT, MR, NM, SM, CR, DX, MG, "
                                      "US, XA, OT, ...); needed for NIfTI/PNG/NPY")
    p.add_argument("--allow-modality-mismatch", action="store_true",
                   help="apply the model even to inputs of a modality or value kind (perfusion map, non-HU) "
                        "it was not trained for")
    p.add_argument("--tile", type=int, default=512, help="tile core size in pixels (0: whole slices); bounds memory; the context the network needs is added automatically, so the result does not depend on it")
    p.add_argument("--overlap", type=int, default=32, help="blend band between tiles in pixels (0 to tile-1)")
    p.add_argument("--batch", type=int, default=1, help="tiles or slices per forward pass (memory grows with it; 1 is as fast on a CPU)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--shard", help="i/N: process every N-th input starting at i (split a job across processes)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (of the same inputs)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write an uncertainty map beside the image (NAME_uncertainty, a derived series in DICOM, "
                        "in the image's units): the per-pixel std over the 8 flips/90-degree rotations of the input "
                        "(the image is then their mean, 8x the time), or over --samples draws with an MFdiff model")
    p.add_argument("--ensemble", action="store_true",
                   help="restore as the mean over the 8 flips/90-degree rotations of the input (self-ensemble, "
                        "8x the time), without writing the map; the default of models whose card sets self_ensemble")
    p.add_argument("--no-ensemble", action="store_true",
                   help="one pass, even for a model whose card restores by self-ensemble by default (several times faster)")
    g = p.add_argument_group("PET with MR (guided and MFdiff models)")
    g.add_argument("--aux", metavar="MR", help="the co-registered MR series or volume of the one PET input, on the "
                                               "same grid; default model: the shipped PET+MR model, or --model "
                                               "with a guided or an MFdiff model")
    g.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="ddim (deterministic, default) or "
                                                                               "ddpm (ancestral, the paper's)")
    g.add_argument("--steps", type=int, default=None, help="sampler steps (default: 50 for ddim, 1000 for ddpm)")
    g.add_argument("--samples", type=int, default=None, help="draws averaged per slice (default 1; 4 with "
                                                             "--uncertainty)")


def example_path() -> Path:
    """The quarter-dose CT slice shipped with medir (see medir/samples/README.md for how it was made)."""
    path = Path(__file__).resolve().parent.parent / "samples" / "ldct_example.dcm"
    if not path.is_file():
        raise MedirError(f"the shipped example {path.name} is missing from this installation: reinstall medir")
    return path


class ModelCache:
    """Load each model once per run, whichever input asks for it first."""

    def __init__(self, requested: str | None, device: str):
        self.requested, self.device, self.loaded = requested, device, {}

    def name_for(self, modality: str, what: str) -> str:
        if self.requested:
            return self.requested
        from medir.engine.modelfile import shipped_by_modality

        available = shipped_by_modality()
        name = DEFAULT_MODELS.get(modality) or (available.get(modality) or [None])[0]
        if name is not None:
            return name
        exist = ", ".join(sorted(available)) or "no modality yet"
        if modality == "OT":
            raise InputError(f"{what} does not say its modality: pass --modality (models exist for {exist})")
        raise InputError(f"{what} is {modality}: no model for {modality}; models exist for {exist}: pass --model "
                         f"PATH (train one with `medir train`), or --modality if the file's modality is wrong")

    def get(self, name: str):
        if name not in self.loaded:
            from medir.engine.modelfile import load_model

            self.loaded[name] = load_model(name, device=self.device)
        return self.loaded[name]


def restore_one(item, outs: list[Path], overwrite: bool, models: ModelCache, args) -> None:
    """Restore ``item`` into ``outs[0]`` (with ``--uncertainty``, the 8-fold std map into ``outs[1]``)."""
    from medir.commands._uncertainty import write_uncertainty
    from medir.engine.inference import restore_image, restore_with_uncertainty
    from medir.engine.modelfile import check_intensity, check_modality, check_value_range
    from medir.io import write_image

    image = read_input(item, modality=args.modality)
    modality = image.meta.modality
    name = models.name_for(modality, item.label)
    model, card = models.get(name)
    if not args.allow_modality_mismatch:
        check_modality(card, modality, model=name, what=item.label)
        sources = image.meta.source if image.meta.source_format == "dicom" else None
        check_intensity(card, sources[0] if sources else None, model=name, what=item.label)
        check_value_range(card, image, model=name, what=item.label)
    image.meta.modality = card.modality  # checked (or explicitly allowed) above; the output keeps the input's
    kw = dict(tile=args.tile or None, overlap=args.overlap, batch=args.batch, device=args.device,
              progress=item.label, name=item.label)
    if args.uncertainty:
        restored, std = restore_with_uncertainty(image, model, card, **kw)
    else:
        ensemble = args.ensemble or (card.self_ensemble and not args.no_ensemble)
        restored, std = restore_image(image, model, card, ensemble=ensemble, **kw), None
    how = ", mean of 8 flips/rotations" if args.uncertainty or ensemble else ""
    restored.meta.modality = modality
    write_image(restored, outs[0], force=overwrite, description=f"medir restored ({card.task}{how})", model=name)
    if std is not None:
        std.meta.modality = modality
        write_uncertainty(std, outs[1], force=overwrite, what="8 flips/rotations", model=name)


def uncertainty_path(out: Path) -> Path:
    """``NAME_uncertainty.EXT`` beside ``out`` (``.nii.gz`` kept whole; a series folder gets the suffix)."""
    name = out.name
    for ext in (".nii.gz", *(out.suffixes[-1:] if out.suffix else ())):
        if name.endswith(ext):
            return out.with_name(name[: -len(ext)] + "_uncertainty" + ext)
    return out.with_name(name + "_uncertainty")


def check_pair_args(args: argparse.Namespace) -> None:
    """One-line errors for the --aux options (and --uncertainty / --ensemble), before any work; records which
    diffusion options were given."""
    if args.no_ensemble and (args.ensemble or args.uncertainty):
        raise InputError("--no-ensemble contradicts --ensemble and --uncertainty (both average the 8 flips/rotations):"
                         " give one of them")
    if not args.aux:
        if args.steps is not None or args.samples is not None or args.sampler != "ddim":
            raise InputError("--sampler, --steps and --samples apply to diffusion models with --aux MR")
        return
    if args.ensemble:
        raise InputError("--ensemble applies to models without --aux (MFdiff averages --samples draws; guided "
                         "models: use --uncertainty)")
    args.diffusion_options = [flag for flag, given in (("--sampler", args.sampler != "ddim"),
                                                        ("--steps", args.steps is not None),
                                                        ("--samples", args.samples is not None)) if given]
    if args.samples is None:
        args.samples = 4 if args.uncertainty else 1
    if args.steps is None:
        args.steps = 50 if args.sampler == "ddim" else 1000
    if args.samples < 1 or (args.uncertainty and args.samples < 2):
        raise InputError(f"--samples {args.samples}: give at least {2 if args.uncertainty else 1} "
                         f"({'a std needs two draws' if args.uncertainty else 'one draw'})")
    if not 1 <= args.steps <= 1000:
        raise InputError(f"--steps {args.steps}: choose 1 to 1000 (the diffusion's T)")


class PairModels:
    """The model of an ``--aux`` run: ``--model``, else the shipped default for the image's modality guided by the
    aux's (``DEFAULT_MODELS["PT+MR"]``, else any shipped model declaring both). Loaded once.

    Two kinds: MFdiff (a conditional diffusion model, sampled) and guided networks (a card with
    ``aux_modalities``: one forward pass on ``concat[image, guide]``)."""

    def __init__(self, requested: str | None, device: str):
        self.requested, self.device, self.loaded = requested, device, {}

    def name_for(self, modality: str, aux_modality: str, what: str) -> str:
        if self.requested:
            return self.requested
        from medir.engine.modelfile import shipped_guided

        available = shipped_guided()
        keys = [f"{modality}+{aux_modality}"] if aux_modality != "OT" else \
            sorted(k for k in available if k.startswith(f"{modality}+"))
        for key in keys:
            name = DEFAULT_MODELS.get(key) or (available.get(key) or [None])[0]
            if name is not None:
                return name
        exist = ", ".join(sorted(available)) or "none"
        raise InputError(f"{what} is {modality}: no shipped model restores {modality} guided by "
                         f"{'this aux' if aux_modality == 'OT' else aux_modality} (shipped guided models: {exist}): "
                         "pass --model (an MFdiff model or a guided model), or --modality if it is wrong")

    def get(self, name: str):
        """``(network, card, is_diffusion)``; a model that takes no guide is refused in one line."""
        if name not in self.loaded:
            from medir.engine.modelfile import load_card, load_model
            from medir.methods.mfdiff.modelfile import ARCH as MFDIFF, load_network

            card = load_card(name)
            if card.arch == MFDIFF:
                network, card = load_network(name, device=self.device)
            elif card.aux_modalities:
                network, card = load_model(name, device=self.device)
            else:
                raise InputError(f"model {name} ({card.arch}) takes no guide image: --aux needs an MFdiff model or "
                                 "a guided model (one whose card lists aux_modalities), or drop --aux")
            self.loaded[name] = (network, card, card.arch == MFDIFF)
        return self.loaded[name]


def check_guide_modality(card, modality: str, *, model: str, what: str) -> None:
    """Refuse a guide whose declared modality is not the one the model was trained with (unknown "OT" passes)."""
    expected = card.aux_modalities or ["MR"]  # MFdiff cards written before aux_modalities existed take MR
    if modality not in ("OT", *expected):
        raise InputError(f"the aux {what} is {modality} but model {model} is guided by {'/'.join(expected)}: pass "
                         f"the co-registered {expected[0]}, or --allow-modality-mismatch")


def check_diffusion_options(args: argparse.Namespace, name: str, card, diffusion: bool) -> None:
    """--sampler/--steps/--samples given for a model that is not sampled: a one-line error."""
    if not diffusion and args.diffusion_options:
        raise InputError(f"{', '.join(args.diffusion_options)} apply to diffusion (MFdiff) models, but {name} is a "
                         f"{card.arch} network restored in one pass: drop them")


def restore_pair(item, outs: list[Path], overwrite: bool, models: PairModels, mr_item, args) -> None:
    """PET ``item`` restored with the MR ``mr_item`` (same grid): sampled by MFdiff (mean, and the std of the
    draws with --uncertainty) or one pass of a guided network (with --uncertainty: the std over the 8 flips and
    quarter turns of the input, test-time augmentation); image (+ uncertainty) written."""
    from medir.engine.modelfile import check_modality
    from medir.io import write_image
    from medir.io.image import Image
    from medir.methods.mfdiff.modelfile import check_same_grid

    pet = read_input(item, modality=args.modality)
    mr = read_input(mr_item)
    name = models.name_for(pet.meta.modality, mr.meta.modality, item.label)
    network, card, diffusion = models.get(name)
    check_diffusion_options(args, name, card, diffusion)
    if not args.allow_modality_mismatch:
        check_modality(card, pet.meta.modality, model=name, what=item.label)
        check_guide_modality(card, mr.meta.modality, model=name, what=mr_item.label)
    check_same_grid(pet, mr, pet_name=item.label, mr_name=mr_item.label)
    if pet.meta.channels != 1:
        raise InputError(f"{item.label} has {pet.meta.channels} channels: the PET/MR models restore single-channel PET")
    if diffusion:
        mean, std = _sample_pair(network, pet, mr, args)
        desc = f"medir restored ({card.task}, {args.sampler} {args.steps} steps x {args.samples})"
        how = f"per-pixel std of {args.samples} samples"
    else:
        from medir.engine.guided import restore_guided

        kw = dict(tile=args.tile or None, overlap=args.overlap, batch=args.batch, device=args.device,
                  name=item.label, guide_name=mr_item.label, tta=args.uncertainty)
        restored, spread = restore_guided(pet, mr, network, card, progress=item.label, **kw)
        mean, std = restored.array, (spread.array if spread is not None else None)
        desc = f"medir restored ({card.task}, guided by {'/'.join(card.aux_modalities)})"
        how = "per-pixel std over 8 flips/turns"
    write_image(Image(mean.reshape(pet.array.shape), pet.meta), outs[0], force=overwrite, description=desc, model=name)
    if args.uncertainty:
        write_image(Image(std.reshape(pet.array.shape), pet.meta), outs[1], force=overwrite,
                    description=f"medir uncertainty: {how}", model=name)


def _sample_pair(network, pet, mr, args):
    from medir.methods.mfdiff.modelfile import restore_volume

    return restore_volume(network, pet.slices(), mr.slices(), sampler=args.sampler, steps=args.steps,
                          samples=args.samples, device=args.device, progress=True)


def run_pair(args: argparse.Namespace, found) -> int:
    """``--aux``: one PET input and its MR, restored by an MFdiff model or a guided network."""
    from medir.io import discover

    if len(found.items) != 1:
        raise InputError(f"--aux pairs one PET input with one MR, but {len(found.items)} inputs were found: "
                         "restore one PET series or volume at a time")
    aux = discover([args.aux])
    if len(aux.items) != 1 or aux.items[0].kind == "invalid":
        why = aux.items[0].reason if len(aux.items) == 1 else f"{len(aux.items)} series or files found"
        raise InputError(f"--aux {args.aux}: need exactly one MR series or volume ({why})")
    models = PairModels(args.model, args.device)
    if args.model:
        _, card, diffusion = models.get(args.model)  # a bad --model fails once, before any input is read
        check_diffusion_options(args, args.model, card, diffusion)
    items = found.items
    settings = {"model": args.model or "default", "aux": str(args.aux), "sampler": args.sampler, "steps": args.steps,
                "samples": args.samples, "uncertainty": args.uncertainty, "modality": args.modality,
                "allow_mismatch": args.allow_modality_mismatch, "tile": args.tile, "overlap": args.overlap}

    def plan(item) -> list[Path]:
        out = output_path(item, args.output, items)
        return [out, uncertainty_path(out)] if args.uncertainty else [out]

    report = run_batch(
        found, "restore", force=args.force, plan=plan,
        work=lambda item, outs, overwrite: restore_pair(item, outs, overwrite, models, aux.items[0], args),
        ledger=Ledger(output_root(args.output, items), "restore", settings),
    )
    return report.exit_code("restore")


def run(args: argparse.Namespace) -> int:
    from medir.io import discover

    check_pair_args(args)
    check_tiling_args(tile=args.tile, overlap=args.overlap, batch=args.batch)
    check_device(args.device)
    if args.modality:
        from medir.io.image import normalize_modality

        normalize_modality(args.modality)
    check_writable(args.output, "output")
    inputs = list(args.inputs)
    if args.example:
        inputs.append(str(example_path()))
    if not inputs:
        raise InputError("no inputs given: medir restore IN... -o OUT (or --example)")
    found = discover(inputs)
    found.items = take_shard(found.items, parse_shard(args.shard))
    if not found.items:
        raise InputError("no inputs to restore (empty folder or empty shard): check the paths")
    check_output_folder(args.output, found.items)
    if args.aux:
        return run_pair(args, found)
    models = ModelCache(args.model, args.device)
    if args.model:
        models.get(args.model)  # a bad --model fails once, before any input is read
    items = found.items
    settings = {"model": args.model or "default", "tile": args.tile, "overlap": args.overlap,
                "modality": args.modality, "allow_mismatch": args.allow_modality_mismatch,
                "uncertainty": args.uncertainty, "ensemble": args.ensemble,
                "no_ensemble": args.no_ensemble}

    def plan(item) -> list[Path]:
        out = output_path(item, args.output, items)
        return [out, uncertainty_path(out)] if args.uncertainty else [out]

    report = run_batch(
        found, "restore", force=args.force, plan=plan,
        work=lambda item, outs, overwrite: restore_one(item, outs, overwrite, models, args),
        ledger=Ledger(output_root(args.output, items), "restore", settings),
    )
    return report.exit_code("restore")
