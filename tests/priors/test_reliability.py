import numpy as np
import pytest

from medir.priors.classical import ClassicalSegmenter
from medir.priors.reliability import MonteCarloReliability, pixel_agreement, reliability_map, weighted_onehot

from medir.data.synthetic import labelled_set


def test_agreement_is_label_free():
    a = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    assert np.all(pixel_agreement(a, a + 5) == 1.0)  # same cut, other ids: full agreement
    b = np.array([[0, 0, 0, 1], [0, 0, 0, 1]])
    r = pixel_agreement(a, b)
    assert r[0, 0] == pytest.approx(4 / 6) and r[0, 3] == pytest.approx(2 / 4)
    assert np.all(reliability_map(a, np.stack([a, b])) <= 1)


def test_classical_monte_carlo_prior():
    image = labelled_set(1, seed=3)[0][0]
    prior = MonteCarloReliability(ClassicalSegmenter(), samples=4, seed=1)(image, modality="MR")
    assert prior.samples.shape == (4, *image.shape)
    assert prior.reliability.shape == image.shape
    assert 0 <= prior.reliability.min() and prior.reliability.max() <= 1
    assert prior.reliability.min() < 1  # perturbations do move some boundaries
    conf = prior.partition.confidence
    present = np.unique(prior.partition.labels)
    assert np.all((conf[present] >= 0) & (conf[present] <= 1))
    again = MonteCarloReliability(ClassicalSegmenter(), samples=4, seed=1)(image, modality="MR")
    assert np.array_equal(again.reliability, prior.reliability)  # seeded
    w = weighted_onehot(prior.partition.labels, prior.reliability)
    assert np.allclose(w.sum(0), prior.reliability)


def test_sam_decoder_dropout_reuses_the_embedding(tiny_sam, monkeypatch):
    from medir.priors.sam import MedSamSegmenter

    seg = MedSamSegmenter(tiny_sam)
    calls = []
    original = seg.model.get_image_embeddings
    monkeypatch.setattr(seg.model, "get_image_embeddings", lambda px: calls.append(1) or original(px))
    image = np.random.default_rng(0).normal(size=(40, 40)).astype(np.float32)
    exact = MonteCarloReliability(seg, samples=3, rate=0.0)(image, modality="MR")
    assert np.all(exact.reliability == 1.0)  # no dropout: every sample equals the reference
    noisy = MonteCarloReliability(seg, samples=3, rate=0.5, placement="decoder", seed=2)(image, modality="MR")
    assert len(calls) == 1  # one embedding for the reference and all 6 samples
    assert noisy.samples.shape == (3, 40, 40)
    MonteCarloReliability(seg, samples=2, rate=0.2, placement="encoder")(image, modality="MR")
    assert len(calls) > 1  # a stochastic encoder recomputes the embedding per sample
