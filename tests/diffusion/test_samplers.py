"""Schedules and samplers against closed forms: a Gaussian data distribution has an exact noise predictor."""

import math

import pytest
import torch

from medir.diffusion import ddim, ddpm, linear_schedule, q_sample, sample_stats, timesteps

MU, SIGMA = 0.7, 0.3  # data x0 ~ N(MU, SIGMA^2) per pixel


def exact_eps(schedule):
    """The optimal eps predictor for Gaussian data: E[eps | x_t]."""
    abar = schedule.alphas_cumprod

    def eps_fn(x, t):
        a = abar[t].to(x.dtype).view(-1, 1, 1, 1)
        var = a * SIGMA ** 2 + 1 - a
        return (1 - a).sqrt() * (x - a.sqrt() * MU) / var

    return eps_fn


def test_linear_schedule_endpoints():
    s = linear_schedule(1000)
    assert s.steps == 1000 and math.isclose(float(s.betas[0]), 1e-4) and math.isclose(float(s.betas[-1]), 0.02)
    assert float(s.alphas_cumprod[-1]) < 1e-4  # x_T is almost pure noise
    with pytest.raises(ValueError):
        linear_schedule(10, beta_start=0.5, beta_end=0.1)


def test_q_sample_matches_equation_7():
    s = linear_schedule(1000)
    x0, noise = torch.full((2, 1, 4, 4), 2.0), torch.randn(2, 1, 4, 4)
    t = torch.tensor([0, 999])
    xt = q_sample(x0, t, noise, s)
    a = s.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    torch.testing.assert_close(xt, a.sqrt() * x0 + (1 - a).sqrt() * noise)


def test_timesteps_descend_to_zero():
    assert timesteps(1000, 1000) == list(range(999, -1, -1))
    seq = timesteps(1000, 50)
    assert len(seq) == 50 and seq[0] == 999 and seq[-1] == 0 and seq == sorted(seq, reverse=True)
    with pytest.raises(ValueError):
        timesteps(10, 11)


@pytest.mark.parametrize("sampler,steps", [(ddpm, 1000), (ddim, 50), (ddpm, 100)])
def test_samplers_recover_the_data_distribution(sampler, steps):
    s = linear_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x = sampler(exact_eps(s), torch.randn(1, 1, 64, 64, generator=g), schedule=s, steps=steps, generator=g)
    assert abs(float(x.mean()) - MU) < 0.03
    assert abs(float(x.std()) - SIGMA) < 0.03


def test_ddim_is_deterministic_and_ddpm_is_not():
    s = linear_schedule(100)
    x_T = torch.randn(1, 1, 8, 8)
    a = ddim(exact_eps(s), x_T, schedule=s, steps=10, generator=torch.Generator().manual_seed(1))
    b = ddim(exact_eps(s), x_T, schedule=s, steps=10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = ddpm(exact_eps(s), x_T, schedule=s, generator=torch.Generator().manual_seed(1))
    d = ddpm(exact_eps(s), x_T, schedule=s, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)


def test_sample_stats_mean_and_std():
    s = linear_schedule(1000)  # T large enough that x_T ~ N(0, I)
    ticks = []
    mean, std = sample_stats(ddim, exact_eps(s), (1, 1, 32, 32), samples=6, schedule=s, steps=100,
                             generator=torch.Generator().manual_seed(0), callback=lambda i, n: ticks.append((i, n)))
    assert ticks[-1] == (600, 600) and len(ticks) == 600
    # independent draws of N(MU, SIGMA^2): the population variance of 6 draws averages SIGMA^2 * 5/6
    # (DDIM with 100 steps shrinks it slightly: 20 steps would lose a third)
    assert abs(float(std.square().mean()) / (SIGMA ** 2 * 5 / 6) - 1) < 0.15
    assert abs(float(mean.mean()) - MU) < 0.05
    one_mean, one_std = sample_stats(ddim, exact_eps(s), (1, 1, 8, 8), samples=1, schedule=s, steps=5)
    assert torch.equal(one_std, torch.zeros_like(one_std))


def test_clip_bounds_the_prediction():
    s = linear_schedule(100)
    x = ddim(lambda x, t: torch.zeros_like(x), 10 * torch.ones(1, 1, 4, 4), schedule=s, steps=10, clip=(-1.0, 1.0))
    assert float(x.max()) <= 1.0 + 1e-6
