"""The segmentation head trains through the common loop: labelled data, its own validation and saving, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from medir.cli import main
from medir.engine.config import from_dict
from medir.engine.train import train

LEVELS = (0.0, 1500.0, 3000.0)  # a.u. of classes 0, 1, 2 (the mr preset maps [0, 4095] to [0, 1])



def labelled_pair(rng: np.random.Generator, size: int = 32, noise: float = 150.0) -> tuple[np.ndarray, np.ndarray]:
    """``(size, size)`` image in a.u. and its labels: an ellipse of class 1 holding a disk of class 2."""
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.4, 0.6, 2)
    labels = np.zeros((size, size), np.int64)
    labels[((yy - cy) / 0.35) ** 2 + ((xx - cx) / 0.3) ** 2 <= 1] = 1
    labels[(yy - cy - rng.uniform(-0.1, 0.1)) ** 2 + (xx - cx) ** 2 <= rng.uniform(0.1, 0.16) ** 2] = 2
    image = np.asarray(LEVELS)[labels] + rng.normal(0, noise, labels.shape)
    return image.astype(np.float32), labels


@pytest.fixture()
def data(tmp_path) -> Path:
    """train/ (4 pairs) and val/ (2 pairs), each with images/ and labels/ of matching names."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for d in ("images", "labels"):
            (tmp_path / "data" / split / d).mkdir(parents=True)
        for i in range(n):
            image, labels = labelled_pair(rng)
            np.save(tmp_path / "data" / split / "images" / f"s{i}.npy", image)
            np.save(tmp_path / "data" / split / "labels" / f"s{i}.npy", labels.astype(np.float32))
    return tmp_path / "data"


def raw_config(data: Path, out: Path, **train) -> dict:
    return {
        "task": "segmentation",
        "method": {"name": "seg_head", "args": {"num_classes": 3, "width": 16}},
        "data": {"train": {"kind": "labelled", "root": str(data / "train"), "preset": "mr", "patch_size": 24},
                 "val": {"kind": "labelled", "root": str(data / "val"), "preset": "mr", "patch_size": None}},
        "optim": {"lr": 5e-3, "weight_decay": 1e-4},
        "schedule": {"steps": train.pop("steps", 30), "warmup": 3},
        "train": {"batch_size": 4, "seed": 2, "log_every": 1, "val_every": 10, "ckpt_every": 10,
                  "best_metric": "dice", "out_dir": str(out), "device": "cpu", "progress": False, **train},
    }


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_samples_are_deterministic_and_labels_move_with_the_image(data):
    from medir.data.datasets import build_train_set

    cfg = from_dict(raw_config(data, Path("unused"))).data.train
    ds = build_train_set(cfg, seed=5)
    assert ds.channels == 1 and ds.scale == 1 and ds.num_classes == 3
    for index in range(12):
        s = ds[index]
        assert s["image"].shape == (1, 24, 24) and s["labels"].shape == (24, 24) and s["labels"].dtype == torch.int64
        assert torch.equal(s["image"], ds[index]["image"]) and torch.equal(s["labels"], ds[index]["labels"])
        # noise is 150 a.u. and classes are 1500 a.u. apart: the nearest level recovers each pixel's label
        nearest = (s["image"][0, ..., None] * 4095 - torch.tensor(LEVELS)).abs().argmin(-1)
        assert (nearest == s["labels"]).float().mean() > 0.99


def test_the_head_trains_from_the_cli_and_saves_a_segmenter(data, tmp_path, capsys):
    from medir.priors import get_segmenter

    out = tmp_path / "run"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw_config(data, out)))
    assert main(["train", str(path)]) == 0
    assert "model written to" in capsys.readouterr().out
    log = rows(out)
    losses = [float(r["loss"]) for r in log if r["loss"]]
    dice = [float(r["val_dice"]) for r in log if r.get("val_dice")]
    assert len(losses) == 30 and np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert len(dice) == 3 and dice[-1] > 0.8  # chance (uniform guessing) is about 0.3
    card = json.loads((out / "model" / "config.json").read_text())
    assert card["metrics"]["val_dice"] == pytest.approx(dice[-1]) and card["intensity"]["name"] == "mr"
    seg = get_segmenter(f"head:{out / 'model'}")  # what `medir segment --segmenter head:PATH` loads
    image = np.load(data / "val" / "images" / "s0.npy")
    truth = np.load(data / "val" / "labels" / "s0.npy").astype(np.int64)
    assert (seg(image, modality="MR").labels == truth).mean() > 0.9


@pytest.mark.parametrize("problem", ["unknown_key", "missing_labels", "too_few_classes", "wrong_best_metric"])
def test_bad_setups_fail_before_training_with_one_line(data, tmp_path, capsys, problem):
    import shutil

    out = tmp_path / "run"
    raw = raw_config(data, out)
    if problem == "unknown_key":
        raw["data"]["train"]["labels_dir"] = "labels"
    elif problem == "missing_labels":
        shutil.rmtree(data / "train" / "labels")
    elif problem == "too_few_classes":
        raw["method"]["args"]["num_classes"] = 2
    else:
        raw["train"]["best_metric"] = "psnr"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medir train: error:") and "\n" not in err
    assert not out.exists()


def test_resume_after_interruption_gives_identical_head(data, tmp_path):
    straight = train(from_dict(raw_config(data, tmp_path / "a", steps=12, ckpt_every=4, val_every=6)))
    out = tmp_path / "b"
    train(from_dict(raw_config(data, out, steps=12, ckpt_every=4, val_every=6, stop_after=10)))
    assert not (out / "model").exists()
    for f in (out / "checkpoints" / "step_00000010").iterdir():  # lose the newest: resume from step 8
        f.unlink()
    (out / "checkpoints" / "step_00000010").rmdir()
    train(from_dict(raw_config(data, out, steps=12, ckpt_every=4, val_every=6)), resume=True)
    for name in ("model", "model_best"):
        a, b = load_file(str(straight / name / "model.safetensors")), load_file(str(out / name / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    strip = [{k: v for k, v in r.items() if k != "sec_per_step"} for r in rows(straight)]
    assert strip == [{k: v for k, v in r.items() if k != "sec_per_step"} for r in rows(out)]
