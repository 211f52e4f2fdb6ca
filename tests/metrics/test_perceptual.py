"""FID and LPIPS on the VGG16 feature network: weight files in torchvision's layout load exactly, the default
network is deterministic, the metrics behave as distances, bad weight files give one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medir.errors import MedirError
from medir.metrics.perceptual import (
    feature_network,
    fid,
    frechet_distance,
    lpips,
    lpips_and_features,
    pooled_features,
)


@pytest.fixture(scope="module")
def net():
    return feature_network()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(3)
    # smooth blobs plus texture, so features differ between images
    base = torch.nn.functional.avg_pool2d(torch.rand(10, 1, 40, 40, generator=g), 5, 1, 2)
    return ((base - base.amin()) / (base.amax() - base.amin()))[..., 4:36, 4:36].contiguous()


def _noisy(x, sigma, seed=7):
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _torchvision_state(seed: int) -> dict[str, torch.Tensor]:
    """A random VGG16 state dict with torchvision's key names, classifier included (ignored on load)."""
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) * 0.05 for k, v in feature_network().state_dict().items()}
    state["classifier.0.weight"] = torch.randn(8, 4)
    return state


def test_default_network_is_frozen_deterministic_and_labelled(net):
    again = feature_network()
    a, b = net.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert "not standard FID/LPIPS" in net.label and "random-init" in net.label
    assert sorted(a)[0].startswith("features.")
    # pinned across runs and machines: if torch's seeded RNG ever changes, default numbers stop being comparable
    first = net.features[0].weight.flatten()[:3].tolist()
    assert first == pytest.approx([-0.0663407519, -0.0679034740, -0.0147654843], abs=1e-9)
    assert net.features[28].weight.flatten()[:2].tolist() == pytest.approx([-0.0344746187, -0.0343815349], abs=1e-9)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_saved_weights_reload_with_identical_features(tmp_path, images, net, suffix):
    state = _torchvision_state(5)
    path = tmp_path / f"vgg16{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    loaded = feature_network(path)
    assert loaded.label == f"VGG16 weights vgg16{suffix}"
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    features = pooled_features(images, net=loaded)
    assert (features == pooled_features(images, net=feature_network(path))).all()
    assert not (features == pooled_features(images, net=net)).all()  # really other weights than the default


def test_fid_zero_for_a_set_with_itself_symmetric_and_growing_with_noise(images, net):
    assert fid(images, images, net=net) == pytest.approx(0.0, abs=1e-9)
    values = [fid(images, _noisy(images, s), net=net) for s in (0.02, 0.1, 0.3)]
    assert 0 < values[0] < values[1] < values[2]
    noisy = _noisy(images, 0.1)
    assert fid(noisy, images, net=net) == pytest.approx(values[1], rel=1e-6)


def test_frechet_distance_matches_closed_form_for_gaussians():
    # 1-D Gaussians: (mu_a - mu_b)^2 + (s_a - s_b)^2 for the fitted means and standard deviations
    a = torch.randn(400, 1, generator=torch.Generator().manual_seed(0)).double().numpy()
    b = 3 * a + 2
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(MedirError, match="at least 2 images"):
        frechet_distance(a[:1], b)


def test_lpips_zero_for_identical_positive_for_different_and_increasing_with_noise(images, net):
    same = lpips(images, images, net=net)
    assert same.shape == (images.shape[0],) and torch.all(same == 0)
    small, large = lpips(images, _noisy(images, 0.05), net=net), lpips(images, _noisy(images, 0.3), net=net)
    assert torch.all(small > 0) and torch.all(large > small)
    dist, fx, fy = lpips_and_features(images, _noisy(images, 0.05), net=net)
    assert torch.allclose(dist, small) and np.allclose(fx, pooled_features(images, net=net), rtol=1e-5, atol=1e-7)
    assert np.allclose(fy, pooled_features(_noisy(images, 0.05), net=net), rtol=1e-5, atol=1e-7)
    rgb = images.expand(-1, 3, -1, -1)
    assert torch.allclose(lpips(rgb, _noisy(images, 0.05).expand(-1, 3, -1, -1), net=net), small)


def test_lpips_learned_weights_scale_each_layer(tmp_path, images, net):
    widths = (64, 128, 256, 512, 512)
    torch.save({f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1) for k, c in enumerate(widths)}, tmp_path / "ones.pth")
    torch.save({f"lin{k}.model.1.weight": torch.full((1, c, 1, 1), 2.0) for k, c in enumerate(widths)},
               tmp_path / "twos.pth")
    y = _noisy(images, 0.1)
    uniform = lpips(images, y, net=net)
    assert torch.allclose(lpips(images, y, net=net, lpips_weights=tmp_path / "ones.pth"), uniform)
    assert torch.allclose(lpips(images, y, net=net, lpips_weights=tmp_path / "twos.pth"), 2 * uniform)
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "short.pth")
    with pytest.raises(MedirError, match="lin1"):
        lpips(images, y, net=net, lpips_weights=tmp_path / "short.pth")


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_bad_weight_files_give_one_line_errors(tmp_path):
    with pytest.raises(MedirError) as err:
        feature_network(tmp_path / "absent.pth")
    assert "do not exist" in _one_line(err)
    (tmp_path / "garbage.pth").write_bytes(b"not a torch file")
    with pytest.raises(MedirError) as err:
        feature_network(tmp_path / "garbage.pth")
    assert "cannot read" in _one_line(err)
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "keys.pth")
    with pytest.raises(MedirError) as err:
        feature_network(tmp_path / "keys.pth")
    assert "features.0.weight" in _one_line(err)
    state = {k: v.clone() for k, v in feature_network().state_dict().items()}
    state["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(MedirError) as err:
        feature_network(tmp_path / "shape.pth")
    assert "(32, 3, 3, 3)" in _one_line(err)


def test_images_outside_unit_range_or_too_small_are_refused(images, net):
    with pytest.raises(MedirError, match=r"\[0, 1\]"):
        lpips(images * 2, images, net=net)
    with pytest.raises(MedirError, match="16x16"):
        fid(images[..., :8, :8], images[..., :8, :8], net=net)


def test_small_sample_trace_equals_the_covariance_form():
    from medir.metrics.perceptual import _trace_sqrt_cov, _trace_sqrt_gram

    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(n, 40, generator=g).double().numpy() for n in (12, 9))
    a, b = a - a.mean(0), b - b.mean(0)
    # the covariance form adds sqrt(rounding-level eigenvalues) of its rank-deficient product: ~1e-7 relative
    assert _trace_sqrt_gram(a, b) == pytest.approx(_trace_sqrt_cov(a, b), rel=1e-6)
