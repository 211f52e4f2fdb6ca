"""Model files: a directory with ``model.safetensors``, ``config.json`` (the card) and ``README.md``.

Safetensors cannot run code when loaded, and the JSON card holds everything needed
to rebuild the network (architecture and its keyword arguments) and to use it
correctly (task, the modalities it was trained for, intensity preset, scale), plus how it was made
(training data recipe) and how good it is (validation metrics).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medir.data.intensity import IntensityPreset
from medir.engine.atomic import atomic_dir, atomic_write_text
from medir.errors import InputError, MedirError, ModelFileError
from medir.io.image import normalize_modality

FORMAT = "medir-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "shipped"


@dataclass
class ModelCard:
    """What a model is, how to use it, how it was made, how well it does."""

    arch: str
    arch_args: dict[str, Any]
    task: str
    modality: str
    intensity: dict[str, Any]
    scale: int = 1
    in_channels: int = 1
    out_channels: int = 1
    method: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    modalities: list[str] = field(default_factory=list)
    # Guided models (e.g. PET with its MR): the network input is concat[image, guides]; one modality per guide,
    # in channel order, and the guides' own intensity preset. Empty for models that take the image alone.
    aux_modalities: list[str] = field(default_factory=list)
    aux_intensity: dict[str, Any] = field(default_factory=dict)
    # Restore as the mean over the 8 flips/quarter turns by default (8x the time): set when that is how the model was
    # measured; ``medir restore --no-ensemble`` (``restore_image(ensemble=False)``) restores in one pass.
    self_ensemble: bool = False

    def __post_init__(self) -> None:
        """Cards written before ``modalities`` existed declare the one ``modality`` (or their preset's)."""
        declared = self.modalities or [self.modality or self.intensity.get("modality", "OT")]
        self.modalities = [normalize_modality(m) for m in declared]
        self.aux_modalities = [normalize_modality(m) for m in self.aux_modalities]

    @property
    def aux_preset(self) -> IntensityPreset | None:
        """How the guide images map to the network (None for models without guides)."""
        return IntensityPreset.from_dict(self.aux_intensity) if self.aux_intensity else None

    @property
    def preset(self) -> IntensityPreset:
        return IntensityPreset.from_dict(self.intensity)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str) -> "ModelCard":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelFileError(f"{where} is not valid JSON ({err.msg} at line {err.lineno}): not a medir model config")
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ModelFileError(f"{where} is not a medir model config (no \"format\": \"{FORMAT}\")")
        data.pop("format_version", None)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelFileError(f"{where} has unknown keys {sorted(unknown)}: written by a newer medir?")
        try:
            return cls(**data)
        except MedirError as err:
            raise ModelFileError(f"{where}: {err}")
        except TypeError as err:
            raise ModelFileError(f"{where} is incomplete ({err}): not a usable medir model config")

    def markdown(self) -> str:
        lines = [f"# medir model: {self.task}", "", self.description or "", ""]
        lines += [f"- architecture: `{self.arch}` {json.dumps(self.arch_args)}"]
        lines += [f"- modalities: {', '.join(self.modalities)}; intensity preset: {json.dumps(self.intensity)}"]
        if self.aux_modalities:
            lines += [f"- guided by: {', '.join(self.aux_modalities)} (`medir restore IN --aux GUIDE`); guide preset: "
                      f"{json.dumps(self.aux_intensity)}"]
        lines += [f"- scale: {self.scale}; channels in/out: {self.in_channels}/{self.out_channels}"]
        lines += [f"- method: {self.method or 'supervised'}"]
        if self.training:
            lines += ["", "## Training data", "", "```json", json.dumps(self.training, indent=2), "```"]
        if self.metrics:
            lines += ["", "## Validation metrics", "", "```json", json.dumps(self.metrics, indent=2), "```"]
        return "\n".join(lines) + "\n"


def save_model(path: str | Path, model: nn.Module, card: ModelCard, *, force: bool = False) -> Path:
    """Write ``path/`` atomically (built beside it, then renamed); refuse to replace it unless ``force``."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(path, force=force) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        atomic_write_text(tmp / CONFIG, card.to_json())
        atomic_write_text(tmp / "README.md", card.markdown())
    return path


def shipped_models() -> dict[str, Path]:
    """Models that ship inside the package, by name."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SHIPPED_DIR.iterdir()) if (p / CONFIG).is_file()}


def shipped_by_modality() -> dict[str, list[str]]:
    """Modality -> names of the shipped models trained for it that take the image alone (no guide)."""
    out: dict[str, list[str]] = {}
    for name, path in shipped_models().items():
        card = load_card(path)
        for modality in card.modalities if not card.aux_modalities else ():
            out.setdefault(modality, []).append(name)
    return out


