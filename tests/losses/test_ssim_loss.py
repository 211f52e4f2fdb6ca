import pytest
import torch

from medir.losses import ssim_loss
from medir.methods.supervised import Supervised
from medir.metrics import ssim


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 1, 32, 32, generator=g)
    return target + 0.1 * torch.randn(2, 1, 32, 32, generator=g), target


def test_ssim_loss_is_one_minus_the_ssim_metric_and_zero_on_the_target():
    pred, target = _pair()
    assert ssim_loss(pred, target, data_range=1.0).item() == pytest.approx(1 - ssim(pred, target, data_range=1.0),
                                                                            abs=1e-5)
    assert ssim_loss(target, target, data_range=1.0).item() == pytest.approx(0.0, abs=1e-6)
    # the constants follow data_range: the same images scaled by 400 with data_range 400 give the same loss
    assert ssim_loss(400 * pred, 400 * target, data_range=400.0).item() == pytest.approx(
        ssim_loss(pred, target, data_range=1.0).item(), rel=1e-4)


def test_ssim_weight_adds_a_differentiable_windowed_structural_term():
    pred, target = _pair(1)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    batch = {"lq": pred, "hq": target}
    plain = Supervised(net, loss="mse", window=(0.0, 1.0))
    mixed = Supervised(net, loss="mse", window=(0.0, 1.0), ssim_weight=2.0)
    loss0, _ = plain(batch)
    loss1, logs = mixed(batch)
    out = net(pred)
    expected = ssim_loss(out.clamp(0, 1), target.clamp(0, 1), data_range=1.0)
    assert logs["ssim_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert (loss1 - loss0).item() == pytest.approx(2.0 * expected.item(), rel=1e-5)
    loss1.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ssim_weight"):
        Supervised(net, ssim_weight=-1.0)
