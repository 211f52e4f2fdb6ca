"""``medir evaluate --pred P --target T``: PSNR, SSIM, NMSE, RMSE per file (or per pair of files at the same
relative path in two folders, e.g. two medir output folders), in physical units. ``--perceptual`` adds LPIPS per
file and FID over all slices (:mod:`medir.metrics.perceptual`), labelled with the feature network used."""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

from medir.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", required=True, type=Path, help="restored file or folder")
    p.add_argument("--target", required=True, type=Path,
                   help="reference file or folder (folders: pairs matched by relative path)")
    p.add_argument(
        "--data-range", default="target",
        help="'target' (per image: target max - min, the default) or a fixed number (e.g. 400 for the CT window)",
    )
    p.add_argument("--window", help="lo,hi: clip both to an evaluation window first; default: the modality's (CT: -160,240)")
    p.add_argument("--no-window", action="store_true", help="evaluate the full range, no window")
    p.add_argument("--modality", help="override the modality (chooses the default window)")
    p.add_argument("--csv", type=Path, help="also write the table as CSV to this file")
    p.add_argument("--input", type=Path, help="the degraded input, shown in --figure next to the restored image")
    p.add_argument("--figure", type=Path, help="write a PNG: [input |] restored | reference, in the evaluation window")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --figure files")
    p.add_argument("--perceptual", action="store_true",
                   help="also LPIPS (per file) and FID (over all slices); without --features the network is a "
                        "seeded random VGG16: NOT standard FID/LPIPS, comparable only between runs of this default")
    p.add_argument("--features", type=Path,
                   help="VGG16 state dict (torchvision layout, .pth or .safetensors) for --perceptual, e.g. the ImageNet "
                        "weights you downloaded; implies --perceptual")
    p.add_argument("--lpips-weights", type=Path,
                   help="learned LPIPS linear weights (the lpips package's vgg.pth); default: uniform weights")


def _pairs(pred: Path, target: Path) -> list[tuple]:
    """(restored item, reference item) pairs: two files, or two folders matched by relative path
    (DICOM series by their folder), so two output folders of medir compare directly."""
    from medir.io import InputItem, discover

    for path, flag in ((pred, "--pred"), (target, "--target")):
        if not path.exists():
            raise InputError(f"{flag} {path} does not exist: check the path")
    if not (pred.is_dir() and target.is_dir()):
        return [(InputItem(pred, "file"), InputItem(target, "file"))]
    preds, targets = _by_relative_path(discover([pred])), _by_relative_path(discover([target]))
    if len(preds) == 1 and len(targets) == 1:
        return [(next(iter(preds.values())), next(iter(targets.values())))]
    pairs = [(item, targets[key]) for key, item in sorted(preds.items()) if key in targets]
    if not pairs:
        raise InputError(f"no input in {pred} has a reference at the same relative path in {target}: match the names")
    unmatched = len(preds) - len(pairs)
    if unmatched:
        print(f"{unmatched} input(s) in {pred} have no reference at the same relative path in {target}: not scored")
    return pairs


def _by_relative_path(found) -> dict:
    """Readable items by their path below the folder given (the folder itself, a series, is '.')."""
    out = {}
    for item in found.items:
        if item.kind == "invalid":
            continue
        out["." if item.path.resolve() == found.root else item.label] = item
    return out


def _read(item, modality: str | None):
    from medir.io import read_image, read_item

    return read_image(item.path, modality=modality) if item.kind == "file" else read_item(item, modality=modality)


def _check_outputs(args) -> None:
    """--csv and --figure: writable and not already there (unless --force), before any image is read."""
    from medir.commands._common import check_writable
    from medir.engine.atomic import refuse_overwrite

    for flag, path in (("--csv", args.csv), ("--figure", args.figure)):
        if path is not None:
            check_writable(path, flag)
            refuse_overwrite(path, args.force)
    if args.input is not None and not args.input.exists():
        raise InputError(f"--input {args.input} does not exist: check the path")
    _data_range(args.data_range)
    _window(args, "OT")
    for flag, path in (("--features", args.features), ("--lpips-weights", args.lpips_weights)):
        if path is not None and not path.is_file():
            raise InputError(f"{flag} {path} is not a file: give the path of a downloaded weight file")


