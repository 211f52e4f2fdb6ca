"""Guided restoration (an image plus a co-registered guide of another modality): data kind, training card, inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medir.cli import main
from medir.engine.config import from_dict


def _blobs(rng: np.random.Generator, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A PET-like activity map (counts) and a guide with the same structure at other intensities."""
    yy, xx = np.mgrid[:size, :size]
    pet, mr = np.zeros((size, size), np.float32), np.full((size, size), 0.1, np.float32)
    for k in range(3):
        cy, cx, r = *rng.uniform(10, size - 10, 2), rng.uniform(4, 8)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        pet[disk], mr[disk] = 100.0 * (k + 1), 0.3 * (k + 1)
    return pet, mr


@pytest.fixture()
def guided_data(tmp_path) -> Path:
    root = tmp_path / "pairs"
    for d in ("lq", "hq", "mr"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        hq, mr = _blobs(rng)
        np.save(root / "hq" / f"{i}.npy", hq)
        np.save(root / "lq" / f"{i}.npy", rng.poisson(hq).astype(np.float32))
        np.save(root / "mr" / f"{i}.npy", mr * 1000.0)  # guide in its own units
    return root


def _cfg(root: Path, *, val: bool = False):
    d = {"kind": "guided", "root": str(root), "params": {"aux": "mr"}, "preset": "pet-counts", "patch_size": 16}
    data = from_dict({"data": {"train": d, "val": {**d, "patch_size": None}}}).data
    return data.val if val else data.train


def test_guided_samples_stack_the_guide_with_its_own_scale(guided_data):
    from medir.data.guided import GuidedPatchDataset, GuidedValDataset

    ds = GuidedPatchDataset(_cfg(guided_data), seed=0)
    s = ds[5]
    assert s["lq"].shape == (2, 16, 16) and s["hq"].shape == (1, 16, 16)
    assert ds.channels == 1 and ds.in_channels == 2 and ds.aux_modalities == ["MR"]
    assert torch.equal(GuidedPatchDataset(_cfg(guided_data), seed=0)[5]["lq"], s["lq"])  # a pure function of the index
    # the guide is scaled by its own percentile: multiplying its files by 7 changes nothing the network sees
    for p in (guided_data / "mr").glob("*.npy"):
        np.save(p, np.load(p) * 7.0)
    torch.testing.assert_close(GuidedPatchDataset(_cfg(guided_data), seed=0)[5]["lq"], s["lq"])
    val = GuidedValDataset(_cfg(guided_data, val=True))
    assert len(val) == 3 and val[0]["lq"].shape == (2, 40, 40)


def test_guided_data_needs_every_partner(guided_data, capsys):
    from medir.data.guided import GuidedPatchDataset
    from medir.errors import ConfigError

    (guided_data / "mr" / "1.npy").unlink()
    with pytest.raises(ConfigError, match="partner"):
        GuidedPatchDataset(_cfg(guided_data), seed=0)


def test_guided_training_writes_a_card_with_the_guide(guided_data, tmp_path, capsys):
    import yaml

    from medir.engine.modelfile import load_card

    out = tmp_path / "run"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "task": "pet-lowcount", "model": {"preset": "nafnet_tiny", "args": {"in_channels": 2, "out_channels": 1}},
        "method": {"args": {"loss": "l1"}},
        "data": {"train": {"kind": "guided", "root": str(guided_data), "params": {"aux": "mr"}, "preset": "pet-counts",
                           "patch_size": 16},
                 "val": {"kind": "guided", "root": str(guided_data), "params": {"aux": "mr"}, "preset": "pet-counts",
                         "patch_size": None}}}))
    assert main(["train", str(path), f"train.out_dir={out}", "schedule.steps=2", "train.batch_size=2",
                 "train.val_every=2", "train.progress=false", "train.device=cpu"]) == 0
    card = load_card(out / "model")
    assert (card.in_channels, card.out_channels, card.aux_modalities) == (2, 1, ["MR"])
    assert card.aux_preset.name == "mr-guide" and card.modalities == ["PT"]


