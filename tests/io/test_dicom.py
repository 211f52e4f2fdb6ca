import numpy as np
import pydicom
import pytest

from medir.errors import InputError
from medir.io import read_image, write_image


def test_ct_read_applies_rescale_to_hu(ct_small):
    image = read_image(ct_small)
    ds = pydicom.dcmread(ct_small)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.array, expected.astype(np.float32))
    assert image.meta.modality == "CT" and image.meta.units == "HU"
    assert image.meta.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])


def test_dicom_round_trip_keeps_pixels_geometry_identity(ct_small, tmp_path):
    image = read_image(ct_small)
    out = write_image(image, tmp_path / "out.dcm", description="medir restored (test)", model="m")
    back = read_image(out)
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.meta.affine, image.meta.affine, atol=1e-6)
    src, ds = pydicom.dcmread(ct_small), pydicom.dcmread(out)
    assert ds.PatientID == src.PatientID and ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert "medir" in ds.SeriesDescription and "medir" in ds.DerivationDescription
    assert ds.pixel_array.dtype == src.pixel_array.dtype
    assert ds.RescaleIntercept == src.RescaleIntercept and ds.RescaleSlope == src.RescaleSlope
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID


def test_dicom_write_clips_to_stored_range(ct_small, tmp_path):
    image = read_image(ct_small)
    image.array[:] = 1e6  # far beyond int16 with intercept -1024
    back = read_image(write_image(image, tmp_path / "clip.dcm"))
    assert back.array.max() == pytest.approx(32767 - 1024)


def test_series_folder_reads_sorted_by_position_and_writes_series(ct_series, tmp_path):
    image = read_image(ct_series)
    assert image.array.shape == (3, 128, 128)
    # slice k was offset by 10 k: sorted by position, not by file name
    np.testing.assert_allclose(image.array[1] - image.array[0], 10)
    assert image.meta.spacing[0] == pytest.approx(5.0)
    out = write_image(image, tmp_path / "restored")
    files = sorted(out.iterdir())
    assert len(files) == 3
    uids = {pydicom.dcmread(f).SeriesInstanceUID for f in files}
    assert len(uids) == 1
    back = read_image(out)
    np.testing.assert_array_equal(back.array, image.array)


def test_multiframe_file_reads_as_volume(ct_series, tmp_path):
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(next(ct_series.iterdir()))
    frames = np.stack([ds.pixel_array + i for i in range(4)]).astype(np.int16)
    ds.NumberOfFrames = 4
    ds.PixelData = frames.tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "mf.dcm")
    image = read_image(tmp_path / "mf.dcm")
    assert image.array.shape == (4, 128, 128)
    back = read_image(write_image(image, tmp_path / "mf_out.dcm"))
    np.testing.assert_array_equal(back.array, image.array)


def test_text_file_named_dcm_is_one_line_error(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not a scan\n")
    with pytest.raises(InputError, match="notes.dcm is not a readable DICOM"):
        read_image(bad)


def test_truncated_dicom_is_input_error(ct_small, tmp_path):
    data = ct_small.read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.dcm"):
        read_image(bad)


@pytest.mark.parametrize("factor", [2, 0.5])
def test_resized_dicom_output_keeps_field_of_view(ct_small, tmp_path, factor):
    image = read_image(ct_small)
    n = int(128 * factor)
    resized = image.with_slices(np.zeros((1, 1, n, n), np.float32))
    out = write_image(resized, tmp_path / "r.dcm", description="medir simulate mri-sr")
    ds, src = pydicom.dcmread(out), pydicom.dcmread(ct_small)
    assert (ds.Rows, ds.Columns) == (n, n)
    assert float(ds.PixelSpacing[0]) == pytest.approx(float(src.PixelSpacing[0]) / factor, rel=1e-5)
    assert ds.SeriesDescription == "medir simulate mri-sr"
    # the first pixel's outer edge stays where the source's was
    edge_src = float(src.ImagePositionPatient[0]) - float(src.PixelSpacing[1]) / 2
    edge_out = float(ds.ImagePositionPatient[0]) - float(ds.PixelSpacing[1]) / 2
    assert edge_out == pytest.approx(edge_src, abs=1e-3)
    assert read_image(out).array.shape == (n, n)


def test_non_uniform_resize_is_refused(ct_small, tmp_path):
    image = read_image(ct_small)
    with pytest.raises(InputError, match="not a uniform rescale"):
        write_image(image.with_slices(np.zeros((1, 1, 64, 128), np.float32)), tmp_path / "bad.dcm")


@pytest.mark.parametrize("factor", [4, 0.5])
def test_resized_dicom_output_rescales_or_drops_overlays(tmp_path, factor):
    """An overlay (a marked region) stays on the same anatomy after super-resolution; a down-sampled output drops it."""
    from pydicom.data import get_testdata_file
    from pydicom.pixels import pack_bits

    src = tmp_path / "overlay.dcm"
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mark = np.zeros((64, 64), np.uint8)
    mark[10:20, 30:34] = 1
    ds.add_new((0x6000, 0x0010), "US", 64)
    ds.add_new((0x6000, 0x0011), "US", 64)
    ds.add_new((0x6000, 0x0040), "CS", "G")
    ds.add_new((0x6000, 0x0050), "SS", [1, 1])
    ds.add_new((0x6000, 0x0100), "US", 1)
    ds.add_new((0x6000, 0x0102), "US", 0)
    ds.add_new((0x6000, 0x3000), "OW", pack_bits(mark))
    ds.save_as(src)
    image = read_image(src)
    n = int(64 * factor)
    out = write_image(image.with_slices(np.zeros((1, 1, n, n), np.float32)), tmp_path / "r.dcm")
    res = pydicom.dcmread(out)
    if factor < 1:
        assert (0x6000, 0x3000) not in res
        return
    assert (res[0x6000, 0x0010].value, res[0x6000, 0x0011].value) == (n, n)
    assert np.array_equal(res.overlay_array(0x6000), np.kron(mark, np.ones((4, 4), np.uint8)))
