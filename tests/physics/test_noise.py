import pytest
import torch

from medir.physics.noise import binomial_thinning, gaussian_noise, poisson_counts, rician_noise, speckle_noise


@pytest.mark.parametrize("mean", [3.0, 40.0, 1000.0])
def test_poisson_mean_to_variance_is_one(mean):
    g = torch.Generator().manual_seed(0)
    n = poisson_counts(torch.full((200_000,), mean), generator=g)
    assert (n.mean() / n.var()).item() == pytest.approx(1.0, rel=0.05)
    assert n.mean().item() == pytest.approx(mean, rel=0.02)


def test_thinning_halves_counts_and_stays_poisson():
    g = torch.Generator().manual_seed(1)
    full = poisson_counts(torch.full((200_000,), 60.0), generator=g)
    half = binomial_thinning(full, 0.5, generator=g)
    assert (half.mean() / full.mean()).item() == pytest.approx(0.5, rel=0.02)
    assert (half.mean() / half.var()).item() == pytest.approx(1.0, rel=0.05)
    assert bool((half <= full).all())


def test_gaussian_and_speckle_variances():
    g = torch.Generator().manual_seed(2)
    x = torch.full((200_000,), 0.5)
    assert (gaussian_noise(x, 0.1, generator=g) - x).var().item() == pytest.approx(0.01, rel=0.03)
    assert ((speckle_noise(x, 0.01, generator=g) - x) / x).var().item() == pytest.approx(0.01, rel=0.03)


def test_rician_bias_at_zero_signal():
    g = torch.Generator().manual_seed(3)
    r = rician_noise(torch.zeros(200_000), 1.0, generator=g)
    # Rayleigh mean sigma * sqrt(pi / 2)
    assert r.mean().item() == pytest.approx((torch.pi / 2) ** 0.5, rel=0.02)
    assert bool((r >= 0).all())
