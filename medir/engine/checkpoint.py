"""Checkpoints that resume a run exactly.

A checkpoint is a folder ``checkpoints/step_00001000/`` written atomically (built beside
it, then renamed), holding:

- ``weights.safetensors``: the method's state (network and any other trained parts);
- ``state.pt``: step, optimizer state, RNG states and loop state, plain tensors and
  containers only, so it loads with ``torch.load(weights_only=True)``;
- ``config.yaml``: the run's config, enough to rebuild the model.

The learning rate is a pure function of the step (``medir.engine.schedule``), so the
step is the scheduler's whole state.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medir.engine.atomic import atomic_dir
from medir.errors import MedirError

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
CONFIG = "config.yaml"
_NAME = re.compile(r"^step_(\d{8,})$")


def checkpoint_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` as (step, path), oldest first (half-written ones are hidden .part folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and (p / WEIGHTS).is_file() and (p / STATE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def save_checkpoint(folder: Path, step: int, method: nn.Module, optimizer: torch.optim.Optimizer, *,
                    config_text: str, loop_state: dict[str, Any], keep: int) -> Path:
    """Write ``folder/step_XXXXXXXX`` atomically, then delete all but the newest ``keep`` checkpoints."""
    from safetensors.torch import save_file

    path = checkpoint_path(folder, step)
    weights = {k: v.detach().to("cpu").clone().contiguous() for k, v in method.state_dict().items()}
    state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng_state(), "loop": loop_state}
    with atomic_dir(path, force=True) as tmp:
        save_file(weights, str(tmp / WEIGHTS))
        torch.save(state, tmp / STATE)
        (tmp / CONFIG).write_text(config_text, encoding="utf-8")
    for _, old in list_checkpoints(folder)[:-keep]:
        _remove(old)
    return path


def load_checkpoint(path: Path, method: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load weights (strict), optimizer and RNG states into place; return ``{"step", "loop"}``."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        weights = load_file(str(path / WEIGHTS), device="cpu")
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign files: the user can pick another checkpoint
        raise MedirError(f"checkpoint {path} is unreadable ({type(err).__name__}): delete it to resume from an older one")
    missing, unexpected = method.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise MedirError(f"checkpoint {path} does not fit this model ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected tensors): it belongs to another config")
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return {"step": int(state["step"]), "loop": state.get("loop", {})}


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python global RNG states as weights_only-loadable values."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _remove(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
