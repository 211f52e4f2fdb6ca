import hashlib

import nibabel as nib
import numpy as np
import pydicom

from medir.cli import main


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_ct_dicom_end_to_end(ct_small, tiny_ct_model, tmp_path, capsys):
    before = _sha(ct_small)
    out = tmp_path / "restored.dcm"
    assert main(["restore", str(ct_small), "-o", str(out), "--model", str(tiny_ct_model)]) == 0
    src, ds = pydicom.dcmread(ct_small), pydicom.dcmread(out)
    assert (ds.Rows, ds.Columns) == (src.Rows, src.Columns)
    assert list(ds.PixelSpacing) == list(src.PixelSpacing)
    assert ds.PatientID == src.PatientID
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert "DERIVED" in ds.ImageType
    assert "tiny-ct" in ds.DerivationDescription
    assert _sha(ct_small) == before  # the input is untouched
    # the same command again: finished, skipped and said so, output untouched
    written = _sha(out)
    capsys.readouterr()
    assert main(["restore", str(ct_small), "-o", str(out), "--model", str(tiny_ct_model)]) == 0
    assert "already done" in capsys.readouterr().out and _sha(out) == written
    # other settings without --force: refused, exit 2, one line on stderr, output untouched
    assert main(["restore", str(ct_small), "-o", str(out), "--model", str(tiny_ct_model), "--tile", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert _sha(out) == written
    assert main(["restore", str(ct_small), "-o", str(out), "--model", str(tiny_ct_model), "--force"]) == 0


def test_restore_never_prints_patient_identity(ct_small, tiny_ct_model, tmp_path, capsys):
    src = pydicom.dcmread(ct_small)
    main(["restore", str(ct_small), "-o", str(tmp_path / "o.dcm"), "--model", str(tiny_ct_model)])
    main(["restore", str(ct_small), "-o", str(tmp_path / "o.dcm"), "--model", str(tiny_ct_model)])
    text = "".join(capsys.readouterr())
    assert str(src.PatientName) not in text and str(src.PatientID) not in text


def test_restore_nifti_volume_keeps_shape_and_affine(tiny_ct_model, tmp_path):
    data = np.random.default_rng(0).normal(0, 50, size=(40, 36, 3)).astype(np.float32)
    affine = np.diag([0.7, 0.7, 3.0, 1.0])
    affine[:3, 3] = [-10, 20, 5]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "vol.nii.gz")
    out = tmp_path / "out.nii.gz"
    code = main(["restore", str(tmp_path / "vol.nii.gz"), "-o", str(out), "--model", str(tiny_ct_model), "--modality", "CT"])
    assert code == 0
    back = nib.load(out)
    assert back.shape == data.shape
    np.testing.assert_allclose(back.affine, affine, atol=1e-6)


def test_restore_series_folder_gives_series_of_same_length(ct_series, tiny_ct_model, tmp_path):
    out = tmp_path / "out"
    assert main(["restore", str(ct_series), "-o", str(out), "--model", str(tiny_ct_model), "--tile", "64"]) == 0
    files = sorted((out / "series").iterdir())
    assert len(files) == 3
    assert len({pydicom.dcmread(f).SeriesInstanceUID for f in files}) == 1


def _bad_inputs(tmp_path, ct_small):
    text = tmp_path / "text.dcm"
    text.write_text("not dicom")
    cut = tmp_path / "cut.dcm"
    ds = pydicom.dcmread(ct_small)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    ds.save_as(cut)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) - 20000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.npy"
    arr = np.zeros((32, 32), np.float32)
    arr[3, 4] = np.nan
    np.save(nan, arr)
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((1, 1), np.float32))
    return [text, cut, empty, nan, one]


def test_each_bad_input_is_one_line_and_exit_2(ct_small, tiny_ct_model, tmp_path, capsys):
    for bad in _bad_inputs(tmp_path, ct_small):
        code = main(["restore", str(bad), "-o", str(tmp_path / "out"), "--model", str(tiny_ct_model), "--modality", "CT"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, bad.name
        assert len(err) == 1 and bad.name in err[0], err
        assert "Traceback" not in err[0]


def test_model_file_that_is_not_a_model(ct_small, tmp_path, capsys):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"garbage")
    (fake / "config.json").write_text("{not json")
    assert main(["restore", str(ct_small), "-o", str(tmp_path / "o.dcm"), "--model", str(fake)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not" in err[0] and "model" in err[0]


def test_batch_continues_past_bad_files_and_reports_all(ct_small, tiny_ct_model, tmp_path, capsys):
    bads = _bad_inputs(tmp_path, ct_small)[:2]
    out = tmp_path / "batch"
    code = main(["restore", str(ct_small), *map(str, bads), "-o", str(out), "--model", str(tiny_ct_model)])
    err = capsys.readouterr().err
    assert code == 1
    assert len(list(out.rglob(ct_small.name))) == 1  # mirrored below the inputs' common root
    assert all(b.name in err for b in bads)
    assert main(["restore", *map(str, bads), "-o", str(out), "--model", str(tiny_ct_model)]) == 2


def test_shards_split_inputs_without_overlap(tiny_ct_model, tmp_path):
    for k in range(5):
        np.save(tmp_path / f"s{k}.npy", np.full((24, 24), 40.0 * k, np.float32))
    outs = []
    for i in range(2):
        out = tmp_path / f"out{i}"
        args = ["restore", *[str(tmp_path / f"s{k}.npy") for k in range(5)], "-o", str(out)]
        assert main(args + ["--model", str(tiny_ct_model), "--modality", "CT", "--shard", f"{i}/2"]) == 0
        outs.append({p.name for p in out.iterdir() if not p.name.startswith(".")})
    assert outs[0].isdisjoint(outs[1]) and len(outs[0] | outs[1]) == 5


def test_no_model_for_modality_says_so(tmp_path, capsys):
    # ultrasound: a modality no shipped model restores (CT, MR, ... have theirs)
    np.save(tmp_path / "us.npy", np.ones((32, 32), np.float32))
    assert main(["restore", str(tmp_path / "us.npy"), "-o", str(tmp_path / "o"), "--modality", "US"]) == 2
    err = capsys.readouterr().err
    assert "no model for US" in err and "models exist for" in err and "CT" in err
