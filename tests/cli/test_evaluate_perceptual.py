"""``medir evaluate --perceptual / --features``: LPIPS per file and FID over slices, labelled with the network."""

import csv

import numpy as np
import torch

from medir.cli import main


def _folders(tmp_path, noise: dict[str, float]):
    """Two reference volumes (3 slices of 32x32, a.u.) and their copies with Gaussian noise of the given std."""
    rng = np.random.default_rng(0)
    for name, sigma in noise.items():
        target = rng.uniform(0, 100, (3, 32, 32)).astype(np.float32)
        for side, image in (("target", target), ("pred", target + rng.normal(0, sigma, target.shape))):
            (tmp_path / side).mkdir(exist_ok=True)
            np.save(tmp_path / side / f"{name}.npy", image.astype(np.float32))
    return ["--pred", str(tmp_path / "pred"), "--target", str(tmp_path / "target"), "--no-window"]


def test_perceptual_adds_lpips_and_fid_with_the_default_label(tmp_path, capsys):
    args = _folders(tmp_path, {"a": 2.0, "b": 20.0})
    assert main(["evaluate", *args, "--perceptual", "--csv", str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "LPIPS" in out and "not standard FID/LPIPS" in out and "uniform weights" in out
    assert "FID (VGG16 relu5_3, not Inception)" in out and "N=6 slices" in out
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "m.csv"))}
    assert 0 < float(rows["a.npy"]["lpips"]) < float(rows["b.npy"]["lpips"])  # more noise, larger distance
    assert "random-init VGG16" in rows["a.npy"]["perceptual_network"]


def test_features_path_loads_weights_and_bad_paths_are_one_line_errors(tmp_path, capsys):
    from medir.metrics.perceptual import feature_network

    args = _folders(tmp_path, {"a": 5.0})
    torch.save(feature_network().state_dict(), tmp_path / "vgg16.pth")
    assert main(["evaluate", *args, "--features", str(tmp_path / "vgg16.pth")]) == 0
    out = capsys.readouterr().out
    assert "perceptual network: VGG16 weights vgg16.pth" in out and "LPIPS" in out
    for flag in ("--features", "--lpips-weights"):
        assert main(["evaluate", *args, "--perceptual", flag, str(tmp_path / "absent.pth")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "absent.pth is not a file" in err[0], err
    without = main(["evaluate", *args])
    assert without == 0 and "LPIPS" not in capsys.readouterr().out
