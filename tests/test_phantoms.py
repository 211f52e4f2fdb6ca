import pytest
import torch

from medir.data.phantoms import (LABELS, BrainPetMrDataset, brain_slice, brain_slice_range, shepp_logan_hu, split_slices,
                                 water_disk)
from medir.errors import MedirError

Z = 80  # a central axial slice




def test_labels_and_uptake_ratios():
    s = brain_slice(Z, size=64, partial_volume=False)
    labels = s.labels[0]
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3}
    for name in ("csf", "grey", "white"):
        assert (labels == LABELS[name]).sum() > 20
    act = s.activity[0]
    grey, white, csf = (act[labels == LABELS[k]].mean().item() for k in ("grey", "white", "csf"))
    assert grey / white == pytest.approx(4.0, rel=1e-5)
    assert csf / white == pytest.approx(0.05, rel=1e-5)
    # partial-volume activity keeps grey hotter than white on average
    pv = brain_slice(Z, size=64)
    assert pv.activity[0][labels == 2].mean() > 2 * pv.activity[0][labels == 3].mean()
    # attenuation covers the head, bone denser than tissue
    assert s.mu_map.max().item() == pytest.approx(0.0151, rel=1e-3)
    assert (s.mu_map[0][labels > 0] > 0).float().mean() > 0.99


def test_lesions_in_pet_not_in_mr():
    g = torch.Generator().manual_seed(0)
    plain = brain_slice(Z, size=64)
    les = brain_slice(Z, size=64, hot_lesions=1, cold_lesions=1, generator=g)
    assert les.lesion_mask.sum() > 0
    assert torch.equal(les.mr, plain.mr)
    inside = les.lesion_mask[0] > 0
    assert not torch.allclose(les.activity[0][inside], plain.activity[0][inside])
    assert torch.equal(les.activity[0][~inside], plain.activity[0][~inside])
    assert bool((les.labels[0][inside] == LABELS["lesion"]).all())


def test_rotation_keeps_label_values():
    s = brain_slice(Z, size=64, angle_deg=12.0, hot_lesions=1, generator=torch.Generator().manual_seed(1))
    assert set(s.labels.unique().tolist()) <= set(LABELS.values())
    assert not torch.equal(s.mr, brain_slice(Z, size=64).mr)


def test_splits_are_disjoint_with_gap():
    lo, hi = brain_slice_range()
    parts = {k: split_slices(k) for k in ("train", "val", "test")}
    assert all(parts.values())
    assert max(parts["train"]) + 1 < min(parts["val"]) and max(parts["val"]) + 1 < min(parts["test"])
    assert lo <= min(parts["train"]) and max(parts["test"]) < hi
    with pytest.raises(MedirError):
        split_slices("holdout")


def test_dataset_item_tuple():
    ds = BrainPetMrDataset("test", size=64, rotations=2, seed=3)
    assert len(ds) == 2 * len(split_slices("test"))
    item = ds[0]
    for t in (item.low_pet, item.mr, item.high_pet, item.lesion_mask, item.labels, item.activity):
        assert t.shape == (1, 64, 64)
    assert torch.equal(item.low_pet, ds[0].low_pet)
    err_hi = (item.high_pet - item.activity).pow(2).mean()
    err_lo = (item.low_pet - item.activity).pow(2).mean()
    assert err_hi < err_lo


def test_ct_helpers():
    d = water_disk(32)
    assert d.shape == (1, 1, 32, 32) and d.max() == 0 and d.min() == -1000
    sl = shepp_logan_hu(64)
    assert sl.shape == (1, 1, 64, 64) and sl.min() >= -1001


@pytest.mark.slow
def test_paper_protocol_at_128_pixels():
    """MFdiff protocol on the brain phantom at 2 mm pixels: high-count OSEM is closer to the truth."""
    ds = BrainPetMrDataset("train", size=128, rotations=1, seed=0)
    item = ds[len(ds) // 2]
    brain = item.labels > 0
    err_hi = (item.high_pet - item.activity)[brain].pow(2).mean()
    err_lo = (item.low_pet - item.activity)[brain].pow(2).mean()
    assert err_hi < 0.7 * err_lo