def _guided_model(tmp_path: Path):
    from medir.data.guided import aux_preset
    from medir.data.intensity import get_preset
    from medir.engine.modelfile import ModelCard, load_model, save_model
    from medir.models import build_preset

    torch.manual_seed(0)
    net = build_preset("nafnet_tiny", in_channels=2, out_channels=1)
    card = ModelCard(arch="nafnet", arch_args=dict(net.arch_args), task="pet-lowcount", modality="PT",
                     intensity=get_preset("pet-counts").to_dict(), in_channels=2, out_channels=1,
                     aux_modalities=["MR"], aux_intensity=aux_preset("mr").to_dict())
    save_model(tmp_path / "guided", net, card)
    return load_model(tmp_path / "guided")


def test_restore_guided_matches_the_network_and_is_unit_free(tmp_path):
    from medir.engine.guided import restore_guided
    from medir.io import Image, ImageMeta

    model, card = _guided_model(tmp_path)
    rng = np.random.default_rng(1)
    pet, mr = _blobs(rng, 48)
    x = Image(rng.poisson(pet).astype(np.float32), ImageMeta(modality="PT", units="counts"))
    g = Image(mr, ImageMeta(modality="MR"))
    out, std = restore_guided(x, g, model, card, tile=None, tta=True)
    # by hand: PET / its 99.9th percentile, MR / its 99.5th, network, back
    sx, sg = np.percentile(x.array, 99.9), np.percentile(mr, 99.5)
    with torch.no_grad():
        ref = model(torch.from_numpy(np.stack([x.array / sx, mr / sg])[None]).float())[0, 0].numpy() * sx
    np.testing.assert_allclose(out.array, ref, rtol=1e-4, atol=1e-3 * sx)
    assert std.array.shape == (48, 48) and (std.array >= 0).all() and std.array.max() > 0
    # any PET units and any MR units: the output scales with the PET and ignores the MR's scale
    twice = restore_guided(Image(x.array * 2, x.meta), Image(mr * 50, g.meta), model, card, tile=None)[0]
    np.testing.assert_allclose(twice.array, 2 * out.array, rtol=1e-4, atol=1e-3 * sx)
    tiled = restore_guided(x, g, model, card, tile=24, overlap=8)[0]
    np.testing.assert_allclose(tiled.array, out.array, rtol=1e-3, atol=1e-3 * sx)


def test_petmr_items_are_split_by_subject_and_cover_the_brain():
    from medir.data.petmr import split_items
    from medir.data.phantoms import brain_slice_range

    subjects = {s: {k for k, _, _ in split_items(s)} for s in ("train", "val", "test")}
    assert not (subjects["train"] & subjects["val"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["val"] & subjects["test"])
    lo, hi = brain_slice_range()
    z = sorted({z for _, z, _ in split_items("test")})
    assert z[0] == lo and z[-1] == hi - 1 and len(z) == 16


def test_guided_data_pools_several_roots(guided_data, tmp_path):
    from medir.data.guided import GuidedPatchDataset

    second = tmp_path / "second"
    for d in ("lq", "hq", "mr"):
        (second / d).mkdir(parents=True)
    hq, mr = _blobs(np.random.default_rng(5), size=24)  # another grid: pooled slices need not share a size
    for d, arr in (("hq", hq), ("lq", hq + 1.0), ("mr", mr)):
        np.save(second / d / "0.npy", arr)
    cfg = _cfg(guided_data)
    cfg.root = [str(guided_data), str(second)]
    ds = GuidedPatchDataset(cfg, seed=0)
    assert len(ds.hq) == 4 and ds.hq[-1].shape[-1] == 24
    np.testing.assert_array_equal(ds.lq[-1][0], hq + 1.0)


def test_petmr_size_changes_the_grid_not_the_item():
    """``--size 64`` writes the same slice (subject, z, rotation, lesions) on 4 mm pixels."""
    from medir.data.petmr import chunk_phantoms, split_items

    items = split_items("test")[:2]
    fine, _, f_factor = chunk_phantoms(items, split="test", chunk_index=0)
    coarse, _, c_factor = chunk_phantoms(items, split="test", chunk_index=0, size=64)
    assert f_factor == c_factor
    for a, b in zip(fine, coarse):
        assert a.activity.shape[-1] == 128 and b.activity.shape[-1] == 64
        assert a.pixel_size_mm == 2.0 and b.pixel_size_mm == 4.0
        # the coarse activity is the fine one seen on a 2x coarser grid (same anatomy, same lesions)
        pooled = torch.nn.functional.avg_pool2d(a.activity[None], 2)[0]
        assert torch.corrcoef(torch.stack([pooled.flatten(), b.activity.flatten()]))[0, 1] > 0.9
