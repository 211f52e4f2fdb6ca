"""DiffCode at small scale: Table 2(a) component analysis, shared codebook vs bank, classifier accuracy, codebook
health and the cost of the nearest-code search.

    nice -n 10 python benchmarks/diffcode.py --seeds 3 --doc docs/methods/diffcode.md

Data: :mod:`medir.data.allinone` (train split ``--train-per-task`` pairs per task, test split ``--test-per-task``,
``--size`` pixels). Variants (every one gets the same stage III budget, ``--steps3`` steps of batch 6 at ``--patch``
crops; the prior variants also train stages I and II for ``--steps12`` steps each, a one-time cost as in the paper):

- V1: all-in-one backbone (1 expert, no prior); V2: + routing (4 experts, top-1);
- V3: + codebook bank (prior retrieved by the condition encoder directly, no diffusion);
- DiffCode: + latent diffusion; Shared: DiffCode with one codebook shared by the tasks.

Metrics on the test images (whole slices, with the true task and with the classifier's task): PSNR in physical units with per-image data range
(target max - min), CT clipped to [-160, 240] HU first (AMIR/DiffCode convention). Mean and spread (sample std)
over seeds. Classifier accuracy per task for every variant; codebook perplexity and fraction of codes used per task
codebook (test HQ latents, depth 1 and all depths) from the DiffCode run of seed 0. Timing: nearest-code search of the paper preset
(8 x 8192 x 256, batch 8 of 128x128 crops = 16x16 latents) against one full stage I training step of the same
preset, in this process.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medir.data.allinone import TASKS, AllInOneDataset, AllInOneEval, simulate_pairs  # noqa: E402
from medir.engine.schedule import cosine_lr  # noqa: E402
from medir.methods.diffcode.stages import STAGES  # noqa: E402
from medir.models.diffcode import DiffCodeNet  # noqa: E402
from medir.nn.quantize import code_usage, nearest_code  # noqa: E402

TINY = dict(vq_width=8, vq_blocks=[1, 1], code_dim=16, codebook_size=64, depth=2, width=8, blocks=[1, 1],
            middle_blocks=1, classifier_width=8)
VARIANTS = {
    "V1 backbone": dict(experts=1, prior=False),
    "V2 + routing": dict(experts=4, prior=False),
    "V3 + codebook bank": dict(experts=4, prior=True, diffusion=False),
    "DiffCode (+ latent diffusion)": dict(experts=4, prior=True, diffusion=True),
    "shared codebook": dict(experts=4, prior=True, diffusion=True, codebooks=1),
}
CT_WINDOW = (-160.0, 240.0)


def train_stage(method, data, *, steps: int, seed: int, batch: int = 6, lr: float = 2e-4) -> None:
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    torch.manual_seed(seed)
    method.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, base_lr=lr, steps=steps, warmup=0, min_lr=1e-6)
        items = [data[step * batch + j] for j in range(batch)]
        loss, _ = method({k: torch.stack([it[k] for it in items]) for k in items[0]})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def train_variant(args, pairs, options: dict, seed: int) -> DiffCodeNet:
    torch.manual_seed(seed)
    net = DiffCodeNet(**TINY, **options)
    data = AllInOneDataset(pairs, patch_size=args.patch, seed=seed)
    for stage in (1, 2, 3) if net.prior else (3,):
        steps = args.steps3 if stage == 3 else args.steps12
        train_stage(STAGES[stage](net), data, steps=steps, seed=seed * 10 + stage)
    return net.eval()


def psnr(pred: torch.Tensor, target: torch.Tensor, task: int) -> float:
    if TASKS[task] == "ct-lowdose":
        pred, target = pred.clamp(*CT_WINDOW), target.clamp(*CT_WINDOW)
    data_range = float(target.max() - target.min())
    mse = float(((pred - target) ** 2).mean())
    return 10 * math.log10(data_range**2 / max(mse, 1e-12))


@torch.no_grad()
def evaluate(net: DiffCodeNet | None, test: AllInOneEval) -> dict[str, dict[int, float]]:
    """Per task: mean PSNR with the true task (``oracle``; ``net=None``: the LQ input), with the classifier's task
    (``routed``, what ``medir restore`` does) and the classifier's accuracy (``accuracy``)."""
    out: dict[str, dict[int, list[float]]] = {"oracle": {}, "routed": {}, "accuracy": {}}
    for item in test:
        task = int(item["task"])
        offset, span = item["offset"], item["span"]
        lq, hq = item["lq"][None], item["hq"][None] * span + offset
        if net is None:
            out["oracle"].setdefault(task, []).append(psnr(lq * span + offset, hq, task))
            continue
        oracle = net.restore(lq, torch.tensor([task])) * span + offset
        out["oracle"].setdefault(task, []).append(psnr(oracle, hq, task))
        out["routed"].setdefault(task, []).append(psnr(net(lq * span + offset), hq, task))
        guess = int(net.classifier(lq * span + offset).argmax(dim=1))
        out["accuracy"].setdefault(task, []).append(float(guess == task))
    return {k: {t: statistics.mean(v) for t, v in d.items()} for k, d in out.items()}


