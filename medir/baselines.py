"""Classical baselines, callable like any restorer: ``model(lq) -> hq`` on ``(B, C, H, W)`` tensors.

Denoisers (Gaussian, non-local means, total variation, BM3D) work in the input's own units;
where a noise level is needed and not given it is estimated per image and channel with the
wavelet MAD estimator (Donoho & Johnstone 1994, ``skimage.restoration.estimate_sigma``).
``Bicubic`` upsamples by ``scale`` (PyTorch's kernel); ``Interpolate`` by Keys' cubic or Lanczos
with a tunable parameter. ``EmissionFBP`` / ``EmissionOSEM`` reconstruct emission
sinograms ``(B, C, views, n_det)`` with an :class:`medir.physics.pet.EmissionSystem`.
Baselines have no weights; they are ``nn.Module`` so benchmarks treat them like trained models.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from medir.errors import MedirError, missing_extra
from medir.physics.filters import gaussian_blur, resize_bicubic


def _per_channel(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply a numpy ``(H, W) -> (H, W)`` function to every image and channel of ``(B, C, H, W)``."""
    a = x.detach().cpu().double().numpy()
    out = np.empty_like(a)
    for b in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[b, c] = fn(a[b, c])
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def estimate_noise_std(img: np.ndarray) -> float:
    """Gaussian noise std of a 2-D image (wavelet MAD)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(img))


class _Baseline(nn.Module):
    scale = 1

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_") and k != "training")


class Gaussian(_Baseline):
    """Gaussian smoothing, ``sigma_px`` pixels, reflected borders."""

    def __init__(self, *, sigma_px: float = 1.0):
        super().__init__()
        self.sigma_px = float(sigma_px)

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        return gaussian_blur(lq, self.sigma_px, padding="reflect")


class NonLocalMeans(_Baseline):
    """Non-local means (Buades et al. 2005); filter strength ``h = h_factor * sigma`` (sigma estimated if not given)."""

    def __init__(self, *, sigma: float | None = None, h_factor: float = 0.8, patch_size: int = 5, patch_distance: int = 6):
        super().__init__()
        self.sigma, self.h_factor, self.patch_size, self.patch_distance = sigma, h_factor, patch_size, patch_distance

    def _one(self, img: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        sigma = self.sigma if self.sigma is not None else estimate_noise_std(img)
        return denoise_nl_means(img, h=self.h_factor * sigma, sigma=sigma, patch_size=self.patch_size,
                                patch_distance=self.patch_distance, fast_mode=True)

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        return _per_channel(lq, self._one)


class TotalVariation(_Baseline):
    """TV denoising (Chambolle 2004); ``weight = weight_factor * sigma`` in the image's units."""

    def __init__(self, *, sigma: float | None = None, weight_factor: float = 1.0):
        super().__init__()
        self.sigma, self.weight_factor = sigma, weight_factor

    def _one(self, img: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        sigma = self.sigma if self.sigma is not None else estimate_noise_std(img)
        # skimage's weight is relative to a [0, 1]-scaled image: rescale so the result is unit-free
        span = float(img.max() - img.min()) or 1.0
        lo = float(img.min())
        out = denoise_tv_chambolle((img - lo) / span, weight=self.weight_factor * sigma / span)
        return out * span + lo

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        return _per_channel(lq, self._one)


class BM3D(_Baseline):
    """BM3D (Dabov et al. 2007) via the ``bm3d`` package; ``sigma`` in the image's units (estimated if None)."""

    def __init__(self, *, sigma: float | None = None):
        super().__init__()
        self.sigma = sigma

    def _one(self, img: np.ndarray) -> np.ndarray:
        try:
            import bm3d
        except ImportError as err:
            raise missing_extra("bm3d", "classical") from err
        sigma = self.sigma if self.sigma is not None else estimate_noise_std(img)
        if sigma <= 0:
            return img
        return np.asarray(bm3d.bm3d(img, sigma_psd=sigma), dtype=np.float64)

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        return _per_channel(lq, self._one)


def anscombe(x: torch.Tensor) -> torch.Tensor:
    """Anscombe transform ``2 sqrt(x + 3/8)`` of counts: Poisson noise becomes about unit-variance Gaussian."""
    return 2.0 * torch.sqrt(x.clamp_min(0) + 0.375)


def inverse_anscombe(y: torch.Tensor) -> torch.Tensor:
    """Closed-form approximation of the exact unbiased inverse Anscombe transform (Makitalo & Foi 2011, eq. 4):
    ``y^2/4 + sqrt(3/2)/(4 y) - 11/(8 y^2) + 5 sqrt(3/2)/(8 y^3) - 1/8``, clipped at 0 (counts)."""
    y = y.clamp_min(1e-3)
    r = math.sqrt(1.5)
    return (0.25 * y**2 + 0.25 * r / y - 1.375 / y**2 + 0.625 * r / y**3 - 0.125).clamp_min(0)


class Anscombe(_Baseline):
    """A Gaussian-noise denoiser made fit for Poisson counts: ``inverse_anscombe(inner(anscombe(lq)))``.

    After the transform the noise std is about 1 at every count level, so ``inner``'s ``sigma`` is in those units
    (e.g. ``Anscombe(BM3D(sigma=1.0))``). Input and output ``(B, C, H, W)`` in counts.
    """

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        return inverse_anscombe(self.inner(anscombe(lq)))


class Bicubic(_Baseline):
    """Bicubic upsampling by ``scale`` (``(B, C, H, W) -> (B, C, sH, sW)``); ``scale=1`` is the identity."""

    def __init__(self, *, scale: int = 4):
        super().__init__()
        if scale not in (1, 2, 3, 4, 8):
            raise MedirError(f"scale={scale} is not supported by the bicubic baseline: use 1, 2, 3, 4 or 8")
        self.scale = int(scale)

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        if self.scale == 1:
            return lq
        h, w = lq.shape[-2:]
        return resize_bicubic(lq, (h * self.scale, w * self.scale), antialias=False)


def interpolation_kernel(t: torch.Tensor, *, kind: str, param: float) -> torch.Tensor:
    """Interpolation weights at distances ``t`` (input pixels).

    ``keys``: Keys' cubic with parameter ``a`` = ``param`` (-0.5: MATLAB/PIL bicubic, -0.75: PyTorch/OpenCV);
    ``lanczos``: ``sinc(t) sinc(t / a)`` for ``|t| < a`` with ``a`` = ``param`` lobes (3: PIL's LANCZOS).
    """
    x = t.abs()
    if kind == "keys":
        a = param
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
        return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))
    if kind == "lanczos":
        return torch.where(x < param, torch.sinc(x) * torch.sinc(x / param), torch.zeros_like(x))
    raise MedirError(f"unknown interpolation kernel '{kind}': use keys or lanczos")


