import numpy as np
import pytest
import torch
from torch import nn

from medir.data.intensity import get_preset
from medir.engine.inference import restore_image, restore_with_uncertainty, tiled_forward
from medir.engine.modelfile import ModelCard
from medir.engine.tta import DIHEDRAL, dihedral_forward, dihedral_outputs, inverse, transform
from medir.io import Image, ImageMeta
from medir.models import build_preset


def _card(scale: int = 1) -> ModelCard:
    return ModelCard(arch="test", arch_args={}, task="ct-denoise", modality="CT", intensity=get_preset("ct").to_dict(),
                     scale=scale)


def _numpy_reference(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """The same group element written with numpy (flip left-right, then rotate counter-clockwise)."""
    return np.rot90(a[..., ::-1] if flip else a, k, axes=(-2, -1))


class _Blur(nn.Module):
    """A symmetric 3x3 blur (equivariant under all 8 transforms), optionally followed by x2 nearest upsampling."""

    def __init__(self, scale: int = 1):
        super().__init__()
        kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        self.register_buffer("kernel", kernel[None, None])
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel)
        return nn.functional.interpolate(y, scale_factor=self.scale, mode="nearest") if self.scale > 1 else y


def _oriented_net(scale: int = 1) -> nn.Module:
    """A random conv net with a shift in one direction: not equivariant."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 6, 3, padding=1), nn.GELU(), nn.Conv2d(6, scale * scale, 3, padding=1)]
    return nn.Sequential(*layers, *([nn.PixelShuffle(scale)] if scale > 1 else [])).eval()


def test_the_eight_transforms_are_distinct_invertible_and_match_numpy():
    x = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    seen = set()
    for k, flip in DIHEDRAL:
        y = transform(x, k, flip)
        np.testing.assert_array_equal(y.numpy(), _numpy_reference(x.numpy(), k, flip))
        assert torch.equal(inverse(y, k, flip), x)
        seen.add(y.numpy().tobytes())
    assert len(seen) == 8


@pytest.mark.parametrize("scale", [1, 2])
def test_std_is_zero_for_an_equivariant_model_and_positive_otherwise(scale):
    image = Image(np.random.default_rng(0).normal(40, 30, (1, 45, 38)).astype(np.float32),
                  ImageMeta(modality="CT", units="HU"))
    mean, std = restore_with_uncertainty(image, _Blur(scale), _card(scale), tile=None)
    plain = restore_image(image, _Blur(scale), _card(scale), tile=None)
    assert std.array.shape == mean.array.shape == plain.array.shape == (1, 45 * scale, 38 * scale)
    assert std.array.max() < 1e-3  # HU: float rounding only
    np.testing.assert_allclose(mean.array, plain.array, atol=1e-3)
    mean, std = restore_with_uncertainty(image, _oriented_net(scale), _card(scale), tile=None)
    plain = restore_image(image, _oriented_net(scale), _card(scale), tile=None)
    assert std.array.min() >= 0 and std.array.mean() > 1.0  # HU
    assert np.abs(mean.array - plain.array).mean() > 0.1  # the ensemble is not the plain output


def test_std_equals_the_spread_of_the_eight_outputs_by_hand():
    net = _oriented_net()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        by_hand = torch.stack([inverse(net(transform(x, k, f)), k, f) for k, f in DIHEDRAL])
        out = dihedral_forward(net)(x)
    torch.testing.assert_close(out[:, :1], by_hand.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1:], by_hand.std(0, unbiased=False), atol=1e-5, rtol=0)


def test_tiled_self_ensemble_equals_whole_image_also_for_sizes_off_the_unet_grid():
    torch.manual_seed(1)
    net = build_preset("nafnet_tiny", in_channels=1, out_channels=1).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5)
    net.set_local_pooling(48)
    forward = dihedral_forward(net, multiple=net.multiple)
    x = torch.randn(1, 1, 101, 90)  # neither side a multiple of the network's 2^levels
    with torch.no_grad():
        whole = forward(x)
    tiled = tiled_forward(forward, x, tile=40, overlap=8, context=getattr(net, "tile_context", 32),
                          multiple=net.multiple)
    assert (tiled - whole).abs().max().item() < 1e-4
    assert whole[:, 1].mean().item() > 1e-3  # a random NAFNet is not equivariant


def test_outputs_are_cropped_back_after_padding():
    outs = dihedral_outputs(_Blur(2), torch.randn(2, 1, 9, 13), multiple=8, scale=2)
    assert outs.shape == (8, 2, 1, 18, 26)
