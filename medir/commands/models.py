"""``medir models [--arch]``: shipped models, or architectures with their size."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", action="store_true", help="list architectures with parameters and MACs at 256x256")


def run(args: argparse.Namespace) -> int:
    if args.arch:
        from medir.models import describe_architectures

        print(f"{'architecture':<24} {'params':>12} {'GMACs@256':>10}")
        for name, params, macs in describe_architectures():
            print(f"{name:<24} {params:>12,} {macs / 1e9:>10.2f}")
        return 0
    from medir.engine.modelfile import load_card, shipped_models

    shipped = shipped_models()
    if not shipped:
        print("no shipped models yet: train one with `medir train CONFIG` and pass its folder to --model")
        return 0
    print(f"{'name':<24} {'task':<16} {'modalities':<10} {'arch':<12} metrics")
    for name, path in shipped.items():
        card = load_card(path)
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in card.metrics.items())
        print(f"{name:<24} {card.task:<16} {','.join(card.modalities):<10} {card.arch:<12} {metrics}")
    return 0
