import numpy as np
import pytest
import torch
from torch import nn

from medir.engine.inference import restore_image, tile_starts, tiled_forward
from medir.engine.modelfile import load_model
from medir.io import Image, ImageMeta


def _conv_net(layers: int, channels: int = 1, scale: int = 1) -> nn.Module:
    torch.manual_seed(0)
    mods: list[nn.Module] = []
    width = channels
    for _ in range(layers):
        mods += [nn.Conv2d(width, 8, 3, padding=1), nn.GELU()]
        width = 8
    mods.append(nn.Conv2d(width, channels * scale * scale, 3, padding=1))
    if scale > 1:
        mods.append(nn.PixelShuffle(scale))
    return nn.Sequential(*mods).eval()


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_equals_untiled_for_fully_convolutional_model(scale):
    net = _conv_net(5, scale=scale)  # receptive-field radius 6 <= overlap // 4
    x = torch.randn(3, 1, 150, 131)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=48, overlap=24, scale=scale, batch=5)
    assert tiled.shape == full.shape
    assert ((tiled - full).norm() / full.norm()).item() < 1e-4


def test_too_little_overlap_is_measurably_different():
    net = _conv_net(8)  # radius 9 > overlap // 4 = 2: borders leak in
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=32, overlap=8)
    assert ((tiled - full).norm() / full.norm()).item() > 1e-4


def test_tile_starts_cover_everything():
    for size, tile, overlap in [(100, 32, 8), (32, 32, 8), (20, 64, 8), (513, 128, 32)]:
        starts = tile_starts(size, tile, overlap)
        covered = np.zeros(size, bool)
        for s in starts:
            covered[s : s + tile] = True
        assert covered.all() and starts[-1] + min(tile, size) == size


def test_restore_image_volume_slice_by_slice(tiny_ct_model):
    model, card = load_model(tiny_ct_model)
    vol = Image(np.random.default_rng(0).normal(0, 100, (3, 40, 52)), ImageMeta(modality="CT", units="HU"))
    out = restore_image(vol, model, card, tile=None)
    assert out.array.shape == vol.array.shape
    one = restore_image(Image(vol.array[1], vol.meta), model, card, tile=None)
    np.testing.assert_allclose(out.array[1], one.array, rtol=1e-5, atol=1e-3)
    assert vol.meta.modality == "CT" and out.meta is not vol.meta


def test_restore_refuses_wrong_modality(tiny_ct_model):
    model, card = load_model(tiny_ct_model)
    with pytest.raises(Exception, match="restores CT"):
        restore_image(Image(np.zeros((32, 32)), ImageMeta(modality="MR")), model, card)
