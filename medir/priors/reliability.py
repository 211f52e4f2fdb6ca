"""Reliability of a prior by Monte-Carlo sampling (LRformer's RLPP, after Bayesian MC dropout).

``T`` stochastic passes of a frozen segmenter give label maps ``S_1..S_T``; a deterministic pass
gives the reference ``R``. Label ids need not agree between passes (SAM's automatic regions are
unordered), so agreement is measured label-free: for pixel ``p``,

    r(p) = (1/T) sum_t IoU(R_{R(p)}, S_t^{S_t(p)})        (region of p in R vs. region of p in S_t)

which is 1 where every sample reproduces the pixel's region exactly and falls towards 0 where the
samples cut the image differently. For semantic segmenters (MedSAM, head) this is the per-class IoU.

- consistent part: ``r``; discrepant part: ``1 - r``; ``consistent_mask = r >= agreement``.
- reliability-weighted prior: the reference partition with ``confidence[k] = mean r over region k``,
  and :func:`weighted_onehot` ``(L, H, W) = onehot(R) * r`` for networks that take the prior as channels.

Stochasticity: for SAM / MedSAM / head segmenters, dropout on the outputs of chosen modules of the
frozen network (``placement`` and ``rate`` are options: LRformer does not say where). Only the decoder
by default, so SAM's image embedding is computed once and reused for all ``T`` samples. For the
classical segmenter, which has no weights: jittered parameters and added Gaussian input noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from medir.priors.base import Partition, Segmenter
from medir.priors.classical import ClassicalSegmenter

Placement = Literal["decoder", "encoder", "both", "head"]


@dataclass
class ReliablePrior:
    """``partition``: reference labels ``(H, W)`` with per-region mean reliability as confidence;
    ``reliability``: ``(H, W)`` in [0, 1] (consistent part); ``samples``: ``(T, H, W)`` label maps."""

    partition: Partition
    reliability: np.ndarray
    samples: np.ndarray
    agreement: float = 0.9

    @property
    def discrepancy(self) -> np.ndarray:
        return 1.0 - self.reliability

    @property
    def consistent_mask(self) -> np.ndarray:
        return self.reliability >= self.agreement


def pixel_agreement(reference: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """``(H, W)`` IoU between the region of each pixel in ``reference`` and its region in ``sample``."""
    ref = reference.ravel().astype(np.int64)
    smp = sample.ravel().astype(np.int64)
    n_ref, n_smp = ref.max() + 1, smp.max() + 1
    joint = np.bincount(ref * n_smp + smp, minlength=n_ref * n_smp).reshape(n_ref, n_smp)
    inter = joint[ref, smp]
    union = joint.sum(1)[ref] + joint.sum(0)[smp] - inter
    return (inter / union).reshape(reference.shape).astype(np.float32)


def reliability_map(reference: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Mean over samples ``(T, H, W)`` of :func:`pixel_agreement` with ``reference``: ``(H, W)`` in [0, 1]."""
    return np.mean([pixel_agreement(reference, s) for s in samples], axis=0).astype(np.float32)


def weighted_onehot(labels: np.ndarray, reliability: np.ndarray, *, num_labels: int | None = None) -> np.ndarray:
    """``(L, H, W)`` float32: the one-hot partition scaled by the per-pixel reliability."""
    n = num_labels or int(labels.max()) + 1
    onehot = np.eye(n, dtype=np.float32)[labels]  # (H, W, L)
    return np.moveaxis(onehot * reliability[..., None], -1, 0)


