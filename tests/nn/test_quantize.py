import torch

from medir.nn.quantize import CodebookBank, ResidualVQ, code_usage, nearest_code


def test_nearest_code_matches_brute_force_in_chunks():
    g = torch.Generator().manual_seed(0)
    x, book = torch.randn(50, 6, generator=g), torch.randn(17, 6, generator=g)
    expected = torch.cdist(x, book).argmin(dim=1)
    assert torch.equal(nearest_code(x, book, chunk=7), expected)


def test_residual_depths_reduce_the_error_and_shapes():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 5, 3)
    errors = []
    for depth in (1, 2, 4):
        vq = ResidualVQ(4, 32, depth).eval()
        vq.codebook.data = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
        vq.codebook.data[0] = 0.0  # with a zero code, a greedy depth can never add error
        q, codes, losses = vq(z)
        assert q.shape == z.shape and codes.shape == (2, depth, 5, 3)
        errors.append(float(((q - z) ** 2).mean()))
        losses = {k: v.detach() for k, v in losses.items()}
        assert abs(float(losses["codebook"]) - errors[-1]) < 1e-5
        assert abs(float(losses["commitment"]) - 0.25 * errors[-1]) < 1e-5
    assert errors[0] >= errors[1] >= errors[2]


def test_straight_through_gradient_and_codebook_gradient():
    vq = ResidualVQ(3, 8, 2)
    z = torch.randn(1, 3, 4, 4, requires_grad=True)
    q, _, losses = vq(z)
    (q.sum() + losses["codebook"]).backward()
    assert torch.allclose(z.grad, torch.ones_like(z) + 0 * z.grad, atol=0.5)  # identity + commitment-free path
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0


def test_dead_codes_are_restarted_from_the_batch_only_while_training():
    vq = ResidualVQ(2, 4, 1, decay=0.0)
    vq.codebook.data = torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, 50.0], [80.0, -90.0]])
    z = torch.randn(1, 2, 6, 6) * 0.1
    vq.eval()
    vq(z)
    assert vq.codebook[1, 0] == 100.0  # eval: untouched
    vq.train()
    vq(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (1, 2, 3):  # never picked -> now equal to one of the batch's vectors
        assert torch.isclose(rows, vq.codebook[k].detach()[None]).all(dim=1).any()
    vq.codebook.requires_grad_(False)  # frozen codebooks are not restarted
    before = vq.codebook.detach().clone()
    vq.usage.zero_()
    vq(z)
    assert torch.equal(vq.codebook.detach(), before)


def test_code_usage_perplexity():
    uniform = code_usage(torch.arange(8).repeat(5), 8)
    assert abs(uniform["perplexity"] - 8) < 1e-6 and uniform["used"] == 1.0
    single = code_usage(torch.zeros(20, dtype=torch.long), 8)
    assert abs(single["perplexity"] - 1) < 1e-6 and single["used"] == 1 / 8


def test_bank_quantises_each_sample_with_its_task_codebook():
    torch.manual_seed(0)
    bank = CodebookBank(3, 4, 16, 2).eval()
    z, task = torch.randn(4, 4, 3, 3), torch.tensor([2, 0, 2, 1])
    q, codes, _ = bank(z, task)
    for i, t in enumerate(task.tolist()):
        qi, ci, _ = bank.books[t](z[i : i + 1])
        assert torch.allclose(q[i], qi[0]) and torch.equal(codes[i], ci[0])
    shared = CodebookBank(1, 4, 16, 2).eval()
    q1, _, _ = shared(z, task)
    assert torch.allclose(q1, shared.books[0](z)[0])
