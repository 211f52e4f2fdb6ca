"""The shipped CT model and example: the README's main job."""

import pydicom

from medir.cli import main
from medir.engine.modelfile import load_card, shipped_models
from medir.io import read_image
from medir.metrics import psnr, ssim


def test_ct_model_ships_with_its_card():
    assert "ct-ldct-nafnet" in shipped_models()
    card = load_card("ct-ldct-nafnet")
    assert card.modality == "CT" and card.intensity["modality"] == "CT" and card.intensity["units"] == "HU"
    assert card.metrics and card.training  # how it was made and how good it is travel with it


def test_restore_example_with_default_model_improves_it(tmp_path, capsys):
    from medir.commands.restore import example_path

    out = tmp_path / "restored"
    assert main(["restore", "--example", "-o", str(out)]) == 0  # no --model: the CT default
    restored_path = out / "ldct_example.dcm"
    ds = pydicom.dcmread(restored_path)
    assert "ct-ldct-nafnet" in ds.DerivationDescription
    low = read_image(example_path()).array
    ref = read_image(example_path().with_name("ldct_reference.dcm")).array
    restored = read_image(restored_path).array
    window = (-160, 240)
    gain = psnr(restored, ref, data_range="target", window=window) - psnr(low, ref, data_range="target", window=window)
    # the held-out real slice at 1/4 of its own dose (5 HU added): measured +2.38 dB, SSIM 0.9748 -> 0.9879 (the
    # shipped model restores by its 8x self-ensemble by default)
    assert gain > 1.5  # dB
    assert ssim(restored, ref, data_range="target", window=window) > ssim(low, ref, data_range="target", window=window) + 0.01


def test_models_lists_the_shipped_model(capsys):
    assert main(["models"]) == 0
    assert "ct-ldct-nafnet" in capsys.readouterr().out


def test_every_default_model_ships_and_declares_its_modality():
    """``medir restore`` picks DEFAULT_MODELS by the input's modality: each must exist and cover that modality."""
    from medir.commands.restore import DEFAULT_MODELS

    shipped = shipped_models()
    for key, name in DEFAULT_MODELS.items():
        assert name in shipped, f"default for {key} is {name}, which is not shipped"
        card = load_card(name)
        modality, _, aux = key.partition("+")
        assert modality in card.modalities, (key, card.modalities)
        assert (aux in card.aux_modalities) if aux else not card.aux_modalities, (key, card.aux_modalities)
    assert set(DEFAULT_MODELS) >= {"CT", "PT", "PT+MR", "NM", "MR", "SM"}
