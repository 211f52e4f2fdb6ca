"""4x MRI super-resolution on held-out slices: the model vs bicubic, Lanczos-3 and the best kernel per image.

Data (``medir.data.mri_sr``), none of it trained on or used for model selection:
- ``real``: real MR scans shipped in packages (pydicom-data ``MR2_UNCR.dcm``, ``MR-SIEMENS-DICOM-WithOverlays.dcm``;
  nibabel's ``0.dcm``, ``1.dcm`` and three axial slices of ``example4d.nii.gz``), each cropped to a multiple of 4;
- ``sim``: axial slices z = 110..142 (step 8) of the MNI ICBM152 template in its T1 and a synthetic T2-like contrast
  (the model trained on z < 100 only).
The low-resolution input is medir's ``mri-sr`` task: ``--degradation bicubic`` (default, the seeds' ``ixi-4x``
protocol the model was trained on: antialiased bicubic x4) or ``kspace`` (central 1/4 of k-space, magnitude, sampled
at the centres of 4x4 blocks as bicubic is; a degradation the model never saw, to show how it transfers).
Metrics: PSNR / SSIM (11x11 Gaussian window, sigma 1.5) in the images' own MR units (a.u.), data range per image =
reference max - min, after cropping ``scale`` = 4 pixels from every border (the usual SR convention); RMSE in a.u.
and NMSE = ||x - y||^2 / ||y||^2 on the same crop. "best classical" takes, per image and per metric, the best of 8
interpolation kernels (Keys' cubic a = -0.5, -0.75, -1; Lanczos with 2..6 lobes) against the reference (an oracle).

    OMP_NUM_THREADS=1 python benchmarks/mri_sr_eval.py --model medir/shipped/mr-sr4-edsr
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medir.baselines import Bicubic, Interpolate
from medir.engine.inference import restore_image
from medir.engine.modelfile import load_model
from medir.io import Image, ImageMeta
from medir.metrics import nmse, psnr, rmse, ssim

SCALE = 4
BORDER = SCALE
# the classical interpolators searched per image: Keys' cubic with a = -0.5 (PIL/MATLAB), -0.75 (PyTorch), -1.0, and
# Lanczos with 2..6 lobes (3 = PIL's LANCZOS)
GRID = [("keys", -0.5), ("keys", -0.75), ("keys", -1.0)] + [("lanczos", float(a)) for a in range(2, 7)]
METHODS = ("bicubic", "lanczos", "best", "model")
LABELS = {"bicubic": "bicubic x4 (PyTorch, a = -0.75)", "lanczos": "Lanczos-3 x4",
          "best": "best of 8 cubic/Lanczos kernels per image"}


def score(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM, RMSE (a.u.), NMSE of ``(H, W)`` images after a ``BORDER``-pixel crop, per-image data range."""
    p, t = pred[BORDER:-BORDER, BORDER:-BORDER], target[BORDER:-BORDER, BORDER:-BORDER]
    return {"psnr": float(psnr(p, t, data_range="target")), "ssim": float(ssim(p, t, data_range="target")),
            "rmse": float(rmse(p, t)), "nmse": float(nmse(p, t))}


def held_out(sets: tuple[str, ...]) -> list[tuple[str, str, np.ndarray, tuple[float, float]]]:
    """(set, label, reference (H, W) a.u., in-plane spacing mm) for every held-out slice."""
    from medir.data.mri_sr import real_test_images, template_slices

    items = []
    if "real" in sets:
        items += [("real", name, img.array, tuple(img.meta.spacing or (1.0, 1.0))) for name, img in real_test_images()]
    if "sim" in sets:
        items += [("sim", name, arr, (1.0, 1.0)) for name, arr in template_slices("test")]
    return items


def degrade(hq: np.ndarray, method: str) -> np.ndarray:
    """The 4x smaller ``mri-sr`` input of a reference (no noise), a.u.

    Low-resolution pixel ``k`` stands for the centre of the reference's ``4 x 4`` block ``k`` (bicubic's convention,
    and medir's SR output geometry). ``kspace_truncate`` alone samples the block's first pixel (the FFT grid), so
    for ``kspace`` the reference is first shifted by ``-(scale - 1) / 2`` pixels (a Fourier phase ramp).
    """
    from scipy import ndimage

    from medir.physics import simulate

    if method == "kspace":
        shift = -(SCALE - 1) / 2
        hq = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(hq), (shift, shift))).real.clip(min=0)
    x = torch.from_numpy(np.ascontiguousarray(hq, dtype=np.float32))[None, None]
    return simulate("mri-sr", x, scale=SCALE, method=method)[0, 0].numpy()


def classical(lq: np.ndarray, hq: np.ndarray) -> dict[str, dict[str, float]]:
    """Bicubic (PyTorch's), Lanczos-3, and the per-image oracle over :data:`GRID` (each metric on its own)."""
    x = torch.from_numpy(lq)[None, None].double()
    with torch.no_grad():
        per = {g: score(Interpolate(scale=SCALE, kind=g[0], param=g[1])(x)[0, 0].float().numpy(), hq) for g in GRID}
        bicubic = score(Bicubic(scale=SCALE)(x)[0, 0].float().numpy(), hq)
    best = {k: max(v[k] for v in per.values()) for k in ("psnr", "ssim")}
    best |= {k: min(v[k] for v in per.values()) for k in ("rmse", "nmse")}
    return {"bicubic": bicubic, "lanczos": per[("lanczos", 3.0)], "best": best}


