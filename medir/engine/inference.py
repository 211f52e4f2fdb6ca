"""Inference with bounded memory: sliding-window tiles, overlap blending, batched over slices.

Blending weights are zero in a margin of ``overlap // 4`` along every tile side that
lies inside the image, then ramp linearly to one. A pixel near a tile's inner border
(where zero padding changes the network's output) therefore takes its value from a
neighbouring tile, so a fully convolutional network whose receptive-field radius is at
most ``overlap // 4`` gives the untiled result up to float rounding. Networks with global
operations (NAFNet's channel attention pools the whole input) differ slightly with tiling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from medir.errors import InputError
from medir.io.image import Image

Forward = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, size)`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if tile >= size:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def _ramp(length: int, start_inner: bool, end_inner: bool, overlap: int) -> torch.Tensor:
    """1-D blending weight: 0 for ``overlap // 4`` pixels at inner sides, then a linear ramp to 1."""
    w = torch.ones(length, dtype=torch.float32)
    margin, ramp = overlap // 4, max(1, overlap // 2)
    d = torch.arange(length, dtype=torch.float32)
    up = ((d - margin + 1) / ramp).clamp(0, 1)
    if start_inner:
        w = torch.minimum(w, up)
    if end_inner:
        w = torch.minimum(w, up.flip(0))
    return w


def _tiles(h: int, w: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int, torch.Tensor]]:
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    for y in ys:
        wy = _ramp(th, y > 0, y + th < h, overlap)
        for x in xs:
            wx = _ramp(tw, x > 0, x + tw < w, overlap)
            yield y, x, th, tw, wy[:, None] * wx[None, :]


@torch.no_grad()
def tiled_forward(
    forward: Forward,
    x: torch.Tensor,
    *,
    tile: int | None,
    overlap: int = 32,
    scale: int = 1,
    batch: int = 4,
    progress: bool = False,
) -> torch.Tensor:
    """Apply ``forward`` to ``x`` (B, C, H, W) by tiles; returns (B, C_out, H*scale, W*scale) on x's device.

    ``tile=None`` runs whole slices, ``batch`` at a time. Tiles from all slices are batched together.
    """
    b, _, h, w = x.shape
    if tile is None or (tile >= h and tile >= w):
        outs = [forward(x[i : i + batch]) for i in _progress(range(0, b, batch), progress, "slices")]
        return torch.cat(outs)
    if overlap >= tile:
        raise InputError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    jobs = [(i, *t) for i in range(b) for t in _tiles(h, w, tile, overlap)]
    out = weight = None
    for k in _progress(range(0, len(jobs), batch), progress, "tiles"):
        chunk = jobs[k : k + batch]
        inp = torch.stack([x[i, :, y : y + th, xx : xx + tw] for i, y, xx, th, tw, _ in chunk])
        pred = forward(inp)
        if out is None:
            out = torch.zeros(b, pred.shape[1], h * scale, w * scale, dtype=pred.dtype, device=pred.device)
            weight = torch.zeros(b, 1, h * scale, w * scale, dtype=pred.dtype, device=pred.device)
        for (i, y, xx, th, tw, wt), p in zip(chunk, pred):
            wt = _upsample_weight(wt, scale).to(p.device, p.dtype)
            ys, xs = slice(y * scale, (y + th) * scale), slice(xx * scale, (xx + tw) * scale)
            out[i, :, ys, xs] += p * wt
            weight[i, :, ys, xs] += wt
    return out / weight.clamp_min(1e-12)


def _upsample_weight(wt: torch.Tensor, scale: int) -> torch.Tensor:
    return wt if scale == 1 else wt.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def _progress(it, enabled: bool, unit: str):
    return tqdm(it, unit=f"x{unit}", leave=False, disable=not enabled or None, dynamic_ncols=True)


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


def restore_image(
    image: Image,
    model: torch.nn.Module,
    card,
    *,
    tile: int | None = 512,
    overlap: int = 32,
    batch: int = 4,
    device: str | torch.device = "cpu",
    progress: bool = False,
    name: str = "image",
) -> Image:
    """Restore an :class:`Image` in physical units with a loaded model and its card (slice by slice)."""
    image.validate(name)
    check_compatible(image, card, name)
    preset = card.preset
    stack = image.slices()
    scale_pair = preset.scale_for(stack)
    x = torch.from_numpy(preset.to_network(stack, scale_pair)).to(device)
    model = model.to(device).eval()
    y = tiled_forward(model, x, tile=tile, overlap=overlap, scale=card.scale, batch=batch, progress=progress)
    restored = preset.from_network(y.cpu().numpy(), scale_pair)
    out = image.with_slices(np.asarray(restored, dtype=np.float32), scale=card.scale)
    if out.meta.modality == "OT":
        out.meta.modality = card.modality
    return out
