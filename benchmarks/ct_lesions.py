"""Does a CT model keep small low-contrast lesions? Contrast recovery and false hot spots on the benchmark's CT cases.

The cases are those of ``medir benchmark ct`` (full settings by default: 128 x 128 central windows of pseudo-CT head
slices at 1 mm, ct-lowdose noise at 1/20 dose; ``--per-kind`` lesion-free and as many lesion cases, each lesion a
+30 HU disk of 3-6 mm in brain tissue), scored as the benchmark scores them (:mod:`medir.benchmark.scoring`):
contrast recovery CR = (mean lesion - mean 3-pixel ring) / (the same on the reference), 1 keeps the lesion, 0
erases it; false hot spots per lesion-free image; PSNR / SSIM in [-160, 240] HU, data range 400.

    OMP_NUM_THREADS=1 python benchmarks/ct_lesions.py --model ct-ldct-nafnet [--model runs/X/model_best] [--bm3d]

Each ``--model`` (a shipped name or a model folder) is run as ``medir restore`` runs it (its card's self-ensemble
default; ``--no-ensemble`` for one pass). ``--bm3d`` adds BM3D with its sigma tuned per image against the reference
(its tuning is not timed, as in ``medir benchmark``).
"""

from __future__ import annotations

import argparse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], help="shipped model name or model folder (repeatable)")
    p.add_argument("--per-kind", type=int, default=10, help="lesion-free cases and lesion cases (10 each)")
    p.add_argument("--size", type=int, default=128, help="case side in pixels (1 mm)")
    p.add_argument("--seed", type=int, default=1, help="the benchmark's test seed (its --seed + 1)")
    p.add_argument("--bm3d", action="store_true", help="add BM3D tuned per image (about 10 s per case)")
    p.add_argument("--no-ensemble", action="store_true", help="one pass instead of the card's default")
    args = p.parse_args()
    if not args.model and not args.bm3d:
        p.error("give at least one --model, or --bm3d")

    import torch

    from medir.benchmark.contenders import Contender, baseline_contender, input_contender, model_file_restorer
    from medir.benchmark.scoring import run_contender, summarize
    from medir.benchmark.suites import SUITES, test_set

    torch.set_grad_enabled(False)
    suite = SUITES["ct"]
    cases = test_set("ct", per_kind=args.per_kind, size=args.size, seed=args.seed)
    contenders = [input_contender()]
    ensemble = False if args.no_ensemble else None
    contenders += [Contender(name, name, "model", model_file_restorer(name, suite, ensemble=ensemble))
                   for name in args.model]
    if args.bm3d:
        contenders.append(baseline_contender("bm3d", suite))

    print(f"{len(cases)} cases ({args.per_kind} lesion-free, {args.per_kind} with +30 HU lesions), "
          f"{args.size} x {args.size} at 1 mm, 1/20 dose; PSNR/SSIM in [-160, 240] HU (data range 400)\n")
    print("| method | PSNR (dB) | SSIM | lesion CR | false hot spots / image | s / case (restore only) |")
    print("|---|---|---|---|---|---|")
    for contender in contenders:
        mean = {k: v[0] for k, v in summarize(run_contender(contender, cases, suite).rows).items()}
        print(f"| {contender.label} | {mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['cr']:.2f} | "
              f"{mean['hot_spots']:.1f} | {mean['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
