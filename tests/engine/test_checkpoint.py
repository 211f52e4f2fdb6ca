"""Checkpoints: atomic folders, pruning, exact round trip of weights, optimizer and RNG states."""

from __future__ import annotations

import random

import numpy as np
import torch

from medir.engine.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def test_round_trip_pruning_and_half_written_folders(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(1, 4):
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
        save_checkpoint(tmp_path, step, model, opt, config_text="x: 1\n", loop_state={"best": 1.5}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    (tmp_path / ".step_00000009.abc.part").mkdir()  # a write cut short by a kill
    (tmp_path / "step_00000010").mkdir()  # not complete: no files
    assert latest_checkpoint(tmp_path).name == "step_00000003"

    expected = {k: v.clone() for k, v in model.state_dict().items()}
    draws = (torch.rand(3), np.random.rand(3), random.random())
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    # RNG states were saved at step 3; draw the same numbers again after loading.
    state = load_checkpoint(latest_checkpoint(tmp_path), fresh, fresh_opt)
    assert state == {"step": 3, "loop": {"best": 1.5}}
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in expected.items())
    assert fresh.state_dict()["1.running_mean"].abs().sum() > 0  # buffers travel too
    a, b = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]
