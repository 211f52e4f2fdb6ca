"""How long simulating N slices takes per task, and our projector against scikit-image's radon.

    python benchmarks/simulate.py [--slices 100] [--size 256] [--threads N] [--tasks ct-lowdose,...] [--csv out.csv]

Inputs are phantoms in each task's units (Shepp-Logan in HU for CT, the brain phantom's activity
for PET, counts for scintigraphy, RGB noise texture for pathology/smoke). Times are wall-clock on
this machine, including the first-call cache build (grids), which a long run amortises.
"""

from __future__ import annotations

import argparse
import csv
import time

import numpy as np
import torch

from medir.data.phantoms import shepp_logan, shepp_logan_hu
from medir.physics import TASKS, simulate
from medir.physics.projector import ParallelBeamProjector, make_geometry

BATCH = 16


def task_input(task: str, n: int, size: int) -> torch.Tensor:
    """``(n, C, size, size)`` in the task's physical units."""
    g = torch.Generator().manual_seed(0)
    if task == "ct-lowdose":
        return shepp_logan_hu(size).expand(n, 1, size, size).contiguous()
    if task == "pet-lowcount":
        return (shepp_logan(size) * 10).expand(n, 1, size, size).contiguous()
    if task == "scinti-rapid":
        return torch.poisson(shepp_logan(size).expand(n, 1, size, size) * 200, generator=g)
    if task in ("path-sr", "endo-smoke"):
        return (torch.rand(n, 3, size, size, generator=g) * 255).round()
    return shepp_logan(size).expand(n, 1, size, size).contiguous() * 4095


def time_task(task: str, n: int, size: int) -> float:
    x = task_input(task, n, size)
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        simulate(task, x[i:i + BATCH], seed=i)
    return time.perf_counter() - t0


def projector_vs_skimage(size: int, views: int = 180, repeats: int = 3) -> dict:
    from skimage.transform import radon

    img = shepp_logan(size)[0, 0].numpy().astype(np.float64)
    theta = np.arange(views, dtype=float) * 180.0 / views
    proj = ParallelBeamProjector(make_geometry(size, size, angles_deg=tuple(theta), circle=True))
    x = torch.from_numpy(img).float()[None, None]
    proj.A(x)  # build the cached grid
    t_ours = min(_timed(lambda: proj.A(x)) for _ in range(repeats))
    t_adj = min(_timed(lambda: proj.A_adjoint(proj.A(x))) for _ in range(repeats)) - t_ours
    t_sk = min(_timed(lambda: radon(img, theta, circle=True)) for _ in range(repeats))
    xb = x.expand(BATCH, 1, size, size).contiguous()
    t_batch = min(_timed(lambda: proj.A(xb)) for _ in range(repeats)) / BATCH
    ref = radon(img, theta, circle=True)
    err = np.linalg.norm(proj.A(x)[0, 0].numpy().T - ref) / np.linalg.norm(ref)
    return {"ours_s": t_ours, "ours_batched_per_slice_s": t_batch, "adjoint_s": t_adj, "skimage_s": t_sk,
            "ratio": t_ours / t_sk, "ratio_batched": t_batch / t_sk, "rel_l2_vs_skimage": float(err)}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.slices} slices of {args.size}x{args.size}")
    rows = []
    for task in args.tasks.split(","):
        seconds = time_task(task, args.slices, args.size)
        rows.append({"task": task, "slices": args.slices, "size": args.size, "seconds": round(seconds, 3),
                     "ms_per_slice": round(1000 * seconds / args.slices, 1)})
        print(f"{task:14s} {seconds:9.2f} s  ({rows[-1]['ms_per_slice']:.1f} ms/slice)", flush=True)
    cmp = projector_vs_skimage(args.size)
    print(f"projector 180 views, {args.size}x{args.size}: ours {cmp['ours_s'] * 1e3:.1f} ms "
          f"(batched {cmp['ours_batched_per_slice_s'] * 1e3:.1f} ms/slice, adjoint {cmp['adjoint_s'] * 1e3:.1f} ms), "
          f"skimage radon {cmp['skimage_s'] * 1e3:.1f} ms -> ratio ours/skimage {cmp['ratio']:.2f} "
          f"(batched {cmp['ratio_batched']:.2f}), rel. L2 difference {cmp['rel_l2_vs_skimage']:.1e}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
