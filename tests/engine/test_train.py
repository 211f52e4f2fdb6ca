"""The training loop: exact resume, start-up errors, output folder policy, every backbone, logs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from medir.cli import main
from medir.engine.config import apply_override, from_dict
from medir.engine.train import train
from medir.errors import ConfigError
from medir.models import PRESETS

TINY = sorted(name for name in PRESETS if name.endswith("_tiny"))



def noisy(task, x, *, generator=None, sigma=30.0):
    """Stand-in simulator with medir.physics.simulate's signature: Gaussian noise of sigma HU."""
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def phantom(seed: int, size: int = 40) -> np.ndarray:
    """Smooth blobs in HU on air: something a tiny network can learn to denoise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.full((size, size), -1000.0)
    for _ in range(4):
        cy, cx, r = rng.uniform(8, size - 8, 2).tolist() + [rng.uniform(4, 10)]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(-100, 200)
    return img.astype(np.float32)


@pytest.fixture()
def data(tmp_path) -> Path:
    """hq/ for simulation, and pairs/lq + pairs/hq for paired training (lq = hq + fixed noise)."""
    root = tmp_path / "data"
    for d in ("hq", "pairs/lq", "pairs/hq", "val"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        hq = phantom(i)
        np.save(root / "hq" / f"{i}.npy", hq)
        np.save(root / "pairs" / "hq" / f"{i}.npy", hq)
        np.save(root / "pairs" / "lq" / f"{i}.npy", hq + rng.normal(0, 30, hq.shape).astype(np.float32))
    np.save(root / "val" / "v.npy", phantom(7))
    return root


def config(data: Path, out: Path, *overrides: str, kind: str = "simulated"):
    raw = {
        "task": "toy-noise",
        "model": {"preset": "nafnet_tiny"},
        "method": {"name": "supervised", "args": {"loss": "l1"}},
        "data": {
            "train": {"kind": kind, "root": str(data / ("hq" if kind == "simulated" else "pairs")),
                      "task": "toy", "preset": "ct", "patch_size": 32},
            "val": {"kind": "simulated", "root": str(data / "val"), "task": "toy", "preset": "ct",
                    "patch_size": None, "seed": 5},
        },
        "optim": {"lr": 2e-3},
        "schedule": {"steps": 6, "warmup": 2, "min_lr": 1e-5},
        "train": {"batch_size": 2, "accumulate": 2, "grad_clip": 0.5, "seed": 3, "log_every": 1, "val_every": 3,
                  "ckpt_every": 2, "out_dir": str(out), "device": "cpu", "progress": False},
    }
    for item in overrides:
        apply_override(raw, item)
    return from_dict(raw)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


def comparable(log: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "sec_per_step"} for r in log]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_after_interruption_gives_identical_weights(data, tmp_path):
    straight = train(config(data, tmp_path / "a"), simulate=noisy)
    out = tmp_path / "b"
    train(config(data, out, "train.stop_after=5"), simulate=noisy)
    assert not (out / "model").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000004",
                                                                       "step_00000005"]
    # Lose the newest checkpoint as if the kill came before it was written: resume from step 4.
    for f in (out / "checkpoints" / "step_00000005").iterdir():
        f.unlink()
    (out / "checkpoints" / "step_00000005").rmdir()
    train(config(data, out), resume=True, simulate=noisy)
    final = weights(straight / "model")
    assert_same_weights(final, weights(out / "model"))
    assert_same_weights(weights(straight / "model_best"), weights(out / "model_best"))
    # The log is the log of one run: the rows of steps 5-6 were dropped and redone, identically.
    assert comparable(rows(straight)) == comparable(rows(out))
    assert [r["step"] for r in rows(out) if r["loss"]] == ["1", "2", "3", "4", "5", "6"]
    # Training changed the weights: the test would catch a run that does nothing.
    start = load_file(str(straight / "checkpoints" / "step_00000002" / "weights.safetensors"))
    assert any(not torch.equal(start[f"network.{k}"], v) for k, v in final.items())


def test_different_seeds_give_different_weights(data, tmp_path):
    a = train(config(data, tmp_path / "a", "schedule.steps=3"), simulate=noisy)
    b = train(config(data, tmp_path / "b", "schedule.steps=3", "train.seed=4"), simulate=noisy)
    wa, wb = weights(a / "model"), weights(b / "model")
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_outputs_log_curves_and_model_card(data, tmp_path):
    from medir.engine.modelfile import load_model

    out = train(config(data, tmp_path / "run", "schedule.steps=24", "train.val_every=12", "train.accumulate=1",
                       "train.ckpt_every=12", "train.batch_size=4", "train.grad_clip=null", "schedule.warmup=0",
                       "data.train.augment=false"), simulate=noisy)
    log = rows(out)
    losses = [float(r["loss"]) for r in log if r["loss"]]
    val = [r for r in log if r["val_psnr"]]
    assert len(losses) == 24 and [r["step"] for r in val] == ["12", "24"]
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])  # it learns
    assert float(val[1]["val_psnr"]) > float(val[0]["val_psnr"])  # and gets closer to the validation image
    assert (out / "curves.png").stat().st_size > 1000
    model, card = load_model(out / "model")
    assert card.arch == "nafnet" and card.task == "toy-noise" and card.modality == "CT"
    assert card.metrics["val_psnr"] == pytest.approx(float(val[-1]["val_psnr"]))
    assert card.metrics["policy"] == {"data_range": "target", "window": [-160.0, 240.0]}
    assert card.training["data"]["train"]["patch_size"] == 32
    assert model(torch.zeros(1, 1, 24, 24)).shape == (1, 1, 24, 24)


@pytest.mark.parametrize("problem", ["unknown_key", "unknown_override", "missing_folder", "patch_too_large",
                                     "bad_model_arg", "bad_method_arg"])
def test_bad_setups_fail_before_training_with_one_line(data, tmp_path, capsys, problem):
    import yaml

    out = tmp_path / "run"
    raw = yaml.safe_load(yaml.safe_dump({
        "model": {"preset": "nafnet_tiny"},
        "data": {"train": {"kind": "paired", "root": str(data / "pairs"), "patch_size": 32}},
        "schedule": {"steps": 2}, "train": {"out_dir": str(out), "device": "cpu"},
    }))
    extra = []
    if problem == "unknown_key":
        raw["train"]["lr"] = 1e-3
    elif problem == "unknown_override":
        extra = ["train.lrate=1"]
    elif problem == "missing_folder":
        raw["data"]["train"]["root"] = str(data / "missing")
    elif problem == "patch_too_large":
        raw["data"]["train"]["patch_size"] = 48
    elif problem == "bad_model_arg":
        raw["model"]["args"] = {"widht": 8}
    else:
        raw["method"] = {"args": {"loss": "l3"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["train", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medir train: error:") and "\n" not in err
    assert not out.exists()  # nothing written, no step taken


def test_out_dir_policy(data, tmp_path):
    out = tmp_path / "run"
    train(config(data, out, "schedule.steps=2", "schedule.warmup=0"), simulate=noisy)
    with pytest.raises(ConfigError, match="already holds"):
        train(config(data, out, "schedule.steps=2", "schedule.warmup=0"), simulate=noisy)
    with pytest.raises(ConfigError, match="different config"):
        train(config(data, out, "schedule.steps=2", "schedule.warmup=0", "optim.lr=0.1"), resume=True, simulate=noisy)
    train(config(data, out, "schedule.steps=2", "schedule.warmup=0", "optim.lr=0.1"), force=True, simulate=noisy)
    assert "lr: 0.1" in (out / "config.yaml").read_text()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a medir run"):
        train(config(data, stranger, "schedule.steps=2", "schedule.warmup=0"), force=True, simulate=noisy)
    assert (stranger / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("preset", TINY)
def test_every_backbone_trains_through_the_same_loop(data, tmp_path, preset):
    from medir.engine.modelfile import load_model

    out = train(config(data, tmp_path / preset, f"model.preset={preset}", "schedule.steps=2", "schedule.warmup=0", "train.accumulate=1",
                       "train.batch_size=1", "data.val=null", "method.args.loss=psnr"), simulate=noisy)
    losses = [float(r["loss"]) for r in rows(out)]
    assert len(losses) == 2 and all(np.isfinite(losses))
    model, card = load_model(out / "model")
    assert card.arch == preset.removesuffix("_tiny")
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def test_paired_training_with_psnr_loss_runs_from_the_cli(data, tmp_path, capsys):
    import yaml

    out = tmp_path / "run"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": {"preset": "nafnet_tiny"}, "method": {"args": {"loss": "psnr"}},
                                    "data": {"train": {"kind": "paired", "root": str(data / "pairs"),
                                                       "patch_size": 32}}}))
    code = main(["train", str(path), f"train.out_dir={out}", "schedule.steps=3", "train.log_every=1",
                 "train.batch_size=2", "train.progress=false", "train.device=cpu"])
    assert code == 0 and "model written to" in capsys.readouterr().out
    assert [r["psnr"] and float(r["psnr"]) < 0 for r in rows(out)] == [True] * 3  # -PSNR(dB) of network space


def test_shipped_tiny_config_trains_on_ct_simulated_by_the_real_physics(data, tmp_path):
    from medir.engine.config import load_config
    from medir.engine.modelfile import load_card

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs" / "ct_nafnet_tiny.yaml", [
        f"data.train.root={data / 'hq'}", f"data.val.root={data / 'val'}", f"train.out_dir={tmp_path / 'run'}",
        "schedule.steps=2", "schedule.warmup=0", "train.batch_size=2", "train.progress=false", "train.device=cpu",
        "data.val.patch_size=null"])
    out = train(cfg)
    card = load_card(out / "model")
    assert card.task == "ct-lowdose" and card.training["data"]["train"]["params"] == {"dose": 0.25}
    assert np.isfinite(card.metrics["val_psnr"]) and np.isfinite(card.metrics["val_psnr_input"])


class ScaledMSE(torch.nn.Module):
    """A method the loop has never seen: its own typed argument, its own logs, its own loss."""

    def __init__(self, network, *, weight: float = 1.0):
        super().__init__()
        self.network, self.weight = network, weight

    def forward(self, batch):
        mse = (self.network(batch["lq"]) - batch["hq"]).square().mean()
        return self.weight * mse, {"mse": mse.detach(), "weight": self.weight}

    @torch.no_grad()
    def restore(self, batch):
        return self.network(batch["lq"])


def test_a_new_method_plugs_in_by_returning_its_loss(data, tmp_path, monkeypatch):
    import medir.methods

    monkeypatch.setitem(medir.methods.METHODS, "scaled-mse", medir.methods.restorer(ScaledMSE))
    out = train(config(data, tmp_path / "run", "method.name=scaled-mse", "method.args={weight: 3.0}",
                       "schedule.steps=2", "schedule.warmup=0", "train.accumulate=1", "data.val=null"),
                simulate=noisy)  # ScaledMSE defines no validate(): no validation data
    log = [r for r in rows(out) if r["loss"]]
    assert [float(r["weight"]) for r in log] == [3.0, 3.0]
    assert all(float(r["loss"]) == pytest.approx(3.0 * float(r["mse"]), rel=1e-5) for r in log)
    with pytest.raises(ConfigError, match="no argument 'wieght'"):
        train(config(data, tmp_path / "bad", "method.name=scaled-mse", "method.args={wieght: 3.0}"), simulate=noisy)


def test_psnr_loss_is_minus_the_mean_psnr_for_a_unit_range():
    from medir.losses import psnr_loss
    from medir.metrics import psnr

    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 1, 16, 16, generator=g)
    pred = target + 0.05 * torch.randn(3, 1, 16, 16, generator=g) * torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1, 1)
    assert float(psnr_loss(pred, target)) == pytest.approx(-psnr(pred, target, data_range=1.0), abs=1e-4)


def test_model_init_fine_tunes_from_a_model_file(data, tmp_path):
    first = train(config(data, tmp_path / "a", "data.val=null"), simulate=noisy)
    source = weights(first / "model")
    cfg = config(data, tmp_path / "b", "data.val=null", "model.preset=null", f"model.init={first / 'model'}",
                 "schedule.steps=1", "optim.lr=1e-12", "schedule.min_lr=1e-12", "schedule.warmup=0")
    tuned = weights(train(cfg, simulate=noisy) / "model")
    assert source.keys() == tuned.keys()
    for k in source:  # one step at lr 1e-12 leaves the initial weights in place
        torch.testing.assert_close(tuned[k], source[k], atol=1e-8, rtol=0)
    bad = config(data, tmp_path / "c", "data.val=null", f"model.init={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="model.init"):
        train(bad, simulate=noisy)
