import hashlib

import nibabel as nib
import numpy as np
import pydicom

from medir.cli import main


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hu(path):
    ds = pydicom.dcmread(path)
    return ds, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_uncertainty_writes_image_and_map_as_separate_derived_series(ct_small, tiny_ct_model, tmp_path, capsys):
    out = tmp_path / "o" / "restored.dcm"
    base = ["restore", str(ct_small), "-o", str(out), "--model", str(tiny_ct_model), "--tile", "64"]
    assert main(base + ["--uncertainty"]) == 0
    unc = tmp_path / "o" / "restored_uncertainty.dcm"
    (img, mean), (ds, std) = _hu(out), _hu(unc)
    src = pydicom.dcmread(ct_small)
    assert len({img.SeriesInstanceUID, ds.SeriesInstanceUID, src.SeriesInstanceUID}) == 3
    assert "DERIVED" in ds.ImageType and "uncertainty" in ds.SeriesDescription and "HU" in ds.SeriesDescription
    assert "8 flips/rotations" in ds.DerivationDescription and "tiny-ct" in ds.DerivationDescription
    assert std.shape == mean.shape == (src.Rows, src.Columns)
    assert std.min() >= 0 and 0.01 < float(ds.RescaleSlope) < 1  # finer than whole HU, never negative
    assert std.max() > 0.1  # a random network is not flip/rotation equivariant
    # the restored image is the self-ensemble mean: the same as --ensemble gives
    ens = tmp_path / "ens.dcm"
    assert main(["restore", str(ct_small), "-o", str(ens), "--model", str(tiny_ct_model), "--tile", "64",
                 "--ensemble"]) == 0
    assert np.abs(_hu(ens)[1] - mean).max() <= 1.0  # both rounded to whole HU on writing
    assert not (tmp_path / "ens_uncertainty.dcm").exists()
    # a rerun skips both; other settings without --force are refused and leave both untouched
    written = (_sha(out), _sha(unc))
    capsys.readouterr()
    assert main(base + ["--uncertainty"]) == 0 and "already done" in capsys.readouterr().out
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]
    assert (_sha(out), _sha(unc)) == written


def test_uncertainty_refuses_to_overwrite_a_foreign_file_without_force(tiny_ct_model, tmp_path, capsys):
    vol = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(0, 50, (24, 20, 2)).astype(np.float32), np.eye(4)),
             vol)
    out = tmp_path / "out.nii.gz"
    foreign = tmp_path / "out_uncertainty.nii.gz"
    foreign.write_bytes(b"not ours")
    argv = ["restore", str(vol), "-o", str(out), "--model", str(tiny_ct_model), "--modality", "CT", "--uncertainty"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out_uncertainty.nii.gz" in err[0] and "--force" in err[0]
    assert foreign.read_bytes() == b"not ours" and not out.exists()
    assert main(argv + ["--force"]) == 0
    std = nib.load(foreign).get_fdata()
    assert std.shape == (24, 20, 2) and std.min() >= 0 and std.max() > 0


def test_fine_rescale_leaves_the_source_datasets_alone(ct_small):
    from medir.commands._uncertainty import with_fine_rescale
    from medir.io import read_image

    image = read_image(ct_small)
    slope = float(image.meta.source[0].RescaleSlope)
    std = with_fine_rescale(type(image)(np.full(image.array.shape, 3.0, np.float32), image.meta))
    assert float(std.meta.source[0].RescaleSlope) < 0.01 and float(image.meta.source[0].RescaleSlope) == slope


def test_sampler_options_without_aux_are_one_line_errors(tiny_ct_model, ct_small, tmp_path, capsys):
    for extra in (["--samples", "4"], ["--steps", "3"], ["--sampler", "ddpm"]):
        assert main(["restore", str(ct_small), "-o", str(tmp_path / "x.dcm"), "--model", str(tiny_ct_model),
                     *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--aux" in err[0]
    assert not (tmp_path / "x.dcm").exists()


def test_a_card_with_self_ensemble_restores_by_self_ensemble_unless_told_not_to(ct_small, tiny_ct_model, tmp_path,
                                                                                capsys):
    import json
    import shutil

    model = tmp_path / "x8-model"
    shutil.copytree(tiny_ct_model, model)
    card = json.loads((model / "config.json").read_text())
    assert card["self_ensemble"] is False  # cards default to one pass
    card["self_ensemble"] = True
    (model / "config.json").write_text(json.dumps(card))
    run = lambda name, *flags: main(["restore", str(ct_small), "-o", str(tmp_path / name), "--model", *flags])
    assert run("default.dcm", str(model)) == 0
    assert run("ensemble.dcm", str(tiny_ct_model), "--ensemble") == 0
    assert run("plain.dcm", str(model), "--no-ensemble") == 0
    assert run("plain_ref.dcm", str(tiny_ct_model)) == 0
    hu = {n: _hu(tmp_path / f"{n}.dcm")[1] for n in ("default", "ensemble", "plain", "plain_ref")}
    np.testing.assert_array_equal(hu["default"], hu["ensemble"])
    np.testing.assert_array_equal(hu["plain"], hu["plain_ref"])
    assert np.abs(hu["default"] - hu["plain"]).mean() > 0.1  # a random network is not flip/rotation equivariant
    assert "8 flips/rotations" in pydicom.dcmread(tmp_path / "default.dcm").DerivationDescription
    capsys.readouterr()
    assert run("bad.dcm", str(model), "--no-ensemble", "--uncertainty") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-ensemble" in err[0]
