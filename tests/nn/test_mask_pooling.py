"""Mask average pooling (SPD-VFM equation 4) against a plain per-region loop."""

import pytest
import torch

from medir.nn.mask_pooling import MaskAveragePool, drop_regions, mask_average_pool, region_means


def loop_reference(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Equation 4 written out: for each image and each label value present, the region's mean."""
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        for value in torch.unique(labels[b]):
            region = labels[b] == value
            out[b][:, region] = features[b][:, region].mean(dim=1, keepdim=True)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_equals_region_loop_with_absent_regions(seed):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(3, 5, 17, 13, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 9, (3, 17, 13), generator=g)
    labels[0][labels[0] == 4] = 7           # label 4 absent from image 0 (a class outside the crop)
    labels[1] = labels[1] % 3               # image 1 has only 3 regions, image 2 up to 9
    labels[2][labels[2] == 0] = 1           # no background in image 2
    torch.testing.assert_close(mask_average_pool(feats, labels), loop_reference(feats, labels))


def test_map_single_region_is_global_mean_and_gradient_flows():
    feats = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = mask_average_pool(feats, torch.zeros(2, 8, 8, dtype=torch.long))
    torch.testing.assert_close(out, feats.mean(dim=(2, 3), keepdim=True).expand_as(feats))
    out.sum().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all()


def test_map_resizes_labels_by_nearest_neighbour():
    feats = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, :, 4:] = 3
    small = labels[:, ::2, ::2]
    torch.testing.assert_close(mask_average_pool(feats, labels), loop_reference(feats, small))


def test_region_means_counts_absent_labels_as_empty():
    feats = torch.ones(1, 1, 2, 2)
    labels = torch.tensor([[[0, 0], [5, 5]]])
    means, counts = region_means(feats, labels)
    assert counts.tolist() == [[2, 0, 0, 0, 0, 2]]
    assert means[0, 1:5].abs().sum() == 0


def test_drop_regions_merges_half_of_the_regions_into_background():
    labels = torch.arange(1, 9).repeat_interleave(4).view(1, 4, 8)   # 8 regions, no background
    g = torch.Generator().manual_seed(0)
    dropped = drop_regions(labels, 0.5, generator=g)
    kept = torch.unique(dropped)
    assert 0 in kept and len(kept) == 1 + 4                           # 4 dropped into label 0, 4 kept
    same = dropped != 0
    assert torch.equal(dropped[same], labels[same])
    assert torch.equal(drop_regions(labels, 0.0), labels)


def test_module_drops_only_in_training():
    pool = MaskAveragePool(dropout=1.0)
    feats = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    labels = torch.tensor([[0, 0, 1, 1]] * 4)[None]
    pool.eval()
    torch.testing.assert_close(pool(feats, labels), loop_reference(feats, labels))
    pool.train()
    torch.testing.assert_close(pool(feats, labels), feats.mean().expand_as(feats))
    with pytest.raises(ValueError):
        MaskAveragePool(dropout=1.5)
