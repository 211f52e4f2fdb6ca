import pytest
import torch
from torch import nn

from medir.data.intensity import get_preset
from medir.errors import ConfigError
from medir.methods import network_window
from medir.methods.supervised import Supervised


class _Shift(nn.Module):
    def __init__(self, shift: torch.Tensor):
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def _batch():
    hq = torch.tensor([[[[0.5, 0.2, -2.0, 3.0]]]])  # two pixels in the window [0, 1], air and bone outside it
    return {"lq": hq.clone(), "hq": hq}


def test_window_loss_ignores_errors_where_prediction_and_target_are_both_outside_the_window():
    batch = _batch()
    shift = torch.tensor([[[[0.0, 0.0, -0.7, 0.9]]]])  # errors only in air and bone, both staying outside
    method = Supervised(_Shift(shift), loss="mse", window=(0.0, 1.0), outside_weight=0.0)
    loss, logs = method(batch)
    assert loss.item() == 0.0 and logs["mse_window"].item() == 0.0
    full = Supervised(_Shift(shift), loss="mse")
    assert full(batch)[0].item() > 0.1
    # inside the window it counts as usual, and outside_weight adds the full-range loss back
    inside = torch.tensor([[[[0.1, 0.0, 0.0, 0.0]]]])
    method = Supervised(_Shift(inside), loss="mse", window=(0.0, 1.0), outside_weight=0.0)
    assert method(batch)[0].item() == pytest.approx(0.01 / 4)
    weighted = Supervised(_Shift(shift), loss="mse", window=(0.0, 1.0), outside_weight=0.5)
    assert weighted(batch)[0].item() == pytest.approx(0.5 * (0.49 + 0.81) / 4)


def test_network_window_maps_the_presets_evaluation_window():
    assert network_window(get_preset("ct-soft")) == pytest.approx((0.0, 1.0))
    lo, hi = network_window(get_preset("ct"))
    assert lo == pytest.approx((-160 + 1024) / 4095) and hi == pytest.approx((240 + 1024) / 4095)
    with pytest.raises(ConfigError, match="window_loss"):
        network_window(get_preset("pet"))
    with pytest.raises(ValueError, match="empty"):
        Supervised(nn.Identity(), window=(1.0, 1.0))
