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
DEFAULT_MODELS = {"CT": "ct-ldct-nafnet"}


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
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (0: whole slices); bounds memory")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (8 to tile-1)")
    p.add_argument("--batch", type=int, default=4, help="tiles or slices per forward pass")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--shard", help="i/N: process every N-th input starting at i (split a job across processes)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (of the same inputs)")


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


def restore_one(item, out: Path, overwrite: bool, models: ModelCache, args) -> None:
    from medir.engine.inference import restore_image
    from medir.engine.modelfile import check_intensity, check_modality
    from medir.io import write_image

    image = read_input(item, modality=args.modality)
    modality = image.meta.modality
    name = models.name_for(modality, item.label)
    model, card = models.get(name)
    if not args.allow_modality_mismatch:
        check_modality(card, modality, model=name, what=item.label)
        sources = image.meta.source if image.meta.source_format == "dicom" else None
        check_intensity(card, sources[0] if sources else None, model=name, what=item.label)
    image.meta.modality = card.modality  # checked (or explicitly allowed) above; the output keeps the input's
    restored = restore_image(
        image, model, card, tile=args.tile or None, overlap=args.overlap, batch=args.batch,
        device=args.device, progress=True, name=item.label,
    )
    restored.meta.modality = modality
    write_image(restored, out, force=overwrite, description=f"medir restored ({card.task})", model=name)


def run(args: argparse.Namespace) -> int:
    from medir.io import discover

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
    models = ModelCache(args.model, args.device)
    if args.model:
        models.get(args.model)  # a bad --model fails once, before any input is read
    items = found.items
    settings = {"model": args.model or "default", "tile": args.tile, "overlap": args.overlap,
                "modality": args.modality, "allow_mismatch": args.allow_modality_mismatch}
    report = run_batch(
        found, "restore", force=args.force,
        plan=lambda item: [output_path(item, args.output, items)],
        work=lambda item, outs, overwrite: restore_one(item, outs[0], overwrite, models, args),
        ledger=Ledger(output_root(args.output, items), "restore", settings),
    )
    return report.exit_code("restore")
