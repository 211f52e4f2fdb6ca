"""LRformer: the cost of GFCA against spatial cross-attention, and the prior / attention ablation.

    python benchmarks/lrformer.py cost                      # FLOPs, CPU time, peak memory at 128^2 and 256^2
    python benchmarks/lrformer.py ablation --seeds 3        # no / raw / reliable prior, GFCA vs spatial (CT)

``cost``: every module maps the same (1, C, S, S) image features and prior features to (1, C, S, S),
with the same projections; one process, one thread, variants interleaved, median of ``--repeats`` runs;
ratios are against the fused spatial cross-attention measured in the same process. Peak memory is the
largest total size of live tensors between operators (a dispatch-mode tracker; workspaces inside one
operator, e.g. the FFT's, are not seen). FLOPs: torch's FlopCounterMode (convolutions, attention
matrices) plus :func:`medir.nn.frequency_attention.core_flops` for the FFTs it does not count.

``ablation``: see :func:`ablation`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medir.models.complexity import _CUSTOM  # noqa: E402
from medir.nn.frequency_attention import GuidedFrequencyCrossAttention, SpatialCrossAttention, core_flops  # noqa: E402


class PeakTensorMemory(TorchDispatchMode):
    """Largest total ``nbytes`` of live CPU tensor storages created inside the block (``peak``, bytes)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += self.live[key]
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)


def cost_modules(channels: int, patch: int) -> dict[str, torch.nn.Module]:
    """The modules compared, same projections (weights copied from the first) and interface."""
    mods = {
        "spatial (fused softmax)": SpatialCrossAttention(channels, patch=patch),
        "spatial (explicit softmax)": SpatialCrossAttention(channels, patch=patch, fused=False),
        "frequency, full fft2": GuidedFrequencyCrossAttention(channels, patch=patch, spectrum="full"),
        "GFCA (rfft2)": GuidedFrequencyCrossAttention(channels, patch=patch),
    }
    state = mods["spatial (fused softmax)"].proj.state_dict()
    for m in mods.values():
        m.proj.load_state_dict(state)
        m.eval()
    return mods


