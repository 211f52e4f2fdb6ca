"""R-MSA (equations 2-4 of the RAT paper): every implementation equals the dense masked reference."""

import pytest
import torch
import torch.nn.functional as F

from medir.nn.region_attention import (
    REGION_ATTENTION, SpatialAttention, downsample_labels, region_attention_dense, region_segments, window_labels,
)

FAST = [name for name in REGION_ATTENTION if name != "dense"]


def qkv(b=2, heads=3, n=48, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, heads, n, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def grads(fn, q, k, v, labels, probe):
    out = fn(q, k, v, labels, scale=0.4)
    return (out, *torch.autograd.grad((out * probe).sum(), (q, k, v)))


def label_cases(n=48):
    g = torch.Generator().manual_seed(1)
    rand = torch.randint(0, 6, (2, n), generator=g)
    rand[0, 7] = 99  # a single-token region
    big = torch.zeros(2, n, dtype=torch.long)
    big[1, 5:] = 3  # one big region (chunked) beside a small one (packed)
    return {"random": rand, "one_region": torch.zeros(2, n, dtype=torch.long), "big_and_small": big,
            "all_singletons": torch.arange(n).repeat(2, 1)}


@pytest.mark.parametrize("impl", FAST)
@pytest.mark.parametrize("case", list(label_cases()))
@pytest.mark.parametrize("block", [4, 16, 256])
def test_outputs_and_gradients_equal_the_dense_reference(impl, case, block):
    labels = label_cases()[case]
    q, k, v = qkv()
    probe = torch.randn(q.shape, dtype=q.dtype, generator=torch.Generator().manual_seed(2))
    ref = grads(region_attention_dense, q, k, v, labels, probe)
    fn = REGION_ATTENTION[impl]
    kw = {"block": block} if impl == "sorted" else {}
    got = grads(lambda *a, **s: fn(*a, **s, **kw), q, k, v, labels, probe)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_one_region_is_full_attention_and_singletons_return_their_value():
    q, k, v = qkv()
    full = F.scaled_dot_product_attention(q, k, v, scale=0.4)
    for impl in REGION_ATTENTION:
        one = REGION_ATTENTION[impl](q, k, v, torch.zeros(2, 48, dtype=torch.long), scale=0.4)
        torch.testing.assert_close(one, full, rtol=0, atol=1e-10)
        alone = REGION_ATTENTION[impl](q, k, v, torch.arange(48).repeat(2, 1), scale=0.4)
        torch.testing.assert_close(alone, v, rtol=0, atol=1e-12)  # a token alone attends only to itself


def test_paper_lambda_minus_1000_equals_exact_exclusion_in_float32():
    q, k, v = (t.detach().float() for t in qkv())
    labels = label_cases()["random"]
    exact = region_attention_dense(q, k, v, labels, scale=0.4)
    paper = region_attention_dense(q, k, v, labels, scale=0.4, bias=-1000.0)
    torch.testing.assert_close(paper, exact, rtol=0, atol=1e-6)


def test_region_segments_cover_every_query_once_with_its_whole_region():
    lab = torch.sort(label_cases()["random"][0]).values
    covered = torch.zeros(48, dtype=torch.long)
    for q0, q1, k0, k1, mixed in region_segments(lab, 8):
        covered[q0:q1] += 1
        assert k0 <= q0 and q1 <= k1 and q1 - q0 <= 8
        for i in range(q0, q1):  # every key of the query's region lies in the key range
            assert set(torch.nonzero(lab == lab[i])[:, 0].tolist()) <= set(range(k0, k1))
        assert mixed == (lab[k0:k1].unique().numel() > 1)
    assert covered.eq(1).all()


def test_downsampling_is_nearest_interpolation():
    lab = torch.randint(0, 9, (2, 16, 12))
    ref = F.interpolate(lab[:, None].float(), scale_factor=0.25, mode="nearest")[:, 0].long()
    assert torch.equal(downsample_labels(lab, 4), ref)


@pytest.mark.parametrize("scaling,expected", [("head_dim", 4**-0.5), ("heads", 2**-0.5)])
def test_window_attention_is_region_attention_on_window_labels(scaling, expected):
    torch.manual_seed(0)
    win = SpatialAttention(8, 2, kind="window", window_size=4, scaling=scaling)
    reg = SpatialAttention(8, 2, kind="region", scaling=scaling)
    glob = SpatialAttention(8, 2, kind="global", scaling=scaling)
    reg.load_state_dict(win.state_dict())
    glob.load_state_dict(win.state_dict())
    assert win.scale == pytest.approx(expected)
    x = torch.randn(2, 8, 8, 12)
    labels = window_labels(8, 12, 4).expand(2, 8, 12)
    torch.testing.assert_close(win(x), reg(x, labels), rtol=0, atol=1e-5)
    torch.testing.assert_close(glob(x), reg(x, torch.zeros(2, 8, 12, dtype=torch.long)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        reg(x)
