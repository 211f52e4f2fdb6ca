"""``medir benchmark [SUITE] [--quick] -o OUT``: train or load every method of a suite, score them all on the same
test images with the same metrics, and write ``OUT/report.md``, ``OUT/report.html``, ``OUT/results.json`` and
``OUT/figures/``. See docs/benchmark.md."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from medir.errors import InputError, MedirError

SUITE_CHOICES = ("all", "ct", "pet")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", nargs="?", default="all", help="ct (low-dose CT), pet (low-count PET with MR) or all")
    p.add_argument("-o", "--output", required=True, type=Path, help="report folder (created; must be empty or new)")
    p.add_argument("--quick", action="store_true",
                   help="tiny presets, few steps, 64 x 64 images: a smoke test in minutes, not the methods' quality")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated images and of training")
    p.add_argument("--y-channel", action="store_true",
                   help="score RGB images on their BT.601 luma (RAT's convention; labelled in the report)")
    p.add_argument("--no-perceptual", dest="perceptual", action="store_false",
                   help="leave out the FID and LPIPS columns (on by default; the report names the feature network: "
                        "without --feature-net a random-init VGG16, not standard FID/LPIPS)")
    p.add_argument("--feature-net", help="local weights of the FID/LPIPS feature network (ImageNet VGG16, "
                                         ".safetensors or .pth); see docs/perceptual.md")
    p.add_argument("--keep-work", action="store_true", help="keep the training runs and pairs in OUT/work")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    # Sizes below the presets, for tests and experiments: hidden from --help.
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--images", type=int, help=argparse.SUPPRESS)
    p.add_argument("--train-images", type=int, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--methods", help=argparse.SUPPRESS)


def settings_from(args):
    from medir.benchmark.runner import FULL, QUICK

    s = QUICK if args.quick else FULL
    s = replace(s, seed=args.seed, y_channel=args.y_channel, perceptual=args.perceptual, feature_net=args.feature_net)
    if args.steps is not None:
        if args.steps < 2:
            raise InputError(f"--steps {args.steps}: give at least 2 training steps")
        s = replace(s, steps=args.steps, lrformer_steps=args.steps, diffcode_steps=max(4, args.steps),
                    mfdiff_steps=args.steps,
                    mfdiff_sampler_steps=min(s.mfdiff_sampler_steps, args.steps))
    if args.images is not None:
        if args.images < 1:
            raise InputError(f"--images {args.images}: give at least 1 test image of each kind")
        s = replace(s, test_per_kind=args.images)
    if args.train_images is not None:
        if args.train_images < 1:
            raise InputError(f"--train-images {args.train_images}: give at least 1")
        s = replace(s, train_images=args.train_images, diffcode_per_task=max(1, args.train_images))
    if args.size is not None:
        if args.size < 32 or args.size % 16:
            raise InputError(f"--size {args.size}: give a multiple of 16, at least 32")
        s = replace(s, size=args.size)
    if args.methods:
        s = replace(s, methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()))
    return s


def check_args(args) -> list[str]:
    """The suites to run; every argument checked before any work."""
    from medir.benchmark.suites import SUITES
    from medir.commands._common import check_writable

    if args.suite not in SUITE_CHOICES:
        raise InputError(f"unknown suite '{args.suite}': use one of {', '.join(SUITE_CHOICES)}")
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    if args.feature_net and not args.perceptual:
        raise InputError("--feature-net is only used for the FID/LPIPS columns: drop --no-perceptual or --feature-net")
    if args.feature_net and not Path(args.feature_net).exists():
        raise InputError(f"--feature-net {args.feature_net} does not exist: give the local weights' path")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: give 0 (default) or a positive number")
    out = args.output
    check_writable(out, "-o")
    if out.exists() and not out.is_dir():
        raise MedirError(f"-o {out} is a file: give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise MedirError(f"-o {out} is not empty: pass --force to replace it, or choose a new folder")
    if args.methods:
        known = {m for name in suites for m in SUITES[name].methods}
        unknown = sorted({m.strip() for m in args.methods.split(",")} - known - {""})
        if unknown:
            raise InputError(f"--methods: unknown method(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return suites


def _meta(args, settings, argv_text: str) -> dict:
    import torch

    import medir

    return {"command": argv_text, "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "medir": medir.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "CPU threads used by torch": torch.get_num_threads(), "mode": "quick" if settings.quick else "full",
            "seed": settings.seed}


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _load(before: float | None) -> dict:
    """CPU time of this process and the machine's load, so wall-clock seconds can be read in context."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    after = _loadavg()
    load = "unknown" if before is None or after is None else f"{before:.1f} at start, {after:.1f} at the end"
    return {"CPU time of this run, user + sys (s)": f"{usage.ru_utime + usage.ru_stime:.0f}",
            "CPU cores": os.cpu_count(), "load average (1 min)": load}


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from medir.benchmark.report import blocks, results_json, to_html, to_markdown
    from medir.benchmark.runner import run_benchmark, stage_count
    from medir.engine.atomic import atomic_dir, atomic_write_text

    suites = check_args(args)
    settings = settings_from(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    argv_text = f"medir benchmark {args.suite}{' --quick' if args.quick else ''} -o {args.output}"
    start, load_before = time.perf_counter(), _loadavg()
    out = args.output
    replace_existing = args.force or (out.is_dir() and not any(out.iterdir()))
    with atomic_dir(out, force=replace_existing) as tmp:
        (tmp / "figures").mkdir()
        # Not below the hidden temporary folder: medir's data readers skip hidden paths.
        work = Path(tempfile.mkdtemp(prefix="medir-benchmark-"))
        bar = tqdm(total=stage_count(suites, settings), desc="benchmark", unit="stage", dynamic_ncols=True)
        try:
            results = run_benchmark(suites, settings, work=work, figures=tmp / "figures", bar=bar)
            if args.keep_work:
                shutil.copytree(work, tmp / "work")
        finally:
            bar.close()
            shutil.rmtree(work, ignore_errors=True)
        meta = {**_meta(args, settings, argv_text), "wall time (s)": f"{time.perf_counter() - start:.0f}",
                **_load(load_before)}
        items = blocks(results, settings, meta=meta)
        atomic_write_text(tmp / "report.md", to_markdown(items))
        atomic_write_text(tmp / "report.html", to_html(items, tmp))
        atomic_write_text(tmp / "results.json", results_json(results, settings, meta=meta))
    print(f"report written to {out / 'report.md'} and {out / 'report.html'} ({time.perf_counter() - start:.0f} s)")
    return 0
