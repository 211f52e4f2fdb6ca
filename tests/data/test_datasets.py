"""Datasets: pairing, alignment of patches, determinism, formats, and start-up errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medir.data.augment import dihedral, random_dihedral
from medir.data.datasets import (PairSource, PatchDataset, StepSampler, ValDataset, build_train_set, build_val_set,
                                 load_slices)
from medir.data.intensity import get_preset
from medir.engine.config import DatasetConfig
from medir.errors import ConfigError


def noisy(task, x, *, generator=None, sigma=20.0):
    """Stand-in simulator (the contract of medir.physics.simulate): additive Gaussian noise."""
    assert task == "toy-noise"
    return x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def halve(task, x, *, generator=None):
    """Stand-in 2x super-resolution simulator: 2x2 mean pooling (noise-free)."""
    return torch.nn.functional.avg_pool2d(x, 2)


def textured(h=48, w=40, seed=0):
    return np.random.default_rng(seed).normal(0, 100, (h, w)).astype(np.float32)


@pytest.fixture()
def paired_root(tmp_path):
    for d in ("lq", "hq"):
        (tmp_path / d).mkdir()
    for i in range(3):
        hq = textured(seed=i)
        np.save(tmp_path / "hq" / f"img{i}.npy", hq)
        np.save(tmp_path / "lq" / f"img{i}.npy", 0.5 * hq + 7.0)  # a known pixelwise relation
    return tmp_path


def test_paired_patches_stay_aligned_through_crop_and_augment(paired_root):
    cfg = DatasetConfig(kind="paired", root=str(paired_root), preset="mr", patch_size=16, augment=True)
    ds = build_train_set(cfg, seed=3)
    preset = get_preset("mr")
    for index in range(20):
        s = ds[index]
        assert s["lq"].shape == s["hq"].shape == (1, 16, 16)
        lq = preset.from_network(s["lq"].numpy(), (float(s["offset"]), float(s["span"])))
        hq = preset.from_network(s["hq"].numpy(), (float(s["offset"]), float(s["span"])))
        np.testing.assert_allclose(lq, 0.5 * hq + 7.0, atol=1e-3)


def test_super_resolution_patches_align_with_the_downsampled_image(tmp_path):
    (tmp_path / "hq").mkdir()
    for i in range(2):
        np.save(tmp_path / "hq" / f"v{i}.npy", textured(64, 64, seed=i))
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path / "hq"), task="sr", preset="mr", patch_size=8)
    ds = build_train_set(cfg, seed=0, simulate=halve)
    assert ds.source.scale == 2
    for index in range(10):
        s = ds[index]
        assert s["lq"].shape == (1, 8, 8) and s["hq"].shape == (1, 16, 16)
        torch.testing.assert_close(torch.nn.functional.avg_pool2d(s["hq"][None], 2)[0], s["lq"], atol=1e-5, rtol=0)


def test_samples_are_a_pure_function_of_seed_and_index(tmp_path):
    np.save(tmp_path / "a.npy", textured())
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path), task="toy-noise", preset="ct", patch_size=16)
    a = build_train_set(cfg, seed=1, simulate=noisy)
    b = build_train_set(cfg, seed=1, simulate=noisy)
    other = build_train_set(cfg, seed=2, simulate=noisy)
    for index in (0, 5, 1234567):
        torch.testing.assert_close(a[index], b[index], rtol=0, atol=0)
    assert not torch.equal(a[5]["lq"], a[6]["lq"])
    assert not torch.equal(a[5]["lq"], other[5]["lq"])
    # same hq patch position and noise realisation: the residual is the simulator's noise, sigma 20 HU
    residual = (a[7]["lq"] - a[7]["hq"]) * a[7]["span"]
    assert 12 < float(residual.std()) < 28


def test_simulated_data_reads_volumes_dicom_and_png(tmp_path, ct_small):
    import nibabel as nib
    from PIL import Image as PILImage

    volume = np.stack([textured(32, 32, seed=k) for k in range(5)])
    volume[0] = 0.0  # a flat slice that min_std drops
    nib.save(nib.Nifti1Image(np.moveaxis(volume, 0, -1), np.eye(4)), tmp_path / "vol.nii.gz")
    PILImage.fromarray((np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)).save(tmp_path / "g.png")
    (tmp_path / "ct.dcm").write_bytes(ct_small.read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path), task="toy-noise", preset="ct", patch_size=16,
                        min_std=1.0)
    ds = build_train_set(cfg, seed=0, simulate=noisy)
    names = ds.source.slices.names
    assert sum(n.startswith("vol.nii.gz") for n in names) == 4  # 5 slices, the flat one dropped
    assert any(n.startswith("ct.dcm") for n in names) and any(n.startswith("g.png") for n in names)
    assert len(names) == 6
    assert all(torch.isfinite(ds[i]["lq"]).all() for i in range(8))


def test_rescale_maps_stored_values_to_physical_units(tmp_path):
    np.save(tmp_path / "a.npy", np.full((16, 16), 100.0, np.float32))
    slices = load_slices([(tmp_path / "a.npy",)], rescale=(2.0, -1000.0))
    np.testing.assert_allclose(slices.hq[0], -800.0)


def test_manifest_lists_pairs_relative_to_itself(paired_root):
    (paired_root / "pairs.csv").write_text("lq,hq\nlq/img1.npy,hq/img1.npy\nlq/img2.npy,hq/img2.npy\n")
    cfg = DatasetConfig(kind="paired", manifest=str(paired_root / "pairs.csv"), preset="mr", patch_size=16)
    ds = build_train_set(cfg, seed=0)
    assert ds.source.slices.names == ["img1.npy[0]", "img2.npy[0]"]


@pytest.mark.parametrize("problem", ["missing_root", "unmatched", "patch_too_large", "no_lq_folder", "bad_manifest"])
def test_bad_data_fails_at_start_with_one_line(paired_root, problem):
    cfg = DatasetConfig(kind="paired", root=str(paired_root), preset="mr", patch_size=16)
    if problem == "missing_root":
        cfg.root = str(paired_root / "nope")
    elif problem == "unmatched":
        np.save(paired_root / "hq" / "extra.npy", textured())
    elif problem == "patch_too_large":
        cfg.patch_size = 41  # images are 48 x 40
    elif problem == "no_lq_folder":
        (paired_root / "lq" / "img0.npy").unlink()
        for p in (paired_root / "lq").iterdir():
            p.unlink()
        (paired_root / "lq").rmdir()
    else:
        (paired_root / "m.csv").write_text("input,target\na,b\n")
        cfg.root, cfg.manifest = None, str(paired_root / "m.csv")
    with pytest.raises(ConfigError) as err:
        build_train_set(cfg, seed=0)
    assert "\n" not in str(err.value)
    assert {"missing_root": "not a folder", "unmatched": "no partner", "patch_too_large": "larger than",
            "no_lq_folder": "does not exist", "bad_manifest": "lacks columns"}[problem] in str(err.value)


def test_validation_set_is_fixed_whole_slices(tmp_path):
    for i in range(5):
        np.save(tmp_path / f"{i}.npy", textured(40, 36, seed=i))
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path), task="toy-noise", preset="ct", patch_size=None,
                        max_items=3, seed=9)
    a, b = build_val_set(cfg, simulate=noisy), build_val_set(cfg, simulate=noisy)
    assert len(a) == 3 and a[0]["lq"].shape == (1, 40, 36)
    for i in range(3):
        torch.testing.assert_close(a[i], b[i], rtol=0, atol=0)


def test_step_sampler_splits_the_global_batch_between_ranks():
    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    single = take(StepSampler(4, start=3), 12)
    r0 = take(StepSampler(2, rank=0, world_size=2, start=3), 6)
    r1 = take(StepSampler(2, rank=1, world_size=2, start=3), 6)
    for b in range(3):
        assert sorted(r0[2 * b : 2 * b + 2] + r1[2 * b : 2 * b + 2]) == single[4 * b : 4 * b + 4]
    assert single[0] == 12  # batch 3 starts after 3 x 4 samples


def test_dihedral_moves_masks_with_images_and_covers_all_eight():
    image = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    mask = (image[0] % 5 == 0).astype(np.int64)
    seen = set()
    for k in range(4):
        for flip in (False, True):
            out = dihedral(image, k, flip)
            np.testing.assert_array_equal(dihedral(mask, k, flip), (out[0] % 5 == 0).astype(np.int64))
            seen.add(out.tobytes())
    assert len(seen) == 8
    rng = np.random.default_rng(0)
    sample = random_dihedral({"lq": image, "mask": mask}, rng)
    np.testing.assert_array_equal(sample["mask"], (sample["lq"][0] % 5 == 0).astype(np.int64))


def test_pair_source_rejects_inconsistent_scales():
    from medir.data.datasets import Slices

    slices = Slices(hq=[np.zeros((1, 32, 32), np.float32)], lq=[np.zeros((1, 15, 16), np.float32)], names=["x"],
                    pixel_mm=[None])
    with pytest.raises(ConfigError, match="scale factor"):
        PairSource(slices)


def test_per_image_preset_scales_from_the_low_quality_slice(tmp_path):
    np.save(tmp_path / "a.npy", np.abs(textured(32, 32)) + 10)
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path), task="toy-noise", preset="nm", patch_size=None)
    val = build_val_set(cfg, simulate=noisy)
    item = val[0]
    lq_phys = item["lq"] * item["span"] + item["offset"]
    assert float(item["span"]) == pytest.approx(float(np.percentile(lq_phys.numpy(), 99.5)), rel=1e-4)
    assert isinstance(val, ValDataset) and isinstance(build_train_set(
        DatasetConfig(kind="simulated", root=str(tmp_path), task="toy-noise", preset="nm", patch_size=8),
        seed=0, simulate=noisy), PatchDataset)


def test_simulated_ct_uses_each_files_pixel_size(tmp_path):
    """ct-lowdose noise depends on the pixel size: the dataset passes the file's own spacing."""
    from medir.data.datasets import PairSource, load_slices
    from medir.physics import simulate

    calls = []

    def spy(task, x, **params):
        calls.append(params.get("pixel_size_mm"))
        return simulate(task, x, **params)

    hq = np.full((32, 32), 40.0, np.float32)
    np.savez(tmp_path / "fine.npz", image=hq, spacing=np.array([0.5, 0.5]))
    np.save(tmp_path / "plain.npy", hq)
    slices = load_slices([(tmp_path / "fine.npz",), (tmp_path / "plain.npy",)])
    source = PairSource(slices, task="ct-lowdose", params={"dose": 0.25}, simulate=spy)
    source.pair(0, torch.Generator().manual_seed(0))
    source.pair(1, torch.Generator().manual_seed(0))
    assert calls[-2:] == [0.5, None]
    fixed = PairSource(slices, task="ct-lowdose", params={"dose": 0.25, "pixel_size_mm": 2.0}, simulate=spy)
    fixed.pair(0, torch.Generator().manual_seed(0))
    assert calls[-1] == 2.0