def flops(module: torch.nn.Module, x: torch.Tensor, p: torch.Tensor, patch: int) -> tuple[int, int]:
    """(total FLOPs, attention-core FLOPs) of one forward."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
        module(x, p)
    counted = counter.get_total_flops()
    size = x.shape[-1]
    if isinstance(module, GuidedFrequencyCrossAttention):
        core = core_flops(height=size, width=size, hidden=module.hidden, patch=patch, kind=module.spectrum)
        return counted + core, core
    core = core_flops(height=size, width=size, hidden=module.hidden, patch=patch, kind="spatial", heads=module.heads)
    return counted, core


def peak_memory(module: torch.nn.Module, x: torch.Tensor, p: torch.Tensor) -> int:
    with torch.no_grad(), PeakTensorMemory() as tracker:
        y = module(x, p)
        del y
    return tracker.peak


def timings(mods: dict[str, torch.nn.Module], x: torch.Tensor, p: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per forward, variants interleaved so that load changes hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in mods}
    with torch.no_grad():
        for m in mods.values():
            m(x, p)  # warm-up
        for _ in range(repeats):
            for k, m in mods.items():
                t0 = time.perf_counter()
                m(x, p)
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def cost(sizes: list[int], channels: int, patch: int, repeats: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"C = {channels}, hidden = {2 * channels}, patch {patch}x{patch}, 1 thread, median of {repeats}; "
          "ratios vs spatial (fused softmax)\n")
    print("| map | module | GFLOPs | core GFLOPs | time ms | peak MiB | FLOPs ratio | time ratio | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        mods = cost_modules(channels, patch)
        x, p = torch.randn(1, channels, size, size), torch.randn(1, channels, size, size)
        t = timings(mods, x, p, repeats)
        rows = {k: (*flops(m, x, p, patch), t[k], peak_memory(m, x, p)) for k, m in mods.items()}
        ref = rows["spatial (fused softmax)"]
        for k, (total, core, sec, mem) in rows.items():
            print(f"| {size}x{size} | {k} | {total / 1e9:.3f} | {core / 1e9:.3f} | {sec * 1e3:.1f} | {mem / 2**20:.1f} "
                  f"| {total / ref[0]:.2f} | {sec / ref[2]:.2f} | {mem / ref[3]:.2f} |")
        core_t = core_timings(mods, size, channels, repeats)
        print(f"| {size}x{size} | attention core only (q, k, v given): " + ", ".join(
            f"{k} {v * 1e3:.1f} ms ({v / core_t['spatial (fused softmax)']:.2f}x)" for k, v in core_t.items()) + " |")


def core_timings(mods: dict[str, torch.nn.Module], size: int, channels: int, repeats: int) -> dict[str, float]:
    """Median seconds of ``mix(q, k, v)`` alone: the part where the variants differ."""
    q, k, v = (torch.randn(1, 2 * channels, size, size) for _ in range(3))
    times: dict[str, list[float]] = {name: [] for name in mods}
    with torch.no_grad():
        for m in mods.values():
            m.mix(q, k, v)
        for _ in range(repeats):
            for name, m in mods.items():
                t0 = time.perf_counter()
                m.mix(q, k, v)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


# --- ablation --------------------------------------------------------------------------------------------------

VARIANTS = [("none", "gfca"), ("raw", "gfca"), ("reliable", "gfca"), ("reliable", "spatial")]
CT_WINDOW = (-160.0, 240.0)


def ct_data(cache: Path | None) -> dict[str, list]:
    """Quarter-dose pseudo-CT head slices (medir.data.ldct, 1 mm): 4 training and 2 test slices, HU."""
    import numpy as np

    if cache is not None and cache.is_file():
        with np.load(cache) as d:
            return {k: list(d[k]) for k in ("train_lq", "train_hq", "test_lq", "test_hq")}
    from medir.data.ldct import pseudo_ct_head, quarter_dose
    from medir.io import Image, ImageMeta

    out: dict[str, list] = {k: [] for k in ("train_lq", "train_hq", "test_lq", "test_hq")}
    for split, zs in (("train", (50, 62, 74, 86)), ("test", (118, 134))):
        for z in zs:
            hu = pseudo_ct_head(z, pixel_mm=1.0)[:224, :192]
            lq = quarter_dose(Image(hu, ImageMeta(modality="CT", units="HU", spacing=(1.0, 1.0))), seed=z)
            out[f"{split}_hq"].append(hu.astype(np.float32))
            out[f"{split}_lq"].append(lq.astype(np.float32))
    if cache is not None:
        np.savez(cache, **{k: np.stack(v) for k, v in out.items()})
    return out


def patches(data: dict[str, list], *, count: int, size: int, seed: int = 0):
    """``count`` fixed random (lq, hq) patches in network space (CT preset), (N, 1, size, size) each."""
    import numpy as np

    from medir.data.intensity import get_preset

    preset, rng = get_preset("ct"), np.random.default_rng(seed)
    lqs, hqs = [], []
    for i in range(count):
        k = i % len(data["train_hq"])
        h, w = data["train_hq"][k].shape
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        lqs.append(preset.to_network(data["train_lq"][k][y:y + size, x:x + size]))
        hqs.append(preset.to_network(data["train_hq"][k][y:y + size, x:x + size]))
    return torch.from_numpy(np.stack(lqs))[:, None], torch.from_numpy(np.stack(hqs))[:, None]


def train_variant(prior: str, attention: str, seed: int, lq, hq, priors, *, steps: int, lr: float, patch: int = 8,
                  batch: int = 4):
    """One tiny LRformer trained for ``steps`` Adam steps on the fixed patches (same batches for every variant)."""
    from medir.engine.schedule import cosine_lr
    from medir.models import build_preset

    torch.manual_seed(seed)
    net = build_preset("lrformer_tiny", prior=prior, attention=attention, samples=4, modality="CT", patch=patch,
                       intensity={"mode": "fixed", "lo": -1024.0, "hi": 3071.0})
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, base_lr=lr, steps=steps, warmup=5, min_lr=1e-5)
        idx = torch.randint(0, len(lq), (batch,), generator=order)
        pred = net.restore(lq[idx], None if prior == "none" else priors[prior][idx])
        loss = (pred - hq[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), (time.perf_counter() - t0) / steps


def test_psnr(net, data) -> float:
    """Mean PSNR (dB) over the test slices, CT window [-160, 240] HU, fixed data range 400 HU; prior computed
    on the fly from each whole slice, as `medir restore` does."""
    from medir.data.intensity import get_preset
    from medir.metrics import psnr

    preset = get_preset("ct")
    scores = []
    with torch.no_grad():
        for lq, hq in zip(data["test_lq"], data["test_hq"]):
            x = torch.from_numpy(preset.to_network(lq))[None, None]
            y = preset.from_network(net(x)[0, 0].numpy(), preset.scale_for(lq))
            scores.append(float(psnr(torch.from_numpy(y), torch.from_numpy(hq), data_range=400.0, window=CT_WINDOW)))
    return sum(scores) / len(scores)


def ablation(*, seeds: int, steps: int, lr: float = 2e-3, patches_n: int = 96, size: int = 32, patch: int = 8,
             variants: list[str] | None = None, cache: Path | None = None) -> None:
    """No / raw / reliable prior x GFCA / spatial cross-attention, equal budget: the same fixed training patches
    (4 quarter-dose pseudo-CT slices), the same batches and ``steps`` Adam steps per seed, tiny LRformer
    (``lrformer_tiny``, classical segmenter, reliable = 4 Monte-Carlo samples). Priors of the training patches
    are computed once; test priors on the fly from the whole test slices. Mean and spread (sample std) over seeds."""
    import numpy as np

    from medir.metrics import psnr
    from medir.models import build_preset

    torch.set_num_threads(1)
    data = ct_data(cache)
    lq, hq = patches(data, count=patches_n, size=size)
    priors = {}
    for mode in ("raw", "reliable"):
        net = build_preset("lrformer_tiny", prior=mode, samples=4, modality="CT",
                           intensity={"mode": "fixed", "lo": -1024.0, "hi": 3071.0})
        priors[mode] = torch.cat([net.prior_for(lq[i:i + 1]) for i in range(len(lq))])
    base = np.mean([float(psnr(torch.from_numpy(l), torch.from_numpy(h), data_range=400.0, window=CT_WINDOW))
                    for l, h in zip(data["test_lq"], data["test_hq"])])
    print(f"quarter-dose input: {base:.2f} dB; {steps} Adam steps (lr {lr:g}, cosine) x batch 4, "
          f"{patches_n} patches of {size}^2, "
          f"{patch}x{patch} attention windows, seeds 0..{seeds - 1}; mean reliability of training priors {priors['reliable'][:, 2].mean():.3f}\n")
    print("| prior | attention | params | PSNR dB (mean +- std) | per seed | s/step |")
    print("|---|---|---|---|---|---|")
    for prior, attention in VARIANTS:
        if variants and f"{prior}/{attention}" not in variants:
            continue
        scores, secs = [], []
        for seed in range(seeds):
            net, sec = train_variant(prior, attention, seed, lq, hq, priors, steps=steps, lr=lr, patch=patch)
            scores.append(test_psnr(net, data))
            secs.append(sec)
        params = sum(p.numel() for p in net.parameters())
        print(f"| {prior} | {attention} | {params:,} | {np.mean(scores):.2f} +- {np.std(scores, ddof=1):.2f} | "
              f"{', '.join(f'{s:.2f}' for s in scores)} | {np.mean(secs):.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="GFCA vs spatial cross-attention: FLOPs, time, peak memory")
    c.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    c.add_argument("--channels", type=int, default=32)
    c.add_argument("--patch", type=int, default=8)
    c.add_argument("--repeats", type=int, default=7)
    a = sub.add_parser("ablation", help="no / raw / reliable prior and GFCA vs spatial on low-dose CT")
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--lr", type=float, default=2e-3)
    a.add_argument("--size", type=int, default=32, help="training patch side")
    a.add_argument("--patch", type=int, default=8, help="GFCA / spatial attention window")
    a.add_argument("--variants", nargs="+", help="prior/attention pairs to run, e.g. reliable/gfca (default: all)")
    a.add_argument("--data-cache", type=Path, help="NPZ to keep the simulated slices in between runs")
    args = ap.parse_args(argv)
    if args.what == "cost":
        cost(args.sizes, args.channels, args.patch, args.repeats)
    else:
        ablation(seeds=args.seeds, steps=args.steps, lr=args.lr, size=args.size, patch=args.patch,
                 variants=args.variants, cache=args.data_cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
