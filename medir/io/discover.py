"""Input discovery: command-line paths -> work items (one per file or DICOM series), plus what was skipped.

Rules:

- Folders are walked; a ``DICOMDIR`` (given or found) is followed to the files it lists.
- DICOM files are grouped by ``SeriesInstanceUID`` (files without one: by folder), then split by
  geometry (rows, columns, orientation, pixel spacing, samples per pixel): each group is one series
  item. Multi-frame files are items of their own. A file whose header cannot be read fails alone.
- PNG/TIFF, NIfTI and NPY/NPZ files are items too; other files are listed in ``skipped`` with the reason
  (hidden files and folders, such as medir's own ``.medir`` records, are ignored and counted).
- Every item has ``rel``: its path below the common root of the command-line paths, so that outputs
  mirrored below an output folder never collide (two ``a.dcm`` in different folders stay apart).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class InputItem:
    """One unit of work: a file, or the DICOM files of one series.

    ``kind``: 'dicom', 'series', 'nifti', 'raster', 'numpy' or 'invalid' (``reason`` says why).
    ``path``: the file, or the folder holding the series' files. ``rel``: where the item sits below
    the common root (outputs mirror it). ``files``: a series' files (empty for other kinds).
    """

    path: Path
    kind: str
    rel: Path | None = None
    files: tuple[Path, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.rel is None:
            object.__setattr__(self, "rel", Path(self.path.name))

    @property
    def output_name(self) -> str:
        return self.rel.name

    @property
    def label(self) -> str:
        """How reports name the item: its path below the common root."""
        return self.rel.as_posix()


@dataclass
class Discovery:
    """Items to work on, files skipped with the reason, and the common root outputs mirror."""

    items: list[InputItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    hidden: int = 0
    root: Path | None = None


@dataclass(frozen=True)
class _Header:
    uid: str
    geometry: tuple
    frames: int
    series_number: str
    sop_uid: str = ""


def common_root(paths: list[Path]) -> Path:
    """The deepest folder holding every path (a folder counts as itself, a file as its parent)."""
    folders = [str((p if p.is_dir() else p.parent).resolve()) for p in paths]
    return Path(os.path.commonpath(folders)) if folders else Path.cwd()


def discover(paths: list[str | Path]) -> Discovery:
    """Expand command-line paths into work items; see the module docstring for the rules."""
    paths = [Path(p) for p in paths]
    existing = [p for p in paths if p.exists()]
    root = common_root(existing)
    found = Discovery(items=[], root=root)
    dicom: dict[Path, _Header] = {}
    seen: set[Path] = set()
    for p in paths:
        if not p.exists():
            found.items.append(InputItem(p, "invalid", Path(p.name), reason="does not exist: check the path"))
        elif p.is_dir():
            for f in _walk(p, found):
                _classify(f, root, found, dicom, seen, explicit=False)
        else:
            _classify(p, root, found, dicom, seen, explicit=True)
    found.items += _series_items(_drop_duplicates(dicom, root, found), root)
    found.items = _separate_nested(found.items)
    found.items.sort(key=lambda it: it.label)
    return found


def _walk(folder: Path, found: Discovery) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        hidden = [d for d in dirnames if d.startswith(".")]
        found.hidden += len(hidden)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                found.hidden += 1
            else:
                files.append(Path(dirpath) / name)
    return files


def _rel(path: Path, root: Path) -> Path:
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return Path(path.name)
    return rel if rel.parts else Path(root.name or "root")


def _classify(f: Path, root: Path, found: Discovery, dicom: dict, seen: set, *, explicit: bool) -> None:
    """Put one file into the items, the DICOM headers to group, or the skipped list."""
    from medir.io import format_of

    key = f.resolve()
    if key in seen:
        return
    seen.add(key)
    rel = _rel(f, root)
    try:
        size = f.stat().st_size
    except OSError as err:  # a broken link, a file removed meanwhile, no permission
        _unusable(f, rel, f"cannot be read ({err.strerror or type(err).__name__})", found, explicit=explicit)
        return
    if size == 0:
        found.items.append(InputItem(f, "invalid", rel, reason="is an empty file (0 bytes): check the export"))
        return
    if f.name.upper() == "DICOMDIR":
        listed, missing = dicomdir_files(f)
        found.skipped += [(_rel(m, root).as_posix(), "listed in the DICOMDIR but missing") for m in missing]
        for g in listed:
            _classify(g, root, found, dicom, seen, explicit=False)
        return
    kind = format_of(f)
    if kind is None and not explicit:
        kind = "dicom" if _has_dicom_header(f) else None  # DICOMDIR media often have no .dcm suffix
    if kind is None:
        _unusable(f, rel, "is not a format medir reads (DICOM, NIfTI, PNG/TIFF, NPY/NPZ)", found, explicit=explicit)
        return
    if kind != "dicom":
        found.items.append(InputItem(f, kind, rel))
        return
    header = _read_header(f)
    if isinstance(header, str):
        if header.startswith("holds no image") and not explicit:
            found.skipped.append((rel.as_posix(), header))
        else:
            found.items.append(InputItem(f, "invalid", rel, reason=header))
        return
    dicom[f] = header


def _unusable(f: Path, rel: Path, reason: str, found: Discovery, *, explicit: bool) -> None:
    """A file given by name fails (the user asked for it); one found in a folder is listed as skipped."""
    if explicit:
        found.items.append(InputItem(f, "invalid", rel, reason=reason))
    else:
        found.skipped.append((rel.as_posix(), reason))


def _has_dicom_header(f: Path) -> bool:
    """Files without the 128-byte preamble that still parse as DICOM (old media, raw datasets)."""
    try:
        import pydicom

        ds = pydicom.dcmread(str(f), stop_before_pixels=True, force=True, specific_tags=["SOPClassUID", "Rows"])
        return "Rows" in ds or "SOPClassUID" in ds
    except Exception:
        return False


def _read_header(f: Path) -> _Header | str:
    """The grouping fields of a DICOM file, or the reason it cannot be used."""
    import pydicom

    try:
        try:
            ds = pydicom.dcmread(str(f), defer_size=1024)
        except pydicom.errors.InvalidDicomError:  # no preamble: legacy files without a file meta header
            ds = pydicom.dcmread(str(f), defer_size=1024, force=True)
            if "Rows" not in ds and "SOPClassUID" not in ds:
                raise
        sop_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "") or ds.get("SOPClassUID", ""))
        if sop_class == DICOMDIR_CLASS:
            return "holds no image (a DICOMDIR index)"
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            return "holds no image (a DICOM without pixel data: report, presentation state, ...)"
        geometry = (
            int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), int(ds.get("SamplesPerPixel", 1) or 1),
            tuple(round(float(v), 3) for v in (ds.get("ImageOrientationPatient") or [])),
            tuple(round(float(v), 4) for v in (ds.get("PixelSpacing") or [])),
        )
        return _Header(str(ds.get("SeriesInstanceUID", "") or "").strip(), geometry,
                       int(ds.get("NumberOfFrames", 1) or 1), str(ds.get("SeriesNumber", "") or ""),
                       str(ds.get("SOPInstanceUID", "") or "").strip())
    except Exception as err:  # pydicom raises many types for garbage
        return f"is not a readable DICOM file ({type(err).__name__}): check the file or re-export it"


def dicomdir_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(files a DICOMDIR lists that exist, those missing); file IDs are relative to its folder."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        records = list(ds.get("DirectoryRecordSequence", []))
    except Exception:
        return [], []
    listed, missing = [], []
    for rec in records:
        fid = rec.get("ReferencedFileID")
        if not fid:
            continue
        parts = [fid] if isinstance(fid, str) else list(fid)
        target = _find_case_insensitive(path.parent, [str(p) for p in parts])
        (listed if target else missing).append(target or path.parent.joinpath(*map(str, parts)))
    return listed, missing


def _find_case_insensitive(base: Path, parts: list[str]) -> Path | None:
    """ISO 9660 media list upper-case IDs; the copied files are often lower-case."""
    current = base
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        if not current.is_dir():
            return None
        match = [c for c in current.iterdir() if c.name.upper() == part.upper()]
        if not match:
            return None
        current = match[0]
    return current if current.is_file() else None


def _drop_duplicates(dicom: dict[Path, _Header], root: Path, found: Discovery) -> dict[Path, _Header]:
    """The same image (SOP Instance UID) found twice, e.g. exported into two folders, is read once."""
    first: dict[str, Path] = {}
    kept = {}
    for f in sorted(dicom):
        uid = dicom[f].sop_uid
        if uid and uid in first:
            found.skipped.append((_rel(f, root).as_posix(), f"the same image as {_rel(first[uid], root).as_posix()}"))
            continue
        first.setdefault(uid, f)
        kept[f] = dicom[f]
    return kept


def _series_items(dicom: dict[Path, _Header], root: Path) -> list[InputItem]:
    """Group DICOM files by series UID (or folder when empty), then by geometry; multi-frame files alone."""
    groups: dict[tuple, list[Path]] = defaultdict(list)
    singles = []
    for f, h in dicom.items():
        if h.frames > 1:
            singles.append(InputItem(f, "dicom", _rel(f, root)))
        else:
            groups[(h.uid or f"folder:{f.parent.resolve()}", h.geometry)].append(f)
    by_folder: dict[Path, list[tuple]] = defaultdict(list)
    for key, files in groups.items():
        by_folder[Path(os.path.commonpath([str(f.resolve().parent) for f in files]))].append(key)
    items = []
    for folder, keys in by_folder.items():
        for key in keys:
            files = sorted(groups[key])
            if len(files) == 1:
                items.append(InputItem(files[0], "dicom", _rel(files[0], root)))
                continue
            rel = _rel(folder, root)
            if len(keys) > 1:  # several series in one folder: one sub-folder each (in the root: no root name)
                label = _series_label(key, dicom[files[0]])
                rel = Path(label) if folder == root else rel / label
            items.append(InputItem(folder, "series", rel, files=tuple(files)))
    return singles + items


def _series_label(key: tuple, header: _Header) -> str:
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:8]
    return f"series{header.series_number}_{digest}" if header.series_number else f"series_{digest}"


def _separate_nested(items: list[InputItem]) -> list[InputItem]:
    """A series whose output folder would hold another item's output gets a sub-folder of its own."""
    rels = {it.rel for it in items}
    out = []
    for it in items:
        if it.kind == "series" and any(r != it.rel and it.rel in r.parents for r in rels):
            it = InputItem(it.path, it.kind, it.rel / "series", it.files, it.reason)
        out.append(it)
    return out
