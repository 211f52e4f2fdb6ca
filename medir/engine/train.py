"""The training loop, one for every method: a method is a module whose ``forward(batch) -> (loss, logs)``.

The method builds itself from the config (``medir.methods.METHODS``), says how it is validated
(``validate(batch) -> metrics``) and may say how it is saved (``save``); see :mod:`medir.methods`.

Each step reads top to bottom: set the learning rate -> evaluate / checkpoint ->
forward and backward (accumulated over micro-batches) -> clip -> optimizer step -> log.

Everything random is a function of ``(train.seed, step)``: the batch (see
``medir.data.datasets``) and the global torch RNG, reseeded per step and rank for
methods that draw noise or dropout. A checkpoint at step k holds weights, optimizer
state and the step, so a run resumed from it ends with the same weights as one that
never stopped.

The output folder holds ``config.yaml``, ``checkpoints/``, ``log.csv``, ``curves.png``,
``model/`` (final: a medir model file, or what the method's ``save`` writes) and ``model_best/`` (best
validation metric, ``train.best_metric``).
"""

from __future__ import annotations

import contextlib
import csv
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medir.data.datasets import StepSampler, build_train_set, build_val_set
from medir.data.intensity import get_preset
from medir.engine import distributed
from medir.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from medir.engine.config import RESUMABLE_CHANGES, Config, differences, dump, from_dict
from medir.engine.schedule import cosine_lr
from medir.errors import ConfigError, MedirError

OUTPUTS = ("config.yaml", "checkpoints", "log.csv", "curves.png", "model", "model_best")


@dataclass
class Setup:
    """What the loop needs, built and checked before any step."""

    method: nn.Module
    train_set: torch.utils.data.Dataset  # every kind exposes channels and scale
    val_set: torch.utils.data.Dataset | None
    out: Path


def train(config: Config, *, resume: bool = False, force: bool = False, simulate=None) -> Path:
    """Train as ``config`` says; returns the output folder. ``simulate`` replaces ``medir.physics.simulate``."""
    info = distributed.setup(config.train.device)
    try:
        setup = prepare(config, info, resume=resume, force=force, simulate=simulate)
        run_loop(config, setup, info, resume=resume)
    finally:
        distributed.cleanup(info)
    return setup.out


def prepare(config: Config, info: distributed.Dist, *, resume: bool, force: bool, simulate=None) -> Setup:
    """Read data, build the method and try it on the data (one-line errors), then claim the output folder."""
    from medir.methods import build_method

    torch.manual_seed(config.train.seed)  # same initial weights on every rank and every run
    train_set = build_train_set(config.data.train, seed=config.train.seed, simulate=simulate)
    val_set = build_val_set(config.data.val, simulate=simulate) if config.data.val is not None else None
    method = build_method(config, data=train_set)
    check_method(method, config, train_set, val_set)
    out = Path(config.train.out_dir)
    refused = None
    if info.is_main:
        try:
            claim_out_dir(out, config, resume=resume, force=force)
        except MedirError as err:
            refused = err
    if not distributed.broadcast_flag(refused is None, info):  # every rank stops, none waits forever
        raise refused or MedirError(f"rank 0 refused {out}: see its error message")
    return Setup(method=method.to(info.device), train_set=train_set, val_set=val_set, out=out)


