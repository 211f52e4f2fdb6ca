import pytest
import torch

from medir.errors import MedirError
from medir.physics import simulate
from medir.physics.filters import motion_kernel
from medir.physics.mri import bicubic_down, kspace_truncate
from medir.physics.optics import motion_blur, smoke_field


def mr_image(n=64):
    c = torch.linspace(-1, 1, n)
    r = torch.hypot(c[:, None], c[None, :])
    return (1000 * (r < 0.8) + 500 * (r < 0.4) + 100 * torch.cos(8 * c)[None, :]).clamp_min(0)[None, None]


@pytest.mark.parametrize("method", ["bicubic", "kspace"])
@pytest.mark.parametrize("scale", [2, 4])
def test_mri_sr_shapes_and_mean(method, scale):
    x = mr_image()
    low = simulate("mri-sr", x, scale=scale, method=method)
    assert low.shape == (1, 1, 64 // scale, 64 // scale)
    assert low.mean().item() == pytest.approx(x.mean().item(), rel=0.03)
    up = simulate("mri-sr", x, scale=scale, method=method, upsample=True)
    assert up.shape == x.shape
    # the upsampled low-resolution image lost detail: error grows with the scale
    assert (up - x).abs().mean() > 1.0


def test_kspace_truncation_removes_high_frequencies():
    x = mr_image()
    up = kspace_truncate(x, 4, upsample=True)
    spec = torch.fft.fftshift(torch.fft.fft2(up), dim=(-2, -1)).abs()[0, 0]
    assert spec[:16].max() < 1e-2 * spec.max()  # outside the central band: (numerically) nothing


def test_ixi_preset_and_rician():
    x = mr_image()
    assert torch.equal(simulate("mri-sr", x, protocol="ixi-4x", scale=2), bicubic_down(x, 4))
    noisy = simulate("mri-sr", x, rician_std=0.05, seed=1)
    assert not torch.equal(noisy, bicubic_down(x, 4))
    assert torch.equal(noisy, simulate("mri-sr", x, rician_std=0.05, seed=1))
    assert bool((noisy >= 0).all())


@pytest.mark.parametrize("bad", [dict(scale=3), dict(scale=1), dict(method="nearest"), dict(rician_std=-0.1)])
def test_mri_refuses(bad):
    with pytest.raises(MedirError):
        simulate("mri-sr", mr_image(), **bad)


def test_mri_refuses_indivisible_size():
    with pytest.raises(MedirError):
        simulate("mri-sr", mr_image(66), scale=4)


def test_path_sr_rgb_protocol():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 64, 64, generator=g) * 255).round()
    y = simulate("path-sr", x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 255 and torch.equal(y, y.round())
    assert (y - x).abs().mean() > 10  # random texture does not survive 4x
    smooth = torch.nn.functional.interpolate(x[:, :, ::16, ::16], size=(64, 64), mode="bilinear")
    assert (simulate("path-sr", smooth) - smooth).abs().mean() < (y - x).abs().mean()
    with pytest.raises(MedirError):
        simulate("path-sr", x[:, :1])


def test_smoke_brightens_and_is_seeded():
    x = torch.full((1, 3, 64, 64), 60.0)
    a = simulate("endo-smoke", x, seed=0)
    assert torch.equal(a, simulate("endo-smoke", x, seed=0))
    assert not torch.equal(a, simulate("endo-smoke", x, seed=1))
    assert a.mean() > x.mean() + 10
    assert float(a.max()) <= 230.0 + 1e-3
    f = smoke_field(2, 64, 64, sigma_px=8.0, generator=torch.Generator().manual_seed(0))
    assert f.min().item() == pytest.approx(0.0, abs=1e-6) and f.max().item() == pytest.approx(1.0, abs=1e-6)
    # smoke is smooth: neighbouring pixels are strongly correlated
    assert (f[..., 1:] - f[..., :-1]).abs().mean() < 0.05
    with pytest.raises(MedirError):
        simulate("endo-smoke", x, density=1.5)


def test_motion_kernel_direction_and_blur():
    k = motion_kernel(9, 0.0)
    assert k.sum().item() == pytest.approx(1.0)
    assert k[k.shape[0] // 2].sum() > 0.99  # horizontal motion: one row
    kv = motion_kernel(9, 90.0)
    assert kv[:, kv.shape[1] // 2].sum() > 0.99
    x = torch.zeros(1, 1, 32, 32)
    x[..., 16, 16] = 1.0
    y = motion_blur(x, length=9, angle_deg=0.0)
    assert y.sum().item() == pytest.approx(1.0, rel=1e-5)
    assert (y[0, 0, 16] > 0).sum() >= 9


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_operators_are_adjoint(scale):
    from medir.physics.mri import BicubicDownsample, KSpaceTruncation

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 32, 32, generator=g, dtype=torch.float64)
    for op in (BicubicDownsample(scale), KSpaceTruncation(scale)):
        ax = op.A(x)
        y = torch.randn(ax.shape, generator=g, dtype=ax.dtype)
        lhs = (ax.conj() * y).sum().real if ax.is_complex() else (ax * y).sum()
        rhs = (x * op.A_adjoint(y)).sum()
        assert abs(lhs - rhs) / abs(lhs) < 1e-6
    # the operator view agrees with the simulator
    assert KSpaceTruncation(scale).A(x).shape == (2, 1, 32 // scale, 32 // scale)
    assert torch.allclose(BicubicDownsample(scale).A(x), bicubic_down(x, scale))
