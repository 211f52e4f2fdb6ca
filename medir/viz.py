"""Pictures people would rather look at than read: side-by-side panels in a display window."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medir.engine.atomic import atomic_path


def _middle_slice(a: np.ndarray, channels: int) -> np.ndarray:
    return a[a.shape[0] // 2] if a.ndim == 3 and channels == 1 else a


def side_by_side(
    panels: list[tuple[str, np.ndarray]],
    path: str | Path,
    *,
    window: tuple[float, float] | None = None,
    units: str = "",
    channels: int = 1,
    force: bool = False,
    dpi: int = 100,
) -> Path:
    """Write a PNG with one panel per (title, image), all in the same grey window (volumes: middle slice).

    ``window=None`` uses the 0.5-99.5 percentiles of the last panel (the reference, by convention).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [(t, _middle_slice(np.asarray(a, dtype=np.float32), channels)) for t, a in panels]
    if window is None:
        ref = images[-1][1]
        window = (float(np.percentile(ref, 0.5)), float(np.percentile(ref, 99.5)))
    h, w = images[0][1].shape[:2]
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images) * w / max(h, w), 3.6 * h / max(h, w) + 0.4))
    for ax, (title, img) in zip(np.atleast_1d(axes), images):
        if channels == 3:
            ax.imshow(np.clip(img / 255.0, 0, 1))
        else:
            ax.imshow(img, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if channels == 1:
        fig.suptitle(f"window [{window[0]:g}, {window[1]:g}] {units}".strip(), fontsize=9, y=0.02, va="bottom")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path
