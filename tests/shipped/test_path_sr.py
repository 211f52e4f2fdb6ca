"""The shipped 4x pathology super-resolution model (sm-sr4-edsr), its data split, baselines and user path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medir.cli import main

NAME = "sm-sr4-edsr"


def _card_and_model():
    from medir.engine.modelfile import load_model

    return load_model(NAME)


def degrade(hq: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/4, W/4, 3) by medir's path-sr (bicubic x4 down, 8-bit)."""
    from medir.physics import simulate

    x = torch.from_numpy(np.ascontiguousarray(hq.transpose(2, 0, 1), dtype=np.float32))[None]
    return simulate("path-sr", x, scale=4, upsample=False)[0].numpy().transpose(1, 2, 0)


def restore(model, card, lq: np.ndarray, *, tile: int | None = 512, overlap: int = 32) -> np.ndarray:
    """The inference engine ``medir restore`` runs; output rounded to 8 bits."""
    from medir.engine.inference import restore_image
    from medir.io.image import Image, ImageMeta

    meta = ImageMeta(modality="SM", units="RGB8", channels=3, source_format="raster", source={"dtype": "uint8"})
    return np.clip(np.rint(restore_image(Image(lq, meta), model, card, tile=tile, overlap=overlap).array), 0, 255)


def upsample(lq: np.ndarray, kind: str, param: float) -> np.ndarray:
    from medir.baselines import Interpolate

    x = torch.from_numpy(lq.transpose(2, 0, 1).astype(np.float64))[None]
    return np.clip(np.rint(Interpolate(scale=4, kind=kind, param=param)(x)[0].numpy().transpose(1, 2, 0)), 0, 255)


