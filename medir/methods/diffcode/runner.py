"""``medir train`` for DiffCode: stages I, II and III in order, each a run of the one training loop.

``train.out_dir`` holds ``stage1/``, ``stage2/``, ``stage3/``, each an ordinary run folder (config, checkpoints, log,
``model/``). Stage k starts from stage k-1's ``model/``; ``--resume`` skips finished stages and resumes the first
unfinished one from its latest checkpoint. Without a prior (``network.prior: false``, the V1/V2 variants) only
stage III runs. ``method.args``:

- ``network``: :class:`medir.models.diffcode.DiffCodeNet` keyword arguments;
- ``steps``: [stage I, stage II, stage III] training steps (default: ``schedule.steps`` for each);
- ``balance_weight`` (1e-3), ``classifier_weight`` (1.0): stage III loss weights;
- set by the runner for each stage: ``stage`` and ``init`` (the previous stage's model folder).
"""

from __future__ import annotations

import copy
from pathlib import Path

from medir.errors import ConfigError

ALLOWED = {"network", "steps", "balance_weight", "classifier_weight", "stage", "init"}
MODALITIES = ["MR", "CT", "PT"]


def _network(args: dict):
    from medir.models.diffcode import DiffCodeNet

    try:
        return DiffCodeNet(**args.get("network", {}))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad method.args.network for diffcode: {err}") from err


def build_stage(config, *, data):
    """The method of stage ``method.args.stage`` (1, 2 or 3), its network loaded from ``method.args.init``."""
    from medir.engine.modelfile import load_model
    from medir.methods.diffcode.stages import STAGES

    args = dict(config.method.args)
    unknown = set(args) - ALLOWED
    if unknown:
        raise ConfigError(f"method 'diffcode' has no argument {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(ALLOWED))})")
    if args.get("stage") not in STAGES:
        raise ConfigError("method 'diffcode' trains in three stages: run it with `medir train` (which sets "
                          "method.args.stage), or set method.args.stage to 1, 2 or 3")
    if getattr(data, "channels", 1) != 1:
        raise ConfigError("diffcode restores single-channel images: use data.train.kind allinone")
    network = _network(args)
    if args.get("init"):
        source, _ = load_model(args["init"])
        network.load_state_dict(source.state_dict())
    stage = args["stage"]
    extra = {k: args[k] for k in ("balance_weight", "classifier_weight") if k in args and stage == 3}
    try:
        return STAGES[stage](network, **extra)
    except ValueError as err:
        raise ConfigError(f"diffcode stage {stage}: {err}") from err


def save_diffcode(network, path: Path, *, metrics: dict, training: dict) -> None:
    """Write a :class:`DiffCodeNet` as a medir model file that takes CT, PET and MR in physical units."""
    from medir.engine.modelfile import ModelCard, save_model

    identity = {"name": "physical", "modality": "CT", "units": "physical", "mode": "fixed", "lo": 0.0, "hi": 1.0,
                "clip": False, "percentile": 99.5, "eval_window": None}
    card = ModelCard(arch="diffcode", arch_args=dict(network.arch_args), task="all-in-one", modality="CT",
                     intensity=identity, method="diffcode", training=training, metrics=metrics,
                     description="DiffCode all-in-one restoration: MRI 4x SR (at output size), low-dose CT, "
                                 "low-count PET; the task is inferred from the image", modalities=MODALITIES)
    save_model(path, network, card, force=True)


def stage_configs(config) -> list[tuple[int, object]]:
    """(stage, config) for each stage to run, with its own out_dir, steps, stage and init."""
    args = dict(config.method.args)
    prior = args.get("network", {}).get("prior", True)
    steps = args.get("steps") or [config.schedule.steps] * 3
    if len(steps) != 3 or any(int(s) < 1 for s in steps):
        raise ConfigError(f"method.args.steps = {steps}: give three positive step counts (stages I, II, III)")
    root = Path(config.train.out_dir)
    out, previous = [], args.get("init")
    for stage in (1, 2, 3) if prior else (3,):
        c = copy.deepcopy(config)
        c.method.args = {**args, "stage": stage, "init": previous}
        c.schedule.steps = int(steps[stage - 1])
        c.schedule.warmup = min(c.schedule.warmup, c.schedule.steps - 1)
        c.train.out_dir = str(root / f"stage{stage}")
        if c.train.stop_after is not None and c.train.stop_after >= c.schedule.steps:
            c.train.stop_after = None
        out.append((stage, c))
        previous = str(root / f"stage{stage}" / "model")
    return out


def train_stages(config, *, resume: bool = False, force: bool = False) -> Path:
    """Run the stages in order; returns the last stage's run folder (its ``model/`` is the DiffCode model)."""
    from medir.engine.train import train

    if config.data.train.kind != "allinone":
        raise ConfigError("diffcode trains on all-in-one data: set data.train.kind to allinone")
    last = None
    for stage, c in stage_configs(config):
        last = Path(c.train.out_dir)
        if resume and (last / "model").is_dir():
            continue  # finished stage
        started = (last / "config.yaml").is_file()
        train(c, resume=resume and started, force=force)
        if not (last / "model").is_dir():  # stopped by train.stop_after: later stages wait for --resume
            return last
    return last
