"""MFdiff at small scale on the brain PET/MR phantom: sampler speed, Table 5 ablation, lesions, uncertainty.

    nice -n 10 python benchmarks/mfdiff.py            # ~15-25 min on a shared 2-core CPU; writes the docs table
    python benchmarks/mfdiff.py --quick               # a smoke run (seconds), writes nothing

Data: 128 x 128 phantom slices (2 mm pixels, the grid ``mfdiff-low`` was calibrated on), split by subject,
scored on their central 64 x 64 (the brain's centre, to keep sampling cheap); external set (``train`` subjects, ``mfdiff-low``
input), internal shifted set (``val`` subjects, half the counts, 5 mm PSF, grey:white 3:1, weaker lesions),
test sets of the ``test`` subjects under both protocols; hot lesions only in PET. Cached in --cache.
Every variant trains the same steps, batch, crop and learning rate (equal budgets), for each seed.
Speed is a ratio measured in this process (DDPM 1000 steps vs DDIM 50 on the same images).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medir.methods.mfdiff import VARIANTS, build  # noqa: E402
from medir.methods.mfdiff.data import INTERNAL_SHIFT, PairSet, simulate_pairs  # noqa: E402
from medir.methods.mfdiff.evaluate import image_metrics, lesion_contrast_recovery, uncertainty_correlation  # noqa
from medir.methods.mfdiff.train import fit, single_stage, two_stage  # noqa: E402

PAPER_INPUT = "21.13 dB / NMSE 0.176"


def datasets(args) -> dict[str, PairSet]:
    """The four pair sets (simulated once, then read from the cache); test sets cut to their central --eval-crop."""
    sets = _simulated(args)
    return {k: v.center_crop(args.eval_crop) if k.startswith("test") else v for k, v in sets.items()}


def _simulated(args) -> dict[str, PairSet]:
    path = Path(args.cache) / f"mfdiff_pairs_{args.size}_{args.subjects}_{args.slices}.pt"
    if path.is_file():
        return {k: PairSet(**v) for k, v in torch.load(path, weights_only=True).items()}
    t = time.time()
    sets = {"external": simulate_pairs("train", size=args.size, subjects=args.subjects, slices=args.slices, seed=1),
            "internal": simulate_pairs("val", size=args.size, slices=args.slices, protocol=INTERNAL_SHIFT, seed=2),
            "test": simulate_pairs("test", size=args.size, slices=args.slices, seed=3),
            "test_shift": simulate_pairs("test", size=args.size, slices=args.slices, protocol=INTERNAL_SHIFT, seed=4)}
    print(f"simulated {sum(len(s) for s in sets.values())} pairs in {time.time() - t:.0f} s", flush=True)
    if not args.quick:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({k: vars(v) for k, v in sets.items()}, tmp)
        tmp.replace(path)
    return sets


def train_variant(variant: str, data: PairSet, args, seed: int):
    torch.manual_seed(seed)
    net = build(variant, "tiny")
    t = time.time()
    fit(net, data, steps=args.steps, batch=args.batch, lr=args.lr, crop=args.crop, seed=seed)
    return net, time.time() - t


def restore(net, data: PairSet, *, sampler="ddim", steps=50, samples=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return net.restore(data.low, data.mr, sampler=sampler, steps=steps, samples=samples, generator=g)


def fmt(values, digits: int) -> str:
    v = [float(x) for x in values]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.{digits}f} ± {sd:.{digits}f}"


def ablation(sets, args, out: list[str]) -> dict:
    test = sets["test"]
    base = image_metrics(test.low, test.high)
    rows, kept = {}, {}
    for variant in VARIANTS:
        per_seed, secs = [], []
        for seed in range(args.seeds):
            net, s = train_variant(variant, sets["external"], args, seed)
            pred, _ = restore(net, test, seed=seed)
            m = image_metrics(pred, test.high)
            cr = lesion_contrast_recovery(pred, test.high, test.lesion)
            per_seed.append({k: float(v.mean()) for k, v in m.items()} | {"cr": float(cr.mean())})
            secs.append(s)
            if seed == 0:
                kept[variant] = net
            print(f"{variant} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in per_seed[-1].items())
                  + f" ({s:.0f} s)", flush=True)
        rows[variant] = per_seed
    if args.long_steps:
        long_args = argparse.Namespace(**{**vars(args), "steps": args.long_steps})
        net, secs = train_variant("mfdiff", sets["external"], long_args, 0)
        pred, _ = restore(net, test, seed=0)
        m = image_metrics(pred, test.high)
        rows[f"mfdiff, {args.long_steps} steps (1 seed)"] = [{k: float(v.mean()) for k, v in m.items()}
                                                             | {"cr": float(lesion_contrast_recovery(pred, test.high,
                                                                                                     test.lesion).mean())}]
        kept["mfdiff"] = net
        print(f"mfdiff long: {rows[f'mfdiff, {args.long_steps} steps (1 seed)'][0]} ({secs:.0f} s)", flush=True)
    cr_in = lesion_contrast_recovery(test.low, test.high, test.lesion)
    out += ["## Table 5 at small scale", "",
            f"{len(test)} test slices (central {args.eval_crop}x{args.eval_crop} of {args.size}x{args.size}, 2 test subjects), {args.seeds} seeds; every variant "
            f"trained {args.steps} AdamW steps, batch {args.batch}, {args.crop}x{args.crop} crops, lr {args.lr} on "
            f"{len(sets['external'])} external pairs. Mean ± std over seeds of the per-seed test means. MFdiff "
            "samples with DDIM 50 steps, one sample. Data range per slice = target max - min.", "",
            "| Method | PSNR (dB) | SSIM | NMSE | lesion CR |", "|---|---|---|---|---|",
            f"| low-dose input | {float(base['psnr'].mean()):.2f} | {float(base['ssim'].mean()):.3f} | "
            f"{float(base['nmse'].mean()):.3f} | {float(cr_in.mean()):.2f} |",
            f"| paper's low-dose input (Table 1) | 21.13 | - | 0.176 | - |"]
    for variant, per_seed in rows.items():
        out.append(f"| {variant} | " + " | ".join(fmt([r[k] for r in per_seed], d) for k, d in
                                                   (("psnr", 2), ("ssim", 3), ("nmse", 4), ("cr", 2))) + " |")
    out.append("")
    return kept


def samplers(net, sets, args, out: list[str]) -> None:
    test = sets["test"].subset(slice(0, args.ddpm_images))
    timings, scores = {}, {}
    for name, sampler, steps in (("DDIM 50", "ddim", 50), ("DDPM 1000", "ddpm", 1000)):
        t = time.time()
        pred, _ = restore(net, test, sampler=sampler, steps=steps, seed=7)
        timings[name] = time.time() - t
        scores[name] = image_metrics(pred, test.high)
        print(f"{name}: {timings[name]:.1f} s, PSNR {float(scores[name]['psnr'].mean()):.2f}", flush=True)
    ratio = timings["DDPM 1000"] / timings["DDIM 50"]
    out += ["## Samplers", "", f"MFdiff (the longest-trained run), {len(test)} test slices, one sample each, same process.", "",
            "| Sampler | seconds | PSNR (dB) | SSIM | NMSE |", "|---|---|---|---|---|"]
    for name in timings:
        m = scores[name]
        out.append(f"| {name} | {timings[name]:.1f} | {float(m['psnr'].mean()):.2f} | {float(m['ssim'].mean()):.3f} "
                   f"| {float(m['nmse'].mean()):.4f} |")
    d = float(scores["DDIM 50"]["psnr"].mean() - scores["DDPM 1000"]["psnr"].mean())
    out += ["", f"DDIM 50 is {ratio:.1f}x faster than DDPM 1000; PSNR difference DDIM - DDPM = {d:+.2f} dB.", ""]


@torch.no_grad()
def denoising_profile(net, sets, out: list[str]) -> None:
    """One-step ``x0_hat`` from ``x_t = q(x_t | target)``: where along t the trained denoiser is (in)accurate."""
    from medir.diffusion import q_sample

    test = sets["test"]
    pet_n, mr_n, s = net.normalise(test.low, test.mr)
    cond = net.condition(pet_n, mr_n)
    y = 2.0 * test.high / s - 1.0
    g = torch.Generator().manual_seed(5)
    rows = []
    for t in (10, 100, 300, 600, 900):
        tt = torch.full((len(test),), t, dtype=torch.long)
        noise = torch.randn(y.shape, generator=g)
        x_t = q_sample(y, tt, noise, net.schedule)
        eps = net.denoiser(torch.cat([x_t, cond], dim=1), tt)
        a = float(net.schedule.alphas_cumprod[t])
        x0 = (x_t - (1 - a) ** 0.5 * eps) / a ** 0.5
        m = image_metrics((x0 + 1) * s / 2, test.high)
        rows.append(f"| {t} | {float((eps - noise).square().mean()):.4f} | {float(m['psnr'].mean()):.2f} |")
    out += ["## Denoising profile of the trained MFdiff", "",
            "x_t drawn from q(x_t | target), one denoiser call, x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar).",
            "", "| t | eps MSE | PSNR of x0_hat (dB) |", "|---|---|---|", *rows, ""]


def uncertainty(net, sets, args, out: list[str]) -> None:
    test = sets["test"].subset(slice(0, args.uncertainty_images))
    mean, std = restore(net, test, samples=args.samples, seed=11)
    brain = test.high > 0.05 * test.high.amax(dim=(1, 2, 3), keepdim=True)
    r = uncertainty_correlation(std, mean, test.high, brain)
    m = image_metrics(mean, test.high)
    out += ["## Uncertainty", "",
            f"MFdiff (the longest-trained run), {len(test)} test slices, DDIM 50, {args.samples} samples per slice: the mean scores PSNR "
            f"{float(m['psnr'].mean()):.2f} dB; Pearson correlation of the per-pixel std with |mean - target| "
            f"inside the head: r = {r:.2f}.", ""]


def stages(sets, args, out: list[str]) -> None:
    """Table 6/7 analogue with CMUNet (no sampling cost): scored on the shifted test set."""
    ext, inn, test = sets["external"], sets["internal"], sets["test_shift"]
    n_int = max(args.stage_steps // 2, 1)
    runs = {}
    for name in ("external", "internal", "two-stage", "single-stage mixed"):
        torch.manual_seed(0)
        net = build("cmunet", "tiny")
        kw = dict(batch=args.batch, lr=args.lr, crop=args.crop, seed=0)
        if name == "external":
            fit(net, ext, steps=args.stage_steps + n_int, **kw)
        elif name == "internal":
            fit(net, inn, steps=args.stage_steps + n_int, **kw)
        elif name == "two-stage":
            two_stage(net, ext, inn, external_steps=args.stage_steps, internal_steps=n_int, **kw)
        else:
            single_stage(net, ext, inn, steps=args.stage_steps + n_int, **kw)
        runs[name] = image_metrics(restore(net, test)[0], test.high)
        print(f"stage {name}: PSNR {float(runs[name]['psnr'].mean()):.2f}", flush=True)
    base = image_metrics(test.low, test.high)
    out += ["## Two-stage learning (Tables 6-7 analogue, CMUNet, shifted test set)", "",
            f"{args.stage_steps + n_int} steps in every row ({args.stage_steps} external + {n_int} internal for two-stage); "
            f"{len(inn)} internal pairs. Shifted input: PSNR {float(base['psnr'].mean()):.2f} dB, "
            f"NMSE {float(base['nmse'].mean()):.3f}.", "", "| Learning | PSNR (dB) | SSIM | NMSE |", "|---|---|---|---|"]
    for name, m in runs.items():
        out.append(f"| {name} | {float(m['psnr'].mean()):.2f} | {float(m['ssim'].mean()):.3f} | "
                   f"{float(m['nmse'].mean()):.4f} |")
    out.append("")


def slice_time(out: list[str]) -> None:
    x = torch.rand(1, 1, 192, 192) + 0.1
    rows = []
    for size, steps in (("tiny", 50), ("base", 2)):
        net = build("mfdiff", size).eval()
        t, c = time.time(), time.process_time()
        net.restore(x, x, steps=steps)
        s, cpu = time.time() - t, time.process_time() - c
        rows.append(f"| {size} | {cpu:.1f} s CPU ({s:.1f} s wall) for {steps} steps | {cpu / steps * 50:.0f} s CPU |")
    out += ["## One 192 x 192 slice, default sampler (DDIM 50, one sample), 1 CPU thread", "",
            "CPU time of this process (wall time depends on the machine's load).", "",
            "| Size | measured | DDIM 50 (base: extrapolated from the measured steps) |", "|---|---|---|", *rows, ""]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128, help="phantom grid (128: 2 mm, the emission calibration's)")
    p.add_argument("--eval-crop", type=int, default=64, help="test on the central crop of this size")
    p.add_argument("--subjects", type=int, default=4, help="external (train) subjects")
    p.add_argument("--slices", type=int, default=8, help="slices per subject")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--long-steps", type=int, default=600, help="an extra MFdiff run (seed 0) with more steps, used "
                   "for the sampler and uncertainty sections (0: use the equal-budget seed 0)")
    p.add_argument("--stage-steps", type=int, default=100, help="external steps of the two-stage table")
    p.add_argument("--uncertainty-images", type=int, default=8)
    p.add_argument("--samples", type=int, default=3, help="samples for the uncertainty map")
    p.add_argument("--ddpm-images", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "medir" / "benchmarks"))
    p.add_argument("--out", default=str(ROOT / "docs" / "methods" / "mfdiff_results.md"))
    p.add_argument("--sections", default="ablation,samplers,profile,uncertainty,stages,time",
                   help="comma list; without ablation, one MFdiff run of --long-steps feeds samplers / uncertainty")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny everything, writes nothing")
    args = p.parse_args()
    if args.quick:
        args.size, args.eval_crop, args.subjects, args.slices, args.steps, args.seeds = 32, 32, 1, 2, 2, 2
        args.samples, args.ddpm_images, args.crop, args.long_steps, args.stage_steps = 2, 1, 16, 3, 2
    torch.set_num_threads(args.threads)
    t0 = time.time()
    sets = datasets(args)
    out = [f"# MFdiff benchmark (`python benchmarks/mfdiff.py {' '.join(sys.argv[1:])}`)".rstrip(), ""]
    sections = set(args.sections.split(","))
    net = None
    if "ablation" in sections:
        net = ablation(sets, args, out)["mfdiff"]
    elif sections & {"samplers", "profile", "uncertainty"}:  # only the long MFdiff run, for the sampler and uncertainty sections
        net, secs = train_variant("mfdiff", sets["external"], argparse.Namespace(**{**vars(args),
                                                                                   "steps": args.long_steps}), 0)
        m = image_metrics(restore(net, sets["test"])[0], sets["test"].high)
        out += [f"MFdiff trained {args.long_steps} steps ({secs:.0f} s), DDIM 50 on {len(sets['test'])} test slices: "
                + ", ".join(f"{k} {float(v.mean()):.4f}" for k, v in m.items()), ""]
    if "samplers" in sections:
        samplers(net, sets, args, out)
    if "profile" in sections:
        denoising_profile(net, sets, out)
    if "uncertainty" in sections:
        uncertainty(net, sets, args, out)
    if "stages" in sections:
        stages(sets, args, out)
    if "time" in sections and not args.quick:
        slice_time(out)
    out.append(f"Total wall time {time.time() - t0:.0f} s.")
    text = "\n".join(out) + "\n"
    print(text)
    if not args.quick:
        from medir.engine.atomic import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
