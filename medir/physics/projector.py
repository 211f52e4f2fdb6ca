"""2-D parallel-beam projector and its exact adjoint, shared by CT, PET and SPECT.

Geometry (scikit-image's ``radon`` convention, so sinograms can be compared with it):
the rotation centre is pixel ``(H // 2, W // 2)`` (row, col); for view angle ``theta``
the ray at detector offset ``t`` (pixels, from bin ``n_det // 2``) samples the points

    col = t cos(theta) + s sin(theta),   row = -t sin(theta) + s cos(theta)   (relative to the centre)

at unit steps ``s`` (one pixel), with bilinear interpolation and zeros outside the image.
The projection is the sum of those samples, i.e. a line integral in **pixel units**;
multiply by the pixel size for physical units.

Implementation: all sample points of a chunk of views form one ``grid_sample`` grid
(cached per geometry, device and dtype). The adjoint is the transposed bilinear
interpolation, computed by ``grid_sampler_2d_backward``, so ``<A x, y> = <x, A^T y>``
holds to rounding. Both directions are autograd Functions whose backward is the other
direction, so they are differentiable to any order. Shapes: ``x (B, C, H, W)`` ->
sinogram ``(B, C, n_views, n_det)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from medir.errors import MedirError

_CHUNK_ELEMENTS = 2**24  # samples per grid_sample call: bounds the temporary memory (64 MiB in fp32)


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """Image size ``(height, width)`` in pixels, view angles in degrees, detector bins of one pixel."""

    height: int
    width: int
    angles: tuple[float, ...]
    n_det: int

    @property
    def n_views(self) -> int:
        return len(self.angles)

    @property
    def n_samples(self) -> int:
        return self.n_det


def make_geometry(
    height: int, width: int, *, views: int | None = None, angles_deg: tuple[float, ...] | None = None,
    n_det: int | None = None, circle: bool = False,
) -> ParallelBeamGeometry:
    """A geometry over [0, 180) degrees; ``views`` defaults to ``max(H, W)``.

    ``circle=True`` assumes the object lies in the inscribed circle (detector of ``max(H, W)`` bins,
    as scikit-image's ``radon(circle=True)``); otherwise the detector covers the image diagonal.
    """
    if min(height, width) < 2:
        raise MedirError(f"image of {height}x{width} pixels is too small to project: give at least 2x2 pixels")
    if angles_deg is None:
        views = max(height, width) if views is None else int(views)
        if views < 1:
            raise MedirError(f"views={views} is impossible: give at least 1 projection angle")
        angles_deg = tuple(180.0 * k / views for k in range(views))
    if n_det is None:
        n_det = max(height, width) if circle else int(math.ceil(math.hypot(height, width)))
    return ParallelBeamGeometry(int(height), int(width), tuple(float(a) for a in angles_deg), int(n_det))


@lru_cache(maxsize=64)
def _grid(geom: ParallelBeamGeometry, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised sample positions ``(1, n_views * n_samples, n_det, 2)`` for ``grid_sample(align_corners=True)``."""
    work = torch.float64 if dtype == torch.float64 else torch.float32  # fp32 positions are exact to ~1e-4 px
    theta = torch.deg2rad(torch.tensor(geom.angles, dtype=torch.float64))
    t = torch.arange(geom.n_det, dtype=work, device=device) - geom.n_det // 2
    s = torch.arange(geom.n_samples, dtype=work, device=device) - geom.n_samples // 2
    cos = torch.cos(theta).to(device=device, dtype=work)[:, None, None]
    sin = torch.sin(theta).to(device=device, dtype=work)[:, None, None]
    col = t[None, None, :] * cos + s[None, :, None] * sin + geom.width // 2
    row = -t[None, None, :] * sin + s[None, :, None] * cos + geom.height // 2
    gx = 2.0 * col / (geom.width - 1) - 1.0
    gy = 2.0 * row / (geom.height - 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(1, geom.n_views * geom.n_samples, geom.n_det, 2)
    return grid.to(device=device, dtype=dtype)


def _view_chunks(geom: ParallelBeamGeometry, channels: int) -> list[tuple[int, int]]:
    per_view = max(1, channels * geom.n_samples * geom.n_det)
    step = max(1, _CHUNK_ELEMENTS // per_view)
    return [(v, min(v + step, geom.n_views)) for v in range(0, geom.n_views, step)]


def _forward(x: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
    b, c, h, w = x.shape
    grid = _grid(geom, x.device, x.dtype)
    flat = x.reshape(1, b * c, h, w)
    ns = geom.n_samples
    parts = []
    for v0, v1 in _view_chunks(geom, b * c):
        g = grid[:, v0 * ns:v1 * ns]
        out = F.grid_sample(flat, g, mode="bilinear", padding_mode="zeros", align_corners=True)
        parts.append(out.reshape(b * c, v1 - v0, ns, geom.n_det).sum(dim=2))
    return torch.cat(parts, dim=1).reshape(b, c, geom.n_views, geom.n_det)


def _adjoint(y: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
    b, c = y.shape[:2]
    grid = _grid(geom, y.device, y.dtype)
    shape_ref = y.new_zeros(1, b * c, geom.height, geom.width)
    ns = geom.n_samples
    flat = y.reshape(b * c, geom.n_views, geom.n_det)
    x = torch.zeros_like(shape_ref)
    for v0, v1 in _view_chunks(geom, b * c):
        g = grid[:, v0 * ns:v1 * ns]
        gout = flat[:, v0:v1, None, :].expand(b * c, v1 - v0, ns, geom.n_det).reshape(1, b * c, (v1 - v0) * ns, geom.n_det)
        # interpolation 0 = bilinear, padding 0 = zeros; only the input gradient is needed.
        gin, _ = torch.ops.aten.grid_sampler_2d_backward(gout, shape_ref, g, 0, 0, True, [True, False])
        x = x + gin
    return x.reshape(b, c, geom.height, geom.width)


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, geom):
        ctx.geom = geom
        return _forward(x, geom)

    @staticmethod
    def backward(ctx, g):
        return _BackProject.apply(g, ctx.geom), None


class _BackProject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, geom):
        ctx.geom = geom
        return _adjoint(y, geom)

    @staticmethod
    def backward(ctx, g):
        return _Project.apply(g, ctx.geom), None


def _check(t: torch.Tensor, shape: tuple[int, int], what: str) -> None:
    if t.ndim != 4 or tuple(t.shape[-2:]) != shape:
        raise MedirError(f"{what} has shape {tuple(t.shape)}: expected (B, C, {shape[0]}, {shape[1]}) for this geometry")


class ParallelBeamProjector:
    """Linear operator ``A``: image ``(B, C, H, W)`` -> sinogram ``(B, C, n_views, n_det)``, pixel units.

    ``A`` and ``A_adjoint`` follow the input's device and dtype; ``A_adjoint`` is the exact transpose.
    """

    def __init__(self, geometry: ParallelBeamGeometry):
        self.geometry = geometry

    @classmethod
    def for_image(cls, height: int, width: int, *, views: int | None = None, n_det: int | None = None,
                  circle: bool = False) -> "ParallelBeamProjector":
        return cls(make_geometry(height, width, views=views, n_det=n_det, circle=circle))

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.geometry.height, self.geometry.width

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        return self.geometry.n_views, self.geometry.n_det

    def A(self, x: torch.Tensor) -> torch.Tensor:
        _check(x, self.image_shape, "image")
        return _Project.apply(x, self.geometry)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        _check(y, self.sinogram_shape, "sinogram")
        return _BackProject.apply(y, self.geometry)

    __call__ = A

    def angles_rad(self, device: torch.device | None = None) -> torch.Tensor:
        return torch.deg2rad(torch.tensor(self.geometry.angles, dtype=torch.float64, device=device))


# --- filtered back-projection -------------------------------------------------------------------

FILTER_WINDOWS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def ramp_filter(n_det: int, *, window: str = "ramp", device=None, dtype=torch.float32) -> torch.Tensor:
    """Frequency response ``(n_pad,)`` of the band-limited ramp (Kak & Slaney eq. 61, built in space to avoid
    the DC offset of a sampled ``|f|``), times an optional apodisation window."""
    if window not in FILTER_WINDOWS:
        raise MedirError(f"unknown FBP filter window '{window}': use one of {', '.join(FILTER_WINDOWS)}")
    n_pad = max(64, 1 << int(math.ceil(math.log2(2 * n_det))))
    n = torch.cat([torch.arange(1, n_pad // 2 + 1, 2), torch.arange(n_pad // 2 - 1, 0, -2)]).double()
    h = torch.zeros(n_pad, dtype=torch.float64)
    h[0] = 0.25
    h[1::2] = -1.0 / (math.pi * n) ** 2
    resp = 2.0 * torch.fft.fft(h).real
    freq = torch.fft.fftfreq(n_pad, dtype=torch.float64)  # cycles per detector bin, in [-0.5, 0.5)
    omega = math.pi * freq
    if window == "shepp-logan":
        resp = resp * torch.sinc(freq)
    elif window == "cosine":
        resp = resp * torch.cos(omega)
    elif window == "hamming":
        resp = resp * (0.54 + 0.46 * torch.cos(2 * omega))
    elif window == "hann":
        resp = resp * (0.5 + 0.5 * torch.cos(2 * omega))
    return resp.to(device=device, dtype=dtype)


def filter_sinogram(sino: torch.Tensor, *, window: str = "ramp") -> torch.Tensor:
    """Ramp-filter ``(B, C, n_views, n_det)`` along the detector (zero-padded FFT convolution)."""
    n_det = sino.shape[-1]
    resp = ramp_filter(n_det, window=window, device=sino.device, dtype=sino.dtype)
    spec = torch.fft.fft(sino, n=resp.shape[0], dim=-1) * resp
    return torch.fft.ifft(spec, dim=-1).real[..., :n_det]


def fbp(projector: ParallelBeamProjector, sino: torch.Tensor, *, window: str = "ramp") -> torch.Tensor:
    """Filtered back-projection ``(B, C, n_views, n_det)`` -> ``(B, C, H, W)``, inverse of ``A`` in pixel units.

    ``x = pi / (2 n_views) A^T (h * p)`` for views over [0, 180) degrees (Kak & Slaney, ch. 3).
    """
    filtered = filter_sinogram(sino, window=window)
    return projector.A_adjoint(filtered) * (math.pi / (2 * projector.geometry.n_views))
