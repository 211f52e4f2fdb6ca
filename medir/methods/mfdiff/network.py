"""MFdiff's inference network and its ablation variants (Table 5), one class with typed switches.

``MFdiff(pet, mr)`` restores standard-dose PET (B, 1, H, W) in the input's units from low-dose PET and the
co-registered T1 MR (B, 1, H, W). Intensities: PET is divided by ``s``, the 99.5th percentile of the low-dose
slice, and mapped to ``2 pet / s - 1``; MR by its own 99.5th percentile the same way (so any units work; the
output is multiplied back by ``s``).

- ``aux="none"``: PET only (Table 5 "UNet"); ``"concat"``: MR as an extra input channel ("MUNet");
  ``"fusion"``: the IML + CMA fusion feature (:class:`medir.nn.fusion.FeatureFusion`) with ``branches``
  ``("global", "detail")`` ("CMUNet"), ``("global", "global")`` ("GMUNet") or ``("detail", "detail")`` ("DMUNet").
- ``diffusion=False``: the UNet regresses the residual ``y = x_P + UNet([x_P, cond])`` (timestep 0 embedding).
- ``diffusion=True`` ("MFdiff"): the UNet predicts the noise ``eps_theta([x_t, x_P, x_fusion], t)`` (section 3.2),
  linear betas, ``timesteps`` T; the condition is computed once per image and closed over by the sampler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medir.diffusion import get_sampler, linear_schedule, q_sample, sample_stats
from medir.models.diffusion_unet import DiffusionUNet
from medir.nn.fusion import FeatureFusion

AUX = ("none", "concat", "fusion")
CLIP = (-1.5, 5.0)  # x0 range kept by the samplers, network space: -1 is zero activity, 1 the 99.5th percentile


def robust_scale(x: torch.Tensor, q: float = 0.995) -> torch.Tensor:
    """Per-image ``q`` quantile (B, 1, 1, 1) of (B, C, H, W), at least 1e-6 (an empty slice keeps scale 1)."""
    s = torch.quantile(x.flatten(1).float(), q, dim=1).view(-1, 1, 1, 1)
    return torch.where(s > 1e-6, s, torch.ones_like(s))


class MFdiff(nn.Module):
    """See the module docstring. Sizes: ``width``/``mults``/``attention``/``res_blocks`` of the UNet,
    ``fusion_width``/``fusion_channels``/``heads``/``kv_pool``/``encoder_blocks``/``decoder_blocks`` of the fusion."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 1, aux: str = "fusion",
                 branches: tuple[str, ...] = ("global", "detail"), diffusion: bool = True, width: int = 32,
                 mults: tuple[int, ...] = (1, 2, 2), attention: tuple[bool, ...] = (False, False, True),
                 res_blocks: int = 1, fusion_width: int = 16, fusion_channels: int = 8, heads: int = 2,
                 kv_pool: int = 4, encoder_blocks: int = 1, decoder_blocks: int = 2, timesteps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 2e-2):
        super().__init__()
        if in_channels != 1 or out_channels != 1 or scale != 1:
            raise ValueError("MFdiff restores one PET channel at its own size (in/out_channels 1, scale 1)")
        if aux not in AUX:
            raise ValueError(f"aux='{aux}': use one of {', '.join(AUX)}")
        self.aux, self.diffusion = aux, bool(diffusion)
        self.arch_args = {"aux": aux, "branches": list(branches), "diffusion": bool(diffusion), "width": width,
                          "mults": list(mults), "attention": list(attention), "res_blocks": res_blocks,
                          "fusion_width": fusion_width, "fusion_channels": fusion_channels, "heads": heads,
                          "kv_pool": kv_pool, "encoder_blocks": encoder_blocks, "decoder_blocks": decoder_blocks,
                          "timesteps": timesteps, "beta_start": beta_start, "beta_end": beta_end}
        self.fusion = (FeatureFusion(width=fusion_width, out_channels=fusion_channels, branches=tuple(branches),
                                     heads=heads, kv_pool=kv_pool, encoder_blocks=encoder_blocks,
                                     decoder_blocks=decoder_blocks) if aux == "fusion" else None)
        cond = 1 + {"none": 0, "concat": 1, "fusion": fusion_channels}[aux]
        self.denoiser = DiffusionUNet(in_channels=cond + int(self.diffusion), out_channels=1, width=width,
                                      mults=tuple(mults), attention=tuple(attention), res_blocks=res_blocks)
        self.schedule = linear_schedule(timesteps, beta_start=beta_start, beta_end=beta_end)

    @property
    def needs_aux(self) -> bool:
        return self.aux != "none"

    def normalise(self, pet: torch.Tensor, mr: torch.Tensor | None):
        """Physical -> network space: ``(2 pet / s - 1, 2 mr / s_mr - 1 or None, s)``."""
        s = robust_scale(pet)
        m = None if mr is None else 2.0 * mr / robust_scale(mr) - 1.0
        return 2.0 * pet / s - 1.0, m, s

    def condition(self, pet_n: torch.Tensor, mr_n: torch.Tensor | None) -> torch.Tensor:
        """``[x_P, cond]`` (B, 1 + k, H, W) in network space, computed once per image."""
        if self.aux == "none":
            return pet_n
        if mr_n is None:
            raise ValueError(f"this MFdiff variant (aux='{self.aux}') needs the MR image")
        if mr_n.shape != pet_n.shape:
            raise ValueError(f"PET {tuple(pet_n.shape)} and MR {tuple(mr_n.shape)} differ in shape")
        extra = mr_n if self.aux == "concat" else self.fusion(pet_n, mr_n)
        return torch.cat([pet_n, extra], dim=1)

    def loss(self, pet: torch.Tensor, mr: torch.Tensor | None, target: torch.Tensor, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Equation 9 (epsilon MSE at a uniform timestep) with diffusion, else L1 in network space."""
        pet_n, mr_n, s = self.normalise(pet, mr)
        y = 2.0 * target / s - 1.0
        cond = self.condition(pet_n, mr_n)
        if not self.diffusion:
            return F.l1_loss(pet_n + self.denoiser(cond), y)
        t = torch.randint(self.schedule.steps, (y.shape[0],), generator=generator).to(y.device)
        noise = torch.randn(y.shape, generator=generator).to(y.device)
        x_t = q_sample(y, t, noise, self.schedule)
        return F.mse_loss(self.denoiser(torch.cat([x_t, cond], dim=1), t), noise)

    @torch.no_grad()
    def restore(self, pet: torch.Tensor, mr: torch.Tensor | None = None, *, sampler: str = "ddim",
                steps: int | None = 50, samples: int = 1, generator: torch.Generator | None = None,
                callback=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Restored PET and its per-pixel std over ``samples`` draws (zeros without diffusion), input units."""
        pet_n, mr_n, s = self.normalise(pet, mr)
        cond = self.condition(pet_n, mr_n)
        if not self.diffusion:
            out = (pet_n + self.denoiser(cond) + 1.0) * s / 2.0
            return out, torch.zeros_like(out)

        def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.denoiser(torch.cat([x_t, cond], dim=1), t)

        mean, std = sample_stats(get_sampler(sampler), eps_fn, tuple(pet_n.shape), samples=samples,
                                 schedule=self.schedule, steps=steps, generator=generator, clip=CLIP,
                                 callback=callback, device=pet_n.device)
        return (mean + 1.0) * s / 2.0, std * s / 2.0

    def forward(self, pet: torch.Tensor, mr: torch.Tensor | None = None) -> torch.Tensor:
        """The restoration with the default sampler (DDIM, 50 steps, one sample)."""
        return self.restore(pet, mr)[0]
