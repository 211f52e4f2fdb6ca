"""Inference with bounded memory: tiles with context, blended overlaps, streamed into the output.

A slice is cut into a grid of *cores* of ``tile`` x ``tile`` pixels. Each core is run
with ``context`` extra input pixels on every side (cut from the image, so the network
sees what it would see on the whole image; the context is discarded), and neighbouring
cores share a band of ``overlap`` pixels where their outputs cross-fade linearly. The
1-D weights of one axis sum to exactly one at every pixel (a partition of unity), so the
output is accumulated in place, tile by tile, without a weight buffer:

    out[p] = sum_t w_t(p) * f(window_t)[p],   sum_t w_t(p) = 1

Windows start on multiples of the network's down-sampling factor (``multiple``), so a
U-Net sees the same pixel grid in a tile as in the whole image. The result then matches
whole-image inference up to float rounding whenever ``context`` covers the network's
receptive field. For NAFNet this needs local pooling in the channel attention
(:meth:`medir.models.nafnet.NAFNet.set_local_pooling`), which :func:`restore_image`
turns on by default: global pooling would see a different mean in every tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from medir.errors import InputError
from medir.io.image import Image

Forward = Callable[[torch.Tensor], torch.Tensor]

DEFAULT_CONTEXT = 32  # input pixels around each core when the model does not say (conv nets of modest depth)
TLC_FACTOR = 1.5  # local-pooling window = 1.5 x the training patch (the TLC paper's choice)


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window run through the network and the band it writes.

    ``lo:hi`` is the input window; ``out_lo:out_hi`` the output band it contributes to
    (core plus half the overlap on each inner side); ``weight`` its blending weights.
    """

    lo: int
    hi: int
    out_lo: int
    out_hi: int
    weight: torch.Tensor


def core_bounds(size: int, tile: int, overlap: int) -> list[int]:
    """Core boundaries ``0 = b0 < b1 < ... = size`` at multiples of ``tile``; a last core narrower
    than ``overlap`` joins its neighbour (cross-fades must not overlap each other)."""
    bounds = list(range(0, size, tile)) + [size]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < max(overlap, 1):
        del bounds[-2]
    return bounds


def _ramp(p: torch.Tensor, boundary: float, overlap: float) -> torch.Tensor:
    """0 before ``boundary - overlap/2``, 1 after ``boundary + overlap/2``, linear in between (pixel centres)."""
    if overlap <= 0:
        return (p + 0.5 >= boundary).to(torch.float32)
    return ((p + 0.5 - (boundary - overlap / 2)) / overlap).clamp(0, 1)


