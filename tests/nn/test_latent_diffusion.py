import torch

from medir.nn.latent_diffusion import LatentDenoiser, Schedule, diffir_betas, noised, reverse_chain


def test_schedule_and_posterior_mean():
    betas = diffir_betas(8)
    assert abs(float(betas[0]) - 0.1) < 1e-9 and abs(float(betas[-1]) - 0.99) < 1e-9
    s = Schedule(betas)
    abar = torch.cumprod(1 - betas, 0)
    for t in range(1, 8):  # noiseless z_t = sqrt(abar_t) x0 -> posterior mean sqrt(abar_{t-1}) x0
        mean = s.coef_x0[t] + s.coef_zt[t] * float(abar[t].sqrt())
        assert abs(float(mean) - float(abar[t - 1].sqrt())) < 1e-5


def test_reverse_chain_with_an_oracle_returns_x0_and_denoiser_shapes():
    s = Schedule(diffir_betas(8))
    x0 = torch.randn(2, 4, 3, 5)
    calls = []

    def oracle(z, c, t):
        calls.append(t)
        return x0

    out = reverse_chain(oracle, noised(x0, s), torch.zeros(2, 4, 3, 5), s)
    assert torch.allclose(out, x0) and calls == list(reversed(range(8)))
    net = LatentDenoiser(4, 6, steps=8)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 5
    assert net(torch.randn(2, 4, 3, 5), torch.randn(2, 6, 3, 5), 3).shape == (2, 4, 3, 5)
