"""The training config: a typed tree of dataclasses read from YAML.

Every key must name a field (unknown keys are errors), every value is checked
against the field's type, and ``key=value`` overrides use dotted paths
(``optim.lr=1e-4``, ``data.train.params.dose=0.25``) checked the same way.
Free-form keyword arguments (``model.args``, ``method.args``,
``data.*.params``) are checked later by the function that receives them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from medir.errors import ConfigError


@dataclass
class ModelConfig:
    """The backbone: an architecture name with its keyword arguments, or a named preset.

    ``init`` starts from the weights of a medir model file (shipped name or path) to fine-tune it;
    alone, it also takes that model's architecture.
    """

    arch: str | None = None
    preset: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    init: str | None = None


@dataclass
class MethodConfig:
    """A method from ``medir.methods.METHODS`` and its keyword arguments (e.g. ``loss: psnr``)."""

    name: str = "supervised"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetConfig:
    """Where pairs come from.

    ``paired``: ``root/lq`` and ``root/hq`` with matching file names, or ``manifest`` (CSV with columns lq,hq).
    ``root`` may be a list of folders (paired, simulated and guided data): their images are pooled, in that order.
    ``simulated``: high-quality images under ``root`` (or a CSV ``manifest`` with column hq), degraded on the
    fly by ``medir.physics.simulate(task, x, **params)``. ``rescale`` = (slope, intercept) maps stored values
    to physical units (e.g. PNG grey levels to pseudo-HU) before simulation. ``patch_size`` is the low-quality
    patch side (the high-quality patch is ``scale`` times larger); null means whole slices (validation only).
    ``min_std`` drops near-empty slices (volume ends); ``simulate_on: patch`` degrades the cropped patch instead of
    the whole slice (cheaper; tasks whose physics needs the whole slice, such as ct-lowdose, simulate the slice and crop); ``seed`` fixes the validation set's simulated
    noise (training samples follow ``train.seed``); ``max_items`` caps the validation set (evenly spaced slices).
    ``allow_lossy`` accepts lossy-compressed DICOM targets (refused by default). ``cache_draws`` > 0 keeps that
    many whole-slice simulations per slice in memory and crops patches from them (for slow simulators such as CT).
    ``lesion_prob`` > 0 adds small low-contrast disks (``lesion_contrast`` in physical units, either sign;
    ``lesion_radius`` in pixels) to input and target of that share of training patches, so a denoiser learns to keep
    them (CT only: :mod:`medir.data.lesions`).
    ``labelled``: ``root/images`` and ``root/labels`` with matching file names (integer label maps), for
    segmentation methods; ``preset`` maps the images to the network, labels move with them (nearest only).
    ``allinone``: MRI 4x SR, low-dose CT and low-count PET simulated from phantoms, balanced per batch, with task
    labels (:mod:`medir.data.allinone`; ``params``: per_task, size, split).
    ``guided``: ``root/lq``, ``root/hq`` and a guide folder ``root/<params.aux>`` (default ``mr``) with matching
    names; the network takes ``concat[lq, guide]`` (:mod:`medir.data.guided`, e.g. low-count PET with its MR).
    """

    kind: Literal["paired", "simulated", "labelled", "allinone", "guided"] = "paired"
    root: str | list[str] | None = None
    manifest: str | None = None
    task: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    preset: str = "ct"
    patch_size: int | None = 64
    rescale: tuple[float, float] | None = None
    min_std: float = 0.0
    simulate_on: Literal["slice", "patch"] = "slice"
    allow_lossy: bool = False
    cache_draws: int = 0
    augment: bool = True
    lesion_prob: float = 0.0
    lesion_contrast: tuple[float, float] = (10.0, 60.0)
    lesion_radius: tuple[float, float] = (1.5, 6.0)
    max_items: int | None = None
    seed: int = 0


@dataclass
class DataConfig:
    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig | None = None
    data_range: Union[float, Literal["target"]] = "target"


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw"] = "adamw"
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    """Cosine decay from ``optim.lr`` to ``min_lr`` over ``steps`` after a linear ``warmup``."""

    steps: int = 1000
    warmup: int = 0
    min_lr: float = 1e-6


@dataclass
class TrainConfig:
    """The loop. ``batch_size`` is per process (global batch = batch_size x processes x accumulate);
    ``grad_clip`` is a max global L2 norm (null: no clipping); ``stop_after`` ends the run at that step with a
    checkpoint, to be continued with ``--resume`` (a planned pause; the schedule still spans ``schedule.steps``);
    ``workers`` are DataLoader processes; ``keep_checkpoints`` newest checkpoints are kept; ``best_metric`` is a
    validation metric the method reports, higher is better (``psnr``, ``ssim`` for restorers, ``dice`` for
    ``seg_head``), checked against the method's ``validate`` before the first step."""

    batch_size: int = 8
    accumulate: int = 1
    grad_clip: float | None = None
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    ckpt_every: int = 500
    keep_checkpoints: int = 3
    best_metric: str = "psnr"
    out_dir: str = "runs/train"
    device: str = "auto"
    workers: int = 0
    stop_after: int | None = None
    progress: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: str | None = None
    description: str = ""


