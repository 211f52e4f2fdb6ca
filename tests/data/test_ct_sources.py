"""The extra real CT (medir.data.ct_sources): its readers, its splits, and a missing folder's error."""

import gzip
import zlib

import numpy as np
import pytest

from medir.data.ct_sources import SOURCES, read_metaimage, read_nrrd, source_slices
from medir.errors import MedirError


def _volume(shape=(3, 4, 5)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) * 7 - 1000).astype("<i2")


def test_gzip_nrrd_is_read_in_zyx_order_with_its_spacing(tmp_path):
    vol = _volume()
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 5 4 3\n"
              "space directions: (0.5,0,0) (0,0.5,0) (0,0,2.5)\nendian: little\nencoding: gzip\n\n")
    path = tmp_path / "v.nrrd"
    path.write_bytes(header.encode() + gzip.compress(vol.tobytes()))
    array, spacing = read_nrrd(path)
    np.testing.assert_array_equal(array, vol.astype(np.float32))
    assert spacing == (2.5, 0.5, 0.5)


def test_zlib_metaimage_is_read_in_zyx_order_with_its_spacing(tmp_path):
    vol = _volume()
    (tmp_path / "v.zraw").write_bytes(zlib.compress(vol.tobytes()))
    (tmp_path / "v.mhd").write_text("ObjectType = Image\nNDims = 3\nBinaryDataByteOrderMSB = False\n"
                                    "CompressedData = True\nElementSpacing = 1.5 1.5 4\nDimSize = 5 4 3\n"
                                    "ElementType = MET_SHORT\nElementDataFile = v.zraw\n")
    array, spacing = read_metaimage(tmp_path / "v.mhd")
    np.testing.assert_array_equal(array, vol.astype(np.float32))
    assert spacing == (4.0, 1.5, 1.5)


def test_a_non_nrrd_file_gets_a_one_line_error(tmp_path):
    (tmp_path / "bad.nrrd").write_bytes(b"not an nrrd")
    with pytest.raises(MedirError, match="not an NRRD file"):
        read_nrrd(tmp_path / "bad.nrrd")


def test_missing_files_name_the_fetch_command(tmp_path):
    with pytest.raises(MedirError, match="fetch_ct_sources.sh"):
        source_slices(tmp_path, "train")


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.file)
def test_every_source_is_train_or_held_out_and_validation_slices_are_not_trained_on(source):
    assert source.split in ("train", "test")
    assert not set(source.val) & set(source.train)
    if source.split == "test":
        assert not source.train and not source.val  # held-out files give no training or validation slice
