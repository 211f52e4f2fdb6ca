"""On-disk cache of partitions, so training does not recompute them every epoch.

Key = SHA-256 of (image pixels, shape, dtype, modality) and of the segmenter's ``settings()``
string (which names the method, every parameter and, for learned models, the weight files).
Entries are ``<root>/<settings-hash[:16]>/<image-hash[:2]>/<image-hash>.npz`` holding ``labels``
(int32) and optionally ``confidence``, written atomically, so parallel workers never read half a file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medir.engine.atomic import atomic_path
from medir.priors.base import Partition, Segmenter, content_hash


class CachedSegmenter:
    """Wraps a segmenter; same call, but results are read from / written to ``root``.

    ``hits`` and ``misses`` count lookups (useful to check that epoch 2 recomputes nothing).
    """

    def __init__(self, segmenter: Segmenter, root: str | Path):
        self.segmenter = segmenter
        self.root = Path(root)
        self.name = segmenter.name
        self.hits = 0
        self.misses = 0
        settings = segmenter.settings()
        self._folder = self.root / hashlib.sha256(settings.encode()).hexdigest()[:16]

    def settings(self) -> str:
        return self.segmenter.settings()

    def path_for(self, image: np.ndarray, *, modality: str = "OT") -> Path:
        key = content_hash(np.asarray(image), modality=modality)
        return self._folder / key[:2] / f"{key}.npz"

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        path = self.path_for(image, modality=modality)
        cached = _read(path)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        part = self.segmenter(image, modality=modality)
        _write(path, part, settings=self.segmenter.settings())
        return part


def _read(path: Path) -> Partition | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            conf = data["confidence"] if "confidence" in data.files else None
            return Partition(data["labels"], conf)
    except (OSError, ValueError, KeyError):  # a corrupt entry is recomputed, never trusted
        return None


def _write(path: Path, part: Partition, *, settings: str) -> None:
    arrays = {"labels": part.labels, "settings": np.array(settings)}
    if part.confidence is not None:
        arrays["confidence"] = part.confidence
    with atomic_path(path, force=True) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