# Fields that may differ between a run and its resumption without changing the result.
RESUMABLE_CHANGES = {"train.stop_after", "train.device", "train.workers", "train.progress"}


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply ``key=value`` overrides, and check every key and type."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: give the path of a YAML config (see configs/)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (model, method, data, optim, schedule, train)")
    for item in overrides:
        apply_override(raw, item)
    return from_dict(raw)


def from_dict(raw: dict) -> Config:
    config = _build(Config, raw, "")
    check(config)
    return config


def to_dict(config: Any) -> Any:
    """Plain YAML-ready data (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def dump(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def apply_override(raw: dict, item: str) -> None:
    """Set ``a.b.c=value`` (value parsed as YAML) in the raw tree, checking the path against the fields."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{item}' is not key=value: write e.g. optim.lr=1e-4")
    parts = key.strip().split(".")
    cls: Any = Config
    node = raw
    for depth, name in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if cls is not None:
            fields = _fields(cls)
            if name not in fields:
                raise ConfigError(f"override '{key}': unknown key '{where}' (allowed: {', '.join(fields)})")
            cls = _dataclass_in(fields[name])
        if depth == len(parts) - 1:
            node[name] = _parse_value(text)
        else:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]


def differences(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    out: list[str] = []
    _diff(to_dict(a), to_dict(b), "", out)
    return out


def check(config: Config) -> None:
    """Value checks that types alone cannot express."""
    m, t, s = config.model, config.train, config.schedule
    if m.arch is not None and m.preset is not None:  # neither: the method says whether it needs a backbone
        raise ConfigError("model: give exactly one of 'arch' (with 'args') or 'preset' (see `medir models`)")
    positive = {
        "train.batch_size": t.batch_size, "train.accumulate": t.accumulate, "schedule.steps": s.steps,
        "train.log_every": t.log_every, "train.val_every": t.val_every, "train.ckpt_every": t.ckpt_every,
        "train.keep_checkpoints": t.keep_checkpoints, "optim.lr": config.optim.lr,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} is {value}: it must be positive")
    if s.warmup < 0 or s.warmup >= s.steps:
        raise ConfigError(f"schedule.warmup is {s.warmup}: it must be in [0, schedule.steps={s.steps})")
    if t.grad_clip is not None and t.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip is {t.grad_clip}: give a positive norm, or null for no clipping")
    for name, d in (("data.train", config.data.train), ("data.val", config.data.val)):
        if d is not None and d.patch_size is not None and d.patch_size < 8:
            raise ConfigError(f"{name}.patch_size is {d.patch_size}: it must be at least 8 (or null for whole images)")
    if config.data.train.patch_size is None:
        raise ConfigError("data.train.patch_size is null: training needs a patch size so images can be batched")


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a field holds (through ``X | None``), or None for plain values and free dicts."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(raw).__name__} {raw!r}")
    fields = _fields(cls)
    unknown = [k for k in raw if k not in fields]
    if unknown:
        name = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise ConfigError(f"unknown config key '{name}' (allowed here: {', '.join(fields)})")
    values = {k: _coerce(v, fields[k], f"{where}.{k}" if where else k) for k, v in raw.items()}
    return cls(**values)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = {}
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors[arg] = str(err)
        sequences = [e for a, e in errors.items() if typing.get_origin(a) in (list, tuple)]
        if isinstance(value, (list, tuple)) and len(sequences) == 1:
            raise ConfigError(sequences[0])  # a list given: say what is wrong with it as a list
        raise ConfigError(next(iter(errors.values())) if len(errors) == 1
                          else f"{where} = {value!r} fits none of its types ({tp})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} = {value!r}: use one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where} = {value!r}: give a list of {len(args)} values")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{where} = {value!r}: give a non-empty list")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r}: give a mapping of keyword arguments")
        return dict(value)
    return _scalar(value, tp, where)


def _scalar(value: Any, tp: Any, where: str) -> Any:
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # PyYAML reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where} = {value!r} is not a {getattr(tp, '__name__', tp)}")


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            _diff(a.get(k), b.get(k), f"{where}.{k}" if where else str(k), out)
    elif a != b:
        out.append(where)
