"""Train the methods of a suite with medir's one training loop, on the suite's training cases.

The recipes follow the tiny CPU presets (``configs/*_tiny.yaml``: the same model presets, method arguments and
optimisers) with the number of steps the benchmark gives; the training pairs are written as ``lq/`` and ``hq/``
folders of ``.npy`` slices in physical units, so every method sees exactly the same pairs. DiffCode is all-in-one
and trains on its own all-in-one set (MRI SR, CT, PET phantoms: :mod:`medir.data.allinone`), once per benchmark
run; MFdiff needs the MR and is trained by its own loop (:func:`medir.methods.mfdiff.train.fit`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from medir.benchmark.suites import Case, Suite

CLASSICAL_PRIOR = {"segmenter": "classical"}
RECIPES: dict[str, dict] = {  # model + method sections, as in configs/<method>_*tiny.yaml
    "supervised": {"model": {"preset": "nafnet_tiny"}, "method": {"name": "supervised", "args": {"loss": "l1"}},
                   "optim": {"name": "adamw", "lr": 1.0e-3, "betas": [0.9, 0.9]}},
    "rat": {"model": {"preset": "rat_tiny"},
            "method": {"name": "rat", "args": {"loss": "focal", "gamma": 1.0e-3, "delta": 1.0}},
            "optim": {"name": "adam", "lr": 1.0e-3, "betas": [0.9, 0.999]}},
    "lrformer": {"model": {"preset": "lrformer_tiny",
                           "args": {"attention": "gfca", "prior": "reliable", "samples": 2, **CLASSICAL_PRIOR}},
                 "method": {"name": "lrformer", "args": {"loss": "l1"}},
                 "optim": {"name": "adamw", "lr": 1.0e-3, "betas": [0.9, 0.9]}},
    "spdvfm": {"model": {"preset": "nafnet_tiny"},
               "method": {"name": "spdvfm", "args": {"prior": "spi", "encoder_features": 8, "mask_dropout": 0.5,
                                                     "lambda_skd": 0.01, "lambda_scm": 100.0, "scm_mode": "pooled",
                                                     "features": "teacher", "teacher_input": "student",
                                                     **CLASSICAL_PRIOR}},
               "optim": {"name": "adamw", "lr": 1.0e-3, "betas": [0.9, 0.9]}},
}
DIFFCODE_NETWORK = {"vq_width": 8, "vq_blocks": [1, 1], "code_dim": 16, "codebook_size": 64, "depth": 2, "width": 8,
                    "blocks": [1, 1], "middle_blocks": 1, "experts": 4, "top_k": 1, "prior": True, "diffusion": True,
                    "steps": 8}


def write_pairs(cases: list[Case], root: Path) -> Path:
    """``root/lq/<name>.npy`` and ``root/hq/<name>.npy`` for every case; returns ``root``."""
    for sub in ("lq", "hq"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for case in cases:
        np.save(root / "lq" / f"{case.name}.npy", case.lq)
        np.save(root / "hq" / f"{case.name}.npy", case.hq)
    return root


def _patch(size: int) -> int:
    return max(16, min(48, size // 2))


def method_config(method: str, suite: Suite, *, data: Path, out: Path, steps: int, size: int, seed: int = 0):
    """The typed training config of ``method`` on the paired folder ``data``."""
    from medir.engine.config import from_dict

    recipe = RECIPES[method]
    method_section = {"name": recipe["method"]["name"], "args": dict(recipe["method"]["args"])}
    if method == "spdvfm":
        method_section["args"]["teacher_steps"] = max(1, steps // 2)
    raw = {
        "task": suite.task,
        "description": f"{method} for the {suite.name} benchmark suite",
        "model": recipe["model"],
        "method": method_section,
        "data": {"train": {"kind": "paired", "root": str(data), "preset": suite.preset, "patch_size": _patch(size)},
                 "data_range": suite.data_range},
        "optim": recipe["optim"],
        "schedule": {"steps": steps, "warmup": min(10, steps // 10), "min_lr": 1.0e-6},
        "train": {"batch_size": 4, "grad_clip": 1.0, "seed": seed, "log_every": max(1, min(10, steps)),
                  "ckpt_every": steps, "keep_checkpoints": 1, "out_dir": str(out), "device": "cpu",
                  "progress": False},
    }
    return from_dict(raw)


def train_method(method: str, suite: Suite, *, data: Path, out: Path, steps: int, size: int) -> tuple[Path, float]:
    """Train ``method`` with the engine; returns (its model folder, seconds)."""
    from medir.engine.train import train

    config = method_config(method, suite, data=data, out=out, steps=steps, size=size)
    start = time.perf_counter()
    run = train(config, force=True)
    return run / "model", time.perf_counter() - start


def train_diffcode(out: Path, *, steps: int, size: int, per_task: int) -> tuple[Path, float]:
    """DiffCode's three stages on its all-in-one set; ``steps`` split 1 : 1 : 2 over stages I, II, III."""
    from medir.engine.config import from_dict
    from medir.methods.diffcode.runner import train_stages

    split = [max(1, steps // 4), max(1, steps // 4), max(1, steps // 2)]
    raw = {
        "description": "DiffCode (tiny) for the benchmark",
        "method": {"name": "diffcode", "args": {"steps": split, "network": DIFFCODE_NETWORK}},
        "data": {"train": {"kind": "allinone", "params": {"per_task": per_task, "size": size},
                           "patch_size": _patch(size)}},
        "optim": {"name": "adam", "lr": 2.0e-4 * 5},
        "schedule": {"steps": max(split), "min_lr": 1.0e-6},
        "train": {"batch_size": 6, "log_every": max(1, min(25, min(split))), "ckpt_every": max(split),
                  "keep_checkpoints": 1, "out_dir": str(out), "device": "cpu", "progress": False},
    }
    start = time.perf_counter()
    run = train_stages(from_dict(raw), force=True)
    return run / "model", time.perf_counter() - start


def train_mfdiff(cases: list[Case], *, steps: int, size: int, seed: int = 0):
    """The tiny MFdiff (fusion + diffusion) fitted on the suite's (low PET, MR, high PET) training pairs."""
    import torch

    from medir.methods.mfdiff import build
    from medir.methods.mfdiff.data import PairSet
    from medir.methods.mfdiff.train import fit

    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(c, key) for c in cases]))[:, None].float()

    lesion = torch.from_numpy(np.stack([c.lesion for c in cases]))[:, None].float()
    data = PairSet(stack("lq"), stack("aux"), stack("hq"), lesion)
    torch.manual_seed(seed)
    network = build("mfdiff", "tiny")
    start = time.perf_counter()
    fit(network, data, steps=steps, batch=4, lr=1e-3, crop=_patch(size) if size > 32 else None, seed=seed)
    return network, time.perf_counter() - start
