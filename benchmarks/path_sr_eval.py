"""4x pathology super-resolution on real held-out images: the model vs its input vs the best interpolation per image.

Data (``python -m medir.data.pathology data/path_sr``): ``test/ihc_test.png`` (scikit-image's ihc.png columns
384..511, 128 px away from the training columns 0..255) and ``test/he_stardist.png`` (stardist's H&E histo.jpg,
another stain and tissue; a JPEG, so its reference carries JPEG artefacts). Neither was trained on or used for
any choice. The low-resolution input is medir's ``path-sr`` degradation of the whole image (antialiased bicubic
x4 down, clipped and rounded to 8 bits); the model restores it through :func:`medir.engine.inference.restore_image`
(the code ``medir restore`` runs) and every output is rounded to 8 bits, as a user's PNG would be.

Rows: ``input`` is the low-resolution image brought back by bicubic x4 (PyTorch's kernel, a = -0.75: the RAT
protocol's degraded input); ``best interpolation`` is an oracle tuned per image against the reference: Keys' cubic
with a in {-0.5, -0.75, -1.0} and Lanczos with 2 to 8 lobes, the best PSNR and the best SSIM each taken on its own.

Metrics: PSNR and SSIM on RGB (8-bit, data range 255; SSIM per channel, averaged) and, labelled ``Y``, on the
ITU-R BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (data range 255, as RAT's released
evaluation and BasicSR), RMSE in grey levels on RGB. ``scale`` (4) pixels are cropped from every border. Mean and
standard deviation are over 128x128 tiles of each test image (each cropped by 4 px on every side); the
``whole`` columns score the whole image (border 4). Speed: the model's time on the 128x128 low-resolution
image, as a ratio to Lanczos-3 in the same process.

    OMP_NUM_THREADS=1 python benchmarks/path_sr_eval.py --model medir/shipped/sm-sr4-edsr
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from medir.baselines import Bicubic, Interpolate
from medir.metrics import crop_border, luma_bt601, psnr, rmse, ssim

SCALE = 4
TILE = 128
GRID = [("keys", -0.5), ("keys", -0.75), ("keys", -1.0)] + [("lanczos", float(a)) for a in range(2, 9)]


def degrade(hq: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/4, W/4, 3) float 0..255 by medir's path-sr (bicubic x4 down, 8-bit)."""
    from medir.physics import simulate

    x = torch.from_numpy(np.ascontiguousarray(hq.transpose(2, 0, 1), dtype=np.float32))[None]
    return simulate("path-sr", x, scale=SCALE, upsample=False)[0].numpy().transpose(1, 2, 0)


def to_8bit(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255)


def restore(model, card, lq: np.ndarray, *, tile: int | None = 512) -> np.ndarray:
    """(h, w, 3) 0..255 -> (4h, 4w, 3) 0..255 through the inference engine ``medir restore`` uses, 8-bit."""
    from medir.engine.inference import restore_image
    from medir.io import Image, ImageMeta

    meta = ImageMeta(modality="SM", units="RGB8", channels=3, source_format="raster", source={"dtype": "uint8"})
    out = restore_image(Image(lq.astype(np.float32), meta), model, card, tile=tile)
    return to_8bit(out.array)


def interpolate(lq: np.ndarray, kind: str, param: float) -> np.ndarray:
    x = torch.from_numpy(lq.transpose(2, 0, 1).astype(np.float64))[None]
    return to_8bit(Interpolate(scale=SCALE, kind=kind, param=param)(x)[0].numpy().transpose(1, 2, 0))