def run_loop(config: Config, s: Setup, info: distributed.Dist, *, resume: bool) -> None:
    t, sched = config.train, config.schedule
    params = [p for p in s.method.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    start, loop_state = 0, {"best": None}
    ckpt = latest_checkpoint(s.out / "checkpoints") if resume else None
    if ckpt is not None:
        loaded = load_checkpoint(ckpt, s.method, optimizer)
        start, loop_state = loaded["step"], loaded["loop"] or loop_state
    model = distributed.wrap(s.method, info)
    batches = iter(make_loader(s.train_set, t, info, start))
    log = TrainLog(s.out, keep_until=start) if info.is_main else None
    bar = progress(t.progress and info.is_main, start, sched.steps)
    timer = time.perf_counter()
    for step in range(start, sched.steps + 1):
        lr = cosine_lr(step, base_lr=config.optim.lr, steps=sched.steps, warmup=sched.warmup, min_lr=sched.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        last = step == sched.steps
        stopping = last or step == t.stop_after
        validating = step > start and s.val_set is not None and (step % t.val_every == 0 or last)
        saving = step > start and (step % t.ckpt_every == 0 or stopping)
        if validating:
            validate_and_keep_best(config, s, info, step, loop_state, log)
        if saving and info.is_main:
            save_checkpoint(s.out / "checkpoints", step, s.method, optimizer, config_text=dump(config),
                            loop_state=loop_state, keep=t.keep_checkpoints)
        if validating or saving:
            distributed.barrier(info)  # the other ranks wait for rank 0's evaluation and checkpoint
        if stopping:
            break
        torch.manual_seed(step_seed(t.seed, step, info.rank))
        logs = forward_backward(model, batches, t.accumulate, info.device, step)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % t.log_every == 0 or step + 1 == sched.steps:
            logs = distributed.mean_over_ranks({**logs, "grad_norm": float(grad_norm)}, info)
            seconds = (time.perf_counter() - timer) / t.log_every
            timer = time.perf_counter()
            if log is not None:
                log.write({"step": step + 1, "lr": lr, **logs, "sec_per_step": seconds})
                bar.set_postfix(loss=f"{logs['loss']:.4g}", lr=f"{lr:.2e}")
        bar.update(1)
    bar.close()
    if step == sched.steps and info.is_main:
        save_final(config, s, loop_state, log)


def forward_backward(model: nn.Module, batches, accumulate: int, device: torch.device, step: int) -> dict:
    """Sum gradients of ``loss / accumulate`` over micro-batches (DDP syncs only on the last one)."""
    totals: dict[str, float] = {}
    for micro in range(accumulate):
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        sync = model.no_sync() if micro < accumulate - 1 and hasattr(model, "no_sync") else contextlib.nullcontext()
        with sync:
            loss, logs = model(batch)
            (loss / accumulate).backward()
        if not torch.isfinite(loss.detach()):
            raise MedirError(f"the loss became {float(loss)} at step {step}: lower optim.lr or set train.grad_clip")
        for k, v in {"loss": loss.detach(), **logs}.items():
            totals[k] = totals.get(k, 0.0) + float(v) / accumulate
    return totals


def step_seed(seed: int, step: int, rank: int) -> int:
    """The global torch seed for one step of one rank (noise, dropout inside methods)."""
    return int(np.random.SeedSequence([seed, step, rank, 0x5EED]).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_loader(dataset: torch.utils.data.Dataset, t, info: distributed.Dist, start_step: int):
    sampler = StepSampler(t.batch_size, rank=info.rank, world_size=info.world_size, start=start_step * t.accumulate)
    return torch.utils.data.DataLoader(dataset, batch_size=t.batch_size, sampler=sampler, num_workers=t.workers,
                                       persistent_workers=t.workers > 0, pin_memory=info.device.type == "cuda")


def make_optimizer(config: Config, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    o = config.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)


def check_method(method: nn.Module, config: Config, train_set, val_set) -> None:
    """One loss on a real training sample and one validation, without gradients: the method must take this
    data, and report ``train.best_metric`` when there is validation data."""
    name = config.method.name
    batch = {k: v[None] for k, v in train_set[0].items()}
    if val_set is not None and not hasattr(method, "validate"):
        raise ConfigError(f"method '{name}' reports no validation metrics: remove data.val")
    if val_set is not None and val_set.channels != train_set.channels:
        raise ConfigError("validation images have a different number of channels than training images")
    method.eval()
    try:
        with torch.no_grad():
            method(batch)
            metrics = method.validate({k: v[None] for k, v in val_set[0].items()}) if val_set is not None else {}
    except (RuntimeError, ValueError, IndexError) as err:
        raise ConfigError(f"method '{name}' cannot take this data ({str(err).splitlines()[0]})") from err
    finally:
        method.train()
    if val_set is not None and config.train.best_metric not in metrics:
        raise ConfigError(f"train.best_metric is '{config.train.best_metric}' but method '{name}' reports "
                          f"{', '.join(metrics)}: choose one of them")


def claim_out_dir(out: Path, config: Config, *, resume: bool, force: bool) -> None:
    """Refuse to mix runs: a new run needs an empty folder (or --force), --resume needs the same config."""
    saved = out / "config.yaml"
    if saved.is_file() and resume:
        import yaml

        old = from_dict(yaml.safe_load(saved.read_text(encoding="utf-8")))
        changed = [k for k in differences(old, config) if k not in RESUMABLE_CHANGES]
        if changed:
            raise ConfigError(f"{out} holds a run with a different config ({', '.join(changed[:3])} differ): "
                              "resume with the same config, or choose another train.out_dir")
        return
    if saved.is_file() and not force:
        raise ConfigError(f"{out} already holds a training run: pass --resume to continue it or --force to restart")
    if out.is_dir() and not saved.is_file() and any(p.name not in OUTPUTS for p in out.iterdir()):
        raise ConfigError(f"{out} is a non-empty folder that is not a medir run: choose an empty train.out_dir")
    for name in OUTPUTS:  # --force, or leftovers of a run that never wrote its config
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    from medir.engine.atomic import atomic_write_text

    atomic_write_text(saved, dump(config))


def progress(enabled: bool, start: int, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, unit="step", dynamic_ncols=True)


@torch.no_grad()
def evaluate(method: nn.Module, val_set, device: torch.device) -> dict[str, float]:
    """``val_<name>``: the mean over the validation set of each metric the method's ``validate`` reports."""
    scores: dict[str, list[float]] = {}
    was_training = method.training
    method.eval()
    for item in val_set:
        batch = {k: v[None].to(device) for k, v in item.items()}
        for key, value in method.validate(batch).items():
            scores.setdefault(key, []).append(float(value))
    method.train(was_training)
    return {f"val_{k}": float(np.nanmean(v)) for k, v in scores.items() if not np.all(np.isnan(v))}


def validate_and_keep_best(config: Config, s: Setup, info, step: int, loop_state: dict, log) -> None:
    """Rank 0 evaluates, logs and saves ``model_best/`` when the chosen metric improves."""
    if not info.is_main:
        return
    metrics = evaluate(s.method, s.val_set, info.device)
    log.write({"step": step, **metrics})
    key = f"val_{config.train.best_metric}"
    if loop_state.get("best") is None or metrics.get(key, -math.inf) > loop_state["best"]:
        loop_state["best"], loop_state["best_step"] = metrics.get(key, -math.inf), step
        save_trained(config, s, s.out / "model_best", {**metrics, "step": step})


def save_final(config: Config, s: Setup, loop_state: dict, log) -> None:
    metrics = {}
    if s.val_set is not None:
        last = log.last_with(f"val_{config.train.best_metric}")
        metrics = {k: v for k, v in last.items() if k.startswith("val_")}
    save_trained(config, s, s.out / "model", {**metrics, "step": config.schedule.steps})
    log.plot(config.train.best_metric)


def save_trained(config: Config, s: Setup, path: Path, metrics: dict) -> None:
    """The method's own ``save`` when it has one, else its ``network`` as a medir model file."""
    if hasattr(s.method, "save"):
        s.method.save(path, metrics=metrics, training=training_recipe(config))
    else:
        save_network(config, s, path, metrics)


def training_recipe(config: Config) -> dict:
    """How a model was made: data, method, optimiser, schedule, seed and batch size (plain YAML-ready data)."""
    from medir.engine.config import to_dict

    return {"data": to_dict(config.data), "method": to_dict(config.method), "optim": to_dict(config.optim),
            "schedule": to_dict(config.schedule), "seed": config.train.seed, "batch_size": config.train.batch_size}


def save_network(config: Config, s: Setup, path: Path, metrics: dict) -> None:
    """Write the method's inference network as a medir model file with its card."""
    from medir.engine.modelfile import ModelCard, save_model
    from medir.models import MODELS

    net = s.method.network
    arch = next((name for name, cls in MODELS.items() if type(net) is cls), config.model.arch)
    preset = get_preset(config.data.train.preset)
    d = config.data
    policy = {"data_range": d.data_range, "window": list(preset.eval_window) if preset.eval_window else None}
    card = ModelCard(
        arch=arch, arch_args=dict(getattr(net, "arch_args", config.model.args)),
        task=config.task or d.train.task or "restoration", modality=preset.modality, intensity=preset.to_dict(),
        scale=s.train_set.scale, in_channels=getattr(s.train_set, "in_channels", s.train_set.channels),
        out_channels=s.train_set.channels, method=config.method.name, training=training_recipe(config),
        metrics={**metrics, "policy": policy} if metrics else {}, description=config.description,
        aux_modalities=list(getattr(s.train_set, "aux_modalities", [])),
        aux_intensity=s.train_set.aux_preset.to_dict() if hasattr(s.train_set, "aux_preset") else {},
    )
    save_model(path, net, card, force=True)


class TrainLog:
    """``log.csv`` (training rows and validation rows, one table keyed by step) and ``curves.png``."""

    def __init__(self, out: Path, *, keep_until: int):
        self.path, self.figure = out / "log.csv", out / "curves.png"
        rows = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as f:
                rows = [{k: _number(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]
        self.rows = [r for r in rows if r.get("step", math.inf) <= keep_until]  # steps after the checkpoint rerun
        self.columns = list(dict.fromkeys(k for r in self.rows for k in r)) or ["step"]
        self._rewrite()

    def write(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        with self.path.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.columns).writerow(row)

    def last_with(self, key: str) -> dict[str, float]:
        return next((r for r in reversed(self.rows) if key in r), {})

    def _rewrite(self) -> None:
        from medir.engine.atomic import atomic_path

        with atomic_path(self.path, force=True) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self, metric: str = "psnr") -> None:
        """Training loss (left); validation ``metric`` (right; its ``_input`` baseline in grey) and the next
        headline validation metric on a twin axis (per-class columns such as ``val_dice_2`` are left out)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from medir.engine.atomic import atomic_path

        fig = Figure(figsize=(10, 4), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        _curve(left, self.rows, "loss", "training loss")
        if min((r["loss"] for r in self.rows if "loss" in r), default=0) > 0:
            left.set_yscale("log")
        main = f"val_{metric}"
        _curve(right, self.rows, f"{main}_input", "", color="tab:gray")
        _curve(right, self.rows, main, f"validation {metric} (grey: input)", color="tab:green")
        others = [c for c in self.columns if c.startswith("val_") and c != main and not c.endswith("_input")
                  and not c.rstrip("0123456789").endswith("_")]
        if others:
            _curve(right.twinx(), self.rows, others[0], f"validation {others[0][4:]}", color="tab:purple")
        with atomic_path(self.figure, force=True) as tmp:
            fig.savefig(tmp, format="png", dpi=100)


def _curve(ax, rows: list[dict], key: str, label: str, color: str = "tab:blue") -> None:
    points = [(r["step"], r[key]) for r in rows if key in r]
    if points:
        ax.plot(*zip(*points), color=color, marker="." if len(points) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(label, color=color)


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
