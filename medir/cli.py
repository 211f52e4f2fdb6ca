"""The ``medir`` command: parse, call the library, print.

Each subcommand lives in ``medir/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Registration is this explicit
list; modules load only when their command runs, so ``medir --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medir.errors import MedirError

COMMANDS = {
    "restore": "restore scans with a trained model (files, folders, DICOM series, volumes)",
    "evaluate": "compare restored images with references (PSNR, SSIM, NMSE, RMSE)",
    "models": "list shipped models and architectures",
    "simulate": "turn high-quality images into low-dose / low-count / low-resolution ones",
    "train": "train a model from a YAML config",
    "segment": "write region partitions (label maps) used as semantic priors",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
