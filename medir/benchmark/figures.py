"""Figures like the papers': input, each method and the reference in one display window, zoomed insets, error maps.

Row 1: whole images with the inset's box; row 2: the inset (around the first lesion, or the image centre), enlarged;
row 3: the signed error ``x - reference`` in the suite's units (blue below, red above), one symmetric scale for all
panels; on a lesion-free case the false hot spots (:mod:`medir.metrics.hallucination`) are outlined in yellow.
Written with matplotlib's Agg canvas (no display needed), atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from medir.benchmark.suites import Case, Suite


def inset_box(case: Case, *, fraction: float = 0.35) -> tuple[int, int, int]:
    """(top, left, side) of a square inset: around the first lesion, else the image centre."""
    h, w = case.hq.shape[:2]
    side = max(8, int(round(min(h, w) * fraction)))
    if case.has_lesions:
        labels, _ = ndimage.label(case.lesion)
        cy, cx = (int(round(v)) for v in ndimage.center_of_mass(labels == 1))
    else:
        cy, cx = h // 2, w // 2
    top = int(np.clip(cy - side // 2, 0, h - side))
    left = int(np.clip(cx - side // 2, 0, w - side))
    return top, left, side


def display_window(case: Case, suite: Suite) -> tuple[float, float]:
    if suite.window is not None:
        return suite.window
    return float(np.percentile(case.hq, 0.5)), float(np.percentile(case.hq, 99.5))


def comparison_figure(case: Case, panels: list[tuple[str, np.ndarray]], suite: Suite, path: Path, *,
                      hot_spots: dict[str, np.ndarray] | None = None, dpi: int = 110) -> Path:
    """Write the figure of ``case``: ``panels`` are (title, restored image) in order; input and reference are added."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from medir.engine.atomic import atomic_path

    columns = [("input", case.lq), *panels, ("reference", case.hq)]
    lo, hi = display_window(case, suite)
    errors = [np.asarray(img, np.float64) - case.hq for _, img in columns[:-1]]
    clip = (lambda e: np.clip(e, lo - hi, hi - lo)) if suite.window else (lambda e: e)
    span = max(float(np.percentile(np.abs(clip(errors[0])), 99.5)), 1e-6)
    top, left, side = inset_box(case)
    n = len(columns)
    fig = Figure(figsize=(1.75 * n, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, n, squeeze=False)
    for j, (title, img) in enumerate(columns):
        img = np.asarray(img, np.float64)
        ax = axes[0, j]
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, color="orange", lw=1))
        ax.set_title(title, fontsize=7)
        axes[1, j].imshow(img[top:top + side, left:left + side], cmap="gray", vmin=lo, vmax=hi,
                          interpolation="nearest")
        if j < n - 1:
            im = axes[2, j].imshow(clip(errors[j]), cmap="RdBu_r", vmin=-span, vmax=span, interpolation="nearest")
            spots = (hot_spots or {}).get(title)
            if spots is not None and spots.any():
                axes[2, j].contour(spots > 0, levels=[0.5], colors="yellow", linewidths=0.8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[2, -1].axis("off")
    fig.colorbar(im, ax=axes[2, -1], fraction=0.6, label=f"error ({suite.units})")
    axes[0, 0].set_ylabel("image", fontsize=7)
    axes[1, 0].set_ylabel("inset", fontsize=7)
    axes[2, 0].set_ylabel("restored - reference", fontsize=7)
    window = f"display window [{lo:.4g}, {hi:.4g}] {suite.units}"
    fig.suptitle(f"{suite.title}: {case.name} ({window})", fontsize=8)
    with atomic_path(path, force=True) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
