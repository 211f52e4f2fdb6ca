"""Fixtures shared across the suite: test scans shipped with pydicom, a tiny model file."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread for the whole suite: the tensors here are tiny, and on a busy 2-core machine
    OpenMP threads spin against other processes and make each small op 10-100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ct_small() -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def tiny_ct_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny NAFNet saved as a medir CT model."""
    from medir.data.intensity import get_preset
    from medir.engine.modelfile import ModelCard, save_model
    from medir.models import build_preset

    torch.manual_seed(0)
    model = build_preset("nafnet_tiny", in_channels=1, out_channels=1)
    card = ModelCard(
        arch="nafnet", arch_args=model.arch_args, task="ct-denoise", modality="CT",
        intensity=get_preset("ct").to_dict(), description="test model",
    )
    return save_model(tmp_path_factory.mktemp("models") / "tiny-ct", model, card)


@pytest.fixture()
def ct_series(tmp_path, ct_small) -> Path:
    """A 3-slice DICOM series folder made from CT_small.dcm (positions 5 mm apart, shuffled names)."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "series"
    folder.mkdir()
    series_uid = generate_uid()
    base = pydicom.dcmread(ct_small)
    for k, name in zip(range(3), ["b.dcm", "c.dcm", "a.dcm"]):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = k + 1
        pos = [float(v) for v in base.ImagePositionPatient]
        ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 5.0 * k]
        pixels = base.pixel_array.astype(np.int16) + np.int16(10 * k)
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / name)
    return folder


def copy_to(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    shutil.copy2(src, dst)
    return dst


@pytest.fixture()
def refused_in_one_line(capsys):
    """Check CLI refusals: each ``(argv, word)`` exits with code 2 and one stderr line containing ``word``."""
    from medir.cli import main

    def check(cases: list[tuple[list[str], str]]) -> None:
        for argv, word in cases:
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and word in err[0], err

    return check
