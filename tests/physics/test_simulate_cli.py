import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from medir.cli import main
from medir.io import read_image


@pytest.fixture
def ct_dicom():
    return get_testdata_file("CT_small.dcm")


def manifest(folder):
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def test_dicom_stays_dicom_with_derived_series(ct_dicom, tmp_path):
    out = tmp_path / "out"
    assert main(["simulate", "ct-lowdose", ct_dicom, "-o", str(out), "--dose", "0.25", "--seed", "3"]) == 0
    src, sim = pydicom.dcmread(ct_dicom), pydicom.dcmread(out / "CT_small.dcm")
    assert sim.SeriesInstanceUID != src.SeriesInstanceUID and "DERIVED" in sim.ImageType
    a, b = read_image(ct_dicom).array, read_image(out / "CT_small.dcm").array
    assert a.shape == b.shape and 5 < np.std(b - a) < 500
    rec = manifest(out)[0]
    assert rec["task"] == "ct-lowdose" and rec["params"]["dose"] == 0.25 and rec["source"] == "CT_small.dcm"
    assert rec["params"]["pixel_size_mm"] == pytest.approx(float(src.PixelSpacing[1]))
    text = (out / "manifest.jsonl").read_text()
    assert str(src.PatientName) not in text and str(src.PatientID) not in text
    # the same command again skips the finished output; other settings need --force; same seed, same file
    assert main(["simulate", "ct-lowdose", ct_dicom, "-o", str(out), "--dose", "0.25", "--seed", "3"]) == 0
    assert main(["simulate", "ct-lowdose", ct_dicom, "-o", str(out), "--dose", "0.25", "--seed", "4"]) == 2
    assert main(["simulate", "ct-lowdose", ct_dicom, "-o", str(out), "--dose", "0.25", "--seed", "3", "--force"]) == 0
    assert np.array_equal(read_image(out / "CT_small.dcm").array, b)
    assert len(manifest(out)) == 1


def test_nifti_volume_sr(tmp_path):
    vol = (np.random.default_rng(0).random((32, 32, 3)) * 1000).astype(np.float32)
    src = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0])), src)
    out = tmp_path / "out"
    assert main(["simulate", "mri-sr", str(src), "-o", str(out), "--scale", "2", "--modality", "MR"]) == 0
    res = read_image(out / "mr.nii.gz")
    assert res.array.shape == (3, 16, 16)
    assert res.meta.spacing[-1] == pytest.approx(2.0)


def test_png_inputs(tmp_path):
    rng = np.random.default_rng(1)
    rgb = tmp_path / "tile.png"
    PILImage.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(rgb)
    grey = tmp_path / "bone.png"
    PILImage.fromarray((rng.random((64, 32)) * 40).astype(np.uint8)).save(grey)
    out = tmp_path / "out"
    assert main(["simulate", "path-sr", str(rgb), "-o", str(out)]) == 0
    assert read_image(out / "tile.png").array.shape == (32, 32, 3)
    assert main(["simulate", "scinti-rapid", str(grey), "-o", str(out), "--speedup", "2", "--modality", "NM"]) == 0
    src, res = read_image(grey).array, read_image(out / "bone.png").array
    assert res.sum() / src.sum() == pytest.approx(0.5, rel=0.05)
    assert {r["task"] for r in manifest(out)} == {"path-sr", "scinti-rapid"}


@pytest.mark.parametrize("argv", [
    ["simulate", "no-such-task", "IN", "-o", "OUT"],
    ["simulate", "ct-lowdose", "IN", "-o", "OUT", "--dose", "0"],
    ["simulate", "ct-lowdose", "IN", "-o", "OUT", "--dose", "-1"],
    ["simulate", "scinti-rapid", "IN", "-o", "OUT", "--speedup", "0.5"],
    ["simulate", "mri-sr", "IN", "-o", "OUT", "--scale", "3"],
    ["simulate", "ct-lowdose", "IN", "-o", "OUT", "--speedup", "2"],
    ["simulate", "ct-lowdose", "IN", "-o", "OUT", "--param", "nonsense=1"],
])
def test_refusals_exit_2_with_one_line(argv, tmp_path, capsys):
    argv = [str(tmp_path / a) if a in ("IN", "OUT") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medir simulate: error:") and "\n" not in err
    assert not (tmp_path / "OUT").exists()


def test_dicom_low_resolution_is_a_smaller_derived_series(ct_dicom, tmp_path):
    import pydicom

    assert main(["simulate", "mri-sr", ct_dicom, "-o", str(tmp_path / "o"), "--modality", "MR", "--scale", "4"]) == 0
    src = pydicom.dcmread(ct_dicom)
    out = pydicom.dcmread(next((tmp_path / "o").glob("*.dcm")))
    assert (out.Rows, out.Columns) == (src.Rows // 4, src.Columns // 4)
    assert float(out.PixelSpacing[0]) == pytest.approx(4 * float(src.PixelSpacing[0]), rel=1e-4)
    assert main(["simulate", "mri-sr", ct_dicom, "-o", str(tmp_path / "u"), "--modality", "MR",
                 "--param", "upsample=true"]) == 0


def test_list(capsys):
    assert main(["simulate", "--list"]) == 0
    text = capsys.readouterr().out
    for task in ("ct-lowdose", "pet-lowcount", "scinti-rapid", "mri-sr", "path-sr", "endo-smoke"):
        assert task in text
    assert "dose=0.25" in text


def test_modality_mismatch_refused(ct_dicom, tmp_path, capsys):
    assert main(["simulate", "scinti-rapid", ct_dicom, "-o", str(tmp_path / "o")]) == 2
    assert "--modality" in capsys.readouterr().err
