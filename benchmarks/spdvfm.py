"""SPD-VFM ablation at small scale: equal training budgets, several seeds, phantom and thinned real scans.

    nice -n 10 python benchmarks/spdvfm.py --steps 100 --seeds 0 1 2 > runs/bench_spdvfm.log

Rows (each trained ``--steps`` optimiser steps, batch ``--batch`` of ``--patch`` pixel patches, Adam with a
cosine schedule from ``--lr``; every student starts from the same initial weights as its plain backbone):

- the paper's Table III: plain NAFNet, +SKD (lambda2 = 0), +SKD+SCM (lambda1 = 0.01, lambda2 = 100), and the
  same with lambda1 = 1 and lambda2 = 1 (the PSNR loss's gradient scales as 1 / MSE, so the paper's weights
  mean something else at this PSNR);
- the paper's Table VI: students of an SPI teacher, a CAT teacher and an SPI teacher without mask dropout;
- the paper's Table I: the five "+" backbones (tiny presets) against their plain versions.

A teacher trains ``--steps`` steps too (stage 1, not counted in the student's budget, as in the paper).
Training data: rapid (2x, with the paper's Gaussian, speckle and motion blur) / standard phantom pairs
(:mod:`medir.methods.spdvfm.data`), label maps from the classical segmenter on each whole standard image,
cropped with the patches. Evaluation: 192 x 192 grid patches with stride 192 (the paper's cut) of
``--test`` held-out phantom patients (both views) against the noise-free truth, and of pydicom's real
planar scan JPGExtended.dcm split by binomial thinning (input: half the counts + the paper's
degradations; target: the other half x 2, independent noise), never used in training. PSNR / SSIM in
counts with the per-patch target range (max - min) as data range. Table: mean and sample std over seeds.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import numpy as np
import torch

from medir.data.intensity import get_preset
from medir.methods.spdvfm import SPDVFM, PriorTeacher, SemanticEncoder, psnr_loss
from medir.methods.spdvfm.data import grid_patches, rapid_phantom, real_planar_counts, thinned_pair
from medir.methods.spdvfm.prior import prior_channels
from medir.metrics import psnr, ssim
from medir.models import build_preset
from medir.priors import get_segmenter

PRESET = get_preset("nm")
BACKBONES = ("nafnet_tiny", "restormer_tiny", "swinir_tiny", "edsr_tiny", "rcan_tiny")


def norm(x: np.ndarray, span: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / span)[None]


def training_pool(patients: int, patch: int, count: int, seed: int):
    """``count`` random (lq, hq, labels) patches in network space from ``patients`` phantom patients."""
    seg = get_segmenter("classical")
    rng = np.random.default_rng(seed)
    views = []
    for k in range(patients):
        rapid, standard, _ = rapid_phantom(k)
        for v in range(2):
            span = PRESET.scale_for(rapid[v].numpy())[1]
            labels = seg(standard[v].numpy(), modality="NM").labels
            views.append((rapid[v].numpy(), standard[v].numpy(), labels, span))
    lq, hq, lab = [], [], []
    while len(lq) < count:
        r, s, labels, span = views[int(rng.integers(len(views)))]
        y, x = int(rng.integers(r.shape[0] - patch)), int(rng.integers(r.shape[1] - patch))
        if s[y:y + patch, x:x + patch].max() <= 0:  # empty field of view: nothing to restore
            continue
        crop = (slice(y, y + patch), slice(x, x + patch))
        lq.append(norm(r[crop], span))
        hq.append(norm(s[crop], span))
        lab.append(torch.from_numpy(labels[crop].astype(np.int64)))
    return torch.stack(lq), torch.stack(hq), torch.stack(lab)


def test_sets(patients: int):
    """``{"phantom": [(input, target)], "real": [...]}`` 192 x 192 grid patches in counts."""
    out = {"phantom": [], "real": []}
    for k in range(patients):
        rapid, _, truth = rapid_phantom(2_000_000 + k)
        for v in range(2):
            for y, x in grid_patches(truth[v].numpy()):
                out["phantom"].append((rapid[v, y:y + 192, x:x + 192].numpy(), truth[v, y:y + 192, x:x + 192].numpy()))
    counts = real_planar_counts("JPGExtended.dcm")
    inp, target = thinned_pair(counts, seed=7)
    for y, x in grid_patches(counts):
        out["real"].append((inp[y:y + 192, x:x + 192], target[y:y + 192, x:x + 192]))
    return out


@torch.no_grad()
def evaluate(net: torch.nn.Module, sets) -> dict[str, float]:
    net.eval()
    scores = {}
    for name, pairs in sets.items():
        p, s = [], []
        for inp, target in pairs:
            span = PRESET.scale_for(inp)[1]
            pred = net(norm(inp, span)[None])[0, 0] * span
            t = torch.from_numpy(target)
            p.append(psnr(pred, t, data_range="target"))
            s.append(ssim(pred[None, None], t[None, None], data_range="target"))
        scores[f"{name}_psnr"], scores[f"{name}_ssim"] = float(np.mean(p)), float(np.mean(s))
    return scores


def fit(loss_fn, params, *, steps: int, lr: float, batch: int, pool_size: int, seed: int) -> None:
    """Adam, cosine from ``lr`` to 1e-6, batches drawn from the pool by a seeded generator."""
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.9))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 1e-6 + 0.5 * (lr - 1e-6) * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(pool_size, (batch,), generator=g)
        loss = loss_fn(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


def run_seed(seed: int, pool, sets, args) -> dict[str, dict[str, float]]:
    lq, hq, lab = pool
    batch_of = lambda idx: {"lq": lq[idx], "hq": hq[idx]}  # noqa: E731
    kw = dict(steps=args.steps, lr=args.lr, batch=args.batch, pool_size=len(lq), seed=seed)
    rows = {}

    def student_init(preset):
        torch.manual_seed(seed)
        return build_preset(preset, in_channels=1, out_channels=1)

    def method(preset, *, prior="spi", dropout=0.5):
        torch.manual_seed(seed + 1000)
        backbone = build_preset(preset, in_channels=1 + prior_channels(prior, 8), out_channels=1)
        teacher = PriorTeacher(backbone, SemanticEncoder(1, 8), prior=prior, mask_dropout=dropout)
        m = SPDVFM(student_init(preset), teacher, segmenter=None, teacher_steps=args.steps)
        m.train()
        fit(lambda idx: m.teacher_loss(batch_of(idx), lab[idx])[0], list(m.teacher.parameters()), **kw)
        return m

    def distil(m, name, *, skd=0.01, scm=100.0):
        s = copy.deepcopy(m)
        s.lambda_skd, s.lambda_scm = skd, scm
        s.train()
        fit(lambda idx: s.student_loss(batch_of(idx), lab[idx])[0], list(s.network.parameters()), **kw)
        rows[name] = evaluate(s.network, sets)

    for preset in BACKBONES:
        short = preset.split("_")[0]
        net = student_init(preset)
        net.train()
        fit(lambda idx: psnr_loss(net(lq[idx]), hq[idx]), list(net.parameters()), **kw)
        rows[f"{short}"] = evaluate(net, sets)
        spi = method(preset)
        if preset == "nafnet_tiny":
            rows["input (rapid scan x 2)"] = evaluate(Doubled(), sets)
            rows["nafnet teacher SPI (hq priors)"] = teacher_scores(spi, sets)
            distil(spi, "nafnet +SKD", scm=0.0)
            distil(spi, "nafnet +SKD (lambda1=1)", skd=1.0, scm=0.0)
            distil(spi, "nafnet+ SKD+SCM (lambda1=1, lambda2=1)", skd=1.0, scm=1.0)
        distil(spi, f"{short}+ (SKD+SCM)")
        if preset == "nafnet_tiny":
            distil(method(preset, prior="cat"), "nafnet+ CAT teacher")
            distil(method(preset, dropout=0.0), "nafnet+ SPI no dropout")
        print(f"seed {seed} {preset} done at {time.strftime('%H:%M:%S')}", flush=True)
    return rows


class Doubled(torch.nn.Module):
    """The rapid scan scaled to the standard scan's counts (2x speed-up): the reference "no restoration"."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x


