"""SPD-VFM: losses against written-out equations, frozen parts stay frozen, the student is the plain backbone,
both stages run and resume through `medir train`, the VGG loader reads real state dicts."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medir.errors import ConfigError
from medir.methods.spdvfm import SPDVFM, PriorTeacher, SemanticEncoder, scm_loss, skd_loss
from medir.methods.spdvfm.data import grid_patches, thinned_pair, write_phantom_split
from medir.methods.spdvfm.losses import region_cosines
from medir.models import build_preset
from medir.priors.features import VGGFeatures, feature_network, load_vgg_features


# --- losses -------------------------------------------------------------------------------------------

def test_skd_is_the_papers_piecewise_loss():
    d = torch.tensor([0.0, 0.5, -0.5, 2.0, -3.0])
    expected = torch.where(d.abs() > 1, d.abs() - 0.5, 0.5 * d * d)          # equation 7
    assert torch.allclose(skd_loss(d, torch.zeros_like(d)), expected.mean())


def pooled_reference(feats: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Equation 10 per image with h_k = the mean feature of region k (present regions, in label order)."""
    out = []
    for b in range(feats.shape[0]):
        regions = torch.unique(labels[b])
        h = torch.stack([feats[b][:, labels[b] == k].mean(1) for k in regions])
        out.append(F.cosine_similarity(h[:, None], h[None, :], dim=-1))
    return out


def test_scm_matches_equations_10_11_written_out():
    g = torch.Generator().manual_seed(0)
    fa, fb = torch.randn(2, 2, 4, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 6, 6), generator=g)
    labels[1][labels[1] == 2] = 0                     # a region absent from one image
    expected = []
    for ca, cb in zip(pooled_reference(fa, labels), pooled_reference(fb, labels)):
        k = ca.shape[0]
        off = ~torch.eye(k, dtype=torch.bool)
        expected.append((ca - cb).abs()[off].sum() / (k * (k - 1)))
    assert torch.allclose(scm_loss(fa, fb, labels), torch.stack(expected).mean())
    assert scm_loss(fa, fa, labels) == 0


def test_scm_literal_masks_of_a_partition_never_overlap():
    """Equation 9 taken literally: masked maps of two different regions share no non-zero entry, cos = 0."""
    fa, fb = torch.randn(2, 1, 3, 8, 8)
    labels = torch.randint(0, 4, (1, 8, 8))
    cos, pairs = region_cosines(fa, labels, mode="literal")
    assert pairs.any() and torch.all(cos[pairs] == 0)
    assert scm_loss(fa, fb, labels, mode="literal") == 0
    assert scm_loss(fa, fb, labels, mode="pooled") > 0


def test_scm_gradient_reaches_the_student_features():
    fa = torch.randn(1, 3, 8, 8, requires_grad=True)
    loss = scm_loss(fa, torch.randn(1, 3, 8, 8), torch.randint(0, 3, (1, 8, 8)))
    loss.backward()
    assert fa.grad is not None and fa.grad.abs().sum() > 0


# --- the method ---------------------------------------------------------------------------------------

class TinyParamSegmenter:
    """A segmenter with weights (like the fine-tuned head): thresholds a learned-looking linear map."""

    name = "tiny"

    def __init__(self):
        self.net = torch.nn.Conv2d(1, 1, 3, padding=1)

    def settings(self) -> str:
        return "tiny"

    def __call__(self, image: np.ndarray, *, modality: str = "OT"):
        from medir.priors.base import Partition

        with torch.no_grad():
            y = self.net(torch.from_numpy(np.asarray(image, np.float32))[None, None])[0, 0].numpy()
        return Partition(np.digitize(y, np.quantile(y, [0.33, 0.66])).astype(np.int32))


def tiny_method(*, teacher_steps: int, features=None, prior: str = "spi") -> SPDVFM:
    torch.manual_seed(0)
    channels = 8 if prior == "spi" else 9
    teacher = PriorTeacher(build_preset("nafnet_tiny", in_channels=1 + channels, out_channels=1),
                           SemanticEncoder(1, 8), prior=prior)
    return SPDVFM(build_preset("nafnet_tiny", in_channels=1, out_channels=1), teacher,
                  segmenter=TinyParamSegmenter(), teacher_steps=teacher_steps, features=features)


def batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    hq = torch.rand(2, 1, 16, 16, generator=g)
    return {"lq": hq + 0.1 * torch.randn(2, 1, 16, 16, generator=g), "hq": hq,
            "offset": torch.zeros(2), "span": torch.full((2,), 100.0)}


def train_steps(method: SPDVFM, steps: int) -> None:
    """What the loop does: one check without gradients, then AdamW over the parameters that require grad."""
    method.eval()
    with torch.no_grad():
        method(batch(99))
    method.train()
    opt = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.5)
    for k in range(steps):
        loss, _ = method(batch(k))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stage2_changes_only_the_student():
    vgg = VGGFeatures(depth=16, layer="relu1_2")
    for p in vgg.parameters():
        p.requires_grad_(False)
    method = tiny_method(teacher_steps=0, features=vgg)
    frozen = {"teacher": snapshot(method.teacher), "segmenter": snapshot(method.segmenter.net), "vgg": snapshot(vgg)}
    student = snapshot(method.network)
    train_steps(method, 3)
    assert method.stage == 2
    assert same(frozen["teacher"], snapshot(method.teacher))
    assert same(frozen["segmenter"], snapshot(method.segmenter.net))
    assert same(frozen["vgg"], snapshot(vgg))
    assert not same(student, snapshot(method.network))


def test_stage1_trains_only_the_teacher_then_stage2_only_the_student():
    method = tiny_method(teacher_steps=2)
    student, teacher = snapshot(method.network), snapshot(method.teacher)
    train_steps(method, 2)
    assert method.stage == 2 and same(student, snapshot(method.network))
    assert not same(teacher, snapshot(method.teacher))
    trained_teacher = snapshot(method.teacher)
    train_steps(method, 2)
    assert same(trained_teacher, snapshot(method.teacher)) and not same(student, snapshot(method.network))


def test_cat_prior_and_mask_dropout_only_in_training():
    method = tiny_method(teacher_steps=1, prior="cat")
    labels = torch.randint(0, 4, (2, 16, 16))
    assert method.teacher.priors(batch(0)["lq"], labels).shape == (2, 9, 16, 16)
    spi = tiny_method(teacher_steps=1).teacher.eval()
    x = batch(0)["lq"]
    assert torch.equal(spi(x, labels), spi(x, labels))          # eval: deterministic, no dropout
    spi.train()
    torch.manual_seed(1)
    a = spi.priors(x, labels)
    torch.manual_seed(2)
    assert not torch.equal(a, spi.priors(x, labels))           # training: regions dropped at random


# --- VGG feature network ------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_state_dict_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    full = VGGFeatures(depth=19, layer="pool5")
    state = {**full.state_dict(), "classifier.0.weight": torch.randn(4, 4)}   # torchvision files carry a head
    path = tmp_path / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    net = feature_network(f"vgg19@relu2_2:{path}")
    x = torch.rand(1, 1, 16, 16)
    reference = copy.deepcopy(full.features[: len(net.features)])
    expected = reference((x.expand(-1, 3, -1, -1) - net.mean) / net.std)
    assert torch.equal(net(x), expected)
    assert not any(p.requires_grad for p in net.parameters()) and not net.training


def test_vgg_loader_refuses_wrong_files(tmp_path):
    torch.save(VGGFeatures(depth=16, layer="relu1_1").state_dict(), tmp_path / "short.pth")
    with pytest.raises(ConfigError, match="lacks"):
        load_vgg_features(tmp_path / "short.pth", depth=16, layer="relu3_3")
    with pytest.raises(ConfigError, match="do not exist"):
        load_vgg_features(tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="unknown"):
        feature_network("resnet:x.pth")
    assert feature_network("teacher") is None


# --- data ---------------------------------------------------------------------------------------------

