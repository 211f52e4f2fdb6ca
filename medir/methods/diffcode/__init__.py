"""DiffCode (seed 004): all-in-one restoration with a task-adaptive codebook bank, latent diffusion and routing.

- :mod:`.stages`: the three training stages as methods that return their loss;
- :mod:`.runner`: ``medir train`` runs them in order (``train_stages``), each resumable;
- the inference network is :class:`medir.models.diffcode.DiffCodeNet`; data: :mod:`medir.data.allinone`.
"""

from medir.methods.diffcode.runner import build_stage, train_stages

__all__ = ["build_stage", "train_stages"]
