"""Helpers shared by subcommands: argument and output checks, output paths, resumable batches, the report."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from medir.commands._records import Ledger
from medir.errors import InputError, MedirError
from medir.io import NIFTI, NUMPY, RASTER, Discovery, InputItem

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
    return sorted(items, key=lambda it: it.label)[i::n]


# ----------------------------------------------------------------------------------------------------------
# Checks made before any computation


def check_writable(path: Path, what: str) -> None:
    """Refuse up front an output (file or folder) that cannot be created: read-only folder, a file in the way.

    A folder with no write permission bit is refused even for root, who could write into it anyway:
    medir respects a folder marked read-only.
    """
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe != path and not probe.is_dir():
        raise MedirError(f"{what} {path}: {probe} is a file, not a folder: choose another output")
    folder = probe if probe.is_dir() else probe.parent
    if not os.access(folder, os.W_OK | os.X_OK) or not folder.stat().st_mode & 0o222:
        raise MedirError(f"{what} {path}: the folder {folder} is read-only: choose a writable output")
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        raise MedirError(f"{what} {path} is read-only: choose another output")


def check_tiling_args(*, tile: int, overlap: int, batch: int) -> None:
    """``--tile`` 0 (whole slices) or at least 16 px; ``--overlap`` 8 px to tile - 1; ``--batch`` >= 1."""
    if batch < 1:
        raise InputError(f"--batch {batch}: need at least 1 tile or slice per forward pass")
    if tile < 0 or 0 < tile < 16:
        raise InputError(f"--tile {tile}: use 0 (whole slices) or a tile of at least 16 pixels, e.g. 512")
    if tile and not 8 <= overlap < tile:
        raise InputError(f"--overlap {overlap}: tiles need a blended overlap of 8 to {tile - 1} pixels "
                         f"(without one, tile borders show as seams); use --tile 0 for whole slices")


def check_device(device: str) -> None:
    """A torch device that exists here: 'cuda' without CUDA is refused before any model is loaded."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(f"--device '{device}' is not a torch device: use cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available on this machine: use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device {device}: medir runs on cpu, cuda or mps")


def read_input(item: InputItem, *, modality: str | None = None):
    """Read one item; unusable pixel spacing (0) is treated as missing and said so on stderr."""
    from medir.io import read_item, repair_spacing

    image = read_item(item, modality=modality)
    note = repair_spacing(image)
    if note:
        print(f"note: {item.label}: {note}", file=sys.stderr)
    return image


# ----------------------------------------------------------------------------------------------------------
# Output paths


def single_output(output: Path, items: list[InputItem]) -> bool:
    """One input and ``-o`` names a file (not a folder): the output is that file."""
    return len(items) == 1 and items[0].kind != "series" and output.name.lower().endswith(FILE_SUFFIXES)


def output_root(output: Path, items: list[InputItem]) -> Path:
    """The folder outputs (and their records) go below."""
    return output.parent if single_output(output, items) else output


def output_path(item: InputItem, output: Path, items: list[InputItem]) -> Path:
    """``output`` itself for a single file output; otherwise the input's path below the common root,
    mirrored below the output folder (so distinct inputs never share an output)."""
    return output if single_output(output, items) else output / item.rel


def check_output_folder(output: Path, items: list[InputItem]) -> None:
    """Several inputs (or a series) need ``-o`` to be a folder: refuse an existing file there, up front."""
    if not single_output(output, items) and output.exists() and not output.is_dir():
        raise MedirError(f"-o {output} is a file, but {len(items)} input(s) need an output folder: "
                         f"give a folder (or one input to write one file)")


def check_not_input(item: InputItem, out: Path) -> None:
    sources = {p.resolve() for p in (item.files or (item.path,))} | {item.path.resolve()}
    target = out.resolve()
    if target in sources or any(target in s.parents for s in sources):
        raise InputError(f"output {out} is the input itself: medir never writes over an input, choose another -o")


def find_conflicts(plans: dict[InputItem, list[Path]]) -> dict[InputItem, str]:
    """Items whose planned output is another item's output, lies inside it, or is a folder holding it."""
    owner: dict[Path, InputItem] = {}
    holder: dict[Path, InputItem] = {}  # every folder above an output -> the item writing there
    conflicts = {}
    for item, outs in plans.items():
        for out in outs:
            key = out.resolve()
            other = owner.get(key) or holder.get(key) or next((owner[p] for p in key.parents if p in owner), None)
            if other is not None and other is not item:
                conflicts[item] = f"would write {out}, which {other.label} writes too: rename one of the inputs"
            owner.setdefault(key, item)
            for parent in key.parents:
                holder.setdefault(parent, item)
    return conflicts


