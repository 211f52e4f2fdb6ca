"""Low-count PET / SPECT emission tomography: activity -> attenuated, PSF-blurred sinogram -> Poisson -> OSEM.

System model (2-D, one slice; MFdiff section 4.2 protocol):

    y_bar = c * a * A(G x) + b,    a = exp(-pixel_mm * A(mu)),    y ~ Poisson(y_bar)

``A`` is the parallel-beam projector, ``G`` a Gaussian PSF of ``psf_fwhm_mm``, ``mu`` the attenuation
map in 1/mm (water at 511 keV is 0.0096/mm), ``c`` scales the noiseless sinogram to ``counts x dose``
total expected counts, ``b`` an optional uniform background (randoms + scatter) as a fraction of the mean.
OSEM (Hudson & Larkin 1994) reconstructs with the same ``H = a A G`` (PSF modelling), interleaved
view subsets, and an optional Gaussian post-filter. The result is divided by ``c`` so it is in the
input's activity units.

Counts are per 2-D slice. A clinical 3-D acquisition spreads its counts over the axial slices (127 on
a Biograph mMR, of which a brain fills about 75), so the papers' per-volume numbers are divided down
(docs/physics_calibration_emission.md derives them; ``benchmarks/physics_calibration_emission.py``
measures the resulting input quality):

- ``mfdiff-high``: MFdiff's 1e10 counts over 127 slices, 7.9e7 per slice, 2.5 mm PSF, OSEM 15 x 10 (target);
- ``mfdiff-low``: 2.25e5 to 3e5 per slice (MFdiff's 9e7-12e7 divided by 400, calibrated so the input
  reproduces MFdiff Table 1's low-dose PSNR 21.13 dB / NMSE 0.176), 4 mm PSF, OSEM 10 x 14;
- ``clinical-full``: a standard-dose FDG brain scan, 2e6 per slice (1.5e8 true counts over 75 brain
  slices), 4 mm PSF, OSEM 3 x 21 and a 5 mm post-filter (MFdiff's in-vivo reconstruction);
- ``clinical-quarter`` and ``clinical-twelfth``: the same at 1/4 and 1/12 of the dose (RAT and DiffCode
  decimate list mode by 12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, make_generator, poisson
from medir.physics.filters import fwhm_to_sigma, gaussian_blur
from medir.physics.projector import ParallelBeamProjector, fbp, make_geometry

MU_WATER_511KEV_PER_MM = 0.0096


@dataclass(frozen=True)
class PetProtocol:
    """Total counts drawn uniformly in ``counts`` (lo, hi); PSF FWHM in mm; OSEM iterations x subsets."""

    counts: tuple[float, float]
    psf_fwhm_mm: float
    iterations: int
    subsets: int
    post_filter_fwhm_mm: float = 0.0


MFDIFF_SLICES = 127            # Biograph mMR axial slices (MFdiff: 344 x 344 x 127)
MFDIFF_LOW_PER_SLICE = 400     # MFdiff's 3-D low-dose counts / this = per-slice counts matching its Table 1 input
CLINICAL_FULL_PER_SLICE = 2e6  # standard-dose FDG brain: about 1.5e8 trues over about 75 brain slices

PET_PROTOCOLS: dict[str, PetProtocol] = {
    "mfdiff-high": PetProtocol(counts=(1e10 / MFDIFF_SLICES,) * 2, psf_fwhm_mm=2.5, iterations=15, subsets=10),
    "mfdiff-low": PetProtocol(counts=(9e7 / MFDIFF_LOW_PER_SLICE, 12e7 / MFDIFF_LOW_PER_SLICE), psf_fwhm_mm=4.0,
                              iterations=10, subsets=14),
    "clinical-full": PetProtocol(counts=(CLINICAL_FULL_PER_SLICE,) * 2, psf_fwhm_mm=4.0, iterations=3, subsets=21,
                                 post_filter_fwhm_mm=5.0),
    "clinical-quarter": PetProtocol(counts=(CLINICAL_FULL_PER_SLICE / 4,) * 2, psf_fwhm_mm=4.0, iterations=3,
                                    subsets=21, post_filter_fwhm_mm=5.0),
    "clinical-twelfth": PetProtocol(counts=(CLINICAL_FULL_PER_SLICE / 12,) * 2, psf_fwhm_mm=4.0, iterations=3,
                                    subsets=21, post_filter_fwhm_mm=5.0),
}


def body_attenuation(activity: torch.Tensor, *, threshold: float = 0.02,
                     mu: float = MU_WATER_511KEV_PER_MM) -> torch.Tensor:
    """Uniform water attenuation (1/mm) inside the filled outline ``activity > threshold * max``, ``(B, C, H, W)``."""
    a = activity.detach().cpu().numpy()
    out = np.zeros_like(a)
    for idx in np.ndindex(a.shape[:2]):
        sl = a[idx]
        if sl.max() > 0:
            out[idx] = ndimage.binary_fill_holes(sl > threshold * sl.max()) * mu
    return torch.from_numpy(out).to(activity)


class EmissionSystem:
    """``H = diag(a) A G``: activity ``(B, C, H, W)`` -> expected sinogram ``(B, C, views, n_det)`` (unscaled).

    ``A`` / ``A_adjoint`` act on all views; ``A_subset`` / ``A_adjoint_subset`` on OSEM subset ``k``
    (views ``k, k + S, k + 2S, ...``). ``mu_map (B, C, H, W)`` in 1/mm or ``None`` for no attenuation.
    """

    def __init__(self, height: int, width: int, *, views: int | None = None, pixel_size_mm: float = 2.08,
                 psf_fwhm_mm: float = 0.0, mu_map: torch.Tensor | None = None, subsets: int = 1):
        self.full = ParallelBeamProjector(make_geometry(height, width, views=views))
        self.pixel_size_mm = pixel_size_mm
        self.sigma = fwhm_to_sigma(psf_fwhm_mm, pixel_size_mm) if psf_fwhm_mm > 0 else 0.0
        n_views = self.full.geometry.n_views
        if not 1 <= subsets <= n_views:
            raise MedirError(f"subsets={subsets} is impossible with {n_views} views: use 1 to {n_views}")
        angles = self.full.geometry.angles
        self.views_of = [list(range(k, n_views, subsets)) for k in range(subsets)]
        self.parts = [ParallelBeamProjector(make_geometry(height, width, angles_deg=tuple(angles[v] for v in idx),
                                                          n_det=self.full.geometry.n_det)) for idx in self.views_of]
        self.att = None if mu_map is None else torch.exp(-pixel_size_mm * self.full.A(mu_map))

    def _att(self, k: int | None) -> torch.Tensor | None:
        if self.att is None or k is None:
            return self.att
        return self.att[..., self.views_of[k], :]

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_subset(x, None)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint_subset(y, None)

    def A_subset(self, x: torch.Tensor, k: int | None) -> torch.Tensor:
        proj = self.full if k is None else self.parts[k]
        y = proj.A(gaussian_blur(x, self.sigma))
        att = self._att(k)
        return y if att is None else y * att

    def A_adjoint_subset(self, y: torch.Tensor, k: int | None) -> torch.Tensor:
        proj = self.full if k is None else self.parts[k]
        att = self._att(k)
        return gaussian_blur(proj.A_adjoint(y if att is None else y * att), self.sigma)


def osem(y: torch.Tensor, system: EmissionSystem, *, iterations: int, background: torch.Tensor | float = 0.0,
         x0: torch.Tensor | None = None, callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Ordered-subsets EM (Hudson & Larkin 1994, eq. 3): ``x <- x / H_k^T 1 * H_k^T (y_k / (H_k x + b_k))``.

    ``y (B, C, views, n_det)`` counts -> ``(B, C, H, W)``; ``callback(iteration, x)`` after each full iteration.
    """
    b, c = y.shape[:2]
    h, w = system.full.image_shape
    sens = [system.A_adjoint_subset(torch.ones_like(y[..., idx, :]), k) for k, idx in enumerate(system.views_of)]
    if x0 is None:
        total = system.A_adjoint(torch.ones_like(y)).sum(dim=(-2, -1), keepdim=True)
        x0 = y.sum(dim=(-2, -1), keepdim=True) / total.clamp_min(1e-12) * torch.ones(b, c, h, w, dtype=y.dtype, device=y.device)
    x = x0.clone()
    bg = background if isinstance(background, torch.Tensor) else torch.full_like(y, float(background))
    for it in range(iterations):
        for k, idx in enumerate(system.views_of):
            y_k, b_k = y[..., idx, :], bg[..., idx, :]
            ratio = y_k / (system.A_subset(x, k) + b_k).clamp_min(1e-12)
            s = sens[k]
            x = torch.where(s > 1e-8 * s.amax(), x * system.A_adjoint_subset(ratio, k) / s.clamp_min(1e-12), x)
            # EM drives empty pixels geometrically to 0; flush them before they turn denormal (100x slower on CPU)
            x = torch.where(x < 1e-10 * x.amax(dim=(-2, -1), keepdim=True), torch.zeros_like(x), x)
        if callback is not None:
            callback(it + 1, x)
    return x


