"""MFdiff: the Table 5 variants, the fused feature computed once, training stages, scores, model files, CLI."""

import nibabel as nib
import numpy as np
import pytest
import torch

from medir.cli import main
from medir.methods.mfdiff import VARIANTS, build
from medir.methods.mfdiff.data import PairSet
from medir.methods.mfdiff.evaluate import lesion_contrast_recovery, uncertainty_correlation
from medir.methods.mfdiff.modelfile import load_network, save_network
from medir.methods.mfdiff.train import fit, single_stage, two_stage

MICRO = {"width": 8, "fusion_width": 4, "fusion_channels": 2, "timesteps": 50}


def pairs(n: int = 4, size: int = 16, seed: int = 0) -> PairSet:
    g = torch.Generator().manual_seed(seed)
    high = torch.rand(n, 1, size, size, generator=g) * 4
    return PairSet(high + 0.5 * torch.randn(high.shape, generator=g), high / 4, high,
                   (torch.rand(n, 1, size, size, generator=g) > 0.9).float())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_and_restores(variant):
    torch.manual_seed(0)
    net = build(variant, **MICRO)
    d = pairs()
    loss = net.loss(d.low, d.mr, d.high, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)
    mean, std = net.restore(d.low[:1, :, :15, :13], d.mr[:1, :, :15, :13], steps=3, samples=2)
    assert mean.shape == std.shape == (1, 1, 15, 13) and torch.isfinite(mean).all()
    assert (std.abs().sum() > 0) == VARIANTS[variant]["diffusion"]  # only diffusion has a spread


def test_fused_feature_is_computed_once_per_image():
    net = build("mfdiff", **MICRO)
    calls = []
    net.fusion.register_forward_hook(lambda *a: calls.append(1))
    denoiser_calls = []
    net.denoiser.register_forward_hook(lambda *a: denoiser_calls.append(1))
    d = pairs(1)
    net.restore(d.low, d.mr, steps=7, samples=3)
    assert len(calls) == 1 and len(denoiser_calls) == 21


def test_mr_reaches_the_output_only_when_used():
    torch.manual_seed(0)
    d = pairs(1)
    other_mr = d.mr.flip(-1)  # (not rand_like: pairs() draws d.mr from the same seed)
    for variant in ("unet", "munet", "cmunet"):
        net = build(variant, **MICRO).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        a, b = net(d.low, d.mr), net(d.low, other_mr)
        assert torch.allclose(a, b) == (variant == "unet"), variant


def test_missing_mr_and_unknown_names_are_errors():
    with pytest.raises(ValueError, match="needs the MR"):
        build("cmunet", **MICRO)(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="variant"):
        build("nope")
    with pytest.raises(ValueError, match="size"):
        build("mfdiff", "huge")


def test_output_in_input_units_whatever_the_scale():
    # per-slice normalisation: restoring 1000 x the input gives 1000 x the output
    net = build("cmunet", **MICRO).eval()
    d = pairs(1)
    torch.testing.assert_close(net(1000 * d.low, d.mr), 1000 * net(d.low, d.mr), rtol=1e-4, atol=1e-3)


def test_fit_lowers_the_loss_and_stages_run():
    torch.manual_seed(0)
    d = pairs(8)
    net = build("munet", **MICRO)
    losses = fit(net, d, steps=60, batch=4, lr=3e-3, seed=0)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    before = [p.clone() for p in net.parameters()]
    two_stage(net, d, pairs(2, seed=1), external_steps=2, internal_steps=2, lr=1e-3)
    single_stage(net, d, pairs(2, seed=1), steps=2, lr=1e-3)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_lesion_contrast_recovery_and_uncertainty_correlation():
    ref = torch.ones(2, 1, 16, 16)
    lesion = torch.zeros_like(ref)
    lesion[:, :, 6:9, 6:9] = 1
    ref = ref + 2 * lesion
    torch.testing.assert_close(lesion_contrast_recovery(ref, ref, lesion), torch.ones(2))
    torch.testing.assert_close(lesion_contrast_recovery(torch.ones_like(ref), ref, lesion), torch.zeros(2))
    half = torch.ones_like(ref) + lesion
    torch.testing.assert_close(lesion_contrast_recovery(half, ref, lesion), torch.full((2,), 0.5))
    err = torch.rand(1, 1, 8, 8)
    assert uncertainty_correlation(2 * err, err, torch.zeros_like(err)) == pytest.approx(1.0)
    assert uncertainty_correlation(-err, err, torch.zeros_like(err)) == pytest.approx(-1.0)