@torch.no_grad()
def codebook_health(net: DiffCodeNet, test: AllInOneEval) -> dict[int, dict[str, float]]:
    """Per task codebook: perplexity and fraction used, depth 1 and all depths, over the test HQ latents."""
    out = {}
    for task in range(len(TASKS)):
        hq = torch.stack([it["hq"] for it in test if int(it["task"]) == task])
        _, codes, _ = net.bank(net.vq_encoder(hq), torch.full((hq.shape[0],), task))
        size = net.bank.books[0].codebook_size
        first, every = code_usage(codes[:, 0], size), code_usage(codes, size)
        out[task] = {"perplexity_d1": first["perplexity"], "used_d1": first["used"],
                     "perplexity_all": every["perplexity"], "used_all": every["used"]}
    return out


def nearest_code_share() -> tuple[float, float]:
    """(seconds of the 8-depth nearest-code search, seconds of one stage I step) at the paper preset."""
    net = DiffCodeNet(vq_width=64, vq_blocks=[2, 2, 4], code_dim=256, codebook_size=8192, depth=8, width=8,
                      blocks=[1], experts=1, diffusion=False)
    method = STAGES[1](net).train()
    batch = {"hq": torch.rand(8, 1, 128, 128), "lq": torch.rand(8, 1, 128, 128), "task": torch.arange(8) % 3}
    z = net.vq_encoder(batch["hq"]).detach()
    rows = z.permute(0, 2, 3, 1).reshape(-1, 256)
    book = net.bank.books[0].codebook.detach()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        residual = rows
        for _ in range(8):
            residual = residual - book[nearest_code(residual, book)]
        times.append(time.perf_counter() - t)
    search = min(times)
    steps = []
    for _ in range(2):
        t = time.perf_counter()
        loss, _ = method(batch)
        loss.backward()
        steps.append(time.perf_counter() - t)
    return search, min(steps)


def fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def run(args) -> str:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    train_pairs = simulate_pairs("train", per_task=args.train_per_task, size=args.size, seed=0)
    test = AllInOneEval(simulate_pairs("test", per_task=args.test_per_task, size=args.size, seed=1))
    print(f"data simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    base = evaluate(None, test)["oracle"]
    rows: dict[str, dict[str, dict[int, list[float]]]] = {}
    health = None
    for name, options in VARIANTS.items():
        rows[name] = {k: {t: [] for t in range(len(TASKS))} for k in ("oracle", "routed", "accuracy")}
        for seed in range(args.seeds):
            t = time.perf_counter()
            net = train_variant(args, train_pairs, options, seed)
            result = evaluate(net, test)
            for kind, per_task in result.items():
                for task, v in per_task.items():
                    rows[name][kind][task].append(v)
            if name.startswith("DiffCode") and seed == 0:
                health = codebook_health(net, test)
            print(f"{name} seed {seed}: " + ", ".join(f"{TASKS[k]} {v:.2f}/{result['routed'][k]:.2f}"
                                                      for k, v in result["oracle"].items())
                  + f" ({time.perf_counter() - t:.0f} s)", flush=True)
    search, step = nearest_code_share()
    lines = []
    for kind, title in (("oracle", "PSNR (dB) with the true task"), ("routed", "PSNR (dB) with the task the "
                                                                             "classifier infers (medir restore)")):
        lines += [f"**{title}**", "", f"| variant | {' | '.join(TASKS)} | mean |", "|---|" + "---|" * (len(TASKS) + 1),
                  f"| LQ input | {' | '.join(f'{base[t]:.2f}' for t in range(len(TASKS)))} | "
                  f"{statistics.mean(base.values()):.2f} |"]
        for name, kinds in rows.items():
            per_task = kinds[kind]
            means = [statistics.mean([per_task[t][s] for t in per_task]) for s in range(args.seeds)]
            lines.append(f"| {name} | {' | '.join(fmt(per_task[t]) for t in per_task)} | {fmt(means)} |")
        lines.append("")
    lines += ["**Task classifier accuracy on held-out test images (%, mean ± std over seeds)**", "",
              f"| variant | {' | '.join(TASKS)} |", "|---|" + "---|" * len(TASKS)]
    for name, kinds in rows.items():
        acc = kinds["accuracy"]
        lines.append(f"| {name} | {' | '.join(fmt([100 * v for v in acc[t]]) for t in acc)} |")
    lines += ["", "Codebook health (DiffCode seed 0, test HQ latents; codebook size "
              f"{TINY['codebook_size']}, depth {TINY['depth']}):", "",
              "| task codebook | perplexity (depth 1) | used (depth 1) | perplexity (all depths) | used (all depths) |",
              "|---|---|---|---|---|"]
    for t, h in (health or {}).items():
        lines.append(f"| {TASKS[t]} | {h['perplexity_d1']:.1f} | {100 * h['used_d1']:.0f} % | "
                     f"{h['perplexity_all']:.1f} | {100 * h['used_all']:.0f} % |")
    lines += ["", f"Nearest-code search, paper preset (8 depths x 8192 codes x 256 dims, batch 8 of 128x128 crops = "
              f"2048 latent vectors): {1000 * search:.0f} ms, {100 * search / step:.1f} % of one stage I training "
              f"step ({step:.2f} s, forward + backward, {args.threads} threads, CPU)."]
    settings = (f"{args.seeds} seeds, {args.size}x{args.size} images ({args.train_per_task} train / "
                f"{args.test_per_task} test per task), {args.patch}x{args.patch} crops, batch 6, stage III "
                f"{args.steps3} steps for every variant, stages I and II {args.steps12} steps each; "
                f"total {time.perf_counter() - t0:.0f} s")
    return "\n".join(lines + ["", settings])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--train-per-task", type=int, default=8)
    p.add_argument("--test-per-task", type=int, default=4)
    p.add_argument("--steps12", type=int, default=200)
    p.add_argument("--steps3", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--doc", type=Path, help="replace the table between the BENCHMARK markers of this file")
    args = p.parse_args()
    table = run(args)
    print(table)
    if args.doc:
        text = args.doc.read_text(encoding="utf-8")
        start, end = "<!-- BENCHMARK START -->", "<!-- BENCHMARK END -->"
        head, rest = text.split(start)
        _, tail = rest.split(end)
        command = " ".join(["nice -n 10 python benchmarks/diffcode.py", *sys.argv[1:]])
        args.doc.write_text(f"{head}{start}\n`{command}`\n\n{table}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
