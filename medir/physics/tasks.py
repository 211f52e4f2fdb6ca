"""Task registry for ``medir.physics.simulate`` and ``medir simulate``.

Each :class:`TaskSpec` names the simulator function, the modality it expects and its
parameters with defaults and valid ranges, so ``medir simulate --list`` can show them and
``simulate`` can refuse impossible values before any work is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from medir.errors import MedirError
from medir.physics.base import check_image, check_range, make_generator


@dataclass(frozen=True)
class Param:
    """One keyword parameter: default, inclusive range ``[lo, hi]`` (``lo`` exclusive if ``lo_open``), or choices."""

    name: str
    default: Any
    help: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[Any, ...] | None = None
    hint: str = ""

    def check(self, value: Any) -> Any:
        if value is None:
            return value
        if self.choices is not None:
            if value not in self.choices:
                allowed = ", ".join(str(c) for c in self.choices)
                raise MedirError(f"{self.name}={value} is impossible: use one of {allowed}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        check_range(self.name, value, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hint=self.hint)
        return value

    def describe(self) -> str:
        if self.choices is not None:
            rng = "{" + ", ".join(str(c) for c in self.choices) + "}"
        elif self.lo is None and self.hi is None:
            rng = "any"
        else:
            left = "(" if self.lo_open else "["
            lo = "-inf" if self.lo is None else f"{self.lo:g}"
            hi = "inf" if self.hi is None else f"{self.hi:g}"
            rng = f"{left}{lo}, {hi}]"
        return f"{self.name}={self.default!r} {rng}: {self.help}"


@dataclass(frozen=True)
class TaskSpec:
    """A registered degradation: ``fn(x, *, generator, **params) -> degraded`` on ``(B, C, H, W)``."""

    name: str
    description: str
    modality: str
    channels: int | None
    fn: Callable[..., torch.Tensor]
    params: tuple[Param, ...]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params)
        raise MedirError(f"task '{self.name}' has no parameter '{name}': its parameters are {known}")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, **params: Any) -> dict[str, Any]:
        """Defaults updated with ``params``, every value range-checked."""
        out = self.defaults()
        for name, value in params.items():
            out[name] = self.param(name).check(value)
        return out


def run_task(spec: TaskSpec, x: torch.Tensor, *, generator: torch.Generator | None, seed: int | None,
             **params: Any) -> torch.Tensor:
    resolved = spec.resolve(**params)
    check_image(x, channels=spec.channels)
    gen = make_generator(x, generator=generator, seed=seed)
    return spec.fn(x, generator=gen, **resolved)
