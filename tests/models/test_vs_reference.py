"""Same weights, same outputs: medir's backbones against the reference implementations.

The reference code is read at run time from git snapshots of the public repositories
(megvii-research/NAFNet, swz30/Restormer, JingyunLiang/SwinIR, yulunzhang/RCAN) in /work/.mirror,
by benchmarks/backbones_vs_reference.py; it is never part of medir. Without the snapshots
(or einops, which Restormer's code imports) these tests are skipped. Small configurations
keep them fast; every reference weight is perturbed first so that zero-initialised scales
(NAFNet's beta, gamma) do not hide a wrong path.
"""

import importlib.util
import tempfile
from pathlib import Path

import pytest
import torch

from medir.models import EDSR, RCAN, NAFNet, Restormer, SwinIR

ROOT = Path(__file__).resolve().parents[2]
MIRROR = Path("/work/.mirror")
REPOS = ["megvii-research+NAFNet", "swz30+Restormer", "JingyunLiang+SwinIR", "yulunzhang+RCAN"]

pytestmark = pytest.mark.skipif(
    not all((MIRROR / r / "repo").exists() for r in REPOS) or importlib.util.find_spec("einops") is None,
    reason="reference snapshots (fetch tool) or einops not available",
)


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("bvr", ROOT / "benchmarks" / "backbones_vs_reference.py")
    bvr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bvr)
    with tempfile.TemporaryDirectory() as tmp:
        bvr.extract(Path(tmp), MIRROR)
        yield bvr


def _compare(bvr, ours, theirs, family, x, atol=1e-4):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "mean" not in name:  # EDSR/RCAN's MeanShift: fixed by design, not learnt
                p.add_(0.1 * torch.randn_like(p))
    bvr.load_reference_weights(ours, theirs, family)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, atol=atol, rtol=1e-4)


def test_nafnet_matches_reference(ref):
    from basicsr.models.archs.NAFNet_arch import NAFNet as RefNAFNet

    ours = NAFNet(width=8, enc_blocks=[1, 2], middle_blocks=2, dec_blocks=[2, 1])
    theirs = RefNAFNet(img_channel=3, width=8, middle_blk_num=2, enc_blk_nums=[1, 2], dec_blk_nums=[2, 1])
    _compare(ref, ours, theirs, "nafnet", torch.rand(1, 3, 24, 20))  # multiples of 4: no padding difference


@pytest.mark.parametrize("norm_bias", [True, False])
def test_restormer_matches_reference(ref, norm_bias):
    from restormer_arch import Restormer as RefRestormer

    kw = dict(dim=8, refinement_blocks=1, heads=[1, 2, 2, 4])
    ours = Restormer(blocks=[1, 1, 2, 1], norm_bias=norm_bias, **kw)
    theirs = RefRestormer(dim=8, num_blocks=[1, 1, 2, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4],
                          LayerNorm_type="WithBias" if norm_bias else "BiasFree")
    _compare(ref, ours, theirs, "restormer", torch.rand(1, 3, 24, 16))


@pytest.mark.parametrize("scale, upsampler", [(1, ""), (2, "pixelshuffle"), (3, "pixelshuffledirect"), (4, "pixelshuffle")])
def test_swinir_matches_reference(ref, scale, upsampler):
    from network_swinir import SwinIR as RefSwinIR

    ours = SwinIR(scale=scale, embed_dim=12, depths=[2, 2], heads=[2, 3], window_size=4, num_feat=64,
                  upsampler=upsampler or "pixelshuffle")
    theirs = RefSwinIR(upscale=scale, in_chans=3, img_size=16, window_size=4, img_range=1.0, depths=[2, 2],
                       embed_dim=12, num_heads=[2, 3], mlp_ratio=2, upsampler=upsampler, resi_connection="1conv")
    family = "swinir_direct" if upsampler == "pixelshuffledirect" else "swinir"
    # 13x11 is padded (reflect) to 16x12 by both, and differs from the reference's img_size; batch 2
    # checks that the shift mask follows the windows of every sample.
    _compare(ref, ours, theirs, family, torch.rand(2, 3, 13, 11))


def test_edsr_matches_reference(ref):
    from model import edsr

    ours = EDSR(scale=2, features=8, blocks=2, res_scale=0.1)
    theirs = edsr.EDSR(ref._args(n_resblocks=2, n_feats=8, scale=[2], res_scale=0.1))
    _compare(ref, ours, theirs, "edsr", torch.rand(1, 3, 9, 7))


def test_rcan_matches_reference(ref):
    from model import rcan

    ours = RCAN(scale=4, features=16, groups=2, blocks=2, reduction=4)
    theirs = rcan.RCAN(ref._args(n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4, scale=[4]))
    _compare(ref, ours, theirs, "rcan", torch.rand(1, 3, 9, 7))
