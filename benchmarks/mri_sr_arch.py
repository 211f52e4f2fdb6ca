"""Speed of the candidate 4x MRI super-resolution backbones (about 0.25 M parameters), as ratios to EDSR.

One training step (batch 16 of 24x24 low-resolution patches, L1, Adam) and one inference of a 64x64 input
(256x256 output), each timed as the median of ``--repeats`` interleaved rounds in this process on one thread, so the
ratios hold on a busy machine. The quality side of the choice is the 400-step pilot on the validation slices
(see medir/shipped/mr-sr4-edsr/README.md).

    OMP_NUM_THREADS=1 python benchmarks/mri_sr_arch.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from medir.models import build_model

CANDIDATES = {
    "edsr f32 b8": ("edsr", dict(features=32, blocks=8)),
    "rcan f32 g2 b4": ("rcan", dict(features=32, groups=2, blocks=4, reduction=8)),
    "swinir d48 [4,4]": ("swinir", dict(embed_dim=48, depths=[4, 4], heads=[4, 4], window_size=8,
                                        upsampler="pixelshuffledirect")),
    "nafnet w16 (pre-upsampled)": ("nafnet", dict(width=16, enc_blocks=[1, 1, 2], middle_blocks=2, dec_blocks=[1, 1, 1])),
}


def _train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = (model(x) - y).abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def _infer(model: torch.nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = {k: build_model(a, in_channels=1, out_channels=1, scale=4, **kw) for k, (a, kw) in CANDIDATES.items()}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-4) for k, m in models.items()}
    x, y, big = torch.rand(16, 1, 24, 24), torch.rand(16, 1, 96, 96), torch.rand(1, 1, 64, 64)
    times = {k: {"train": [], "infer": []} for k in models}
    for k in models:  # warm-up
        _train_step(models[k], opts[k], x, y)
    for _ in range(args.repeats):
        for k, m in models.items():
            times[k]["train"].append(_train_step(m, opts[k], x, y))
            m.eval()
            times[k]["infer"].append(_infer(m, big))
            m.train()
    ref = {kind: np.median(times["edsr f32 b8"][kind]) for kind in ("train", "infer")}
    print("| backbone | parameters | train step time / EDSR | inference time / EDSR |")
    print("|---|---|---|---|")
    for k, m in models.items():
        n = sum(q.numel() for q in m.parameters())
        print(f"| {k} | {n / 1e3:.0f} k | {np.median(times[k]['train']) / ref['train']:.2f} | "
              f"{np.median(times[k]['infer']) / ref['infer']:.2f} |")
    print(f"\nEDSR reference on this machine now: train step {ref['train']:.2f} s, inference {ref['infer']:.3f} s")


if __name__ == "__main__":
    main()
