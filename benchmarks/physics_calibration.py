"""Are the simulators calibrated against real scans? Tables for docs/physics_calibration.md.

CT section (``ct-lowdose``, noise insertion, default parameters unless said):
- on real slices from packages: the inserted noise std (HU) at dose 1/2, 1/4, 1/10 of the reference, measured in
  the slice's flattest soft-tissue 5 mm windows, its ratio to the slice's own noise in the same windows, the
  slice's dose estimated from its own noise, the NPS peak (cycles/mm) and the neighbour-pixel correlation;
- the calibration point: full-dose noise at the centre of water cylinders (320 mm: routine abdomen, 200 mm: head);
- invariance: the same dose gives the same noise on a patch of a slice (the training path simulates the slice
  and crops) and at any pixel size (per pixel and averaged over 3 mm squares);
- peak memory (RSS of a fresh process) and time of ct-lowdose on one 512x512 and one 1024x1024 slice.
Then the PET / scintigraphy section of ``benchmarks/physics_calibration_emission.py`` when that file exists.

    OMP_NUM_THREADS=1 python benchmarks/physics_calibration.py [--skip-memory] [--ct-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from medir.physics.ct import I0_REFERENCE, LowDoseCT
from medir.physics.ct_noise import (estimate_scan_dose, flat_windows, neighbour_correlation, nps_peak,
                                    own_noise_std, window_std)

REAL = ("693_UNCR.dcm", "J2K_pixelrep_mismatch.dcm", "CT_small.dcm")
DOSES = (0.5, 0.25, 0.1)


def real_slice(name: str) -> tuple[np.ndarray, float]:
    from medir.data.ldct import real_ct

    image = real_ct(name)
    return image.array.astype(np.float32), float(image.meta.spacing[-1])


def inserted(hu: np.ndarray, pixel: float, *, dose: float, seed: int = 0, **kw) -> np.ndarray:
    op = LowDoseCT(dose=dose, pixel_size_mm=pixel, **kw)
    x = torch.from_numpy(hu)[None, None]
    return op.noise(x, generator=torch.Generator().manual_seed(seed))[0, 0].numpy()


def real_slices_table() -> None:
    print("\n### CT: noise inserted on real slices (scan_dose=1: each scan taken as a full-dose reference scan)\n")
    print("| slice | pixel (mm) | own noise (HU) | est. scan dose | " +
          " | ".join(f"added at {d:g} (HU)" for d in DOSES) + " | added/own at 1/4 | total/own at 1/4 | "
          "NPS peak (cyc/mm) | neighbour corr. |")
    print("|---" * (9 + len(DOSES) - 3) + "|")
    for name in REAL:
        hu, pixel = real_slice(name)
        windows = flat_windows(hu, pixel_mm=pixel)
        own = window_std(hu, windows)
        added = {d: inserted(hu, pixel, dose=d, seed=1) for d in DOSES}
        std = {d: window_std(a, windows) for d, a in added.items()}
        q = added[0.25]
        h, w = q.shape
        centre = q[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        print(f"| {name} | {pixel:.3f} | {own:.2f} | {estimate_scan_dose(hu, pixel_mm=pixel):.3g} | "
              + " | ".join(f"{std[d]:.2f}" for d in DOSES)
              + f" | {std[0.25] / own:.2f} | {np.hypot(own, std[0.25]) / own:.2f} | "
              f"{nps_peak(centre, pixel_mm=pixel):.2f} | {neighbour_correlation(centre):.2f} |")
    print("\nown noise: median std of the flattest 20 % of 5 mm soft-tissue windows ([-100, 100] HU); the added noise"
          " is measured in the same windows. Clinical quarter dose doubles the noise: added/own = sqrt(3) = 1.73,"
          " total/own = 2.")


def water(diameter_mm: float, pixel: float, fov_mm: float) -> np.ndarray:
    n = int(round(fov_mm / pixel))
    c = (np.arange(n) - n / 2 + 0.5) * pixel
    return np.where(np.hypot(c[:, None], c[None, :]) < diameter_mm / 2, 0.0, -1000.0).astype(np.float32)


def centre_box(a: np.ndarray, pixel: float, box_mm: float = 40.0) -> np.ndarray:
    n, r = a.shape[0], int(round(box_mm / pixel / 2))
    return a[n // 2 - r: n // 2 + r, n // 2 - r: n // 2 + r]


def block_mean(a: np.ndarray, pixel: float, block_mm: float = 2.0) -> np.ndarray:
    k = max(1, int(round(block_mm / pixel)))
    h, w = (a.shape[0] // k) * k, (a.shape[1] // k) * k
    return a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def water_table() -> None:
    print(f"\n### CT: calibration point (I0 = {I0_REFERENCE:.3g} photons per 0.625 mm element per rotation)\n")
    print("| water cylinder | pixel (mm) | full-dose noise at the centre (HU) | quarter-dose noise (HU) | target |")
    print("|---|---|---|---|---|")
    for diameter, pixel, fov, target in [(320, 0.8, 360, "8-15 HU, routine abdomen"), (200, 0.5, 240, "3-5 HU, head")]:
        x = water(diameter, pixel, fov)
        full = np.std(centre_box(inserted(x, pixel, dose=1.0, scan_dose=None), pixel))
        quarter = np.std(centre_box(inserted(x, pixel, dose=0.25, scan_dose=None, seed=1), pixel))
        print(f"| {diameter} mm | {pixel} | {full:.2f} | {quarter:.2f} | {target} |")


def training_path_patch(hu: np.ndarray, pixel: float, y0: int, x0: int, p: int, draws: int) -> float:
    """Added noise std in a patch as the training data path makes it with ``simulate_on: patch``."""
    from medir.data.datasets import PairSource, PatchDataset, Slices
    from medir.data.intensity import get_preset
    from medir.physics import simulate

    slices = Slices(hq=[hu[None]], lq=None, names=["693_UNCR"], pixel_mm=[pixel])
    source = PairSource(slices, task="ct-lowdose", params={"dose": 0.25}, simulate=simulate, cache_draws=draws)
    ds = PatchDataset(source, get_preset("ct"), patch_size=p, augment=False, seed=0, simulate_on="patch")
    assert ds.simulate_on == "slice"  # the patch is cut from a whole-slice simulation
    stds = []
    for d in range(draws):
        lq, target = source.cached_pair(0, d)
        stds.append((lq - target)[0, y0:y0 + p, x0:x0 + p].std())
    return float(np.mean(stds))


def invariance_table() -> None:
    print("\n### CT: the same dose gives the same noise, whatever the crop or the pixel size\n")
    hu, pixel = real_slice("693_UNCR.dcm")
    y0, x0, p = 200, 190, 128
    whole = [inserted(hu, pixel, dose=0.25, seed=s)[y0:y0 + p, x0:x0 + p].std() for s in range(2)]
    alone = [inserted(np.ascontiguousarray(hu[y0:y0 + p, x0:x0 + p]), pixel, dose=0.25, seed=s).std() for s in range(2)]
    path = training_path_patch(hu, pixel, y0, x0, p, draws=2)
    print("| 128x128 patch of 693_UNCR at quarter dose (2 draws) | added noise std (HU) | ratio to whole slice |")
    print("|---|---|---|")
    print(f"| whole slice simulated, then cropped | {np.mean(whole):.2f} | 1.00 |")
    print(f"| patch simulated alone (no body around it: physically wrong) | {np.mean(alone):.2f} | "
          f"{np.mean(alone) / np.mean(whole):.2f} |")
    print(f"| training data path, `simulate_on: patch` | {path:.2f} | {path / np.mean(whole):.2f} |")
    print("\n| 200 mm water cylinder, quarter dose | noise per pixel (HU) | noise of 3 mm squares (HU) |")
    print("|---|---|---|")
    for px in (0.375, 0.5, 0.75, 1.0):
        n = inserted(water(200, px, 240), px, dose=0.25, scan_dose=None, seed=2)
        print(f"| pixel {px} mm | {np.std(centre_box(n, px)):.2f} | {np.std(block_mean(centre_box(n, px), px, 3.0)):.2f} |")


CHILD = """
import json, resource, sys, time, numpy as np, torch
from medir.physics import simulate
size, pixel = int(sys.argv[1]), float(sys.argv[2])
from medir.data.ldct import real_ct
hu = torch.from_numpy(real_ct("693_UNCR.dcm").array.astype(np.float32))[None, None]
if size != hu.shape[-1]:
    hu = torch.nn.functional.interpolate(hu, size=(size, size), mode="bilinear", align_corners=False)
