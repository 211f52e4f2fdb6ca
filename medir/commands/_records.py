"""Per-output records that make batches resumable and ``--force`` safe.

For every output, ``OUT/.medir/outputs/<key>.json`` says which input made it, from which version of
that input (sizes and modification times), with which command and settings, and whether it finished.
The records are shared by all commands, so no command replaces another input's output. The record is
written *before* the work (a claim, ``done: false``) and again after the outputs were renamed into place
(``done: true``). Outputs themselves are written atomically (temporary file + rename), so:

- record done, same input/settings, outputs present -> the item is finished: a rerun skips it;
- record not done, same input/settings -> an earlier run was interrupted: the item is redone
  (its outputs, if any were renamed in place, are replaced) and reported as done, not as a failure;
- outputs present but made from *another input* -> refused, even with ``--force`` (two inputs must
  never share an output); without a record or with other settings -> refused unless ``--force``.

Records hold hashes of the input paths, never the paths themselves (folder names may carry patient names).
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from pathlib import Path

from medir.engine.atomic import atomic_write_text
from medir.errors import MedirError
from medir.io import InputItem

RECORDS_DIR = ".medir"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def input_identity(item: InputItem) -> tuple[str, str]:
    """(which input: hash of its resolved path, which version: hash of file sizes and mtimes)."""
    files = item.files or (item.path,)
    ident = _sha(str(item.path.resolve()) + "|" + item.label)
    stats = []
    for f in files:
        st = f.stat()
        stats.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return ident, _sha("|".join(stats))


def remove_temporaries(path: Path) -> None:
    """Leftovers of an interrupted atomic write of ``path``: ``.NAME.*.part*`` and ``.NAME.old``."""
    if not path.parent.is_dir():
        return
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if ".part" in leftover.name[len(path.name) + 1:] or leftover.name == f".{path.name}.old":
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


class Ledger:
    """The records of one command's outputs below ``root`` (the output folder)."""

    def __init__(self, root: Path, command: str, settings: dict):
        self.root, self.command = Path(root), command
        self.settings = json.dumps({"command": command, **settings}, sort_keys=True, default=str)
        self.folder = self.root / RECORDS_DIR / "outputs"

    def _key(self, primary: Path) -> Path:
        try:
            rel = primary.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = str(primary.resolve())
        return self.folder / f"{_sha(rel)}.json"

    def load(self, primary: Path) -> dict | None:
        path = self._key(primary)
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError):
            return None  # a damaged record counts as no record

    def decide(self, item: InputItem, outputs: list[Path], *, force: bool) -> tuple[str, bool]:
        """('done', _) when the item is finished; else ('todo', overwrite) where ``overwrite`` says whether
        existing outputs may be replaced. Raises :class:`MedirError` when they may not."""
        ident, state = input_identity(item)
        record = self.load(outputs[0])
        for out in [*outputs, self._key(outputs[0])]:
            remove_temporaries(out)
        present = [o for o in outputs if o.exists()]
        recorded = [self.root / o for o in (record or {}).get("outputs", [])]
        same = record is not None and record.get("input") == ident
        if record is not None and not same and any(p.exists() for p in recorded + present):
            raise MedirError(f"{outputs[0]} was written from another input: medir never lets two inputs share "
                             f"an output, even with --force; choose another -o or remove it first")
        current = same and record.get("settings") == self.settings and record.get("state") == state
        if current and record.get("done") and recorded and all(p.exists() for p in recorded) and not force:
            return "done", False
        if not present:
            return "todo", force
        if current and not record.get("done"):
            return "todo", True  # interrupted earlier: these outputs are ours, replace them
        if force:
            return "todo", True
        why = " (made from another version of the input or with other settings)" if same else ""
        raise MedirError(f"{present[0]} already exists{why}: pass --force to overwrite it")

    def write(self, item: InputItem, primary: Path, outputs: list[Path], *, done: bool,
              extra: dict | None = None) -> None:
        """Record ``outputs`` of ``item`` under the key of its planned ``primary`` output."""
        ident, state = input_identity(item)
        rel = [self._rel(o) for o in outputs]
        record = {"input": ident, "state": state, "settings": self.settings, "outputs": rel, "done": done}
        if extra is not None:
            record["extra"] = extra
        atomic_write_text(self._key(primary), json.dumps(record, sort_keys=True), force=True)

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())
