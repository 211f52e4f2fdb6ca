"""Low-dose CT noise insertion: dose scaling, physical units, the scan kept as the target, geometry."""

import math

import pytest
import torch

from medir.errors import MedirError
from medir.physics import simulate
from medir.physics.ct import LowDoseCT, ct_geometry, hu_to_mu, mu_to_hu, nyquist_views

from .conftest import central_roi, disk_image

# A coarse detector keeps these tests fast; the physics is the same at 0.625 mm.
FAST = dict(detector_mm=2.0, pixel_size_mm=2.0)


def water_mm(diameter_mm: float, *, pixel_mm: float, fov_mm: float) -> torch.Tensor:
    """(1, 1, n, n) water disk of ``diameter_mm`` in air, on a square field of view ``fov_mm``."""
    n = int(round(fov_mm / pixel_mm))
    return disk_image(n, inside=0.0, outside=-1000.0, radius=diameter_mm / fov_mm / 2)


def centre_std(noise: torch.Tensor, *, pixel_mm: float, box_mm: float = 40.0) -> float:
    n = noise.shape[-1]
    r = int(round(box_mm / pixel_mm / 2))
    return noise[..., n // 2 - r:n // 2 + r, n // 2 - r:n // 2 + r].std().item()


def test_hu_mu_roundtrip():
    hu = torch.tensor([-1000.0, 0.0, 1000.0])
    assert torch.allclose(mu_to_hu(hu_to_mu(hu)), hu)
    assert hu_to_mu(torch.tensor([-2000.0])).item() == 0.0


def test_the_scan_stays_the_target(water_disk):
    """Noise insertion adds zero-mean noise and nothing else: no blur, no moire, no bias of the scan."""
    x = water_disk.clone()
    assert torch.equal(simulate("ct-lowdose", x, noise=False, **FAST), x)
    quiet = simulate("ct-lowdose", x, seed=0, i0=1e15, **FAST)  # almost no noise: the scan comes back as it was
    assert (quiet - x).abs().max().item() < 0.5
    assert torch.equal(x, water_disk)  # the input is not modified
    noisy = simulate("ct-lowdose", x.expand(8, 1, 96, 96), seed=1, scan_dose=None, i0=1e7, **FAST)
    roi = central_roi(96)
    assert abs((noisy - x)[:, 0][:, roi].mean().item()) < 0.1 * (noisy - x)[:, 0][:, roi].std().item()


def test_quarter_dose_doubles_noise_of_a_noiseless_phantom(water_disk):
    roi = central_roi(96)
    x = water_disk.expand(4, 1, 96, 96)
    std = {d: (simulate("ct-lowdose", x, seed=7, dose=d, scan_dose=None, **FAST) - x)[:, 0][:, roi].std().item()
           for d in (1.0, 0.25)}
    assert std[0.25] / std[1.0] == pytest.approx(2.0, rel=0.10)


def test_insertion_adds_only_the_missing_variance(water_disk):
    """A full-dose scan taken to quarter dose gets sqrt(1/0.25 - 1) = sqrt(3) x the full-dose noise, so that its
    total noise is twice its own (clinical quarter dose doubles the noise)."""
    roi = central_roi(96)
    x = water_disk.expand(4, 1, 96, 96)
    full = (simulate("ct-lowdose", x, seed=3, dose=1.0, scan_dose=None, **FAST) - x)[:, 0][:, roi].std().item()
    added = (simulate("ct-lowdose", x, seed=4, dose=0.25, scan_dose=1.0, **FAST) - x)[:, 0][:, roi].std().item()
    assert added / full == pytest.approx(math.sqrt(3.0), rel=0.10)
    assert torch.equal(simulate("ct-lowdose", x, seed=4, dose=1.0, scan_dose=1.0, **FAST), x.float())


def test_noise_per_physical_area_does_not_depend_on_pixel_size():
    stds = {}
    for pixel in (1.0, 0.5):
        x = water_mm(100, pixel_mm=pixel, fov_mm=128).expand(3, 1, -1, -1)
        op = LowDoseCT(dose=0.25, scan_dose=None, pixel_size_mm=pixel, detector_mm=2.0)
        stds[pixel] = centre_std(op.noise(x, generator=torch.Generator().manual_seed(0)), pixel_mm=pixel)
    assert stds[0.5] / stds[1.0] == pytest.approx(1.0, abs=0.10)


def test_noise_does_not_depend_on_the_field_of_view():
    """The same body in a larger field of view (more air around it) gets the same noise."""
    stds = {}
    for fov in (128, 192):
        x = water_mm(100, pixel_mm=1.0, fov_mm=fov).expand(3, 1, -1, -1)
        op = LowDoseCT(dose=0.25, scan_dose=None, pixel_size_mm=1.0, detector_mm=2.0)
        stds[fov] = centre_std(op.noise(x, generator=torch.Generator().manual_seed(1)), pixel_mm=1.0)
    assert stds[192] / stds[128] == pytest.approx(1.0, abs=0.10)


def test_body_outside_the_inscribed_circle_is_not_truncated():
    """Water filling the whole square, corners included: the detector covers the diagonal, every pixel gets noise."""
    x = torch.zeros(2, 1, 64, 64)
    op = LowDoseCT(dose=0.25, scan_dose=None, **FAST)
    geom = op.geometry(64, 64)
    assert geom.n_det * geom.det_spacing >= math.hypot(64, 64)
    noise = op.noise(x, generator=torch.Generator().manual_seed(0))
    corner, centre = noise[..., :8, :8].std().item(), noise[..., 28:36, 28:36].std().item()
    assert corner > 0.3 * centre  # corners are thinner (less noise) but reconstructed, not cut away


def test_default_views_meet_the_angular_nyquist():
    geom = ct_geometry(512, 512, pixel_size_mm=0.43)
    assert geom.n_views >= math.pi / 2 * geom.n_det
    assert geom.det_spacing == pytest.approx(0.625 / 0.43)
    assert nyquist_views(512, 512, pixel_size_mm=0.43) == geom.n_views
    assert geom.n_views > 700  # a 512-pixel head slice needs far more than 512 views


def test_views_do_not_change_the_noise_level(water_disk):
    """Photons are given per rotation, so more views split the same dose."""
    roi = central_roi(96)
    x = water_disk.expand(4, 1, 96, 96)
    std = {v: (simulate("ct-lowdose", x, seed=2, views=v, scan_dose=None, **FAST) - x)[:, 0][:, roi].std().item()
           for v in (200, 400)}
    assert std[400] / std[200] == pytest.approx(1.0, abs=0.10)


def test_same_seed_same_image_different_seed_different(water_disk):
    a = simulate("ct-lowdose", water_disk, seed=1, **FAST)
    b = simulate("ct-lowdose", water_disk, seed=1, **FAST)
    c = simulate("ct-lowdose", water_disk, seed=2, **FAST)
    d = simulate("ct-lowdose", water_disk, generator=torch.Generator().manual_seed(1), **FAST)
    assert torch.equal(a, b) and torch.equal(a, d)
    assert not torch.allclose(a, c)


def test_electronic_noise_bowtie_and_modulation_change_the_noise(water_disk):
    x = water_disk.expand(4, 1, 96, 96)
    roi = central_roi(96, radius=0.38) & ~central_roi(96, radius=0.3)  # a ring near the body's edge

    def std(**kw):
        y = simulate("ct-lowdose", x, seed=3, i0=1e6, dose=0.25, scan_dose=None, **FAST, **kw)
        return (y - x)[:, 0][:, roi].std().item()

    plain = std()
    assert std(electronic_noise=30.0) > 1.1 * plain
    assert std(bowtie=0.01) > plain * 1.03  # the bowtie takes flux from rays off the centre
    assert std(tube_modulation=True) == pytest.approx(plain, rel=0.15)  # a round body: flat modulation


def test_noise_at_doses_matches_single_draws(water_disk):
    op = LowDoseCT(scan_dose=None, **FAST)
    many = op.noise_at_doses(water_disk, [1.0, 0.25], generator=torch.Generator().manual_seed(0))
    roi = central_roi(96)
    assert many.shape == (2, 1, 96, 96)
    assert many[1, 0][roi].std() / many[0, 0][roi].std() == pytest.approx(2.0, rel=0.2)


def test_operator_overrides_and_linear_part(water_disk):
    op = LowDoseCT(dose=1.0, pixel_size_mm=0.5, detector_mm=0.5)
    assert op.with_overrides(dose=0.1).dose == 0.1
    mu = hu_to_mu(water_disk)
    p = op.A(mu)
    # the central ray of a 38-pixel-radius water disk at 0.5 mm crosses 38 mm of water
    assert p[0, 0, 0, p.shape[-1] // 2].item() == pytest.approx(0.0192 * 0.5 * 2 * 38.4, rel=0.05)


@pytest.mark.parametrize("bad", [dict(dose=0), dict(dose=-0.5), dict(i0=0), dict(pixel_size_mm=-1), dict(window="nope"),
                                 dict(unknown=1), dict(dose=2.0), dict(bowtie=0), dict(detector_mm=0)])
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
