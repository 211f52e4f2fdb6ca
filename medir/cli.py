"""The ``medir`` command: parse, call the library, print.

Each subcommand lives in ``medir/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Registration is this explicit
list; modules load only when their command runs, so ``medir --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys

from medir.errors import MedirError

COMMANDS = {
    "restore": "restore scans with a trained model (files, folders, DICOM series, volumes)",
    "evaluate": "compare restored images with references (PSNR, SSIM, NMSE, RMSE)",
    "models": "list shipped models and architectures",
    "simulate": "turn high-quality images into low-dose / low-count / low-resolution ones",
    "train": "train a model from a YAML config",
    "segment": "write region partitions (label maps) used as semantic priors",
    "benchmark": "compare methods on the same simulated test sets and write a report (markdown + HTML)",
}


def _command_module(name: str):
    return importlib.import_module(f"medir.commands.{name}")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medir", description="Medical image restoration with learned priors.")
    parser.add_argument("--version", action="version", version=f"medir {__import__('medir').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _wanted_command(argv)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            _command_module(name).add_arguments(p)
    return parser


def _wanted_command(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if a in COMMANDS), None)


NEGATIVE = re.compile(r"^-(\d|\.\d)")


def join_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--window -160,240`` -> ``--window=-160,240``: argparse takes a value starting with '-' for an option
    unless it is a plain number, so lists such as ``-160,240`` or ``-5,0,10,20`` are joined to their option."""
    takes_value = set()
    for action in _all_actions(parser):
        if action.option_strings and action.nargs is None and not isinstance(action, argparse._StoreConstAction):
            takes_value.update(action.option_strings)
    out: list[str] = []
    for token in argv:
        if out and out[-1] in takes_value and NEGATIVE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _all_actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)


class _StderrLines(logging.Handler):
    """Library warnings (assumptions about a file, clipped values) as one ``medir: ...`` line on stderr.

    Writes to the ``sys.stderr`` of the moment, so a handler installed once follows redirections."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"medir: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    log = logging.getLogger("medir")
    if not any(isinstance(h, _StderrLines) for h in log.handlers):
        handler = _StderrLines(level=logging.WARNING)
        log.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _show_warnings()
    parser = build_parser(argv)
    args = parser.parse_args(join_negative_values(parser, argv))
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_command_module(args.command).run(args) or 0)
    except MedirError as err:
        print(f"medir {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"medir {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, permissions, vanished files: the user's to fix, not a medir bug
        where = f": {err.filename}" if err.filename else ""
        print(f"medir {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