def _window(args, modality: str):
    from medir.data.intensity import DEFAULT_PRESET_FOR_MODALITY, get_preset

    if args.no_window:
        return None
    if args.window:
        try:
            lo, hi = (float(v) for v in args.window.split(","))
        except ValueError:
            raise InputError(f"--window '{args.window}' is not lo,hi (e.g. -160,240)")
        if not lo < hi:
            raise InputError(f"--window {args.window}: need lo < hi (e.g. -160,240)")
        return lo, hi
    preset = DEFAULT_PRESET_FOR_MODALITY.get(modality)
    return get_preset(preset).eval_window if preset else None


def _data_range(text: str):
    if text == "target":
        return "target"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--data-range '{text}' is neither 'target' nor a number")
    if not value > 0:
        raise InputError(f"--data-range must be positive, got {text}")
    return value


def read_pair(pred_item, target_item, args):
    """The restored image and its reference, checked (usable, same shape)."""
    pred, target = _read(pred_item, args.modality), _read(target_item, args.modality)
    pred.validate(pred_item.label)
    target.validate(target_item.label)
    if pred.array.shape != target.array.shape:
        raise InputError(f"{pred_item.label} is {pred.array.shape} but its reference is {target.array.shape}")
    return pred, target


def score_pair(name: str, pred, target, args) -> dict:
    from medir.metrics import nmse, psnr, rmse, ssim

    window = _window(args, target.meta.modality)
    dr = _data_range(args.data_range)
    p, t = pred.slices(), target.slices()
    return {
        "file": name,
        "psnr": psnr(p, t, data_range=dr, window=window),
        "ssim": ssim(p, t, data_range=dr, window=window),
        "nmse": nmse(p, t, window=window),
        "rmse": rmse(p, t, window=window),
        "units": target.meta.units,
        "window": window,
    }


def _unit_range(pred, target, window) -> tuple:
    """Both images' slices ``(D, C, H, W)`` scaled to [0, 1] as float32 tensors for the perceptual metrics: by
    the evaluation window when there is one, else by the reference's min - max (both images alike), clipped."""
    import numpy as np
    import torch

    p, t = pred.slices().astype(np.float32), target.slices().astype(np.float32)
    lo, hi = window if window else (float(t.min()), float(t.max()))
    span = (hi - lo) or 1.0
    return tuple(torch.from_numpy(np.clip((a - lo) / span, 0, 1)) for a in (p, t))


def score_perceptual(row: dict, pred, target, features: dict) -> None:
    """Adds the pair's mean LPIPS over its slices to ``row``; keeps its FID features in ``features``."""
    from medir.metrics.perceptual import lpips_and_features

    p, t = _unit_range(pred, target, row["window"])
    dist, pooled_p, pooled_t = lpips_and_features(p, t, net=features["net"], lpips_weights=features["lpips_weights"])
    row["perceptual_network"] = features["net"].label
    row["lpips"] = float(dist.mean())
    features["pred"].append(pooled_p)
    features["target"].append(pooled_t)


def _table(rows: list[dict]) -> str:
    width = max(32, *(len(r["file"]) for r in rows))
    perceptual = "lpips" in rows[0]
    lines = [f"{'file':<{width}} {'PSNR dB':>9} {'SSIM':>7} {'NMSE':>10} {'RMSE':>10}" + (f" {'LPIPS':>8}" * perceptual)]
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("psnr", "ssim", "nmse", "rmse", "lpips") if k in rows[0]}
    for name, r in [(r["file"], r) for r in rows] + ([("mean", mean)] if len(rows) > 1 else []):
        line = f"{name:<{width}} {r['psnr']:9.3f} {r['ssim']:7.4f} {r['nmse']:10.3e} {r['rmse']:10.3f}"
        lines.append(line + (f" {r['lpips']:8.4f}" if perceptual else ""))
    return "\n".join(lines)


