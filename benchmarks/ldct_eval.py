"""Low-dose CT on real held-out slices: the model vs its input vs NLM vs BM3D tuned per image against the reference.

Data: the real slices the shipped model never saw (``medir.data.ldct``): ``J2K_pixelrep_mismatch.dcm`` (head,
held out) and ``CT_small.dcm`` (neck, not used in training; its own noise is ~23 HU, so its reference is noisy).
With ``--extra data/ct_sources`` (``bash scripts/fetch_ct_sources.sh data/ct_sources``), three more real slices
from other packages are held out too (``medir.data.ct_sources``: a skull-base head, a chest, neck and shoulders).
Each is taken to 1/4 and 1/30 of its own dose by ``ct-lowdose`` noise insertion (the scan stays the reference),
``--draws`` noise draws per level.
Metrics: PSNR / SSIM in HU clipped to the window [-160, 240], data range per image = reference max - min after
clipping (AMIR/DiffCode convention); RMSE in HU inside the window.
Classical baselines are oracles: for every image, BM3D's sigma (and NLM's h) is searched on a grid of multiples of
the true inserted noise std (1 to 6, extended upwards while the largest wins) and the best PSNR and the best SSIM
against the reference are kept (each on its own).

    OMP_NUM_THREADS=1 python benchmarks/ldct_eval.py --model medir/shipped/ct-ldct-nafnet

``--val FOLDER`` scores the model instead on a paired folder of training-type data (``lq/``, ``hq/``: e.g.
``data/ldct3/val`` from ``python -m medir.data.ldct``), the set to choose a checkpoint on without the test slices.

``--kernel shepp-logan`` (or another FBP window) inserts noise of another texture than the training data's Hann
(a robustness probe: scanners reconstruct with their own kernels).

``--cache FILE`` keeps the classical oracles' scores (they do not depend on the model) in a JSON file;
``--baselines-only`` fills it without a model; ``--ensemble`` scores the model's 8x dihedral self-ensemble (the mean
of ``medir restore --ensemble`` / ``--uncertainty``) beside its plain output.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medir.baselines import BM3D, NonLocalMeans
from medir.engine.inference import restore_image, restore_with_uncertainty
from medir.engine.modelfile import load_model
from medir.io import Image, ImageMeta
from medir.metrics import psnr, rmse, ssim
from medir.physics.projector import FILTER_WINDOWS

WINDOW = (-160.0, 240.0)
HELD_OUT = ("J2K_pixelrep_mismatch.dcm", "CT_small.dcm")
GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # x the inserted noise std; extended upwards while the top one wins


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    return {
        "psnr": psnr(pred, target, data_range="target", window=WINDOW),
        "ssim": ssim(pred, target, data_range="target", window=WINDOW),
        "rmse": rmse(pred, target, window=WINDOW),
    }


def trust(mean: np.ndarray, std: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """How the 8-fold std (HU) relates to the ensemble's actual error, over body pixels (reference > -500 HU)
    whose reference lies in the window: mean std, RMS error, and the Pearson correlation of std with |error|
    after both are smoothed over 5x5 pixels (a map is read by regions, not single pixels)."""
    from scipy.ndimage import uniform_filter

    inside = (target > -500) & (target >= WINDOW[0]) & (target <= WINDOW[1])
    err = uniform_filter(np.abs(mean - target).astype(np.float64), 5)[inside]
    spread = uniform_filter(std.astype(np.float64), 5)[inside]
    return {"mean_std": float(std[inside].mean()), "rms_error": float(np.sqrt(((mean - target)[inside] ** 2).mean())),
            "corr": float(np.corrcoef(spread, err)[0, 1])}


def _apply(module: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(lq)[None, None].double())[0, 0].float().numpy()


def oracle(make, lq: np.ndarray, hq: np.ndarray, sigma: float) -> tuple[dict[str, float], dict[str, float]]:
    """Best PSNR and best SSIM (each on its own) over the grid; returns (scores, chosen factors)."""
    tried = {k: score(_apply(make(k * sigma), lq), hq) for k in GRID}
    while max(tried, key=lambda k: tried[k]["psnr"]) == max(tried) and max(tried) < 50:
        k = max(tried) * 1.5  # the optimum may lie above the grid (correlated CT noise needs a large sigma)
        tried[k] = score(_apply(make(k * sigma), lq), hq)
    best_p = max(tried, key=lambda k: tried[k]["psnr"])
    best_s = max(tried, key=lambda k: tried[k]["ssim"])
    return ({"psnr": tried[best_p]["psnr"], "ssim": tried[best_s]["ssim"], "rmse": tried[best_p]["rmse"]},
            {"psnr": best_p, "ssim": best_s})


def held_out_pairs(draws: int, extra: Path | None = None, *,
                   kernel: str = "hann") -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(label, low-dose, reference, pixel mm) for every held-out real slice (``HELD_OUT``, then the test files of
    ``extra``, a :mod:`medir.data.ct_sources` folder), dose level and draw; ``kernel``: the FBP filter window of the
    inserted noise (its texture; the scan's own dose is measured with the same window)."""
    from medir.data.ct_sources import source_slices
    from medir.data.ldct import TEST_FRACTIONS, low_dose, real_ct, scan_dose_of

    images = [(name.split(".")[0], real_ct(name)) for name in HELD_OUT]
    images += source_slices(extra, "test") if extra is not None else []
    pairs = []
    for k, (name, image) in enumerate(images):
        dose = scan_dose_of(image, True, window=kernel)
        fractions = [f for f in TEST_FRACTIONS.values() for _ in range(draws)]
        tags = [f"{t}{d}" for t in TEST_FRACTIONS for d in range(draws)]
        lows = low_dose(image, fractions, scan_dose=dose, seed=5000 + k, window=kernel)
        for tag, low in zip(tags, lows):
            pairs.append((f"{name}_{tag}", low, image.array.astype(np.float32), float(image.meta.spacing[-1])))
    return pairs


