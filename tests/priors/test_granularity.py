"""Granularity of the classical partition: SAM-like by default (tens of regions per slice), fine on request."""

import numpy as np
import pytest
import torch
from skimage.measure import label as connected_components

from medir.priors.classical import ClassicalSegmenter, merge_to_count
from medir.priors.oracle import region_purity


def test_merging_goes_within_intensity_classes_first_and_keeps_regions_connected():
    # four stripes: class 1, class 1, class 2, class 1 (means 0.10, 0.12, 0.9, 0.11)
    regions = np.repeat(np.array([[1, 2, 3, 4]]), 4, axis=0).repeat(3, axis=1)
    gray = np.choose(regions - 1, [0.10, 0.12, 0.9, 0.11]).astype(float)
    classes = np.choose(regions - 1, [1, 1, 2, 1])
    merged = merge_to_count(regions, gray, target=3, classes=classes)
    assert np.unique(merged).size == 3 and merged[0, 0] == merged[0, 3]  # 1 and 2 merged (same class)
    two = merge_to_count(regions, gray, target=2, classes=classes)
    assert np.unique(two).size == 2
    for value in np.unique(two):  # unions of adjacent regions stay connected
        assert connected_components(two == value, connectivity=1).max() == 1
    background = regions.copy()
    background[:, :3] = 0
    assert (merge_to_count(background, gray, target=1, classes=classes)[:, :3] == 0).all()  # never merged


def test_max_regions_is_part_of_the_settings_and_small_images_keep_their_structure():
    assert ClassicalSegmenter().settings() != ClassicalSegmenter(max_regions=None).settings()
    from medir.data.synthetic import labelled_set

    image = labelled_set(1, seed=0)[0][0]
    part = ClassicalSegmenter()(image, modality="MR")
    assert 3 < part.num_regions <= 41


@pytest.fixture(scope="module")
def brain():
    phantoms = pytest.importorskip("medir.data.phantoms")
    try:
        return phantoms.brain_slice(100, size=512, hot_lesions=2, cold_lesions=1,
                                    generator=torch.Generator().manual_seed(100))
    except Exception as err:  # nilearn's template missing
        pytest.skip(f"brain phantom unavailable: {err}")


def test_default_gives_sam_like_counts_on_a_512_slice(brain):
    truth = brain.labels[0].numpy()
    for image, modality in ((brain.mr[0].numpy(), "MR"), (brain.activity[0].numpy(), "PT")):
        coarse = ClassicalSegmenter()(image, modality=modality)
        fine = ClassicalSegmenter(max_regions=None)(image, modality=modality)
        assert 20 <= coarse.num_regions <= 41  # tens, like SAM's everything mode (40 + background)
        assert fine.num_regions > 3 * coarse.num_regions
        assert region_purity(coarse.labels, truth)[1] >= 0.9  # pixel-weighted: large regions stay in tissue (0.93 measured on the hard-label phantom)
