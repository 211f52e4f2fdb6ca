"""Low-count brain PET on the held-out test subjects: a model vs its input vs Gaussian, NLM and BM3D tuned per image.

Data: ``data/pet/test`` from ``python -m medir.data.petmr data/pet`` (the 2 ``test`` subjects of the brain PET/MR
phantom, never used for training or model selection; 16 slices each, spread over the whole brain; input at
MFdiff's ``mfdiff-low`` protocol, 2.25e5-3e5 counts per slice; target ``mfdiff-high``, 7.9e7 counts). Simulated
data only: there is no real PET in the packages medir can use offline.
Metrics, in the phantom's activity units (a.u., grey matter 4; the simulator divides the counts by the
count scale, so values are activity): PSNR and SSIM (11 x 11 Gaussian, sigma 1.5) with data range per image =
target max - min (MFdiff/AMIR convention), NMSE = ||x - y||^2 / ||y||^2, RMSE in a.u.; mean and std over images.
Classical baselines are oracles: for every image, Gaussian's sigma (pixels), NLM's and BM3D's sigma (multiples of
the true noise std ``std(input - target)`` inside the head) are searched on a grid against the target (extended
upwards while the largest wins) and the best PSNR and the best SSIM are kept, each on its own.
A guided model (card ``aux_modalities``: ``pet-mr-*``) gets the test slice's MR as its second input; an MFdiff model
(``python -m medir.methods.mfdiff.recipe``) gets it as its condition and is sampled with DDIM 50 (one sample).
Lesions (PET only, absent from the MR): recovery = mean over the lesion of the output / of the target (1 = as the
standard-count image; hot lesions are twice their surroundings, cold ones a quarter), over the slices that keep one.

    OMP_NUM_THREADS=1 python benchmarks/pet_eval.py --model medir/shipped/pet-lowcount-nafnet
    OMP_NUM_THREADS=1 python benchmarks/pet_eval.py --model medir/shipped/pet-mr-nafnet

``--cache FILE`` keeps the classical oracles' scores (they do not depend on the model) in a JSON file;
``--update-card`` writes the summary into the model folder's config.json (``metrics.held_out``; README untouched).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medir.baselines import BM3D, Gaussian, NonLocalMeans
from medir.metrics import nmse, psnr, rmse, ssim

PAPER_INPUT = {"psnr": 21.13, "nmse": 0.176}  # MFdiff Table 1, low-dose input vs standard dose
NOISE_GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)   # x the true noise std (NLM, BM3D)
PIXEL_GRID = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)   # Gaussian sigma in pixels (2 mm)
METHODS = (("input", "low-count input"), ("gaussian", "Gaussian, sigma tuned per image"),
           ("nlm", "NLM, h tuned per image"), ("bm3d", "BM3D, sigma tuned per image"))


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR (dB) / SSIM with data range = target max - min, NMSE, RMSE (a.u.) of one ``(H, W)`` slice."""
    p, t = torch.from_numpy(np.asarray(pred, np.float64))[None, None], torch.from_numpy(np.asarray(target, np.float64))[None, None]
    return {"psnr": float(psnr(p, t, data_range="target")), "ssim": float(ssim(p, t, data_range="target")),
            "nmse": float(nmse(p, t)), "rmse": float(rmse(p, t))}


def _apply(module: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(lq)[None, None].double())[0, 0].float().numpy()