def teacher_scores(m: SPDVFM, sets) -> dict[str, float]:
    """Teacher on the phantom test patches with the classical segmentation of the truth (an upper reference)."""
    seg = get_segmenter("classical")
    m.teacher.eval()
    p, s = [], []
    with torch.no_grad():
        for inp, target in sets["phantom"]:
            span = PRESET.scale_for(inp)[1]
            labels = torch.from_numpy(seg(target, modality="NM").labels.astype(np.int64))[None]
            pred = m.teacher(norm(inp, span)[None], labels)[0, 0] * span
            t = torch.from_numpy(target)
            p.append(psnr(pred, t, data_range="target"))
            s.append(ssim(pred[None, None], t[None, None], data_range="target"))
    return {"phantom_psnr": float(np.mean(p)), "phantom_ssim": float(np.mean(s))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-patients", type=int, default=6)
    p.add_argument("--test", type=int, default=1, help="held-out phantom patients")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    pool = training_pool(args.train_patients, args.patch, 512, seed=0)
    sets = test_sets(args.test)
    print(f"data ready in {time.time() - t0:.0f} s: {len(pool[0])} training patches, "
          f"{len(sets['phantom'])} phantom and {len(sets['real'])} real test patches", flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        for name, scores in run_seed(seed, pool, sets, args).items():
            results.setdefault(name, []).append(scores)
            print(json.dumps({"seed": seed, "row": name, **{k: round(v, 4) for k, v in scores.items()}}), flush=True)
    print(f"\n{args.steps} steps per network, batch {args.batch}, {args.patch}x{args.patch} patches, "
          f"seeds {args.seeds}, {time.time() - t0:.0f} s in all\n")
    cols = ("phantom_psnr", "phantom_ssim", "real_psnr", "real_ssim")
    print("| row | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, runs in results.items():
        cells = []
        for c in cols:
            v = [r[c] for r in runs if c in r]
            cells.append(f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}" if v else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
