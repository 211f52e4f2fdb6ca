"""Global statistics of the planar bone-scan phantom next to the one real lossless scan: a sanity check of realism.

The only real lossless planar bone scan here, pydicom-data's ``JPEG-LL.dcm`` (anterior, 1024 x 256, 2.26 mm), is
also the real TEST scan of ``benchmarks/bonescan_eval.py``. It is used here only to CHECK the phantom's realism with
global statistics, never to train or to select a model; the phantom's parameters come from the literature values
in ``medir.data.bonescan``'s docstring. Both sides are Poisson count images at standard-scan level (the phantom: one
Poisson draw of its expected anterior counts; the real scan: its counts). Statistics:

- total counts, and percentiles 50 / 90 / 99 of the nonzero pixels (counts);
- body fraction: pixels above 10 % of the smoothed image's 99th percentile (smoothing: Gaussian, sigma 2 px);
- contrast: 99th / 50th percentile of the smoothed image inside the body (hot skeleton over soft tissue);
- soft-tissue level: 25th percentile inside the body over its 99th percentile;
- spectral slope: the slope of log radially-averaged power against log frequency for 0.02-0.15 cycles / pixel of
  ``image / mean`` (after subtracting the Poisson white-noise floor ``1 / mean``), and the mean signal power
  (noise floor removed) at 0.05-0.15 over that at 0.01-0.05 cycles / pixel (fine detail against coarse).

    OMP_NUM_THREADS=1 python benchmarks/bonescan_realism.py --patients 8
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage


def radial_power(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power of ``x / mean(x)`` minus the Poisson floor ``1 / mean`` (per pixel), by frequency
    in cycles / pixel (bins of 1 / 256)."""
    m = float(x.mean())
    f = np.fft.fft2(x / m - 1.0)
    p = np.abs(f) ** 2 / x.size - 1.0 / m
    fy, fx = np.meshgrid(np.fft.fftfreq(x.shape[0]), np.fft.fftfreq(x.shape[1]), indexing="ij")
    r = np.hypot(fy, fx)
    bins = np.arange(0.0, 0.5 + 1 / 256, 1 / 256)
    idx = np.digitize(r.ravel(), bins)
    power = np.bincount(idx, p.ravel(), len(bins) + 1) / np.maximum(np.bincount(idx, None, len(bins) + 1), 1)
    return bins[1:] - 0.5 / 256, power[1:len(bins)]


def stats(counts: np.ndarray) -> dict[str, float]:
    """The statistics of the module docstring for one count image ``(H, W)``."""
    nz = counts[counts > 0]
    smooth = ndimage.gaussian_filter(counts.astype(np.float64), 2.0)
    body = smooth > 0.1 * np.percentile(smooth, 99)
    inner = smooth[body]
    f, p = radial_power(counts.astype(np.float64))
    band = (f > 0.02) & (f < 0.15) & (p > 0)
    slope = float(np.polyfit(np.log(f[band]), np.log(p[band]), 1)[0])
    lo, hi = (f > 0.01) & (f < 0.05), (f > 0.05) & (f < 0.15)
    return {"total": float(counts.sum()), "p50": float(np.percentile(nz, 50)), "p90": float(np.percentile(nz, 90)),
            "p99": float(np.percentile(nz, 99)), "body": float(body.mean()),
            "contrast": float(np.percentile(inner, 99) / np.percentile(inner, 50)),
            "soft": float(np.percentile(inner, 25) / np.percentile(inner, 99)), "slope": slope,
            "fine": float(np.clip(p[hi], 0, None).mean() / p[lo].mean())}


COLUMNS = (("total", ".2e"), ("p50", ".0f"), ("p90", ".0f"), ("p99", ".0f"), ("body", ".2f"), ("contrast", ".2f"),
           ("soft", ".3f"), ("slope", ".2f"), ("fine", ".4f"))


def row(name: str, rows: list[dict]) -> str:
    cells = []
    for key, fmt in COLUMNS:
        v = np.array([r[key] for r in rows])
        cells.append(f"{v.mean():{fmt}}" + (f" ({v.min():{fmt}}-{v.max():{fmt}})" if len(v) > 1 else ""))
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--patients", type=int, default=8, help="phantom test patients (anterior views)")
    args = p.parse_args()
    from medir.data.bonescan import SPLIT_SEED_BASE, bone_scan_phantom
    from medir.methods.spdvfm.data import real_planar_counts

    rng = np.random.default_rng(0)
    real = stats(real_planar_counts("JPEG-LL.dcm"))
    ph = [stats(rng.poisson(bone_scan_phantom(SPLIT_SEED_BASE["test"] + k).expected[0].numpy()).astype(np.float64))
          for k in range(args.patients)]
    print("Planar bone scan, anterior view, standard-scan counts: real JPEG-LL.dcm (the test scan, used only as a "
          f"check) vs {args.patients} phantom test patients (mean (min-max))\n")
    print("| image | total counts | p50 | p90 | p99 | body fraction | contrast p99/p50 | soft p25/p99 | "
          "spectral slope | power 0.05-0.15 / 0.01-0.05 |")
    print("|---|" + "---|" * len(COLUMNS))
    print(row("real JPEG-LL.dcm", [real]))
    print(row("phantom", ph))


if __name__ == "__main__":
    main()
