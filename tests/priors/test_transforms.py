import numpy as np
import torch

from medir.priors.transforms import crop, downsample_labels, flip, random_pair, resize_labels, rot90


def _pair(h=12, w=10):
    labels = np.arange(h * w).reshape(h, w) % 7
    return labels.astype(np.float32) * 10.0, labels


def test_labels_follow_image_through_random_geometry():
    image, labels = _pair()
    rng = np.random.default_rng(3)
    for _ in range(20):
        im, lab = random_pair(image, labels, size=(6, 5), rng=rng)
        assert np.array_equal(im, lab * 10.0)  # the same crop, flips and rotation on both


def test_torch_and_numpy_agree():
    image, labels = _pair()
    t = torch.from_numpy(labels)
    assert np.array_equal(flip(t, axis=-1).numpy(), flip(labels, axis=-1))
    assert np.array_equal(rot90(t, k=3).numpy(), rot90(labels, k=3))
    assert np.array_equal(crop(t, top=2, left=1, height=4, width=3).numpy(), labels[2:6, 1:4])
    assert np.array_equal(resize_labels(t, (5, 17)).numpy(), resize_labels(labels, (5, 17)))


def test_resize_is_nearest_only():
    labels = np.random.default_rng(0).integers(0, 4, (16, 16))
    up = resize_labels(labels, (37, 29))
    assert set(np.unique(up)) <= set(np.unique(labels))  # no interpolated values
    assert up.dtype == labels.dtype
    blocks = np.kron(np.arange(16).reshape(4, 4), np.ones((4, 4), int))
    assert np.array_equal(downsample_labels(blocks, 4), np.arange(16).reshape(4, 4))  # one sample inside each block
    batch = torch.from_numpy(np.stack([blocks, blocks]))[:, None]
    assert downsample_labels(batch, 2).shape == (2, 1, 8, 8)
