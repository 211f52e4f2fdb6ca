"""Time medir's backbones against the reference implementations at equal configuration (CPU).

The reference code is NOT part of medir: this script reads it at run time from git snapshots
of the public repositories (fetched beforehand into /work/.mirror or --mirror), writes the few
files it needs into a temporary directory, and imports them from there. Missing third-party
imports the references make but do not use for inference (timm's DropPath and init helpers,
basicsr's logger) are replaced by small stubs; Restormer needs einops.

For each pair (eval, no grad, batch 1, 3 channels): parameters of both, the forward times and
the ratio medir / reference (< 1: medir is faster): fastest of --repeats alternating forwards.

    python benchmarks/backbones_vs_reference.py --size 256 --threads 2
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from medir.models import build_preset

MIRROR = Path("/work/.mirror")
FILES = {
    "nafnet": ("megvii-research+NAFNet", {
        "basicsr/models/archs/NAFNet_arch.py": "basicsr/models/archs/NAFNet_arch.py",
        "basicsr/models/archs/arch_util.py": "basicsr/models/archs/arch_util.py",
        "basicsr/models/archs/local_arch.py": "basicsr/models/archs/local_arch.py"}),
    "restormer": ("swz30+Restormer", {"basicsr/models/archs/restormer_arch.py": "restormer_arch.py"}),
    "swinir": ("JingyunLiang+SwinIR", {"models/network_swinir.py": "network_swinir.py"}),
    "rcan": ("yulunzhang+RCAN", {"RCAN_TrainCode/code/model/rcan.py": "model/rcan.py",
                                 "RCAN_TrainCode/code/model/edsr.py": "model/edsr.py",
                                 "RCAN_TrainCode/code/model/common.py": "model/common.py"}),
}


def extract(root: Path, mirror: Path) -> None:
    """Write the reference files into ``root`` (git show from the bare snapshots) and stub packages."""
    for repo, files in FILES.values():
        git = mirror / repo / "repo"
        for src, dst in files.items():
            text = subprocess.run(["git", "-C", str(git), "show", f"HEAD:{src}"], capture_output=True, text=True,
                                  check=True).stdout
            (root / dst).parent.mkdir(parents=True, exist_ok=True)
            (root / dst).write_text(text)
    for pkg in ["basicsr", "basicsr/models", "basicsr/models/archs", "model"]:
        (root / pkg / "__init__.py").touch()
    _stub("basicsr.utils", get_root_logger=lambda *a, **k: None)
    from torch.nn.init import trunc_normal_
    _stub("timm")
    _stub("timm.models")
    _stub("timm.models.layers", trunc_normal_=trunc_normal_, DropPath=torch.nn.Identity.__class__("DropPath", (
        torch.nn.Identity,), {}), to_2tuple=lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x))
    sys.path.insert(0, str(root))


def _stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _args(**kw) -> types.SimpleNamespace:
    return types.SimpleNamespace(**{"rgb_range": 1, "n_colors": 3, "res_scale": 1, **kw})


def pairs() -> list[tuple[str, callable, callable]]:
    """(label, medir builder, reference builder) at equal configuration, 3 channels."""
    from basicsr.models.archs.NAFNet_arch import NAFNet
    from model import edsr, rcan
    from network_swinir import SwinIR
    from restormer_arch import Restormer

    swin = dict(in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=[6] * 6, embed_dim=180,
                num_heads=[6] * 6, mlp_ratio=2, resi_connection="1conv")
    return [
        ("nafnet_width32", lambda: build_preset("nafnet_width32"),
         lambda: NAFNet(img_channel=3, width=32, middle_blk_num=12, enc_blk_nums=[2, 2, 4, 8], dec_blk_nums=[2, 2, 2, 2])),
        ("nafnet_gopro_width32", lambda: build_preset("nafnet_gopro_width32"),
         lambda: NAFNet(img_channel=3, width=32, middle_blk_num=1, enc_blk_nums=[1, 1, 1, 28], dec_blk_nums=[1, 1, 1, 1])),
        ("restormer_base", lambda: build_preset("restormer_base"), lambda: Restormer()),
        ("swinir_denoise", lambda: build_preset("swinir_denoise"), lambda: SwinIR(upscale=1, upsampler="", **swin)),
        ("swinir_sr_classical x2", lambda: build_preset("swinir_sr_classical", scale=2),
         lambda: SwinIR(upscale=2, upsampler="pixelshuffle", **swin)),
        ("edsr_baseline x2", lambda: build_preset("edsr_baseline", scale=2),
         lambda: edsr.EDSR(_args(n_resblocks=16, n_feats=64, scale=[2]))),
        ("rcan_base x2", lambda: build_preset("rcan_base", scale=2),
         lambda: rcan.RCAN(_args(n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, scale=[2]))),
    ]


# Reference state-dict key -> medir key, as (pattern, replacement) applied in order.
RENAMES = {
    "nafnet": [(r"^encoders\.", "encoder.stages."), (r"^downs\.(\d+)\.", r"encoder.downs.\1.0."),
               (r"^middle_blks\.", "middle."), (r"^ups\.", "decoder.ups."), (r"^decoders\.", "decoder.stages."),
               (r"\.sca\.1\.", ".sca.proj.")],
    "restormer": [(r"^patch_embed\.proj\.", "patch_embed."), (r"^encoder_level(\d)\.", lambda m: f"encoders.{int(m[1]) - 1}."),
                  (r"^down(\d)_\d\.body\.", lambda m: f"downs.{int(m[1]) - 1}."),
                  (r"^up(\d)_\d\.body\.", lambda m: f"ups.{4 - int(m[1])}."),
                  (r"^reduce_chan_level(\d)\.", lambda m: f"reduces.{3 - int(m[1])}."),
                  (r"^decoder_level(\d)\.", lambda m: f"decoders.{3 - int(m[1])}."), (r"\.body\.weight$", ".weight"),
                  (r"\.body\.bias$", ".bias")],
    "swinir": [(r"^patch_embed\.norm\.", "patch_norm."), (r"\.residual_group\.", "."), (r"\.mlp\.fc1\.", ".mlp.0."),
               (r"\.mlp\.fc2\.", ".mlp.2."), (r"^conv_before_upsample\.0\.", "head.0."),
               (r"^upsample\.(\d+)\.", r"head.2.\1."), (r"^conv_last\.", "head.LAST.")],
    "swinir_direct": [(r"^patch_embed\.norm\.", "patch_norm."), (r"\.residual_group\.", "."),
                      (r"\.mlp\.fc1\.", ".mlp.0."), (r"\.mlp\.fc2\.", ".mlp.2."), (r"^upsample\.0\.", "head.0.")],
    "edsr": [(r"^head\.0\.", "head.")],
    "rcan": [(r"^head\.0\.", "head."), (r"\.conv_du\.", ".body.")],
}
SKIP = re.compile(r"(relative_position_index|attn_mask|sub_mean|add_mean)")


def load_reference_weights(ours: torch.nn.Module, ref: torch.nn.Module, family: str) -> None:
    """Copy the reference model's weights into ours by renaming keys; every tensor must find its place."""
    last = str(len(ours.head) - 1) if hasattr(ours, "head") and isinstance(ours.head, torch.nn.Sequential) else ""
    mine = ours.state_dict()
    mapped = {}
    for key, value in ref.state_dict().items():
        if SKIP.search(key):
            continue
        for pattern, repl in RENAMES[family]:
            key = re.sub(pattern, repl, key)
        mapped[key.replace("LAST", last)] = value
    missing, unexpected = set(mine) - set(mapped), set(mapped) - set(mine)
    if missing or unexpected:
        raise KeyError(f"{family}: unmatched keys, missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    ours.load_state_dict(mapped)


def best_ms(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, rounds: int) -> tuple[float, float]:
    """Fastest of ``rounds`` forwards of each model, alternating a and b after one warm-up each.

    On a shared machine the minimum is the estimate least disturbed by other load, and
    alternation exposes both models to the same load pattern.
    """
    best = [float("inf"), float("inf")]
    with torch.no_grad():
        a(x), b(x)
        for _ in range(rounds):
            for i, model in enumerate((a, b)):
                t = time.perf_counter()
                model(x)
                best[i] = min(best[i], 1000 * (time.perf_counter() - t))
    return best[0], best[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds; the fastest counts")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--only", nargs="*", help="labels to run (default: all)")
    p.add_argument("--mirror", type=Path, default=MIRROR)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        extract(Path(tmp), args.mirror)
        print(f"| pair | params medir | params ref | ms medir | ms ref | ratio |  ({args.size}x{args.size}, "
              f"{args.threads} threads)\n|---|---:|---:|---:|---:|---:|")
        for label, ours, theirs in pairs():
            if args.only and label not in args.only:
                continue
            x = torch.rand(1, 3, args.size, args.size)
            a, b = ours().eval(), theirs().eval()
            ta, tb = best_ms(a, b, x, args.repeats)
            na, nb = (sum(q.numel() for q in m.parameters()) for m in (a, b))
            print(f"| {label} | {na:,} | {nb:,} | {ta:.0f} | {tb:.0f} | {ta / tb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
