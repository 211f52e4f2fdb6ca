import numpy as np
import pytest

from medir.priors.base import check_tiling, paint_masks, relabel, window_to_unit


def test_paint_masks_smaller_wins_and_uncovered_is_zero():
    big = np.zeros((8, 8), bool)
    big[:, :6] = True
    small = np.zeros((8, 8), bool)
    small[2:4, 2:4] = True
    part = paint_masks(np.stack([small, big]), scores=np.array([0.9, 0.5]))
    lab = part.labels
    assert lab[3, 3] != lab[0, 0]  # the small mask overwrote the big one
    assert set(np.unique(lab[small])) == {lab[3, 3]}
    assert (lab[:, 6:] == 0).all()  # covered by no mask -> background label 0
    assert part.num_regions == 3
    assert part.confidence[lab[3, 3]] == pytest.approx(0.9)
    assert part.confidence[lab[0, 0]] == pytest.approx(0.5)
    assert np.isnan(part.confidence[0])


def test_paint_masks_hidden_mask_vanishes_and_labels_are_consecutive():
    a = np.zeros((6, 6), bool)
    a[:3] = True
    b = a.copy()  # same area, painted after a: a disappears entirely
    c = np.ones((6, 6), bool)
    part = paint_masks(np.stack([a, b, c]))
    assert sorted(np.unique(part.labels)) == [1, 2]  # full cover: label 0 empty, two visible regions
    assert paint_masks(np.zeros((0, 5, 7), bool)).labels.shape == (5, 7)


def test_relabel_and_tiling_checks():
    lab = np.array([[5, 5, 9], [0, 9, 42]])
    out = relabel(lab)
    assert out.tolist() == [[1, 1, 2], [0, 2, 3]]
    assert relabel(np.array([[3, 7]])).tolist() == [[1, 2]]  # 0 stays reserved for background
    check_tiling(out, (2, 3))
    with pytest.raises(ValueError):
        check_tiling(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError):
        check_tiling(np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        check_tiling(out, (3, 3))


def test_ct_window_and_count_scaling():
    hu = np.array([[-1000.0, -160.0, 40.0, 240.0, 2000.0]])
    assert window_to_unit(hu, modality="CT")[0].tolist() == pytest.approx([0, 0, 0.5, 1, 1])
    counts = np.random.default_rng(0).poisson(50, (32, 32)).astype(np.float32)
    unit = window_to_unit(counts, modality="NM")
    assert unit.min() >= 0 and unit.max() <= 1 and unit.std() > 0.05


def test_batch_labels_segments_each_image():
    import torch

    from medir.priors.base import batch_labels
    from medir.priors.classical import ClassicalSegmenter

    images = torch.rand(3, 1, 32, 32) * 1000
    out = batch_labels(ClassicalSegmenter(), images, modality="MR")
    assert out.shape == (3, 32, 32) and out.dtype == torch.int64
    assert torch.equal(out[1], torch.from_numpy(ClassicalSegmenter()(images[1, 0].numpy(), modality="MR").labels).long())
