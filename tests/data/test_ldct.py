"""The LDCT data recipe: lossless targets only, disjoint splits, each real scan's own dose."""

import numpy as np
import pytest
import torch

from medir.data.ldct import PSEUDO_SPLIT, REAL_SPLIT, real_ct
from medir.errors import MedirError
from medir.physics.ct import LowDoseCT
from medir.physics.ct_noise import estimate_scan_dose, neighbour_correlation, nps_peak


def test_lossy_slice_is_refused_as_a_target():
    with pytest.raises(MedirError, match="lossy"):
        real_ct("693_J2KI.dcm")  # JPEG 2000 at ~338:1


def test_splits_share_no_slice():
    train = {n for n, s in REAL_SPLIT.items() if s == "train"}
    test = {n for n, s in REAL_SPLIT.items() if s == "test"}
    assert train and test and not train & test
    assert "693_J2KI.dcm" not in REAL_SPLIT  # the lossy copy of a training slice is never used
    zs = {split: {z for z, _ in PSEUDO_SPLIT[split]} for split in ("train", "val", "test")}
    assert not zs["train"] & zs["test"] and not zs["val"] & (zs["train"] | zs["test"])
    # model selection never sees the held-out slices: validation pseudo-CT lies strictly between train and test
    assert max(zs["train"]) < min(zs["val"]) and max(zs["val"]) < min(zs["test"])


def test_scan_dose_is_recovered_from_a_scans_own_noise():
    """A phantom scanned at 0.3 x the reference dose reads as a 0.3-dose scan."""
    n, pixel = 128, 2.0
    c = np.arange(n) - n / 2 + 0.5
    body = np.where(np.hypot(c[:, None], c[None, :]) < 0.45 * n, 40.0, -1000.0).astype(np.float32)
    op = LowDoseCT(dose=0.3, scan_dose=None, pixel_size_mm=pixel, detector_mm=2.0)
    noisy = body + op.noise(torch.from_numpy(body)[None, None], generator=torch.Generator().manual_seed(0))[0, 0].numpy()
    assert estimate_scan_dose(noisy, pixel_mm=pixel, detector_mm=2.0) == pytest.approx(0.3, rel=0.3)


def test_inserted_noise_is_correlated_like_ct_noise():
    n, pixel = 128, 0.5
    op = LowDoseCT(dose=0.25, scan_dose=None, pixel_size_mm=pixel)
    noise = op.noise(torch.zeros(1, 1, n, n), generator=torch.Generator().manual_seed(0))[0, 0].numpy()
    white = np.random.default_rng(0).normal(size=(n, n))
    assert neighbour_correlation(noise) > 0.5 and abs(neighbour_correlation(white)) < 0.05
    assert 0.1 < nps_peak(noise[32:96, 32:96], pixel_mm=pixel) < 0.45  # a standard kernel peaks at 0.2-0.4 c/mm


def test_a_pairs_folder_is_refused_before_work_unless_resumed_with_the_same_settings_or_forced(tmp_path):
    from medir.data.ldct import claim_pairs_folder

    settings = {"realizations": 6, "fractions": [0.005, 0.5]}
    claim_pairs_folder(tmp_path, settings, resume=False, force=False)  # an empty folder is taken
    (tmp_path / "train" / "lq").mkdir(parents=True)
    (tmp_path / "train" / "lq" / "a_r0.npz").write_bytes(b"pair")
    with pytest.raises(MedirError, match="--resume"):
        claim_pairs_folder(tmp_path, settings, resume=False, force=False)
    claim_pairs_folder(tmp_path, settings, resume=True, force=False)
    with pytest.raises(MedirError, match="other settings"):
        claim_pairs_folder(tmp_path, {**settings, "realizations": 10}, resume=True, force=False)
    claim_pairs_folder(tmp_path, {**settings, "realizations": 10}, resume=False, force=True)
    assert (tmp_path / "train" / "lq" / "a_r0.npz").read_bytes() == b"pair"  # claiming never touches the pairs


def test_a_pairs_folder_that_is_a_dangling_link_or_a_file_is_refused_in_words(tmp_path):
    from medir.data.ldct import claim_pairs_folder

    link = tmp_path / "pairs"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(MedirError, match="missing folder"):
        claim_pairs_folder(link, {}, resume=False, force=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MedirError, match="is a file"):
        claim_pairs_folder(tmp_path / "file", {}, resume=False, force=True)


def test_noise_kernels_add_textures_and_leave_the_default_pairs_unchanged(tmp_path, monkeypatch):
    """``kernels``: validation gets every level with every kernel (the first keeps the plain tags and the same draw
    as a single-kernel run); a sharper kernel puts the inserted noise at higher frequencies."""
    import medir.data.ldct as ldct
    from medir.io import Image, ImageMeta, read_image

    n, pixel = 96, 1.0
    c = np.arange(n) - n / 2 + 0.5
    body = np.where(np.hypot(c[:, None], c[None, :]) < 0.4 * n, 40.0, -1000.0).astype(np.float32)
    phantom = Image(body, ImageMeta(modality="CT", units="HU", spacing=(pixel, pixel)))
    monkeypatch.setattr(ldct, "ldct_sources", lambda split, extra=None: [("disk", phantom, False)])
    ldct.write_ldct_pairs(tmp_path / "one", realizations=2)
    ldct.write_ldct_pairs(tmp_path / "two", realizations=6, kernels=("hann", "ramp"))
    val = sorted(p.name for p in (tmp_path / "two" / "val" / "lq").iterdir())
    assert val == ["disk_q.npz", "disk_q_ramp.npz", "disk_s.npz", "disk_s_ramp.npz"]
    one = read_image(tmp_path / "one" / "val" / "lq" / "disk_q.npz").array
    np.testing.assert_array_equal(read_image(tmp_path / "two" / "val" / "lq" / "disk_q.npz").array, one)
    ramp = read_image(tmp_path / "two" / "val" / "lq" / "disk_q_ramp.npz").array
    inner = slice(n // 2 - 24, n // 2 + 24)
    assert nps_peak(ramp[inner, inner] - 40.0, pixel_mm=pixel) > nps_peak(one[inner, inner] - 40.0, pixel_mm=pixel)
    assert len(list((tmp_path / "two" / "train" / "lq").iterdir())) == 6
    with pytest.raises(MedirError, match="distinct FBP windows"):
        ldct.write_ldct_pairs(tmp_path / "bad", kernels=("hann", "sharp"))


def test_the_command_refuses_bad_kernels_and_unusable_folders_in_one_line_exit_2(tmp_path, capsys):
    from medir.data.ldct import main

    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "out"), "--pairs", "--kernels", "hann", "sharp"])
    assert stop.value.code == 2 and "sharp" in capsys.readouterr().err
    occupied = tmp_path / "file"
    occupied.write_text("not a folder")
    assert main([str(occupied), "--pairs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0]
    assert occupied.read_text() == "not a folder"