def stochastic_modules(segmenter, placement: Placement) -> list[nn.Module]:
    """Modules of a network segmenter whose outputs receive dropout: all ``nn.Linear`` / ``nn.Conv2d``
    layers inside the chosen part (SAM: ``mask_decoder`` and/or ``vision_encoder``; head: the head)."""
    if hasattr(segmenter, "model"):  # SamSegmenter / MedSamSegmenter
        parts = {"decoder": [segmenter.model.mask_decoder], "encoder": [segmenter.model.vision_encoder],
                 "both": [segmenter.model.mask_decoder, segmenter.model.vision_encoder]}.get(placement)
    elif hasattr(segmenter, "network"):  # HeadSegmenter
        parts = {"head": [segmenter.network.head], "decoder": [segmenter.network.head],
                 "encoder": [segmenter.network.encoder],
                 "both": [segmenter.network.head, segmenter.network.encoder]}.get(placement)
    else:
        raise TypeError(f"{type(segmenter).__name__} has no network to put dropout in")
    if parts is None:
        raise ValueError(f"unknown dropout placement '{placement}'")
    return [m for part in parts for m in part.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@contextlib.contextmanager
def mc_dropout(modules: list[nn.Module], *, rate: float, generator: torch.Generator):
    """Inside the block, every output of ``modules`` is multiplied by a Bernoulli(1 - rate) / (1 - rate)
    mask drawn from ``generator`` (inverted dropout, active in eval mode); hooks are removed on exit."""

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor) or rate <= 0:
            return output
        keep = torch.rand(output.shape, generator=generator, device="cpu").to(output.device) >= rate
        return output * keep / (1.0 - rate)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def perturbed_classical(segmenter: ClassicalSegmenter, rng: np.random.Generator, *, jitter: float) -> ClassicalSegmenter:
    """A copy with ``region_size``, ``compactness`` and ``sigma`` scaled by ``U(1 - jitter, 1 + jitter)``."""
    def scale(v: float) -> float:
        return float(v * rng.uniform(1 - jitter, 1 + jitter))

    return dataclasses.replace(segmenter, region_size=scale(segmenter.region_size),
                               compactness=scale(segmenter.compactness), sigma=scale(segmenter.sigma))


class MonteCarloReliability:
    """Wrap a segmenter: ``prior = MonteCarloReliability(seg, samples=4)(image, modality=...)`` -> :class:`ReliablePrior`.

    Network segmenters: dropout of ``rate`` at ``placement``. Classical: parameter ``jitter`` and input
    noise of ``noise`` x the image's robust spread (0.5-99.5 percentile range). ``seed`` fixes all draws.
    """

    def __init__(self, segmenter: Segmenter, *, samples: int = 4, rate: float = 0.1, placement: Placement = "decoder",
                 jitter: float = 0.2, noise: float = 0.02, agreement: float = 0.9, seed: int = 0):
        if samples < 1:
            raise ValueError("need at least one Monte-Carlo sample")
        self.segmenter = segmenter
        self.samples = samples
        self.rate = rate
        self.placement = placement
        self.jitter = jitter
        self.noise = noise
        self.agreement = agreement
        self.seed = seed

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> ReliablePrior:
        reference = self.segmenter(image, modality=modality)
        if isinstance(self.segmenter, ClassicalSegmenter):
            maps = self._classical_samples(image, modality)
        else:
            maps = self._dropout_samples(image, modality)
        rel = reliability_map(reference.labels, maps)
        sums = np.bincount(reference.labels.ravel(), weights=rel.ravel(), minlength=reference.num_labels)
        counts = np.bincount(reference.labels.ravel(), minlength=reference.num_labels)
        conf = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
        return ReliablePrior(Partition(reference.labels, conf), rel, maps, self.agreement)

    def _classical_samples(self, image: np.ndarray, modality: str) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        lo, hi = np.percentile(image, [0.5, 99.5])
        out = []
        for _ in range(self.samples):
            seg = perturbed_classical(self.segmenter, rng, jitter=self.jitter)
            noisy = image + rng.normal(0.0, self.noise * max(hi - lo, 1e-6), image.shape).astype(np.float32)
            out.append(seg(noisy, modality=modality).labels)
        return np.stack(out)

    def _dropout_samples(self, image: np.ndarray, modality: str) -> np.ndarray:
        gen = torch.Generator().manual_seed(self.seed)
        modules = stochastic_modules(self.segmenter, self.placement)
        encoder_noisy = self.placement in ("encoder", "both")
        out = []
        for _ in range(self.samples):
            if encoder_noisy and hasattr(self.segmenter, "clear_cache"):
                self.segmenter.clear_cache()  # a stochastic encoder needs a fresh embedding per sample
            with mc_dropout(modules, rate=self.rate, generator=gen):
                out.append(self.segmenter(image, modality=modality).labels)
        if encoder_noisy and hasattr(self.segmenter, "clear_cache"):
            self.segmenter.clear_cache()
        return np.stack(out)