def _mean_sd(rows: list[dict], method: str, key: str) -> str:
    v = np.array([r[method][key] for r in rows])
    fmt = {"psnr": ".2f", "ssim": ".4f", "rmse": ".1f", "nmse": ".5f"}[key]
    return f"{v.mean():{fmt}} ± {v.std():{fmt}}"


def report(rows: list[dict], model_name: str, arch: str, degradation: str) -> None:
    print(f"\nmodel: {model_name} ({arch}); input: mri-sr {degradation} x{SCALE}; PSNR/SSIM in a.u., data range = "
          f"per-image reference max - min, {BORDER}-pixel border crop; mean ± std over images\n")
    print("| slice | set | size | bicubic PSNR / SSIM | Lanczos | model | model - best classical (dB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[m]['psnr']:.2f} / {r[m]['ssim']:.4f}" for m in ("bicubic", "lanczos", "model")]
        print(f"| {r['slice']} | {r['set']} | {r['size']} | " + " | ".join(cells)
              + f" | {r['model']['psnr'] - r['best']['psnr']:+.2f} |")
    for group in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == group]
        print(f"\n{group} ({len(sub)} slices)\n")
        print("| method | PSNR (dB) | SSIM | RMSE (a.u.) | NMSE | model beats it (PSNR, SSIM) |")
        print("|---|---|---|---|---|---|")
        for m in METHODS:
            wins = (sum(r["model"]["psnr"] > r[m]["psnr"] for r in sub), sum(r["model"]["ssim"] > r[m]["ssim"] for r in sub))
            label = LABELS.get(m, f"medir {arch}")
            cells = " | ".join(_mean_sd(sub, m, k) for k in ("psnr", "ssim", "rmse", "nmse"))
            print(f"| {label} | {cells} | " + ("-" if m == "model" else f"{wins[0]}/{len(sub)}, {wins[1]}/{len(sub)}")
                  + " |")


def summary(rows: list[dict], command: str) -> dict:
    """Per set: mean PSNR / SSIM / RMSE / NMSE of every method (for the model card's ``metrics``)."""
    out = {}
    for group in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == group]
        out[group] = {"images": len(sub), "command": command, **{
            ("best_classical" if m == "best" else m): {k: round(float(np.mean([r[m][k] for r in sub])), 5)
                                                        for k in ("psnr", "ssim", "rmse", "nmse")} for m in METHODS}}
    return out


def write_card(model: str, card, means: dict, degradation: str) -> None:
    """Put ``means`` into the model folder's config.json (atomic rewrite); other metrics are kept."""
    from medir.engine.atomic import atomic_write_text
    from medir.engine.modelfile import CONFIG, resolve_model_path

    suffix = "" if degradation == "bicubic" else f"_{degradation}"
    for group, values in means.items():
        card.metrics[f"held_out_{group}{suffix}"] = {
            **values, "policy": f"PSNR/SSIM in a.u., data range per image = reference max - min, {BORDER}-pixel "
                                "border crop; best_classical = best of 8 cubic/Lanczos kernels per image and metric"}
    atomic_write_text(resolve_model_path(model) / CONFIG, card.to_json())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mr-sr4-edsr", help="shipped model name or model folder")
    p.add_argument("--degradation", choices=("bicubic", "kspace"), default="bicubic")
    p.add_argument("--sets", default="real,sim", help="comma-separated: real, sim")
    p.add_argument("--json", type=Path, help="also write the per-set means to this JSON file")
    p.add_argument("--write-card", action="store_true",
                   help="store the per-set means in the model's config.json as metrics held_out_<set>")
    args = p.parse_args()
    model, card = load_model(args.model)
    if card.scale != SCALE:
        raise SystemExit(f"{args.model} upsamples by {card.scale}, not {SCALE}: give a 4x super-resolution model")
    rows, seconds, pixels = [], 0.0, 0
    for group, label, hq, spacing in held_out(tuple(args.sets.split(","))):
        lq = degrade(hq, args.degradation)
        row = {"set": group, "slice": label, "size": f"{hq.shape[0]}x{hq.shape[1]}", **classical(lq, hq)}
        start = time.perf_counter()
        meta = ImageMeta(modality="MR", units="a.u.", spacing=tuple(s * SCALE for s in spacing))
        out = restore_image(Image(lq, meta), model, card, tile=None).array
        seconds += time.perf_counter() - start
        pixels += out.size
        row["model"] = score(out, hq)
        rows.append(row)
        print(f"{label}: PSNR bicubic {row['bicubic']['psnr']:.2f} lanczos {row['lanczos']['psnr']:.2f} "
              f"model {row['model']['psnr']:.2f}", flush=True)
    report(rows, args.model, card.arch, args.degradation)
    command = f"benchmarks/mri_sr_eval.py --model {args.model} --degradation {args.degradation}"
    means = summary(rows, command)
    if args.json:
        args.json.write_text(json.dumps(means, indent=1))
    if args.write_card:
        write_card(args.model, card, means, args.degradation)
    print(f"\nmodel: {seconds / len(rows):.2f} s per slice on average ({pixels / max(seconds, 1e-9) / 1e6:.2f} "
          "megapixels of output per second) on this CPU")


if __name__ == "__main__":
    main()
