"""Perceptual metrics (SPD-VFM reports FID and LPIPS) on a VGG16 feature network, with no download.

Two networks, one layout (torchvision's ``vgg16().features`` up to ``relu5_3``):

- :func:`feature_network` with a path: the standard ImageNet VGG16 weights, which users download themselves
  (a torchvision state dict ``.pth`` read with ``torch.load(weights_only=True)``, or ``.safetensors``; keys
  ``features.N.weight`` / ``features.N.bias``, the classifier is ignored).
- :func:`feature_network` with ``None`` (the default): the same layout with weights drawn from a fixed seed
  (Kaiming-normal, fan-out, as torchvision initialises VGG; biases zero). It needs no download and gives the
  same numbers on every run, but they are **not** standard FID/LPIPS and are comparable only with each other.
  Its ``.label`` says so; print it next to every number.

Even with ImageNet weights, :func:`fid` here is a Fréchet distance on VGG16 features, not the Inception-v3
FID of the literature, and :func:`lpips` without learned weights is the "LPIPS-style, uniform weights" variant
(the LPIPS paper's VGG baseline). Neither can be compared with a paper's numbers; both rank methods
evaluated the same way.

Inputs: ``(N, C, H, W)`` tensors in ``[0, 1]`` (C = 1 is repeated to 3), ImageNet mean/std normalisation
(equivalent to LPIPS's own scaling layer on ``[-1, 1]`` inputs). Medical images must be scaled first, e.g.
clipped to their evaluation window: ``(clip(x, lo, hi) - lo) / (hi - lo)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medir.errors import InputError, MedirError
from medir.priors.features import VGGFeatures, frozen, load_vgg_features, read_state_dict, vgg_layer_names

DEFAULT_SEED = 0
FID_LAYER = "relu5_3"  # 512 channels, global-average pooled: the deepest VGG16 feature map, as pool3 is for Inception
LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")  # as the LPIPS paper's VGG variant
FID_DIM = 512


class FeatureNet(VGGFeatures):
    """VGG16 ``features`` up to ``relu5_3`` (torchvision module indices), frozen, with a ``label`` saying
    which weights it carries. ``taps(x, names)`` gives the activations at the named layers."""

    def __init__(self, *, label: str):
        super().__init__(depth=16, layer="relu5_3")
        self.label = label
        self._names = vgg_layer_names(16)

    def taps(self, x: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """``(N, 1|3, H, W)`` in [0, 1] -> ``{name: (N, C_l, H / 2^k, W / 2^k)}`` for each layer in ``names``."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise InputError(f"perceptual metrics take 1 or 3 channels, got {x.shape[1]}")
        h = (x.to(self.mean.device, torch.float32) - self.mean) / self.std
        out, last = {}, max(self._names.index(n) for n in names)
        for i, layer in enumerate(self.features[: last + 1]):
            h = layer(h)
            if self._names[i] in names:
                out[self._names[i]] = h
        return out


def _seeded_init(net: FeatureNet, seed: int) -> None:
    """Kaiming-normal (fan-out, ReLU) weights and zero biases drawn from ``seed``, independent of the global RNG."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.features:
            if isinstance(module, torch.nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                w = torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5
                module.weight.copy_(w)
                module.bias.zero_()


def feature_network(path: str | Path | None = None) -> FeatureNet:
    """The frozen VGG16 feature network for :func:`fid` and :func:`lpips`, in eval mode.

    ``path``: a VGG16 state dict in torchvision's layout (``.pth`` / ``.pt`` or ``.safetensors``), normally the
    ImageNet weights; a missing file, foreign keys or wrong shapes raise a one-line :class:`MedirError`.
    ``None``: the documented default, random weights from seed 0 (deterministic; not standard FID/LPIPS).
    """
    if path is None:
        net = FeatureNet(label=f"random-init VGG16 (seed {DEFAULT_SEED}): not standard FID/LPIPS, "
                               "comparable only with each other")
        _seeded_init(net, DEFAULT_SEED)
        return frozen(net)
    loaded = load_vgg_features(path, depth=16, layer="relu5_3")  # one-line ConfigError on any bad file
    net = FeatureNet(label=f"VGG16 weights {Path(path).name}")
    net.load_state_dict(loaded.state_dict())
    return frozen(net)


def _check_images(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise InputError(f"{name} must be a (N, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[0] == 0 or min(x.shape[-2:]) < 16:
        raise InputError(f"{name} has shape {tuple(x.shape)}: need at least one image of 16x16 pixels or more")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise InputError(f"{name} is not in [0, 1]: scale images first (e.g. clip to the evaluation window)")
    return x


@torch.no_grad()
def pooled_features(x: torch.Tensor, *, net: FeatureNet, batch_size: int = 8) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, 512)`` float64: ``relu5_3`` averaged over space (the FID features)."""
    _check_images(x, "images")
    parts = [net.taps(x[i:i + batch_size], (FID_LAYER,))[FID_LAYER].mean(dim=(2, 3))
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts).double().cpu().numpy()


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues below 0 clipped)."""
    vals, vecs = np.linalg.eigh((a + a.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def _trace_sqrt_cov(xa: np.ndarray, xb: np.ndarray) -> float:
    """``tr((S_a^1/2 S_b S_a^1/2)^1/2)`` from the ``(D, D)`` covariances of centred features ``(N, D)``."""
    s_a = np.atleast_2d(xa.T @ xa / (xa.shape[0] - 1))
    s_b = np.atleast_2d(xb.T @ xb / (xb.shape[0] - 1))
    root = _psd_sqrt(s_a)
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)).sum())


def _trace_sqrt_gram(xa: np.ndarray, xb: np.ndarray) -> float:
    """The same trace from the ``(N_a, N_b)`` cross-Gram matrix, exact and cheaper when N < D: the non-zero
    eigenvalues of ``S_a S_b = X_a^T M X_b / c`` (``M = X_a X_b^T``, ``c = (N_a - 1)(N_b - 1)``) are those of
    ``M M^T / c``, so the trace is the nuclear norm of ``M`` over ``sqrt(c)``."""
    c = (xa.shape[0] - 1) * (xb.shape[0] - 1)
    return float(np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / np.sqrt(c))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets ``(N_a, D)`` and ``(N_b, D)``:

    ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)``

    The last trace equals ``tr sqrt(S_a S_b)`` of the usual formula, computed in a symmetric form (or from the
    cross-Gram matrix when both N <= D), so it is real and symmetric in a, b with no imaginary parts to
    discard. Covariances are unbiased (ddof 1). With N <= D they are singular: the distance is still defined
    but biased upward at small N, so compare values only at equal N and report N.
    """
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise InputError(f"FID needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}")
    xa, xb = a - a.mean(0), b - b.mean(0)
    small = max(a.shape[0], b.shape[0]) <= a.shape[1]
    cross = _trace_sqrt_gram(xa, xb) if small else _trace_sqrt_cov(xa, xb)
    traces = (xa ** 2).sum() / (a.shape[0] - 1) + (xb ** 2).sum() / (b.shape[0] - 1)
    value = float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * cross)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def fid(real: torch.Tensor, fake: torch.Tensor, *, net: FeatureNet) -> float:
    """Fréchet distance between VGG16 ``relu5_3`` pooled features (512-d) of two image sets ``(N, C, H, W)`` in
    [0, 1]. Not Inception FID; with the default network not comparable with any other network's. Both sets
    need N >= 2; for N <= 512 the covariances are rank-deficient and the value is biased upward (see
    :func:`frechet_distance`): report N with it."""
    return frechet_distance(pooled_features(real, net=net), pooled_features(fake, net=net))