def test_model_file_roundtrip(tmp_path):
    net = build("mfdiff", **MICRO).eval()
    save_network(tmp_path / "m", net)
    back, card = load_network(tmp_path / "m")
    assert card.arch == "mfdiff" and card.modalities == ["PT"]
    d = pairs(1)
    torch.testing.assert_close(back.restore(d.low, d.mr, steps=3, generator=torch.Generator().manual_seed(0))[0],
                               net.restore(d.low, d.mr, steps=3, generator=torch.Generator().manual_seed(0))[0])


@pytest.fixture(scope="module")
def mfdiff_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mfdiff"
    torch.manual_seed(0)
    save_network(path, build("mfdiff", **MICRO))
    return path


def _nifti(path, array, affine=None):
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


def test_restore_with_aux_writes_image_and_uncertainty(mfdiff_model, tmp_path):
    rng = np.random.default_rng(0)
    pet = _nifti(tmp_path / "pet.nii.gz", rng.random((12, 10, 3)) * 5)
    mr = _nifti(tmp_path / "mr.nii.gz", rng.random((12, 10, 3)))
    out = tmp_path / "out" / "restored.nii.gz"
    args = ["restore", str(pet), "--aux", str(mr), "--model", str(mfdiff_model), "--modality", "PT",
            "-o", str(out), "--steps", "3"]
    assert main(args + ["--uncertainty", "--samples", "2"]) == 0
    img, unc = nib.load(str(out)), nib.load(str(tmp_path / "out" / "restored_uncertainty.nii.gz"))
    assert img.shape == unc.shape == (12, 10, 3)
    assert np.isfinite(img.get_fdata()).all() and (unc.get_fdata() >= 0).all() and unc.get_fdata().max() > 0


def test_restore_aux_refuses_bad_pairs_in_one_line(mfdiff_model, tmp_path, refused_in_one_line):
    rng = np.random.default_rng(0)
    pet = _nifti(tmp_path / "pet.nii.gz", rng.random((12, 10, 3)))
    other_shape = _nifti(tmp_path / "mr_small.nii.gz", rng.random((11, 10, 3)))
    moved = _nifti(tmp_path / "mr_moved.nii.gz", rng.random((12, 10, 3)), np.diag([2.0, 1.0, 1.0, 1.0]))
    base = ["restore", str(pet), "--modality", "PT", "-o", str(tmp_path / "o.nii.gz")]
    cases = [(base + ["--aux", str(other_shape), "--model", str(mfdiff_model)], "resample"),
             (base + ["--aux", str(moved), "--model", str(mfdiff_model)], "resample"),
             (base + ["--aux", str(other_shape), "--model", str(mfdiff_model), "--steps", "0"], "--steps"),
             (base + ["--steps", "3"], "--aux"),
             (base + ["--aux", str(moved), "--model", str(mfdiff_model), "--uncertainty", "--samples", "1"], "two")]
    refused_in_one_line(cases)
    assert not (tmp_path / "o.nii.gz").exists()


def test_recipes_load_and_unknown_keys_are_errors(tmp_path):
    from pathlib import Path

    from medir.errors import ConfigError
    from medir.methods.mfdiff.recipe import load_recipe

    root = Path(__file__).resolve().parents[2] / "configs" / "mfdiff"
    tiny, base = load_recipe(root / "tiny.yaml"), load_recipe(root / "base.yaml")
    assert tiny.size == "tiny" and base.external.steps == 50000 and base.data.size == 192
    bad = tmp_path / "bad.yaml"
    bad.write_text("variant: mfdiff\nexternal: {step: 3}\n")
    with pytest.raises(ConfigError, match="step"):
        load_recipe(bad)


@pytest.mark.slow  # simulates 4 phantom slices with OSEM (about 20 s on a busy CPU)
def test_recipe_trains_and_writes_a_model_file(tmp_path):
    from medir.methods.mfdiff.recipe import DataRecipe, Recipe, StageRecipe, run_recipe

    stage = StageRecipe(steps=2, batch=2, crop=16)
    recipe = Recipe(network=MICRO, data=DataRecipe(size=32, external_subjects=1, internal_subjects=1, slices=2),
                    external=stage, internal=stage)
    path = run_recipe(recipe, tmp_path / "m")
    net, card = load_network(path)
    assert card.training["stages"]["internal"]["pairs"] == 2 and net.diffusion
