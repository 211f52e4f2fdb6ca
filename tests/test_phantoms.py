import pytest
import torch

from medir.data.phantoms import (LABELS, T1_BY_LABEL, BrainPetMrDataset, brain_slice, brain_slice_range, make_subject,
                                 shepp_logan_hu, split_slices, split_subjects, subject_slices, water_disk)
from medir.errors import MedirError

Z = 80  # a central axial slice




def test_labels_and_uptake_ratios():
    s = brain_slice(Z, size=64)
    labels = s.labels[0]
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3}
    for name in ("csf", "grey", "white"):
        assert (labels == LABELS[name]).sum() > 20
    act = s.activity[0]
    grey, white, csf = (act[labels == LABELS[k]].mean().item() for k in ("grey", "white", "csf"))
    assert grey / white == pytest.approx(4.0, rel=1e-5)
    assert csf / white == pytest.approx(0.05, rel=1e-5)
    # the old mixed-probability activity is still available, and flatter (the 2.2:1 of issue 10)
    pv = brain_slice(Z, size=64, partial_volume=True)
    assert 2 < pv.activity[0][labels == 2].mean() / pv.activity[0][labels == 3].mean() < 3.5
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


def test_effective_ratios_and_t1_on_a_warped_subject():
    """Measured on a warped test subject at the dataset's size: GM:WM about 4, CSF about 0, T1 WM > GM > CSF."""
    s = brain_slice(Z, size=128, subject=make_subject(split_subjects("test")[0]))
    labels, act, mr = s.labels[0], s.activity[0], s.mr[0]
    grey, white, csf = (act[labels == LABELS[k]].mean().item() for k in ("grey", "white", "csf"))
    assert grey / white == pytest.approx(4.0, rel=0.05)
    assert csf / white < 0.1
    t1 = [mr[labels == LABELS[k]].median().item() for k in ("csf", "grey", "white")]
    assert t1 == pytest.approx(list(T1_BY_LABEL), abs=1e-6)
    # the warp changed the anatomy: labels differ from the template's
    assert (brain_slice(Z, size=128).labels != s.labels).float().mean() > 0.02


def test_subject_splits_are_disjoint_and_test_covers_the_brain():
    parts = {k: set(split_subjects(k)) for k in ("train", "val", "test")}
    assert all(parts.values())
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    ds = BrainPetMrDataset("test", size=32, rotations=1)
    zs = sorted({ds.locate(i)[1] for i in range(len(ds))})
    lo, hi = brain_slice_range()
    assert zs == subject_slices() and zs[0] == lo and zs[-1] == hi - 1
    assert len({ds.locate(i)[0].seed for i in range(len(ds))}) == len(parts["test"])
    with pytest.raises(MedirError):
        split_subjects("holdout")


def test_splits_are_disjoint_with_gap():
    lo, hi = brain_slice_range()
    parts = {k: split_slices(k) for k in ("train", "val", "test")}
    assert all(parts.values())
    assert max(parts["train"]) + 1 < min(parts["val"]) and max(parts["val"]) + 1 < min(parts["test"])
    assert lo <= min(parts["train"]) and max(parts["test"]) < hi
    with pytest.raises(MedirError):
        split_slices("holdout")


def test_dataset_item_tuple():
    ds = BrainPetMrDataset("test", size=64, rotations=2, seed=3, subjects=1, slices=3)
    assert len(ds) == 2 * 3
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
