"""Parameter counts of the papers' configurations against the reference implementations.

Each number was obtained by building the reference model class (code fetched from the named
repository, not shipped with medir) and summing ``p.numel()`` over ``model.parameters()``.
Models are built on the meta device, so these tests allocate nothing.
"""

import pytest
import torch

from medir.models import build_preset
from medir.models.complexity import count_parameters

# EDSR-PyTorch / RCAN's common.MeanShift is a 3x3 1x1-conv with bias (12 parameters), used twice;
# medir keeps the fixed mean as a buffer, so its counts are 24 lower.
MEANSHIFT = 24

CASES = [
    # swz30/Restormer basicsr/models/archs/restormer_arch.py, Restormer() defaults (paper: 26.13 M).
    ("restormer_base", {}, 26_126_644),
    # same, LayerNorm_type='BiasFree' (the paper's Gaussian-denoising models).
    ("restormer_denoise", {}, 26_111_668),
    # JingyunLiang/SwinIR models/network_swinir.py with main_test_swinir.py's define_model settings:
    ("swinir_denoise", {}, 11_504_163),  # task color_dn
    ("swinir_denoise", {"in_channels": 1, "out_channels": 1}, 11_497_681),  # task gray_dn
    ("swinir_sr_classical", {"scale": 2}, 11_752_487),  # task classical_sr, scale 2
    ("swinir_sr_classical", {"scale": 4}, 11_900_199),  # task classical_sr, scale 4
    ("swinir_sr_lightweight", {"scale": 2}, 910_152),  # task lightweight_sr, scale 2
    ("swinir_sr_lightweight", {"scale": 4}, 929_628),  # task lightweight_sr, scale 4
    # yulunzhang/RCAN RCAN_TrainCode/code/model/edsr.py (EDSR-PyTorch's), n_colors=3:
    ("edsr_baseline", {"scale": 2}, 1_369_883 - MEANSHIFT),  # n_resblocks 16, n_feats 64
    ("edsr_baseline", {"scale": 4}, 1_517_595 - MEANSHIFT),
    ("edsr_large", {"scale": 2}, 40_729_627 - MEANSHIFT),  # n_resblocks 32, n_feats 256, res_scale 0.1
    ("edsr_large", {"scale": 4}, 43_089_947 - MEANSHIFT),  # paper: 43 M
    # yulunzhang/RCAN RCAN_TrainCode/code/model/rcan.py, G10R20P48 (paper: about 16 M):
    ("rcan_base", {"scale": 2}, 15_444_667 - MEANSHIFT),
    ("rcan_base", {"scale": 4}, 15_592_379 - MEANSHIFT),
    # megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py, img_channel=3 (width 64 SIDD config).
    ("nafnet_width64", {}, 115_982_915),
]


@pytest.mark.parametrize("name, overrides, expected", CASES)
def test_reference_parameter_count(name, overrides, expected):
    with torch.device("meta"):
        model = build_preset(name, **overrides)
    assert count_parameters(model) == expected


def test_meanshift_is_not_trainable_but_applied():
    # The mean shift is a buffer: a zero-weight EDSR returns the RGB DIV2K mean, whatever the input.
    model = build_preset("edsr_tiny", scale=2).eval()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    y = model(torch.rand(1, 3, 5, 6))
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([0.4488, 0.4371, 0.4040]))
