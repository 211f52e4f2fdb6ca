"""RAT: where its region maps come from, and the paper's ablation at small scale.

``regions``: the region-count distribution of each source on the same brain-phantom slices (512 x 512,
low-count PET-like images; what RAT's segmenter sees): the classical partition at its default SAM-like
granularity, the fine classical partition (``max_regions=None``), the oracle (true tissue labels split
into connected components, SAM-like regions) and SAM / MedSAM when ``--sam PATH`` / ``--medsam PATH``
point at local weights.

``ablation``: equal parameters and equal training budget, several seeds, one simulated task: low-count
brain PET-like images (phantom activity x ``--counts`` expected counts per unit, thinned by ``--speedup``
with medir's ``scinti-rapid`` physics in ``resample`` mode: Poisson at 1 / speedup of the counts, scaled
back). Region maps are made on the whole low-count slice and cropped with it, as the paper's offline maps.
Rows: R-MSA / MSA / W-MSA (focal loss, classical maps); R-MSA with L1; R-MSA with oracle maps and with
the fine classical partition; a NAFNet of about the same size (L1). PSNR (dB, data range = the target
slice's max - min) and SSIM on held-out slices, mean and standard deviation over seeds.

    python benchmarks/rat.py regions [--slices 8] [--sam PATH]
    python benchmarks/rat.py ablation [--seeds 3] [--steps 300]
    python benchmarks/region_attention.py        # speed and memory targets of R-MSA
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def phantom_slices(zs: list[int], size: int) -> list:
    from medir.data import phantoms

    return [phantoms.brain_slice(z, size=size, hot_lesions=1, cold_lesions=1, generator=torch.Generator().manual_seed(z))
            for z in zs]


def low_count(activity: torch.Tensor, *, counts: float, speedup: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(hq expected counts, lq thinned counts), each (H, W) float32."""
    from medir.physics import simulate

    hq = activity[None] * counts
    lq = simulate("scinti-rapid", hq, generator=torch.Generator().manual_seed(seed), mode="resample",
                  speedup=speedup, rescale=True)
    return hq[0, 0].numpy().astype(np.float32), lq[0, 0].numpy().astype(np.float32)


def evenly(items: list[int], n: int) -> list[int]:
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, min(n, len(items))).round()]


def region_sources(args) -> dict:
    from medir.priors.classical import ClassicalSegmenter
    from medir.priors.oracle import oracle_partition

    sources = {"classical (default, SAM-like)": ClassicalSegmenter(),
               "classical fine (max_regions=None)": ClassicalSegmenter(max_regions=None),
               "oracle (tissue components)": lambda image, truth: oracle_partition(truth, split_components=True)}
    if args.sam:
        from medir.priors.sam import SamSegmenter

        sources["SAM"] = SamSegmenter(args.sam)
    if args.medsam:
        from medir.priors.sam import MedSamSegmenter

        sources["MedSAM (whole-image box)"] = MedSamSegmenter(args.medsam)
    return sources


def regions(args) -> int:
    from medir.data import phantoms

    zs = evenly(phantoms.split_slices("test") + phantoms.split_slices("val"), args.slices)
    slices = phantom_slices(zs, 512)
    counts: dict[str, list[int]] = {}
    for k, s in enumerate(slices):
        _, lq = low_count(s.activity, counts=args.counts, speedup=args.speedup, seed=k)
        truth = s.labels[0].numpy()
        for name, seg in region_sources(args).items():
            part = seg(lq, truth) if name.startswith("oracle") else seg(lq, modality="PT")
            counts.setdefault(name, []).append(part.num_regions)
    print(f"Regions per 512x512 low-count brain slice (z = {', '.join(map(str, zs))}); SAM's everything mode on "
          "the RAT release's example CT slice: 39\n")
    print("| source | min | median | mean | max |\n|---|---:|---:|---:|---:|")
    for name, c in counts.items():
        print(f"| {name} | {min(c)} | {np.median(c):.0f} | {np.mean(c):.1f} | {max(c)} |")
    return 0


def dataset(split: str, n: int, args):
    """List of (lq, hq, classical labels, fine classical labels, oracle labels), network space (lq / p99.9)."""
    from medir.data import phantoms
    from medir.priors.classical import ClassicalSegmenter
    from medir.priors.oracle import oracle_partition

    coarse, fine = ClassicalSegmenter(), ClassicalSegmenter(max_regions=None)
    out = []
    for k, s in enumerate(phantom_slices(evenly(phantoms.split_slices(split), n), args.size)):
        hq, lq = low_count(s.activity, counts=args.counts, speedup=args.speedup, seed=1000 * (split == "test") + k)
        span = float(np.percentile(lq, 99.9)) or 1.0
        maps = [coarse(lq, modality="PT").labels, fine(lq, modality="PT").labels,
                oracle_partition(s.labels[0].numpy(), split_components=True).labels]
        out.append((lq / span, hq / span, *maps))
    return out


VARIANTS = {  # name -> (architecture overrides, loss, region source index: 0 classical, 1 fine, 2 oracle)
    "R-MSA, focal, classical maps": ({"attention": "region"}, "focal", 0),
    "MSA, focal, classical maps": ({"attention": "global"}, "focal", 0),
    "W-MSA, focal, classical maps": ({"attention": "window"}, "focal", 0),
    "R-MSA, L1, classical maps": ({"attention": "region"}, "l1", 0),
    "R-MSA, focal, oracle maps": ({"attention": "region"}, "focal", 2),
    "NAFNet (similar size), L1": (None, "l1", 0),
    "R-MSA, focal, fine classical maps": ({"attention": "region"}, "focal", 1),
}
RAT_ARGS = dict(width=16, enc_blocks=[1, 1], dec_blocks=[1, 1], rat_blocks=2, layers_per_block=2, heads=4)