# ----------------------------------------------------------------------------------------------------------
# The batch and its report


@dataclass
class Result:
    """What a work function may return: the outputs it actually wrote (if not the planned ones), and
    extra data kept in the item's record (e.g. simulate's manifest line)."""

    outputs: list[Path] | None = None
    extra: dict | None = None


@dataclass
class Report:
    """What happened to each input, reported once at the end: done, skipped (with why), failed (with why)."""

    total: int
    done: int = 0
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    finished_before: int = 0

    def fail(self, item: InputItem, err: Exception) -> None:
        message = str(err) if isinstance(err, MedirError) else f"unexpected {type(err).__name__}: {err}"
        self.failures.append(message if message.startswith(item.label) else f"{item.label}: {message}")

    def skip(self, label: str, reason: str) -> None:
        self.skipped.append(f"{label}: {reason}")

    def summary(self, verb: str) -> str:
        return (f"{verb}: {self.done} done, {len(self.skipped)} skipped, {len(self.failures)} failed"
                f" ({self.total} input(s))")

    def exit_code(self, verb: str) -> int:
        """0: nothing failed; 1: some inputs failed; 2: every input failed. Prints the failures on stderr."""
        if not self.failures:
            return 0
        if self.total == 1 and len(self.failures) == 1 and not self.skipped:
            print(f"medir {verb}: error: {self.failures[0]}", file=sys.stderr)
            return 2
        print(f"medir {verb}: {len(self.failures)} of {self.total} inputs failed:", file=sys.stderr)
        for line in self.failures:
            print(f"  {line}", file=sys.stderr)
        return 2 if not self.done and not self.finished_before else 1


Work = Callable[[InputItem, list[Path], bool], "Result | None"]


def run_batch(
    found: Discovery | list[InputItem],
    desc: str,
    *,
    plan: Callable[[InputItem], list[Path]],
    work: Work,
    ledger: Ledger,
    force: bool,
) -> Report:
    """Run ``work(item, outputs, overwrite)`` on every item, resumably; returns the report.

    Before any work: every item's outputs are planned and checked for clashes. Per item: finished outputs
    are skipped, outputs of another input are refused, the rest is claimed in the ledger, done, recorded.
    Failures do not stop the batch; ``MEDIR_DEBUG=1`` re-raises unexpected errors. Ctrl-C prints what
    was done and stops (finished items are skipped by a rerun, the interrupted one is redone).
    """
    items = found.items if isinstance(found, Discovery) else found
    report = Report(total=len(items))
    if isinstance(found, Discovery):
        for label, reason in found.skipped:
            report.skip(label, reason)
    plans, errors = {}, {}
    for item in items:
        try:
            if item.kind == "invalid":
                raise InputError(f"{item.label} {item.reason}")
            plans[item] = plan(item)
        except MedirError as err:
            errors[item] = err
    for item, message in find_conflicts(plans).items():
        errors[item] = InputError(f"{item.label} {message}")
    try:
        for item in progress(items, desc):
            if item in errors:
                report.fail(item, errors[item])
                continue
            _run_item(item, plans[item], work, ledger, force, report)
    except KeyboardInterrupt:
        print(f"medir {desc}: interrupted; {report.done} done so far (a rerun skips finished outputs)",
              file=sys.stderr)
        raise
    print(report.summary(desc))
    for line in report.skipped:
        print(f"  skipped {line}")
    if isinstance(found, Discovery) and found.hidden:
        print(f"  ignored {found.hidden} hidden file(s) or folder(s) (names starting with '.')")
    return report


def _run_item(item: InputItem, outputs: list[Path], work: Work, ledger: Ledger, force: bool, report: Report) -> None:
    try:
        for out in outputs:
            check_not_input(item, out)
        action, overwrite = ledger.decide(item, outputs, force=force)
        if action == "done":
            report.skip(item.label, "already done (outputs exist from this input with these settings)")
            report.finished_before += 1
            return
        ledger.write(item, outputs[0], outputs, done=False)
        result = work(item, outputs, overwrite) or Result()
        ledger.write(item, outputs[0], result.outputs or outputs, done=True, extra=result.extra)
        report.done += 1
    except MedirError as err:
        report.fail(item, err)
    except Exception as err:
        if os.environ.get("MEDIR_DEBUG"):
            raise
        report.fail(item, err)


def progress(items: list, desc: str):
    return tqdm(items, desc=desc, unit="input", disable=len(items) < 2 or None, dynamic_ncols=True)
