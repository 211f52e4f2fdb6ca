import pytest
import torch

from medir.errors import MedirError
from medir.physics import simulate
from medir.physics.scintigraphy import phase_correlation, register_patches


def whole_body(h=256, w=64, seed=0):
    """Expected-count image with smooth structure, (1, 1, h, w)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, h // 8, w // 8, generator=g) * 80 + 5
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)


def test_speedup_two_halves_counts():
    g = torch.Generator().manual_seed(0)
    counts = torch.poisson(whole_body(), generator=g)
    rapid = simulate("scinti-rapid", counts, seed=1, speedup=2.0)
    assert (rapid.sum() / counts.sum()).item() == pytest.approx(0.5, rel=0.02)
    assert torch.equal(rapid, rapid.round())
    resampled = simulate("scinti-rapid", whole_body(), seed=1, speedup=2.0, mode="resample")
    assert (resampled.sum() / whole_body().sum()).item() == pytest.approx(0.5, rel=0.02)


def test_rescale_restores_intensity():
    counts = torch.poisson(whole_body(), generator=torch.Generator().manual_seed(0))
    rapid = simulate("scinti-rapid", counts, seed=1, speedup=3.0, rescale=True)
    assert (rapid.sum() / counts.sum()).item() == pytest.approx(1.0, rel=0.03)


def test_paper_extras_add_noise_and_blur_and_are_seeded():
    counts = torch.poisson(whole_body(), generator=torch.Generator().manual_seed(0))
    plain = simulate("scinti-rapid", counts, seed=4)
    extra = simulate("scinti-rapid", counts, seed=4, paper_extras=True)
    assert not torch.allclose(plain, extra)
    assert torch.equal(extra, simulate("scinti-rapid", counts, seed=4, paper_extras=True))
    assert not torch.equal(extra, simulate("scinti-rapid", counts, seed=5, paper_extras=True))
    blurred = simulate("scinti-rapid", counts, seed=4, motion_length=10.0)
    # blur lowers the pixel-to-pixel variation along x
    assert blurred.diff(dim=-1).abs().mean() < plain.diff(dim=-1).abs().mean()


@pytest.mark.parametrize("bad", [dict(speedup=0.5), dict(speedup=0), dict(mode="x"), dict(gaussian_var=-1)])
def test_refuses_impossible(bad):
    with pytest.raises(MedirError):
        simulate("scinti-rapid", whole_body(), **bad)


def test_phase_correlation_finds_shift():
    img = whole_body(64, 64)[0, 0] + torch.rand(64, 64, generator=torch.Generator().manual_seed(1)) * 20
    moved = torch.roll(img, shifts=(3, -5), dims=(0, 1))
    assert phase_correlation(moved, img) == (-3, 5)


def test_register_patches_recovers_per_patch_translation():
    fixed = torch.poisson(whole_body(128, 64, seed=2) * 3, generator=torch.Generator().manual_seed(0))[0, 0]
    moving = fixed.clone()
    moving[:64] = torch.roll(fixed[:64], shifts=(2, 3), dims=(0, 1))
    moving[64:] = torch.roll(fixed[64:], shifts=(-4, 1), dims=(0, 1))
    reg, shifts = register_patches(moving, fixed, patch=64, max_shift=8)
    assert [s[2:] for s in shifts] == [(-2, -3), (4, -1)]
    inner = (slice(8, 56), slice(8, 56))
    assert torch.equal(reg[:64][inner], fixed[:64][inner])
    assert (reg - fixed).abs().mean() < 0.3 * (moving - fixed).abs().mean()


def test_whole_body_size():
    g = torch.Generator().manual_seed(0)
    counts = torch.poisson(whole_body(1024, 256) * 0.5, generator=g)
    rapid = simulate("scinti-rapid", counts, seed=0, paper_extras=True)
    assert rapid.shape == (1, 1, 1024, 256)
    reg, shifts = register_patches(rapid[0, 0], counts[0, 0], patch=192)
    assert reg.shape == (1024, 256) and len(shifts) == 6 * 2