def build(arch: dict | None):
    from medir.models import build_model
    from medir.models.rat import rat_param_count

    if arch is not None:
        return build_model("rat", **RAT_ARGS, **arch)
    target = rat_param_count(**RAT_ARGS)
    best = min(range(1, 40), key=lambda m: abs(_naf_params(m) - target))
    return build_model("nafnet", in_channels=1, out_channels=1, width=16, enc_blocks=[1, 1], dec_blocks=[1, 1],
                       middle_blocks=best)


def _naf_params(middle: int) -> int:
    from medir.models import build_model

    with torch.device("meta"):
        m = build_model("nafnet", width=16, enc_blocks=[1, 1], dec_blocks=[1, 1], middle_blocks=middle,
                        in_channels=1, out_channels=1)
    return sum(p.numel() for p in m.parameters())


def batches(data, *, source: int, patch: int, batch: int, seed: int):
    """Endless batches of random aligned crops (image, target and region map) with random flips."""
    rng = np.random.default_rng(seed)
    while True:
        items = []
        for _ in range(batch):
            item = data[rng.integers(len(data))]
            lq, hq, lab = item[0], item[1], item[2 + source]
            y, x = rng.integers(lq.shape[0] - patch + 1), rng.integers(lq.shape[1] - patch + 1)
            crop = [a[y:y + patch, x:x + patch] for a in (lq, hq, lab)]
            if rng.random() < 0.5:
                crop = [a[:, ::-1] for a in crop]
            items.append([np.ascontiguousarray(a) for a in crop])
        lq, hq, lab = (np.stack([it[i] for it in items]) for i in range(3))
        yield {"lq": torch.from_numpy(lq)[:, None].float(), "hq": torch.from_numpy(hq)[:, None].float(),
               "regions": torch.from_numpy(lab.astype(np.int64))}


def train_eval(name: str, train, test, *, seed: int, args) -> tuple[float, float, int]:
    from medir.engine.schedule import cosine_lr
    from medir.methods.rat import RATMethod
    from medir.metrics import psnr, ssim

    arch, loss_name, source = VARIANTS[name]
    torch.manual_seed(seed)
    network = build(arch)
    params = sum(p.numel() for p in network.parameters())
    method = RATMethod(network, loss=loss_name, gamma=args.gamma) if arch is not None else None
    opt = torch.optim.Adam(network.parameters(), lr=args.lr)
    stream = batches(train, source=source, patch=args.patch, batch=args.batch, seed=seed)
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, base_lr=args.lr, steps=args.steps, warmup=0, min_lr=1e-6)
        b = next(stream)
        loss = method(b)[0] if method is not None else (network(b["lq"]) - b["hq"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    network.eval()
    scores = []
    with torch.no_grad():
        for item in test:
            lq, hq = (torch.from_numpy(a)[None, None].float() for a in item[:2])
            lab = torch.from_numpy(item[2 + source].astype(np.int64))[None]
            pred = network(lq, lab) if arch is not None and arch["attention"] == "region" else network(lq)
            scores.append((float(psnr(pred, hq, data_range="target")), float(ssim(pred, hq, data_range="target"))))
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores])), params


def ablation(args) -> int:
    torch.set_num_threads(args.threads)
    train, test = dataset("train", args.train_slices, args), dataset("test", args.test_slices, args)
    from medir.metrics import psnr

    base = np.mean([float(psnr(torch.from_numpy(t[0]), torch.from_numpy(t[1]), data_range="target")) for t in test])
    print(f"Low-count brain phantom ({args.size}x{args.size}, {args.counts:g} counts/unit, {args.speedup:g}x thinned), "
          f"{len(train)} training / {len(test)} test slices, {args.steps} Adam steps of {args.batch} x {args.patch}^2 "
          f"crops, lr {args.lr:g} cosine, seeds {args.seeds}. Input PSNR {base:.2f} dB.\n")
    print("| variant | parameters | PSNR dB (mean +- sd) | SSIM (mean +- sd) | seconds per run |\n|---|---:|---:|---:|---:|")
    for name in args.variants or VARIANTS:
        runs, start = [], time.perf_counter()
        for seed in range(args.seeds):
            runs.append(train_eval(name, train, test, seed=seed, args=args))
        p, s = np.array([r[0] for r in runs]), np.array([r[1] for r in runs])
        print(f"| {name} | {runs[0][2]:,} | {p.mean():.2f} +- {p.std(ddof=1) if len(p) > 1 else 0:.2f} | "
              f"{s.mean():.4f} +- {s.std(ddof=1) if len(s) > 1 else 0:.4f} | "
              f"{(time.perf_counter() - start) / args.seeds:.0f} |", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["regions", "ablation"])
    p.add_argument("--slices", type=int, default=8, help="regions: slices measured")
    p.add_argument("--sam", help="regions: a local SAM folder (transformers format)")
    p.add_argument("--medsam", help="regions: a local MedSAM folder")
    p.add_argument("--counts", type=float, default=10.0, help="expected counts per unit activity (grey matter: 4)")
    p.add_argument("--speedup", type=float, default=4.0, help="low-count factor (counts / speedup)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--train-slices", type=int, default=24)
    p.add_argument("--test-slices", type=int, default=6)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=1e-3, help="focal region loss gamma (paper: 1e-3)")
    p.add_argument("--variants", nargs="*", choices=list(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    return regions(args) if args.part == "regions" else ablation(args)


if __name__ == "__main__":
    sys.exit(main())
