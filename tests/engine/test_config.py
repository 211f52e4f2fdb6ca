"""The typed config tree: strict keys, checked overrides, round trips; the cosine schedule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from medir.engine.config import Config, differences, dump, from_dict, load_config
from medir.engine.schedule import cosine_lr
from medir.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
BASE = {"model": {"preset": "nafnet_tiny"}, "data": {"train": {"root": "x"}}}


def write(tmp_path, data) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path):
    config = load_config(path)
    assert from_dict(yaml.safe_load(dump(config))) == config


def test_there_is_a_tiny_smoke_config():
    assert any(p.name == "ct_nafnet_tiny.yaml" for p in CONFIGS)


@pytest.mark.parametrize("bad, where", [
    ({"trian": {}}, "trian"),
    ({"train": {"batchsize": 4}}, "train.batchsize"),
    ({"data": {"train": {"root": "x", "patch": 32}}}, "data.train.patch"),
    ({"optim": {"lr": 1e-3, "momentum": 0.9}}, "optim.momentum"),
])
def test_unknown_keys_are_one_line_errors_naming_the_key(tmp_path, bad, where):
    data = {**BASE, **bad}
    if "data" in bad:
        data["data"] = bad["data"]
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, data))
    assert f"'{where}'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [
    {"train": {"batch_size": "four"}}, {"train": {"batch_size": 2.5}}, {"train": {"batch_size": True}},
    {"optim": {"betas": [0.9]}}, {"optim": {"name": "sgd"}}, {"schedule": {"steps": 10, "warmup": 10}},
    {"train": {"batch_size": 0}}, {"train": {"grad_clip": -1}}, {"model": {"preset": "a", "arch": "b"}},
    {"data": {"train": {"root": "x", "kind": "unpaired"}}}, {"data": {"train": {"root": "x", "patch_size": None}}},
])
def test_wrong_types_and_values_fail(tmp_path, bad):
    data = {**BASE, **bad}
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, data))


def test_overrides_are_typed_and_checked(tmp_path):
    path = write(tmp_path, BASE)
    c = load_config(path, ["optim.lr=1e-4", "train.grad_clip=0.5", "data.train.params.dose=0.1",
                           "optim.betas=[0.9, 0.99]", "data.val.root=v", "model.args.width=4", "train.stop_after=3"])
    assert c.optim.lr == 1e-4 and isinstance(c.optim.lr, float)
    assert c.train.grad_clip == 0.5 and c.optim.betas == (0.9, 0.99)
    assert c.data.train.params == {"dose": 0.1} and c.model.args == {"width": 4}
    assert c.data.val is not None and c.data.val.root == "v" and c.data.val.patch_size == 64
    assert c.train.stop_after == 3
    for bad in ["optim.lrr=1", "train=3", "train.batch_size=abc", "nokey", "data.train.root.x=1", "=3"]:
        with pytest.raises(ConfigError):
            load_config(path, [bad])


def test_defaults_and_differences():
    a = from_dict(BASE)
    b = from_dict({**BASE, "optim": {"lr": 1.0}})
    assert isinstance(a, Config) and a.method.name == "supervised"
    assert differences(a, b) == ["optim.lr"] and differences(a, a) == []


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "b.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "b.yaml")


def test_cosine_schedule_shape():
    kw = dict(base_lr=1.0, steps=100, warmup=10, min_lr=0.01)
    lrs = [cosine_lr(s, **kw) for s in range(101)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # warm-up rises
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then decays monotonically
    assert lrs[55] == pytest.approx(0.01 + 0.99 * 0.5)  # half-way through the cosine
    assert lrs[100] == pytest.approx(0.01) and cosine_lr(500, **kw) == pytest.approx(0.01)
    assert cosine_lr(0, base_lr=2.0, steps=4) == 2.0 and math.isclose(cosine_lr(2, base_lr=2.0, steps=4), 1.0)
