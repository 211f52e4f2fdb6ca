"""Properties every registered architecture must have, checked over the registry (tiny presets)."""

import json

import pytest
import torch

from medir.errors import ConfigError
from medir.models import MODELS, PRESETS, build_model, build_preset, describe_architectures
from medir.models.complexity import count_macs, count_parameters

TINY = sorted(name for name in PRESETS if name.endswith("_tiny"))
STAGED = {"diffcode_tiny"}  # one channel, trained part by part in stages: see tests/methods/test_diffcode.py


def test_every_architecture_has_a_tiny_preset():
    for arch in MODELS:
        assert f"{arch}_tiny" in PRESETS, f"{arch} has no tiny preset"


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_backward_odd_size(name, channels):
    if name in STAGED:
        pytest.skip("staged model")
    torch.manual_seed(0)
    model = build_preset(name, in_channels=channels, out_channels=channels)
    x = torch.rand(1, channels, 67, 45, requires_grad=True)
    y = model(x)
    assert y.shape == (1, channels, 67, 45)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", TINY)
def test_extra_conditioning_channels(name):
    # 1 image channel + 2 conditioning channels -> 1 output channel, no code change in the backbone.
    if name in STAGED:
        pytest.skip("staged model")
    model = build_preset(name, in_channels=3, out_channels=1).eval()
    x = torch.rand(1, 3, 19, 26)
    y = model(x)
    assert y.shape == (1, 1, 19, 26)
    # The conditioning channels reach the output.
    x2 = x.clone()
    x2[:, 1:] = torch.rand_like(x2[:, 1:])
    with torch.no_grad():
        for p in model.parameters():  # make the untrained network non-degenerate
            p.add_(0.05 * torch.randn_like(p))
    assert not torch.allclose(model(x), model(x2))


@pytest.mark.parametrize("name", TINY)
def test_deterministic_in_eval(name):
    model = build_preset(name, in_channels=1, out_channels=1).eval()
    x = torch.rand(1, 1, 33, 17)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_config_roundtrip_json(name):
    # A model rebuilt from JSON arch_args has the same state-dict layout.
    model = build_preset(name, in_channels=1, out_channels=1)
    arch = next(a for a, cls in MODELS.items() if type(model) is cls)
    args = json.loads(json.dumps(model.arch_args))
    rebuilt = build_model(arch, **args)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_unknown_names_are_config_errors():
    with pytest.raises(ConfigError):
        build_model("nope")
    with pytest.raises(ConfigError):
        build_preset("nope")
    with pytest.raises(ConfigError):
        build_model("nafnet", not_an_argument=3)
    with pytest.raises(ConfigError):
        build_model("nafnet", scale=3)
    with pytest.raises(ConfigError):
        build_model("nafnet", enc_blocks=[1], dec_blocks=[1, 1])
    with pytest.raises(ConfigError):
        build_model("swinir", upsampler="bilinear")
    with pytest.raises(ConfigError):
        build_model("restormer", blocks=[1, 1], heads=[1])


def test_describe_architectures_rows():
    # Rows agree with a real (non-meta) build and a real forward under the FLOP counter.
    rows = describe_architectures(size=64, names=TINY)
    assert [r[0] for r in rows] == TINY
    for name, params, macs in rows:
        model = build_preset(name, in_channels=3, out_channels=3)
        assert params == count_parameters(model), name
        assert macs == count_macs(model, 3, 64, 64), name
        assert count_macs(model, 3, 128, 128) >= 3.9 * macs, name  # cost grows with the pixel count
    with pytest.raises(ConfigError):
        describe_architectures(names=["nope"])


@pytest.mark.parametrize("name", TINY)
def test_overfits_a_phantom_patch(name, phantom):
    if name in STAGED:
        pytest.skip("staged model")
    # Denoising one 32x32 phantom patch: the L1 loss must fall 10x within 400 Adam steps.
    torch.manual_seed(0)
    target = phantom(32, 1)
    noisy = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    model = build_preset(name, in_channels=1, out_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = None
    for step in range(400):
        loss = (model(noisy) - target).abs().mean()
        first = loss.item() if first is None else first
        if loss.item() < first / 10:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, f"{name}: loss {first:.4f} -> {loss.item():.4f} after {step + 1} steps"


SR_SCALES = {"nafnet": (2, 4), "unet": (2, 4), "restormer": (2, 4), "swinir": (2, 3, 4), "edsr": (2, 3, 4), "rcan": (2, 3, 4),
             "lrformer": (2, 4), "rat": (2, 4), "diffcode": ()}


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_super_resolution_shapes(arch):
    assert set(SR_SCALES) == set(MODELS)
    for scale in SR_SCALES[arch]:
        model = build_preset(f"{arch}_tiny", in_channels=2, out_channels=1, scale=scale).eval()
        with torch.no_grad():
            y = model(torch.rand(1, 2, 11, 7))
        assert y.shape == (1, 1, 11 * scale, 7 * scale), (arch, scale)
        assert torch.isfinite(y).all()
