"""``medir simulate TASK IN... -o OUTDIR``: degrade high-quality scans with a physics simulator.

Outputs keep the input's format (a DICOM input gives a derived DICOM series); ``OUTDIR/manifest.jsonl``
gets one line per output: task, parameters, seed, source file name (never patient data).
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import numpy as np

from medir.commands._common import (
    Ledger, Result, check_output_folder, check_writable, output_path, output_root, parse_shard, read_input,
    run_batch, take_shard,
)
from medir.commands._records import RECORDS_DIR
from medir.errors import InputError, MedirError

MANIFEST = "manifest.jsonl"
FLAGS = ("dose", "counts", "speedup", "scale")  # shortcut flags -> task parameters of the same name
PIXEL_PARAM = "pixel_size_mm"
SLICES_PER_BATCH = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", nargs="?", help="simulation task (see --list)")
    p.add_argument("inputs", nargs="*", metavar="IN", help="files, folders or DICOM series folders")
    p.add_argument("-o", "--output", type=Path, help="output folder (or file, for one input)")
    p.add_argument("--list", action="store_true", help="list tasks and their parameters, then exit")
    p.add_argument("--dose", type=float, help="dose fraction (ct-lowdose, pet-lowcount), e.g. 0.25")
    p.add_argument("--counts", type=float, help="total counts per slice (pet-lowcount), e.g. 1e8")
    p.add_argument("--speedup", type=float, help="scan speed-up factor (scinti-rapid), e.g. 2")
    p.add_argument("--scale", type=int, help="downsampling factor 2 or 4 (mri-sr, path-sr)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other task parameter, repeatable (e.g. --param window=hann)")
    p.add_argument("--seed", type=int, default=0, help="base seed; each file's seed derives from it and its name")
    p.add_argument("--modality", help="override the input's modality (CT, PT, MR, NM, SM, ...)")
    p.add_argument("--shard", help="i/N: process every N-th input starting at i (split a job across processes)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (of the same inputs)")


def list_tasks() -> str:
    from medir.physics import TASKS

    lines = []
    for name, spec in TASKS.items():
        lines.append(f"{name}  [{spec.modality}]  {spec.description}")
        lines += [f"    {p.describe()}" for p in spec.params if p.name not in ("mu_map",)]
    return "\n".join(lines)


def parse_value(text: str):
    """CLI text -> bool, None, int, float or str."""
    low = text.strip().lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def collect_params(args: argparse.Namespace, spec) -> dict:
    """Shortcut flags and ``--param`` pairs, checked against the task's parameters and ranges."""
    params = {}
    known = {p.name for p in spec.params}
    for flag in FLAGS:
        value = getattr(args, flag)
        if value is None:
            continue
        if flag not in known:
            raise MedirError(f"--{flag} does not apply to {spec.name}: its parameters are {', '.join(sorted(known))}")
        params[flag] = value
    for pair in args.param:
        if "=" not in pair:
            raise MedirError(f"--param '{pair}' is not NAME=VALUE: write e.g. --param window=hann")
        name, value = pair.split("=", 1)
        params[name.strip()] = parse_value(value)
    spec.resolve(**params)  # unknown names and impossible values fail here, before any file is read
    return params


