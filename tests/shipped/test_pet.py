"""The shipped low-count PET models: pet-lowcount-nafnet (PET alone) and pet-mr-nafnet (PET guided by its MR).

The held-out example ``pet_heldout_s20001_z076.npz`` is one stored test slice of ``python -m medir.data.petmr
data/pet`` (test subject 20001, slice 76, never seen in training; MFdiff's low-count protocol), saved with
``np.savez_compressed(PATH, **{k: np.load(f"data/pet/test/{k}/s20001_z076_r0.npy")[0] for k in ("lq", "hq", "mr")})``
(simulating it here would take most of a minute on a busy CPU). ``pet_heldout_4mm_s20001_z076.npz`` is the same item
from ``python -m medir.data.petmr data/pet4mm --size 64`` (4 mm pixels), saved the same way.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medir.cli import main
from medir.engine.modelfile import load_card, load_model, shipped_by_modality, shipped_guided, shipped_models
from medir.metrics import psnr, ssim

PET_ONLY, PET_MR = "pet-lowcount-nafnet", "pet-mr-nafnet"
EXAMPLE = Path(__file__).with_name("pet_heldout_s20001_z076.npz")
EXAMPLE_4MM = Path(__file__).with_name("pet_heldout_4mm_s20001_z076.npz")


@pytest.fixture(scope="module")
def held_out():
    """``(lq, hq, mr)``, each ``(128, 128)`` float32 (activity a.u. for PET, 0..1 for the T1 MR)."""
    with np.load(EXAMPLE) as d:
        return d["lq"], d["hq"], d["mr"]


def _scores(x, ref):
    return psnr(x, ref, data_range="target"), ssim(x, ref, data_range="target")


def test_models_ship_with_cards_that_say_what_they_take():
    assert {PET_ONLY, PET_MR} <= set(shipped_models())
    alone, guided = load_card(PET_ONLY), load_card(PET_MR)
    for card in (alone, guided):
        assert card.task == "pet-lowcount" and card.modalities == ["PT"] and card.intensity["units"] == "counts"
        m = card.metrics
        assert m["test_psnr"] > m["test_psnr_bm3d"] > m["test_psnr_input"] and m["test_ssim"] > m["test_ssim_bm3d"]
        assert m["test4mm_psnr"] > m["test4mm_psnr_bm3d"] and m["test4mm_ssim"] > m["test4mm_ssim_bm3d"]
        assert card.training
    assert alone.aux_modalities == [] and alone.in_channels == 1
    assert guided.aux_modalities == ["MR"] and guided.in_channels == 2 and guided.out_channels == 1
    assert guided.aux_preset is not None and guided.aux_preset.mode == "per_image"
    # the plain default for PET never picks the guided model; the guided one is found for PT + MR
    assert PET_MR not in shipped_by_modality().get("PT", []) and PET_ONLY in shipped_by_modality()["PT"]
    assert shipped_guided()["PT+MR"] == [PET_MR]


@pytest.mark.parametrize("example", [EXAMPLE, EXAMPLE_4MM], ids=["2mm", "4mm"])
def test_both_models_improve_a_held_out_slice(example):
    from medir.engine.guided import restore_guided_slices
    from medir.engine.inference import restore_image
    from medir.io import Image, ImageMeta

    with np.load(example) as d:
        lq, hq, mr = d["lq"], d["hq"], d["mr"]
    p_in, s_in = _scores(lq, hq)
    model, card = load_model(PET_ONLY)
    alone = restore_image(Image(lq, ImageMeta(modality="PT", units="counts")), model, card, tile=None).array
    model, card = load_model(PET_MR)
    guided = restore_guided_slices(lq[None, None], mr[None, None], model, card, tile=None)[0][0, 0]
    for out in (alone, guided):
        p, s = _scores(out, hq)
        assert p > p_in + 1.0 and s > s_in, (p_in, p, s_in, s)


def _nifti(path, array, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(array, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine),
             str(path))
    return path


def test_restore_pet_and_pet_with_mr_through_the_cli(held_out, tmp_path, capsys):
    lq, hq, mr = held_out
    pet = _nifti(tmp_path / "pet.nii.gz", np.stack([lq.T, lq.T[::-1]], axis=-1))  # two slices, (x, y, z)
    guide = _nifti(tmp_path / "mr.nii.gz", np.stack([mr.T, mr.T[::-1]], axis=-1))
    out_alone, out_guided = tmp_path / "alone.nii.gz", tmp_path / "guided.nii.gz"
    assert main(["restore", str(pet), "--modality", "PT", "--model", PET_ONLY, "-o", str(out_alone)]) == 0
    # no --model: the shipped PET+MR model is chosen from the modalities; --uncertainty: 8 flips/turns
    assert main(["restore", str(pet), "--modality", "PT", "--aux", str(guide), "-o", str(out_guided),
                 "--uncertainty"]) == 0
    ref = hq.T
    for path in (out_alone, out_guided):
        img = nib.load(str(path))
        assert img.shape == (128, 128, 2) and img.get_fdata().dtype == np.float64
        np.testing.assert_allclose(img.affine, np.diag([2.0, 2.0, 2.0, 1.0]))
        assert psnr(img.get_fdata()[..., 0], ref, data_range="target") > psnr(lq.T, ref, data_range="target") + 1.0
    unc = nib.load(str(tmp_path / "guided_uncertainty.nii.gz")).get_fdata()
    assert unc.shape == (128, 128, 2) and (unc >= 0).all() and unc.max() > 0


def test_guided_restore_refuses_what_it_cannot_do_in_one_line(held_out, tmp_path, refused_in_one_line):
    lq, _, mr = held_out
    pet = _nifti(tmp_path / "pet.nii.gz", lq.T[..., None])
    guide = _nifti(tmp_path / "mr.nii.gz", mr.T[..., None])
    moved = _nifti(tmp_path / "mr_moved.nii.gz", mr.T[..., None], np.diag([3.0, 2.0, 2.0, 1.0]))
    base = ["restore", str(pet), "--modality", "PT", "-o", str(tmp_path / "o.nii.gz")]
    cases = [(base + ["--aux", str(guide), "--model", PET_ONLY], "takes no guide"),
             (base + ["--aux", str(guide), "--model", PET_MR, "--steps", "5"], "--steps"),
             (base + ["--aux", str(moved), "--model", PET_MR], "resample"),
             (base + ["--model", PET_MR], "channel")]
    refused_in_one_line(cases)
    assert not (tmp_path / "o.nii.gz").exists()