def test_thinned_pair_splits_the_counts():
    counts = np.random.default_rng(0).poisson(20.0, (64, 32)).astype(np.float32)
    inp, target = thinned_pair(counts, seed=0, extras=False)
    assert np.array_equal(inp + target / 2, counts)            # kept + rest = n; target = 2 x rest
    assert abs(inp.sum() / counts.sum() - 0.5) < 0.02
    assert len(grid_patches(np.zeros((1024, 256)))) == 5        # the paper's 192 / 192 cut of a whole body


# --- through `medir train` and `medir restore` --------------------------------------------------------

@pytest.fixture(scope="module")
def bonescan(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bonescan")
    write_phantom_split(root, "train", 1, height=128, width=64)
    write_phantom_split(root, "val", 1, height=128, width=64)
    return root


def spd_config(data: Path, out: Path, *extra: str):
    from medir.engine.config import load_config

    return load_config(Path(__file__).parents[2] / "configs" / "spdvfm_bonescan_tiny.yaml", [
        f"data.train.root={data / 'train'}", f"data.val.root={data / 'val'}", f"train.out_dir={out}",
        "data.train.patch_size=16", "data.val.patch_size=32", "data.val.max_items=1", "train.batch_size=2",
        "schedule.steps=6", "method.args.teacher_steps=3", "train.val_every=6", "train.ckpt_every=2",
        "train.log_every=1", "train.progress=false", *extra])


def test_medir_train_runs_both_stages_and_resumes_exactly(bonescan, tmp_path):
    from safetensors.torch import load_file

    from medir.engine.train import train

    whole = train(spd_config(bonescan, tmp_path / "whole"))
    cut = spd_config(bonescan, tmp_path / "cut", "train.stop_after=4")   # stops inside stage 2
    train(cut)
    train(spd_config(bonescan, tmp_path / "cut"), resume=True)
    a = load_file(str(whole / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stages = [line.split(",")[3] for line in (whole / "log.csv").read_text().splitlines()[1:] if line.split(",")[3]]
    assert stages[:3] == ["1.0"] * 3 and stages[3:] == ["2.0"] * 3


def test_exported_student_is_the_plain_backbone_and_restores_nm_dicom(bonescan, tmp_path):
    from medir.cli import main
    from medir.engine.modelfile import load_model
    from medir.engine.train import train

    out = train(spd_config(bonescan, tmp_path / "run"))
    model, card = load_model(out / "model")
    plain = build_preset("nafnet_tiny", in_channels=1, out_channels=1)
    assert type(model) is type(plain) and card.method == "spdvfm" and card.arch == "nafnet"
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    pydicom_data = pytest.importorskip("pydicom.data")
    nm = Path(pydicom_data.get_testdata_file("JPGExtended.dcm"))
    try:
        from medir.io import read_image

        read_image(nm)
    except Exception as err:  # needs pylibjpeg to decode
        pytest.skip(f"cannot decode {nm.name} here: {err}")
    assert main(["restore", str(nm), "-o", str(tmp_path / "restored.dcm"), "--model", str(out / "model")]) == 0
    assert (tmp_path / "restored.dcm").is_file()


def test_teacher_from_a_run_stays_frozen_through_the_loop(bonescan, tmp_path):
    from medir.engine.checkpoint import latest_checkpoint
    from medir.engine.train import train
    from medir.methods.spdvfm import load_teacher_state

    first = train(spd_config(bonescan, tmp_path / "teacher", "schedule.steps=4", "method.args.teacher_steps=2"))
    second = train(spd_config(bonescan, tmp_path / "student", f"method.args.teacher_from={first}",
                              "method.args.teacher_steps=0", "schedule.steps=2"))
    a = load_teacher_state(first)
    b = load_teacher_state(latest_checkpoint(second / "checkpoints"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_errors_are_one_line(bonescan, tmp_path):
    from medir.engine.train import train

    with pytest.raises(ConfigError, match="leaves no student steps"):
        train(spd_config(bonescan, tmp_path / "a", "method.args.teacher_steps=6"))
    with pytest.raises(ConfigError, match="no argument"):
        train(spd_config(bonescan, tmp_path / "b", "method.args.lambda3=1"))
    with pytest.raises(ConfigError, match="teacher_from"):
        train(spd_config(bonescan, tmp_path / "c", f"method.args.teacher_from={tmp_path}"))
