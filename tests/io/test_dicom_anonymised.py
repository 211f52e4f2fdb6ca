"""Anonymised exports: blank or missing UIDs, dates, descriptions and spacing still restore, and say what was assumed."""

import logging

import numpy as np
import pydicom
import pytest

from medir.cli import main
from medir.io import read_image, write_image

BLANKED = ("SOPClassUID", "SeriesInstanceUID", "FrameOfReferenceUID", "StudyDate", "SeriesDescription")
REMOVED = ("StudyInstanceUID", "PixelSpacing", "ContentDate", "StudyDescription", "SeriesDate", "AcquisitionDate")


def _anonymise(path, *, drop_sop_instance: bool = False) -> None:
    ds = pydicom.dcmread(path)
    for keyword in BLANKED:
        setattr(ds, keyword, "")
    for keyword in REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    if drop_sop_instance:
        del ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    ds.save_as(path)


@pytest.fixture()
def anonymised_series(ct_series):
    for k, f in enumerate(sorted(ct_series.iterdir())):
        _anonymise(f, drop_sop_instance=k == 0)
    return ct_series


def test_anonymised_series_without_spacing_assumes_1mm_and_says_so(anonymised_series, caplog):
    with caplog.at_level(logging.WARNING, logger="medir.io.dicom"):
        image = read_image(anonymised_series)
    assert image.array.shape == (3, 128, 128)
    assert image.meta.spacing[1:] == (1.0, 1.0)
    lines = [r.getMessage() for r in caplog.records]
    assert any("series" in line and "assuming 1 mm pixels" in line for line in lines)


def test_anonymised_header_with_empty_or_missing_uids_writes_a_derived_series(anonymised_series, tmp_path, caplog):
    image = read_image(anonymised_series)
    with caplog.at_level(logging.WARNING, logger="medir.io.dicom"):
        out = write_image(image, tmp_path / "restored", description="medir restored (test)", model="m")
    files = sorted(out.iterdir())
    datasets = [pydicom.dcmread(f) for f in files]
    assert {ds.SOPClassUID for ds in datasets} == {"1.2.840.10008.5.1.4.1.1.2"}  # CT Image Storage, from the modality
    for keyword in ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
        values = {str(ds.get(keyword, "")) for ds in datasets}
        assert len(values) == 1 and pydicom.uid.UID(values.pop()).is_valid  # one generated UID for the series
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    referenced = [ds for ds in datasets if "SourceImageSequence" in ds]
    assert len(referenced) == 2  # the source without a SOP Instance UID cannot be referenced
    np.testing.assert_array_equal(read_image(out).array, image.array)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "no SOP Class UID, using CT Image Storage" in text and "no Study Instance UID" in text
    src = pydicom.dcmread(next(anonymised_series.iterdir()))
    assert str(src.PatientName) not in text and str(src.PatientID) not in text  # names the file, not the patient


def test_restore_cli_on_anonymised_file_with_empty_sop_class(ct_small, tiny_ct_model, tmp_path, capsys, caplog):
    src = tmp_path / "anon.dcm"
    src.write_bytes(ct_small.read_bytes())
    _anonymise(src)
    out = tmp_path / "out.dcm"
    with caplog.at_level(logging.WARNING, logger="medir.io.dicom"):
        code = main(["restore", str(src), "-o", str(out), "--model", str(tiny_ct_model), "--tile", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and pydicom.uid.UID(ds.StudyInstanceUID).is_valid
    assert ds.SourceImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert "unexpected" not in err
    said = [r.getMessage() for r in caplog.records]  # the CLI prints these on stderr (logging's last resort)
    assert any(m.startswith("anon.dcm: ") and "assuming 1 mm pixels" in m for m in said)


def test_file_without_meta_header_is_read(ct_small, tmp_path):
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(ct_small)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)  # the data set alone: no preamble, no meta header
    bare = tmp_path / "bare.dcm"
    bare.write_bytes(fp.getvalue())
    image = read_image(bare)
    np.testing.assert_array_equal(image.array, read_image(ct_small).array)
