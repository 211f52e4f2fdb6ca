"""Benchmark every model preset: parameters, MACs, forward time and peak memory at 256x256 and 512x512.

Batch 1, 3 channels, eval mode, no grad. Each (preset, size) runs in a fresh child process so
that peak memory is its own: on CPU, the rise of the process's peak resident set size
(VmHWM, reset just before the first forward) over its resident size at that point; on CUDA,
torch.cuda.max_memory_allocated. Time: median of --repeats forwards after one warm-up.
MACs = FLOPs / 2 from torch.utils.flop_counter (convolutions, matmuls, attention).

    python benchmarks/backbones.py --threads 2 --out docs/backbones.md
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from medir.models import PRESETS
from medir.models.complexity import describe

HEADER = "| preset | params | GMACs 256 | ms 256 | MiB 256 | GMACs 512 | ms 512 | MiB 512 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where Linux refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, size: int, repeats: int, device: str, threads: int) -> dict:
    """Time one preset at one size in this process; returns a JSON-ready dict."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PRESETS[name](in_channels=3, out_channels=3).eval().to(device)
    x = torch.rand(1, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    base = _rss_mib()
    if device == "cpu" and not _reset_peak_rss():
        print("warning: cannot reset the peak-RSS mark; memory includes start-up", file=sys.stderr)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            sync()
            t = time.perf_counter()
            model(x)
            sync()
            if i:
                times.append(time.perf_counter() - t)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20 - base
    else:
        peak = _peak_rss_mib() - base
    return {"ms": 1000 * statistics.median(times), "mib": peak}


def run_one(name: str, size: int, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", name, str(size), "--repeats", str(args.repeats),
           "--device", args.device, "--threads", str(args.threads)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as err:
        print(f"{name} {size}: failed ({type(err).__name__})", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(name: str, args) -> str:
    cells = [name]
    params = None
    for size in (256, 512):
        params, macs = describe(PRESETS[name], size)
        res = None if macs / 1e9 > args.max_gmacs else run_one(name, size, args)
        timing = ("skipped", "") if res is None else (f"{res['ms']:.0f}", f"{res['mib']:.0f}")
        cells += [f"{macs / 1e9:.1f}", *timing]
    cells.insert(1, f"{params:,}")
    return "| " + " | ".join(cells) + " |\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=2, metavar=("PRESET", "SIZE"))
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--max-gmacs", type=float, default=1000.0, help="skip timing above this cost")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per (preset, size)")
    p.add_argument("--out", help="markdown file to write (default: print)")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.repeats, args.device, args.threads)))
        return
    table = HEADER
    for name in args.presets:
        table += row(name, args)
        print(table.splitlines()[-1], flush=True)
    text = (
        f"Written by `python benchmarks/backbones.py {' '.join(sys.argv[1:])}`.\n"
        f"Device: {args.device}, {args.threads} threads, {platform.machine()}, torch {torch.__version__}. "
        "Batch 1, 3 channels, eval, no grad. SR presets run at their default scale (output 2x larger).\n"
        "MACs = FLOPs / 2 (torch.utils.flop_counter: convolutions, matmuls, attention; element-wise ops not counted). "
        "ms: median forward time; MiB: peak memory of the forward over the model's resident size. "
        f"'skipped': above --max-gmacs {args.max_gmacs:g} or over --timeout {args.timeout:g} s.\n\n" + table
    )
    if args.out:
        write_section(args.out, text)
    else:
        print(text)


def write_section(path: str, text: str) -> None:
    """Replace the text between the benchmark markers of ``path`` (or write a new file)."""
    start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = f"# Backbones\n\n{start}\n{end}\n"
    if start not in doc or end not in doc:
        doc += f"\n{start}\n{end}\n"
    head, rest = doc.split(start, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(f"{head}{start}\n{text}{end}{tail}")

if __name__ == "__main__":
    main()
