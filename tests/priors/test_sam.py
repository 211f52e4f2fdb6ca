"""SAM loading errors, the MedSAM / SAM preprocessing, embedding reuse, NMS."""

import builtins
import json

import numpy as np
import pytest
import torch

from medir.errors import MedirError, ModelFileError
from medir.priors import get_segmenter
from medir.priors.sam import box_nms, masks_to_boxes, medsam_pixels, sam_pixels, stability_score


def test_missing_checkpoint_and_non_sam_folder_are_one_line_errors(tmp_path):
    with pytest.raises(ModelFileError) as err:
        get_segmenter(f"sam:{tmp_path / 'nope'}")
    assert str(tmp_path / "nope") in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelFileError) as err:
        get_segmenter(f"medsam:{tmp_path / 'other'}")
    assert str(tmp_path / "other") in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_broken_weights_are_a_one_line_error(tiny_sam, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_sam / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelFileError) as err:
        get_segmenter(f"sam:{broken}")
    assert str(broken) in str(err.value) and "\n" not in str(err.value)


def test_sam_without_the_extra_names_it(monkeypatch, tiny_sam):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(MedirError) as err:
        get_segmenter(f"sam:{tiny_sam}")
    assert "medir[sam]" in str(err.value)


def test_loading_by_file_path_and_embedding_computed_once(tiny_sam, monkeypatch):
    seg = get_segmenter(f"sam:{tiny_sam / 'config.json'}")  # a file inside the folder works too
    calls = []
    original = seg.model.get_image_embeddings
    monkeypatch.setattr(seg.model, "get_image_embeddings", lambda px: calls.append(1) or original(px))
    seg.points_per_batch = 7  # several prompt batches per image
    image = np.random.default_rng(0).normal(size=(50, 60)).astype(np.float32)
    first = seg(image, modality="MR")
    second = seg(image, modality="MR")
    assert len(calls) == 1
    assert np.array_equal(first.labels, second.labels)


def test_preprocessing_shapes_and_ranges():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 60, 3)).astype(np.uint8)
    x, (h, w) = sam_pixels(rgb, size=64)
    assert x.shape == (1, 3, 64, 64) and (h, w) == (32, 64)
    assert torch.all(x[..., h:, :] == 0)  # padding at the bottom
    m = medsam_pixels(rgb, size=64)
    assert m.shape == (1, 3, 64, 64) and m.min() == 0 and m.max() == 1


def test_nms_boxes_and_stability():
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, 1:5, 1:5] = True
    masks[1, 1:5, 1:6] = True  # overlaps mask 0 strongly
    masks[2, 6:9, 6:9] = True
    boxes = masks_to_boxes(masks)
    assert boxes[0].tolist() == [1, 1, 4, 4]
    keep = box_nms(boxes, torch.tensor([0.5, 0.9, 0.7]), iou_threshold=0.7)
    assert keep.tolist() == [1, 2]
    logits = torch.linspace(-3, 3, 100).reshape(1, 10, 10)
    assert 0 < stability_score(logits, threshold=0.0, offset=1.0).item() < 1