simulate("ct-lowdose", hu[..., :64, :64], seed=0)  # imports and first-call set-up, not counted below
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
simulate("ct-lowdose", hu, seed=0, dose=0.25, pixel_size_mm=pixel)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mb": base / 1024}))
"""


def memory_table() -> None:
    print("\n### CT: peak memory and time of ct-lowdose on one slice (a fresh process each)\n")
    print("| slice | pixel (mm) | views x detector | peak RSS (MB) | peak RSS before this slice (MB) | time (s) |")
    print("|---|---|---|---|---|---|")
    for size, pixel in ((512, 0.478516), (1024, 0.239258)):
        out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(pixel)], capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        g = LowDoseCT(pixel_size_mm=pixel).geometry(size, size)
        print(f"| {size}x{size} | {pixel:.3f} | {g.n_views} x {g.n_det} | {r['peak_mb']:.0f} | {r['before_mb']:.0f} | "
              f"{r['seconds']:.1f} |")
    print("\n(693_UNCR; the 1024x1024 slice is the same head resampled to half the pixel size.)")


def ct_report(*, memory: bool = True) -> None:
    """Print every CT table."""
    print("## CT (ct-lowdose)")
    start = time.perf_counter()
    water_table()
    real_slices_table()
    invariance_table()
    if memory:
        memory_table()
    print(f"\n(CT section: {time.perf_counter() - start:.0f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-memory", action="store_true", help="skip the 512/1024 memory and time runs")
    p.add_argument("--ct-only", action="store_true", help="skip the emission (PET / scintigraphy) section")
    args = p.parse_args()
    ct_report(memory=not args.skip_memory)
    if args.ct_only:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from physics_calibration_emission import report as emission_report
    except ImportError:
        print("\n(no emission section: benchmarks/physics_calibration_emission.py is absent)")
        return
    emission_report()


if __name__ == "__main__":
    main()
