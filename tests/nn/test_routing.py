import pytest
import torch
from torch import nn

from medir.nn.routing import (
    MixtureOfExperts, TaskClassifier, TaskGate, cv_squared, load_balance_loss, top_k_weights,
)


def test_top_k_weights():
    v = torch.tensor([[0.1, 2.0, -1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    w1 = top_k_weights(v, 1)
    assert torch.equal(w1, torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))
    w2 = top_k_weights(v, 2)
    assert torch.allclose(w2.sum(dim=1), torch.ones(2))
    assert torch.allclose(w2[0, [1, 3]], torch.tensor([2.0, 1.0]).softmax(0))
    with pytest.raises(ValueError):
        top_k_weights(v, 5)


def test_mixture_is_the_linear_weighted_sum_of_selected_experts():
    torch.manual_seed(0)
    experts = [nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)]
    moe = MixtureOfExperts(experts)
    x = torch.randn(5, 3, 6, 6)
    w = top_k_weights(torch.randn(5, 4), 2)
    reference = sum(w[:, e].view(-1, 1, 1, 1) * experts[e](x) for e in range(4))  # every expert on every image
    assert torch.allclose(moe(x, w), reference, atol=1e-6)


def test_load_balance_loss_and_cv():
    assert float(cv_squared(torch.tensor([2.0, 2.0, 2.0]))) == 0.0
    assert abs(float(cv_squared(torch.tensor([0.0, 4.0]))) - 1.0) < 1e-6  # var 4 / mean^2 4
    balanced = torch.eye(4) * 10
    assert float(load_balance_loss(balanced, top_k_weights(balanced, 1))) < 1e-6
    collapsed = torch.zeros(4, 4)
    collapsed[:, 0] = 10
    assert float(load_balance_loss(collapsed, top_k_weights(collapsed, 1))) > 1.0


def test_classifier_takes_any_size_and_learns_tasks_from_units_and_texture():
    torch.manual_seed(0)
    clf = TaskClassifier(1, 3, width=4)
    assert clf(torch.rand(2, 1, 37, 29)).shape == (2, 3)
    g = torch.Generator().manual_seed(1)

    def batch():
        smooth = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 24, 24, generator=g), 5, 1, 2) * 3000  # MR-like
        ct = torch.randn(4, 1, 24, 24, generator=g) * 30 - 1000 * (torch.rand(4, 1, 24, 24, generator=g) > 0.5)
        pet = torch.poisson(torch.rand(4, 1, 24, 24, generator=g) * 5, generator=g)
        return torch.cat([smooth, ct, pet]), torch.arange(3).repeat_interleave(4)

    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(60):
        x, y = batch()
        loss = torch.nn.functional.cross_entropy(clf(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch()
    assert (clf(x).argmax(dim=1) == y).float().mean() > 0.9


def test_gate_routes_tasks_to_their_expert_and_balance_trains_the_table():
    gate = TaskGate(3, 4, top_k=1)
    v, w = gate(torch.eye(3))
    assert torch.equal(w.argmax(dim=1), torch.tensor([0, 1, 2]))
    load_balance_loss(v, w).backward()
    assert gate.table.grad is not None and gate.table.grad.abs().sum() > 0
