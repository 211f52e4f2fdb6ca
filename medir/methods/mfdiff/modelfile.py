"""MFdiff model files (the medir format: ``model.safetensors`` + ``config.json`` card + README) and slice-by-slice
restoration of a PET volume with its MR.

The card's ``arch`` is ``"mfdiff"`` and ``arch_args`` the :class:`MFdiff` keyword arguments. MFdiff is not in
``medir.models.MODELS`` (the generic backbones map one image to one image; MFdiff needs the MR and a sampler), so
:func:`load_network` rebuilds it here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medir.engine.modelfile import WEIGHTS, ModelCard, load_card, resolve_model_path, save_model
from medir.errors import InputError, ModelFileError
from medir.methods.mfdiff.network import MFdiff

ARCH = "mfdiff"


def save_network(path: str | Path, network: MFdiff, *, metrics: dict | None = None, training: dict | None = None,
                 force: bool = False) -> Path:
    """Write ``network`` as a medir model file for PET (card: task ``pet-mr-restoration``, modality PT)."""
    from medir.data.intensity import get_preset

    card = ModelCard(arch=ARCH, arch_args=dict(network.arch_args), task="pet-mr-restoration", modality="PT",
                     intensity=get_preset("pet-counts").to_dict(), method="mfdiff", metrics=metrics or {},
                     training=training or {}, modalities=["PT"], aux_modalities=["MR"],
                     description="MFdiff: low-count PET + T1 MR -> standard-count PET (per-slice normalisation)")
    return save_model(path, network, card, force=force)


def load_network(name_or_path: str | Path, *, device: str | torch.device = "cpu") -> tuple[MFdiff, ModelCard]:
    """The MFdiff network of a model file, in eval mode; ModelFileError if the file holds another architecture."""
    from safetensors.torch import load_file

    directory = resolve_model_path(name_or_path)
    card = load_card(directory)
    if card.arch != ARCH:
        raise ModelFileError(f"model {name_or_path} is a '{card.arch}' model, but --aux needs an MFdiff model "
                             f"(arch 'mfdiff'): pass --model with one")
    try:
        network = MFdiff(**card.arch_args)
        network.load_state_dict(load_file(str(directory / WEIGHTS), device="cpu"))
    except (TypeError, ValueError, RuntimeError, OSError) as err:
        raise ModelFileError(f"{directory} does not hold a usable MFdiff model ({str(err).splitlines()[0]})") from err
    return network.to(device).eval(), card


def check_same_grid(pet, mr, *, pet_name: str, mr_name: str, tol: float = 1e-3) -> None:
    """Refuse a PET/MR pair on different grids (shape, pixel spacing, affine): we never resample silently."""
    if pet.array.shape != mr.array.shape:
        raise InputError(f"{pet_name} is {'x'.join(map(str, pet.array.shape))} but the MR {mr_name} is "
                         f"{'x'.join(map(str, mr.array.shape))}: resample the MR onto the PET grid first "
                         "(medir does not resample silently)")
    for what, a, b in (("pixel spacing", pet.meta.spacing, mr.meta.spacing), ("position (affine)", pet.meta.affine,
                                                                             mr.meta.affine)):
        if a is not None and b is not None and not np.allclose(np.asarray(a, float), np.asarray(b, float), atol=tol):
            raise InputError(f"{pet_name} and the MR {mr_name} differ in {what}: resample the MR onto the PET grid "
                             "first (medir does not resample silently)")


def restore_volume(network: MFdiff, pet: np.ndarray, mr: np.ndarray, *, sampler: str = "ddim", steps: int = 50,
                   samples: int = 1, seed: int = 0, device: str | torch.device = "cpu",
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Restore ``(D, 1, H, W)`` PET slices with their MR slice by slice -> (mean, std), same shape, PET units.

    One progress bar over slices, one over the sampler's steps (all samples) of the current slice.
    """
    from tqdm.auto import tqdm

    g = torch.Generator(device=device).manual_seed(seed)
    means, stds = [], []
    with tqdm(total=len(pet), unit="slice", disable=not progress or None, leave=False) as bar:
        for k in range(len(pet)):
            with tqdm(unit="step", disable=not progress or None, leave=False) as step_bar:
                def tick(i: int, n: int) -> None:
                    step_bar.total = n
                    step_bar.update(1)

                x = torch.from_numpy(np.ascontiguousarray(pet[k:k + 1])).float().to(device)
                m = torch.from_numpy(np.ascontiguousarray(mr[k:k + 1])).float().to(device)
                mean, std = network.restore(x, m, sampler=sampler, steps=steps, samples=samples, generator=g,
                                            callback=tick)
            means.append(mean.cpu().numpy())
            stds.append(std.cpu().numpy())
            bar.update(1)
    return np.concatenate(means), np.concatenate(stds)
