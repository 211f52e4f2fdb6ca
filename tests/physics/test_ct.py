import pytest
import torch

from medir.errors import MedirError
from medir.physics import simulate
from medir.physics.ct import LowDoseCT, hu_to_mu, mu_to_hu

from .conftest import central_roi


def test_hu_mu_roundtrip():
    hu = torch.tensor([-1000.0, 0.0, 1000.0])
    assert torch.allclose(mu_to_hu(hu_to_mu(hu)), hu)
    assert hu_to_mu(torch.tensor([-2000.0])).item() == 0.0


def test_noiseless_water_is_zero_hu(water_disk):
    clean = simulate("ct-lowdose", water_disk, noise=False)
    roi = central_roi(96)
    assert abs(clean[0, 0][roi].mean().item()) < 5.0


def test_quarter_dose_doubles_noise(water_disk):
    roi = central_roi(96)
    clean = simulate("ct-lowdose", water_disk, noise=False)
    x = water_disk.expand(4, 1, 96, 96)
    std = {}
    for dose in (1.0, 0.25):
        y = simulate("ct-lowdose", x, seed=7, dose=dose)
        std[dose] = (y - clean)[:, 0][:, roi].std().item()
    assert std[0.25] / std[1.0] == pytest.approx(2.0, rel=0.10)


def test_same_seed_same_image_different_seed_different(water_disk):
    a = simulate("ct-lowdose", water_disk, seed=1)
    b = simulate("ct-lowdose", water_disk, seed=1)
    c = simulate("ct-lowdose", water_disk, seed=2)
    g = torch.Generator().manual_seed(1)
    d = simulate("ct-lowdose", water_disk, generator=g)
    assert torch.equal(a, b)
    assert torch.equal(a, d)
    assert not torch.allclose(a, c)


def test_electronic_noise_adds_noise(water_disk):
    roi = central_roi(96)
    clean = simulate("ct-lowdose", water_disk, noise=False)
    quiet = simulate("ct-lowdose", water_disk, seed=3, i0=2e3, dose=1.0)
    loud = simulate("ct-lowdose", water_disk, seed=3, i0=2e3, dose=1.0, electronic_noise=30.0)
    assert (loud - clean)[0, 0][roi].std() > 1.1 * (quiet - clean)[0, 0][roi].std()


def test_operator_overrides_and_linear_part(water_disk):
    op = LowDoseCT(dose=1.0, pixel_size_mm=0.5)
    assert op.with_overrides(dose=0.1).dose == 0.1
    mu = hu_to_mu(water_disk)
    # line integral doubles with the pixel size
    assert torch.allclose(LowDoseCT(pixel_size_mm=1.0).A(mu), 2 * op.A(mu), rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(dose=0), dict(dose=-0.5), dict(i0=0), dict(pixel_size_mm=-1), dict(window="nope"),
                                 dict(unknown=1)])
def test_refuses_impossible_parameters(water_disk, bad):
    with pytest.raises(MedirError):
        simulate("ct-lowdose", water_disk, **bad)


def test_refuses_bad_input():
    with pytest.raises(MedirError):
        simulate("ct-lowdose", torch.zeros(8, 8))
    with pytest.raises(MedirError):
        simulate("ct-lowdose", torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(MedirError):
        simulate("not-a-task", torch.zeros(1, 1, 8, 8))
