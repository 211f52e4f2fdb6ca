"""The shipped 4x MRI super-resolution model: its card, its gain on a real held-out scan, and the restore path."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from medir.cli import main
from medir.engine.modelfile import load_card, load_model, shipped_models
from medir.metrics import psnr, ssim

NAME = "mr-sr4-edsr"


def _nibabel_data(name: str) -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / name


def test_card_declares_mr_4x_super_resolution():
    assert NAME in shipped_models()
    card = load_card(NAME)
    assert card.modalities == ["MR"] and card.task == "mri-sr" and card.scale == 4
    assert card.intensity["name"] == "mr-auto" and card.intensity["mode"] == "per_image"
    assert card.metrics["held_out_real"]["model"]["psnr"] > card.metrics["held_out_real"]["best_classical"]["psnr"]
    model, _ = load_model(NAME)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_beats_bicubic_on_a_real_held_out_scan():
    """pydicom-data's MR-SIEMENS-DICOM-WithOverlays.dcm (a real abdominal MR slice, never trained on), its centre
    192x192, bicubic x4 down (the training protocol)."""
    from medir.baselines import build_baseline
    from medir.engine.inference import restore_image
    from medir.io import Image, ImageMeta, read_image
    from medir.physics import simulate

    from pydicom.data import get_testdata_file

    ref = read_image(Path(get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm"))).array[146:338, 146:338]
    low = simulate("mri-sr", torch.from_numpy(ref)[None, None], protocol="ixi-4x")
    model, card = load_model(NAME)
    out = restore_image(Image(low[0, 0].numpy(), ImageMeta(modality="MR")), model, card, tile=None).array
    bicubic = build_baseline("bicubic", scale=4)(low)[0, 0].numpy()
    assert out.shape == ref.shape
    crop = (slice(4, -4), slice(4, -4))
    scores = {k: (psnr(v[crop], ref[crop], data_range="target"), ssim(v[crop], ref[crop], data_range="target"))
              for k, v in (("model", out), ("bicubic", bicubic))}
    # measured: 32.67 dB vs 30.80 dB, SSIM 0.893 vs 0.858
    assert scores["model"][0] > scores["bicubic"][0] + 1.0  # dB
    assert scores["model"][1] > scores["bicubic"][1] + 0.02


def test_restore_dicom_gives_a_4x_grid_with_a_quarter_of_the_spacing(tmp_path):
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("MR_small.dcm"))
    out = tmp_path / "mr_sr.dcm"
    assert main(["restore", str(src), "-o", str(out), "--model", NAME]) == 0
    a, b = pydicom.dcmread(src), pydicom.dcmread(out)
    assert (b.Rows, b.Columns) == (4 * a.Rows, 4 * a.Columns) and b.Modality == "MR"
    assert np.allclose([float(v) for v in b.PixelSpacing], [float(v) / 4 for v in a.PixelSpacing])
    # the field of view stays put: the first pixel's outer corner is where it was
    row, col = np.array(a.ImageOrientationPatient[:3], float), np.array(a.ImageOrientationPatient[3:], float)
    (dr, dc), (er, ec) = (np.array(d.PixelSpacing, float) for d in (a, b))

    def corner(ds, r, c):
        return np.array(ds.ImagePositionPatient, float) - 0.5 * (row * c + col * r)

    assert np.allclose(corner(a, dr, dc), corner(b, er, ec), atol=1e-3)
    assert b.pixel_array.shape == (256, 256) and b.SeriesInstanceUID != a.SeriesInstanceUID
    assert a.pixel_array.mean() == pytest.approx(float(b.pixel_array.mean()), rel=0.05)


def test_restore_nifti_volume_scales_in_plane_only(tmp_path):
    import nibabel

    src = _nibabel_data("anatomical.nii")  # 33x41x25 at 2 mm
    out = tmp_path / "anat_sr.nii.gz"
    # NIfTI does not record a modality: the user says it
    assert main(["restore", str(src), "-o", str(out), "--model", NAME, "--modality", "MR"]) == 0
    a, b = nibabel.load(src), nibabel.load(out)
    assert b.shape[2] == a.shape[2] and {b.shape[0], b.shape[1]} == {4 * a.shape[0], 4 * a.shape[1]}
    zooms_a, zooms_b = np.array(a.header.get_zooms()[:3]), np.array(b.header.get_zooms()[:3])
    in_plane = [i for i in range(3) if b.shape[i] != a.shape[i]]
    assert np.allclose(zooms_b[in_plane], zooms_a[in_plane] / 4) and np.isclose(zooms_b[2], zooms_a[2])
    # same field of view: both outer corners of the voxel grid map to the same place in the scanner
    first = np.array([-0.5, -0.5, -0.5, 1.0])
    assert np.allclose(a.affine @ first, b.affine @ first, atol=1e-3)
    assert np.allclose(a.affine @ np.r_[np.array(a.shape[:3]) - 0.5, 1], b.affine @ np.r_[np.array(b.shape[:3]) - 0.5, 1],
                       atol=1e-3)


def test_held_out_data_is_real_mr_and_disjoint_from_training():
    from medir.data import mri_sr

    assert mri_sr.TRAIN_Z_END <= min(mri_sr.VAL_Z) and max(mri_sr.VAL_Z) < min(mri_sr.TEST_Z)
    images = mri_sr.real_test_images()
    assert [n for n, _ in images][:2] == ["MR2_UNCR", "MR-SIEMENS-DICOM-WithOverlays"] and len(images) == 7
    for _, image in images:
        h, w = image.array.shape
        assert h % 4 == 0 and w % 4 == 0 and image.array.std() > 10 and image.meta.modality == "MR"
    assert mri_sr.crop_to_multiple(np.zeros((3, 197, 233))).shape == (3, 196, 232)

