"""Scoring one restoration of one case, timing and memory of each call, and the mean and spread over images.

Metric policy (stated in every report): PSNR and SSIM per image with the suite's data range after clipping both
images to its evaluation window (CT: fixed 400 HU, the width of the window [-160, 240] HU, because the test windows
hold brain only, whose own max - min is about 40 HU; PET: no window, the reference's max - min), SSIM with an 11 x 11
Gaussian window (sigma 1.5); NMSE = ||x - r||^2 / ||r||^2 and RMSE in the suite's physical units, both inside the
window. RGB images are scored on all three channels, or on the BT.601 luma (Y) when ``y_channel`` is set (the
convention of RAT's released numbers, labelled as such in the report).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from medir.benchmark.suites import Case, Suite
from medir.metrics.hallucination import contrast_recovery, hot_spot_map

HEADLINE = ("psnr", "ssim", "nmse", "rmse")


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of (H, W, 3) 8-bit RGB: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255."""
    r, g, b = (np.asarray(rgb, np.float64)[..., i] for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _channels_first(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, -1, 0) if x.ndim == 3 else x


def score(pred: np.ndarray, case: Case, suite: Suite, *, y_channel: bool = False) -> dict[str, float]:
    """PSNR (dB), SSIM, NMSE, RMSE (suite units) and RMSE per region (``rmse:<region name>``) of one restoration."""
    from medir.metrics import nmse, per_region, psnr, rmse, ssim

    p, r = np.asarray(pred, np.float64), np.asarray(case.hq, np.float64)
    if y_channel and r.ndim == 3 and r.shape[-1] == 3:
        p, r = luma(p), luma(r)
    p, r = _channels_first(p), _channels_first(r)
    w, dr = suite.window, suite.data_range
    row = {"psnr": psnr(p, r, data_range=dr, window=w), "ssim": ssim(p, r, data_range=dr, window=w),
           "nmse": nmse(p, r, window=w), "rmse": rmse(p, r, window=w)}
    if r.ndim == 2:
        for label, value in per_region("rmse", p, r, case.regions, window=w).items():
            if label in suite.region_names:
                row[f"rmse:{suite.region_names[label]}"] = value
    return row


def hot_spots(pred: np.ndarray, case: Case, suite: Suite) -> tuple[np.ndarray, int]:
    """False hot spots of ``pred`` (label map, count) as the report counts them: restoration, reference and input
    clipped to the suite's evaluation window (a brighter halo in air below the window is not a lesion), searched in
    the suite's ``search_labels`` regions (:func:`medir.metrics.hallucination.hot_spot_map` for the definition)."""
    x, r, y = (np.asarray(a, np.float64) for a in (pred, case.hq, case.lq))
    if suite.window is not None:
        x, r, y = (np.clip(a, *suite.window) for a in (x, r, y))
    mask = np.isin(case.regions, suite.search_labels) if suite.search_labels else None
    return hot_spot_map(x, r, y, mask=mask)


def hallucination(pred: np.ndarray, case: Case, suite: Suite) -> dict[str, float]:
    """``hot_spots`` on a lesion-free case, ``cr`` (mean over its lesions, unclipped values) on a case with lesions."""
    if case.has_lesions:
        cr = contrast_recovery(pred, case.hq, case.lesion)
        return {"cr": float(cr.mean())} if cr.size else {}
    return {"hot_spots": float(hot_spots(pred, case, suite)[1])}


class PeakMemory:
    """Peak resident memory above the level at entry (MiB) while the block runs, sampled every ``interval`` s
    from ``/proc/self/statm`` (Linux; elsewhere ``peak`` stays NaN). CPU only: CUDA would need its own counters."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, math.nan
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        except (OSError, ValueError, IndexError):
            return None

    def _watch(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            if rss is not None:
                self._max = max(self._max, rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._base = self._rss()
        self._max = self._base or 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        rss = self._rss()
        if self._base is not None and rss is not None:
            self.peak = (max(self._max, rss) - self._base) / 2**20


@dataclass
class Run:
    """What one contender did on a suite: per-image rows (metrics, seconds, MiB) and the restored images."""

    rows: list[dict] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def run_contender(contender, cases: list[Case], suite: Suite, *, y_channel: bool = False) -> Run:
    """Restore every case (tuning first, untimed, for baselines), timing each call and its memory."""
    run = Run()
    for case in cases:
        if contender.tune is not None:
            contender.tune(case)
        with PeakMemory() as mem:
            start = time.perf_counter()
            pred = np.asarray(contender.restore(case), np.float32)
            seconds = time.perf_counter() - start
        if pred.shape != case.hq.shape:
            raise ValueError(f"{contender.label} returned {pred.shape} for {case.name} ({case.hq.shape} expected)")
        run.outputs[case.name] = pred
        run.rows.append({"case": case.name, **score(pred, case, suite, y_channel=y_channel),
                         **hallucination(pred, case, suite), "seconds": seconds, "mib": mem.peak})
    return run


def summarize(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """``{metric: (mean, sample std, number of images)}`` over the rows that have the metric (NaN std for one)."""
    keys = dict.fromkeys(k for r in rows for k in r if k != "case")
    out = {}
    for k in keys:
        values = np.array([r[k] for r in rows if k in r and np.isfinite(r[k])], np.float64)
        if values.size:
            out[k] = (float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan, values.size)
    return out
