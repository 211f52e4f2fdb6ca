import numpy as np
import pytest

from medir.errors import InputError
from medir.priors.cache import CachedSegmenter
from medir.priors.classical import ClassicalSegmenter
from medir.priors.oracle import OracleSegmenter, oracle_partition, region_purity


class Counting:
    name = "counting"

    def __init__(self, level=1):
        self.calls, self.level = 0, level

    def settings(self):
        return f"counting:{self.level}"

    def __call__(self, image, *, modality="OT"):
        self.calls += 1
        return ClassicalSegmenter()(image, modality=modality)


def test_cache_hits_on_second_epoch_and_keys_on_settings(tmp_path):
    images = [np.random.default_rng(i).normal(100, 20, (32, 32)).astype(np.float32) for i in range(3)]
    inner = Counting()
    cached = CachedSegmenter(inner, tmp_path)
    first = [cached(im, modality="MR").labels for im in images]
    second = [cached(im, modality="MR").labels for im in images]
    assert inner.calls == 3 and cached.hits == 3
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = CachedSegmenter(Counting(level=2), tmp_path)  # other settings: other entries
    other(images[0], modality="MR")
    assert other.misses == 1
    cached(images[0], modality="CT")  # the modality is part of the key
    assert inner.calls == 4
    path = cached.path_for(images[1], modality="MR")
    path.write_bytes(b"garbage")  # a corrupt entry is recomputed, not trusted
    cached(images[1], modality="MR")
    assert inner.calls == 5


def test_oracle_partition_and_lookup():
    truth = np.zeros((20, 20), int)
    truth[2:6, 2:6] = 4
    truth[10:14, 10:14] = 4
    semantic = oracle_partition(truth)
    assert np.array_equal(semantic.labels, truth)
    split = oracle_partition(truth, split_components=True)
    assert split.num_regions == 3  # two separate lesions become two regions
    assert region_purity(split.labels, truth) == (1.0, 1.0)
    oracle = OracleSegmenter()
    image = np.random.default_rng(0).normal(size=(20, 20))
    with pytest.raises(InputError):
        oracle(image)
    oracle.add(image, truth)
    assert np.array_equal(oracle(image).labels, truth)


def test_region_purity_counts_majority_fractions():
    truth = np.array([[0, 0, 1, 1]])
    regions = np.array([[0, 0, 0, 1]])
    mean, weighted = region_purity(regions, truth)
    assert mean == pytest.approx((2 / 3 + 1) / 2)
    assert weighted == pytest.approx((3 * 2 / 3 + 1) / 4)
