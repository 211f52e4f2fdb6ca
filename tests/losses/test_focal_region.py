"""Focal region loss (equation 5 of the RAT paper)."""

import pytest
import torch

from medir.losses import FocalRegionLoss, focal_region_loss, region_weights


def test_gamma_zero_is_l1():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    labels = torch.randint(0, 4, (2, 8, 8), generator=g)
    assert focal_region_loss(pred, target, labels, gamma=0.0) == pytest.approx(float((pred - target).abs().mean()))


def test_weights_are_region_means_over_the_image_max_to_the_power_delta():
    target = torch.zeros(2, 1, 2, 4)
    pred = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 5.0]]).view(1, 1, 2, 4).repeat(2, 1, 1, 1)
    pred[1] *= 10  # the second image: same pattern, 10x the error -> the same normalised weights
    labels = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]]).expand(2, 2, 4)  # region means 1 and 3.5 (x10)
    w = region_weights((pred - target).abs(), labels, delta=1.0)
    expected = torch.tensor([1 / 3.5, 1 / 3.5, 1.0, 1.0]).repeat(2).view(1, 1, 2, 4).expand(2, 1, 2, 4)
    torch.testing.assert_close(w, expected)
    w2 = region_weights((pred - target).abs(), labels, delta=2.0)
    torch.testing.assert_close(w2, expected**2)
    loss = focal_region_loss(pred, target, labels, gamma=0.5, delta=1.0)
    assert loss == pytest.approx(float(((pred - target).abs() * (1 + 0.5 * expected)).mean()))


def test_weights_are_detached_and_the_gradient_is_the_weighted_l1():
    target = torch.zeros(1, 1, 2, 2)
    pred = torch.tensor([[[[1.0, -2.0], [4.0, 0.5]]]], requires_grad=True)
    labels = torch.tensor([[[0, 0], [1, 1]]])
    FocalRegionLoss(gamma=2.0)(pred, target, labels).backward()
    w = torch.tensor([[[[1.5 / 2.25, 1.5 / 2.25], [1.0, 1.0]]]])
    torch.testing.assert_close(pred.grad, torch.sign(pred.detach()) * (1 + 2.0 * w) / 4)


def test_an_image_without_error_has_zero_weight_and_bad_labels_are_refused():
    x = torch.ones(1, 1, 4, 4)
    assert focal_region_loss(x, x, torch.zeros(1, 4, 4, dtype=torch.long), gamma=1.0) == 0
    with pytest.raises(ValueError, match="labels"):
        focal_region_loss(x, x, torch.zeros(1, 3, 4, dtype=torch.long))
