"""Inference for guided models: restore an image with a co-registered guide image of another modality.

A guided model (card ``aux_modalities`` non-empty, e.g. ``pet-mr-nafnet``) maps ``concat[image, guide]``
``(B, C + A, H, W)`` in network units to the restored image ``(B, C, H, W)``. The image is mapped with the card's
preset and its own scale (as :func:`medir.engine.inference.restore_image` does), the guide with the card's guide
preset (``aux_intensity``) and the guide's own scale, so the guide's units never change the image's scaling.
Tiles are cut from both together; the result is in the image's physical units.
"""

from __future__ import annotations

import numpy as np
import torch

from medir.engine.inference import tiled_forward, tile_context, use_local_pooling
from medir.engine.tta import DIHEDRAL, inverse, transform
from medir.errors import InputError
from medir.io.image import Image


def check_guided(image: Image, guide: Image, card, *, name: str, guide_name: str) -> None:
    """One-line errors for a pair the model cannot take (channel counts; the grids are checked elsewhere)."""
    if not card.aux_modalities or card.aux_preset is None:
        raise InputError(f"the model for {name} takes no guide image: drop --aux, or pick a guided model "
                         "with --model")
    if image.meta.channels != card.out_channels:
        raise InputError(f"{name} has {image.meta.channels} channel(s) but the model restores {card.out_channels}")
    if guide.meta.channels * len(card.aux_modalities) + card.out_channels != card.in_channels:
        raise InputError(f"the guide {guide_name} has {guide.meta.channels} channel(s) but the model takes "
                         f"{card.in_channels - card.out_channels} guide channel(s)")


@torch.no_grad()
def restore_guided_slices(x: np.ndarray, g: np.ndarray, model: torch.nn.Module, card, *, tile: int | None = 512,
                          overlap: int = 32, batch: int = 4, device: str | torch.device = "cpu",
                          progress: bool | str = False, tta: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Image slices ``x (D, C, H, W)`` and guide slices ``g (D, A, H, W)``, physical units -> restored ``(D, C, H, W)``.

    ``y = from_net(f(concat[to_net(x), to_net_guide(g)]))`` with the image's and the guide's own scales. With
    ``tta``, also the per-pixel std over the 8 flips and quarter turns of the input (test-time augmentation; the
    restored image stays the plain pass), else None.
    """
    preset, guide_preset = card.preset, card.aux_preset
    scale_x, scale_g = preset.scale_for(x), guide_preset.scale_for(g)
    c = x.shape[1]
    model = model.to(device).eval()
    use_local_pooling(model, card)

    def forward(t: torch.Tensor) -> torch.Tensor:
        arr = t.cpu().numpy()
        net_in = np.concatenate([preset.to_network(arr[:, :c], scale_x), guide_preset.to_network(arr[:, c:], scale_g)],
                                axis=1)
        out = model(torch.from_numpy(net_in).to(device)).cpu().numpy()
        return torch.from_numpy(preset.from_network(out, scale_x))

    stacked = torch.from_numpy(np.ascontiguousarray(np.concatenate([x, g], axis=1), dtype=np.float32))
    kw = dict(tile=tile, overlap=overlap, context=tile_context(model), multiple=int(getattr(model, "multiple", 1)),
              scale=1, batch=batch, progress=progress)
    outs = []
    for k, flip in (DIHEDRAL if tta else [(0, False)]):
        y = tiled_forward(forward, transform(stacked, k, flip), **kw)
        outs.append(inverse(y, k, flip))
    std = torch.stack(outs).std(dim=0).numpy() if tta else None
    return outs[0].numpy(), std


def restore_guided(image: Image, guide: Image, model: torch.nn.Module, card, *, tile: int | None = 512,
                   overlap: int = 32, batch: int = 4, device: str | torch.device = "cpu", progress: bool | str = False,
                   name: str = "image", guide_name: str = "guide", tta: bool = False) -> tuple[Image, Image | None]:
    """Restore ``image`` (2-D or a stack of slices, physical units) guided by ``guide`` on the same grid (see
    :func:`restore_guided_slices`); returns the restored :class:`Image` (``image``'s units and layout) and, with
    ``tta``, the std image."""
    image.validate(name)
    guide.validate(guide_name)
    check_guided(image, guide, card, name=name, guide_name=guide_name)
    y, std = restore_guided_slices(image.slices().astype(np.float32), guide.slices().astype(np.float32), model, card,
                                   tile=tile, overlap=overlap, batch=batch, device=device, progress=progress, tta=tta)
    out = image.with_slices(y)
    if out.meta.modality == "OT":
        out.meta.modality = card.modality
    return out, (image.with_slices(std) if std is not None else None)
