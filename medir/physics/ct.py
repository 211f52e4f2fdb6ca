"""Low-dose CT: HU -> attenuation -> parallel-beam sinogram -> Poisson photon counts -> -log -> FBP -> HU.

Model (Beer-Lambert with a monochromatic beam):

    mu = mu_water (1 + HU / 1000)                   [1/mm], clamped at 0 (air)
    p  = pixel_mm * A(mu)                           line integrals, dimensionless
    N  ~ Poisson(I0 * dose * exp(-p)) + N(0, sigma_e^2)
    p^ = -log(max(N, 1) / (I0 * dose))
    HU^ = 1000 (FBP(p^) / pixel_mm / mu_water - 1)

``mu_water = 0.0192 / mm`` is water at about 70 keV effective energy (NIST XCOM,
mu/rho = 0.193 cm^2/g). ``I0 = 1e5`` photons per ray is the full-dose reference;
the variance of ``p^`` is about ``1 / (I0 dose exp(-p))``, so the image noise std scales
as ``dose ** -0.5`` (quarter dose doubles it).
"""

from __future__ import annotations

import torch

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, gaussian_like, make_generator, poisson
from medir.physics.projector import FILTER_WINDOWS, ParallelBeamProjector, fbp, make_geometry

MU_WATER_PER_MM = 0.0192
I0_REFERENCE = 1.0e5


def hu_to_mu(hu: torch.Tensor, *, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """HU -> linear attenuation in 1/mm (air and below clamp to 0)."""
    return (mu_water * (1.0 + hu / 1000.0)).clamp_min(0.0)


def mu_to_hu(mu: torch.Tensor, *, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """Linear attenuation in 1/mm -> HU."""
    return 1000.0 * (mu / mu_water - 1.0)


class LowDoseCT:
    """``y = Poisson(I0 dose exp(-A mu))`` with a 2-D parallel-beam ``A`` (pixel size in mm).

    Every keyword of ``__init__`` except the geometry may be overridden per call of :meth:`__call__`.
    Shapes: image ``(B, C, H, W)`` in HU; counts ``(B, C, views, n_det)``.
    """

    def __init__(self, *, dose: float = 0.25, i0: float = I0_REFERENCE, electronic_noise: float = 0.0,
                 pixel_size_mm: float = 1.0, views: int | None = None, window: str = "ramp",
                 mu_water: float = MU_WATER_PER_MM):
        self.dose = check_range("dose", dose, lo=0.0, lo_open=True, hint="dose is a fraction of the reference dose, e.g. 0.25")
        self.i0 = check_range("i0", i0, lo=0.0, lo_open=True, hint="give photons per ray, e.g. 1e5")
        self.electronic_noise = check_range("electronic_noise", electronic_noise, lo=0.0)
        self.pixel_size_mm = check_range("pixel_size_mm", pixel_size_mm, lo=0.0, lo_open=True)
        self.views = views
        if window not in FILTER_WINDOWS:
            raise MedirError(f"unknown FBP window '{window}': use one of {', '.join(FILTER_WINDOWS)}")
        self.window = window
        self.mu_water = check_range("mu_water", mu_water, lo=0.0, lo_open=True)

    def projector(self, height: int, width: int) -> ParallelBeamProjector:
        return ParallelBeamProjector(make_geometry(height, width, views=self.views))

    def A(self, mu: torch.Tensor) -> torch.Tensor:
        """Attenuation ``(B, C, H, W)`` in 1/mm -> line integrals (dimensionless)."""
        return self.projector(*mu.shape[-2:]).A(mu) * self.pixel_size_mm

    def A_adjoint(self, p: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.projector(height, width).A_adjoint(p) * self.pixel_size_mm

    def expected_counts(self, hu: torch.Tensor, *, dose: float | None = None) -> torch.Tensor:
        """Mean detected photons per ray ``I0 dose exp(-p)``, ``(B, C, views, n_det)``."""
        dose = self.dose if dose is None else check_range("dose", dose, lo=0.0, lo_open=True)
        return self.i0 * dose * torch.exp(-self.A(hu_to_mu(hu, mu_water=self.mu_water)))

    def sample_counts(self, expected: torch.Tensor, *, generator: torch.Generator | None = None,
                      electronic_noise: float | None = None) -> torch.Tensor:
        """Poisson photon counts plus optional Gaussian electronic noise (std in photons)."""
        sigma = self.electronic_noise if electronic_noise is None else check_range("electronic_noise", electronic_noise, lo=0.0)
        counts = poisson(expected, generator)
        if sigma > 0:
            counts = counts + sigma * gaussian_like(counts, generator)
        return counts

    def reconstruct(self, counts: torch.Tensor, height: int, width: int, *, dose: float | None = None) -> torch.Tensor:
        """Counts ``(B, C, views, n_det)`` -> HU image ``(B, C, H, W)`` by -log and FBP (``window`` apodisation)."""
        dose = self.dose if dose is None else dose
        # One photon is the floor: log(0) is undefined and real scanners clip starved rays too.
        p = -torch.log(counts.clamp_min(1.0) / (self.i0 * dose))
        mu = fbp(self.projector(height, width), p, window=self.window) / self.pixel_size_mm
        return mu_to_hu(mu, mu_water=self.mu_water)

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
                 noise: bool = True, **overrides) -> torch.Tensor:
        """HU ``(B, C, H, W)`` -> low-dose HU, same shape. ``noise=False`` gives the noiseless FBP."""
        op = self.with_overrides(**overrides) if overrides else self
        check_image(x)
        gen = make_generator(x, generator=generator, seed=seed)
        expected = op.expected_counts(x)
        counts = op.sample_counts(expected, generator=gen) if noise else expected
        return op.reconstruct(counts, *x.shape[-2:])

    def with_overrides(self, **overrides) -> "LowDoseCT":
        params = dict(dose=self.dose, i0=self.i0, electronic_noise=self.electronic_noise, pixel_size_mm=self.pixel_size_mm,
                      views=self.views, window=self.window, mu_water=self.mu_water)
        unknown = set(overrides) - set(params)
        if unknown:
            raise MedirError(f"unknown ct-lowdose parameter {sorted(unknown)}: use {', '.join(params)}")
        params.update(overrides)
        return LowDoseCT(**params)


def simulate_ct_lowdose(x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
                        dose: float = 0.25, i0: float = I0_REFERENCE, electronic_noise: float = 0.0,
                        pixel_size_mm: float = 1.0, views: int | None = None, window: str = "ramp",
                        noise: bool = True) -> torch.Tensor:
    """Low-dose CT ``(B, C, H, W)`` HU -> HU at ``dose`` x the reference ``i0`` photons per ray."""
    op = LowDoseCT(dose=dose, i0=i0, electronic_noise=electronic_noise, pixel_size_mm=pixel_size_mm,
                   views=views, window=window)
    return op(x, generator=generator, seed=seed, noise=noise)
