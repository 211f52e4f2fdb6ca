"""Peak memory of tiled inference on a 2048x2048 image versus one 512x512 run.

Each measurement runs in a fresh process (the allocator keeps freed memory, so
sharing a process would hide peaks). Working memory = peak RSS during inference
minus RSS just before it (model and input already in memory). The issue's target:
tiled 2048x2048 with 512 tiles stays within 2x the working memory of a plain 512x512 run.

    python benchmarks/tiling_memory.py [--preset nafnet_width32] [--tile 512]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(preset: str, size: int, tile: int | None, overlap: int) -> None:
    import torch

    from medir.engine.inference import tiled_forward
    from medir.models import build_preset

    torch.manual_seed(0)
    model = build_preset(preset, in_channels=1, out_channels=1).eval()
    x = torch.rand(1, 1, size, size)
    with torch.no_grad():  # warm-up on a small input so lazy initialisation is not counted
        model(torch.rand(1, 1, 64, 64))
    before = _rss_mb()
    start = time.perf_counter()
    y = tiled_forward(model, x, tile=tile, overlap=overlap, batch=1)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "tile": tile, "before_mb": before, "peak_mb": peak,
                      "working_mb": peak - before, "seconds": elapsed, "out": list(y.shape)}))


def measure(preset: str, size: int, tile: int | None, overlap: int) -> dict:
    cmd = [sys.executable, __file__, "--child", preset, str(size), str(tile or 0), str(overlap)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        preset, size, tile, overlap = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        return child(preset, size, tile or None, overlap)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="nafnet_width32")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=32)
    args = p.parse_args()
    ref = measure(args.preset, args.tile, None, args.overlap)
    big = measure(args.preset, 2048, args.tile, args.overlap)
    print(f"preset {args.preset}, tile {args.tile}, overlap {args.overlap}")
    print(f"{'run':<28} {'working MB':>11} {'peak RSS MB':>12} {'seconds':>8}")
    print(f"{'512x512 untiled':<28} {ref['working_mb']:>11.1f} {ref['peak_mb']:>12.1f} {ref['seconds']:>8.1f}")
    print(f"{'2048x2048 tiled':<28} {big['working_mb']:>11.1f} {big['peak_mb']:>12.1f} {big['seconds']:>8.1f}")
    ratio = big["working_mb"] / ref["working_mb"]
    print(f"working-memory ratio tiled-2048 / plain-512: {ratio:.2f} (target <= 2.00: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"peak-RSS ratio: {big['peak_mb'] / ref['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
