"""Errors a user can act on.

A :class:`MedirError` carries a one-line message saying what is wrong and what
to do. The CLI prints it on stderr and exits with code 2; anything else is a
bug and keeps its traceback.
"""


class MedirError(Exception):
    """A user-facing error: bad input, bad config, missing file or extra."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class InputError(MedirError):
    """An input file or array that cannot be used (corrupt, empty, NaN, wrong shape)."""


class ConfigError(MedirError):
    """A configuration that cannot be used (unknown key, bad value, missing folder)."""


class ModelFileError(MedirError):
    """A path that is not a readable medir model."""


def missing_extra(package: str, extra: str) -> MedirError:
    """The error for an optional dependency that is not installed."""
    return MedirError(
        f"this needs the optional package '{package}': install it with pip install 'medir[{extra}]' -c constraints.txt"
    )
