"""Run a benchmark: build each suite's images, train or load every contender, score them all the same way.

``run_benchmark(suites, settings, work=..., figures=..., progress=...)`` returns one :class:`SuiteResult` per suite;
:mod:`medir.benchmark.report` turns them into the report. Everything random is seeded by ``settings.seed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medir.benchmark.contenders import (LABELS, Contender, baseline_contender, diffcode_restorer, input_contender,
                                        mfdiff_restorer, model_file_restorer, shipped_contenders)
from medir.benchmark.scoring import Run, hot_spots, run_contender
from medir.benchmark.suites import BASELINES, SUITES, Case, Suite, make_cases, test_set


@dataclass(frozen=True)
class Settings:
    """How big the run is. ``steps``: training steps of the supervised NAFNet, RAT and SPD-VFM (half teacher, half
    student); ``lrformer_steps``: LRformer's (its Monte-Carlo prior makes its steps the dearest on a busy CPU);
    ``diffcode_steps`` split 1:1:2 over its stages; ``mfdiff_sampler_steps`` DDIM steps."""

    quick: bool
    size: int
    train_images: int
    test_per_kind: int
    steps: int
    lrformer_steps: int
    diffcode_steps: int
    mfdiff_steps: int
    mfdiff_sampler_steps: int
    diffcode_per_task: int
    seed: int = 0
    methods: tuple[str, ...] | None = None
    y_channel: bool = False
    perceptual: bool = False
    feature_net: str | None = None


# Quick: sized from per-method CPU costs measured on this project's heavily shared 2-core machine (where MFdiff and
# LRformer steps cost seconds of CPU); docs/benchmark.md gives the measured run times and their load.
QUICK = Settings(quick=True, size=64, train_images=12, test_per_kind=2, steps=60, lrformer_steps=10,
                 diffcode_steps=40, mfdiff_steps=12, mfdiff_sampler_steps=10, diffcode_per_task=4)
FULL = Settings(quick=False, size=128, train_images=64, test_per_kind=10, steps=3000, lrformer_steps=3000,
                diffcode_steps=6000, mfdiff_steps=5000, mfdiff_sampler_steps=50, diffcode_per_task=24)


@dataclass
class SuiteResult:
    suite: Suite
    cases: list[Case]
    contenders: list[Contender]
    runs: dict[str, Run]
    seconds: float = 0.0
    figures: list[str] = field(default_factory=list)
    perceptual: dict[str, dict] | None = None
    perceptual_label: str | None = None
    skipped: list[str] = field(default_factory=list)


def wanted(suite: Suite, settings: Settings) -> list[str]:
    """The suite's methods, restricted to ``settings.methods`` when given."""
    return [m for m in suite.methods if settings.methods is None or m in settings.methods]


def stage_count(suites: list[str], settings: Settings) -> int:
    """Progress-bar stages: per suite, data + the input + one per method + figures; then the report."""
    return sum(3 + len(wanted(SUITES[s], settings)) for s in suites)


class Trainer:
    """Trains what a suite needs in ``work`` (DiffCode once for all suites)."""

    def __init__(self, work: Path, settings: Settings):
        self.work, self.settings = work, settings
        self._diffcode: tuple[Path, float] | None = None

    def contender(self, method: str, suite: Suite, train_cases: list[Case]) -> Contender:
        from medir.benchmark import training

        s = self.settings
        if method == "mfdiff":
            network, seconds = training.train_mfdiff(train_cases, steps=s.mfdiff_steps, size=s.size, seed=s.seed)
            contender = Contender(method, LABELS[method], "trained", mfdiff_restorer(network, steps=s.mfdiff_sampler_steps))
            contender.notes.append(f"{s.mfdiff_steps} steps, DDIM {s.mfdiff_sampler_steps} steps, 1 sample")
        elif method == "diffcode":
            if self._diffcode is None:
                self._diffcode = training.train_diffcode(self.work / "diffcode", steps=s.diffcode_steps, size=s.size,
                                                         per_task=s.diffcode_per_task)
            path, seconds = self._diffcode
            contender = Contender(method, LABELS[method], "trained", diffcode_restorer(path))
            contender.notes.append(f"{s.diffcode_steps} steps over 3 stages on its all-in-one set (shared by suites)")
        else:
            data = self.work / suite.name / "pairs"
            if not (data / "hq").is_dir():
                training.write_pairs(train_cases, data)
            steps = s.lrformer_steps if method == "lrformer" else s.steps
            path, seconds = training.train_method(method, suite, data=data, out=self.work / suite.name / method,
                                                  steps=steps, size=s.size)
            contender = Contender(method, LABELS[method], "trained", model_file_restorer(path, suite))
            contender.notes.append(f"{steps} steps" + (" (half teacher, half student)" if method == "spdvfm" else ""))
        contender.train_seconds = seconds
        return contender