def bicubic_input(lq: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(lq.transpose(2, 0, 1).astype(np.float32))[None]
    return to_8bit(Bicubic(scale=SCALE)(x)[0].numpy().transpose(1, 2, 0))


def score(pred: np.ndarray, hq: np.ndarray, *, border: int = SCALE) -> dict[str, float]:
    """PSNR/SSIM (RGB and Y, data range 255) and RMSE (grey levels) of (H, W, 3) images, ``border`` cropped."""
    p, t = crop_border(pred.astype(np.float64), border), crop_border(hq.astype(np.float64), border)
    prgb, trgb = p.transpose(2, 0, 1), t.transpose(2, 0, 1)
    py, ty = luma_bt601(p), luma_bt601(t)
    return {
        "psnr": psnr(prgb, trgb, data_range=255.0), "ssim": ssim(prgb, trgb, data_range=255.0),
        "psnr_y": psnr(py, ty, data_range=255.0), "ssim_y": ssim(py, ty, data_range=255.0),
        "rmse": rmse(prgb, trgb),
    }


def tiles(h: int, w: int) -> list[tuple[slice, slice]]:
    return [(slice(y, y + TILE), slice(x, x + TILE)) for y in range(0, h - TILE + 1, TILE)
            for x in range(0, w - TILE + 1, TILE)]


def tile_scores(pred: np.ndarray, hq: np.ndarray) -> list[dict[str, float]]:
    return [score(pred[ys, xs], hq[ys, xs]) for ys, xs in tiles(*hq.shape[:2])]


def oracle(lq: np.ndarray, hq: np.ndarray) -> tuple[list[dict[str, float]], dict[str, float], str]:
    """Per tile, the best PSNR and the best SSIM (each on its own) over the interpolation grid, for every metric
    the setting chosen by the whole image's PSNR; returns (tile scores, whole-image scores, chosen settings)."""
    preds = {g: interpolate(lq, *g) for g in GRID}
    per = {g: tile_scores(p, hq) for g, p in preds.items()}
    whole = {g: score(p, hq) for g, p in preds.items()}
    best_tiles = []
    for i in range(len(next(iter(per.values())))):
        row = {}
        for key in ("psnr", "ssim", "psnr_y", "ssim_y"):
            row[key] = max(per[g][i][key] for g in GRID)
        row["rmse"] = min(per[g][i]["rmse"] for g in GRID)
        best_tiles.append(row)
    best_whole = {key: max(whole[g][key] for g in GRID) for key in ("psnr", "ssim", "psnr_y", "ssim_y")}
    best_whole["rmse"] = min(whole[g]["rmse"] for g in GRID)
    chosen = max(GRID, key=lambda g: whole[g]["psnr"])
    return best_tiles, best_whole, f"{chosen[0]} {chosen[1]:g}"


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB"))


def summary(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    return {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows]))) for k in rows[0]}


def evaluate(model, card, root: Path) -> list[dict]:
    """Every test image: tile and whole-image scores of input, best interpolation and model."""
    results = []
    for path in sorted(root.glob("*.png")):
        hq = read_rgb(path)
        lq = degrade(hq)
        best_tiles, best_whole, chosen = oracle(lq, hq)
        inp, sr = bicubic_input(lq), restore(model, card, lq)
        results.append({
            "image": path.stem, "size": hq.shape[:2], "tiles": len(best_tiles), "chosen": chosen,
            "input": (tile_scores(inp, hq), score(inp, hq)), "best interpolation": (best_tiles, best_whole),
            "model": (tile_scores(sr, hq), score(sr, hq)),
        })
    return results


def speed(model, card, lq: np.ndarray, reps: int = 3) -> float:
    """Model time / Lanczos-3 time on ``lq`` (same process)."""
    def clock(fn):
        fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps

    return clock(lambda: restore(model, card, lq)) / clock(lambda: interpolate(lq, "lanczos", 3.0))


