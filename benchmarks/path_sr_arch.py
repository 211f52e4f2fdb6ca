"""Which architecture for the shipped 4x pathology SR model: medir's candidates trained alike, scored on validation.

Every candidate is trained by ``medir train configs/sm_sr4_edsr.yaml`` with only the model (and, for RAT, the
method) overridden: same data, patch 24 (low-resolution pixels), batch 8, Adam 1e-3 with cosine decay, ``--steps``
steps each (warm-up a tenth of them). The comparison was run on IHC alone (``--ihc-only``: ihc.png columns 0..255
as one 512 x 256 file, written to ``data/path_sr_ihc_only/train`` if missing), before the photographs joined the
shipped model's training set; the shipped recipe is the same but for that data. Candidates are sized for a CPU (~0.1-0.4 M
parameters). NAFNet and RAT run at scale 4 on the bicubically pre-upsampled input (16x the pixels per conv).

Scored on the validation strip (ihc.png columns 288..351, never trained on; the test set is not touched here):
PSNR/SSIM on RGB, data range 255, ``scale`` border pixels cropped. Speed: training seconds per step (from the
run's log) and inference time of a 128x128 -> 512x512 forward, as a ratio to EDSR measured in the same process.

    OMP_NUM_THREADS=1 python benchmarks/path_sr_arch.py --steps 200 --ihc-only --out runs/path_sr_arch
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

CONFIG = "configs/sm_sr4_edsr.yaml"
RGB3 = "in_channels: 3, out_channels: 3, scale: 4"
CANDIDATES = {
    "edsr": ["model.arch=edsr", f"model.args={{{RGB3}, features: 32, blocks: 8}}"],
    "rcan": ["model.arch=rcan", f"model.args={{{RGB3}, features: 32, groups: 2, blocks: 4, reduction: 8}}"],
    "swinir": ["model.arch=swinir", f"model.args={{{RGB3}, embed_dim: 32, depths: [2, 2], heads: [2, 2], "
                                    "window_size: 8, upsampler: pixelshuffledirect, drop_path: 0.0}"],
    "nafnet": ["model.arch=nafnet", f"model.args={{{RGB3}, width: 8, enc_blocks: [1, 1, 2], middle_blocks: 2, "
                                    "dec_blocks: [1, 1, 1]}"],
    "rat": ["model.arch=null", "model.preset=rat_tiny", f"model.args={{{RGB3}}}",
            "method.name=rat", "method.args={loss: focal, gamma: 1.0e-3, delta: 1.0}"],
}


IHC_ONLY = Path("data/path_sr_ihc_only/train")


def ihc_only_root() -> Path:
    """``data/path_sr_ihc_only/train/ihc_train.png``: ihc.png columns 0..255 (the shipped model's IHC pixels)."""
    from medir.data.pathology import TRAIN_COLS, ihc
    from medir.io import Image, ImageMeta, write_image

    path = IHC_ONLY / "ihc_train.png"
    if not path.is_file():
        IHC_ONLY.mkdir(parents=True, exist_ok=True)
        meta = ImageMeta(modality="SM", units="RGB8", channels=3, source_format="raster", source={"dtype": "uint8"})
        write_image(Image(np.ascontiguousarray(ihc()[:, slice(*TRAIN_COLS)]), meta), path)
    return IHC_ONLY


def train_one(name: str, *, steps: int, out: Path, data: list[str]) -> Path:
    """Train candidate ``name`` (resumes a run already there) and return its model folder."""
    from medir.engine.config import load_config
    from medir.engine.train import train

    overrides = CANDIDATES[name] + data + [f"schedule.steps={steps}", f"schedule.warmup={max(1, steps // 10)}",
                                    f"train.out_dir={out / name}",
                                    f"train.val_every={steps}", f"train.ckpt_every={max(50, steps // 4)}"]
    model_dir = out / name / "model"
    if (model_dir / "config.json").is_file():
        return model_dir
    resume = (out / name / "checkpoints").is_dir()
    return train(load_config(CONFIG, overrides), resume=resume) and model_dir


def val_scores(model_dir: Path, root: Path) -> dict[str, float]:
    """PSNR/SSIM (RGB, range 255, border 4) of the model on every validation image, averaged."""
    from medir.engine.modelfile import load_model
    from path_sr_eval import degrade, restore, score  # benchmarks/ is on sys.path when run as a script

    model, card = load_model(str(model_dir))
    rows = []
    for path in sorted(root.glob("*.png")):
        hq = read_rgb(path)
        rows.append(score(restore(model, card, degrade(hq)), hq))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def bicubic_val(root: Path) -> float:
    """Mean PSNR (RGB, range 255, border 4) of bicubic x4 on the validation images: the floor to beat."""
    from path_sr_eval import bicubic_input, degrade, score

    return float(np.mean([score(bicubic_input(degrade(read_rgb(p))), read_rgb(p))["psnr"]
                          for p in sorted(root.glob("*.png"))]))


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB"))


def sec_per_step(run: Path) -> float:
    with (run / "log.csv").open() as f:
        vals = [float(r["sec_per_step"]) for r in csv.DictReader(f) if r.get("sec_per_step")]
    return float(np.median(vals))


def infer_time(model_dir: Path, reps: int = 3) -> float:
    from medir.engine.modelfile import load_model

    model, _ = load_model(str(model_dir))
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        model(x)
        t = time.perf_counter()
        for _ in range(reps):
            model(x)
    return (time.perf_counter() - t) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("runs/path_sr_arch"))
    p.add_argument("--val", type=Path, default=Path("data/path_sr/val"))
    p.add_argument("--only", nargs="*", default=list(CANDIDATES), help="candidates to run")
    p.add_argument("--ihc-only", action="store_true", help="train on ihc.png columns 0..255 alone")
    args = p.parse_args()
    data = [f"data.train.root={ihc_only_root()}", "data.train.cache_draws=0"] if args.ihc_only else []
    torch.manual_seed(0)
    rows = {}
    for name in args.only:
        model_dir = train_one(name, steps=args.steps, out=args.out, data=data)
        params = sum(int(np.prod(t.shape)) for t in _tensors(model_dir))
        rows[name] = {"params": params, "s_step": sec_per_step(args.out / name), "infer": infer_time(model_dir),
                      **val_scores(model_dir, args.val)}
        print(name, rows[name], flush=True)
    ref = rows.get("edsr", next(iter(rows.values())))["infer"]
    print(f"\n{args.steps} steps each; validation ihc.png cols 288..351; RGB, data range 255, border 4; "
          f"bicubic x4 (a = -0.75) scores {bicubic_val(args.val):.2f} dB; s/step is each run's median under the "
          "machine's load at the time (runs are not concurrent-fair), inference times are measured here, in turn")
    print("| arch | params | train s/step | inference time / EDSR | val PSNR (dB) | val SSIM |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['params'] / 1e6:.3f} M | {r['s_step']:.2f} | {r['infer'] / ref:.2f} | "
              f"{r['psnr']:.2f} | {r['ssim']:.4f} |")


def _tensors(model_dir: Path):
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors")).values()


if __name__ == "__main__":
    main()