def file_seed(base: int, name: str) -> int:
    """Per-file seed from the base seed and the file name: independent of order and sharding."""
    return (int(base) * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def simulate_image(image, spec, params: dict, seed: int):
    """Degrade every slice of ``image``; returns ``(new image, resolved params)``."""
    import torch

    from medir.physics import simulate

    stack = image.slices()  # (D, C, H, W)
    params = dict(params)
    if PIXEL_PARAM in {p.name for p in spec.params} and PIXEL_PARAM not in params and image.meta.spacing:
        params[PIXEL_PARAM] = float(image.meta.spacing[-1])
    if spec.channels is not None and stack.shape[1] != spec.channels:
        raise InputError(f"{spec.name} needs {spec.channels}-channel images, this one has {stack.shape[1]}")
    gen = torch.Generator().manual_seed(seed)
    parts = [simulate(spec.name, torch.from_numpy(np.ascontiguousarray(stack[i:i + SLICES_PER_BATCH])), generator=gen, **params)
             for i in range(0, stack.shape[0], SLICES_PER_BATCH)]
    out = torch.cat(parts).numpy()
    scale = stack.shape[-1] / out.shape[-1]
    return image.with_slices(out, scale=1 / scale if scale != 1 else 1), spec.resolve(**params)


def _check_modality(image, spec, item_name: str) -> None:
    if spec.modality != "OT" and image.meta.modality not in (spec.modality, "OT"):
        raise InputError(f"{item_name} is {image.meta.modality} but {spec.name} simulates {spec.modality}: "
                         f"pick the matching task or pass --modality {spec.modality}")


def simulate_one(item, out: Path, overwrite: bool, spec, params: dict, args, root: Path) -> Result:
    from medir.io import write_image

    image = read_input(item, modality=args.modality)
    _check_modality(image, spec, item.label)
    seed = file_seed(args.seed, item.label)
    degraded, resolved = simulate_image(image, spec, params, seed)
    text = f"medir simulate {spec.name} " + " ".join(f"{k}={v}" for k, v in sorted(params.items()))
    write_image(degraded, out, force=overwrite, description=text.strip()[:200])
    line = {"task": spec.name, "params": {k: v for k, v in resolved.items() if k != "mu_map"}, "seed": seed,
            "base_seed": args.seed, "source": item.label, "output": _relative(out, root),
            "shape": list(degraded.array.shape), "medir": __import__("medir").__version__}
    write_manifest(root, [line])
    return Result(extra={"manifest": line})


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.name


def write_manifest(folder: Path, records: list[dict]) -> Path:
    """Merge ``records`` into ``folder/manifest.jsonl`` (one JSON object per line), replacing earlier lines
    for the same output; written atomically after each item, under a lock (shards share the file)."""
    import fcntl

    from medir.engine.atomic import atomic_path

    path = folder / MANIFEST
    (folder / RECORDS_DIR).mkdir(parents=True, exist_ok=True)
    with open(folder / RECORDS_DIR / f"{MANIFEST}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        new_outputs = {r["output"] for r in records}
        kept = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    if line.strip() and json.loads(line).get("output") not in new_outputs:
                        kept.append(line)
                except ValueError:
                    continue  # a line damaged outside medir: dropped rather than kept broken
        lines = kept + [json.dumps(r, sort_keys=True) for r in records]
        with atomic_path(path, force=True) as tmp:
            Path(tmp).write_text("\n".join(lines) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    from medir.io import discover
    from medir.physics import TASKS

    if args.list:
        print(list_tasks())
        return 0
    if not args.task:
        raise MedirError("no task given: medir simulate TASK IN... -o OUTDIR (see medir simulate --list)")
    if args.task not in TASKS:
        raise MedirError(f"unknown task '{args.task}': use one of {', '.join(TASKS)} (medir simulate --list)")
    spec = TASKS[args.task]
    params = collect_params(args, spec)
    if args.output is None:
        raise MedirError("no output given: pass -o OUTDIR")
    if args.modality:
        from medir.io.image import normalize_modality

        normalize_modality(args.modality)
    check_writable(args.output, "output")
    if not args.inputs:
        raise InputError("no inputs to simulate: give files, folders or DICOM series")
    found = discover(args.inputs)
    found.items = take_shard(found.items, parse_shard(args.shard))
    if not found.items:
        raise InputError("no inputs to simulate (empty folder or empty shard): check the paths")
    check_output_folder(args.output, found.items)
    items, root = found.items, output_root(args.output, found.items)
    settings = {"task": spec.name, "params": params, "seed": args.seed, "modality": args.modality}
    report = run_batch(
        found, f"simulate {spec.name}", force=args.force,
        plan=lambda item: [output_path(item, args.output, items)],
        work=lambda item, outs, overwrite: simulate_one(item, outs[0], overwrite, spec, params, args, root),
        ledger=Ledger(root, "simulate", settings),
    )
    if report.done:
        print(f"simulated {report.done} input(s) into {args.output} (manifest: {root / MANIFEST})")
    return report.exit_code("simulate")
