"""Semantic priors: segmenters that turn an image into a label map that tiles it.

Protocol (:class:`medir.priors.base.Segmenter`): ``segmenter(image, modality=...) -> Partition``
with ``image`` one ``(H, W)`` (or ``(H, W, C)``) slice in physical units and ``Partition.labels``
an ``(H, W)`` int32 map, 0 = background / uncovered.

Segmenters are named by a spec string (``medir segment --segmenter``, method configs):

- ``classical``: SLIC superpixels split by multi-Otsu classes; no weights; the default;
- ``sam:PATH``, ``slimsam:PATH``: SAM's automatic mask generator, model folder saved by transformers;
- ``medsam:PATH``: MedSAM with a whole-image box prompt;
- ``head:PATH``: a fine-tuned head (:mod:`medir.priors.head`) saved by ``HeadSegmenter.save``;
- ``oracle``: ground truth registered by the simulation (:mod:`medir.priors.oracle`).
"""

from __future__ import annotations

from collections.abc import Callable

from medir.errors import ConfigError
from medir.priors.base import Partition, Segmenter, check_tiling, paint_masks, relabel, slice_partitions
from medir.priors.classical import ClassicalSegmenter


def _classical(path: str | None) -> Segmenter:
    return ClassicalSegmenter()


def _sam(path: str | None) -> Segmenter:
    from medir.priors.sam import SamSegmenter

    return SamSegmenter(path)


def _medsam(path: str | None) -> Segmenter:
    from medir.priors.sam import MedSamSegmenter

    return MedSamSegmenter(path)


def _head(path: str | None) -> Segmenter:
    from medir.priors.head import load_head

    return load_head(path)


def _oracle(path: str | None) -> Segmenter:
    from medir.priors.oracle import OracleSegmenter

    return OracleSegmenter()


# name -> (factory taking the PATH part of the spec, whether a PATH is required)
SEGMENTERS: dict[str, tuple[Callable[[str | None], Segmenter], bool]] = {
    "classical": (_classical, False),
    "sam": (_sam, True),
    "slimsam": (_sam, True),
    "medsam": (_medsam, True),
    "head": (_head, True),
    "oracle": (_oracle, False),
}

DEFAULT_SEGMENTER = "classical"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``'sam:/models/sam-vit-b'`` -> ``('sam', '/models/sam-vit-b')``; ``'classical'`` -> ``('classical', None)``."""
    name, sep, path = str(spec).strip().partition(":")
    name = name.lower()
    if name not in SEGMENTERS:
        raise ConfigError(f"unknown segmenter '{spec}': use one of classical, sam:PATH, slimsam:PATH, "
                          "medsam:PATH, head:PATH, oracle")
    needs_path = SEGMENTERS[name][1]
    if needs_path and not path:
        raise ConfigError(f"segmenter '{name}' needs a model path: write {name}:PATH")
    if not needs_path and path:
        raise ConfigError(f"segmenter '{name}' takes no path (got '{spec}')")
    return name, (path or None)


def get_segmenter(spec: str = DEFAULT_SEGMENTER) -> Segmenter:
    """Build the segmenter a spec string names (see the module docstring); errors are one line."""
    name, path = parse_spec(spec)
    return SEGMENTERS[name][0](path)


__all__ = [
    "DEFAULT_SEGMENTER", "SEGMENTERS", "ClassicalSegmenter", "Partition", "Segmenter", "check_tiling",
    "get_segmenter", "paint_masks", "parse_spec", "relabel", "slice_partitions",
]