def axis_spans(size: int, *, tile: int, context: int, overlap: int, align: int = 1, scale: int = 1) -> list[Span]:
    """The tiles along one axis of ``size`` input pixels (outputs in pixels of ``size * scale``)."""
    bounds = core_bounds(size, tile, overlap)
    half = overlap / 2
    spans = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        first, last = i == 0, i == len(bounds) - 2
        out_lo = 0 if first else max(0, math.floor(a - half))
        out_hi = size if last else min(size, math.ceil(b + half))
        lo = max(0, out_lo - context) // align * align
        hi = min(size, -(-(out_hi + context) // align) * align)
        p = torch.arange(out_lo * scale, out_hi * scale, dtype=torch.float32)
        w = torch.ones_like(p)
        if not first:
            w = w * _ramp(p, a * scale, overlap * scale)
        if not last:
            w = w * (1 - _ramp(p, b * scale, overlap * scale))
        spans.append(Span(lo, hi, out_lo, out_hi, w))
    return spans


def _jobs(b: int, ys: list[Span], xs: list[Span]) -> Iterator[tuple[int, Span, Span]]:
    return ((i, sy, sx) for i in range(b) for sy in ys for sx in xs)


@torch.no_grad()
def tiled_forward(
    forward: Forward,
    x: torch.Tensor,
    *,
    tile: int | None,
    context: int = DEFAULT_CONTEXT,
    overlap: int = 32,
    multiple: int = 1,
    scale: int = 1,
    batch: int = 4,
    device: str | torch.device | None = None,
    progress: bool | str = False,
) -> torch.Tensor:
    """Apply ``forward`` to ``x`` (B, C, H, W) by tiles; returns (B, C_out, H*scale, W*scale) on x's device.

    ``tile`` is the core size in input pixels (None: whole slices, ``batch`` at a time);
    each window is ``tile + overlap + 2 * context`` pixels at most and is moved to ``device``
    (default: x's) for the forward pass. ``progress`` shows a bar (a string names it).
    Windows of equal shape are batched together, up to ``batch`` per forward pass.
    """
    b, _, h, w = x.shape
    device = x.device if device is None else torch.device(device)
    if tile is None or (tile >= h and tile >= w):
        outs = [forward(x[i : i + batch].to(device)).to(x.device) for i in _bar(range(0, b, batch), progress, "slice")]
        return torch.cat(outs)
    if tile < 1 or context < 0 or overlap < 0 or batch < 1:
        raise InputError(f"tile {tile}, context {context}, overlap {overlap}, batch {batch}: need tile, batch >= 1")
    if overlap >= tile:
        raise InputError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    align = max(1, multiple // math.gcd(multiple, scale))
    kw = dict(tile=tile, context=context, overlap=overlap, align=align, scale=scale)
    ys, xs = axis_spans(h, **kw), axis_spans(w, **kw)
    out: torch.Tensor | None = None
    pending: list[tuple[int, Span, Span]] = []
    bar = _bar(None, progress, "tile", total=b * len(ys) * len(xs))
    for job in _jobs(b, ys, xs):
        if pending and (len(pending) == batch or _shape(pending[0]) != _shape(job)):
            out = _run(forward, x, pending, out, scale, device)
            bar.update(len(pending))
            pending = []
        pending.append(job)
    out = _run(forward, x, pending, out, scale, device)
    bar.update(len(pending))
    bar.close()
    return out


def _shape(job: tuple[int, Span, Span]) -> tuple[int, int]:
    _, sy, sx = job
    return sy.hi - sy.lo, sx.hi - sx.lo


def _run(forward: Forward, x: torch.Tensor, jobs: list, out: torch.Tensor | None, scale: int, device) -> torch.Tensor:
    """Run one batch of equal-shaped windows and add their weighted cores into ``out`` (allocated on first use)."""
    inp = torch.stack([x[i, :, sy.lo : sy.hi, sx.lo : sx.hi] for i, sy, sx in jobs]).to(device)
    pred = forward(inp).to(x.device)
    if out is None:
        b, _, h, w = x.shape
        out = torch.zeros(b, pred.shape[1], h * scale, w * scale, dtype=pred.dtype, device=x.device)
    for (i, sy, sx), p in zip(jobs, pred):
        y0, x0 = (sy.out_lo - sy.lo) * scale, (sx.out_lo - sx.lo) * scale
        core = p[:, y0 : y0 + len(sy.weight), x0 : x0 + len(sx.weight)]
        weight = (sy.weight[:, None] * sx.weight[None, :]).to(core.dtype)
        out[i, :, sy.out_lo * scale : sy.out_hi * scale, sx.out_lo * scale : sx.out_hi * scale] += core * weight
    return out


def _bar(it, progress: bool | str, unit: str, total: int | None = None):
    desc = progress if isinstance(progress, str) else None
    return tqdm(it, total=total, desc=desc, unit=unit, leave=False, disable=not progress or None, dynamic_ncols=True)


def check_compatible(image: Image, card, name: str) -> None:
    """Refuse a model whose modality or channel count does not fit the image."""
    modality = image.meta.modality
    if modality not in ("OT", card.modality):
        raise InputError(
            f"{name} is {modality} but the model restores {card.modality}: pick a {modality} model with --model"
        )
    if image.meta.channels != card.out_channels or card.in_channels != card.out_channels:
        raise InputError(
            f"{name} has {image.meta.channels} channel(s), the model takes {card.in_channels} "
            f"and returns {card.out_channels}: pick a matching model (conditioned methods need their inputs)"
        )


DEFAULT_TRAIN_PATCH = 256  # NAFNet's own training crops, for model cards that do not record theirs


def training_patch(card) -> int:
    """The training patch size a model card records (``training.data.train.patch_size``), else 256."""
    train = ((card.training or {}).get("data") or {}).get("train") or {}
    return int(train.get("patch_size") or DEFAULT_TRAIN_PATCH)


def use_local_pooling(model: torch.nn.Module, card, window: int | str | None = "auto") -> int | None:
    """Turn on test-time local pooling for models that have it (NAFNet); returns the window or None.

    ``"auto"``: 1.5 x the training patch (TLC, Chu et al. 2022); an int: that window in pixels;
    None: the model's global pooling (tiles then change the result).
    """
    if not hasattr(model, "set_local_pooling"):
        return None
    if window == "auto":
        window = int(round(TLC_FACTOR * training_patch(card)))
    model.set_local_pooling(window)
    return window


def tile_context(model: torch.nn.Module) -> int:
    """Input pixels a tile needs around its core: what the model declares (``tile_context``) or 32."""
    return int(getattr(model, "tile_context", DEFAULT_CONTEXT))


def counts_input(stack: np.ndarray, card) -> np.ndarray:
    """Scintigraphy (NM) counts ``(N, C, H, W)`` with small negatives (rescaling, lossy compression of real files)
    clipped to 0 and reported on the log; large ones are refused (see ``clip_negative_counts``). Others unchanged."""
    if card.modality != "NM" or float(np.min(stack)) >= 0:
        return stack
    from medir.physics.scintigraphy import clip_negative_counts

    return clip_negative_counts(torch.from_numpy(np.asarray(stack, dtype=np.float32))).numpy()


def restore_image(
    image: Image,
    model: torch.nn.Module,
    card,
    *,
    tile: int | None = 512,
    overlap: int = 32,
    context: int | None = None,
    pool_window: int | str | None = "auto",
    batch: int = 4,
    device: str | torch.device = "cpu",
    progress: bool | str = False,
    name: str = "image",
    ensemble: bool | None = None,
) -> Image:
    """Restore an :class:`Image` in physical units with a loaded model and its card (slice by slice).

    Tiles are cut from the image in physical units and each is mapped to network units and
    back on its own (the presets are affine per image), so no normalised copy of a large
    image is made; the output is accumulated in physical units. ``context`` defaults to
    the model's :func:`tile_context`; ``pool_window`` is passed to :func:`use_local_pooling`.
    ``ensemble``: the mean over the 8 dihedral transforms (:mod:`medir.engine.tta`, 8x the time); ``None`` (default)
    follows the card's ``self_ensemble``. NM (counts):
    small negative inputs are clipped and reported (:func:`counts_input`) and the output is clamped at 0.
    """
    if ensemble is None:
        ensemble = bool(getattr(card, "self_ensemble", False))
    y = _restore(image, model, card, tta="mean" if ensemble else None, tile=tile, overlap=overlap, context=context,
                 pool_window=pool_window, batch=batch, device=device, progress=progress, name=name)
    return _as_image(image, y, card)


def restore_with_uncertainty(
    image: Image,
    model: torch.nn.Module,
    card,
    *,
    tile: int | None = 512,
    overlap: int = 32,
    context: int | None = None,
    pool_window: int | str | None = "auto",
    batch: int = 4,
    device: str | torch.device = "cpu",
    progress: bool | str = False,
    name: str = "image",
) -> tuple[Image, Image]:
    """The self-ensemble mean and the per-pixel std over the 8 dihedral transforms (:mod:`medir.engine.tta`), both
    in the image's physical units (e.g. HU), by the same tiled inference as :func:`restore_image`."""
    y = _restore(image, model, card, tta="mean+std", tile=tile, overlap=overlap, context=context,
                 pool_window=pool_window, batch=batch, device=device, progress=progress, name=name)
    c = y.shape[1] // 2
    return _as_image(image, y[:, :c], card), _as_image(image, y[:, c:], card)


def _restore(image: Image, model: torch.nn.Module, card, *, tta: str | None, tile, overlap, context, pool_window,
             batch, device, progress, name) -> torch.Tensor:
    """The tiled forward of :func:`restore_image`: (slices, C_out [x2 with a std], H*scale, W*scale), physical units."""
    from medir.engine.tta import dihedral_forward

    image.validate(name)
    check_compatible(image, card, name)
    preset = card.preset
    stack = counts_input(image.slices(), card)
    scale_pair = preset.scale_for(stack)
    model = model.to(device).eval()
    use_local_pooling(model, card, pool_window)
    multiple = int(getattr(model, "multiple", 1))

    def forward(t: torch.Tensor) -> torch.Tensor:
        net_in = torch.from_numpy(preset.to_network(t.cpu().numpy(), scale_pair)).to(device)
        return torch.from_numpy(preset.from_network(model(net_in).cpu().numpy(), scale_pair))

    if tta is not None:
        forward = dihedral_forward(forward, multiple=multiple, scale=card.scale, spread=tta == "mean+std")
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    return tiled_forward(
        forward, x, tile=tile, overlap=overlap, context=tile_context(model) if context is None else context,
        multiple=multiple, scale=card.scale, batch=batch, progress=progress,
    )


def _as_image(image: Image, y: torch.Tensor, card) -> Image:
    if card.modality == "NM":
        y = y.clamp_min(0)  # counts (a std is >= 0 anyway)
    out = image.with_slices(y.numpy(), scale=card.scale)
    if out.meta.modality == "OT":
        out.meta.modality = card.modality
    return out