def _write_csv(rows: list[dict], path: Path, force: bool) -> None:
    from medir.engine.atomic import atomic_write_text

    buf = io.StringIO()
    fields = ["file", "psnr", "ssim", "nmse", "rmse"] + (["lpips", "perceptual_network"] if "lpips" in rows[0] else []) + ["units", "window"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue(), force=force)


def _figure(args, row: dict, pred, target) -> None:
    """Input / restored / reference of the first pair, with the PSNR of each against the reference."""
    from medir.io import read_image
    from medir.metrics import psnr
    from medir.viz import side_by_side

    dr, window = _data_range(args.data_range), row["window"]
    panels = [(f"restored ({row['psnr']:.2f} dB)", pred.array), ("reference", target.array)]
    if args.input:
        degraded = read_image(args.input, modality=args.modality).validate(args.input.name)
        value = psnr(degraded.slices(), target.slices(), data_range=dr, window=window)
        panels.insert(0, (f"input ({value:.2f} dB)", degraded.array))
    side_by_side(panels, args.figure, window=window, units=row["units"], channels=target.meta.channels, force=args.force)
    print(f"figure written to {args.figure}")


def _perceptual_setup(args) -> dict | None:
    """The feature network (and LPIPS weights) for --perceptual / --features, loaded once; None without them."""
    if not (args.perceptual or args.features):
        return None
    from medir.metrics.perceptual import feature_network, load_lpips_weights

    weights = load_lpips_weights(args.lpips_weights) if args.lpips_weights else None
    return {"net": feature_network(args.features), "lpips_weights": weights, "pred": [], "target": []}


def _perceptual_summary(features: dict, lpips_weights: Path | None, window) -> str:
    """Two lines: the network's label, the LPIPS variant, the FID over all slices (or why there is none)."""
    import numpy as np

    from medir.metrics.perceptual import FID_DIM, frechet_distance

    variant = f"learned weights {lpips_weights.name}" if lpips_weights else "LPIPS-style, uniform weights"
    scaling = (f"images scaled to [0, 1] from [{window[0]:g}, {window[1]:g}]" if window
               else "images scaled to [0, 1] by each reference's min - max")
    pred, target = np.concatenate(features["pred"]), np.concatenate(features["target"])
    n = len(pred)
    if n < 2:
        fid_text = f"FID: n/a (needs at least 2 slices, got {n})"
    else:
        note = f"; biased upward with N <= {FID_DIM}: compare only at equal N" if n <= FID_DIM else ""
        fid_text = f"FID (VGG16 relu5_3, not Inception): {frechet_distance(target, pred):.4g} over N={n} slices{note}"
    return f"perceptual network: {features['net'].label}; LPIPS: {variant}; {scaling}\n{fid_text}"


def run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    features = _perceptual_setup(args)
    rows, first = [], None
    for pred_item, target_item in _pairs(args.pred, args.target):
        pred, target = read_pair(pred_item, target_item, args)
        rows.append(score_pair(pred_item.label, pred, target, args))
        if features is not None:
            score_perceptual(rows[-1], pred, target, features)
        first = first or (pred, target)  # kept for --figure; the others are not held in memory
    window, units = rows[0]["window"], rows[0]["units"]
    policy = "per-image target max - min" if args.data_range == "target" else f"fixed {args.data_range}"
    clip = f"clipped to [{window[0]:g}, {window[1]:g}] {units}" if window else "no window"
    print(f"data range: {policy}; {clip}; RMSE in {units}")
    print(_table(rows))
    if features is not None:
        print(_perceptual_summary(features, args.lpips_weights, window))
    if args.csv:
        _write_csv(rows, args.csv, args.force)
    if args.figure:
        _figure(args, rows[0], *first)
    return 0 if all(math.isfinite(r["psnr"]) for r in rows) else 1
