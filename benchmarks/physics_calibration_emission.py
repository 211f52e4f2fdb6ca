"""Emission-imaging calibration (issue 10): PET input quality per protocol, planar bone-scan phantom against
pydicom's real whole-body NM file, pair independence, brain-phantom uptake ratios, the paper's motion kernel.

    python benchmarks/physics_calibration_emission.py [--slices 5] [--subjects 2] [--scans 8]
    python benchmarks/physics_calibration_emission.py --sweep 1.5e5,2e5,2.5e5,3e5   # mfdiff-low counts calibration

``report()`` returns the tables as text (``benchmarks/physics_calibration.py`` prints it with the CT part).

PET metric policy: each low-dose image is scored against its protocol's reference image (the high-count
reconstruction, or the full-dose one for the clinical ladder) of the same slice, on the whole 256 mm
field of view; PSNR's data range is the reference's max - min (= its maximum, images being >= 0; MFdiff
normalises images to [0, 1]), NMSE = ||x - ref||^2 / ||ref||^2. Slices: the test subjects of the brain
phantom (warped template, a hot and a cold lesion), ``--slices`` spread over the middle 40 % of the brain's
axial extent (MFdiff: "10 noncontinuous slices in the middle"), 128 x 128 at 2 mm.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from medir.data import bonescan, phantoms
from medir.metrics import nmse, psnr
from medir.physics import simulate
from medir.physics.optics import opencv_motion_kernel
from medir.physics.pet import PET_PROTOCOLS
from medir.physics.scintigraphy import phantom_pair, split_counts

SIZE = 128
# (input protocol, reference protocol, the seeds' published input quality: PSNR dB, NMSE, source)
PET_ROWS = (
    ("mfdiff-low", "mfdiff-high", (21.13, 0.176, "MFdiff Table 1 (LPET vs SPET, phantom)")),
    ("mfdiff-low@1.05e8", "mfdiff-high", None),   # the old setting: the paper's 3-D counts in one slice
    ("clinical-full", "mfdiff-high", None),
    ("clinical-quarter", "clinical-full", None),
    ("clinical-twelfth", "clinical-full", None),
)


def _pet(x: torch.Tensor, mu: torch.Tensor, protocol: str, seed: int) -> torch.Tensor:
    name, _, counts = protocol.partition("@")
    return simulate("pet-lowcount", x, seed=seed, protocol=name, counts=float(counts) if counts else None, mu_map=mu,
                    pixel_size_mm=phantoms.FOV_MM / SIZE)


def middle_slices(count: int) -> list[int]:
    """``count`` axial slices spread over the middle 40 % of the brain (MFdiff's slice selection)."""
    lo, hi = phantoms.brain_slice_range()
    return sorted({int(round(v)) for v in np.linspace(lo + 0.3 * (hi - lo), lo + 0.7 * (hi - lo), count)})


def pet_table(*, slices: int, subjects: int) -> str:
    zs = middle_slices(slices)
    scores: dict[str, list[tuple[float, float]]] = {row[0]: [] for row in PET_ROWS}
    for k in phantoms.split_subjects("test", count=subjects):
        subject = phantoms.make_subject(k)
        for z in zs:
            s = phantoms.brain_slice(z, size=SIZE, subject=subject, hot_lesions=1, cold_lesions=1,
                                     generator=torch.Generator().manual_seed(k * 1009 + z))
            x, mu = s.activity[None], s.mu_map[None]
            images = {p: _pet(x, mu, p, seed=z * 10 + i) for i, p in enumerate(
                ("mfdiff-high", "clinical-full", *(r[0] for r in PET_ROWS if r[0] != "clinical-full")))}
            for low, ref, _ in PET_ROWS:
                scores[low].append((psnr(images[low], images[ref], data_range="target"), nmse(images[low], images[ref])))
    lines = [f"PET low-dose input vs reference ({subjects} test subjects x {len(zs)} mid-brain slices {zs}, "
             f"{SIZE}x{SIZE} at {phantoms.FOV_MM / SIZE:g} mm; PSNR range = reference max; mean +- std)",
             "| input | counts / slice | reference | PSNR dB | NMSE | paper PSNR | paper NMSE | source |",
             "|---|---|---|---|---|---|---|---|"]
    for low, ref, paper in PET_ROWS:
        name, _, counts = low.partition("@")
        lo, hi = (float(counts),) * 2 if counts else PET_PROTOCOLS[name].counts
        c = f"{lo:.2g}" if lo == hi else f"{lo:.2g}-{hi:.2g}"
        p, n = np.array(scores[low]).T
        pp, pn, src = paper if paper else ("-", "-", "-")
        lines.append(f"| {low} | {c} | {ref} | {p.mean():.2f} +- {p.std():.2f} | {n.mean():.3f} +- {n.std():.3f} "
                     f"| {pp} | {pn} | {src} |")
    return "\n".join(lines)


def pet_sweep(counts: list[float], *, slices: int, subjects: int) -> str:
    """mfdiff-low input quality against mfdiff-high at fixed counts per slice (how MFDIFF_LOW_PER_SLICE was chosen)."""
    zs = middle_slices(slices)
    scores: dict[float, list[tuple[float, float]]] = {c: [] for c in counts}
    for k in phantoms.split_subjects("test", count=subjects):
        subject = phantoms.make_subject(k)
        for z in zs:
            s = phantoms.brain_slice(z, size=SIZE, subject=subject, hot_lesions=1, cold_lesions=1,
                                     generator=torch.Generator().manual_seed(k * 1009 + z))
            x, mu = s.activity[None], s.mu_map[None]
            ref = _pet(x, mu, "mfdiff-high", seed=z * 10)
            for c in counts:
                low = _pet(x, mu, f"mfdiff-low@{c}", seed=z * 10 + 1)
                scores[c].append((psnr(low, ref, data_range="target"), nmse(low, ref)))
    lines = [f"mfdiff-low counts sweep ({subjects} test subjects x mid-brain slices {zs}; MFdiff Table 1: 21.13 dB, 0.176)",
             "| counts / slice | PSNR dB | NMSE |", "|---|---|---|"]
    for c in counts:
        p, n = np.array(scores[c]).T
        lines.append(f"| {c:.3g} | {p.mean():.2f} +- {p.std():.2f} | {n.mean():.3f} +- {n.std():.3f} |")
    return "\n".join(lines)


def _real_nm() -> dict[str, np.ndarray]:
    """pydicom's whole-body NM test images (the same anterior scan, lossy-coded two ways), counts."""
    import pydicom
    from pydicom.data import get_testdata_file

    out = {}
    for name in ("JPGExtended.dcm", "JPEG2000.dcm"):
        try:
            out[name] = pydicom.dcmread(get_testdata_file(name)).pixel_array.astype(np.float64)
        except Exception as err:  # decoder plugin missing
            print(f"({name} not decoded: {type(err).__name__}; pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)")
    return out


def _stats(a: np.ndarray) -> tuple[float, ...]:
    """total, max, p99 of body pixels, body fraction, and the Poisson index ``var(d) / (1.5 mean)`` of the second
    difference ``d = x[j] - (x[j-1] + x[j+1]) / 2`` along rows inside the body (1 for Poisson noise on a smooth
    image; lower when noise was removed, e.g. by lossy coding or smoothing)."""
    a = np.clip(a, 0, None)
    p99 = np.percentile(a, 99)
    body = a > 0.05 * p99
    inner = body[:, 2:] & body[:, 1:-1] & body[:, :-2]
    d = (a[:, 1:-1] - 0.5 * (a[:, 2:] + a[:, :-2]))[inner]
    return a.sum(), a.max(), np.percentile(a[body], 99), body.mean(), d.var() / (1.5 * a[:, 1:-1][inner].mean())


def bonescan_table(*, scans: int) -> str:
    lines = ["Planar whole-body bone scan: real NM (pydicom test files, anterior, 1024x256 at 2.26 mm, 20-min "
             "acquisition) vs phantom standard scans (anterior)",
             "| image | total counts | max | p99 (body) | body fraction | var/mean (Poisson = 1) |",
             "|---|---|---|---|---|---|"]
    for name, a in _real_nm().items():
        t, mx, p99, frac, idx = _stats(a)
        lines.append(f"| real {name} (min {a.min():g}) | {t:.3g} | {mx:g} | {p99:.0f} | {frac:.2f} | {idx:.2f} |")
    rows = []
    start = time.perf_counter()
    for seed in range(scans):
        _, standard, scan = bonescan.bone_scan_pair(seed)
        rows.append(_stats(standard[0].numpy().astype(np.float64)) + (scan.height_cm,))
    per_pair = (time.perf_counter() - start) / scans
    r = np.array(rows)
    lines.append(f"| phantom, {scans} patients (mean; min-max) | {r[:, 0].mean():.3g} ({r[:, 0].min():.2g}-{r[:, 0].max():.2g}) "
                 f"| {r[:, 1].mean():.0f} ({r[:, 1].min():.0f}-{r[:, 1].max():.0f}) | {r[:, 2].mean():.0f} "
                 f"| {r[:, 3].mean():.2f} ({r[:, 3].min():.2f}-{r[:, 3].max():.2f}) | {r[:, 4].mean():.2f} |")
    x = torch.poisson(bonescan.bone_scan_phantom(0).expected)
    t0 = time.perf_counter()
    simulate("scinti-rapid", x[None, :1], seed=0)
    ref = time.perf_counter() - t0
    lines.append(f"phantom heights {r[:, 5].min():.0f}-{r[:, 5].max():.0f} cm; one pair (2 views, 1024x256) "
                 f"{per_pair:.2f} s = {per_pair / max(ref, 1e-6):.0f}x one scinti-rapid thinning of one view")
    return "\n".join(lines)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def pairs_table() -> str:
    scan = bonescan.bone_scan_phantom(1)
    x = scan.expected[None, :1]
    body = scan.labels[None, :1] > 0
    g = torch.Generator().manual_seed(0)
    rapid, standard = phantom_pair(x, 2.0, generator=g)
    thinned = simulate("scinti-rapid", standard, seed=1, speedup=2.0)
    kept, rest = split_counts(standard, 0.5, generator=g)
    rows = [("phantom pair: Poisson(x / 2), Poisson(x)", _corr((rapid - x / 2)[body], (standard - x)[body])),
            ("thinning the target (old way, expected sqrt(1/2) = 0.71)", _corr((thinned - x / 2)[body], (standard - x)[body])),
            ("real counts split: Binomial(n, 1/2) and remainder", _corr((kept - x / 2)[body], (rest - x / 2)[body]))]
    lines = ["Noise correlation between input and target (body pixels of bone-scan phantom 1, anterior; must be < 0.05)",
             "| pair | correlation |", "|---|---|"]
    lines += [f"| {name} | {c:+.3f} |" for name, c in rows]
    return "\n".join(lines)


def brain_table(*, subjects: int) -> str:
    lines = ["Brain phantom (hard labels; activity and T1 means per label; test subjects, slices over the whole brain)",
             "| phantom | GM:WM | CSF:WM | T1 CSF/GM/WM | test slices (brain extent) |", "|---|---|---|---|---|"]
    lo, hi = phantoms.brain_slice_range()
    zs = phantoms.subject_slices()
    for name, kwargs in (("hard labels (default)", {}), ("old: mixed probabilities", {"partial_volume": True})):
        ratios = []
        for k in phantoms.split_subjects("test", count=subjects):
            for z in zs[1:-1]:
                s = phantoms.brain_slice(z, size=SIZE, subject=phantoms.make_subject(k), **kwargs)
                lab, act, mr = s.labels[0], s.activity[0], s.mr[0]
                m = [act[lab == phantoms.LABELS[t]].mean().item() for t in ("grey", "white", "csf")]
                t1 = [mr[lab == phantoms.LABELS[t]].mean().item() for t in ("csf", "grey", "white")]
                ratios.append((m[0] / m[1], m[2] / m[1], *t1))
        r = np.array(ratios).mean(0)
        lines.append(f"| {name} | {r[0]:.2f} | {r[1]:.2f} | {r[2]:.2f}/{r[3]:.2f}/{r[4]:.2f} | {zs[0]}-{zs[-1]} ({lo}-{hi - 1}) |")
    return "\n".join(lines)


def motion_table() -> str:
    k = opencv_motion_kernel(10, 5.0)
    return ("Motion blur (SPD-VFM: degree 10, angle 5; OpenCV recipe): kernel 10x10, sum "
            f"{k.sum().item():.3f}, centre {k[5, 5].item():.3f}, non-zero taps {int((k > 1e-6).sum())}")


def report(*, slices: int = 5, subjects: int = 2, scans: int = 8) -> str:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    parts = [pet_table(slices=slices, subjects=subjects), bonescan_table(scans=scans), pairs_table(),
             brain_table(subjects=subjects), motion_table()]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=5, help="brain slices per test subject (spread over the brain)")
    p.add_argument("--subjects", type=int, default=2, help="brain-phantom test subjects")
    p.add_argument("--scans", type=int, default=8, help="bone-scan phantom patients")
    p.add_argument("--sweep", help="only the mfdiff-low counts sweep, e.g. 1.5e5,2e5,2.5e5,3e5")
    args = p.parse_args(argv)
    if args.sweep:
        print(pet_sweep([float(v) for v in args.sweep.split(",")], slices=args.slices, subjects=args.subjects))
        return 0
    print(report(slices=args.slices, subjects=args.subjects, scans=args.scans))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
