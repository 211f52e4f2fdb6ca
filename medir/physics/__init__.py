"""Degradation operators ``y = noise(A(x))`` and the ``simulate`` entry point.

``simulate(task, x, seed=..., **params)`` degrades ``(B, C, H, W)`` images in physical units
(HU for CT, counts for PET/NM, a.u. for MR, 0..255 RGB for pathology) with a registered task;
``TASKS`` lists them with their parameters.
"""

from __future__ import annotations

from typing import Any

import torch

from medir.errors import MedirError
from medir.physics.base import LinearOperator, make_generator
from medir.physics.ct import LowDoseCT, hu_to_mu, mu_to_hu, simulate_ct_lowdose
from medir.physics.mri import BicubicDownsample, KSpaceTruncation, bicubic_down, kspace_truncate, simulate_mri_sr, simulate_path_sr
from medir.physics.noise import binomial_thinning, gaussian_noise, poisson_counts, rician_noise, speckle_noise
from medir.physics.optics import motion_blur, simulate_endo_smoke, smoke_field
from medir.physics.pet import PET_PROTOCOLS, EmissionSystem, osem, simulate_pet_lowcount
from medir.physics.projector import ParallelBeamProjector, fbp, make_geometry
from medir.physics.scintigraphy import register_patches, simulate_scinti_rapid
from medir.physics.registry import TASKS
from medir.physics.tasks import Param, TaskSpec, run_task


def simulate(task: str, x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
             **params: Any) -> torch.Tensor:
    """Degrade ``x (B, C, H, W)`` with the registered ``task``; same seed, same output.

    Unknown tasks, unknown parameters and impossible values raise :class:`MedirError`.
    """
    if task not in TASKS:
        raise MedirError(f"unknown simulation task '{task}': use one of {', '.join(TASKS)} (medir simulate --list)")

    return run_task(TASKS[task], x, generator=generator, seed=seed, **params)


__all__ = [
    "TASKS", "TaskSpec", "Param", "simulate", "LinearOperator", "make_generator",
    "ParallelBeamProjector", "make_geometry", "fbp",
    "LowDoseCT", "simulate_ct_lowdose", "hu_to_mu", "mu_to_hu",
    "PET_PROTOCOLS", "EmissionSystem", "osem", "simulate_pet_lowcount",
    "simulate_scinti_rapid", "register_patches",
    "simulate_mri_sr", "simulate_path_sr", "KSpaceTruncation", "BicubicDownsample", "kspace_truncate", "bicubic_down",
    "simulate_endo_smoke", "smoke_field", "motion_blur",
    "poisson_counts", "binomial_thinning", "gaussian_noise", "speckle_noise", "rician_noise",
]
