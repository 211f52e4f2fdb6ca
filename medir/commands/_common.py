"""Helpers shared by subcommands: sharding, output paths, failure reports, progress."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from medir.errors import InputError, MedirError
from medir.io import NIFTI, NUMPY, RASTER, InputItem

FILE_SUFFIXES = NIFTI + RASTER + NUMPY + (".dcm",)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N) with 0 <= i < N; None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard '{text}' is not of the form i/N (e.g. 0/4)")
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text}: need 0 <= i < N")
    return i, n


def take_shard(items: list, shard: tuple[int, int]) -> list:
    """Every N-th item starting at i, in a stable order, so N processes split a job without overlap."""
    i, n = shard
    return sorted(items, key=lambda it: str(it.path))[i::n]


def output_path(item: InputItem, output: Path, n_items: int) -> Path:
    """A single input may name an output file; otherwise ``output`` is a folder and names are kept."""
    if n_items == 1 and output.name.lower().endswith(FILE_SUFFIXES) and item.kind != "series":
        return output
    return output / item.output_name


def check_not_input(item: InputItem, out: Path) -> None:
    if out.resolve() == item.path.resolve():
        raise InputError(f"output {out} is the input itself: medir never writes over an input, choose another -o")


def check_item(item: InputItem, outputs: list[Path], *, force: bool) -> None:
    """Before any work on ``item``: it is readable, no output is the input, none exists unless ``force``."""
    if item.kind == "invalid":
        what = "does not exist" if not item.path.exists() else "is not a format medir reads"
        raise InputError(f"{item.path.name} {what}: give DICOM, NIfTI, PNG/TIFF or NPY/NPZ inputs")
    for out in outputs:
        check_not_input(item, out)
        if out.exists() and not force:
            raise MedirError(f"{out} already exists: pass --force to overwrite it")


def run_batch(items: list[InputItem], desc: str, work: Callable[[InputItem], object]) -> tuple["Report", list]:
    """Run ``work`` on every item with a progress bar, going on past failures; returns the report and results.

    Errors that are not :class:`MedirError` are reported too (as "unexpected ..."); ``MEDIR_DEBUG=1`` re-raises them.
    """
    report, results = Report(total=len(items)), []
    for item in progress(items, desc):
        try:
            results.append(work(item))
            report.done += 1
        except MedirError as err:
            report.fail(item, err)
        except Exception as err:
            if os.environ.get("MEDIR_DEBUG"):
                raise
            report.fail(item, err)
    return report, results


@dataclass
class Report:
    """Per-file failures collected during a batch, reported once at the end."""

    total: int
    done: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, item: InputItem, err: Exception) -> None:
        message = str(err) if isinstance(err, MedirError) else f"unexpected {type(err).__name__}: {err}"
        name = item.path.name
        self.failures.append(message if message.startswith(name) else f"{name}: {message}")

    def exit_code(self, verb: str) -> int:
        if not self.failures:
            return 0
        if self.total == 1:
            print(f"medir {verb}: error: {self.failures[0]}", file=sys.stderr)
            return 2
        print(f"medir {verb}: {len(self.failures)} of {self.total} inputs failed:", file=sys.stderr)
        for line in self.failures:
            print(f"  {line}", file=sys.stderr)
        return 2 if len(self.failures) == self.total else 1


def progress(items: list, desc: str):
    return tqdm(items, desc=desc, unit="file", disable=len(items) < 2 or None, dynamic_ncols=True)
