"""Speed and memory of R-MSA in the paper-size RAT model (rat_base, 15.9 M parameters) on CPU.

For each R-MSA implementation (``medir.nn.region_attention.REGION_ATTENTION``) and input size: forward
time (no gradients, batch 1) and working memory (peak RSS during the forward minus RSS just before it),
each in a fresh process (the allocator keeps freed memory, so a shared process would hide peaks). Region
maps: the classical partition at its default SAM-like granularity, computed on a CT-like slice before the
clock starts. The ``dense`` formulation (the official code's additive HW x HW mask) runs at 256 x 256
only; at 512 x 512 it needs the 16,384^2 logits of 8 heads (8 GiB per attention call in float32), and so
does ``mask`` (PyTorch's CPU kernel turns a boolean mask into dense logits), so neither runs there.
A training step (forward + backward, batch ``--train-batch`` of 256 x 256 crops) is measured for the
chosen implementation.

Targets (issue 12): at 256 x 256, at least 5x faster than dense and at most 1/4 of its peak memory;
512 x 512 within 4 GB; training on 256 x 256 crops within 8 GB. The script prints each check and exits
1 if one fails. Times are from a shared machine: ratios are more telling than seconds.

    python benchmarks/region_attention.py [--threads 2] [--train-batch 8] [--impls dense mask sorted loop]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

GIB = 2**30
CHECKPOINT = "--checkpoint" in sys.argv  # activation checkpointing in the training step


def _rss() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def ct_like(size: int):
    """A (size, size) CT-like slice in HU: body, organs, bone, noise (fixed seed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = (np.mgrid[:size, :size] + 0.5) / size - 0.5
    img = np.full((size, size), -1000.0)
    img[(yy / 0.42) ** 2 + (xx / 0.36) ** 2 < 1] = 40.0
    for _ in range(12):
        cy, cx, r = rng.uniform(-0.25, 0.25), rng.uniform(-0.22, 0.22), rng.uniform(0.03, 0.1)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([-80.0, 60.0, 150.0, 700.0])
    return (img + rng.normal(0, 20, img.shape)).astype(np.float32)


def child(impl: str, size: int, train_batch: int, threads: int) -> None:
    import torch

    from medir.models import build_preset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_preset("rat_base", in_channels=1, out_channels=1, impl=impl, modality="CT", intensity="ct",
                         checkpoint=CHECKPOINT)
    x = (torch.from_numpy(ct_like(size))[None, None] + 1024) / 4095
    labels = model.region_maps(x)
    regions = int(labels.unique().numel())
    if train_batch:
        x, labels = x.repeat(train_batch, 1, 1, 1), labels.repeat(train_batch, 1, 1)
    else:
        model.eval()
    before = _rss()
    start = time.perf_counter()
    if train_batch:
        model(x, labels).abs().mean().backward()
    else:
        with torch.no_grad():
            model(x, labels)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": impl, "size": size, "batch": train_batch or 1, "train": bool(train_batch),
                      "regions": regions, "seconds": seconds, "working_gib": (peak - before) / GIB,
                      "peak_gib": peak / GIB}))


def child_op(impl: str, size: int, threads: int) -> None:
    """R-MSA alone on the bottleneck of a ``size`` input: (1, 8 heads, (size/4)^2 tokens, 32), forward."""
    import torch

    from medir.nn.region_attention import REGION_ATTENTION, downsample_labels
    from medir.priors.region_maps import RegionMaps, make_segmenter

    torch.set_num_threads(threads)
    from medir.data.intensity import get_preset

    maps = RegionMaps(make_segmenter("classical"), modality="CT", intensity=get_preset("ct").to_dict())
    labels = downsample_labels(maps((torch.from_numpy(ct_like(size))[None, None] + 1024) / 4095), 4).reshape(1, -1)
    n = labels.shape[1]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 8, n, 32, generator=g) for _ in range(3))
    before = _rss()
    start = time.perf_counter()
    with torch.no_grad():
        REGION_ATTENTION[impl](q, k, v, labels, scale=32**-0.5)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": impl, "size": size, "tokens": n, "regions": int(labels.unique().numel()),
                      "seconds": seconds, "working_gib": (peak - before) / GIB}))


