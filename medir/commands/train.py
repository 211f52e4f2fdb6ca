"""``medir train CONFIG [--resume] [--force] [key=value ...]``: train a model from a YAML config.

Data-parallel: ``torchrun --nproc_per_node=N -m medir.cli train CONFIG`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override config fields by dotted path, e.g. optim.lr=1e-4 train.out_dir=runs/x")
    p.add_argument("--resume", action="store_true", help="continue the run in train.out_dir from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="delete the run already in train.out_dir and start over")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medir.commands._common import check_device, check_writable
    from medir.engine.config import load_config
    from medir.engine.train import train
    from medir.errors import ConfigError

    if args.resume and args.force:
        raise ConfigError("--resume and --force contradict each other: pass one of them")
    config = load_config(args.config, args.overrides)
    check_writable(Path(config.train.out_dir), "train.out_dir")  # before any data is read
    if config.train.device != "auto":
        check_device(str(config.train.device))
    if config.method.name == "diffcode":  # three stages, each a run of the same loop
        from medir.methods.diffcode import train_stages as train
    out = train(config, resume=args.resume, force=args.force)
    model = out / "model"
    if model.is_dir():
        print(f"model written to {model} (log: {out / 'log.csv'}, curves: {out / 'curves.png'})")
    else:
        print(f"stopped at train.stop_after={config.train.stop_after}; continue with --resume (run folder: {out})")
    return 0
