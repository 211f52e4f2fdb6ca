"""The benchmark report: one list of blocks (headings, paragraphs, tables, figures) written as Markdown and HTML.

Every number comes from the :class:`medir.benchmark.runner.SuiteResult` of the run; ``results.json`` holds the
per-image rows behind each table.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import asdict
from pathlib import Path

from medir.benchmark.runner import FULL, Settings, SuiteResult
from medir.benchmark.scoring import summarize

Block = tuple  # ("h1"|"h2"|"h3"|"p"|"ul", text | items) or ("table", header, rows) or ("img", file, alt)

POLICY = ("PSNR and SSIM per image after clipping both images to the suite's evaluation window, with the suite's "
          "data range: CT: window [-160, 240] HU and a fixed data range of 400 HU (the window's width; the test "
          "windows hold brain only, whose own max - min is about 40 HU); PET: no window, data range = the reference's "
          "max - min per image. SSIM with an 11 x 11 Gaussian "
          "window, sigma 1.5; NMSE = ||x - r||^2 / ||r||^2; RMSE in the suite's physical units inside the window; "
          "per-region RMSE on the label map of each test image. Columns show the mean +- the sample standard "
          "deviation over test images.")
HALLUCINATION = ("False hot spots per image, on the lesion-free test images: connected components (8-neighbourhood) "
                 "of (restored - reference) > 3 sigma with at least 4 pixels, sigma being the local noise std of the "
                 "degraded input around each pixel (15 x 15 box of (input - reference)^2, floored at 0.1 x its global "
                 "std), all images clipped to the evaluation window first and spots searched only in the tissue where "
                 "a lesion could be (CT: soft tissue; PET: the brain). The input row shows how many spots the noise "
                 "alone makes; the lesion-free figure outlines them in yellow. Contrast recovery on the images "
                 "with simulated lesions: CR = (mean lesion - mean background) / (the same on the reference), "
                 "background a 3-pixel ring around each lesion, averaged over lesions then images; 1 keeps the "
                 "contrast, 0 erases it. Definitions: medir/metrics/hallucination.py, docs/benchmark.md.")


def _fmt(stat: tuple[float, float, int] | None, digits: int, sci: bool = False) -> str:
    if stat is None:
        return "-"
    mean, sd, _ = stat
    f = (lambda v: f"{v:.{digits}e}") if sci else (lambda v: f"{v:.{digits}f}")
    return f(mean) if math.isnan(sd) else f"{f(mean)} ± {f(sd)}"


def results_table(result: SuiteResult) -> tuple[list[str], list[list[str]]]:
    units = result.suite.units
    header = ["method", "PSNR (dB)", "SSIM", "NMSE", f"RMSE ({units})", "false hot spots / image", "lesion CR",
              "inference s / image", "peak memory (MiB)", "training s"]
    if result.perceptual is not None:
        header += ["FID", "LPIPS"]
    rows = []
    for c in result.contenders:
        s = summarize(result.runs[c.key].rows)
        row = [c.label, _fmt(s.get("psnr"), 2), _fmt(s.get("ssim"), 4), _fmt(s.get("nmse"), 2, sci=True),
               _fmt(s.get("rmse"), 3), _fmt(s.get("hot_spots"), 2), _fmt(s.get("cr"), 2),
               f"{s['seconds'][0]:.3g}", _fmt(s.get("mib"), 1), f"{c.train_seconds:.0f}" if c.train_seconds else "-"]
        if result.perceptual is not None:
            p = result.perceptual[c.key]
            row += [f"{p['fid']:.3g}", _fmt((*p["lpips"], 0), 4)]
        rows.append(row)
    return header, rows


def region_table(result: SuiteResult) -> tuple[list[str], list[list[str]]]:
    names = [n for n in result.suite.region_names.values()]
    header = ["method", *(f"RMSE {n} ({result.suite.units})" for n in names)]
    rows = []
    for c in result.contenders:
        s = summarize(result.runs[c.key].rows)
        rows.append([c.label, *(_fmt(s.get(f"rmse:{n}"), 3) for n in names)])
    return header, rows


def suite_blocks(result: SuiteResult, settings: Settings) -> list[Block]:
    suite, cases = result.suite, result.cases
    clean = sum(not c.has_lesions for c in cases)
    blocks: list[Block] = [
        ("h2", f"Suite `{suite.name}`: {suite.title}"),
        ("p", f"{suite.description}. {len(cases)} test images of {settings.size} x {settings.size} pixels "
              f"({clean} lesion-free, {len(cases) - clean} with simulated lesions); methods trained on "
              f"{settings.train_images} training images of disjoint slices/subjects. Suite run time "
              f"{result.seconds:.0f} s."),
        ("table", *results_table(result)),
    ]
    if result.perceptual_label:
        blocks.append(("p", f"FID / LPIPS feature network: {result.perceptual_label}. FID over {len(cases)} images "
                            "is a very noisy number."))
    blocks += [("h3", "Per region"), ("table", *region_table(result))]
    notes = [f"{c.label}: {'; '.join(c.notes)}" for c in result.contenders if c.notes] + result.skipped
    if notes:
        blocks += [("h3", "Notes"), ("ul", notes)]
    blocks.append(("h3", "Figures"))
    for name in result.figures:
        blocks.append(("img", f"figures/{name}", f"{suite.name}: {name}"))
    return blocks


def estimate_full_seconds(results: list[SuiteResult], settings: Settings) -> float:
    """Rough full-run time extrapolated from this run: training x step ratio x patch-area ratio, the rest x
    image-area ratio x image-count ratio."""
    from medir.benchmark.training import _patch

    area = (FULL.size / settings.size) ** 2
    patch = (_patch(FULL.size) / _patch(settings.size)) ** 2
    images = (2 * FULL.test_per_kind + FULL.train_images) / (2 * settings.test_per_kind + settings.train_images)
    total, seen_diffcode = 0.0, False
    for r in results:
        train = 0.0
        for c in r.contenders:
            if c.key == "diffcode":
                if seen_diffcode:
                    continue
                seen_diffcode = True
                train += c.train_seconds * FULL.diffcode_steps / settings.diffcode_steps * patch
            elif c.key == "mfdiff":
                train += c.train_seconds * FULL.mfdiff_steps / settings.mfdiff_steps * patch
            elif c.key == "lrformer":
                train += c.train_seconds * FULL.lrformer_steps / settings.lrformer_steps * patch
            else:
                train += c.train_seconds * FULL.steps / settings.steps * patch
        total += train + (r.seconds - sum(c.train_seconds for c in r.contenders)) * area * images
    return total


def blocks(results: list[SuiteResult], settings: Settings, *, meta: dict) -> list[Block]:
    out: list[Block] = [("h1", "medir benchmark report")]
    if settings.quick:
        out.append(("p", f"**Quick run: these numbers are a smoke test of the pipeline, not the methods' quality.** "
                         f"Tiny networks trained for {settings.steps} steps (LRformer {settings.lrformer_steps}, DiffCode "
                         f"{settings.diffcode_steps}, MFdiff {settings.mfdiff_steps}) on {settings.train_images} images of {settings.size} x "
                         f"{settings.size} pixels; {2 * settings.test_per_kind} test images per suite."))
    out.append(("ul", [f"{k}: {v}" for k, v in meta.items()]))
    out += [("h2", "How the numbers are made"), ("p", POLICY),
            ("p", "Classical baselines are tuned per image against the reference (oracle parameter search: best PSNR "
                  "on a grid), so they are an upper bound of what a user could tune; the timed call is one run at the "
                  "chosen parameter. Trained methods are saved as medir model files and run as `medir restore` runs "
                  "them (whole slice). Inference time is wall-clock per image; peak memory is the resident-memory "
                  "rise during the call (sampled every 2 ms)."),
            ("p", "Y channel: " + ("RGB images are scored on the BT.601 luma (Y), RAT's convention (about +1.3 dB "
                                   "over RGB)." if settings.y_channel else
                                   "off (RGB images scored on R, G, B; these suites are grey-level).")),
            ("p", HALLUCINATION)]
    for r in results:
        out += suite_blocks(r, settings)
    total = sum(r.seconds for r in results)
    out += [("h2", "Run time"),
            ("p", f"This run: {total:.0f} s for the suites ({', '.join(f'{r.suite.name} {r.seconds:.0f} s' for r in results)})."
                  + ("" if not settings.quick else
                     f" Estimate for the full run (`medir benchmark` without --quick: {FULL.steps} steps, "
                     f"{FULL.size} x {FULL.size} images, {FULL.train_images} training and {2 * FULL.test_per_kind} "
                     f"test images per suite), extrapolated linearly from this run's timings on this machine: about "
                     f"{estimate_full_seconds(results, settings) / 3600:.1f} h (an estimate, not a measurement)."))]
    return out


# --- rendering ------------------------------------------------------------------------------------------


def to_markdown(items: list[Block]) -> str:
    lines: list[str] = []
    for b in items:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + b[1], ""]
        elif kind == "p":
            lines += [b[1], ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in b[1]] + [""]
        elif kind == "table":
            header, rows = b[1], b[2]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        elif kind == "img":
            lines += [f"![{b[2]}]({b[1]})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in escaped HTML."""
    out, parts = [], html.escape(text).split("`")
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            bold = part.split("**")
            out.append("".join(f"<b>{p}</b>" if j % 2 else p for j, p in enumerate(bold)))
    return "".join(out)


STYLE = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
         "td:not(:first-child){text-align:right}th{background:#f2f2f2}img{max-width:100%}code{background:#f4f4f4}")


def to_html(items: list[Block], root: Path) -> str:
    """A self-contained page: figures are embedded as base64 PNG (read from ``root``)."""
    body: list[str] = []
    for b in items:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{_inline(b[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img":
            data = base64.b64encode((root / b[1]).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b[1])}</figcaption></figure>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>medir benchmark report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def results_json(results: list[SuiteResult], settings: Settings, *, meta: dict) -> str:
    """Per-image rows of every contender (the numbers behind the tables)."""
    data = {"settings": asdict(settings), "meta": meta, "suites": {}}
    for r in results:
        data["suites"][r.suite.name] = {
            "window": r.suite.window, "data_range": r.suite.data_range, "units": r.suite.units, "seconds": r.seconds,
            "contenders": {c.key: {"label": c.label, "kind": c.kind, "train_seconds": c.train_seconds,
                                   "notes": c.notes, "rows": r.runs[c.key].rows,
                                   "perceptual": (r.perceptual or {}).get(c.key)} for c in r.contenders},
        }
    return json.dumps(data, indent=1, default=float, allow_nan=True)