def upsample_matrix(n: int, scale: int, *, kind: str, param: float) -> torch.Tensor:
    """``(n * scale, n)`` matrix of a separable upsampling by ``scale`` (pixel centres aligned, as
    ``align_corners=False``; edge pixels replicated; each row normalised to sum to one)."""
    centres = (torch.arange(n * scale, dtype=torch.float64) + 0.5) / scale - 0.5
    support = 2 if kind == "keys" else int(np.ceil(param))
    taps = torch.floor(centres)[:, None] + torch.arange(-support + 1, support + 1, dtype=torch.float64)[None]
    w = interpolation_kernel(centres[:, None] - taps, kind=kind, param=param)
    w = w / w.sum(dim=1, keepdim=True)
    m = torch.zeros(n * scale, n, dtype=torch.float64)
    m.scatter_add_(1, taps.clamp(0, n - 1).long(), w)
    return m


class Interpolate(_Baseline):
    """Separable upsampling by ``scale`` with Keys' cubic (``kind="keys"``, ``param`` = a) or Lanczos
    (``kind="lanczos"``, ``param`` = lobes): ``(B, C, H, W) -> (B, C, sH, sW)``, values not clipped.
    ``Interpolate(kind="keys", param=-0.75)`` equals :class:`Bicubic` away from the borders."""

    def __init__(self, *, scale: int = 4, kind: str = "lanczos", param: float = 3.0):
        super().__init__()
        interpolation_kernel(torch.zeros(1), kind=kind, param=param)  # checks kind
        if scale < 1 or param == 0:
            raise MedirError(f"scale={scale}, param={param}: need scale >= 1 and a non-zero kernel parameter")
        self.scale, self.kind, self.param = int(scale), kind, float(param)

    def forward(self, lq: torch.Tensor, **cond) -> torch.Tensor:
        h, w = lq.shape[-2:]
        rows = upsample_matrix(h, self.scale, kind=self.kind, param=self.param).to(lq.device)
        cols = upsample_matrix(w, self.scale, kind=self.kind, param=self.param).to(lq.device)
        return torch.einsum("ih,bchw,jw->bcij", rows, lq.double(), cols).to(lq.dtype)


class EmissionFBP(_Baseline):
    """Attenuation-corrected FBP of emission counts ``(B, C, views, n_det)`` -> ``(B, C, H, W)``, clipped at 0."""

    def __init__(self, system, *, window: str = "hann"):
        super().__init__()
        self.system, self.window = system, window

    def forward(self, counts: torch.Tensor, **cond) -> torch.Tensor:
        from medir.physics.projector import fbp

        att = self.system.att if self.system.att is not None else 1.0
        return fbp(self.system.full, counts / att, window=self.window).clamp_min(0)


class EmissionOSEM(_Baseline):
    """OSEM of emission counts with the system's PSF and attenuation (see :func:`medir.physics.pet.osem`)."""

    def __init__(self, system, *, iterations: int = 4):
        super().__init__()
        self.system, self.iterations = system, iterations

    def forward(self, counts: torch.Tensor, **cond) -> torch.Tensor:
        from medir.physics.pet import osem

        return osem(counts, self.system, iterations=self.iterations)


BASELINES: dict[str, type[nn.Module]] = {
    "gaussian": Gaussian,
    "nlm": NonLocalMeans,
    "tv": TotalVariation,
    "bm3d": BM3D,
    "anscombe": Anscombe,
    "bicubic": Bicubic,
    "interpolate": Interpolate,
    "fbp": EmissionFBP,
    "osem": EmissionOSEM,
}


def build_baseline(name: str, **kwargs) -> nn.Module:
    """A baseline by name with its keyword arguments."""
    if name not in BASELINES:
        raise MedirError(f"unknown baseline '{name}': use one of {', '.join(BASELINES)}")
    return BASELINES[name](**kwargs)
