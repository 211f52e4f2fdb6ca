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
Sample ``t`` is a pure function of ``(image, seed, t)``, so each sample can be cached like any segmenter.

RLPP (:class:`ReliablePriorProducer`): the samples and ``r`` become LRformer's 3 prior channels
``[r * region-mean image, r * boundary probability, r]`` (:func:`prior_features`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
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

    How sample ``t`` is drawn, by kind of segmenter:
    - one with a ``sample(image, *, modality, rng)`` method: that method (a stochastic segmenter of its own);
    - :class:`ClassicalSegmenter`: parameter ``jitter`` and input noise of ``noise`` x the image's robust
      spread (0.5-99.5 percentile range);
    - SAM / MedSAM / head (a network): dropout of ``rate`` at ``placement``;
    - any other segmenter: called again as it is (deterministic ones give reliability 1).
    Sample ``t`` is a pure function of ``(image, seed, t)``, so every sample is itself a deterministic
    segmenter (:meth:`segmenters`) and ``cache`` (a folder) stores each one with
    :class:`medir.priors.cache.CachedSegmenter`: a cached prior equals a recomputed one.
    """

    def __init__(self, segmenter: Segmenter, *, samples: int = 4, rate: float = 0.1, placement: Placement = "decoder",
                 jitter: float = 0.2, noise: float = 0.02, agreement: float = 0.9, seed: int = 0,
                 cache: str | Path | None = None):
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
        self.cache = cache
        self._segmenters = None

    @property
    def kind(self) -> str:
        if hasattr(self.segmenter, "sample"):
            return "own"
        if isinstance(self.segmenter, ClassicalSegmenter):
            return "classical"
        if hasattr(self.segmenter, "model") or hasattr(self.segmenter, "network"):
            return "dropout"
        return "repeat"

    def settings(self, index: int) -> str:
        """What fixes sample ``index`` (the cache key of its label map, with the segmenter's own settings)."""
        draws = {"own": "", "repeat": "", "classical": f":jit={self.jitter:g}:noise={self.noise:g}",
                 "dropout": f":rate={self.rate:g}:at={self.placement}"}[self.kind]
        return f"{self.segmenter.settings()}|mc:v1:{self.kind}:seed={self.seed}:t={index}{draws}"

    def segmenters(self) -> list[Segmenter]:
        """The reference and the ``samples`` Monte-Carlo segmenters, each wrapped in the cache when one is set."""
        if self._segmenters is None:
            segs = [self.segmenter] + [MonteCarloSample(self, t) for t in range(self.samples)]
            if self.cache is not None:
                from medir.priors.cache import CachedSegmenter

                segs = [CachedSegmenter(s, self.cache) for s in segs]
            self._segmenters = segs
        return self._segmenters

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> ReliablePrior:
        reference, *draws = [s(image, modality=modality) for s in self.segmenters()]
        maps = np.stack([d.labels for d in draws])
        rel = reliability_map(reference.labels, maps)
        sums = np.bincount(reference.labels.ravel(), weights=rel.ravel(), minlength=reference.num_labels)
        counts = np.bincount(reference.labels.ravel(), minlength=reference.num_labels)
        conf = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).astype(np.float32)
        return ReliablePrior(Partition(reference.labels, conf), rel, maps, self.agreement)

    def sample(self, image: np.ndarray, *, modality: str = "OT", index: int = 0) -> Partition:
        """Monte-Carlo sample ``index`` (see the class docstring for how it is drawn)."""
        seeds = np.random.SeedSequence([self.seed, index])
        kind = self.kind
        if kind == "own":
            return self.segmenter.sample(image, modality=modality, rng=np.random.default_rng(seeds))
        if kind == "classical":
            return self._classical_sample(image, modality, np.random.default_rng(seeds))
        if kind == "dropout":
            gen = torch.Generator().manual_seed(int(seeds.generate_state(1, dtype=np.uint64)[0] >> 1))
            return self._dropout_sample(image, modality, gen)
        return self.segmenter(image, modality=modality)

    def _classical_sample(self, image: np.ndarray, modality: str, rng: np.random.Generator) -> Partition:
        lo, hi = np.percentile(image, [0.5, 99.5])
        seg = perturbed_classical(self.segmenter, rng, jitter=self.jitter)
        noisy = image + rng.normal(0.0, self.noise * max(hi - lo, 1e-6), image.shape).astype(np.float32)
        return seg(noisy, modality=modality)

    def _dropout_sample(self, image: np.ndarray, modality: str, gen: torch.Generator) -> Partition:
        modules = stochastic_modules(self.segmenter, self.placement)
        encoder_noisy = self.placement in ("encoder", "both") and hasattr(self.segmenter, "clear_cache")
        if encoder_noisy:
            self.segmenter.clear_cache()  # a stochastic encoder needs a fresh embedding per sample
        try:
            with mc_dropout(modules, rate=self.rate, generator=gen):
                return self.segmenter(image, modality=modality)
        finally:
            if encoder_noisy:
                self.segmenter.clear_cache()


class MonteCarloSample:
    """Monte-Carlo sample ``index`` of a :class:`MonteCarloReliability` as a deterministic segmenter."""

    def __init__(self, mc: MonteCarloReliability, index: int):
        self.mc, self.index = mc, index
        self.name = f"{mc.segmenter.name}-mc{index}"

    def settings(self) -> str:
        return self.mc.settings(self.index)

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        return self.mc.sample(image, modality=modality, index=self.index)


# LRformer's prior as network channels (RLPP). Label ids are arbitrary, so a partition enters the
# network through label-free maps: the mean of the network input in each region (mask average pooling,
# as SAM-Deblur and SPD-VFM) and the region boundaries.
PRIOR_CHANNELS = 3
PriorMode = Literal["raw", "reliable"]


def region_mean(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(H, W)``: every pixel replaced by the mean of ``values`` ``(H, W)`` over its region of ``labels``."""
    lab = labels.ravel().astype(np.int64)
    sums = np.bincount(lab, weights=values.ravel().astype(np.float64))
    counts = np.maximum(np.bincount(lab), 1)
    return (sums / counts)[lab].reshape(labels.shape).astype(np.float32)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32, 1 where a 4-neighbour (right or below, and the pixel it faces) has another label."""
    out = np.zeros(labels.shape, dtype=bool)
    dx, dy = labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    out[1:, :] |= dy
    out[:-1, :] |= dy
    return out.astype(np.float32)


def prior_features(values: np.ndarray, maps: np.ndarray, reliability: np.ndarray | None = None) -> np.ndarray:
    """``(3, H, W)`` float32 ``[r * m, r * b, r]`` from label maps ``maps`` ``(T, H, W)`` of an image whose network
    values are ``values`` ``(H, W)``: ``m`` the mean over maps of :func:`region_mean`, ``b`` the mean of
    :func:`boundaries` (a boundary probability), ``r`` the reliability (1 when None: a raw prior)."""
    m = np.mean([region_mean(values, s) for s in maps], axis=0)
    b = np.mean([boundaries(s) for s in maps], axis=0)
    r = np.ones_like(m) if reliability is None else reliability.astype(np.float32)
    return np.stack([r * m, r * b, r]).astype(np.float32)


class ReliablePriorProducer:
    """RLPP: one image -> LRformer's prior channels ``(3, H, W)`` (see :func:`prior_features`).

    ``mode="reliable"``: the ``samples`` Monte-Carlo label maps of :class:`MonteCarloReliability` give the
    mean maps and the reliability ``r`` (so unstable pixels are down-weighted); ``mode="raw"``: one
    deterministic pass, ``r = 1``. ``cache``: a folder where every label map is stored
    (:mod:`medir.priors.cache`); other keyword arguments go to :class:`MonteCarloReliability`.
    """

    def __init__(self, segmenter: Segmenter, *, mode: PriorMode = "reliable", samples: int = 4, rate: float = 0.1,
                 placement: Placement = "decoder", jitter: float = 0.2, noise: float = 0.02, seed: int = 0,
                 cache: str | Path | None = None):
        if mode not in ("raw", "reliable"):
            raise ValueError(f"prior mode must be 'raw' or 'reliable', not {mode!r}")
        self.mode = mode
        self.mc = MonteCarloReliability(segmenter, samples=samples, rate=rate, placement=placement, jitter=jitter,
                                        noise=noise, seed=seed, cache=cache)

    def __call__(self, image: np.ndarray, *, values: np.ndarray | None = None, modality: str = "OT") -> np.ndarray:
        """``image`` ``(H, W)`` in physical units (what the segmenter sees); ``values`` ``(H, W)`` the network's
        input (what region means average; default ``image``). Returns ``(3, H, W)`` float32."""
        values = image if values is None else values
        if self.mode == "raw":
            reference = self.mc.segmenters()[0](image, modality=modality)
            return prior_features(values, reference.labels[None])
        prior = self.mc(image, modality=modality)
        return prior_features(values, prior.samples, prior.reliability)