def test_lossy_dicom_target_is_refused_unless_allowed(tmp_path):
    from pydicom.data import get_testdata_file

    lossy = get_testdata_file("693_J2KI.dcm")  # JPEG 2000 at ~338:1, LossyImageCompression 01
    (tmp_path / "hq").mkdir()
    (tmp_path / "hq" / "lossy.dcm").write_bytes(open(lossy, "rb").read())
    cfg = DatasetConfig(kind="simulated", root=str(tmp_path / "hq"), task="toy-noise", preset="ct", patch_size=16)
    with pytest.raises(ConfigError) as err:
        build_train_set(cfg, seed=0, simulate=noisy)
    assert "lossy" in str(err.value) and "allow_lossy" in str(err.value) and "\n" not in str(err.value)
    cfg.allow_lossy = True
    pytest.importorskip("PIL.Jpeg2KImagePlugin")
    try:
        ds = build_train_set(cfg, seed=0, simulate=noisy)
    except ConfigError as e:  # no JPEG 2000 decoder installed: the refusal above is what this test is about
        pytest.skip(f"cannot decode JPEG 2000 here: {e}")
    assert ds[0]["lq"].shape == (1, 16, 16)


def test_ct_patches_have_the_noise_of_their_slice(tmp_path):
    """simulate_on: patch must give the same CT noise as simulating the whole slice and cropping."""
    from medir.physics import simulate

    n, pixel = 96, 2.0
    c = np.arange(n) - n / 2 + 0.5
    body = np.where(np.hypot(c[:, None], c[None, :]) < 0.42 * n, 0.0, -1000.0).astype(np.float32)
    np.savez(tmp_path / "water.npz", image=body, spacing=np.array([pixel, pixel]))
    params = {"dose": 0.25, "scan_dose": None, "detector_mm": 2.0}
    stds = {}
    for mode in ("slice", "patch"):
        cfg = DatasetConfig(kind="simulated", root=str(tmp_path), task="ct-lowdose", preset="ct", patch_size=24,
                            params=params, simulate_on=mode, augment=False, cache_draws=3)
        ds = build_train_set(cfg, seed=0, simulate=simulate)
        res = []
        for index in range(12):
            s = ds[index]
            lq, hq = ((s[k] * s["span"] + s["offset"]).numpy() for k in ("lq", "hq"))
            inside = hq > -500
            if inside.sum() > 100:
                res.append((lq - hq)[inside].std())
        stds[mode] = float(np.mean(res))
    assert stds["patch"] / stds["slice"] == pytest.approx(1.0, abs=0.10)
    assert 1.0 < stds["slice"] < 200.0


def test_several_roots_pool_their_pairs_and_a_repeated_root_is_refused(paired_root, tmp_path):
    from medir.data.datasets import dataset_files
    from medir.engine.config import from_dict

    other = tmp_path / "other"
    for d in ("lq", "hq"):
        (other / d).mkdir(parents=True)
    np.save(other / "hq" / "img0.npy", textured(32, 32, seed=9))  # same name as in paired_root: both are kept
    np.save(other / "lq" / "img0.npy", textured(32, 32, seed=9))
    cfg = from_dict({"data": {"train": {"root": [str(paired_root), str(other)], "patch_size": 16}}}).data.train
    files = dataset_files(cfg, "data.train")
    assert [p.parent.parent for _, p in files] == [paired_root] * 3 + [other]
    assert len(build_train_set(cfg, seed=0).source.slices.hq) == 4
    twice = from_dict({"data": {"train": {"root": [str(other), str(other / ".." / "other")]}}}).data.train
    with pytest.raises(ConfigError, match="twice"):
        dataset_files(twice, "data.train")
    with pytest.raises(ConfigError, match="non-empty list"):
        from_dict({"data": {"train": {"root": []}}})