def measure(impl: str, size: int, train_batch: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, str(size), str(train_batch), str(threads)]
    cmd += ["--checkpoint"] if CHECKPOINT and train_batch else []
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"impl": impl, "size": size, "error": lines[-1][:120] if lines else f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-op":
        child_op(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impls", nargs="+", default=["dense", "mask", "sorted", "loop"])
    p.add_argument("--choice", default="sorted", help="the implementation checked against the targets")
    p.add_argument("--train-batch", type=int, default=8, help="256 x 256 crops per training step (paper: 8)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parts", nargs="+", default=["op", "model", "train"], choices=["op", "model", "train"])
    p.add_argument("--checkpoint", action="store_true", help="train with activation checkpointing (RAT checkpoint=True)")
    args = p.parse_args()
    status = 0
    if "op" in args.parts:
        status |= operator_table(args)
    if "model" not in args.parts and "train" not in args.parts:
        return status
    rows = []
    if "model" in args.parts:
        rows += [measure(i, 256, 0, args.threads) for i in args.impls]
        rows += [measure(i, 512, 0, args.threads) for i in args.impls if i not in ("dense", "mask")]
    if "train" in args.parts:
        rows.append(measure(args.choice, 256, args.train_batch, args.threads))
    print("| R-MSA | input | pass | regions | seconds | working GiB | peak RSS GiB |\n|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['impl']} | {r['size']} | - | - | failed: {r['error']} | - | - |")
            continue
        kind = (f"train, batch {r['batch']}" + (", checkpointing" if CHECKPOINT else "")) if r["train"] else "forward"
        print(f"| {r['impl']} | {r['size']}x{r['size']} | {kind} | {r['regions']} | {r['seconds']:.2f} | "
              f"{r['working_gib']:.2f} | {r['peak_gib']:.2f} |")
    return status | report(rows, args.choice)


def operator_table(args) -> int:
    """R-MSA alone at the bottleneck (the part the implementations change), each in a fresh process."""
    rows = []
    for size in (256, 512):
        for impl in args.impls:
            if size == 512 and impl in ("dense", "mask"):
                continue
            cmd = [sys.executable, __file__, "--child-op", impl, str(size), str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else
                        {"impl": impl, "size": size, "error": f"exit code {done.returncode}"})
    print("R-MSA alone at the bottleneck (8 heads x 32 channels, forward)\n")
    print("| R-MSA | input | tokens | regions | seconds | working GiB |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['impl']} | {r['size']} | - | - | failed: {r['error']} | - |")
        else:
            print(f"| {r['impl']} | {r['size']}x{r['size']} | {r['tokens']} | {r['regions']} | {r['seconds']:.3f} | "
                  f"{r['working_gib']:.3f} |")
    dense = next((r for r in rows if r["impl"] == "dense" and r["size"] == 256 and "error" not in r), None)
    ours = next((r for r in rows if r["impl"] == args.choice and r["size"] == 256 and "error" not in r), None)
    if not (dense and ours):
        return 1
    speed = dense["seconds"] / ours["seconds"]
    mem = ours["working_gib"] / max(dense["working_gib"], 1e-9)
    print(f"\n{args.choice} vs dense, R-MSA alone at 256x256 input: {speed:.1f}x faster, working memory {mem:.3f}x")
    ok = speed >= 5 and mem <= 0.25
    print(f"{'PASS' if ok else 'FAIL'}: R-MSA at least 5x faster and at most 1/4 of the memory of dense at 256x256\n")
    return 0 if ok else 1


def report(rows: list[dict], choice: str) -> int:
    def get(impl, size, train=False):
        return next((r for r in rows if r.get("impl") == impl and r.get("size") == size
                     and r.get("train", False) == train and "error" not in r), None)

    dense, ours, big, train = get("dense", 256), get(choice, 256), get(choice, 512), get(choice, 256, True)
    checks = []
    if dense and ours:
        speed, mem = dense["seconds"] / ours["seconds"], ours["peak_gib"] / dense["peak_gib"]
        work = ours["working_gib"] / max(dense["working_gib"], 1e-9)
        print(f"\n{choice} vs dense at 256x256: {speed:.1f}x faster; peak RSS {mem:.2f}x, working memory {work:.3f}x")
        checks += [("whole model at least 5x faster than dense at 256x256", speed >= 5),
                   ("whole model at most 1/4 of dense's working memory (peak RSS minus RSS before the forward) "
                    "at 256x256", work <= 0.25)]
    if big:
        checks.append((f"512x512 forward within 4 GB (peak RSS {big['peak_gib']:.2f} GiB)", big["peak_gib"] * GIB <= 4e9))
    if train:
        checks.append((f"training step at 256x256, batch {train['batch']}, within 8 GB (peak RSS "
                       f"{train['peak_gib']:.2f} GiB)", train["peak_gib"] * GIB <= 8e9))
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    return 0 if checks and all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
