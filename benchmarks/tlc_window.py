"""What test-time local pooling (TLC) costs or gains in quality, by pooling window, whole-slice restore.

NAFNet's channel attention pools globally in the paper. medir pools over a window at
inference (1.5 x the training patch by default) so that tiles give the same result as the
whole image. This prints, for each window, the PSNR/SSIM of the shipped CT model on the
held-out quarter-dose slices (same metric policy as benchmarks/ldct_eval.py: window
[-160, 240] HU, data range per image = target max - min) and the tile context it needs.

    python -m medir.data.ldct data/ldct --pairs      # the held-out pairs (once)
    OMP_NUM_THREADS=1 python benchmarks/tlc_window.py [--data data/ldct] [--windows 0 144 256 384]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ldct_eval import load_pairs, score  # benchmarks/ldct_eval.py, beside this script

from medir.engine.inference import restore_image
from medir.engine.modelfile import load_model
from medir.io import Image, ImageMeta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ct-ldct-nafnet")
    p.add_argument("--data", type=Path, default=Path("data/ldct"))
    p.add_argument("--windows", type=int, nargs="+", default=[0, 144, 256, 384], help="0: global pooling (paper)")
    args = p.parse_args()
    test = load_pairs(args.data / "test")
    model, card = load_model(args.model)
    print(f"model {args.model}; held-out slices: {len(test)}; PSNR/SSIM in [-160, 240] HU, data range = target max - min")
    print("| pooling window | tile context (px) | PSNR (dB) | SSIM | PSNR real slice |")
    print("|---|---|---|---|---|")
    for window in args.windows:
        rows = []
        for name, lq, hq in test:
            out = restore_image(Image(lq, ImageMeta(modality="CT", units="HU")), model, card, tile=None,
                                pool_window=window or None, ensemble=False).array
            rows.append({"slice": name, **score(out, hq)})
        real = [r["psnr"] for r in rows if r["slice"].startswith("J2K")]
        label = f"{window} px" if window else "global (paper)"
        print(f"| {label} | {model.tile_context} | {np.mean([r['psnr'] for r in rows]):.2f} | "
              f"{np.mean([r['ssim'] for r in rows]):.4f} | {np.mean(real) if real else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
