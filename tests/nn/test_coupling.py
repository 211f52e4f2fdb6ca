"""The invertible detail branch (MFdiff equation 4): exact inverse, equation 4 itself, gradients."""

import pytest
import torch

from medir.nn.coupling import AffineCoupling, DetailBranch


def randomised(module: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    """Non-trivial weights (the zero-initialised projections would make every layer the identity)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return module


@pytest.mark.parametrize("channels,layers", [(8, 3), (16, 3), (4, 1)])
def test_detail_branch_reconstructs_its_input(channels, layers):
    branch = randomised(DetailBranch(channels, layers=layers))
    x = torch.randn(2, channels, 13, 17, generator=torch.Generator().manual_seed(1))
    y = branch(x)
    assert (y - x).abs().max() > 1e-2  # a real transformation, not the identity
    assert (branch.inverse(y) - x).abs().max() < 1e-5


def test_coupling_is_equation_4():
    layer = randomised(AffineCoupling(3))
    f, l = torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)
    f1, l1 = layer(f, l)
    torch.testing.assert_close(f1, f * torch.exp(layer.rho(l)) + layer.eta(l))
    assert torch.equal(l1, l)


def test_zero_init_starts_as_identity_and_swaps_halves():
    x = torch.randn(1, 8, 5, 5)
    y = DetailBranch(8, layers=3)(x)
    # 3 swaps: the halves come out exchanged, each unchanged.
    torch.testing.assert_close(y, torch.cat([x[:, 4:], x[:, :4]], dim=1))
    torch.testing.assert_close(DetailBranch(8, layers=2)(x), x)


def test_gradients_reach_every_parameter():
    branch = randomised(DetailBranch(8))
    branch(torch.randn(2, 8, 9, 9)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
               for p in branch.parameters())


def test_odd_channels_refused():
    with pytest.raises(ValueError, match="even"):
        DetailBranch(7)