def load_lpips_weights(path: str | Path) -> list[torch.Tensor]:
    """The learned LPIPS linear weights (the ``lpips`` package's ``weights/v0.1/vgg.pth``: keys
    ``lin{k}.model.1.weight``, shapes ``(1, C_k, 1, 1)``) as five non-negative ``(C_k,)`` vectors."""
    state = read_state_dict(path)
    widths = (64, 128, 256, 512, 512)
    out = []
    for k, c in enumerate(widths):
        key = next((n for n in (f"lin{k}.model.1.weight", f"lin{k}.weight") if n in state), None)
        if key is None:
            raise MedirError(f"{path} has no lin{k}.model.1.weight: give the LPIPS VGG linear weights (vgg.pth)")
        if state[key].numel() != c:
            raise MedirError(f"{path}: {key} has {state[key].numel()} values, LPIPS VGG layer {k} needs {c}")
        out.append(state[key].float().reshape(c))
    return out


def lpips(x: torch.Tensor, y: torch.Tensor, *, net: FeatureNet,
          lpips_weights: str | Path | list[torch.Tensor] | None = None, batch_size: int = 4) -> torch.Tensor:
    """LPIPS distance per image pair: ``(N, C, H, W)`` x2 in [0, 1] -> ``(N,)``.

    ``d(x, y) = sum_l mean_hw sum_c w_lc (f̂_l(x) - f̂_l(y))^2`` with ``f̂_l`` the activations at relu1_2,
    relu2_2, relu3_3, relu4_3, relu5_3 divided by their norm over channels. ``lpips_weights=None``: uniform
    ``w_lc = 1``, the "LPIPS-style, uniform weights" variant (the LPIPS paper's VGG baseline), not LPIPS as
    published; a path or five vectors give the learned weights (:func:`load_lpips_weights`). No gradients.
    """
    return lpips_and_features(x, y, net=net, lpips_weights=lpips_weights, batch_size=batch_size)[0]


@torch.no_grad()
def lpips_and_features(x: torch.Tensor, y: torch.Tensor, *, net: FeatureNet,
                       lpips_weights: str | Path | list[torch.Tensor] | None = None,
                       batch_size: int = 4) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """:func:`lpips` ``(N,)`` and both sets' FID features ``(N, 512)`` (as :func:`pooled_features`) from one
    pass of the network over each image, for callers that want both (``medir evaluate --perceptual``)."""
    _check_images(x, "x")
    _check_images(y, "y")
    if x.shape != y.shape:
        raise InputError(f"LPIPS compares images of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if isinstance(lpips_weights, (str, Path)):
        lpips_weights = load_lpips_weights(lpips_weights)
    dist, pooled_x, pooled_y = [], [], []
    for i in range(0, x.shape[0], batch_size):
        fx = net.taps(x[i:i + batch_size], LPIPS_LAYERS)
        fy = net.taps(y[i:i + batch_size], LPIPS_LAYERS)
        total = fx[LPIPS_LAYERS[0]].new_zeros(fx[LPIPS_LAYERS[0]].shape[0])
        for k, name in enumerate(LPIPS_LAYERS):
            diff = (_unit(fx[name]) - _unit(fy[name])) ** 2
            if lpips_weights is not None:
                diff = diff * lpips_weights[k].to(diff).view(1, -1, 1, 1)
            total += diff.sum(1).mean(dim=(1, 2))
        dist.append(total)
        pooled_x.append(fx[FID_LAYER].mean(dim=(2, 3)))
        pooled_y.append(fy[FID_LAYER].mean(dim=(2, 3)))
    return torch.cat(dist), *(torch.cat(p).double().cpu().numpy() for p in (pooled_x, pooled_y))


def _unit(f: torch.Tensor) -> torch.Tensor:
    """Activations divided by their L2 norm over channels (eps 1e-10, as LPIPS)."""
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
