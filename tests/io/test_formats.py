import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medir.errors import InputError
from medir.io import Image, ImageMeta, collect_inputs, read_image, write_image


def test_nifti_round_trip_keeps_affine_and_values(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 24, 6)).astype(np.float32)
    affine = np.array([[0.8, 0, 0.1, -90], [0, 0.9, 0, -100], [0, 0, 2.5, 30], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "vol.nii.gz")
    image = read_image(tmp_path / "vol.nii.gz")
    assert image.array.shape == (6, 24, 20) and image.is_volume
    assert image.meta.spacing == pytest.approx((2.5, 0.9, 0.8), rel=1e-3)
    write_image(image, tmp_path / "out.nii.gz")
    back = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(back.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), data)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_and_tiff_keep_bit_depth(tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = rng.integers(0, np.iinfo(dtype).max, size=(33, 40)).astype(dtype)
    PILImage.fromarray(data).save(tmp_path / "a.png")
    for name in ("a.png",):
        image = read_image(tmp_path / name)
        np.testing.assert_array_equal(image.array, data)
        out = write_image(image, tmp_path / f"out_{name}")
        np.testing.assert_array_equal(np.asarray(PILImage.open(out)), data)
    image = Image(data, ImageMeta(source={"dtype": str(data.dtype)}))
    back = read_image(write_image(image, tmp_path / "a.tif"))
    np.testing.assert_array_equal(back.array, data)


def test_rgb_png_is_colour_image(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, size=(16, 20, 3)).astype(np.uint8)
    PILImage.fromarray(data).save(tmp_path / "rgb.png")
    image = read_image(tmp_path / "rgb.png")
    assert image.meta.channels == 3 and image.slices().shape == (1, 3, 16, 20)
    assert image.with_slices(image.slices()).array.shape == (16, 20, 3)


def test_npy_npz_round_trip(tmp_path):
    data = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    np.save(tmp_path / "a.npy", data)
    np.savez(tmp_path / "b.npz", image=data, spacing=np.array([0.5, 0.7]))
    assert read_image(tmp_path / "b.npz").meta.spacing == (0.5, 0.7)
    for name in ("a.npy", "b.npz"):
        image = read_image(tmp_path / name)
        np.testing.assert_array_equal(read_image(write_image(image, tmp_path / f"o_{name}")).array, data)


def test_write_refuses_overwrite_without_force(tmp_path):
    image = Image(np.zeros((16, 16)))
    write_image(image, tmp_path / "x.npy")
    with pytest.raises(Exception, match="already exists"):
        write_image(image, tmp_path / "x.npy")
    write_image(image, tmp_path / "x.npy", force=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_bad_inputs_raise_input_error(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    np.save(tmp_path / "nan.npy", np.full((16, 16), np.nan, dtype=np.float32))
    np.save(tmp_path / "one.npy", np.ones((1, 1), dtype=np.float32))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.npy").validate("nan.npy")
    with pytest.raises(InputError, match="1x1"):
        read_image(tmp_path / "one.npy").validate("one.npy")
    with pytest.raises(InputError, match="not a format"):
        read_image(tmp_path / "x.txt")
    with pytest.raises(InputError, match="unknown modality"):
        read_image(tmp_path / "one.npy", modality="ultrasoundish")


def test_collect_inputs_finds_series_and_files(tmp_path, ct_series):
    np.save(tmp_path / "a.npy", np.zeros((16, 16)))
    items = collect_inputs([tmp_path])
    kinds = {(it.path.name, it.kind) for it in items}
    assert ("series", "series") in kinds and ("a.npy", "numpy") in kinds


def test_outputs_get_ordinary_permissions(tmp_path):
    import os

    out = write_image(Image(np.zeros((16, 16))), tmp_path / "p.npy")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_discovery_groups_files_without_series_uid_by_folder(tmp_path, ct_small):
    """Anonymised exports may blank SeriesInstanceUID: files then group by folder (and geometry)."""
    import pydicom

    from medir.io import discover

    base = pydicom.dcmread(ct_small)
    for folder in ("p1", "p2"):
        for k in range(2):
            ds = base.copy()
            ds.SeriesInstanceUID = ""
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            ds.ImagePositionPatient = [0, 0, 5.0 * k]
            (tmp_path / folder).mkdir(exist_ok=True)
            ds.save_as(tmp_path / folder / f"{k}")  # no suffix, as on DICOMDIR media
    found = discover([tmp_path])
    assert sorted((it.label, it.kind, len(it.files)) for it in found.items) == [("p1", "series", 2), ("p2", "series", 2)]


def test_dicomdir_lists_missing_files_as_skipped(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    from medir.io import discover

    src = __import__("pathlib").Path(get_testdata_file("DICOMDIR")).parent
    shutil.copytree(src / "77654033", tmp_path / "77654033")
    shutil.copy(src / "DICOMDIR", tmp_path / "DICOMDIR")
    (tmp_path / "77654033" / "CT2" / "17136").unlink()
    found = discover([tmp_path / "DICOMDIR"])
    missing = [label for label, reason in found.skipped if "listed in the DICOMDIR but missing" in reason]
    assert "77654033/CT2/17136" in missing
    assert {it.label: len(it.files) for it in found.items if it.kind == "series"} == {"77654033/CT2": 3}
