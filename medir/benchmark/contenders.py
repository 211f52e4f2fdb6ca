"""The contenders of a suite: the degraded input, classical baselines tuned per image, trained methods, shipped models.

Each is a :class:`Contender` whose ``restore(case) -> (H, W)`` maps a case's low-quality image (physical units) to
its restoration (physical units). Baselines also have ``tune(case)``, run before the timed call: it searches the
parameter on a grid against the *reference* (an oracle no real user has, so the baselines are an upper bound).
Trained methods are trained here by :mod:`medir.benchmark.training`, then loaded from their saved model files and run
as ``medir restore`` runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medir.benchmark.suites import Case, Suite

Restore = Callable[[Case], np.ndarray]

# Parameter grids of the per-image oracle, as multiples of the wavelet-MAD noise estimate of the input (NLM, BM3D)
# or in pixels (Gaussian).
GRIDS = {
    "gaussian": (0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    "nlm": (0.5, 0.8, 1.2, 1.6, 2.4),
    "bm3d": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
}
LABELS = {
    "input": "degraded input",
    "gaussian": "Gaussian (sigma tuned per image)",
    "nlm": "NLM (h tuned per image)",
    "bm3d": "BM3D (sigma tuned per image)",
    "supervised": "supervised NAFNet (nafnet_tiny)",
    "rat": "RAT (rat_tiny)",
    "lrformer": "LRformer (lrformer_tiny)",
    "spdvfm": "SPD-VFM student (nafnet_tiny)",
    "diffcode": "DiffCode (all-in-one, tiny)",
    "mfdiff": "MFdiff (PET + MR, tiny)",
}


@dataclass
class Contender:
    """``key``: method name; ``label``: what the report calls it; ``kind``: input, baseline, trained or shipped."""

    key: str
    label: str
    kind: str
    restore: Restore
    tune: Callable[[Case], None] | None = None
    train_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    choices: dict[str, float] = field(default_factory=dict)


def input_contender() -> Contender:
    return Contender("input", LABELS["input"], "input", lambda case: case.lq)


def _score(pred: np.ndarray, case: Case, suite: Suite) -> float:
    from medir.metrics import psnr

    return float(psnr(pred, case.hq, data_range=suite.data_range, window=suite.window))


def _apply(module: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(lq))[None, None].double())[0, 0].float().numpy()


def _make_baseline(name: str, value: float, sigma: float) -> torch.nn.Module:
    from medir.baselines import BM3D, Gaussian, NonLocalMeans

    if name == "gaussian":
        return Gaussian(sigma_px=value)
    if name == "nlm":
        return NonLocalMeans(sigma=sigma, h_factor=value)
    return BM3D(sigma=value * sigma)


def baseline_contender(name: str, suite: Suite) -> Contender:
    """A classical baseline whose parameter is chosen per image (best PSNR against the reference on ``GRIDS``)."""
    from medir.baselines import estimate_noise_std

    contender = Contender(name, LABELS[name], "baseline", restore=lambda case: case.lq)
    contender.notes.append(f"grid {GRIDS[name]} ({'pixels' if name == 'gaussian' else 'x estimated noise std'})")

    def tune(case: Case) -> None:
        sigma = max(estimate_noise_std(case.lq.astype(np.float64)), 1e-6)
        scores = {v: _score(_apply(_make_baseline(name, v, sigma), case.lq), case, suite) for v in GRIDS[name]}
        best = max(scores, key=scores.get)
        contender.choices[case.name] = best

        def restore(c: Case, best=best, sigma=sigma) -> np.ndarray:
            return _apply(_make_baseline(name, best, sigma), c.lq)

        contender.restore = restore

    contender.tune = tune
    return contender


# --- trained and shipped models ---------------------------------------------------------------------------


def model_file_restorer(path: Path, suite: Suite, *, ensemble: bool | None = None) -> Restore:
    """A medir model file run as ``medir restore`` runs it (whole slice, physical units in and out); ``ensemble``
    None follows the card's self-ensemble default, as ``medir restore`` does, False is ``--no-ensemble``."""
    from medir.engine.inference import restore_image
    from medir.engine.modelfile import load_model
    from medir.io import Image, ImageMeta

    model, card = load_model(path)

    def restore(case: Case) -> np.ndarray:
        meta = ImageMeta(modality=suite.modality, units=suite.units)
        return restore_image(Image(case.lq.copy(), meta), model, card, tile=None, ensemble=ensemble).array

    return restore


def guided_restorer(path: Path) -> Restore:
    """A shipped model guided by the case's MR (``aux_modalities``), run as ``medir restore PET --aux MR`` runs it."""
    from medir.engine.guided import restore_guided_slices
    from medir.engine.modelfile import load_model

    model, card = load_model(path)

    def restore(case: Case) -> np.ndarray:
        x = np.ascontiguousarray(case.lq, dtype=np.float32)[None, None]
        g = np.ascontiguousarray(case.aux, dtype=np.float32)[None, None]
        y, _ = restore_guided_slices(x, g, model, card, tile=None)
        return y[0, 0]

    return restore


def diffcode_restorer(path: Path) -> Restore:
    """DiffCode takes any of its modalities in physical units and infers the task itself."""
    from medir.engine.modelfile import load_model

    model, _ = load_model(path)
    return lambda case: _float_apply(model, case.lq)


def _float_apply(model: torch.nn.Module, lq: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(lq, dtype=np.float32))[None, None])[0, 0].numpy()


def mfdiff_restorer(network, *, steps: int, seed: int = 0) -> Restore:
    """MFdiff with the case's MR, DDIM with ``steps`` steps, one sample, a fixed seed per image."""

    def restore(case: Case) -> np.ndarray:
        if case.aux is None:
            raise ValueError(f"{case.name} has no MR: MFdiff needs one")
        g = torch.Generator().manual_seed(seed)
        pet = torch.from_numpy(case.lq)[None, None]
        mr = torch.from_numpy(case.aux)[None, None]
        mean, _ = network.restore(pet, mr, sampler="ddim", steps=steps, generator=g)
        return mean[0, 0].numpy()

    return restore


def shipped_contenders(suite: Suite, *, mfdiff_steps: int, has_aux: bool) -> list[Contender]:
    """Every shipped model whose card names the suite's task and modality (looked up now, not by name); models
    guided by an MR (``aux_modalities``) only where the cases carry one (``has_aux``)."""
    from medir.engine.modelfile import load_card, shipped_models

    out = []
    for name, path in shipped_models().items():
        card = load_card(path)
        if card.task != suite.task or suite.modality not in card.modalities or card.scale != 1:
            continue
        if card.aux_modalities and not has_aux:
            continue  # a guided model needs the guide image, which this suite does not simulate
        start = time.perf_counter()
        if card.arch == "mfdiff":
            from medir.methods.mfdiff.modelfile import load_network

            network, _ = load_network(path)
            restore = mfdiff_restorer(network, steps=mfdiff_steps)
        elif card.arch == "diffcode":
            restore = diffcode_restorer(path)
        elif card.aux_modalities:
            restore = guided_restorer(path)
        else:
            restore = model_file_restorer(path, suite)
        contender = Contender(f"shipped:{name}", f"shipped {name} ({card.arch})", "shipped", restore)
        contender.notes.append(f"loaded in {time.perf_counter() - start:.1f} s")
        out.append(contender)
    return out
