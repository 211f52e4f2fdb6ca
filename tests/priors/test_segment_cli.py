"""``medir segment``: label maps in the input's format plus an overlay, atomic, no silent overwrite."""

import nibabel as nib
import numpy as np
from PIL import Image as PILImage

from medir.cli import main

from medir.data.synthetic import labelled_set


def _inputs(tmp_path):
    image = labelled_set(1, seed=5)[0][0]
    png = tmp_path / "slice.png"
    PILImage.fromarray(np.clip(image / 4, 0, 255).astype(np.uint8)).save(png)
    vol = np.stack([labelled_set(1, seed=k)[0][0] for k in range(3)])  # (D, H, W)
    nii = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol.T.astype(np.float32), np.diag([0.9, 0.9, 3.0, 1.0])), nii)
    npy = tmp_path / "arr.npy"
    np.save(npy, image)
    return png, nii, npy, vol


def test_segment_writes_labels_and_overlays(tmp_path, capsys):
    png, nii, npy, vol = _inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["segment", str(png), str(nii), str(npy), "-o", str(out), "--modality", "MR"]) == 0
    lab_png = np.array(PILImage.open(out / "slice_labels.png"))
    assert lab_png.shape == (64, 64) and lab_png.dtype in (np.uint8, np.uint16) and len(np.unique(lab_png)) > 3
    img = nib.load(out / "vol_labels.nii.gz")
    assert img.shape == vol.T.shape and np.issubdtype(img.get_data_dtype(), np.integer)
    assert np.allclose(img.affine, np.diag([0.9, 0.9, 3.0, 1.0]))
    labels = np.asarray(img.dataobj).T  # back to (D, H, W)
    assert labels.min() >= 0 and all(len(np.unique(s)) > 3 for s in labels)
    assert np.load(out / "arr_labels.npz")["labels"].shape == (64, 64)
    for name in ("slice", "vol", "arr"):
        overlay = np.array(PILImage.open(out / f"{name}_overlay.png"))
        assert overlay.shape == (64, 64, 3)
    assert not list(out.glob(".*part"))  # no temporary files left behind


def test_segment_refuses_overwrite_and_bad_models(tmp_path, capsys):
    png, *_ = _inputs(tmp_path)
    out = tmp_path / "labels.png"
    assert main(["segment", str(png), "-o", str(out), "--modality", "MR"]) == 0
    before = out.read_bytes()
    assert main(["segment", str(png), "-o", str(out), "--modality", "CT"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["segment", str(png), "-o", str(out), "--modality", "CT", "--force"]) == 0
    assert (tmp_path / "labels_overlay.png").exists()
    missing = tmp_path / "no-such-sam"
    assert main(["segment", str(png), "-o", str(tmp_path / "x"), "--segmenter", f"sam:{missing}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err


def test_segment_with_tiny_sam_by_path(tmp_path, tiny_sam):
    png, *_ = _inputs(tmp_path)
    out = tmp_path / "sam.npz"
    assert main(["segment", str(png), "-o", str(out), "--segmenter", f"sam:{tiny_sam}", "--modality", "MR"]) == 0
    assert np.load(out)["labels"].shape == (64, 64)
    assert main(["segment", str(png), "-o", str(tmp_path / "m.png"), "--segmenter", f"medsam:{tiny_sam}",
                 "--box", "4,4,40,50", "--modality", "MR"]) == 0