def shipped_guided() -> dict[str, list[str]]:
    """``"MODALITY+GUIDE"`` (e.g. ``"PT+MR"``) -> names of the shipped guided models (cards with ``aux_modalities``)."""
    out: dict[str, list[str]] = {}
    for name, path in shipped_models().items():
        card = load_card(path)
        for modality in card.modalities:
            for guide in card.aux_modalities:
                out.setdefault(f"{modality}+{guide}", []).append(name)
    return out


def check_modality(card: ModelCard, modality: str, *, model: str, what: str) -> None:
    """Refuse to apply ``card``'s model to an input of another (or unknown) modality, in one line."""
    if modality in card.modalities:
        return
    trained = "/".join(card.modalities)
    if modality == "OT":
        raise MedirError(f"{what} does not say its modality (model {model} restores {trained}): pass --modality "
                         f"{card.modalities[0]} if it is {card.modalities[0]}, or --allow-modality-mismatch")
    raise MedirError(f"{what} is {modality} but model {model} was trained for {trained}: pick a {modality} "
                     f"model with --model, or pass --allow-modality-mismatch to apply it anyway")


MAP_TYPES = ("PERFUSION", "CBF", "CBV", "MTT", "TTP", "TMAX", "ADC", "FA", "T1MAP", "T2MAP")


def check_intensity(card: ModelCard, source, *, model: str, what: str) -> None:
    """Refuse a DICOM input whose values are not the kind the model was trained on: a parametric map
    (perfusion CBF/CBV/MTT, ADC, ...) or a RescaleType other than the model's units (e.g. not HU)."""
    if source is None:
        return
    image_type = {str(v).upper() for v in (source.get("ImageType") or [])}
    maps = sorted(image_type & set(MAP_TYPES))
    units = card.preset.units
    if maps:
        raise MedirError(f"{what} is a parametric map (ImageType {'/'.join(maps)}), but model {model} restores "
                         f"{units} images: pass --allow-modality-mismatch to apply it anyway")
    rescale_type = str(source.get("RescaleType", "") or "").strip().upper()
    if units == "HU" and rescale_type not in ("", "HU", "US"):
        raise MedirError(f"{what} stores {rescale_type} values, but model {model} restores HU: "
                         f"pass --allow-modality-mismatch to apply it anyway")


def check_value_range(card: ModelCard, image, *, model: str, what: str) -> None:
    """Refuse an input of an 8-bit RGB model (preset units ``RGB8``) whose values are not 8-bit: a 16-bit
    TIFF (values above 255 would be clipped to white) or floats in 0..1 (restored as near-black)."""
    if card.preset.units != "RGB8":
        return
    src = image.meta.source if isinstance(image.meta.source, dict) else {}
    dtype = str(src.get("dtype", ""))
    lo, hi = float(np.min(image.array)), float(np.max(image.array))
    if lo < 0 or hi > 255:
        raise InputError(f"{what} holds values {lo:g}..{hi:g} ({dtype or 'unknown type'}), but model {model} restores "
                         "8-bit RGB (0..255): convert it to 8 bits per channel, or pass --allow-modality-mismatch")
    if dtype.startswith("float") and hi <= 1.0:
        raise InputError(f"{what} holds floats in 0..1, but model {model} restores 8-bit RGB (0..255): multiply "
                         "by 255 or save it as 8-bit, or pass --allow-modality-mismatch")


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A shipped model's name, a model directory, or a ``.safetensors`` file beside its config."""
    p = Path(name_or_path)
    if p.exists():
        directory = p.parent if p.is_file() else p
        if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
            raise ModelFileError(
                f"{p} is not a medir model: expected a folder with {WEIGHTS} and {CONFIG} (see `medir models`)"
            )
        return directory
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    names = ", ".join(shipped) or "none yet"
    raise ModelFileError(f"no model file or shipped model named '{name_or_path}' (shipped models: {names})")


def load_card(name_or_path: str | Path) -> ModelCard:
    directory = resolve_model_path(name_or_path)
    return ModelCard.from_json((directory / CONFIG).read_text(encoding="utf-8"), str(directory / CONFIG))


def load_model(name_or_path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the architecture from the card and load the weights; the model is in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from medir.models import build_model

    directory = resolve_model_path(name_or_path)
    card = load_card(directory)
    try:
        state = load_file(str(directory / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{directory / WEIGHTS} is not a readable safetensors file ({err})")
    model = build_model(card.arch, **card.arch_args)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError:  # shape mismatches
        missing, unexpected = ["(shape mismatch)"], []
    if missing or unexpected:
        raise ModelFileError(
            f"{directory} weights do not fit architecture '{card.arch}' {card.arch_args} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors): the files are from different models"
        )
    return model.to(device).eval(), card
