"""Test-time augmentation over the 8 dihedral transforms: a self-ensemble mean and a per-pixel spread.

For a restorer ``f`` and the group D4 of the square (4 rotations by 90 degrees, each with or without a flip),

    mean(x) = 1/8 sum_g g^-1 f(g x),     std(x) = sqrt(1/8 sum_g (g^-1 f(g x) - mean(x))^2)

(the population std of the 8 back-transformed outputs). An equivariant restorer (``f(g x) = g f(x)``: identity,
an isotropic blur) has std 0 everywhere; a learned one disagrees with itself where the noise and the anatomy leave
it unsure, which is what the map shows (an uncertainty of the model's own making, not a calibrated error bar).
The self-ensemble mean is the "x8" of EDSR / NAFNet's test-time augmentation.

Works for super-resolution too (``g`` acts on the input grid, ``g^-1`` on the output grid). Tiles stay exact:
:func:`dihedral_forward` pads each window at its end to the network's down-sampling ``multiple`` (edge values, as the
whole image would be padded), so the flipped window is an aligned window of the flipped padded image and tiled
inference gives the whole-image result (see :mod:`medir.engine.inference`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]
# (rotations by 90 degrees counter-clockwise, flip left-right first): the 8 elements of D4.
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def transform(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """``g x`` for ``g = (k, flip)``: flip the last axis (if ``flip``), then rotate the last two axes k x 90 degrees."""
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1))


def inverse(y: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """``g^-1 y``: undo :func:`transform` (rotate back, then flip)."""
    y = torch.rot90(y, -k, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if flip else y


def pad_end(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """``x`` (B, C, H, W) padded at the bottom and right with edge values to multiples of ``multiple``;
    returns it with the original H and W."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w


def dihedral_outputs(forward: Forward, x: torch.Tensor, *, multiple: int = 1, scale: int = 1) -> torch.Tensor:
    """The 8 back-transformed outputs ``g^-1 f(g x)`` stacked: (8, B, C_out, H*scale, W*scale).

    ``x`` (B, C, H, W) is padded to ``multiple`` first (see the module doc) and the outputs cropped back.
    """
    padded, h, w = pad_end(x, max(1, multiple))
    outs = [inverse(forward(transform(padded, k, flip)), k, flip)[..., : h * scale, : w * scale]
            for k, flip in DIHEDRAL]
    return torch.stack(outs)


def dihedral_forward(forward: Forward, *, multiple: int = 1, scale: int = 1, spread: bool = True) -> Forward:
    """A forward for :func:`medir.engine.inference.tiled_forward`: (B, C, H, W) -> the 8-fold mean (B, C_out, ...),
    followed by the per-pixel std over the 8 (another C_out channels) when ``spread``."""

    def run(x: torch.Tensor) -> torch.Tensor:
        outs = dihedral_outputs(forward, x, multiple=multiple, scale=scale).double()
        mean = outs.mean(0)
        if not spread:
            return mean.to(x.dtype)
        std = outs.var(0, unbiased=False).sqrt()
        return torch.cat([mean, std], dim=1).to(x.dtype)

    return run
