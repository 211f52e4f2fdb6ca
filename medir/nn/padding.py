"""Shape helpers every architecture uses: pad to a multiple, crop back, pre-upsample, global residual."""

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom and right so H and W become multiples of ``multiple``.

    Reflect padding, as SwinIR and Restormer's test scripts do; inputs too small to
    reflect (pad >= size) fall back to replicate padding. Undo with :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Keep the top-left (height, width) of a (B, C, H, W) tensor."""
    return x[..., :height, :width]


def upsample_input(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic pre-upsampling (B, C, H, W) -> (B, C, H*scale, W*scale).

    For architectures whose papers restore at the output size (NAFNet, Restormer,
    U-Net): super-resolution then runs on the bicubically upsampled input, as in
    SRCNN/VDSR. Identity for scale 1.
    """
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def residual_source(x: torch.Tensor, out_channels: int) -> torch.Tensor | None:
    """The part of the input a global residual adds back: its first ``out_channels`` channels.

    Extra input channels (priors, auxiliary modalities, references) come after the
    image; None when the input has fewer channels than the output (no residual).
    """
    if x.shape[1] < out_channels:
        return None
    return x[:, :out_channels]


def check_scale(scale: int, allowed: tuple[int, ...], arch: str) -> None:
    """Raise ConfigError unless ``scale`` is one the architecture defines."""
    from medir.errors import ConfigError

    if scale not in allowed:
        raise ConfigError(f"{arch} supports scale {', '.join(map(str, allowed))}, not {scale}: pick one of those")