def run_suite(name: str, settings: Settings, trainer: Trainer, *, figures: Path | None, bar) -> SuiteResult:
    """Everything for one suite; ``bar`` is advanced once per stage."""
    from medir.benchmark.figures import comparison_figure

    suite, start, s = SUITES[name], time.perf_counter(), settings
    _stage(bar, f"{name}: simulating images")
    cases = test_set(name, per_kind=s.test_per_kind, size=s.size, seed=s.seed + 1)
    methods = wanted(suite, settings)
    needs_training = any(m not in BASELINES and m != "shipped" for m in methods)
    train_cases = (make_cases(name, "train", count=s.train_images, size=s.size, seed=s.seed) if needs_training
                   else [])
    result = SuiteResult(suite, cases, [], {})
    for method in ["input", *methods]:
        _stage(bar, f"{name}: {method}")
        if method == "input":
            todo = [input_contender()]
        elif method in BASELINES:
            todo = [baseline_contender(method, suite)]
        elif method == "shipped":
            todo = shipped_contenders(suite, mfdiff_steps=s.mfdiff_sampler_steps,
                                      has_aux=all(case.aux is not None for case in cases))
            if not todo:
                result.skipped.append(f"no shipped model for task {suite.task} ({suite.modality})")
        else:
            todo = [trainer.contender(method, suite, train_cases)]
        for contender in todo:
            result.contenders.append(contender)
            result.runs[contender.key] = run_contender(contender, cases, suite, y_channel=s.y_channel)
    _stage(bar, f"{name}: figures")
    if figures is not None:
        shown = [c for c in result.contenders if c.key != "input"]
        for case in (next((c for c in cases if c.has_lesions), None), next((c for c in cases if not c.has_lesions), None)):
            if case is None:
                continue
            panels = [(c.key, result.runs[c.key].outputs[case.name]) for c in shown]
            spots = None if case.has_lesions else {
                key: hot_spots(img, case, suite)[0] for key, img in [("input", case.lq), *panels]}
            path = comparison_figure(case, panels, suite, figures / f"{name}_{case.name}.png", hot_spots=spots)
            result.figures.append(path.name)
    if s.perceptual:
        from medir.benchmark.perceptual import perceptual_scores

        outputs = {c.key: result.runs[c.key].outputs for c in result.contenders}
        result.perceptual, result.perceptual_label = perceptual_scores(
            outputs, {c.name: c.hq for c in cases}, window=suite.window, path=s.feature_net)
    result.seconds = time.perf_counter() - start
    return result


def _stage(bar, text: str) -> None:
    """Count the previous stage as done (if any) and show the one starting."""
    if bar is not None:
        if getattr(bar, "medir_stage", None) is not None:
            bar.update(1)
        bar.medir_stage = text
        bar.set_postfix_str(text)


def run_benchmark(suites: list[str], settings: Settings, *, work: Path, figures: Path | None,
                  bar=None) -> list[SuiteResult]:
    """Run every suite in order; training runs and their data go below ``work``."""
    import torch

    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    trainer = Trainer(work, settings)
    results = [run_suite(name, settings, trainer, figures=figures, bar=bar) for name in suites]
    _stage(bar, "report")
    return results
