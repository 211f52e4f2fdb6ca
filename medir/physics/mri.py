"""Super-resolution degradations: MRI (k-space truncation or bicubic) and pathology (RGB bicubic).

- ``kspace``: keep the central ``H/s x W/s`` of the centred 2-D spectrum (what a scanner acquiring fewer
  phase/frequency encodes measures), inverse FFT, magnitude. ``norm="forward"`` keeps the mean intensity.
  Its upsampled form is zero-filled k-space (sinc interpolation).
- ``bicubic``: image-domain antialiased bicubic downsampling by ``s``; upsampled form is bicubic back up.
- Optional Rician noise (magnitude of complex Gaussian noise) with std as a fraction of each image's max.
- ``ixi-4x``: DiffCode's IXI protocol (following CSN, Zhao et al. 2019): 256x256 T2 slices, bicubic x4.
- Pathology (RAT): 4x bicubic down and back up on 0..255 RGB, clipped and rounded to 8 bits.
"""

from __future__ import annotations

import torch

from medir.errors import MedirError
from medir.physics.base import check_image, make_generator
from medir.physics.filters import resize_bicubic
from medir.physics.noise import rician_noise

SCALES = (2, 4)
MRI_PROTOCOLS = {"ixi-4x": dict(scale=4, method="bicubic")}


def _check_scale(x: torch.Tensor, scale: int) -> int:
    if scale not in SCALES:
        raise MedirError(f"scale={scale} is not supported: use 2 or 4")
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise MedirError(f"image of {h}x{w} pixels is not divisible by scale {scale}: crop it to a multiple of {scale}")
    return int(scale)


def kspace_truncate(x: torch.Tensor, scale: int, *, upsample: bool = False) -> torch.Tensor:
    """``(B, C, H, W)`` -> magnitude of the image from the central ``1/scale`` of k-space, ``(H/s, W/s)``
    (or zero-filled back to ``(H, W)`` when ``upsample``). Intensities keep their mean."""
    scale = _check_scale(x, scale)
    h, w = x.shape[-2:]
    hs, ws = h // scale, w // scale
    spec = torch.fft.fftshift(torch.fft.fft2(x, norm="forward"), dim=(-2, -1))
    r0, c0 = h // 2 - hs // 2, w // 2 - ws // 2
    centre = spec[..., r0:r0 + hs, c0:c0 + ws]
    if upsample:
        full = torch.zeros_like(spec)
        full[..., r0:r0 + hs, c0:c0 + ws] = centre
        return torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1)), norm="forward").abs()
    return torch.fft.ifft2(torch.fft.ifftshift(centre, dim=(-2, -1)), norm="forward").abs()


def bicubic_down(x: torch.Tensor, scale: int, *, upsample: bool = False) -> torch.Tensor:
    """Antialiased bicubic ``(B, C, H, W)`` -> ``(H/s, W/s)``, or back up to ``(H, W)`` when ``upsample``."""
    scale = _check_scale(x, scale)
    h, w = x.shape[-2:]
    low = resize_bicubic(x, (h // scale, w // scale))
    return resize_bicubic(low, (h, w), antialias=False) if upsample else low


class KSpaceTruncation:
    """Linear ``A``: real image ``(B, C, H, W)`` -> central ``(H/s, W/s)`` of its unitary centred spectrum
    (complex); ``A_adjoint`` zero-fills and inverts (real part), the exact transpose for the real inner
    product ``Re <A x, y>``."""

    def __init__(self, scale: int):
        self.scale = scale

    def _window(self, h: int, w: int) -> tuple[slice, slice]:
        hs, ws = h // self.scale, w // self.scale
        r0, c0 = h // 2 - hs // 2, w // 2 - ws // 2
        return slice(r0, r0 + hs), slice(c0, c0 + ws)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        _check_scale(x, self.scale)
        rows, cols = self._window(*x.shape[-2:])
        return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))[..., rows, cols]

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2] * self.scale, y.shape[-1] * self.scale
        rows, cols = self._window(h, w)
        full = torch.zeros(*y.shape[:-2], h, w, dtype=y.dtype, device=y.device)
        full[..., rows, cols] = y
        return torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1)), norm="ortho").real


class BicubicDownsample:
    """Linear ``A``: antialiased bicubic ``(B, C, H, W) -> (B, C, H/s, W/s)``; ``A_adjoint`` is its exact
    transpose, taken by automatic differentiation (the resize is linear)."""

    def __init__(self, scale: int):
        self.scale = scale

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_down(x, self.scale)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2] * self.scale, y.shape[-1] * self.scale
        zero = torch.zeros(*y.shape[:-2], h, w, dtype=y.dtype, device=y.device)
        _, vjp = torch.func.vjp(self.A, zero)
        return vjp(y)[0]


def simulate_mri_sr(
    x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None, scale: int = 4,
    method: str = "bicubic", rician_std: float = 0.0, upsample: bool = False, protocol: str | None = None,
) -> torch.Tensor:
    """MR magnitude ``(B, C, H, W)`` a.u. -> low-resolution ``(B, C, H/s, W/s)`` (``(H, W)`` if ``upsample``).

    ``protocol="ixi-4x"`` sets ``scale=4, method="bicubic"``. Noise is added at the low resolution.
    """
    check_image(x)
    if protocol is not None:
        if protocol not in MRI_PROTOCOLS:
            raise MedirError(f"unknown MRI protocol '{protocol}': use one of {', '.join(MRI_PROTOCOLS)}")
        scale, method = MRI_PROTOCOLS[protocol]["scale"], MRI_PROTOCOLS[protocol]["method"]
    if method not in ("bicubic", "kspace"):
        raise MedirError(f"method='{method}' is unknown: use 'bicubic' or 'kspace'")
    if rician_std < 0:
        raise MedirError(f"rician_std={rician_std} is impossible: it must be >= 0 (fraction of the image maximum)")
    gen = make_generator(x, generator=generator, seed=seed)
    low = (kspace_truncate if method == "kspace" else bicubic_down)(x, scale)
    if rician_std > 0:
        peak = x.amax(dim=(1, 2, 3), keepdim=True)
        low = _rician_scaled(low, (rician_std * peak).clamp_min(1e-12), gen)
    if upsample:
        h, w = x.shape[-2:]
        low = _upsample(low, (h, w), method)
    return low


def _rician_scaled(x: torch.Tensor, std: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Rician noise with a per-image std ``(B, 1, 1, 1)``."""
    return rician_noise(x / std, 1.0, generator=gen) * std


def _upsample(low: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    if method == "bicubic":
        return resize_bicubic(low, size, antialias=False)
    h, w = size
    hs, ws = low.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(low, norm="forward"), dim=(-2, -1))
    full = torch.zeros(*low.shape[:-2], h, w, dtype=spec.dtype, device=low.device)
    r0, c0 = h // 2 - hs // 2, w // 2 - ws // 2
    full[..., r0:r0 + hs, c0:c0 + ws] = spec
    return torch.fft.ifft2(torch.fft.ifftshift(full, dim=(-2, -1)), norm="forward").abs()


def simulate_path_sr(
    x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None, scale: int = 4,
    upsample: bool = True, quantize: bool = True,
) -> torch.Tensor:
    """RGB ``(B, 3, H, W)`` in 0..255 -> bicubic x``scale`` down (and back up, RAT protocol), 0..255.

    Deterministic: ``generator`` and ``seed`` are accepted for the common signature and unused.
    """
    check_image(x, channels=3)
    out = bicubic_down(x, scale, upsample=upsample).clamp(0.0, 255.0)
    return out.round() if quantize else out
