"""Methods: compositions that return their loss, each built from the config by its own builder.

A method is an ``nn.Module`` with
- ``forward(batch) -> (loss, logs)``: the scalar to minimise and named scalar tensors (or floats) to log;
- ``network``: the module that inference runs;
and, optionally,
- ``validate(batch) -> dict[str, float]``: metrics of one validation item (higher is better for the one
  ``train.best_metric`` names); required when the config has ``data.val``;
- ``save(path, *, metrics, training)``: how the trained method is written; without it the loop writes
  ``network`` as a medir model file (:mod:`medir.engine.modelfile`).

``METHODS`` maps a name to a builder ``build(config, *, data) -> nn.Module``: ``config`` is the whole
:class:`medir.engine.config.Config`, ``data`` the training set (``channels``, ``scale``, and for labelled
data ``num_classes``). The training loop knows nothing else about a method. Registration is this dict.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from medir.errors import ConfigError
from medir.methods.rat import build_rat
from medir.methods.spdvfm import build_spdvfm
from medir.methods.supervised import RestorationScore, Supervised

Builder = Callable[..., nn.Module]


def construct(factory: Callable[..., nn.Module], name: str, args: dict, *positional, **fixed) -> nn.Module:
    """``factory(*positional, **args, **fixed)``; an argument the factory lacks, or sets itself, is a ConfigError."""
    params = inspect.signature(factory).parameters
    allowed = [p for i, p in enumerate(params) if i >= len(positional) and p not in fixed]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ConfigError(f"method '{name}' has no argument {unknown[0]!r} (allowed: {', '.join(allowed)})")
    try:
        return factory(*positional, **args, **fixed)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad arguments for method '{name}': {err}") from err


def build_backbone(config, *, channels: int) -> nn.Module:
    """The restoration backbone ``config.model`` names (arch + args, or a preset), ``channels`` in and out."""
    from medir.models import build_model, build_preset

    m = config.model
    if m.arch is None and m.preset is None and m.init is None:
        raise ConfigError(f"method '{config.method.name}' trains a backbone: give model.arch (with model.args), "
                          "model.preset (see `medir models`) or model.init (a model file to fine-tune)")
    if m.arch is None and m.preset is None:
        return initial_weights(m.init, None)
    kwargs = {"in_channels": channels, "out_channels": channels, **m.args}
    network = build_model(m.arch, **kwargs) if m.arch else build_preset(m.preset, **kwargs)
    return initial_weights(m.init, network) if m.init else network


def initial_weights(init: str, network: nn.Module | None) -> nn.Module:
    """``network`` (or, if None, the model file's own architecture) with the weights of model file ``init``."""
    from medir.engine.modelfile import load_model
    from medir.errors import MedirError

    try:
        source, _ = load_model(init)
    except MedirError as err:
        raise ConfigError(f"model.init: {err}") from err
    if network is None:
        return source.train()
    try:
        network.load_state_dict(source.state_dict())
    except RuntimeError as err:
        raise ConfigError(f"model.init: the weights of {init} do not fit the configured model "
                          f"({str(err).splitlines()[0]}): drop model.arch/args to take its architecture") from err
    return network


def restorer(cls: type[nn.Module]) -> Builder:
    """The builder of a method that wraps a restoration backbone: ``cls(network, **method.args)``."""

    def build(config, *, data) -> nn.Module:
        return construct(cls, config.method.name, config.method.args, build_backbone(config, channels=data.channels))

    return build


def build_supervised(config, *, data) -> nn.Module:
    """:class:`Supervised` on the configured backbone, scored in the validation preset's window; method arg
    ``window_loss: true`` puts the loss in that window too (in network space, through the training preset)."""
    from medir.data.intensity import get_preset

    preset = get_preset((config.data.val or config.data.train).preset)
    score = RestorationScore(window=preset.eval_window, data_range=config.data.data_range)
    network = build_backbone(config, channels=data.channels)
    args = dict(config.method.args)
    if args.pop("window_loss", False):
        args["window"] = network_window(get_preset(config.data.train.preset))
    return construct(Supervised, config.method.name, args, network, score=score)


def network_window(preset) -> tuple[float, float]:
    """The preset's evaluation window mapped to network space (fixed presets only: ``(w - lo) / (hi - lo)``)."""
    if preset.mode != "fixed" or preset.eval_window is None:
        raise ConfigError(f"method.args.window_loss needs a fixed intensity preset with an evaluation window; "
                          f"'{preset.name}' has none: drop window_loss or choose such a preset")
    span = preset.hi - preset.lo
    return ((preset.eval_window[0] - preset.lo) / span, (preset.eval_window[1] - preset.lo) / span)


def build_seg_head(config, *, data) -> nn.Module:
    """The fine-tuned segmentation head (:mod:`medir.priors.head`): a frozen encoder + a light CNN head.

    method.args: ``num_classes`` (required), ``sam_path``, ``width``, ``stages``, ``dropout`` (the network),
    ``ce_weight``, ``dice_weight`` (the loss). The random-feature encoder is seeded by ``train.seed``.
    """
    from medir.data.intensity import get_preset
    from medir.priors.head import seg_head

    if config.model.arch is not None or config.model.preset is not None:
        raise ConfigError("method 'seg_head' builds its own encoder and head from method.args: remove model.arch "
                          "and model.preset")
    if data.scale != 1 or not hasattr(data, "num_classes"):
        raise ConfigError("method 'seg_head' trains on labelled images: set data.train.kind to labelled")
    method = construct(seg_head, "seg_head", config.method.args, seed=config.train.seed,
                       intensity=get_preset(config.data.train.preset).to_dict())
    if data.num_classes > method.num_classes:
        raise ConfigError(f"the labels hold class ids up to {data.num_classes - 1} but method.args.num_classes is "
                          f"{method.num_classes}: set num_classes to at least {data.num_classes}")
    return method


def build_lrformer(config, *, data) -> nn.Module:
    """LRformer (:mod:`medir.methods.lrformer`): RLPP prior + guided frequency cross-attention restorer."""
    from medir.methods.lrformer import build_lrformer as build

    return build(config, data=data)


def build_diffcode(config, *, data) -> nn.Module:
    """One stage of DiffCode (:mod:`medir.methods.diffcode`); ``medir train`` runs all three in order."""
    from medir.methods.diffcode import build_stage

    return build_stage(config, data=data)


METHODS: dict[str, Builder] = {
    "supervised": build_supervised,
    "seg_head": build_seg_head,
    "lrformer": build_lrformer,
    "rat": build_rat,
    "spdvfm": build_spdvfm,
    "diffcode": build_diffcode,
}


def build_method(config, *, data) -> nn.Module:
    """The method ``config.method.name`` built by its registered builder; unknown names are a ConfigError."""
    name = config.method.name
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}': choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name](config, data=data)
