"""SPD-VFM (seed paper 000): semantic prior distillation from a vision foundation model into any backbone.

- :mod:`.prior`: Semantic Prior Integration, the teacher f^IR2 (MAP, equations 4 and 6; the CAT baseline);
- :mod:`.losses`: PSNR loss, SKD (equation 7), SCM (equations 8-11);
- :mod:`.method`: the two-stage method (equation 12), whose ``network`` is the plain student backbone;
- :mod:`.data`: the rapid bone-scan protocol on the phantom and binomially thinned real planar scans.

``build_spdvfm`` is the builder registered as ``spdvfm`` in :data:`medir.methods.METHODS`; the config's
``model`` is the student's backbone (arch + args, a preset, or ``init``), the teacher is the same
architecture with the prior channels added to its input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from medir.errors import ConfigError
from medir.methods.spdvfm.losses import psnr_loss, scm_loss, skd_loss
from medir.methods.spdvfm.method import SPDVFM
from medir.methods.spdvfm.prior import PriorTeacher, SemanticEncoder, prior_channels

__all__ = ["SPDVFM", "PriorTeacher", "SemanticEncoder", "build_spdvfm", "psnr_loss", "scm_loss", "skd_loss",
           "teacher_backbone", "load_teacher_state"]


def teacher_backbone(config, *, channels: int, extra: int) -> nn.Module:
    """The student's architecture (``config.model``) with ``channels + extra`` input channels, freshly initialised."""
    from medir.models import build_model, build_preset

    m = config.model
    kwargs = {"in_channels": channels + extra, "out_channels": channels}
    if m.arch is not None or m.preset is not None:
        kwargs = {**m.args, **kwargs}
        return build_model(m.arch, **kwargs) if m.arch else build_preset(m.preset, **kwargs)
    from medir.engine.modelfile import load_card

    card = load_card(m.init)
    return build_model(card.arch, **{**card.arch_args, **kwargs})


def load_teacher_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Teacher weights (keys without the ``teacher.`` prefix) from an SPD-VFM run folder (its latest
    checkpoint), a checkpoint folder, or a checkpoint's ``weights.safetensors``."""
    from safetensors.torch import load_file

    from medir.engine.checkpoint import WEIGHTS, latest_checkpoint

    path = Path(path)
    if path.is_dir() and (path / "checkpoints").is_dir():
        path = latest_checkpoint(path / "checkpoints") or path
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise ConfigError(f"teacher_from: no checkpoint weights at {path}: give an SPD-VFM run folder, "
                          "one of its checkpoints, or a weights.safetensors file")
    state = {k[len("teacher."):]: v for k, v in load_file(str(path), device="cpu").items() if k.startswith("teacher.")}
    if not state:
        raise ConfigError(f"teacher_from: {path} holds no teacher weights: is it an SPD-VFM run?")
    return state


def spdvfm(student: nn.Module, *, config, channels: int, score, prior: str = "spi", encoder_features: int = 8,
           mask_dropout: float = 0.5, teacher_steps: int | None = None, teacher_from: str | None = None,
           segmenter: str = "classical", lambda_skd: float = 0.01, lambda_scm: float = 100.0,
           scm_mode: str = "pooled", features: str = "teacher", teacher_input: str = "student") -> SPDVFM:
    """SPD-VFM around ``student``; the keyword arguments are ``method.args`` (see docs/methods/spdvfm.md).

    ``teacher_steps`` defaults to half of ``schedule.steps`` (0 when ``teacher_from`` gives a trained teacher);
    ``segmenter`` is a :func:`medir.priors.get_segmenter` spec; ``features`` is ``teacher`` (the frozen encoder
    E of the teacher) or ``vgg16:PATH`` / ``vgg19:PATH`` (a local state dict, :mod:`medir.priors.features`).
    """
    from medir.data.intensity import get_preset
    from medir.priors import get_segmenter
    from medir.priors.features import feature_network

    steps = config.schedule.steps
    if teacher_steps is None:
        teacher_steps = 0 if teacher_from else steps // 2
    if teacher_steps == 0 and not teacher_from:
        raise ConfigError("spdvfm: teacher_steps is 0 and no teacher_from: the student needs a trained teacher")
    if teacher_steps >= steps:
        raise ConfigError(f"spdvfm: teacher_steps={teacher_steps} leaves no student steps of schedule.steps={steps}")
    encoder = SemanticEncoder(channels, encoder_features)
    backbone = teacher_backbone(config, channels=channels, extra=prior_channels(prior, encoder_features))
    teacher = PriorTeacher(backbone, encoder, prior=prior, mask_dropout=mask_dropout)
    if teacher_from:
        try:
            teacher.load_state_dict(load_teacher_state(teacher_from))
        except RuntimeError as err:
            raise ConfigError(f"teacher_from: the teacher in {teacher_from} does not fit this config "
                              f"({str(err).splitlines()[0]})") from err
    modality = get_preset((config.data.val or config.data.train).preset).modality
    return SPDVFM(student, teacher, segmenter=get_segmenter(segmenter), modality=modality,
                  teacher_steps=teacher_steps, accumulate=config.train.accumulate, lambda_skd=lambda_skd,
                  lambda_scm=lambda_scm, scm_mode=scm_mode, features=feature_network(features),
                  teacher_input=teacher_input, score=score)


def build_spdvfm(config, *, data) -> nn.Module:
    """The ``spdvfm`` builder: the configured backbone as the student, scored like ``supervised``."""
    from medir.data.intensity import get_preset
    from medir.methods import build_backbone, construct
    from medir.methods.supervised import RestorationScore

    if data.scale != 1:
        raise ConfigError("spdvfm restores at the input size: use data with scale 1")
    preset = get_preset((config.data.val or config.data.train).preset)
    score = RestorationScore(window=preset.eval_window, data_range=config.data.data_range)
    student = build_backbone(config, channels=data.channels)
    return construct(spdvfm, config.method.name, config.method.args, student, config=config,
                     channels=data.channels, score=score)
