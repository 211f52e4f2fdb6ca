"""False hot spots and contrast recovery on images whose answer is known."""

import numpy as np
import pytest

from medir.metrics.hallucination import contrast_recovery, false_hot_spots, hot_spot_map, local_noise


@pytest.fixture
def flat():
    rng = np.random.default_rng(0)
    reference = np.full((64, 64), 10.0)
    noisy = reference + rng.normal(0, 1.0, reference.shape)
    return reference, noisy


def test_the_reference_itself_has_no_hot_spot(flat):
    reference, noisy = flat
    assert false_hot_spots(reference, reference, noisy) == 0


def test_an_invented_blob_is_one_hot_spot(flat):
    reference, noisy = flat
    restored = reference.copy()
    restored[20:25, 30:35] += 8.0  # 8 sigma over 25 pixels
    labels, n = hot_spot_map(restored, reference, noisy)
    assert n == 1
    assert labels[22, 32] > 0 and labels[0, 0] == 0


def test_two_blobs_count_twice_and_cold_spots_not_at_all(flat):
    reference, noisy = flat
    restored = reference.copy()
    restored[5:9, 5:9] += 8.0
    restored[40:44, 40:44] += 8.0
    restored[20:30, 50:60] -= 8.0  # a cold spot is not a hot one
    assert false_hot_spots(restored, reference, noisy) == 2


def test_spots_smaller_than_min_area_are_ignored(flat):
    reference, noisy = flat
    restored = reference.copy()
    restored[10, 10] += 50.0
    restored[11, 11] += 50.0  # diagonal neighbours: one component of 2 pixels
    assert false_hot_spots(restored, reference, noisy, min_area=4) == 0
    assert false_hot_spots(restored, reference, noisy, min_area=2) == 1


def test_threshold_follows_the_local_noise():
    """The same +4 bump is a spot where the input is clean (sigma 0.5) but not where it is noisy (sigma 4)."""
    rng = np.random.default_rng(1)
    reference = np.zeros((64, 128))
    sigma = np.where(np.arange(128)[None, :] < 64, 0.5, 4.0) * np.ones((64, 1))
    noisy = reference + rng.normal(0, 1, reference.shape) * sigma
    restored = reference.copy()
    restored[30:35, 20:25] += 4.0
    restored[30:35, 100:105] += 4.0
    labels, n = hot_spot_map(restored, reference, noisy, window=15)
    assert n == 1 and labels[32, 22] > 0 and labels[32, 102] == 0
    assert local_noise(noisy, reference)[32, 10] < local_noise(noisy, reference)[32, 120]


def test_mask_restricts_the_search(flat):
    reference, noisy = flat
    restored = reference.copy()
    restored[20:25, 30:35] += 8.0
    mask = np.zeros_like(reference, bool)
    assert false_hot_spots(restored, reference, noisy, mask=mask) == 0


def _lesion_image():
    reference = np.full((48, 48), 2.0)
    lesion = np.zeros_like(reference, bool)
    lesion[10:16, 10:16] = True
    lesion[30:36, 30:36] = True
    reference[lesion] = 6.0  # true contrast 4
    return reference, lesion


def test_contrast_recovery_is_one_for_the_reference_and_zero_when_erased():
    reference, lesion = _lesion_image()
    np.testing.assert_allclose(contrast_recovery(reference, reference, lesion), [1.0, 1.0])
    erased = np.full_like(reference, 2.0)
    np.testing.assert_allclose(contrast_recovery(erased, reference, lesion), [0.0, 0.0])


def test_contrast_recovery_measures_each_lesion():
    reference, lesion = _lesion_image()
    restored = reference.copy()
    restored[10:16, 10:16] = 4.0  # half the contrast on the first lesion
    restored[30:36, 30:36] = 10.0  # double on the second
    np.testing.assert_allclose(contrast_recovery(restored, reference, lesion), [0.5, 2.0])
    # an offset of the whole image does not change contrast
    np.testing.assert_allclose(contrast_recovery(restored + 3.0, reference, lesion), [0.5, 2.0])


def test_contrast_recovery_without_lesions_is_empty():
    reference, _ = _lesion_image()
    assert contrast_recovery(reference, reference, np.zeros_like(reference, bool)).size == 0
