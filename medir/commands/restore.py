"""``medir restore IN... -o OUT``: restore files, folders, DICOM series and volumes with a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from medir.commands._common import check_item, output_path, parse_shard, run_batch, take_shard
from medir.errors import InputError, MedirError

# Shipped model used when --model is not given, by modality.
DEFAULT_MODELS = {"CT": "ct-ldct-nafnet"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="IN", help="files, folders or DICOM series folders")
    p.add_argument("--example", action="store_true", help="restore the quarter-dose CT example shipped with medir")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder (or file, for one input)")
    p.add_argument("--model", help="shipped model name or model folder; default: the shipped model for the modality")
    p.add_argument("--modality", help="override the input's modality (CT, PT, MR, NM, SM); needed for NIfTI/PNG/NPY")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (0: whole slices); bounds memory")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--batch", type=int, default=4, help="tiles or slices per forward pass")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--shard", help="i/N: process every N-th input starting at i (split a job across processes)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")


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

    def for_modality(self, modality: str):
        name = self.requested or DEFAULT_MODELS.get(modality)
        if name is None:
            raise InputError(
                f"no shipped model restores modality {modality} yet: pass --model PATH "
                f"(train one with `medir train`), or --modality if the file's modality is wrong"
            )
        if name not in self.loaded:
            from medir.engine.modelfile import load_model

            self.loaded[name] = (name, *load_model(name, device=self.device))
        return self.loaded[name]


def restore_one(item, out: Path, models: ModelCache, args) -> None:
    from medir.engine.inference import restore_image
    from medir.io import read_image, write_image

    check_item(item, [out], force=args.force)
    image = read_image(item.path, modality=args.modality)
    name, model, card = models.for_modality(image.meta.modality)
    tile = args.tile or None
    restored = restore_image(
        image, model, card, tile=tile, overlap=args.overlap, batch=args.batch,
        device=args.device, progress=True, name=item.path.name,
    )
    write_image(restored, out, force=args.force, description=f"medir restored ({card.task})", model=name)


def run(args: argparse.Namespace) -> int:
    from medir.io import collect_inputs

    inputs = list(args.inputs)
    if args.example:
        inputs.append(str(example_path()))
    items = take_shard(collect_inputs(inputs), parse_shard(args.shard))
    if not items:
        raise InputError("no inputs to restore (empty folder or empty shard): check the paths")
    models = ModelCache(args.model, args.device)
    if args.model:
        models.for_modality("OT")  # a bad --model fails once, before any input is read
    report, _ = run_batch(
        items, "restore", lambda item: restore_one(item, output_path(item, args.output, len(items)), models, args)
    )
    if report.done:
        print(f"restored {report.done} of {report.total} input(s) into {args.output}")
    return report.exit_code("restore")
