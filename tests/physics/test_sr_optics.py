import numpy as np
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


def _cv_kernel_by_scipy(degree: int, angle_deg: float) -> np.ndarray:
    """Independent construction of the SPD-VFM (OpenCV) kernel: getRotationMatrix2D's matrix written out,
    warpAffine's inverse mapping done by scipy (bilinear, zeros outside), divided by degree."""
    from scipy import ndimage

    a, b = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    cx = cy = degree / 2
    m = np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy], [0, 0, 1]])  # (x, y) src -> dst
    inv = np.linalg.inv(m)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])                                        # (x, y) <-> (row, col)
    rc = swap @ inv @ swap
    k = ndimage.affine_transform(np.eye(degree), rc[:2, :2], offset=rc[:2, 2], order=1, mode="grid-constant", cval=0.0)
    return k / degree


@pytest.mark.parametrize("degree,angle", [(10, 5.0), (7, 30.0), (10, -20.0)])
def test_opencv_motion_kernel_matches_independent_construction(degree, angle):
    from medir.physics.optics import opencv_motion_kernel

    ours = opencv_motion_kernel(degree, angle).numpy()
    assert np.allclose(ours, _cv_kernel_by_scipy(degree, angle), atol=1e-9)


def test_opencv_motion_kernel_paper_values():
    from medir.physics.optics import opencv_motion_blur, opencv_motion_kernel

    k = opencv_motion_kernel(10, 0.0)
    assert torch.allclose(k, torch.eye(10, dtype=k.dtype) / 10)           # angle 0: the unrotated diagonal
    k5 = opencv_motion_kernel(10, 5.0)
    assert k5[5, 5].item() == pytest.approx(0.1)                           # the rotation centre stays put
    assert k5.sum().item() == pytest.approx(0.927, abs=2e-3)               # the corners leave the 10 x 10 box
    # positive angle turns the line counter-clockwise on screen: flatter than 45 degrees at the lower right
    assert k5[8, 9] > k5[9, 8]
    # filter2D: correlation anchored at degree // 2 with reflect-101 borders; a point spreads along the kernel
    x = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    x[..., 16, 16] = 1.0
    y = opencv_motion_blur(x, degree=10, angle_deg=5.0)
    # dst(r, c) = sum k(i, j) src(r + i - 5, c + j - 5): the delta at 16 lands flipped on rows and columns 12..21
    assert torch.allclose(y[0, 0, 12:22, 12:22], torch.flip(k5, dims=(0, 1)))
