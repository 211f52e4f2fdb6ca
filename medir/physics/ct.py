"""Low-dose CT by noise insertion: the scan stays, reconstructed quantum noise is added to it.

A real scan is already a full-dose image; lowering its dose adds noise, it does not re-blur it.
Following Zeng et al. 2015 ("A simple low-dose x-ray CT simulation from high-dose scan") and
Yu et al. 2012 ("Development and validation of a practical lower-dose-simulation tool"):

    mu  = mu_water (1 + HU / 1000)                    [1/mm], air and below clamp to 0
    p   = pixel_mm * A(mu)                            line integrals on a detector of elements
                                                      ``detector_mm`` wide (at the isocentre)
    lam = I0 / n_views * bowtie(t) * tcm(theta)       incident photons per element and view
    var_D(p^) = (D lam e^-p + sigma_e^2) / (D lam e^-p)^2      log-domain variance at dose D
    n   = sqrt(var_dose - var_scan_dose) * N(0, 1)    only the missing variance is inserted
    HU_low = HU + 1000 / mu_water * FBP(n)            = FBP(noisy sinogram) - FBP(clean sinogram)

so the noise is that of a scan at ``dose`` x the reference while the target keeps its anatomy
and its own (full-dose) noise. ``scan_dose=None`` means a noiseless input (a phantom): the whole
low-dose variance is inserted. The dose is a number of photons per detector element of fixed
physical width per rotation, so noise is a property of the scanner and the body, not of the
pixel size, the crop or the number of views. FBP uses a Hann-apodised ramp cut off at the
detector's Nyquist frequency ``1 / (2 detector_mm)`` (a standard soft-tissue kernel: the noise
power spectrum peaks near 0.25 cycles/mm and vanishes at 0.8 cycles/mm for 0.625 mm elements).

The image is projected over its circumscribed circle (the detector covers the diagonal, so a
body that reaches the corners is never truncated) with at least the angular Nyquist number of
views ``ceil(pi / 2 x n_det)``. ``I0_REFERENCE`` is calibrated in docs/physics_calibration.md
(``python benchmarks/physics_calibration.py``): 10 HU of full-dose noise at the centre of a
320 mm water cylinder, routine abdominal CT. Memory and time scale with the number of views
times the pixels (chunked projector), never with a dense system matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, gaussian_like, make_generator
from medir.physics.projector import (FILTER_WINDOWS, ParallelBeamGeometry, ParallelBeamProjector,
                                     angular_nyquist_views, fbp, make_geometry)

MU_WATER_PER_MM = 0.0192  # water at ~70 keV effective energy (NIST XCOM, mu/rho = 0.193 cm^2/g)
I0_REFERENCE = 1.8e9      # photons per detector element per rotation at full dose: see docs/physics_calibration.md
DETECTOR_MM = 0.625       # detector element width at the isocentre (a 64-row scanner's 0.625 mm elements)
FLUX_GRID_MM = 2.0      # pixel size of the grid the noise variance is computed on
BOWTIE_RADIUS_MM = 250.0  # ``bowtie`` is the relative flux at this distance from the isocentre


def hu_to_mu(hu: torch.Tensor, *, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """HU -> linear attenuation in 1/mm (air and below clamp to 0)."""
    return (mu_water * (1.0 + hu / 1000.0)).clamp_min(0.0)


def mu_to_hu(mu: torch.Tensor, *, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """Linear attenuation in 1/mm -> HU."""
    return 1000.0 * (mu / mu_water - 1.0)


def ct_geometry(height: int, width: int, *, pixel_size_mm: float, detector_mm: float = DETECTOR_MM,
                views: int | None = None) -> ParallelBeamGeometry:
    """Detector of ``detector_mm`` elements over the image's circumscribed circle; ``views`` defaults to the
    angular Nyquist number of the detector (``ceil(pi / 2 x n_det)``)."""
    geom = make_geometry(height, width, views=1, det_spacing=detector_mm / pixel_size_mm)
    n_views = angular_nyquist_views(geom.n_det) if views is None else int(views)
    return make_geometry(height, width, views=n_views, det_spacing=detector_mm / pixel_size_mm)


class LowDoseCT:
    """Noise insertion ``HU (B, C, H, W) -> HU at dose x the reference`` (see the module docstring).

    Every keyword of ``__init__`` may be overridden per call of :meth:`__call__`. Sinograms are
    ``(B, C, views, n_det)``; ``A`` maps attenuation in 1/mm to dimensionless line integrals.
    """

    def __init__(self, *, dose: float = 0.25, i0: float = I0_REFERENCE, scan_dose: float | None = 1.0,
                 electronic_noise: float = 0.0, pixel_size_mm: float = 1.0, detector_mm: float = DETECTOR_MM,
                 views: int | None = None, window: str = "hann", bowtie: float = 1.0, tube_modulation: bool = False,
                 mu_water: float = MU_WATER_PER_MM):
        self.dose = check_range("dose", dose, lo=0.0, lo_open=True, hint="dose is a fraction of the reference dose, e.g. 0.25")
        self.i0 = check_range("i0", i0, lo=0.0, lo_open=True, hint="give photons per detector element per rotation")
        self.scan_dose = None if scan_dose is None else check_range("scan_dose", scan_dose, lo=0.0, lo_open=True)
        if self.scan_dose is not None and self.dose > self.scan_dose:
            raise MedirError(f"dose={dose} is above the scan's own dose {scan_dose}: noise insertion can only lower the "
                             "dose (give dose <= scan_dose, or scan_dose=None for a noiseless phantom)")
        self.electronic_noise = check_range("electronic_noise", electronic_noise, lo=0.0)
        self.pixel_size_mm = check_range("pixel_size_mm", pixel_size_mm, lo=0.0, lo_open=True)
        self.detector_mm = check_range("detector_mm", detector_mm, lo=0.0, lo_open=True)
        if views is not None:
            check_range("views", views, lo=1)
        self.views = views
        if window not in FILTER_WINDOWS:
            raise MedirError(f"unknown FBP window '{window}': use one of {', '.join(FILTER_WINDOWS)}")
        self.window = window
        self.bowtie = check_range("bowtie", bowtie, lo=0.0, hi=1.0, lo_open=True, hint="relative flux 250 mm off-centre")
        self.tube_modulation = bool(tube_modulation)
        self.mu_water = check_range("mu_water", mu_water, lo=0.0, lo_open=True)

    def geometry(self, height: int, width: int) -> ParallelBeamGeometry:
        return ct_geometry(height, width, pixel_size_mm=self.pixel_size_mm, detector_mm=self.detector_mm,
                           views=self.views)

    def projector(self, height: int, width: int) -> ParallelBeamProjector:
        return ParallelBeamProjector(self.geometry(height, width))

    def A(self, mu: torch.Tensor) -> torch.Tensor:
        """Attenuation ``(B, C, H, W)`` in 1/mm -> line integrals (dimensionless)."""
        return self.projector(*mu.shape[-2:]).A(mu) * self.pixel_size_mm

    def A_adjoint(self, p: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.projector(height, width).A_adjoint(p) * self.pixel_size_mm

    def incident(self, p: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
        """Full-dose incident photons per element and view ``(B, C, views, n_det)``: ``I0 / views``, shaped by the
        bowtie across the detector and, with ``tube_modulation``, by views (flux ~ sqrt of the view's mean
        transmission loss, the minimum-noise modulation of Gies et al. 1999, mean 1 over the rotation)."""
        t_mm = (torch.arange(geom.n_det, dtype=p.dtype, device=p.device) - geom.n_det // 2) * self.detector_mm
        lam = (self.i0 / geom.n_views) * self.bowtie ** ((t_mm / BOWTIE_RADIUS_MM) ** 2)
        lam = lam.expand_as(p)
        if self.tube_modulation:
            weight = torch.exp(p).mean(dim=-1, keepdim=True).sqrt()
            lam = lam * weight / weight.mean(dim=-2, keepdim=True)
        return lam

    def log_variance(self, transmitted: torch.Tensor, dose: float | None) -> torch.Tensor:
        """Variance of ``-log(N / N_in)`` for ``transmitted = lam e^-p`` at ``dose`` (0 for ``None``: noiseless)."""
        if dose is None:
            return torch.zeros_like(transmitted)
        mean = (dose * transmitted).clamp_min(1e-6)
        return (mean + self.electronic_noise ** 2) / mean ** 2

    def line_integrals(self, hu: torch.Tensor, geom: ParallelBeamGeometry) -> torch.Tensor:
        """Line integrals ``p (B, C, views, n_det)`` of ``hu`` on ``geom``'s detector, from the scan pooled to about
        ``FLUX_GRID_MM`` pixels and projected at the Nyquist of that grid, then interpolated: ``p`` only sets the
        noise variance ``e^p / lam``, which is smooth, and this is ~100x cheaper than projecting every pixel."""
        k = max(1, round(FLUX_GRID_MM / self.pixel_size_mm))
        mu = hu_to_mu(hu, mu_water=self.mu_water)
        if k > 1 and min(hu.shape[-2:]) >= 4 * k:
            mu = F.avg_pool2d(mu, k, ceil_mode=True)
        coarse = make_geometry(*mu.shape[-2:], views=angular_nyquist_views(make_geometry(*mu.shape[-2:]).n_det))
        if k == 1 and coarse.height == geom.height and geom.det_spacing == 1.0 and coarse.n_views == geom.n_views:
            return ParallelBeamProjector(geom).A(mu) * self.pixel_size_mm
        p = ParallelBeamProjector(coarse).A(mu) * (self.pixel_size_mm * k)
        # fine bins and views in coarse-bin and coarse-view coordinates, normalised for grid_sample
        t = (torch.arange(geom.n_det, dtype=p.dtype) - geom.n_det // 2) * geom.det_spacing / k
        gx = 2.0 * (t + coarse.n_det // 2) / (coarse.n_det - 1) - 1.0
        v = torch.arange(geom.n_views, dtype=p.dtype) * coarse.n_views / geom.n_views
        gy = 2.0 * v / (coarse.n_views - 1) - 1.0
        grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)[None].to(p.device)
        b, c = p.shape[:2]
        out = F.grid_sample(p.reshape(1, b * c, *p.shape[-2:]), grid, mode="bilinear", padding_mode="border",
                            align_corners=True)
        return out.reshape(b, c, geom.n_views, geom.n_det)

    def transmitted(self, hu: torch.Tensor) -> tuple[torch.Tensor, ParallelBeamGeometry]:
        """Full-dose photons reaching each detector element per view, ``lam e^-p`` ``(B, C, views, n_det)``."""
        geom = self.geometry(*hu.shape[-2:])
        p = self.line_integrals(hu, geom)
        return self.incident(p, geom) * torch.exp(-p), geom

    def added_variance(self, transmitted: torch.Tensor, dose: float) -> torch.Tensor:
        """Log-domain variance to insert so a scan at ``scan_dose`` looks like one at ``dose``."""
        return (self.log_variance(transmitted, dose) - self.log_variance(transmitted, self.scan_dose)).clamp_min(0)

    def noise_sinogram(self, hu: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Zero-mean log-domain noise ``(B, C, views, n_det)`` with the variance the scan lacks at ``dose``."""
        transmitted, _ = self.transmitted(hu)
        var = self.added_variance(transmitted, self.dose)
        return var.sqrt() * gaussian_like(var, generator)

    def noise_at_doses(self, hu: torch.Tensor, doses: list[float], *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Independent noise images ``(len(doses), C, H, W)`` in HU for one slice ``(1, C, H, W)``, one per dose:
        the projection is shared, so many realisations cost little more than one back-projection each."""
        transmitted, _ = self.transmitted(hu)
        for d in doses:
            check_range("dose", d, lo=0.0, hi=self.scan_dose, lo_open=True)
        var = torch.cat([self.added_variance(transmitted, float(d)) for d in doses])
        return self.reconstruct_noise(var.sqrt() * gaussian_like(var, generator), *hu.shape[-2:])

    def reconstruct_noise(self, sino: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Log-domain sinogram -> HU ``(B, C, H, W)``: Hann (or ``window``) FBP at the detector's Nyquist."""
        geom = self.geometry(height, width)
        mu = fbp(ParallelBeamProjector(geom), sino, window=self.window) / self.pixel_size_mm
        return 1000.0 * mu / self.mu_water

    def noise(self, hu: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The inserted noise ``FBP(noisy sinogram) - FBP(clean sinogram)`` in HU, ``(B, C, H, W)``."""
        return self.reconstruct_noise(self.noise_sinogram(hu, generator=generator), *hu.shape[-2:])

    def __call__(self, x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
                 noise: bool = True, **overrides) -> torch.Tensor:
        """HU ``(B, C, H, W)`` -> the same scan at ``dose``, same shape; ``noise=False`` returns the scan unchanged."""
        op = self.with_overrides(**overrides) if overrides else self
        check_image(x)
        if not noise:
            return x.clone()
        gen = make_generator(x, generator=generator, seed=seed)
        work = x.to(torch.float64) if x.dtype == torch.float64 else x.to(torch.float32)
        return (work + op.noise(work, generator=gen)).to(x.dtype)

    def with_overrides(self, **overrides) -> "LowDoseCT":
        params = dict(dose=self.dose, i0=self.i0, scan_dose=self.scan_dose, electronic_noise=self.electronic_noise,
                      pixel_size_mm=self.pixel_size_mm, detector_mm=self.detector_mm, views=self.views,
                      window=self.window, bowtie=self.bowtie, tube_modulation=self.tube_modulation,
                      mu_water=self.mu_water)
        unknown = set(overrides) - set(params)
        if unknown:
            raise MedirError(f"unknown ct-lowdose parameter {sorted(unknown)}: use {', '.join(params)}")
        params.update(overrides)
        return LowDoseCT(**params)


def simulate_ct_lowdose(x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
                        dose: float = 0.25, i0: float = I0_REFERENCE, scan_dose: float | None = 1.0,
                        electronic_noise: float = 0.0, pixel_size_mm: float = 1.0, detector_mm: float = DETECTOR_MM,
                        views: int | None = None, window: str = "hann", bowtie: float = 1.0,
                        tube_modulation: bool = False, noise: bool = True) -> torch.Tensor:
    """Low-dose CT ``(B, C, H, W)`` HU -> HU at ``dose`` x the reference ``i0`` photons per element and rotation."""
    op = LowDoseCT(dose=dose, i0=i0, scan_dose=scan_dose, electronic_noise=electronic_noise,
                   pixel_size_mm=pixel_size_mm, detector_mm=detector_mm, views=views, window=window,
                   bowtie=bowtie, tube_modulation=tube_modulation)
    return op(x, generator=generator, seed=seed, noise=noise)


def nyquist_views(height: int, width: int, *, pixel_size_mm: float, detector_mm: float = DETECTOR_MM) -> int:
    """The default number of views of a ``height x width`` slice (the angular Nyquist of its detector)."""
    return ct_geometry(height, width, pixel_size_mm=pixel_size_mm, detector_mm=detector_mm).n_views


__all__ = ["LowDoseCT", "simulate_ct_lowdose", "hu_to_mu", "mu_to_hu", "ct_geometry", "nyquist_views",
           "I0_REFERENCE", "DETECTOR_MM", "MU_WATER_PER_MM"]
