"""LRformer end to end: the method trains through the loop, `medir restore --model` computes the prior on the fly,
a cached prior gives the same output, MedSAM from a local folder works as the segmenter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medir.cli import main
from medir.engine.config import from_dict
from medir.engine.train import train
from medir.errors import ConfigError
from medir.models import build_preset
from medir.models.lrformer import PRIOR_CACHE_ENV
from tests.engine.test_train import noisy
from tests.engine.test_train import phantom as blobs


def lrformer_config(root, out, **model_args):
    return from_dict({
        "task": "toy-noise",
        "model": {"preset": "lrformer_tiny", "args": {"samples": 2, **model_args}},
        "method": {"name": "lrformer", "args": {"loss": "l1"}},
        "data": {"train": {"kind": "simulated", "root": str(root), "task": "toy", "preset": "ct", "patch_size": 24},
                 "val": {"kind": "simulated", "root": str(root), "task": "toy", "preset": "ct",
                         "patch_size": None, "seed": 5, "max_items": 1}},
        "optim": {"lr": 1e-3},
        "schedule": {"steps": 2, "warmup": 0},
        "train": {"batch_size": 2, "seed": 0, "log_every": 1, "val_every": 2, "ckpt_every": 2,
                  "out_dir": str(out), "device": "cpu", "progress": False},
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step LRformer run on toy CT blobs; returns the model folder."""
    root = tmp_path_factory.mktemp("blobs")
    for i in range(2):
        np.save(root / f"{i}.npy", blobs(i))
    out = train(lrformer_config(root, tmp_path_factory.mktemp("run") / "run"), simulate=noisy)
    return out / "model"


def test_training_logs_reliability_and_writes_a_card(trained):
    from medir.engine.modelfile import load_model

    model, card = load_model(trained)
    assert card.arch == "lrformer" and card.method == "lrformer"
    assert card.arch_args["modality"] == "CT" and card.arch_args["intensity"]["lo"] == -1024.0
    assert "val_psnr" in card.metrics
    log = (trained.parent / "log.csv").read_text()
    assert "reliability" in log.splitlines()[0]


def test_restore_computes_the_prior_and_a_cached_prior_gives_the_same_output(trained, tmp_path, monkeypatch):
    image = blobs(9, size=36) + np.random.default_rng(1).normal(0, 30, (36, 36)).astype(np.float32)
    np.save(tmp_path / "in.npy", image)
    args = ["restore", str(tmp_path / "in.npy"), "--model", str(trained), "--modality", "CT", "--tile", "0"]
    assert main([*args, "-o", str(tmp_path / "fresh.npy")]) == 0
    monkeypatch.setenv(PRIOR_CACHE_ENV, str(tmp_path / "cache"))
    assert main([*args, "-o", str(tmp_path / "miss.npy")]) == 0
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 3  # the reference and 2 Monte-Carlo label maps
    stamps = [p.stat().st_mtime_ns for p in entries]
    assert main([*args, "-o", str(tmp_path / "hit.npy")]) == 0
    assert [p.stat().st_mtime_ns for p in entries] == stamps  # read back, not rewritten
    fresh, miss, hit = (np.load(tmp_path / f"{n}.npy") for n in ("fresh", "miss", "hit"))
    assert fresh.shape == image.shape and not np.allclose(fresh, image)
    np.testing.assert_array_equal(miss, fresh)
    np.testing.assert_array_equal(hit, fresh)


def test_the_prior_reaches_the_output_and_none_has_no_prior_branch():
    torch.manual_seed(0)
    net = build_preset("lrformer_tiny").eval()
    x = torch.rand(1, 1, 24, 20)
    prior = net.prior_for(x)
    assert prior.shape == (1, 3, 24, 20)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        assert not torch.allclose(net.restore(x, prior), net.restore(x, torch.rand_like(prior)))
    bare = build_preset("lrformer_tiny", prior="none")
    assert bare.prior_for(x) is None and not hasattr(bare, "prior_embed")
    assert bare(x).shape == x.shape
    with pytest.raises(ValueError):
        net.restore(x, None)


def test_method_refuses_other_architectures(tmp_path):
    config = lrformer_config(tmp_path, tmp_path / "o")
    config.model.preset = "nafnet_tiny"
    from medir.methods import build_method

    class Data:
        channels, scale = 1, 1

    with pytest.raises(ConfigError):
        build_method(config, data=Data())


def test_medsam_from_a_local_folder_as_the_segmenter(tmp_path):
    pytest.importorskip("transformers")
    from transformers import SamModel

    from tests.priors.conftest import tiny_sam_config

    torch.manual_seed(0)
    folder = tmp_path / "medsam"
    SamModel(tiny_sam_config()).save_pretrained(folder)
    net = build_preset("lrformer_tiny", segmenter=f"medsam:{folder}", modality="MR", rate=0.3).eval()
    x = torch.rand(1, 1, 20, 28)
    with torch.no_grad():
        y = net(x)
        again = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    torch.testing.assert_close(y, again, rtol=0, atol=0)  # seeded Monte-Carlo draws
    assert net.producer().mc.segmenter.boxes == "body"
