"""Compressed DICOM decodes out of the box; a missing decoder names its package; pydicom warnings go to the log."""

import logging
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medir.errors import InputError
from medir.io import read_image, write_image


@pytest.mark.parametrize("name,shape", [
    ("JPEG2000.dcm", (1024, 256)),
    ("JPGExtended.dcm", (1024, 256)),
    ("MR_small_jp2klossless.dcm", (64, 64)),
    ("J2K_pixelrep_mismatch.dcm", (512, 512)),
    ("SC_rgb_jpeg_gdcm.dcm", (100, 100, 3)),  # JPEG lossless
])
def test_compressed_decode_out_of_the_box(name, shape, tmp_path):
    image = read_image(get_testdata_file(name))
    assert image.array.shape == shape and np.isfinite(image.array).all() and image.array.std() > 0
    back = read_image(write_image(image, tmp_path / "out.dcm"))  # derived output is uncompressed
    assert pydicom.dcmread(tmp_path / "out.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    np.testing.assert_array_equal(back.array, image.array)


@pytest.mark.parametrize("compressed,plain", [("MR_small_jp2klossless.dcm", "MR_small.dcm"), ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm")])
def test_lossless_compressed_decode_equals_uncompressed(compressed, plain):
    a, b = read_image(get_testdata_file(compressed)), read_image(get_testdata_file(plain))
    np.testing.assert_array_equal(a.array, b.array)


def test_missing_decoder_names_transfer_syntax_and_package(monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless

    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})  # as if no JPEG 2000 plugin were installed
    with pytest.raises(InputError, match=r"MR_small_jp2klossless.dcm is compressed \(JPEG 2000 .*pip install pylibjpeg-openjpeg"):
        read_image(get_testdata_file("MR_small_jp2klossless.dcm"))


def test_pydicom_warnings_go_to_the_log_not_the_terminal(ct_small, tmp_path, caplog):
    ds = pydicom.dcmread(ct_small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.SeriesDescription = "x" * 80  # longer than LO allows: pydicom warns whenever it reads the value
        ds.save_as(tmp_path / "long.dcm")
    with warnings.catch_warnings(record=True) as shown, caplog.at_level(logging.INFO, logger="medir.io.dicom"):
        warnings.simplefilter("always")
        image = read_image(tmp_path / "long.dcm")
        write_image(image, tmp_path / "out.dcm")
    assert not [w for w in shown if "pydicom" in w.filename]
    logged = [r for r in caplog.records if "pydicom" in r.getMessage()]
    assert logged and all(r.levelno == logging.INFO and r.getMessage().startswith("long.dcm: ") for r in logged)
    assert "exceeds the maximum length" in logged[0].getMessage()
    # nothing was silenced outside medir's calls
    with pytest.warns(UserWarning, match="exceeds the maximum length"):
        pydicom.dcmread(tmp_path / "long.dcm").SeriesDescription
