import numpy as np
import pytest
import torch
from torch import nn

from medir.engine.inference import axis_spans, core_bounds, restore_image, tiled_forward
from medir.engine.modelfile import load_model
from medir.engine.seams import seam_score
from medir.io import Image, ImageMeta
from medir.models import build_preset
from medir.nn.naf import box_mean


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


def _random_nafnet(seed: int = 0) -> nn.Module:
    """A tiny NAFNet whose blocks all act (beta, gamma are zero at init, which would make it the identity)."""
    torch.manual_seed(seed)
    net = build_preset("nafnet_tiny", in_channels=1, out_channels=1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5)
            elif name.endswith("sca.proj.weight"):
                p.normal_(0, 1.0)
    return net.eval()


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_equals_untiled_when_context_covers_receptive_field(scale):
    net = _conv_net(5, scale=scale)  # receptive-field radius 6 <= context 8
    x = torch.randn(3, 1, 150, 131)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=40, context=8, overlap=8, scale=scale, batch=5)
    assert tiled.shape == full.shape
    assert ((tiled - full).abs().max() / full.abs().max()).item() < 1e-5


def test_too_little_context_is_measurably_different():
    net = _conv_net(8)  # radius 9 > context 2: tile borders leak in
    x = torch.randn(1, 1, 96, 96)
    with torch.no_grad():
        full = net(x)
    tiled = tiled_forward(net, x, tile=32, context=2, overlap=4)
    assert ((tiled - full).norm() / (full - full.mean()).norm()).item() > 1e-2


@pytest.mark.parametrize("size,tile,overlap,scale", [(100, 32, 8, 1), (513, 128, 32, 1), (70, 64, 16, 2), (64, 64, 8, 1)])
def test_blend_weights_are_a_partition_of_unity(size, tile, overlap, scale):
    spans = axis_spans(size, tile=tile, context=5, overlap=overlap, align=8, scale=scale)
    total = torch.zeros(size * scale)
    for s in spans:
        assert s.lo % 8 == 0 and 0 <= s.lo <= s.out_lo and s.out_hi <= s.hi <= size
        total[s.out_lo * scale : s.out_hi * scale] += s.weight
    torch.testing.assert_close(total, torch.ones_like(total))
    bounds = core_bounds(size, tile, overlap)
    assert bounds[0] == 0 and bounds[-1] == size and all(b - a >= overlap for a, b in zip(bounds, bounds[1:]))


def test_box_mean_matches_direct_window_means():
    x = torch.randn(2, 3, 23, 17)
    got = box_mean(x, 5, 4)
    i, j = 0, 16  # top edge: box shifted down to rows 0..4; right edge: columns 13..16
    torch.testing.assert_close(got[..., i, j], x[..., 0:5, 13:17].mean(dim=(-2, -1)))
    torch.testing.assert_close(got[..., 11, 8], x[..., 9:14, 7:11].mean(dim=(-2, -1)))
    torch.testing.assert_close(box_mean(x, 23, 17), x.mean(dim=(-2, -1), keepdim=True).expand_as(x))


def test_tiny_nafnet_with_local_pooling_is_tile_invariant():
    net = _random_nafnet()
    x = torch.randn(1, 1, 300, 300) * 0.2 + 0.5
    net.set_local_pooling(48)
    run = lambda tile: tiled_forward(net, x, tile=tile, context=net.tile_context, overlap=16, multiple=net.multiple)
    whole = run(None)
    for tile in (64, 128):
        assert (run(tile) - whole).abs().max().item() < 1e-5 * whole.abs().max().item()
    # the same network with the paper's global pooling sees another mean in every tile
    net.set_local_pooling(None)
    assert (run(64) - run(None)).abs().max().item() > 1e-3 * whole.abs().max().item()


def test_local_pooling_is_global_pooling_below_the_window_and_in_training():
    net = _random_nafnet()
    x = torch.randn(1, 1, 40, 40)
    with torch.no_grad():
        plain = net(x)
        net.set_local_pooling(64)
        assert torch.equal(net(x), plain)  # 40x40 fits inside the window
        big = torch.randn(1, 1, 96, 96)
        local = net(big)
        net.train()
        assert not torch.allclose(net(big), local)  # training always pools globally


def test_seam_detector_flags_tile_offsets_and_passes_whole_image():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 10, (384, 384)) + np.linspace(-300, 300, 384)[None, :]
    kw = dict(bounds=[128, 256], overlap=16, segment=128)
    assert seam_score(img, **kw) < 1.5 and seam_score(img.T, **kw) < 1.5
    seamed = img.copy()
    for b in [128, 256]:  # a 10 HU step per tile border (as noisy as the image), blended over 16 lines
        seamed[b - 8 :] += np.clip((np.arange(b - 8, 384) - (b - 8)) / 16, 0, 1)[:, None] * 10.0
    assert seam_score(seamed, **kw) > 1.5


def test_restore_image_tiles_match_whole_image_in_hu(tiny_ct_model):
    model, card = load_model(tiny_ct_model)
    with torch.no_grad():
        for name, p in model.named_parameters():  # make every block act, as a trained model does
            if name.endswith(("beta", "gamma")):
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 30, (260, 300)).astype(np.float32)
    image = Image(hu, ImageMeta(modality="CT", units="HU"))
    kw = dict(pool_window=64, overlap=16)
    whole = restore_image(image, model, card, tile=None, **kw).array
    tiled = restore_image(image, model, card, tile=96, **kw).array
    assert np.abs(tiled - whole).max() < 0.05  # HU
    bounds = core_bounds(260, 96, 16)[1:-1]
    assert seam_score(tiled, bounds=bounds, overlap=16, segment=96) < 1.5


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


def test_progress_bar_counts_every_tile(monkeypatch):
    import medir.engine.inference as inference

    seen = {}

    class Bar:
        def __init__(self, it=None, *, total=None, desc=None, disable=None, **kw):
            seen.update(total=total, desc=desc, disable=disable, done=0)

        def update(self, n):
            seen["done"] += n

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(inference, "tqdm", Bar)
    x = torch.zeros(2, 1, 100, 70)
    tiled_forward(lambda t: t, x, tile=32, context=4, overlap=8, batch=3, progress="scan.dcm")
    assert seen == {"total": 2 * 3 * 2, "desc": "scan.dcm", "disable": None, "done": 12, "closed": True}


@pytest.mark.slow
def test_shipped_ct_model_tiles_256_512_and_whole_agree_within_1_hu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "tiling_memory.py"
    spec = importlib.util.spec_from_file_location("tiling_memory", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ct_like, seam = bench.ct_like, bench.seam
    model, card = load_model("ct-ldct-nafnet")
    image = Image(ct_like(1024), ImageMeta(modality="CT", units="HU"))
    whole = restore_image(image, model, card, tile=None, ensemble=False).array
    for tile in (256, 512):
        tiled = restore_image(image, model, card, tile=tile, overlap=32, ensemble=False).array
        assert np.abs(tiled - whole).max() < 1.0
        assert seam(tiled, tile, 32) < 1.5