def resolve_protocol(protocol: str, *, counts: float | None, psf_fwhm_mm: float | None, iterations: int | None,
                     subsets: int | None, post_filter_fwhm_mm: float | None) -> PetProtocol:
    """The named protocol with any explicitly given setting replacing its value."""
    if protocol not in PET_PROTOCOLS:
        raise MedirError(f"unknown PET protocol '{protocol}': use one of {', '.join(PET_PROTOCOLS)}")
    p = PET_PROTOCOLS[protocol]
    return PetProtocol(
        counts=p.counts if counts is None else (float(counts), float(counts)),
        psf_fwhm_mm=p.psf_fwhm_mm if psf_fwhm_mm is None else float(psf_fwhm_mm),
        iterations=p.iterations if iterations is None else int(iterations),
        subsets=p.subsets if subsets is None else int(subsets),
        post_filter_fwhm_mm=p.post_filter_fwhm_mm if post_filter_fwhm_mm is None else float(post_filter_fwhm_mm),
    )


def _draw_counts(p: PetProtocol, batch: int, dose: float, gen: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    lo, hi = p.counts
    u = torch.rand(batch, generator=gen, device=like.device, dtype=torch.float64) if hi > lo else torch.zeros(batch, dtype=torch.float64, device=like.device)
    return ((lo + (hi - lo) * u) * dose).to(like.dtype).view(batch, 1, 1, 1)


def simulate_pet_lowcount(
    x: torch.Tensor, *, generator: torch.Generator | None = None, seed: int | None = None,
    protocol: str = "mfdiff-low", counts: float | None = None, dose: float = 1.0, psf_fwhm_mm: float | None = None,
    iterations: int | None = None, subsets: int | None = None, post_filter_fwhm_mm: float | None = None,
    pixel_size_mm: float = 2.08, views: int | None = None, mu_map: torch.Tensor | None = None,
    attenuation: bool = True, background_fraction: float = 0.0, recon: str = "osem", noise: bool = True,
) -> torch.Tensor:
    """Activity ``(B, C, H, W)`` (>= 0, any units) -> reconstructed activity, same units and shape.

    ``counts`` is the total expected counts of one slice at full dose, ``dose`` the dose-reduction
    fraction on top (RAT and DiffCode use 1/12; 1/4 is common). ``recon`` is "osem" or "fbp"
    (attenuation-corrected filtered back-projection, no PSF). ``mu_map`` defaults to water inside the body.
    """
    check_image(x)
    check_range("dose", dose, lo=0.0, lo_open=True, hint="dose is a fraction of the full dose, e.g. 0.25 or 1/12")
    check_range("pixel_size_mm", pixel_size_mm, lo=0.0, lo_open=True)
    check_range("background_fraction", background_fraction, lo=0.0)
    if recon not in ("osem", "fbp"):
        raise MedirError(f"recon='{recon}' is unknown: use 'osem' or 'fbp'")
    if float(x.min()) < 0:
        raise MedirError("PET activity has negative values: emission simulation needs activity >= 0 (clip it first)")
    p = resolve_protocol(protocol, counts=counts, psf_fwhm_mm=psf_fwhm_mm, iterations=iterations, subsets=subsets,
                         post_filter_fwhm_mm=post_filter_fwhm_mm)
    check_range("counts", p.counts[0], lo=0.0, lo_open=True, hint="give total counts per slice, e.g. 1e8")
    check_range("iterations", p.iterations, lo=1)
    gen = make_generator(x, generator=generator, seed=seed)
    if mu_map is None and attenuation:
        mu_map = body_attenuation(x)
    system = EmissionSystem(*x.shape[-2:], views=views, pixel_size_mm=pixel_size_mm, psf_fwhm_mm=p.psf_fwhm_mm,
                            mu_map=mu_map if attenuation else None, subsets=p.subsets)
    clean = system.A(x)
    total = _draw_counts(p, x.shape[0], dose, gen, x)
    scale = total / clean.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    y_bar = clean * scale
    bg = background_fraction * y_bar.mean(dim=(1, 2, 3), keepdim=True) * torch.ones_like(y_bar)
    y = poisson(y_bar + bg, gen) if noise else y_bar + bg
    out = _reconstruct(y, bg, system, p, recon)
    return out / scale


def _reconstruct(y: torch.Tensor, bg: torch.Tensor, system: EmissionSystem, p: PetProtocol, recon: str) -> torch.Tensor:
    if recon == "osem":
        x = osem(y, system, iterations=p.iterations, background=bg)
    else:
        corrected = (y - bg) / (system.att if system.att is not None else 1.0)
        x = fbp(system.full, corrected).clamp_min(0)
    if p.post_filter_fwhm_mm > 0:
        x = gaussian_blur(x, fwhm_to_sigma(p.post_filter_fwhm_mm, system.pixel_size_mm))
    return x
