"""Lesion augmentation: the same disk in input and target, in tissue, within its bounds; refused where invalid."""

from __future__ import annotations

import numpy as np
import pytest

from medir.data.datasets import build_train_set
from medir.data.intensity import get_preset
from medir.data.lesions import LesionAugment, add_lesions, disk
from medir.engine.config import DatasetConfig
from medir.errors import ConfigError


def test_disk_is_one_inside_zero_outside_and_has_the_area_of_its_radius():
    d = disk((41, 41), (20.0, 20.0), 6.0)
    assert d[20, 20] == 1.0 and d[20, 27] == 0.0 and d[0, 0] == 0.0
    assert d.sum() == pytest.approx(np.pi * 36, rel=0.03)


def test_lesions_are_added_identically_to_input_and_target_inside_the_tissue_window():
    hq = np.full((1, 64, 64), -1000.0, dtype=np.float32)
    hq[:, 16:48, 16:48] = 40.0  # soft tissue in the middle, air around it
    noise = np.random.default_rng(0).normal(0, 30, hq.shape).astype(np.float32)
    lq = hq + noise
    seen = 0
    for seed in range(40):
        out_lq, out_hq = add_lesions(lq, hq, np.random.default_rng(seed), prob=1.0, contrast=(10.0, 60.0),
                                     radius=(2.0, 4.0), tissue=(-160.0, 240.0), count=1)
        bump = out_hq - hq
        np.testing.assert_allclose(out_lq - lq, bump, atol=1e-4)
        assert 10.0 - 1e-3 <= np.abs(bump).max() <= 60.0 + 1e-3
        w = np.abs(bump[0])
        yy, xx = np.indices(w.shape)
        centre = ((w * yy).sum() / w.sum(), (w * xx).sum() / w.sum())  # the centroid of a whole disk is its centre
        assert 16 - 1e-3 <= centre[0] <= 47 + 1e-3 and 16 - 1e-3 <= centre[1] <= 47 + 1e-3  # on tissue, not in air
        seen += bump.max() > 0
    assert 0 < seen < 40  # both signs occur
    assert hq[0, 0, 0] == -1000.0 and np.array_equal(lq, hq + noise)  # inputs untouched


def test_no_lesion_without_probability_or_tissue():
    hq = np.zeros((8, 8), dtype=np.float32)
    rng = np.random.default_rng(0)
    assert add_lesions(hq, hq, rng, prob=0.0, contrast=(10, 20), radius=(1, 2), tissue=(-1, 1))[1] is hq
    assert rng.random() == np.random.default_rng(0).random()  # prob 0 draws nothing: old recipes keep their samples
    out = add_lesions(hq, hq, np.random.default_rng(0), prob=1.0, contrast=(10, 20), radius=(1, 2), tissue=(5, 9))
    assert np.array_equal(out[1], hq)


def test_config_turns_lesions_on_for_ct_and_refuses_counts_and_bad_settings(tmp_path):
    for d in ("lq", "hq"):
        (tmp_path / d).mkdir()
    hq = np.full((48, 48), 40.0, dtype=np.float32)
    np.save(tmp_path / "hq" / "a.npy", hq)
    np.save(tmp_path / "lq" / "a.npy", hq)
    cfg = DatasetConfig(kind="paired", root=str(tmp_path), preset="ct-soft", patch_size=32, lesion_prob=1.0,
                        augment=False)
    ds = build_train_set(cfg, seed=0)
    preset = get_preset("ct-soft")
    s = ds[0]
    lq, hq_out = (preset.from_network(s[k].numpy(), (float(s["offset"]), float(s["span"]))) for k in ("lq", "hq"))
    assert np.abs(hq_out - 40.0).max() >= 10.0 - 1e-3 and np.allclose(lq, hq_out, atol=1e-3)
    with pytest.raises(ConfigError, match="additive noise"):
        build_train_set(DatasetConfig(kind="paired", root=str(tmp_path), preset="nm", patch_size=32,
                                      lesion_prob=0.5), seed=0)
    with pytest.raises(ConfigError, match="lesion_prob"):
        LesionAugment(prob=1.5)
    with pytest.raises(ConfigError, match="lesion_prob"):
        build_train_set(DatasetConfig(kind="paired", root=str(tmp_path), preset="ct-soft", patch_size=32,
                                      lesion_prob=-0.1), seed=0)
    with pytest.raises(ConfigError, match="lesion_radius"):
        LesionAugment(prob=0.5, radius=(4.0, 2.0))
