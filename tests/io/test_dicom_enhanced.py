"""Enhanced multi-frame DICOM: per-frame geometry and rescale in functional groups, read and written back."""

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medir.io import read_image, write_image

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
IOP = [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # sagittal: along a row +y, down a column +z; normal +x
SPACING = [0.7, 0.8]


def _item(**values) -> Dataset:
    ds = Dataset()
    for k, v in values.items():
        setattr(ds, k, v)
    return ds


def enhanced_ct(path, *, frames: int = 4, rows: int = 24, cols: int = 20, order=None) -> tuple:
    """An Enhanced CT file: shared orientation/spacing, per-frame positions 2.5 mm apart along +x and
    per-frame rescale intercepts; ``order`` lists the frames in file order (positions out of order)."""
    order = list(range(frames)) if order is None else order
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "Test^Enhanced", "ENH001"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = _item(
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=IOP)]),
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=SPACING, SliceThickness=2.5)]),
        CTImageFrameTypeSequence=Sequence([_item(FrameType=["ORIGINAL", "PRIMARY", "AXIAL", "NONE"])]),
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, stored = [], []
    rng = np.random.default_rng(0)
    for k in order:
        intercept = -1024.0 - 10 * k  # per-frame rescale
        per_frame.append(_item(
            PlanePositionSequence=Sequence([_item(ImagePositionPatient=[-50.0 + 2.5 * k, -30.0, 40.0])]),
            PixelValueTransformationSequence=Sequence([_item(RescaleSlope=1.0, RescaleIntercept=intercept)]),
            FrameContentSequence=Sequence([_item(InStackPositionNumber=k + 1)]),
        ))
        hu = 100.0 * k + rng.integers(-50, 50, (rows, cols))
        stored.append((hu - intercept).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(stored).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _positions(ds) -> list[list[float]]:
    return [[float(v) for v in g.PlanePositionSequence[0].ImagePositionPatient] for g in ds.PerFrameFunctionalGroupsSequence]


def test_enhanced_multiframe_reads_per_frame_geometry_and_rescale(tmp_path):
    image = read_image(enhanced_ct(tmp_path / "enh.dcm"))
    assert image.array.shape == (4, 24, 20)
    assert image.meta.spacing == pytest.approx((2.5, 0.7, 0.8))
    # frame k holds 100 k HU on average (per-frame intercepts applied)
    np.testing.assert_allclose(image.array.mean(axis=(1, 2)), [0, 100, 200, 300], atol=5)
    # RAS affine in (col, row, slice) order: LPS (0, 0.8, 0) per column, (0, 0, 0.7) per row, (2.5, 0, 0) per slice
    a = image.meta.affine
    np.testing.assert_allclose(a[:3, 0], [0, -0.8, 0], atol=1e-9)
    np.testing.assert_allclose(a[:3, 1], [0, 0, 0.7], atol=1e-9)
    np.testing.assert_allclose(a[:3, 2], [-2.5, 0, 0], atol=1e-9)
    np.testing.assert_allclose(a[:3, 3], [50.0, 30.0, 40.0], atol=1e-9)


def test_enhanced_multiframe_frames_out_of_order_are_sorted_along_the_normal(tmp_path):
    image = read_image(enhanced_ct(tmp_path / "shuffled.dcm", order=[2, 0, 3, 1]))
    np.testing.assert_allclose(image.array.mean(axis=(1, 2)), [0, 100, 200, 300], atol=5)
    assert image.meta.spacing[0] == pytest.approx(2.5)


@pytest.mark.parametrize("order", [None, [2, 0, 3, 1]])
def test_enhanced_multiframe_geometry_round_trip(tmp_path, order):
    src_path = enhanced_ct(tmp_path / "enh.dcm", order=order)
    image = read_image(src_path)
    out = write_image(image, tmp_path / "out.dcm", description="medir restored (test)", model="m")
    back = read_image(out)
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.meta.affine, image.meta.affine, atol=1e-6)
    assert back.meta.spacing == pytest.approx(image.meta.spacing)
    src, ds = pydicom.dcmread(src_path), pydicom.dcmread(out)
    assert ds.SOPClassUID == ENHANCED_CT and ds.NumberOfFrames == 4
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    # every frame keeps its own position and rescale, in the order the pixels are stored
    assert sorted(map(tuple, _positions(ds))) == sorted(map(tuple, _positions(src)))
    xs = [p[0] for p in _positions(ds)]
    assert xs == sorted(xs)
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == SPACING
    assert shared.CTImageFrameTypeSequence[0].FrameType[0] == "DERIVED"
    derivation = shared.DerivationImageSequence[0]
    assert "medir" in derivation.DerivationDescription and "medir" in ds.DerivationDescription
    assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]


def test_enhanced_multiframe_super_resolved_keeps_field_of_view_per_frame(tmp_path):
    image = read_image(enhanced_ct(tmp_path / "enh.dcm"))
    bigger = image.with_slices(np.zeros((4, 1, 48, 40), np.float32), scale=2)
    ds = pydicom.dcmread(write_image(bigger, tmp_path / "sr.dcm"))
    assert (ds.Rows, ds.Columns) == (48, 40)
    spacing = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    assert spacing == pytest.approx([0.35, 0.4])
    # first pixel centre moves half a new pixel towards the old first pixel's corner, in every frame
    for k, pos in enumerate(_positions(ds)):
        assert pos == pytest.approx([-50.0 + 2.5 * k, -30.0 - 0.2, 40.0 - 0.175])