def table_lines(results: list[dict], name: str) -> list[str]:
    """The markdown results table (mean +- std over tiles; whole-image values in the last column)."""
    lines = [f"RGB 8-bit, data range 255, border {SCALE} px; mean +- std over {TILE}x{TILE} tiles; "
             "Y = ITU-R BT.601 luma (labelled option, RAT's convention)", "",
             "| image | method | PSNR RGB (dB) | SSIM RGB | PSNR Y (dB) | SSIM Y | RMSE (grey levels) "
             "| whole-image PSNR RGB / SSIM RGB |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for method in ("input", "best interpolation", "model"):
            rows, whole = r[method]
            s = summary(rows)
            label = name if method == "model" else method
            if method == "input":
                label += " (bicubic x4 up, a = -0.75)"
            if method == "best interpolation":
                label += f" (oracle per tile; whole image: {r['chosen']})"
            cells = " | ".join(f"{s[k][0]:.{4 if 'ssim' in k else 2}f} +- {s[k][1]:.{4 if 'ssim' in k else 2}f}"
                               for k in ("psnr", "ssim", "psnr_y", "ssim_y", "rmse"))
            lines.append(f"| {r['image']} ({r['size'][0]}x{r['size'][1]}, {r['tiles']} tiles) | {label} | {cells} | "
                         f"{whole['psnr']:.2f} / {whole['ssim']:.4f} |")
    return lines


def card_metrics(results: list[dict], ratio: float) -> str:
    """One line for the card's ``metrics.held_out`` (the README carries the whole table)."""
    parts = []
    for r in results:
        cells = []
        for method in ("input", "best interpolation", "model"):
            s = summary(r[method][0])
            cells.append(f"{method} {s['psnr'][0]:.2f} dB / {s['ssim'][0]:.3f}")
        parts.append(f"{r['image']}: " + ", ".join(cells))
    return (f"python benchmarks/path_sr_eval.py --model medir/shipped/sm-sr4-edsr (PSNR / SSIM on RGB, range 255, "
            f"border {SCALE}, mean over {TILE} px tiles; best interpolation = oracle per tile): " + "; ".join(parts)
            + f"; time {ratio:.1f}x Lanczos-3")


def main() -> None:
    from medir.engine.modelfile import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="shipped model name or model folder")
    p.add_argument("--data", type=Path, default=Path("data/path_sr/test"), help="folder of held-out RGB PNGs")
    p.add_argument("--write-card", type=Path, metavar="DIR",
                   help="also write the model with these numbers in its card (config.json metrics, README.md) to DIR")
    p.add_argument("--notes", type=Path, help="markdown appended to the written README.md (intended use, limits)")
    args = p.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} is missing: run python -m medir.data.pathology {args.data.parent}")
    torch.manual_seed(0)
    model, card = load_model(args.model)
    results = evaluate(model, card, args.data)
    name = args.write_card.name if args.write_card else Path(args.model).name
    lines = table_lines(results, name)
    print("\n" + "\n".join(lines))
    first = next(iter(sorted(args.data.glob("*.png"))))
    ref = read_rgb(first)
    ratio = speed(model, card, degrade(ref))
    speed_line = (f"speed: model / Lanczos-3 on the {ref.shape[0] // SCALE}x{ref.shape[1] // SCALE} input of "
                  f"{first.name}: {ratio:.1f}x the time (one CPU thread if OMP_NUM_THREADS=1)")
    print("\n" + speed_line)
    if args.write_card:
        write_card(args.write_card, model, card, card_metrics(results, ratio), lines + ["", speed_line],
                   args.notes.read_text(encoding="utf-8") if args.notes else "")


def write_card(out: Path, model, card, held_out: str, table: list[str], notes: str) -> None:
    """Save the model to ``out`` with ``metrics.held_out`` filled and the table (and notes) in README.md."""
    from medir.engine.atomic import atomic_write_text
    from medir.engine.modelfile import save_model

    card.metrics = {**card.metrics, "held_out": held_out}
    save_model(out, model, card, force=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/path_sr_eval.py --model medir/shipped/sm-sr4-edsr"
    readme = card.markdown() + "\n## Held-out results\n\n`" + command + "`\n\n" + "\n".join(table)
    atomic_write_text(out / "README.md", readme + "\n\n" + notes)


if __name__ == "__main__":
    main()
