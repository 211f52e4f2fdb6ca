"""Recording constructor arguments so that a model can be rebuilt from JSON."""

from typing import Any


def record_args(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keyword arguments as JSON-ready values (tuples become lists).

    Call as ``self.arch_args = record_args(locals())`` first thing in ``__init__``;
    ``build_model(arch, **model.arch_args)`` then rebuilds the same architecture.
    """
    out = {}
    for key, value in local_vars.items():
        if key in ("self", "__class__"):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out