def oracle(make, grid: tuple[float, ...], lq: np.ndarray, hq: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Best PSNR and best SSIM (each on its own) of ``make(value)`` over ``grid``; returns (scores, chosen values)."""
    tried = {k: score(_apply(make(k), lq), hq) for k in grid}
    while max(tried, key=lambda k: tried[k]["psnr"]) == max(tried) and max(tried) < 50 * grid[-1]:
        k = max(tried) * 1.5  # the optimum may lie above the grid
        tried[k] = score(_apply(make(k), lq), hq)
    best_p = max(tried, key=lambda k: tried[k]["psnr"])
    best_s = max(tried, key=lambda k: tried[k]["ssim"])
    return ({**tried[best_p], "ssim": tried[best_s]["ssim"]}, {"psnr": best_p, "ssim": best_s})


def classical(lq: np.ndarray, hq: np.ndarray, sigma: float) -> dict:
    """The three oracles on one slice, with the seconds BM3D's grid took."""
    gauss, k_gauss = oracle(lambda s: Gaussian(sigma_px=s), PIXEL_GRID, lq, hq)
    nlm, k_nlm = oracle(lambda k: NonLocalMeans(sigma=k * sigma, h_factor=1.0), NOISE_GRID, lq, hq)
    start = time.perf_counter()
    bm3d, k_bm3d = oracle(lambda k: BM3D(sigma=k * sigma), NOISE_GRID, lq, hq)
    return {"gaussian": gauss, "k_gaussian": k_gauss, "nlm": nlm, "k_nlm": k_nlm, "bm3d": bm3d, "k_bm3d": k_bm3d,
            "bm3d_seconds": time.perf_counter() - start}


def restore(model, card, lq: np.ndarray, mr: np.ndarray) -> np.ndarray:
    """The model's output for one ``(H, W)`` slice (guided models also take the MR)."""
    from medir.engine.guided import restore_guided_slices
    from medir.engine.inference import restore_image
    from medir.io import Image, ImageMeta

    if card.arch == "mfdiff":  # a conditional diffusion model: its default sampler (DDIM 50, one sample, seed 0)
        from medir.methods.mfdiff.modelfile import restore_volume

        return restore_volume(model, lq[None, None], mr[None, None])[0][0, 0]
    if card.aux_modalities:
        return restore_guided_slices(lq[None, None], mr[None, None], model, card, tile=None)[0][0, 0]
    return restore_image(Image(lq, ImageMeta(modality="PT", units="counts")), model, card, tile=None).array


def lesion_recovery(outputs: dict[str, np.ndarray], hq: np.ndarray, masks) -> dict[str, dict[str, float]]:
    """Per method: ``{"hot": mean(out)/mean(hq) in the hot lesion, "cold": same in the cold one}`` (NaN if absent)."""
    rec = {}
    for m, out in outputs.items():
        rec[m] = {k: float(out[mask].mean() / hq[mask].mean()) if mask.sum() >= 4 else float("nan")
                  for k, mask in zip(("hot", "cold"), masks)}
    return rec


def lesion_table(rows: list[dict], methods: list[tuple[str, str]]) -> None:
    print("\n| method | hot lesion recovery | cold lesion recovery |\n|---|---|---|")
    for m, name in methods:
        if m not in rows[0].get("lesions", {}):
            continue
        cells = []
        for k in ("hot", "cold"):
            v = np.array([r["lesions"][m][k] for r in rows])
            v = v[np.isfinite(v)]
            cells.append(f"{v.mean():.3f} ± {v.std():.3f} ({len(v)} slices)")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


def summary(rows: list[dict], methods: list[tuple[str, str]]) -> None:
    print("\n| method | PSNR (dB) | SSIM | NMSE | RMSE (a.u.) | beats best oracle (PSNR, SSIM) |")
    print("|---|---|---|---|---|---|")
    best = [max(("gaussian", "nlm", "bm3d"), key=lambda m: r[m]["psnr"]) for r in rows]
    best_s = [max(("gaussian", "nlm", "bm3d"), key=lambda m: r[m]["ssim"]) for r in rows]
    for m, name in methods:
        vals = {k: np.array([r[m][k] for r in rows]) for k in ("psnr", "ssim", "nmse", "rmse")}
        wins = (sum(r[m]["psnr"] > r[b]["psnr"] for r, b in zip(rows, best)),
                sum(r[m]["ssim"] > r[b]["ssim"] for r, b in zip(rows, best_s)))
        cells = " | ".join(f"{vals[k].mean():.{d}f} ± {vals[k].std():.{d}f}"
                           for k, d in (("psnr", 2), ("ssim", 4), ("nmse", 4), ("rmse", 4)))
        print(f"| {name} | {cells} | {wins[0]}/{len(rows)}, {wins[1]}/{len(rows)} |")


def mid_brain(name: str) -> bool:
    """Whether slice ``sSEED_zZ_rR.npy`` lies in the middle 40 % of the brain's axial extent (MFdiff's selection,
    the calibration's slices in docs/physics_calibration_emission.md)."""
    from medir.data.phantoms import brain_slice_range

    lo, hi = brain_slice_range()
    z = int(name.split("_z")[1].split("_")[0])
    return lo + 0.3 * (hi - lo) <= z <= lo + 0.7 * (hi - lo)


def means(rows: list[dict], m: str) -> dict[str, float]:
    return {f"{k}{s}": float(f(np.array([r[m][k] for r in rows]))) for k in ("psnr", "ssim", "nmse", "rmse")
            for s, f in (("", np.mean), ("_std", np.std))}


def update_card(path: str, rows: list[dict], per_slice_s: float, bm3d_s: float, *, data: Path, size: int) -> None:
    """Write the held-out summary into ``path/config.json`` (atomically): flat numbers (``medir models`` prints them)
    and one line naming the command; the full table goes in the README. The standard 2 mm set (128 x 128) fills
    ``test_*`` and ``held_out``; another grid its own keys (``test4mm_*``, ``held_out_4mm``), leaving those alone."""
    from medir.engine.atomic import atomic_write_text
    from medir.engine.modelfile import CONFIG, load_card, resolve_model_path

    directory = resolve_model_path(path)
    card = load_card(directory)
    from medir.data.phantoms import FOV_MM

    tag = "" if size == 128 else f"{FOV_MM / size:g}mm"
    prefix, held_key = (f"test{tag}_", f"held_out_{tag}") if tag else ("test_", "held_out")
    for key in [k for k in card.metrics if k.startswith(prefix) or k == held_key]:
        del card.metrics[key]
    for m, suffix in (("model", ""), ("input", "_input"), ("bm3d", "_bm3d")):
        card.metrics.update({f"{prefix}{k}{suffix}": round(v, 4) for k, v in means(rows, m).items()
                             if not k.endswith("_std")})
    for k in ("hot", "cold"):
        card.metrics[f"{prefix}lesion_{k}"] = round(float(np.nanmean([r["lesions"]["model"][k] for r in rows])), 3)
    card.metrics[f"{prefix}seconds_per_slice"] = round(per_slice_s, 3)
    card.metrics[held_key] = (f"OMP_NUM_THREADS=1 python benchmarks/pet_eval.py --model {path} --data {data}: "
                              f"{len(rows)} slices of the 2 test subjects (python -m medir.data.petmr {data}"
                              f"{'' if size == 128 else f' --size {size}'}), {size} x {size} at {FOV_MM / size:g} mm, "
                              "mfdiff-low input; activity a.u.; PSNR/SSIM data range = per-image target max - min; "
                              "bm3d = BM3D with sigma tuned per image against the target; lesion = output/target mean "
                              "in PET-only lesions")
    atomic_write_text(directory / CONFIG, card.to_json())


def load(name: str):
    """A medir model file: a plain or guided network, or an MFdiff model (``medir restore --aux`` takes all three)."""
    from medir.engine.modelfile import load_card, load_model
    from medir.methods.mfdiff.modelfile import ARCH, load_network

    return load_network(name) if load_card(name).arch == ARCH else load_model(name)


def main() -> None:
    from medir.data.petmr import lesion_masks, load_split
    from medir.data.phantoms import FOV_MM

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or model folder (none: input and baselines only)")
    p.add_argument("--data", type=Path, default=Path("data/pet"), help="folder written by python -m medir.data.petmr")
    p.add_argument("--cache", type=Path, help="JSON file for the classical oracles' scores")
    p.add_argument("--limit", type=int, help="only the first N test slices (quick look; the card uses all)")
    p.add_argument("--stride", type=int, default=1, help="every STRIDE-th test slice (slow models; the card uses all)")
    p.add_argument("--update-card", action="store_true", help="write the summary into the model's config.json")
    args = p.parse_args()
    data = load_split(args.data, "test")
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.exists() else {}
    model, card = load(args.model) if args.model else (None, None)
    n = len(data["names"]) if args.limit is None else min(args.limit, len(data["names"]))
    if args.update_card and (args.limit is not None or args.stride != 1):
        raise SystemExit("--update-card needs the whole test set: drop --limit and --stride")
    picked = list(range(0, n, max(1, args.stride)))
    n = len(picked)
    size = data["hq"].shape[-1]
    masks = lesion_masks("test", size)
    rows, model_seconds = [], 0.0
    for i in picked:
        label, lq, hq, mr = str(data["names"][i]), data["lq"][i, 0], data["hq"][i, 0], data["mr"][i, 0]
        head = hq > 0.05 * hq.max()
        sigma = float((lq - hq)[head].std())
        if label not in cache:
            cache[label] = classical(lq, hq, sigma)
            if args.cache:
                args.cache.write_text(json.dumps(cache, indent=1))
        row = {"slice": label, "sigma": sigma, "input": score(lq, hq), **cache[label]}
        outputs = {"input": lq}
        if model is not None:
            start = time.perf_counter()
            outputs["model"] = restore(model, card, lq, mr)
            model_seconds += time.perf_counter() - start
            row["model"] = score(outputs["model"], hq)
        row["lesions"] = lesion_recovery(outputs, hq, masks[label])
        rows.append(row)
        print(f"{label}: noise {sigma:.3f} a.u. | PSNR input {row['input']['psnr']:.2f} Gauss {row['gaussian']['psnr']:.2f}"
              f" NLM {row['nlm']['psnr']:.2f} BM3D {row['bm3d']['psnr']:.2f}"
              + (f" model {row['model']['psnr']:.2f}" if model is not None else ""), flush=True)
    methods = list(METHODS) + ([("model", f"medir {card.arch} ({args.model})")] if model is not None else [])
    print(f"\n{n} held-out test slices (2 test subjects, whole brain), {size} x {size} at {FOV_MM / size:g} mm; "
          "activity units (a.u.)")
    print("PSNR/SSIM: data range = per-image target max - min; NMSE = ||x - y||^2 / ||y||^2; mean ± std over slices")
    print(f"MFdiff paper's low-dose input (Table 1): {PAPER_INPUT['psnr']} dB / NMSE {PAPER_INPUT['nmse']}")
    summary(rows, methods)
    lesion_table(rows, methods)
    mid = [r for r in rows if mid_brain(r["slice"])]
    if mid:
        m = means(mid, "input")
        print(f"\ninput on the {len(mid)} mid-brain slices (middle 40 % of the brain, as the paper selects): "
              f"{m['psnr']:.2f} ± {m['psnr_std']:.2f} dB, NMSE {m['nmse']:.3f} ± {m['nmse_std']:.3f}"
              + (f"; model {means(mid, 'model')['psnr']:.2f} dB, NMSE {means(mid, 'model')['nmse']:.3f}"
                 if model is not None else ""))
    bm3d_s = np.mean([r["bm3d_seconds"] for r in rows])
    if model is not None:
        per = model_seconds / n
        print(f"\nseconds per slice: model {per:.3f}; BM3D grid ({len(NOISE_GRID)}+ runs) {bm3d_s:.2f} "
              f"({bm3d_s / per:.0f}x the model{'; BM3D timed by the run that filled --cache' if args.cache else ''})")
        if args.update_card:
            update_card(args.model, rows, per, float(bm3d_s), data=args.data, size=size)
            print(f"held-out metrics written to {args.model}/config.json")


if __name__ == "__main__":
    main()
