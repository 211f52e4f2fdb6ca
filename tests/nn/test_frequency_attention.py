"""GFCA and the spatial cross-attention against plain reference implementations."""

import pytest
import torch

from medir.nn.frequency_attention import (
    GuidedFrequencyCrossAttention, SpatialCrossAttention, core_flops, patch_convolution,
)


def loop_circular_convolution(q: torch.Tensor, k: torch.Tensor, p: int) -> torch.Tensor:
    """A[i, j] = sum_{m, n} q[m, n] k[(i - m) mod p, (j - n) mod p] in every p x p patch, by loops."""
    out = torch.zeros_like(q)
    b, c, h, w = q.shape
    for y0 in range(0, h, p):
        for x0 in range(0, w, p):
            qp, kp = q[..., y0:y0 + p, x0:x0 + p], k[..., y0:y0 + p, x0:x0 + p]
            for i in range(p):
                for j in range(p):
                    rolled = torch.roll(kp.flip(-2, -1), shifts=(i + 1, j + 1), dims=(-2, -1))
                    out[..., y0 + i, x0 + j] = (qp * rolled).sum((-2, -1))
    return out


def test_patch_convolution_is_circular_convolution_per_patch():
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 2, 4, 8, generator=g, dtype=torch.float64) for _ in range(2))
    ref = loop_circular_convolution(q, k, 4)
    torch.testing.assert_close(patch_convolution(q, k, 4).double(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(patch_convolution(q, k, 4, spectrum="full").double(), ref, atol=1e-5, rtol=1e-5)


def reference_window_attention(q, k, v, p: int, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v inside each p x p window, explicit matrices, loops over windows."""
    b, d, h, w = q.shape
    out = torch.zeros_like(q)
    dh = d // heads
    for y0 in range(0, h, p):
        for x0 in range(0, w, p):
            def tok(t):  # (B, heads, p*p, dh)
                return t[..., y0:y0 + p, x0:x0 + p].reshape(b, heads, dh, p * p).transpose(-1, -2)
            attn = torch.softmax(tok(q) @ tok(k).transpose(-1, -2) / dh**0.5, dim=-1)
            o = (attn @ tok(v)).transpose(-1, -2).reshape(b, d, p, p)
            out[..., y0:y0 + p, x0:x0 + p] = o
    return out


def test_spatial_cross_attention_matches_explicit_windows():
    torch.manual_seed(0)
    m = SpatialCrossAttention(4, prior_channels=3, patch=4, heads=2)
    q, k, v = (torch.randn(2, m.hidden, 8, 12) for _ in range(3))
    torch.testing.assert_close(m.mix(q, k, v), reference_window_attention(q, k, v, 4, 2), atol=1e-5, rtol=1e-5)
    m.fused = False
    torch.testing.assert_close(m.mix(q, k, v), reference_window_attention(q, k, v, 4, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [GuidedFrequencyCrossAttention, SpatialCrossAttention])
def test_any_size_and_the_prior_reaches_the_output(cls):
    torch.manual_seed(0)
    m = cls(6, prior_channels=3, patch=8)
    x = torch.randn(2, 6, 19, 13, requires_grad=True)
    prior = torch.randn(2, 3, 19, 13, requires_grad=True)
    y = m(x, prior)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert torch.isfinite(prior.grad).all() and prior.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.allclose(m(x, prior), m(x, torch.randn_like(prior)))
    with pytest.raises(ValueError):
        m(x, prior[..., :10])


def test_half_spectrum_module_equals_full_spectrum():
    torch.manual_seed(0)
    half = GuidedFrequencyCrossAttention(4, patch=4)
    full = GuidedFrequencyCrossAttention(4, patch=4, spectrum="full")
    full.load_state_dict(half.state_dict())
    x, p = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(half(x, p), full(x, p), atol=1e-4, rtol=1e-4)


def test_core_flop_counts():
    kw = dict(height=64, width=64, hidden=32, patch=8)
    half, full, spatial = (core_flops(kind=k, **kw) for k in ("half", "full", "spatial"))
    assert half < 0.6 * full  # the conjugate-symmetric half spectrum
    assert half < 0.2 * spatial
    with pytest.raises(ValueError):
        core_flops(kind="nope", **kw)
