"""NAFNet: parameter counts of the paper's configurations and block-level properties."""

import torch

from medir.models import NAFNet, build_preset
from medir.models.complexity import count_parameters, describe
from medir.nn.naf import NAFBlock, SimpleGate
from medir.nn.norm import LayerNorm2d


def test_reference_parameter_counts():
    # Counts of megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py, img_channel=3, width=32
    # (the two configurations in its __main__ block; also the numbers).
    assert count_parameters(build_preset("nafnet_width32")) == 29_159_715
    assert count_parameters(build_preset("nafnet_gopro_width32")) == 17_111_907


def test_reference_macs_match_paper():
    # NAFNet paper, table 1 / figure 1: NAFNet-width32 on SIDD costs 16 GMACs at 256x256.
    params, macs = describe(NAFNet)
    assert params == 29_159_715
    assert abs(macs / 1e9 - 16.0) < 0.1


def test_layernorm2d_matches_layer_norm_over_channels():
    x = torch.randn(2, 6, 5, 7)
    ln = LayerNorm2d(6)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)


def test_simple_gate_halves_channels_and_multiplies():
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(SimpleGate()(x), x[:, :2] * x[:, 2:])


def test_nafblock_is_identity_at_init():
    # beta and gamma start at zero (paper, section 3.3): a fresh block passes its input through.
    block = NAFBlock(8)
    x = torch.randn(2, 8, 9, 11)
    torch.testing.assert_close(block(x), x)


def test_global_residual_uses_first_channels():
    # A fresh NAFNet with zeroed ending conv returns exactly its first out_channels input channels.
    model = build_preset("nafnet_tiny", in_channels=3, out_channels=1).eval()
    torch.nn.init.zeros_(model.ending.weight)
    torch.nn.init.zeros_(model.ending.bias)
    x = torch.rand(1, 3, 13, 21)
    torch.testing.assert_close(model(x), x[:, :1])


def test_super_resolution_runs_on_preupsampled_input():
    # scale 2: the paper has no SR head, so the model restores the bicubic upsampling; with a zeroed
    # ending conv the output is exactly that upsampling.
    model = build_preset("nafnet_tiny", in_channels=1, out_channels=1, scale=2).eval()
    torch.nn.init.zeros_(model.ending.weight)
    torch.nn.init.zeros_(model.ending.bias)
    x = torch.rand(1, 1, 9, 14)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(model(x), up)
