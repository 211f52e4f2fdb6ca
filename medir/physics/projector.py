"""2-D parallel-beam projector and its exact adjoint, shared by CT, PET and SPECT.

Geometry (scikit-image's ``radon`` convention, so sinograms can be compared with it):
the rotation centre is pixel ``(H // 2, W // 2)`` (row, col); for view angle ``theta``
the ray at detector offset ``t`` (pixels, from bin ``n_det // 2``) samples the points

    col = t cos(theta) + s sin(theta),   row = -t sin(theta) + s cos(theta)   (relative to the centre)

at unit steps ``s`` (one pixel), with bilinear interpolation and zeros outside the image.
The projection is the sum of those samples, i.e. a line integral in **pixel units**;
multiply by the pixel size for physical units.

Detector bins are ``det_spacing`` pixels apart (default one pixel), so a detector of fixed physical
width can be laid over any pixel grid. Each ray is sampled at unit steps over the image's diagonal.

Implementation: the sample points of a chunk of views form one ``grid_sample`` grid, built per chunk
(cached whole only while it is small), so memory is bounded by the chunk whatever the image size.
The adjoint is the transposed bilinear interpolation, computed by ``grid_sampler_2d_backward``,
so ``<A x, y> = <x, A^T y>`` holds to rounding. Both directions are autograd Functions whose
backward is the other direction, so they are differentiable to any order. :func:`backproject` is
the pixel-driven back-projection FBP uses (the detector interpolated at every pixel centre).
Shapes: ``x (B, C, H, W)`` -> sinogram ``(B, C, n_views, n_det)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from medir.errors import MedirError

_CHUNK_ELEMENTS = 2**24  # samples per grid_sample call: bounds the temporary memory (64 MiB in fp32)
_CACHE_ELEMENTS = 2**24  # grids up to this many points are cached whole (128 MiB in fp32); larger ones per chunk


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """Image size ``(height, width)`` in pixels, view angles in degrees, ``n_det`` detector bins ``det_spacing``
    pixels apart (centred on bin ``n_det // 2``)."""

    height: int
    width: int
    angles: tuple[float, ...]
    n_det: int
    det_spacing: float = 1.0

    @property
    def n_views(self) -> int:
        return len(self.angles)

    @property
    def n_samples(self) -> int:
        """Unit-step samples along each ray: enough to cross the detector's width (the image diagonal)."""
        if self.det_spacing == 1.0:
            return self.n_det
        return int(math.ceil(max(self.n_det * self.det_spacing, math.hypot(self.height, self.width))))


def make_geometry(
    height: int, width: int, *, views: int | None = None, angles_deg: tuple[float, ...] | None = None,
    n_det: int | None = None, circle: bool = False, det_spacing: float = 1.0,
) -> ParallelBeamGeometry:
    """A geometry over [0, 180) degrees; ``views`` defaults to ``max(H, W)``.

    ``circle=True`` assumes the object lies in the inscribed circle (detector of ``max(H, W)`` pixels,
    as scikit-image's ``radon(circle=True)``); otherwise the detector covers the image diagonal.
    ``det_spacing`` is the distance between detector bins in pixels.
    """
    if min(height, width) < 2:
        raise MedirError(f"image of {height}x{width} pixels is too small to project: give at least 2x2 pixels")
    if not det_spacing > 0:
        raise MedirError(f"det_spacing={det_spacing} is impossible: give a positive bin spacing in pixels")
    if angles_deg is None:
        views = max(height, width) if views is None else int(views)
        if views < 1:
            raise MedirError(f"views={views} is impossible: give at least 1 projection angle")
        angles_deg = tuple(180.0 * k / views for k in range(views))
    if n_det is None:
        extent = max(height, width) if circle else math.hypot(height, width)
        n_det = int(math.ceil(extent / det_spacing))
        n_det += (det_spacing != 1.0 and n_det % 2 == 0)  # odd: bins symmetric about the centre
    return ParallelBeamGeometry(int(height), int(width), tuple(float(a) for a in angles_deg), int(n_det),
                                float(det_spacing))


def angular_nyquist_views(n_det: int) -> int:
    """Views over 180 degrees that sample the angle as finely as the detector samples the object:
    ``ceil(pi / 2 * n_det)`` (Kak & Slaney ch. 5.1; fewer views give streaks and moire)."""
    return int(math.ceil(math.pi / 2 * n_det))


def _grid_chunk(geom: ParallelBeamGeometry, v0: int, v1: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalised sample positions ``(1, (v1 - v0) * n_samples, n_det, 2)`` of views ``[v0, v1)``
    for ``grid_sample(align_corners=True)``."""
    work = torch.float64 if dtype == torch.float64 else torch.float32  # fp32 positions are exact to ~1e-4 px
    theta = torch.deg2rad(torch.tensor(geom.angles[v0:v1], dtype=torch.float64))
    t = (torch.arange(geom.n_det, dtype=work, device=device) - geom.n_det // 2) * geom.det_spacing
    s = torch.arange(geom.n_samples, dtype=work, device=device) - geom.n_samples // 2
    cos = torch.cos(theta).to(device=device, dtype=work)[:, None, None]
    sin = torch.sin(theta).to(device=device, dtype=work)[:, None, None]
    col = t[None, None, :] * cos + s[None, :, None] * sin + geom.width // 2
    row = -t[None, None, :] * sin + s[None, :, None] * cos + geom.height // 2
    gx = 2.0 * col / (geom.width - 1) - 1.0
    gy = 2.0 * row / (geom.height - 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).reshape(1, (v1 - v0) * geom.n_samples, geom.n_det, 2)
    return grid.to(device=device, dtype=dtype)


@lru_cache(maxsize=32)
def _grid(geom: ParallelBeamGeometry, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return _grid_chunk(geom, 0, geom.n_views, device, dtype)


def _grid_part(geom: ParallelBeamGeometry, v0: int, v1: int, device, dtype) -> torch.Tensor:
    """The grid of views ``[v0, v1)``: a slice of the cached whole grid when it is small, else built now."""
    if geom.n_views * geom.n_samples * geom.n_det <= _CACHE_ELEMENTS:
        ns = geom.n_samples
        return _grid(geom, device, dtype)[:, v0 * ns:v1 * ns]
    return _grid_chunk(geom, v0, v1, device, dtype)


def _view_chunks(geom: ParallelBeamGeometry, channels: int) -> list[tuple[int, int]]:
    per_view = max(1, max(channels, 2) * geom.n_samples * geom.n_det)
    step = max(1, _CHUNK_ELEMENTS // per_view)
    return [(v, min(v + step, geom.n_views)) for v in range(0, geom.n_views, step)]


def _forward(x: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
    b, c, h, w = x.shape
    flat = x.reshape(1, b * c, h, w)
    ns = geom.n_samples
    parts = []
    for v0, v1 in _view_chunks(geom, b * c):
        g = _grid_part(geom, v0, v1, x.device, x.dtype)
        out = F.grid_sample(flat, g, mode="bilinear", padding_mode="zeros", align_corners=True)
        parts.append(out.reshape(b * c, v1 - v0, ns, geom.n_det).sum(dim=2))
    return torch.cat(parts, dim=1).reshape(b, c, geom.n_views, geom.n_det)


def _adjoint(y: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
    b, c = y.shape[:2]
    shape_ref = y.new_zeros(1, b * c, geom.height, geom.width)
    ns = geom.n_samples
    flat = y.reshape(b * c, geom.n_views, geom.n_det)
    x = torch.zeros_like(shape_ref)
    for v0, v1 in _view_chunks(geom, b * c):
        g = _grid_part(geom, v0, v1, y.device, y.dtype)
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


def ramp_filter(n_det: int, *, window: str = "ramp", cutoff: float = 1.0, device=None,
                dtype=torch.float32) -> torch.Tensor:
    """Frequency response ``(n_pad,)`` of the band-limited ramp for unit bin spacing (Kak & Slaney eq. 61, built
    in space to avoid the DC offset of a sampled ``|f|``), times an apodisation window.

    Windows of ``f / f_c`` with ``f_c = cutoff x`` the detector Nyquist (0.5 cycles per bin):
    shepp-logan ``sinc(f / 2 f_c)``, cosine ``cos(pi f / 2 f_c)``, hamming ``0.54 + 0.46 cos(pi f / f_c)``,
    hann ``0.5 + 0.5 cos(pi f / f_c)``; the response is zero above ``f_c``.
    """
    if window not in FILTER_WINDOWS:
        raise MedirError(f"unknown FBP filter window '{window}': use one of {', '.join(FILTER_WINDOWS)}")
    if not 0 < cutoff <= 1:
        raise MedirError(f"filter cutoff={cutoff} is impossible: give a fraction of the Nyquist frequency in (0, 1]")
    n_pad = max(64, 1 << int(math.ceil(math.log2(2 * n_det))))
    n = torch.cat([torch.arange(1, n_pad // 2 + 1, 2), torch.arange(n_pad // 2 - 1, 0, -2)]).double()
    h = torch.zeros(n_pad, dtype=torch.float64)
    h[0] = 0.25
    h[1::2] = -1.0 / (math.pi * n) ** 2
    resp = 2.0 * torch.fft.fft(h).real
    rel = torch.fft.fftfreq(n_pad, dtype=torch.float64).abs() / (0.5 * cutoff)  # f / f_c
    if window == "shepp-logan":
        resp = resp * torch.sinc(rel / 2)
    elif window == "cosine":
        resp = resp * torch.cos(math.pi * rel / 2)
    elif window == "hamming":
        resp = resp * (0.54 + 0.46 * torch.cos(math.pi * rel))
    elif window == "hann":
        resp = resp * (0.5 + 0.5 * torch.cos(math.pi * rel))
    resp = torch.where(rel <= 1.0, resp, torch.zeros_like(resp))
    return resp.to(device=device, dtype=dtype)


def filter_sinogram(sino: torch.Tensor, *, window: str = "ramp", cutoff: float = 1.0) -> torch.Tensor:
    """Ramp-filter ``(B, C, n_views, n_det)`` along the detector (zero-padded FFT convolution), unit bin spacing."""
    n_det = sino.shape[-1]
    resp = ramp_filter(n_det, window=window, cutoff=cutoff, device=sino.device, dtype=sino.dtype)
    spec = torch.fft.fft(sino, n=resp.shape[0], dim=-1) * resp
    return torch.fft.ifft(spec, dim=-1).real[..., :n_det]


def _backprojection_grid(geom: ParallelBeamGeometry, v0: int, v1: int, device, dtype) -> torch.Tensor:
    """Detector position of every pixel centre in views ``[v0, v1)``, as a ``grid_sample`` grid
    ``(1, (v1 - v0) * H, W, 2)`` over the sinogram image ``(n_views, n_det)`` (normalised coordinates)."""
    theta = torch.deg2rad(torch.tensor(geom.angles[v0:v1], dtype=torch.float64))
    scale = 2.0 / (geom.det_spacing * max(geom.n_det - 1, 1))  # pixels -> normalised detector coordinate
    centre = 2.0 * (geom.n_det // 2) / max(geom.n_det - 1, 1) - 1.0
    cos = (torch.cos(theta) * scale).to(device=device, dtype=dtype)[:, None, None]
    sin = (torch.sin(theta) * scale).to(device=device, dtype=dtype)[:, None, None]
    col = (torch.arange(geom.width, device=device, dtype=dtype) - geom.width // 2)[None, None, :]
    row = (torch.arange(geom.height, device=device, dtype=dtype) - geom.height // 2)[None, :, None]
    grid = torch.empty(v1 - v0, geom.height, geom.width, 2, device=device, dtype=dtype)
    torch.sub(col * cos, row * sin, out=grid[..., 0])
    grid[..., 0] += centre
    gy = 2.0 * torch.arange(v0, v1, device=device, dtype=dtype) / max(geom.n_views - 1, 1) - 1.0
    grid[..., 1] = gy[:, None, None]
    return grid.reshape(1, (v1 - v0) * geom.height, geom.width, 2)


def backproject(sino: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
    """Pixel-driven back-projection ``(B, C, n_views, n_det)`` -> ``(B, C, H, W)``: the sum over views of the
    detector, linearly interpolated at each pixel centre's projection. Memory is one chunk of views at a time."""
    b, c = sino.shape[:2]
    flat = sino.reshape(1, b * c, geom.n_views, geom.n_det)
    step = max(1, _CHUNK_ELEMENTS // (max(b * c, 4) * geom.height * geom.width))
    x = sino.new_zeros(b * c, geom.height, geom.width)
    for v0 in range(0, geom.n_views, step):
        v1 = min(v0 + step, geom.n_views)
        g = _backprojection_grid(geom, v0, v1, sino.device, sino.dtype)
        out = F.grid_sample(flat, g, mode="bilinear", padding_mode="zeros", align_corners=True)
        x += out.reshape(b * c, v1 - v0, geom.height, geom.width).sum(dim=1)
    return x.reshape(b, c, geom.height, geom.width)


def fbp(projector: ParallelBeamProjector, sino: torch.Tensor, *, window: str = "ramp", cutoff: float = 1.0,
        pixel_driven: bool = False) -> torch.Tensor:
    """Filtered back-projection ``(B, C, n_views, n_det)`` -> ``(B, C, H, W)``, inverse of ``A`` in pixel units.

    ``x = pi / (2 n_views) B (h * p) / det_spacing`` for views over [0, 180) degrees (Kak & Slaney, ch. 3),
    ``B`` the exact adjoint ``A^T`` (unit bins only) or, with ``pixel_driven``, :func:`backproject`.
    """
    geom = projector.geometry
    filtered = filter_sinogram(sino, window=window, cutoff=cutoff) / geom.det_spacing
    if pixel_driven or geom.det_spacing != 1.0:
        back = backproject(filtered, geom)
    else:
        back = projector.A_adjoint(filtered)
    return back * (math.pi / (2 * geom.n_views))
