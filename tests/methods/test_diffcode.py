"""DiffCode: network shapes and routing, stage losses, the three-stage `medir train`, restore with no task."""

import numpy as np
import pytest
import torch

from medir.data import allinone
from medir.methods.diffcode.stages import StageOne, StageThree, StageTwo
from medir.models.diffcode import DiffCodeNet

TINY = dict(vq_width=4, vq_blocks=[1], code_dim=4, codebook_size=8, depth=2, width=4, blocks=[1], experts=4,
            classifier_width=4)


def fake_pairs(split, *, per_task, size, seed=0):
    """Stand-ins for the simulators, in each task's physical units (MR a.u., CT HU, PET SUV)."""
    rng = np.random.default_rng(seed + (split == "train"))
    hq = [rng.uniform(0, 3000, (size, size)), rng.uniform(-1000, 200, (size, size)), rng.uniform(0, 8, (size, size))]
    noise = (100.0, 30.0, 0.5)
    return [[((h + rng.normal(0, n, h.shape)).astype(np.float32), h.astype(np.float32)) for _ in range(per_task)]
            for h, n in zip(hq, noise)]


def test_network_any_size_physical_units_and_misrouting():
    torch.manual_seed(0)
    net = DiffCodeNet(**TINY).eval()
    x = torch.rand(2, 1, 37, 53) * 300 - 100
    with torch.no_grad():
        y = net(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert torch.equal(y, net(x))  # the inference noise is seeded
        xn = torch.rand(1, 1, 21, 30)
        outs = [net.restore(xn, torch.tensor([t])) for t in range(3)]  # each task, right or wrong
    for o in outs:
        assert o.shape == xn.shape and torch.isfinite(o).all()


def test_misrouted_input_still_restores_to_a_valid_image():
    net = DiffCodeNet(**TINY).eval()
    with torch.no_grad():
        net.classifier.head.bias.data = torch.tensor([0.0, 0.0, 1e4])  # everything is called PET
        ct = torch.full((1, 1, 40, 44), -1000.0)
        ct[..., 10:30, 10:30] = 40.0
        y = net(ct)
    assert int(net.classifier(ct).argmax()) == 2
    assert y.shape == ct.shape and torch.isfinite(y).all()


def test_variants_build_and_stage_losses_train_only_their_parts():
    torch.manual_seed(0)
    batch = {"lq": torch.rand(3, 1, 16, 16), "hq": torch.rand(3, 1, 16, 16), "task": torch.tensor([0, 1, 2]),
             "offset": torch.tensor([0.0, -1024.0, 0.0]), "span": torch.tensor([4095.0, 4095.0, 20.0])}
    net = DiffCodeNet(**TINY)
    for cls, trained, frozen in ((StageOne, "bank", "restorer"), (StageTwo, "denoiser", "vq_encoder"),
                                 (StageThree, "restorer", "cond_encoder")):
        method = cls(net)
        net.zero_grad(set_to_none=True)
        loss, logs = method(batch)
        loss.backward()
        assert torch.isfinite(loss)
        assert any(p.grad is not None for p in getattr(net, trained).parameters())
        assert all(p.grad is None for p in getattr(net, frozen).parameters())
    assert "acc" in logs and "balance" in logs
    for options in (dict(prior=False, experts=1), dict(prior=True, diffusion=False), dict(codebooks=1)):
        other = DiffCodeNet(**{**TINY, **options})
        loss, _ = StageThree(other)(batch)
        assert torch.isfinite(loss)
    with pytest.raises(ValueError):
        StageOne(DiffCodeNet(**{**TINY, "prior": False}))


def test_allinone_batches_are_balanced_with_task_conventions():
    data = allinone.AllInOneDataset(fake_pairs("train", per_task=2, size=24), patch_size=16)
    items = [data[i] for i in range(6)]
    assert [int(it["task"]) for it in items] == [0, 1, 2, 0, 1, 2]
    assert [float(it["offset"]) for it in items[:3]] == [0.0, -1024.0, 0.0]
    assert [float(it["span"]) for it in items[:3]] == [4095.0, 4095.0, 20.0]
    assert items[0]["lq"].shape == (1, 16, 16)


def test_three_stage_training_resume_and_restore(tmp_path, monkeypatch):
    from medir.engine.config import from_dict
    from medir.engine.modelfile import load_model
    from medir.methods.diffcode import train_stages

    monkeypatch.setattr(allinone, "simulate_pairs", fake_pairs)
    raw = {"method": {"name": "diffcode", "args": {"steps": [2, 2, 3], "network": TINY}},
           "data": {"train": {"kind": "allinone", "params": {"per_task": 1, "size": 24}, "patch_size": 16}},
           "schedule": {"steps": 3}, "train": {"batch_size": 3, "log_every": 1, "ckpt_every": 1,
                                               "out_dir": str(tmp_path / "run"), "progress": False, "stop_after": 1}}
    config = from_dict(raw)
    last = train_stages(config)
    assert last.name == "stage1" and not (last / "model").exists()  # paused inside stage I
    config.train.stop_after = None
    last = train_stages(config, resume=True)
    assert last.name == "stage3"
    for k in (1, 2, 3):
        assert (tmp_path / "run" / f"stage{k}" / "model" / "model.safetensors").is_file()
    s1 = load_model(tmp_path / "run" / "stage1" / "model")[0]
    s3, card = load_model(last / "model")
    assert card.arch == "diffcode" and set(card.modalities) == {"MR", "CT", "PT"}
    assert torch.equal(s1.bank.books[0].codebook, s3.bank.books[0].codebook)  # stage III kept the codebooks
    with torch.no_grad():
        y = s3(torch.rand(1, 1, 29, 31) * 3000)
    assert y.shape == (1, 1, 29, 31) and torch.isfinite(y).all()
    train_stages(config, resume=True)  # everything finished: nothing to redo


def test_restore_cli_without_task_flag(tmp_path):
    from medir.cli import main
    from medir.engine.modelfile import load_model
    from medir.methods.diffcode.runner import save_diffcode

    save_diffcode(DiffCodeNet(**TINY).eval(), tmp_path / "model", metrics={}, training={})
    assert load_model(tmp_path / "model")[1].arch == "diffcode"
    for modality, values in (("CT", np.full((33, 41), 40.0)), ("MR", np.full((33, 41), 900.0)),
                             ("PT", np.full((33, 41), 3.0))):
        src = tmp_path / f"in_{modality}.npy"
        np.save(src, (values + np.random.default_rng(0).normal(0, 1, values.shape)).astype(np.float32))
        out = tmp_path / f"out_{modality}.npy"
        assert main(["restore", str(src), "-o", str(out), "--model", str(tmp_path / "model"),
                     "--modality", modality]) == 0
        restored = np.load(out)
        assert restored.shape == (33, 41) and np.isfinite(restored).all()
