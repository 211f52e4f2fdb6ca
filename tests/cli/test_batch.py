"""Batches as hospital exports look: mixed folders, DICOMDIR, same names, --force, reruns, Ctrl-C."""

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage

from medir.cli import main
from medir.io import discover, read_item

from .conftest import leftovers, visible_files, write_series, write_slice


def _restore(inputs, out, model, *extra):
    return main(["restore", *map(str, inputs), "-o", str(out), "--model", str(model), "--tile", "0", *extra])


def _ctrl_c_at_call(n: int, real):
    """``real``, except that its n-th call raises KeyboardInterrupt, as Ctrl-C in the middle of a batch."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapped


def _mixed_folder(root, base):
    """Two interleaved series, one slice of another size, a PNG, a NIfTI, a text file and a broken DICOM."""
    import nibabel as nib

    folder = root / "export"
    uid_a = write_series(base, folder, 3, prefix="a")
    uid_b = write_series(base, folder, 2, prefix="b")
    write_slice(base, folder / "a_small.dcm", series_uid=uid_a, k=5, crop=64)  # same UID, other geometry
    PILImage.fromarray(np.full((32, 32), 100, np.uint8)).save(folder / "photo.png")
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.float32), np.eye(4)), folder / "vol.nii.gz")
    (folder / "notes.txt").write_text("hello")
    (folder / "broken.dcm").write_text("not dicom")
    return folder, uid_a, uid_b


def test_mixed_folder_groups_series_and_lists_what_it_skips(tmp_path, ct_base):
    folder, uid_a, uid_b = _mixed_folder(tmp_path, ct_base)
    found = discover([folder])
    kinds = {it.label: it.kind for it in found.items}
    series = [it for it in found.items if it.kind == "series"]
    assert sorted(len(it.files) for it in series) == [2, 3]
    assert {str(pydicom.dcmread(it.files[0]).SeriesInstanceUID) for it in series} == {uid_a, uid_b}
    assert kinds["a_small.dcm"] == "dicom"  # same series UID, other geometry: not stacked with the others
    assert kinds["photo.png"] == "raster" and kinds["vol.nii.gz"] == "nifti"  # beside DICOM, still inputs
    assert kinds["broken.dcm"] == "invalid"
    assert found.skipped == [("notes.txt", "is not a format medir reads (DICOM, NIfTI, PNG/TIFF, NPY/NPZ)")]
    assert len({it.rel for it in found.items}) == len(found.items)  # distinct outputs


def test_mixed_folder_restore_fails_only_the_bad_parts(tmp_path, ct_base, tiny_ct_model, capsys):
    folder, _, _ = _mixed_folder(tmp_path, ct_base)
    cut = folder / "a1.dcm"  # one truncated slice in series a: series a fails, series b does not
    cut.write_bytes(cut.read_bytes()[:-5000])
    out = tmp_path / "out"
    assert _restore([folder], out, tiny_ct_model) == 1
    captured = capsys.readouterr()
    err, text = captured.err, captured.out
    assert "broken.dcm" in err and "photo.png" in err and "does not say its modality" in err
    assert "skipped notes.txt: is not a format" in text
    assert "restore: 2 done, 1 skipped, 4 failed" in text  # series b and a_small.dcm done
    series_b = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(series_b) == 1 and series_b[0].name.startswith("series1_") and len(list(series_b[0].iterdir())) == 2
    assert (out / "a_small.dcm").exists() and not leftovers(out)


def test_dicomdir_is_followed_and_each_series_restored(tmp_path, tiny_ct_model, capsys):
    from pydicom.data import get_testdata_file

    dicomdir = get_testdata_file("DICOMDIR")
    found = discover([dicomdir])
    series = {it.label: len(it.files) for it in found.items if it.kind == "series"}
    assert series == {"77654033/CT2": 4, "98892001/CT5N": 5}
    assert len(found.items) == 24 and not found.skipped
    cr = next(it for it in found.items if it.label.startswith("77654033/CR1"))
    assert read_item(cr).meta.modality == "CR"  # read as CR, not OT
    out = tmp_path / "out"
    assert _restore([dicomdir], out, tiny_ct_model) == 1  # CR and MR files are refused by the CT model
    err = capsys.readouterr().err
    assert "is CR but model" in err and "is MR but model" in err
    assert len(list((out / "77654033" / "CT2").glob("*.dcm"))) == 4
    assert len(list((out / "98892001" / "CT5N").glob("*.dcm"))) == 5


def test_same_names_in_two_folders_get_two_outputs(tmp_path, tiny_ct_model):
    for name, value in (("a", 0.0), ("b", 300.0)):
        (tmp_path / "in" / name).mkdir(parents=True)
        np.save(tmp_path / "in" / name / "x.npy", np.full((32, 32), value, np.float32))
    out = tmp_path / "out"
    assert _restore([tmp_path / "in"], out, tiny_ct_model, "--modality", "CT") == 0
    a, b = np.load(out / "a" / "x.npy"), np.load(out / "b" / "x.npy")
    assert abs(float(b.mean() - a.mean())) > 100  # two outputs, each from its own input
    out2 = tmp_path / "out2"  # the same files given one by one: mirrored below their common root
    assert _restore([tmp_path / "in" / "a" / "x.npy", tmp_path / "in" / "b" / "x.npy"], out2, tiny_ct_model,
                    "--modality", "CT") == 0
    assert visible_files(out2).keys() == {"a/x.npy", "b/x.npy"}


def test_force_only_replaces_the_output_of_the_same_input(tmp_path, tiny_ct_model, capsys):
    for name, value in (("a", 0.0), ("b", 300.0)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "x.npy", np.full((32, 32), value, np.float32))
    out = tmp_path / "out"
    assert _restore([tmp_path / "a" / "x.npy"], out, tiny_ct_model, "--modality", "CT") == 0
    before = (out / "x.npy").read_bytes()
    capsys.readouterr()
    assert _restore([tmp_path / "b" / "x.npy"], out, tiny_ct_model, "--modality", "CT", "--force") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another input" in err[0]
    assert (out / "x.npy").read_bytes() == before
    simulate = ["simulate", "ct-lowdose", str(tmp_path / "b" / "x.npy"), "-o", str(out), "--modality", "CT", "--force"]
    assert main(simulate) == 2 and "another input" in capsys.readouterr().err  # whichever command wrote it
    assert (out / "x.npy").read_bytes() == before
    assert _restore([tmp_path / "a" / "x.npy"], out, tiny_ct_model, "--modality", "CT", "--force") == 0


def test_ctrl_c_then_rerun_skips_finished_and_reports_no_failure(tmp_path, tiny_ct_model, monkeypatch, capsys):
    import medir.engine.inference as inference

    for k in range(4):
        np.save(tmp_path / f"s{k}.npy", np.full((32, 32), 50.0 * k, np.float32))
    inputs = [tmp_path / f"s{k}.npy" for k in range(4)]
    reference = tmp_path / "reference"
    assert _restore(inputs, reference, tiny_ct_model, "--modality", "CT") == 0
    real = inference.restore_image
    monkeypatch.setattr(inference, "restore_image", _ctrl_c_at_call(3, real))
    out = tmp_path / "out"
    assert _restore(inputs, out, tiny_ct_model, "--modality", "CT") == 130
    monkeypatch.setattr(inference, "restore_image", real)
    capsys.readouterr()
    assert _restore(inputs, out, tiny_ct_model, "--modality", "CT") == 0
    captured = capsys.readouterr()
    assert "restore: 2 done, 2 skipped, 0 failed" in captured.out and "already done" in captured.out
    assert captured.err.count("failed") == 0
    assert visible_files(out) == visible_files(reference) and not leftovers(out)


def test_simulate_manifest_is_complete_after_an_interrupt(tmp_path, monkeypatch):
    import json

    import medir.commands.simulate as simulate

    for k in range(3):
        np.save(tmp_path / f"s{k}.npy", np.full((32, 32), 40.0 + k, np.float32))
    args = ["simulate", "ct-lowdose", *[str(tmp_path / f"s{k}.npy") for k in range(3)], "-o", str(tmp_path / "o"),
            "--modality", "CT", "--dose", "0.5"]
    real = simulate.simulate_image
    monkeypatch.setattr(simulate, "simulate_image", _ctrl_c_at_call(2, real))
    assert main(args) == 130
    lines = (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["output"] for line in lines] == ["s0.npy"]  # what is done is in the manifest
    monkeypatch.setattr(simulate, "simulate_image", real)
    assert main(args) == 0
    lines = (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["output"] for line in lines) == ["s0.npy", "s1.npy", "s2.npy"]
