"""RAT: the network, the method, region maps computed on the fly and cached, training and restoring end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from medir.cli import main
from medir.errors import ConfigError
from medir.methods.rat import RATMethod
from medir.models import build_model, build_preset
from medir.models.rat import RAT, rat_param_count
from medir.priors.base import Partition
from medir.priors.region_maps import RegionMaps


def test_zero_initialised_layer_scales_make_regions_irrelevant_at_start():
    torch.manual_seed(0)
    model = build_preset("rat_tiny").eval()
    x = torch.rand(1, 1, 32, 32)
    a = torch.zeros(1, 32, 32, dtype=torch.long)
    b = torch.arange(32 * 32).view(1, 32, 32) // 64
    with torch.no_grad():
        torch.testing.assert_close(model(x, a), model(x, b), rtol=0, atol=0)
        for name, p in model.named_parameters():
            if "lambda" in name:
                assert p.abs().sum() == 0
                p.fill_(0.5)
        assert not torch.allclose(model(x, a), model(x, b))


def test_msa_wmsa_rmsa_variants_have_equal_parameters():
    counts = {kind: rat_param_count(width=8, attention=kind) for kind in ("region", "global", "window")}
    assert len(set(counts.values())) == 1
    assert rat_param_count(width=64) == sum(p.numel() for p in build_preset("rat_base").parameters())


def test_the_network_segments_its_own_input_when_given_no_labels():
    torch.manual_seed(0)
    model = build_preset("rat_tiny", modality="CT", intensity="ct").eval()
    for name, p in model.named_parameters():
        if "lambda" in name:
            p.data.fill_(0.3)
    hu = torch.full((1, 1, 48, 48), -1000.0)
    hu[..., 8:40, 8:40] = 40.0
    hu[..., 16:30, 16:30] = 200.0
    x = (hu + 1024) / 4095  # the ct preset's network space
    labels = model.region_maps(x)
    assert labels.shape == (1, 48, 48) and labels.unique().numel() >= 2
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x, labels), rtol=0, atol=0)
    assert model.region_maps.misses == 1 and model.region_maps.hits >= 1


class Counting:
    """A segmenter that labels pixels above the image mean, and counts its calls."""

    name = "counting"

    def __init__(self, level: float = 0.0):
        self.level, self.calls = level, 0

    def settings(self) -> str:
        return f"counting:{self.level}"

    def __call__(self, image, *, modality="OT"):
        self.calls += 1
        return Partition((np.asarray(image) > image.mean() + self.level).astype(np.int32))


def test_region_cache_is_keyed_by_image_content_and_segmenter_settings():
    seg = Counting()
    maps = RegionMaps(seg, modality="CT")
    x = torch.rand(2, 1, 16, 16)
    first = maps(x)
    assert seg.calls == 2 and torch.equal(maps(x), first) and seg.calls == 2  # second call: cache hits
    changed = x.clone()
    changed[1, 0, 3, 3] += 0.5  # one pixel of one image
    again = maps(changed)
    assert seg.calls == 3  # only the changed image is segmented again
    assert torch.equal(again[0], first[0])
    assert maps.key(x[1, 0].numpy()) != maps.key(changed[1, 0].numpy())
    other = RegionMaps(Counting(level=0.1), modality="CT")
    assert other.key(x[0, 0].numpy()) != maps.key(x[0, 0].numpy())  # different settings, different key
    assert RegionMaps(Counting(), modality="MR").key(x[0, 0].numpy()) != maps.key(x[0, 0].numpy())


def batch(size=32, scale=1, channels=1, regions=False):
    g = torch.Generator().manual_seed(0)
    hq = torch.rand(2, channels, size * scale, size * scale, generator=g)
    out = {"lq": torch.rand(2, channels, size, size, generator=g), "hq": hq,
           "offset": torch.zeros(2), "span": torch.ones(2)}
    if regions:
        out["regions"] = torch.randint(0, 3, (2, size, size), generator=g)
    return out


@pytest.mark.parametrize("loss", ["focal", "l1"])
@pytest.mark.parametrize("attention", ["region", "global"])
def test_method_returns_a_finite_loss_with_gradients(loss, attention):
    torch.manual_seed(0)
    method = RATMethod(build_preset("rat_tiny", attention=attention), loss=loss, gamma=0.5)
    value, logs = method(batch(regions=True))
    value.backward()
    assert torch.isfinite(value) and loss in logs
    assert all(p.grad is not None for p in method.parameters() if p.requires_grad)
    value2, _ = method(batch(regions=False))  # no regions in the batch: the network's segmenter makes them
    assert torch.isfinite(value2)


def test_method_super_resolution_and_validation():
    method = RATMethod(build_preset("rat_tiny", in_channels=3, out_channels=3, scale=2, modality="SM",
                                    intensity="rgb8"))
    b = batch(size=16, scale=2, channels=3)
    value, _ = method(b)
    assert torch.isfinite(value)
    assert set(method.validate(b)) == {"psnr", "ssim"}
    with pytest.raises(ValueError):
        RATMethod(build_preset("rat_tiny"), loss="focal", gamma=-1.0)


def test_rat_rejects_bad_arguments():
    with pytest.raises(ConfigError):
        build_model("rat", enc_blocks=[1], dec_blocks=[1, 1])
    with pytest.raises(ConfigError):
        build_model("rat", width=8, heads=3)
    with pytest.raises(ValueError, match="labels"):
        build_preset("rat_tiny")(torch.rand(1, 1, 16, 16), torch.zeros(1, 8, 8, dtype=torch.long))


def ct_slices(root: Path, n: int, seed: int, size: int = 48) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        img = np.full((size, size), -1000.0, np.float32)
        img[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.4) ** 2] = 40.0
        cy, cx = rng.uniform(16, size - 16, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 300.0
        np.save(root / f"{i}.npy", img)
        np.save(root.parent / "lq" / f"{i}.npy", img + rng.normal(0, 40, img.shape).astype(np.float32))


def test_train_from_config_then_restore_with_only_the_image(tmp_path):
    for d in ("train/hq", "train/lq"):
        (tmp_path / d).mkdir(parents=True)
    ct_slices(tmp_path / "train" / "hq", 2, seed=0)
    preset = yaml.safe_load(Path(__file__).resolve().parents[2].joinpath("configs/rat_ct_tiny.yaml").read_text())
    preset["data"] = {"train": {"kind": "paired", "root": str(tmp_path / "train"), "preset": "ct", "patch_size": 32}}
    preset["schedule"] = {"steps": 3, "warmup": 0}
    preset["train"].update(out_dir=str(tmp_path / "run"), log_every=1, ckpt_every=3, progress=False, device="cpu")
    cfg = tmp_path / "rat.yaml"
    cfg.write_text(yaml.safe_dump(preset))
    assert main(["train", str(cfg)]) == 0
    model = tmp_path / "run" / "model"
    card = yaml.safe_load((model / "config.json").read_text())
    assert card["arch"] == "rat" and card["arch_args"]["intensity"] == "ct" and card["method"] == "rat"
    image = tmp_path / "train" / "lq" / "1.npy"
    before = image.read_bytes()
    out = tmp_path / "restored.npy"
    assert main(["restore", str(image), "-o", str(out), "--model", str(model), "--modality", "CT"]) == 0
    restored = np.load(out)
    assert restored.shape == (48, 48) and np.isfinite(restored).all()
    assert image.read_bytes() == before


@pytest.mark.parametrize("name", ["rat_ct_tiny", "rat_ct", "rat_pet", "rat_path_sr"])
def test_presets_build_the_rat_method(name):
    from types import SimpleNamespace

    from medir.engine.config import load_config
    from medir.methods import build_method

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
    channels = 3 if config.data.train.preset == "rgb8" else 1
    method = build_method(config, data=SimpleNamespace(channels=channels, scale=1))
    assert isinstance(method, RATMethod) and isinstance(method.network, RAT)
    assert method.network.intensity == config.data.train.preset  # the network can segment network-space input
    if name != "rat_ct_tiny":
        assert method.network.arch_args["width"] == 64 and len(method.network.middle) * 3 == 12


def test_rat_method_refuses_another_backbone():
    from types import SimpleNamespace

    from medir.engine.config import from_dict
    from medir.methods import build_method

    config = from_dict({"model": {"preset": "nafnet_tiny"}, "method": {"name": "rat"}})
    with pytest.raises(ConfigError, match="RAT"):
        build_method(config, data=SimpleNamespace(channels=1, scale=1))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = build_preset("rat_tiny")
    ckpt = build_preset("rat_tiny", checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    for name, p in plain.named_parameters():  # open the attention branches so they matter
        if "lambda" in name:
            p.data.fill_(0.2)
    ckpt.load_state_dict(plain.state_dict())
    x, labels = torch.rand(2, 1, 32, 32), torch.randint(0, 3, (2, 32, 32))
    for model in (plain, ckpt):
        model(x, labels).square().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=name)
