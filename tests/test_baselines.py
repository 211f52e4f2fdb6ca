import math

import pytest
import torch

from medir.baselines import BASELINES, BM3D, Anscombe, anscombe, inverse_anscombe, Bicubic, EmissionFBP, EmissionOSEM, Gaussian, NonLocalMeans, TotalVariation, build_baseline
from medir.errors import MedirError
from medir.physics.pet import EmissionSystem




def smooth_image(n=48):
    c = torch.linspace(-1, 1, n)
    r = torch.hypot(c[:, None], c[None, :])
    return (100 * (r < 0.7).float() + 50 * (r < 0.3).float() + 20 * torch.sin(3 * c)[None, :])[None, None]


def psnr(a, ref):
    return 10 * math.log10(float(ref.max() - ref.min()) ** 2 / float(((a - ref) ** 2).mean()))


@pytest.mark.parametrize("model", [Gaussian(sigma_px=1.0), NonLocalMeans(), TotalVariation(), BM3D()])
def test_denoisers_improve_psnr(model):
    clean = smooth_image()
    noisy = clean + 20 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    out = model(noisy)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    assert psnr(out, clean) > psnr(noisy, clean) + 2.0


def test_bicubic_upsamples():
    x = smooth_image(32)
    y = Bicubic(scale=2)(x)
    assert y.shape == (1, 1, 64, 64)
    assert torch.allclose(y.mean(), x.mean(), rtol=0.02)
    with pytest.raises(MedirError):
        Bicubic(scale=5)


def test_osem_beats_fbp_on_low_counts():
    x = (smooth_image(48) / 100).clamp_min(0)
    sysm = EmissionSystem(48, 48, views=48, pixel_size_mm=2.0, subsets=6)
    ybar = sysm.A(x)
    scale = 2e5 / ybar.sum()
    y = torch.poisson(ybar * scale, generator=torch.Generator().manual_seed(0))
    fb = EmissionFBP(sysm)(y) / scale
    os_ = EmissionOSEM(sysm, iterations=3)(y) / scale
    assert psnr(os_, x) > psnr(fb, x)


def test_registry():
    assert {"gaussian", "nlm", "tv", "bm3d", "bicubic", "fbp", "osem"} <= set(BASELINES)
    assert isinstance(build_baseline("gaussian", sigma_px=2.0), Gaussian)
    with pytest.raises(MedirError):
        build_baseline("nope")


@pytest.mark.parametrize("mean", [3.0, 30.0])
def test_anscombe_stabilises_and_inverts_without_bias(mean):
    x = torch.poisson(torch.full((1, 1, 200, 200), mean), generator=torch.Generator().manual_seed(0))
    y = anscombe(x)
    assert abs(float(y.std()) - 1.0) < 0.05  # unit noise std whatever the count level
    assert abs(float(inverse_anscombe(y.mean().reshape(1))) - mean) < 0.02 * mean  # unbiased inverse


def test_anscombe_wrapper_denoises_counts():
    clean = (smooth_image(64) / 10).clamp_min(0.5)  # 0.5 to ~17 expected counts
    noisy = torch.poisson(clean, generator=torch.Generator().manual_seed(1))
    out = Anscombe(Gaussian(sigma_px=1.5))(noisy)
    assert out.shape == noisy.shape and float(out.min()) >= 0
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0