def classical(lq: np.ndarray, hq: np.ndarray, sigma: float) -> dict:
    """Both oracles on one image, with the seconds BM3D took."""
    start = time.perf_counter()
    bm3d, k_bm3d = oracle(lambda s: BM3D(sigma=s), lq, hq, sigma)
    seconds = time.perf_counter() - start
    nlm, k_nlm = oracle(lambda s: NonLocalMeans(sigma=s, h_factor=1.0), lq, hq, sigma)
    return {"bm3d": bm3d, "k_bm3d": k_bm3d, "nlm": nlm, "k_nlm": k_nlm, "bm3d_seconds": seconds}


def report(rows: list[dict], model_name: str, arch: str, model_seconds: float) -> None:
    methods = ("input", "nlm", "bm3d", "model") + (("ensemble",) if "ensemble" in rows[0] else ())
    slices = sorted({r["slice"].rsplit("_", 1)[0] for r in rows})
    print(f"\nmodel: {model_name}; held-out real slices: {', '.join(slices)}; {len(rows)} images")
    print("PSNR/SSIM in the window [-160, 240] HU, data range = per-image reference max - min; RMSE in HU\n")
    x8 = " model x8 |" if "ensemble" in methods else ""
    print(f"| slice | inserted noise (HU) | input PSNR / SSIM | NLM oracle | BM3D oracle | model |{x8} "
          "model - BM3D (dB) |")
    print("|---|---|---|---|---|---|---|" + ("---|" if x8 else ""))
    for r in rows:
        cells = [f"{r[m]['psnr']:.2f} / {r[m]['ssim']:.4f}" for m in methods]
        print(f"| {r['slice']} | {r['sigma']:.1f} | " + " | ".join(cells)
              + f" | {r['model']['psnr'] - r['bm3d']['psnr']:+.2f} |")
    print("\n| method | mean PSNR (dB) | mean SSIM | mean RMSE (HU) | beats BM3D oracle (PSNR, SSIM) |")
    print("|---|---|---|---|---|")
    names = {"input": "low-dose input", "nlm": "NLM, h tuned per image", "bm3d": "BM3D, sigma tuned per image",
             "model": f"medir {arch} ({model_name})", "ensemble": f"medir {arch} ({model_name}), 8x self-ensemble"}
    for m in methods:
        name = names[m]
        wins = (sum(r[m]["psnr"] > r["bm3d"]["psnr"] for r in rows), sum(r[m]["ssim"] > r["bm3d"]["ssim"] for r in rows))
        print(f"| {name} | {np.mean([r[m]['psnr'] for r in rows]):.2f} | {np.mean([r[m]['ssim'] for r in rows]):.4f} | "
              f"{np.mean([r[m]['rmse'] for r in rows]):.1f} | {wins[0]}/{len(rows)}, {wins[1]}/{len(rows)} |")
    if "uncertainty" in rows[0]:
        print("\n| slice | 8-fold std, mean (HU) | ensemble RMS error (HU) | corr(std, abs error), 5x5 smoothed |")
        print("|---|---|---|---|")
        for r in rows:
            u = r["uncertainty"]
            print(f"| {r['slice']} | {u['mean_std']:.2f} | {u['rms_error']:.2f} | {u['corr']:.2f} |")
        print("(body pixels whose reference is inside the window)")
    print(f"\nseconds per image: model {model_seconds / len(rows):.2f}, BM3D grid of {len(GRID)} "
          f"{np.mean([r['bm3d_seconds'] for r in rows]):.1f}")


