"""Train a tiny denoiser on phantom pairs for a few steps, save it as a medir model file, load it and use it.

    python examples/train_tiny.py                        # 300 steps, about a minute on 2 CPU cores
    MEDIR_EXAMPLE_STEPS=3 python examples/train_tiny.py  # what the tests run

The pairs are the layout ``medir train`` reads for your own data: ``ROOT/lq/NAME`` and ``ROOT/hq/NAME`` with the
same file names (here NPY in HU; DICOM, NIfTI, PNG/TIFF and NPZ work too). The high-quality images are rotated
Shepp-Logan phantoms in HU; the low-quality ones are the same phantoms at 1 % of the reference CT dose, simulated by
medir's ``ct-lowdose`` noise insertion (``scan_dose=None``: the phantom itself has no noise). The network sees HU
through the ``ct-soft`` preset ([-160, 240] HU -> [0, 1]): with the full-range ``ct`` preset the same 300 steps
did not beat the input. With the defaults it printed input 26.91 dB, restored 31.61 dB.
"""

import os
import tempfile
from pathlib import Path

import numpy as np

from medir.data.phantoms import rotate, shepp_logan_hu
from medir.engine.config import from_dict
from medir.engine.inference import restore_image
from medir.engine.modelfile import load_model
from medir.engine.train import train
from medir.io import Image, ImageMeta
from medir.metrics import psnr
from medir.physics import simulate

STEPS = int(os.environ.get("MEDIR_EXAMPLE_STEPS", "300"))
SIZE = 64  # pixels; 4 mm pixels so that the 64 x 64 phantom is a 256 mm head


def phantom_pair(angle: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(low-dose, full-dose) ``(SIZE, SIZE)`` float32 images in HU."""
    hq = rotate(shepp_logan_hu(SIZE) + 1000.0, angle) - 1000.0  # rotate around air, not around 0 HU
    lq = simulate("ct-lowdose", hq, seed=seed, dose=0.01, scan_dose=None, pixel_size_mm=4.0)
    return lq[0, 0].numpy(), hq[0, 0].numpy()


def write_pairs(root: Path, angles: list[float]) -> None:
    for sub in ("lq", "hq"):
        (root / sub).mkdir(parents=True)
    for k, angle in enumerate(angles):
        lq, hq = phantom_pair(angle, seed=k)
        np.save(root / "lq" / f"phantom_{k:02d}.npy", lq)
        np.save(root / "hq" / f"phantom_{k:02d}.npy", hq)


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    write_pairs(tmp / "train", [-30, -20, -10, 0, 10, 20, 30, 40])
    write_pairs(tmp / "val", [15])
    config = from_dict({  # the same keys as a YAML config for `medir train CONFIG`
        "task": "ct-lowdose",
        "description": "tiny NAFNet on Shepp-Logan phantom pairs (example)",
        "model": {"preset": "nafnet_tiny"},
        "method": {"name": "supervised", "args": {"loss": "l1"}},
        "data": {
            "train": {"kind": "paired", "root": str(tmp / "train"), "preset": "ct-soft", "patch_size": 32},
            "val": {"kind": "paired", "root": str(tmp / "val"), "preset": "ct-soft", "patch_size": None},
            "data_range": "target",
        },
        "optim": {"name": "adamw", "lr": 2e-3},
        "schedule": {"steps": STEPS, "warmup": min(10, STEPS - 1), "min_lr": 1e-5},
        "train": {"batch_size": 4, "seed": 0, "val_every": max(STEPS // 3, 1), "ckpt_every": STEPS,
                  "out_dir": str(tmp / "run"), "device": "cpu", "progress": False},
    })
    out = train(config)  # writes run/model (final), run/model_best, run/log.csv, run/checkpoints

    model, card = load_model(out / "model")  # model.safetensors + config.json (the card), no pickle
    print(f"loaded {card.arch} for {card.task} ({card.modality}), trained {STEPS} steps")
    lq, hq = phantom_pair(25.0, seed=99)  # an angle never seen in training
    restored = restore_image(Image(lq, ImageMeta(modality="CT", units="HU")), model, card, tile=None).array
    for name, img in [("input", lq), ("restored", restored)]:
        value = psnr(img, hq, data_range="target", window=(-160.0, 240.0))
        print(f"{name:>8}: PSNR {value:.2f} dB (window [-160, 240] HU, data range = reference max - min)")
    assert restored.shape == hq.shape and np.isfinite(restored).all()
