"""Tiled restore: does the tile size change the result, how much memory and time does it take?

Restores a CT-like image in HU with a model (default: the shipped ct-ldct-nafnet, with
its test-time local pooling) whole and with several tile sizes, each in a fresh process
(the allocator keeps freed memory, so sharing a process would hide peaks), and prints:

- the largest per-pixel difference in HU between every tiled result and the whole-image one;
- the seam score of every tiled result (see medir/engine/seams.py; < 1.5: no seam found);
- peak RSS of the process, and the working memory (peak minus RSS before restoring, with
  the model and the image already loaded), and seconds per megapixel.

The image is the shipped quarter-dose CT slice (medir/samples/ldct_example.dcm, real HU
and real noise) mirrored into a mosaic and cropped at an offset, so that the mosaic's
mirror lines do not fall on tile borders.

    python benchmarks/tiling_memory.py                       # 2000x2000: whole, tile 256, tile 512
    python benchmarks/tiling_memory.py --size 8000 --tiles 512 --no-whole --progress
    python benchmarks/tiling_memory.py --model tiny-random --size 8000 --tiles 512 --no-whole

``--model tiny-random`` is a randomly initialised nafnet_tiny (width 8, 2 levels; every block
active) with a CT card recording 96-pixel training patches (pooling window 144, like the shipped
model): several times cheaper than the shipped model, for memory and progress checks on large
images when CPU time is short; its HU are not a restoration. ``--model conv`` is a single random 3x3 convolution with a CT
card: it measures the tiling engine's own memory and time (input, output, window copies,
blending) on a large image, with almost no network cost.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def ct_like(size: int) -> np.ndarray:
    """(size, size) float32 HU: the shipped quarter-dose slice, mirrored into a mosaic, offset by (100, 150)."""
    from medir.io import read_image

    sample = Path(__file__).resolve().parent.parent / "medir" / "samples" / "ldct_example.dcm"
    tile = read_image(sample).array
    reps = size // tile.shape[0] + 2
    mosaic = np.pad(tile, ((0, tile.shape[0] * reps), (0, tile.shape[1] * reps)), mode="symmetric")
    return np.ascontiguousarray(mosaic[100 : 100 + size, 150 : 150 + size], dtype=np.float32)


def _ct_card(model, patch: int):
    from medir.data.intensity import get_preset
    from medir.engine.modelfile import ModelCard

    return ModelCard(arch="nafnet", arch_args=getattr(model, "arch_args", {}), task="ct-denoise", modality="CT",
                     intensity=get_preset("ct").to_dict(), training={"data": {"train": {"patch_size": patch}}})


def conv_only():
    """One random 3x3 convolution (receptive radius 1) with a CT card: the engine's cost alone."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 1, 3, padding=1).eval(), _ct_card(None, 96)


def tiny_random():
    """A random nafnet_tiny with a CT card (training patch 96), every block active (beta, gamma != 0)."""
    import torch

    from medir.models import build_preset

    torch.manual_seed(0)
    model = build_preset("nafnet_tiny", in_channels=1, out_channels=1).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.1)
    return model, _ct_card(model, 96)


def child(model_name: str, size: int, tile: int, overlap: int, batch: int, threads: int, out: str, progress: bool):
    import torch

    from medir.engine.inference import restore_image, tile_context
    from medir.engine.modelfile import load_model
    from medir.io import Image, ImageMeta

    torch.set_num_threads(threads)
    model, card = {"tiny-random": tiny_random, "conv": conv_only}.get(model_name, lambda: load_model(model_name))()
    image = Image(ct_like(size), ImageMeta(modality="CT", units="HU"))
    before = _rss_mb()
    start = time.perf_counter()
    restored = restore_image(
        image, model, card, tile=tile or None, overlap=overlap, batch=batch, progress="restore" if progress else False,
        ensemble=False,  # one pass: the tiling is what is measured
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out, restored.array)
    print(json.dumps({"before_mb": before, "peak_mb": peak, "seconds": seconds, "context": tile_context(model),
                      "window": getattr(model, "pool_window", None)}))


def measure(args, tile: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", args.model, str(args.size), str(tile), str(args.overlap),
           str(args.batch), str(args.threads), str(out), "1" if args.progress else "0"]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def seam(img: np.ndarray, tile: int, overlap: int) -> float:
    from medir.engine.inference import core_bounds
    from medir.engine.seams import seam_score

    bounds = core_bounds(img.shape[0], tile, overlap)[1:-1]
    kw = dict(bounds=bounds, overlap=overlap, segment=tile)
    return max(seam_score(img, **kw), seam_score(img.T, **kw))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        a = sys.argv[2:]
        return child(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6], a[7] == "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ct-ldct-nafnet")
    p.add_argument("--size", type=int, default=2000)
    p.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    p.add_argument("--overlap", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-whole", action="store_true", help="skip the whole-image run (no differences printed)")
    p.add_argument("--progress", action="store_true", help="show the tile progress bar on stderr")
    args = p.parse_args()
    runs = ([] if args.no_whole else [0]) + args.tiles
    results, images = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for tile in runs:
            out = Path(tmp) / f"tile{tile}.npy"
            results[tile] = measure(args, tile, out)
            images[tile] = np.load(out)
    first = results[runs[0]]
    mp = args.size**2 / 1e6
    print(f"model {args.model}, {args.size}x{args.size} CT-like image (HU), overlap {args.overlap}, batch {args.batch}, "
          f"{args.threads} threads; local pooling window {first['window']}, tile context {first['context']} px")
    print(f"{'run':<12} {'max |diff| HU':>14} {'seam score':>11} {'peak RSS MB':>12} {'working MB':>11} {'s/MP':>7}")
    for tile in runs:
        r = results[tile]
        diff = f"{np.abs(images[tile] - images[0]).max():.4f}" if 0 in images and tile else "-"
        score = f"{seam(images[tile], tile, args.overlap):.2f}" if tile else "-"
        name = f"tile {tile}" if tile else "whole"
        print(f"{name:<12} {diff:>14} {score:>11} {r['peak_mb']:>12.0f} {r['peak_mb'] - r['before_mb']:>11.0f} "
              f"{r['seconds'] / mp:>7.2f}")
    tiled = [t for t in runs if t]
    if len(tiled) > 1:
        a, b = tiled[:2]
        print(f"tile {a} vs tile {b}: max |diff| {np.abs(images[a] - images[b]).max():.4f} HU")


if __name__ == "__main__":
    main()
