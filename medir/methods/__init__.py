"""Methods: compositions around a backbone that return their loss.

A method is an ``nn.Module`` with
- ``forward(batch) -> (loss, logs)``: the scalar to minimise and named scalar tensors (or floats) to log;
- ``restore(batch) -> Tensor``: the network-space ``hq`` estimate, for validation;
- ``network``: the module that inference runs (saved as the model file).
The training loop knows nothing else about a method. Registration is this explicit dict.
"""

from __future__ import annotations

import inspect

from torch import nn

from medir.errors import ConfigError
from medir.methods.supervised import Supervised

METHODS: dict[str, type[nn.Module]] = {
    "supervised": Supervised,
}


def build_method(name: str, network: nn.Module, **kwargs) -> nn.Module:
    """Wrap ``network`` in method ``name``; unknown names or arguments are a ConfigError."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}': choose one of {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params) - {"network"})
    if unknown:
        allowed = ", ".join(p for p in params if p != "network")
        raise ConfigError(f"method '{name}' has no argument {unknown[0]!r} (allowed: {allowed})")
    try:
        return cls(network, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad arguments for method '{name}': {err}") from err
