import pytest
import torch

from medir.data.bonescan import LABELS, bone_scan_pair, bone_scan_phantom, main
from medir.errors import MedirError


@pytest.fixture(scope="module")
def pair():
    return bone_scan_pair(5, speedup=2.0, lesion_count=3)


def test_clinical_geometry_and_counts(pair):
    rapid, standard, scan = pair
    assert standard.shape == rapid.shape == scan.expected.shape == scan.labels.shape == (2, 1024, 256)
    assert 2.2 <= scan.pixel_size_mm <= 2.4
    total = scan.expected.sum(dim=(1, 2))
    assert 0.8e6 <= total[0].item() <= 3.5e6 + 1 and 0.5e6 < total[1].item() < 6e6   # millions of counts per view
    assert torch.equal(standard, standard.round()) and float(standard.min()) >= 0
    assert (rapid.sum() / standard.sum()).item() == pytest.approx(0.5, rel=0.02)


def test_rapid_and_standard_noise_are_independent(pair):
    rapid, standard, scan = pair
    body = scan.labels > 0
    a = (rapid - scan.expected / 2)[body].double()
    b = (standard - scan.expected)[body].double()
    corr = float(((a - a.mean()) * (b - b.mean())).sum() / ((a - a.mean()).norm() * (b - b.mean()).norm()))
    assert abs(corr) < 0.05


def test_labels_and_uptake(pair):
    _, _, scan = pair
    lab, x = scan.labels[0], scan.expected[0]
    assert set(lab.unique().tolist()) == set(LABELS.values())
    mean = {k: x[lab == v].mean().item() for k, v in LABELS.items()}
    assert mean["lesion"] > mean["bone"] > mean["soft_tissue"] > mean["background"]
    assert mean["bladder"] > mean["bone"]
    # kidneys lie at the back: brighter in the posterior view (mirrored with its labels). The kidney pixels also
    # hold soft tissue, the lower ribs and vertebral facets, which add to both views (this patient: 1.24; the
    # phantom before the anatomy update, with thick ribs and no facets over the kidneys, gave > 1.3)
    kid_ant = x[lab == LABELS["kidney"]].mean()
    kid_post = scan.expected[1][scan.labels[1] == LABELS["kidney"]].mean()
    assert kid_post > 1.15 * kid_ant
    assert torch.equal(scan.labels[1], torch.flip(scan.labels[0], dims=(-1,)))


def test_deterministic_and_varied():
    a, b = bone_scan_phantom(11), bone_scan_phantom(11)
    assert torch.equal(a.expected, b.expected) and torch.equal(a.labels, b.labels)
    c = bone_scan_phantom(12)
    assert not torch.equal(a.labels, c.labels)
    r1, s1, _ = bone_scan_pair(11)
    r2, s2, _ = bone_scan_pair(11)
    assert torch.equal(r1, r2) and torch.equal(s1, s2)
    with pytest.raises(MedirError):
        bone_scan_phantom(-1)


def test_writer_makes_a_paired_folder(tmp_path):
    from medir.data.datasets import find_pairs
    from medir.io import read_image

    assert main([str(tmp_path), "--train", "1", "--val", "0", "--test", "1"]) == 0
    pairs = find_pairs(tmp_path / "train")
    assert len(pairs) == 2
    lq, hq = (read_image(p) for p in pairs[0])
    assert lq.array.shape[-2:] == (1024, 256) and lq.meta.spacing is not None
    assert lq.array.sum() < 0.6 * hq.array.sum()
    assert sorted(p.name for p in (tmp_path / "test" / "labels").iterdir())[0].startswith("bs2000000")
    # existing files are not overwritten without --force
    assert main([str(tmp_path), "--train", "1", "--val", "0", "--test", "0"]) == 2
