"""Quarter-dose CT on held-out slices: low-dose input vs classical denoisers vs a medir model.

Data: ``python -m medir.data.ldct data/ldct --pairs`` (test = pydicom's J2K_pixelrep_mismatch.dcm
and MNI pseudo-CT slices z = 110..142, never seen in training).
Metrics: PSNR / SSIM in HU clipped to the window [-160, 240], data range per image = target max - min
after clipping (AMIR/DiffCode convention); RMSE in HU inside the window.
Classical baselines get their strength tuned on training pairs (never on the test slices):
BM3D with sigma = k x the wavelet-MAD noise estimate, non-local means with h = k x sigma.

    OMP_NUM_THREADS=1 python benchmarks/ldct_eval.py --model medir/shipped/ct-ldct-nafnet [--data data/ldct]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from medir.baselines import BM3D, NonLocalMeans, estimate_noise_std
from medir.engine.inference import restore_image
from medir.engine.modelfile import load_model
from medir.io import Image, ImageMeta, read_image
from medir.metrics import psnr, rmse, ssim

WINDOW = (-160.0, 240.0)


def load_pairs(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    names = sorted(p.name for p in (root / "lq").iterdir())
    return [(n, read_image(root / "lq" / n).array, read_image(root / "hq" / n).array) for n in names]


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(pred, target, data_range="target", window=WINDOW),
        "ssim": ssim(pred, target, data_range="target", window=WINDOW),
        "rmse": rmse(pred, target, window=WINDOW),
    }


def _apply(module: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(lq)[None, None].double())[0, 0].float().numpy()


def bm3d(lq: np.ndarray, k: float) -> np.ndarray:
    return _apply(BM3D(sigma=k * estimate_noise_std(lq)), lq)


def nlm(lq: np.ndarray, k: float) -> np.ndarray:
    return _apply(NonLocalMeans(h_factor=k), lq)


def tune(fn, pairs, factors) -> float:
    """The factor with the best mean PSNR on training pairs."""
    means = {k: np.mean([score(fn(lq, k), hq)["psnr"] for _, lq, hq in pairs]) for k in factors}
    best = max(means, key=means.get)
    print(f"  {fn.__name__}: mean training PSNR by factor { {k: round(float(v), 2) for k, v in means.items()} } -> {best}")
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ct-ldct-nafnet", help="shipped model name or model folder")
    p.add_argument("--data", type=Path, default=Path("data/ldct"))
    p.add_argument("--tune-pairs", type=int, default=4, help="training pairs used to tune the classical baselines")
    args = p.parse_args()
    test = load_pairs(args.data / "test")
    train = load_pairs(args.data / "train")
    rng = np.random.default_rng(0)
    tuning = [train[i] for i in rng.choice(len(train), size=min(args.tune_pairs, len(train)), replace=False)]
    print("tuning classical baselines on training pairs:")
    k_bm3d = tune(bm3d, tuning, (0.75, 1.0, 1.5, 2.0, 3.0))
    k_nlm = tune(nlm, tuning, (0.8, 1.0, 1.3, 1.6, 2.0, 2.5))
    model, card = load_model(args.model)
    methods = {
        "quarter-dose input": lambda lq: lq,
        f"NLM (h = {k_nlm} sigma)": lambda lq: nlm(lq, k_nlm),
        f"BM3D (sigma = {k_bm3d} x estimate)": lambda lq: bm3d(lq, k_bm3d),
        f"medir {Path(str(args.model)).name}": lambda lq: restore_image(
            Image(lq, ImageMeta(modality="CT", units="HU")), model, card, tile=None
        ).array,
    }
    rows = {name: [] for name in methods}
    seconds = {name: 0.0 for name in methods}
    for slice_name, lq, hq in test:
        for name, fn in methods.items():
            start = time.perf_counter()
            out = fn(lq)
            seconds[name] += time.perf_counter() - start
            rows[name].append({"slice": slice_name, **score(out, hq)})
    print(f"\nheld-out slices: {len(test)} ({', '.join(n for n, _, _ in test)})")
    print("PSNR/SSIM in the window [-160, 240] HU, data range = per-image target max - min; RMSE in HU\n")
    print("| method | PSNR (dB) | SSIM | RMSE (HU) | PSNR real slice | s/slice |")
    print("|---|---|---|---|---|---|")
    for name, values in rows.items():
        real = [v["psnr"] for v in values if v["slice"].startswith("J2K")]
        mean = {k: np.mean([v[k] for v in values]) for k in ("psnr", "ssim", "rmse")}
        print(f"| {name} | {mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['rmse']:.1f} | "
              f"{np.mean(real) if real else float('nan'):.2f} | {seconds[name] / len(test):.2f} |")


if __name__ == "__main__":
    main()
