"""User errors are one line, exit 2, and found before any computation; modality checks; evaluate and segment."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from medir.cli import main

from .conftest import write_series, write_slice

ROOT = Path(__file__).resolve().parents[2]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if a model is loaded: argument checks must come first."""
    import medir.engine.modelfile as modelfile

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(modelfile, "load_model", refuse)


@pytest.mark.parametrize("flags, words", [
    (["--tile", "8"], "--tile 8"),
    (["--tile", "-1"], "--tile -1"),
    (["--batch", "0"], "--batch 0"),
    (["--overlap", "0"], "--overlap 0"),
    (["--tile", "64", "--overlap", "64"], "--overlap 64"),
    (["--device", "nonsense"], "--device"),
    (["--modality", "XYZ"], "unknown modality"),
])
def test_bad_arguments_fail_before_any_work(flags, words, tmp_path, ct_small, capsys, no_model_loading):
    out = tmp_path / "out"
    assert main(["restore", str(ct_small), "-o", str(out), "--model", "x", *flags]) == 2
    assert words in _one_line(capsys)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_up_front(tmp_path, ct_small, capsys, no_model_loading):
    assert main(["restore", str(ct_small), "-o", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_line(capsys)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def _pair(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((16, 16), np.float32))
    np.save(tmp_path / "t.npy", np.ones((16, 16), np.float32))
    return str(tmp_path / "p.npy"), str(tmp_path / "t.npy")


def test_read_only_output_is_refused_up_front_by_every_command(tmp_path, read_only, ct_small, capsys,
                                                                no_model_loading):
    p, t = _pair(tmp_path)
    commands = [
        ["restore", str(ct_small), "-o", str(read_only / "out")],
        ["simulate", "ct-lowdose", str(ct_small), "-o", str(read_only / "out"), "--dose", "0.5"],
        ["segment", str(ct_small), "-o", str(read_only / "out")],
        ["evaluate", "--pred", p, "--target", t, "--csv", str(read_only / "m.csv")],
        ["evaluate", "--pred", p, "--target", t, "--figure", str(read_only / "f.png")],
        ["train", str(ROOT / "configs" / "ct_nafnet_tiny.yaml"), f"train.out_dir={read_only / 'run'}"],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        line = _one_line(capsys)
        assert "read-only" in line and str(read_only) in line, line
    assert list(read_only.iterdir()) == []


def test_window_with_a_negative_value_parses(tmp_path, capsys):
    p, t = _pair(tmp_path)
    for flags in (["--window", "-160,240"], ["--window=-160,240"]):
        assert main(["evaluate", "--pred", p, "--target", t, *flags]) == 0
        assert "clipped to [-160, 240]" in capsys.readouterr().out
    assert main(["evaluate", "--pred", p, "--target", t, "--window", "240,-160"]) == 2
    assert "lo < hi" in _one_line(capsys)


def test_evaluate_two_output_folders_pairs_by_relative_path(tmp_path, ct_base, capsys):
    for side, shift in (("pred", 0), ("target", 3)):
        for sub in ("a", "b"):  # the same file name in two folders: paired by relative path, not by name
            (tmp_path / side / sub).mkdir(parents=True)
            np.save(tmp_path / side / sub / "x.npy", np.full((16, 16), 10.0 * (sub == "b") + shift, np.float32))
        write_series(ct_base, tmp_path / side / "ct", 2, prefix=side)  # series: paired by their folder
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"),
                 "--no-window", "--data-range", "100"]) == 0
    out = capsys.readouterr().out
    assert "a/x.npy" in out and "b/x.npy" in out and "ct " in out


def test_modality_mismatch_is_refused_naming_model_and_modality(tmp_path, ct_base, tiny_ct_model, capsys):
    from medir.io import read_image

    cr = write_slice(ct_base, tmp_path / "chest.dcm", series_uid="1.2.3.4", modality="CR")
    assert read_image(cr).meta.modality == "CR"
    out = tmp_path / "out"
    assert main(["restore", str(cr), "-o", str(out), "--model", str(tiny_ct_model)]) == 2
    line = _one_line(capsys)
    assert "chest.dcm is CR" in line and "tiny-ct" in line and "--allow-modality-mismatch" in line
    assert main(["restore", str(cr), "-o", str(out), "--model", str(tiny_ct_model), "--allow-modality-mismatch"]) == 0
    assert read_image(out / "chest.dcm").meta.modality == "CR"  # the output keeps the input's modality
    assert main(["restore", str(cr), "-o", str(tmp_path / "o2")]) == 2  # no --model: no CR model ships
    line = _one_line(capsys)
    assert "no model for CR" in line and "models exist for CT" in line
    np.save(tmp_path / "x.npy", np.zeros((32, 32), np.float32))
    assert main(["restore", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o3"), "--modality", "CR"]) == 2
    assert "no model for CR" in _one_line(capsys)  # --modality CR is accepted


def test_old_model_cards_without_modalities_still_load(tmp_path):
    import json

    from medir.engine.modelfile import ModelCard, load_card

    card = json.loads((ROOT / "medir" / "shipped" / "ct-ldct-nafnet" / "config.json").read_text())
    card.pop("modalities")
    assert ModelCard.from_json(json.dumps(card), "old").modalities == ["CT"]
    assert load_card("ct-ldct-nafnet").modalities == ["CT"]


def test_segment_more_than_65535_regions_and_zero_pixel_spacing(tmp_path, ct_base, monkeypatch, capsys):
    from PIL import Image as PILImage

    import medir.commands.segment as segment
    from medir.priors.base import Partition

    class EveryPixel:  # stands in for the classical segmenter on an 8000x8000 scan: one region per pixel
        name = "every-pixel"

        def __call__(self, image, modality=None):
            labels = np.arange(image.size, dtype=np.int32).reshape(image.shape)
            return Partition(labels, np.ones(image.size, np.float32))

    monkeypatch.setattr(segment, "build_segmenter", lambda *a: EveryPixel())
    PILImage.fromarray(np.zeros((300, 300), np.uint8)).save(tmp_path / "big.png")
    assert main(["segment", str(tmp_path / "big.png"), "-o", str(tmp_path / "out"), "--modality", "SM"]) == 0
    labels = np.array(PILImage.open(tmp_path / "out" / "big_labels.tif"))
    assert labels.max() == 300 * 300 - 1 and len(np.unique(labels)) == 300 * 300
    monkeypatch.undo()
    zero = write_slice(ct_base, tmp_path / "zero.dcm", series_uid="1.2.3.5", spacing=[0, 0])
    assert main(["segment", str(zero), "-o", str(tmp_path / "out2")]) == 0
    assert "pixel spacing (0, 0)" in capsys.readouterr().err
    import nibabel as nib

    assert np.allclose(np.abs(np.diag(nib.load(tmp_path / "out2" / "zero_labels.nii.gz").affine))[:2], 1.0)


def test_ct_perfusion_map_is_refused_by_an_hu_model(tmp_path, ct_base, tiny_ct_model, capsys):
    import pydicom

    path = write_slice(ct_base, tmp_path / "cbf.dcm", series_uid="1.2.3.6")
    ds = pydicom.dcmread(path)
    ds.ImageType = ["DERIVED", "SECONDARY", "PERFUSION", "CBF"]
    ds.save_as(path)
    assert main(["restore", str(path), "-o", str(tmp_path / "o"), "--model", str(tiny_ct_model)]) == 2
    line = _one_line(capsys)
    assert "parametric map" in line and "CBF" in line and "tiny-ct" in line