def validation(folder: Path, model, card, *, ensemble: bool) -> None:
    """Mean PSNR / SSIM of the model (and its 8x self-ensemble) on the pairs of ``folder``, as ``medir restore``."""
    from medir.data.datasets import find_pairs
    from medir.io import read_image

    rows = []
    for lq_path, hq_path in find_pairs(folder):
        lq, hq = read_image(lq_path), read_image(hq_path).array
        lq.meta.modality = "CT"
        row = {"input": score(lq.array, hq), "model": score(restore_image(lq, model, card, tile=None, ensemble=False).array, hq)}
        if ensemble:
            row["ensemble"] = score(restore_image(lq, model, card, tile=None, ensemble=True).array, hq)
        rows.append(row)
        print(f"{lq_path.name}: " + " ".join(f"{m} {r['psnr']:.2f}" for m, r in row.items()), flush=True)
    print(f"\n{folder}: {len(rows)} pairs; mean PSNR / SSIM in [-160, 240] HU")
    for m in rows[0]:
        print(f"| {m} | {np.mean([r[m]['psnr'] for r in rows]):.3f} | {np.mean([r[m]['ssim'] for r in rows]):.4f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ct-ldct-nafnet", help="shipped model name or model folder")
    p.add_argument("--draws", type=int, default=2, help="noise draws per slice and dose level")
    p.add_argument("--cache", type=Path, help="JSON file for the classical oracles' scores")
    p.add_argument("--baselines-only", action="store_true", help="only compute (and cache) the classical oracles")
    p.add_argument("--ensemble", action="store_true", help="also score the 8x dihedral self-ensemble of the model")
    p.add_argument("--val", type=Path, help="score the model on this paired folder (lq/, hq/) instead")
    p.add_argument("--extra", type=Path, help="also hold out the test files of this folder of extra real CT "
                                              "(medir.data.ct_sources: bash scripts/fetch_ct_sources.sh data/ct_sources)")
    p.add_argument("--kernel", default="hann", choices=FILTER_WINDOWS,
                   help="FBP filter window of the inserted noise (its texture; default hann, the training data's); "
                        "give another --cache per kernel")
    args = p.parse_args()
    if args.val:
        validation(args.val, *load_model(args.model), ensemble=args.ensemble)
        return
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    model, card = (None, None) if args.baselines_only else load_model(args.model)
    rows, model_seconds = [], 0.0
    for label, lq, hq, pixel in held_out_pairs(args.draws, args.extra, kernel=args.kernel):
        sigma = float((lq - hq)[hq > -500].std())
        if label not in cache:
            cache[label] = classical(lq, hq, sigma)
            if args.cache:
                args.cache.write_text(json.dumps(cache, indent=1))
        row = {"slice": label, "sigma": sigma, "input": score(lq, hq), **cache[label]}
        if model is not None:
            start = time.perf_counter()
            meta = ImageMeta(modality="CT", units="HU", spacing=(pixel, pixel))
            out = restore_image(Image(lq, meta), model, card, tile=None, ensemble=False).array
            model_seconds += time.perf_counter() - start
            row["model"] = score(out, hq)
            if args.ensemble:
                mean, std = restore_with_uncertainty(Image(lq, meta), model, card, tile=None)
                row["ensemble"] = score(mean.array, hq)
                row["uncertainty"] = trust(mean.array, std.array, hq)
        rows.append(row)
        print(f"{label}: inserted noise {sigma:.1f} HU | PSNR input {row['input']['psnr']:.2f} NLM "
              f"{row['nlm']['psnr']:.2f} BM3D {row['bm3d']['psnr']:.2f} (x{row['k_bm3d']['psnr']})"
              + (f" model {row['model']['psnr']:.2f}" if model is not None else "")
              + (f" x8 {row['ensemble']['psnr']:.2f}" if "ensemble" in row else ""), flush=True)
    if model is not None:
        report(rows, args.model, card.arch, model_seconds)


if __name__ == "__main__":
    main()
