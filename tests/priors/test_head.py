"""The fine-tuned head learns: >= 0.8 mean Dice on held-out synthetic images after a short training."""

import numpy as np
import torch

from medir.priors.head import (
    SegHeadMethod, build_network, dice_per_class, hausdorff_per_class, load_head, soft_dice_loss, train_head,
)

from medir.data.synthetic import labelled_set


def test_head_reaches_dice_on_held_out_images(tmp_path):
    images, labels = labelled_set(10, seed=0)  # 10 labelled 64x64 slices: 7 to train, 3 held out
    seg = train_head(images[:7], labels[:7], num_classes=4, modality="MR", steps=160, warmup=40, seed=0)
    preds = [seg(im, modality="MR").labels for im in images[7:]]
    dice = np.nanmean([dice_per_class(p, t, num_classes=4) for p, t in zip(preds, labels[7:])], axis=0)
    hd = np.nanmean([hausdorff_per_class(p, t, num_classes=4, spacing=(1.0, 1.0))
                     for p, t in zip(preds, labels[7:])], axis=0)
    print("held-out Dice per class", np.round(dice, 3), "HD (mm)", np.round(hd, 2))
    assert dice.mean() >= 0.8
    assert np.all(np.isfinite(hd))
    seg.save(tmp_path / "head")  # saved and loaded back, the head predicts the same labels
    again = load_head(tmp_path / "head")
    assert np.array_equal(again(images[8], modality="MR").labels, preds[1])


def test_method_returns_loss_and_trains_only_the_head():
    net = build_network(num_classes=3)
    method = SegHeadMethod(net).train()
    batch = {"image": torch.rand(2, 1, 32, 32), "labels": torch.randint(0, 3, (2, 32, 32))}
    loss, logs = method(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"ce", "dice_loss"}
    loss.backward()
    assert all(p.grad is not None for p in net.head.parameters())
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert loss.item() == (0.2 * logs["ce"] + 0.8 * logs["dice_loss"]).item()


def test_dice_loss_and_metrics_bounds():
    labels = torch.randint(0, 3, (1, 16, 16))
    perfect = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(perfect, labels).item() < 1e-3
    lab = labels[0].numpy()
    assert np.allclose(dice_per_class(lab, lab, num_classes=3), 1.0)
    assert np.allclose(hausdorff_per_class(lab, lab, num_classes=3), 0.0)
    shifted = np.zeros((16, 16), int)
    shifted[4:8, 4:8] = 1
    moved = np.roll(shifted, 3, axis=1)
    assert hausdorff_per_class(moved, shifted, num_classes=2, spacing=(2.0, 0.5))[1] == 1.5  # 3 px x 0.5 mm


def test_head_on_a_frozen_sam_encoder_saves_without_sam_weights(tiny_sam, tmp_path):
    images, labels = labelled_set(3, seed=4, size=32)
    seg = train_head(images, labels, num_classes=4, modality="MR", sam_path=str(tiny_sam), steps=4, warmup=1)
    before = {k: v.clone() for k, v in seg.network.encoder.state_dict().items()}
    assert seg(images[0], modality="MR").labels.shape == (32, 32)
    seg.save(tmp_path / "head")
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "head" / "model.safetensors"))
    assert stored and not any(k.startswith("encoder.") for k in stored)  # SAM stays where the user keeps it
    again = load_head(tmp_path / "head")
    assert all(torch.equal(v, again.network.encoder.state_dict()[k]) for k, v in before.items())
    assert np.array_equal(again(images[1], modality="MR").labels, seg(images[1], modality="MR").labels)


def test_labelled_folder_pairs_images_and_labels(tmp_path):
    import pytest
    from PIL import Image as PILImage

    from medir.errors import ConfigError
    from medir.priors.head import read_labelled_folder

    images, labels = labelled_set(2, seed=7, size=32)
    for d in ("images", "labels"):
        (tmp_path / d).mkdir()
    for k, (im, lab) in enumerate(zip(images, labels)):
        PILImage.fromarray(np.clip(im / 4, 0, 255).astype(np.uint8)).save(tmp_path / "images" / f"{k}.png")
        PILImage.fromarray(lab.astype(np.uint8)).save(tmp_path / "labels" / f"{k}.png")
    ims, labs = read_labelled_folder(tmp_path)
    assert len(ims) == 2 and all(np.array_equal(a, b) for a, b in zip(labs, labels))
    (tmp_path / "labels" / "1.png").unlink()
    with pytest.raises(ConfigError):
        read_labelled_folder(tmp_path)