def score(pred: np.ndarray, hq: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM on RGB, data range 255, 4 border pixels cropped."""
    from medir.metrics import crop_border, psnr, ssim

    p, t = (crop_border(a.astype(np.float64), 4).transpose(2, 0, 1) for a in (pred, hq))
    return psnr(p, t, data_range=255.0), ssim(p, t, data_range=255.0)


def held_out_crop() -> np.ndarray:
    """128x128 RGB uint8 from ihc.png's held-out columns 384..511 (never trained on)."""
    from medir.data.pathology import TEST_COLS, ihc

    return ihc()[192:320, TEST_COLS[0]:TEST_COLS[0] + 128]


def test_model_ships_with_its_card():
    from medir.engine.modelfile import load_card, shipped_by_modality, shipped_models

    assert NAME in shipped_models()
    card = load_card(NAME)
    assert card.modality == "SM" and card.task == "path-sr" and card.scale == 4
    assert card.in_channels == card.out_channels == 3 and card.intensity["units"] == "RGB8"
    assert NAME in shipped_by_modality()["SM"]
    assert card.metrics and card.training  # numbers and recipe travel with it
    model, _ = _card_and_model()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_model_beats_bicubic_and_lanczos_on_held_out_ihc():
    hq = held_out_crop()
    lq = degrade(hq)
    assert lq.shape == (32, 32, 3)
    model, card = _card_and_model()
    sr = restore(model, card, lq)
    assert sr.shape == hq.shape
    ours = score(sr, hq)
    for kind, param in (("keys", -0.75), ("keys", -0.5), ("lanczos", 3.0)):  # bicubic (PyTorch, MATLAB), Lanczos-3
        base = score(upsample(lq, kind, param), hq)
        # measured: 29.50 dB / 0.742 against Lanczos-3 28.44 / 0.695 and bicubic 28.28 / 0.688
        assert ours[0] > base[0] + 0.6 and ours[1] > base[1] + 0.03, (kind, param, ours, base)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_restore_cli_gives_4x_rgb_8bit(tmp_path, suffix):
    from medir.io import read_image, write_image
    from medir.io.image import Image, ImageMeta

    src = tmp_path / f"slide{suffix}"
    meta = ImageMeta(modality="SM", units="RGB8", channels=3, source_format="raster", source={"dtype": "uint8"})
    write_image(Image(np.ascontiguousarray(held_out_crop()[:48, :80]), meta), src)
    out = tmp_path / f"out{suffix}"
    assert main(["restore", str(src), "-o", str(out), "--model", NAME, "--modality", "SM"]) == 0
    got = read_image(out)
    assert got.array.shape == (192, 320, 3) and got.meta.source["dtype"] == "uint8" and got.meta.channels == 3
    assert got.array.min() >= 0 and got.array.max() <= 255 and got.array.std() > 10


def test_restored_tiff_keeps_a_4x_finer_pixel_size(tmp_path):
    import tifffile

    from medir.io import read_image

    src, out = tmp_path / "slide.tif", tmp_path / "out.tif"
    # 0.5 um pixels (20000 per cm), as a 20x slide scanner writes them
    tifffile.imwrite(str(src), held_out_crop()[:32, :48], resolution=(20000.0, 20000.0), resolutionunit="CENTIMETER")
    assert read_image(src).meta.spacing == pytest.approx((5e-4, 5e-4))
    assert main(["restore", str(src), "-o", str(out), "--model", NAME, "--modality", "SM"]) == 0
    got = read_image(out)
    assert got.array.shape == (128, 192, 3) and got.meta.spacing == pytest.approx((1.25e-4, 1.25e-4))


def test_tiled_restore_matches_whole_image():
    lq = degrade(held_out_crop())
    model, card = _card_and_model()
    whole, tiled = restore(model, card, lq, tile=None), restore(model, card, lq, tile=16, overlap=4)
    assert np.abs(whole - tiled).max() <= 1  # 8-bit rounding of sums taken in another order


def test_16_bit_input_is_refused_in_one_line(tmp_path, capsys):
    import tifffile

    src = tmp_path / "slide16.tif"
    tifffile.imwrite(str(src), held_out_crop()[:32, :32].astype(np.uint16) * 257)
    assert main(["restore", str(src), "-o", str(tmp_path / "out.tif"), "--model", NAME, "--modality", "SM"]) == 2
    err = capsys.readouterr().err
    assert "8-bit RGB" in err and "Traceback" not in err and not (tmp_path / "out.tif").exists()


def test_split_keeps_train_and_test_apart():
    from medir.data.pathology import GAP, TEST_COLS, TRAIN_COLS, VAL_COLS, split_images

    parts = split_images()
    ihc_train = np.concatenate([parts["train"]["ihc_train_top"], parts["train"]["ihc_train_bottom"]])
    assert ihc_train.shape == (512, TRAIN_COLS[1] - TRAIN_COLS[0], 3)
    assert not any(name.startswith("ihc") for name in parts["train"] if name not in ("ihc_train_top", "ihc_train_bottom"))
    assert parts["test"]["ihc_test"].shape == (512, TEST_COLS[1] - TEST_COLS[0], 3)
    assert TRAIN_COLS[1] <= VAL_COLS[0] and VAL_COLS[1] <= TEST_COLS[0]
    assert GAP > 24 * 4  # wider than the high-resolution training patch (patch_size 24 at scale 4)


def test_luma_is_bt601():
    from medir.metrics import luma_bt601

    rgb = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], dtype=np.uint8)
    assert np.allclose(luma_bt601(rgb), [16.0, 235.0, 16.0 + 65.481])
    assert np.allclose(luma_bt601(rgb.T, channel_axis=0), luma_bt601(rgb))


def test_interpolate_baseline_kernels():
    from medir.baselines import Bicubic, Interpolate
    from medir.errors import MedirError

    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0)) * 255
    keys = Interpolate(scale=4, kind="keys", param=-0.75)(x)
    assert keys.shape == (1, 3, 80, 96)
    assert torch.allclose(keys[..., 8:-8, 8:-8], Bicubic(scale=4)(x)[..., 8:-8, 8:-8], atol=1e-3)
    flat = torch.full((1, 1, 10, 10), 7.0)
    for kind, param in (("lanczos", 3.0), ("lanczos", 2.0), ("keys", -0.5)):
        assert torch.allclose(Interpolate(scale=4, kind=kind, param=param)(flat), torch.full((1, 1, 40, 40), 7.0))
    with pytest.raises(MedirError):
        Interpolate(kind="nearest")
