import json

import pytest
import torch

from medir.engine.modelfile import load_card, load_model, save_model
from medir.errors import ModelFileError
from medir.models import build_preset


def test_save_load_round_trip_gives_same_outputs(tiny_ct_model):
    model, card = load_model(tiny_ct_model)
    again, _ = load_model(tiny_ct_model / "model.safetensors")
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x))
    assert card.modality == "CT" and card.preset.eval_window == (-160.0, 240.0)
    assert (tiny_ct_model / "README.md").read_text().startswith("# medir model")
    on_disk = json.loads((tiny_ct_model / "config.json").read_text())
    assert on_disk["format"] == "medir-model" and on_disk["arch"] == "nafnet"


def test_save_refuses_overwrite(tiny_ct_model):
    model, card = load_model(tiny_ct_model)
    with pytest.raises(Exception, match="already exists"):
        save_model(tiny_ct_model, model, card)


def test_not_a_model_errors(tmp_path, tiny_ct_model):
    with pytest.raises(ModelFileError, match="no model file or shipped model"):
        load_model(tmp_path / "missing")
    with pytest.raises(ModelFileError, match="not a medir model"):
        load_model(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_ct_model / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ModelFileError, match="safetensors"):
        load_model(bad)
    (bad / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a medir model config"):
        load_card(bad)


def test_weights_of_another_architecture_refused(tmp_path, tiny_ct_model):
    _, card = load_model(tiny_ct_model)
    other = build_preset("nafnet_tiny", width=16)
    path = save_model(tmp_path / "other", other, card)  # card says width 8
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)


def test_model_files_get_ordinary_permissions(tiny_ct_model):
    import os

    mask = os.umask(0)
    os.umask(mask)
    for f in tiny_ct_model.iterdir():
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f.name


def test_every_shipped_card_says_its_intended_use_its_held_out_numbers_and_its_limits():
    """Each shipped README has a written part (use, held-out results, limits) beside the generated card (whose
    JSON says none of these words); re-shipping weights with ``save_model`` alone would lose it."""
    from medir.engine.modelfile import load_card, shipped_models

    for name, path in shipped_models().items():
        text = (path / "README.md").read_text().lower()
        assert "intended use" in text and "held-out" in text and "limits" in text, name
        assert load_card(path).markdown().lower().count("intended use") == 0
