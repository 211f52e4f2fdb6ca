"""Write docs/img/ct_restored.png: a real held-out CT slice, simulated low-dose, restored by the shipped model.

    python docs/make_figures.py            # writes docs/img/ct_restored.png (refuses to overwrite without --force)

The slice is pydicom's lossless head CT ``J2K_pixelrep_mismatch.dcm`` (held out from the shipped model's training,
see ``medir.data.ldct``); noise of 1/4 and 1/30 of the slice's own dose is inserted by medir's ``ct-lowdose``
operator with the held-out pairs' seed (the 1/4 row is the shipped example ``medir/samples/ldct_example.dcm``);
each input is restored by ``medir/shipped/ct-ldct-nafnet`` through ``medir.engine.inference.restore_image`` with
the settings ``medir restore`` uses by default (tile 512, overlap 32, batch 1). PSNR is ``medir.metrics.psnr`` in
the window [-160, 240] HU with a per-image data range (reference max - min, after the window), as in
``medir evaluate``. The PNG is stored as 8-bit greyscale to stay small.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

WINDOW = (-160.0, 240.0)
ZOOM = (slice(150, 246), slice(300, 396))  # (rows, cols) of the inset: 96 x 96 px of the brain near the skull
OUT = Path(__file__).resolve().parent / "img" / "ct_restored.png"


def restored_rows() -> list[dict]:
    """One dict per dose level: label, input, restored, reference (H, W) in HU."""
    from medir.data.ldct import EXAMPLE, REAL_SPLIT, TEST_FRACTIONS, low_dose, real_ct, scan_dose_of
    from medir.engine.inference import restore_image
    from medir.engine.modelfile import load_model
    from medir.io import Image

    image = real_ct(EXAMPLE)
    k = [n for n, s in REAL_SPLIT.items() if s == "test"].index(EXAMPLE)
    fractions = list(TEST_FRACTIONS.values())
    lows = low_dose(image, fractions, scan_dose=scan_dose_of(image, True), seed=1000 + k)  # the held-out pairs' draw
    model, card = load_model("ct-ldct-nafnet")
    rows = []
    for fraction, low in zip(fractions, lows):
        restored = restore_image(Image(low, image.meta), model, card, tile=512, overlap=32, batch=1)
        label = "1/4 dose" if fraction == 0.25 else f"1/{round(1 / fraction)} dose"
        rows.append({"label": label, "input": low, "restored": restored.array, "reference": image.array})
    return rows


def _psnr(pred: np.ndarray, target: np.ndarray) -> float:
    from medir.metrics import psnr

    return float(psnr(pred, target, data_range="target", window=WINDOW))


def draw(rows: list[dict]):
    """The figure: one row per dose level, columns input | restored | reference, each with a 2x inset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(len(rows), 3, figsize=(9.0, 3.15 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        ref = row["reference"]
        titles = [f"{row['label']} input, {_psnr(row['input'], ref):.2f} dB",
                  f"medir restored, {_psnr(row['restored'], ref):.2f} dB", "full-dose reference"]
        for c, (key, title) in enumerate(zip(("input", "restored", "reference"), titles)):
            ax = axes[r, c]
            img = row[key][20:492, 20:492]  # drop the empty border around the head
            ax.imshow(img, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="nearest")
            ys, xs = ZOOM
            ax.add_patch(Rectangle((xs.start - 20, ys.start - 20), xs.stop - xs.start, ys.stop - ys.start,
                                   fill=False, edgecolor="yellow", linewidth=0.8))
            inset = ax.inset_axes([0.60, 0.0, 0.40, 0.40])
            inset.imshow(row[key][ZOOM], cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="nearest")
            inset.set_xticks([]), inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.suptitle("held-out real head CT (pydicom J2K_pixelrep_mismatch), simulated dose reduction; window "
                 "[-160, 240] HU; PSNR in that window, per-image data range", fontsize=8, y=0.005, va="bottom")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def save_grey_png(fig, path: Path, *, force: bool, dpi: int = 110) -> Path:
    """Render ``fig`` and write it atomically as an 8-bit greyscale PNG (the figure is grey but for the inset frames,
    which stay visible as light grey)."""
    import matplotlib.pyplot as plt
    from PIL import Image as PILImage

    from medir.engine.atomic import atomic_path

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    buf.seek(0)
    grey = PILImage.open(buf).convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, force=force) as tmp:
        grey.save(tmp, format="png", optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write docs/img/ct_restored.png from the shipped CT model.")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--force", action="store_true", help="overwrite an existing figure")
    args = p.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"make_figures: {args.out} exists: pass --force to overwrite it", file=sys.stderr)
        return 2
    rows = restored_rows()
    for row in rows:
        ref = row["reference"]
        print(f"{row['label']}: input {_psnr(row['input'], ref):.2f} dB, restored {_psnr(row['restored'], ref):.2f} dB "
              "(window [-160, 240] HU, data range = reference max - min)")
    path = save_grey_png(draw(rows), args.out, force=args.force)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
