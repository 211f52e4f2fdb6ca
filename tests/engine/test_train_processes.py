"""Training in real processes: torchrun data-parallel on CPU (gloo), and resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from medir.engine.config import load_config
from medir.engine.train import train


def write_pairs(root: Path) -> None:
    rng = np.random.default_rng(0)
    for d in ("lq", "hq"):
        (root / d).mkdir(parents=True)
    for i in range(3):
        yy, xx = np.mgrid[:40, :40]
        hq = np.where((yy - 20 - 3 * i) ** 2 + (xx - 18) ** 2 < 120, 100.0, -1000.0).astype(np.float32)
        np.save(root / "hq" / f"{i}.npy", hq)
        np.save(root / "lq" / f"{i}.npy", hq + rng.normal(0, 30, hq.shape).astype(np.float32))


def write_config(tmp_path: Path, out: Path, **train) -> Path:
    write_pairs(tmp_path / "pairs")
    raw = {
        "model": {"preset": "nafnet_tiny"},
        "data": {"train": {"kind": "paired", "root": str(tmp_path / "pairs"), "preset": "ct", "patch_size": 32}},
        "optim": {"lr": 2e-3},
        "schedule": {"steps": train.pop("steps"), "warmup": 1},
        "train": {"seed": 1, "log_every": 1, "out_dir": str(out), "device": "cpu", "progress": False, **train},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    e["OMP_NUM_THREADS"] = "1"
    return e


@pytest.fixture()
def one_thread():
    """The in-process run uses the same kernels as the single-threaded subprocesses."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model" / "model.safetensors"))


def test_torchrun_two_processes_match_one_process_with_the_global_batch(tmp_path, one_thread):
    """2 ranks x batch 2 see the same samples as 1 process x batch 4; DDP averages gradients to the same step."""
    path = write_config(tmp_path, tmp_path / "ddp", steps=4, batch_size=2, ckpt_every=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "medir.cli", "train", str(path)]
    done = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ddp = tmp_path / "ddp"
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["step_00000002", "step_00000004"]
    single = train(load_config(path, [f"train.out_dir={tmp_path / 'single'}", "train.batch_size=4"]))
    a, b = final_weights(ddp), final_weights(single)
    start = load_file(str(ddp / "checkpoints" / "step_00000002" / "weights.safetensors"))
    assert any(not torch.equal(start[f"network.{k}"], v) for k, v in a.items())  # the ranks did train
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    out = tmp_path / "killed"
    path = write_config(tmp_path, out, steps=40, batch_size=2, ckpt_every=4)
    proc = subprocess.Popen([sys.executable, "-m", "medir.cli", "train", str(path)], env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "step_00000008").is_dir() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "model").exists()  # it really was interrupted
    resumed = subprocess.run([sys.executable, "-m", "medir.cli", "train", str(path), "--resume"], env=env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = tmp_path / "straight"  # the same command, never interrupted
    done = subprocess.run([sys.executable, "-m", "medir.cli", "train", str(path), f"train.out_dir={straight}"],
                          env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = final_weights(out), final_weights(straight)
    assert a.keys() == b.keys()
    differ = {k: float((a[k] - b[k]).abs().max()) for k in a if not torch.equal(a[k], b[k])}
    assert not differ, differ
