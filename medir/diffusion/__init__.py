"""Diffusion: noise schedules and samplers as pure functions (no modules, no state).

Every sampler has one signature::

    sampler(eps_fn, x_T, *, schedule, steps, generator=None, clip=None, callback=None) -> x_0

``eps_fn(x_t, t)`` predicts the noise of ``x_t`` (B, C, H, W) at integer timesteps ``t`` (B,) in [0, T);
conditioning is closed over by ``eps_fn`` (so it is computed once per image, not once per step).
"""

from medir.diffusion.samplers import SAMPLERS, ddim, ddpm, get_sampler, sample_stats, timesteps
from medir.diffusion.schedules import Schedule, linear_schedule, q_sample

__all__ = ["SAMPLERS", "Schedule", "ddim", "ddpm", "get_sampler", "linear_schedule", "q_sample", "sample_stats",
           "timesteps"]
