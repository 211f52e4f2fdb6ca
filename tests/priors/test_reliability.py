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


class ThresholdSegmenter:
    """Deterministic: label 1 above the median, 0 below."""

    name = "threshold"

    def settings(self) -> str:
        return "threshold:v1"

    def __call__(self, image, *, modality="OT"):
        from medir.priors.base import Partition

        return Partition((image > np.median(image)).astype(np.int32))


class FlipOneRegion:
    """Four quadrants; in a sample, each pixel of the top-left quadrant flips to a fresh label with probability 1/2."""

    name = "flip"

    def settings(self) -> str:
        return "flip:v1"

    def __call__(self, image, *, modality="OT"):
        from medir.priors.base import Partition

        h, w = image.shape
        yy, xx = np.mgrid[:h, :w]
        return Partition((2 * (yy >= h // 2) + (xx >= w // 2)).astype(np.int32))

    def sample(self, image, *, modality="OT", rng):
        from medir.priors.base import Partition

        labels = self(image).labels.copy()
        flip = (labels == 0) & (rng.random(labels.shape) < 0.5)
        labels[flip] = 4
        return Partition(labels)


def test_deterministic_segmenters_are_fully_reliable():
    image = labelled_set(1, seed=3)[0][0]
    for seg, kwargs in ((ThresholdSegmenter(), {}), (ClassicalSegmenter(), dict(jitter=0.0, noise=0.0))):
        prior = MonteCarloReliability(seg, samples=3, **kwargs)(image, modality="MR")
        assert np.all(prior.reliability == 1.0), seg.name
        assert prior.consistent_mask.all()


def test_a_region_flipped_at_random_is_unreliable_exactly_there():
    image = np.zeros((16, 20), np.float32)
    prior = MonteCarloReliability(FlipOneRegion(), samples=6, seed=4)(image)
    flipped = FlipOneRegion()(image).labels == 0
    assert np.all(prior.reliability[~flipped] == 1.0)
    assert prior.reliability[flipped].max() < 0.8 and prior.reliability[flipped].mean() < 0.6
    assert np.array_equal(prior.consistent_mask, ~flipped)
    from medir.priors.reliability import ReliablePriorProducer

    feats = ReliablePriorProducer(FlipOneRegion(), samples=6, seed=4)(image)
    assert feats.shape == (3, 16, 20)
    np.testing.assert_array_equal(feats[2], prior.reliability)  # the reliability channel
    raw = ReliablePriorProducer(FlipOneRegion(), mode="raw")(image)
    assert np.all(raw[2] == 1.0)


def test_prior_features_region_means_and_boundaries():
    from medir.priors.reliability import boundaries, prior_features, region_mean

    labels = np.array([[0, 0, 1], [0, 0, 1]])
    values = np.array([[1.0, 3.0, 5.0], [1.0, 3.0, 7.0]], np.float32)
    np.testing.assert_allclose(region_mean(values, labels), [[2, 2, 6], [2, 2, 6]])
    np.testing.assert_array_equal(boundaries(labels), [[0, 1, 1], [0, 1, 1]])
    feats = prior_features(values, labels[None], np.full((2, 3), 0.5, np.float32))
    np.testing.assert_allclose(feats[0], 0.5 * region_mean(values, labels))
    np.testing.assert_allclose(feats[2], 0.5)


def test_cached_prior_equals_the_computed_one(tmp_path):
    from medir.priors.reliability import ReliablePriorProducer

    image = labelled_set(1, seed=3)[0][0][:48, :48]
    fresh = ReliablePriorProducer(ClassicalSegmenter(), samples=3, seed=2)(image, modality="MR")
    cached = ReliablePriorProducer(ClassicalSegmenter(), samples=3, seed=2, cache=tmp_path)
    first = cached(image, modality="MR")
    again = cached(image, modality="MR")
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(again, fresh)
    segs = cached.mc.segmenters()
    assert [s.misses for s in segs] == [1] * 4 and [s.hits for s in segs] == [1] * 4
    reread = ReliablePriorProducer(ClassicalSegmenter(), samples=3, seed=2, cache=tmp_path)
    np.testing.assert_array_equal(reread(image, modality="MR"), fresh)
    assert sum(s.hits for s in reread.mc.segmenters()) == 4  # read back, nothing recomputed


def test_medsam_body_box_and_reliable_prior(tiny_sam):
    from medir.priors.reliability import ReliablePriorProducer
    from medir.priors.sam import MedSamSegmenter, body_box

    image = np.zeros((40, 50), np.float32)
    image[10:25, 20:41] = 100.0
    x0, y0, x1, y1 = body_box(image, modality="MR", margin=0.0)
    assert (x0, y0, x1, y1) == (20.0, 10.0, 40.0, 24.0)
    assert body_box(np.ones((8, 8)), modality="MR") == (0.0, 0.0, 7.0, 7.0)
    seg = MedSamSegmenter(tiny_sam, boxes="body")
    assert "body" in seg.settings()
    feats = ReliablePriorProducer(seg, samples=2, rate=0.3, seed=1)(image + np.random.default_rng(0).normal(
        0, 5, image.shape).astype(np.float32), modality="MR")
    assert feats.shape == (3, 40, 50) and np.isfinite(feats).all()
    assert 0 <= feats[2].min() and feats[2].max() <= 1
    with pytest.raises(ValueError):
        MedSamSegmenter(tiny_sam, boxes="lesions")
