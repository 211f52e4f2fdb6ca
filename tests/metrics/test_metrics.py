import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medir.metrics import nmse, per_region, psnr, rmse, ssim


@pytest.fixture()
def pair():
    rng = np.random.default_rng(0)
    target = rng.uniform(-300, 400, size=(64, 72))
    return target + rng.normal(0, 25, size=target.shape), target


def test_psnr_and_ssim_match_scikit_image(pair):
    pred, target = pair
    r = target.max() - target.min()
    assert psnr(pred, target, data_range="target") == pytest.approx(peak_signal_noise_ratio(target, pred, data_range=r))
    ref = structural_similarity(target, pred, data_range=400, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(pred, target, data_range=400) == pytest.approx(ref, abs=1e-9)


def test_window_clips_before_measuring(pair):
    pred, target = pair
    windowed = psnr(pred, target, data_range=400, window=(-160, 240))
    manual = peak_signal_noise_ratio(np.clip(target, -160, 240), np.clip(pred, -160, 240), data_range=400)
    assert windowed == pytest.approx(manual)


def test_nmse_rmse_definitions(pair):
    pred, target = pair
    assert nmse(pred, target) == pytest.approx(((pred - target) ** 2).sum() / (target**2).sum())
    assert rmse(pred, target) == pytest.approx(np.sqrt(((pred - target) ** 2).mean()))


def test_batch_gives_per_image_values_and_torch_input(pair):
    pred, target = pair
    p = torch.tensor(np.stack([pred, target]))[:, None]
    t = torch.tensor(np.stack([target, target]))[:, None]
    values = psnr(p, t, data_range="target", reduce="none")
    assert values.shape == (2,) and np.isinf(values[1]) is False or values[1] > 150
    assert ssim(t, t, data_range=400) == pytest.approx(1.0)


def test_data_range_policy_must_be_given(pair):
    with pytest.raises(TypeError):
        psnr(*pair)  # no silent default


def test_per_region_values_follow_masks(pair):
    pred, target = pair
    labels = np.zeros(target.shape, int)
    labels[:, 36:] = 1
    pred = pred.copy()
    pred[:, 36:] = target[:, 36:]  # region 1 perfect
    values = per_region("rmse", pred, target, labels)
    assert values[1] == pytest.approx(0.0) and values[0] > 10
    masked = rmse(pred, target, mask=labels == 0)
    assert masked == pytest.approx(values[0])
