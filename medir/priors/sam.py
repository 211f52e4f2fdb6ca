"""SAM, SlimSAM and MedSAM segmenters through transformers' ``SamModel`` (optional extra ``medir[sam]``).

Weights are never downloaded: a model is a local directory written by ``save_pretrained``
(``config.json`` + ``model.safetensors``), or a file inside one. Preprocessing is done here in
numpy/torch because transformers' default SAM image processor needs torchvision.

- :class:`SamSegmenter`: SAM's automatic mask generator (Kirillov et al. 2023, section 3 and appendix A):
  a grid of point prompts, 3 masks per point, filtering by predicted IoU and stability score,
  box non-maximum suppression; masks become a partition the RAT way (:func:`paint_masks`).
- :class:`MedSamSegmenter`: MedSAM (Ma et al. 2024) with a box prompt (whole image by default, or the
  body's bounding box derived from the image, :func:`body_box`).

The image embedding (the ViT encoder, >95 % of the cost) is computed once per image and reused
for every prompt batch and every Monte-Carlo sample (:mod:`medir.priors.reliability`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medir.errors import ModelFileError, missing_extra
from medir.priors.base import Partition, check_image, content_hash, paint_masks, to_uint8_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _sam_model_class():
    try:
        from transformers import SamModel
    except ImportError as err:
        raise missing_extra("transformers", "sam") from err
    return SamModel


def _model_dir(path: str | Path) -> Path:
    """The directory holding a SAM model given as a directory or a file inside one; one-line errors."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelFileError(f"SAM checkpoint {path} does not exist: give a folder saved with save_pretrained")
    if p.is_file():
        if p.suffix in (".pth", ".pt"):
            raise ModelFileError(
                f"{path} is an original segment-anything checkpoint: convert it to a transformers folder "
                "(transformers' convert_sam_to_hf script) and pass that folder"
            )
        p = p.parent
    config = p / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type != "sam":
        raise ModelFileError(f"{path} is not a SAM model: expected a folder with a config.json of model_type 'sam'")
    return p


def load_sam(path: str | Path):
    """Load a frozen ``transformers.SamModel`` (SAM, SlimSAM, MedSAM) in eval mode from a local path."""
    model_class = _sam_model_class()
    folder = _model_dir(path)
    try:
        model = model_class.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises many types for a broken folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFileError(f"{path}: cannot load the SAM model ({first})") from err
    model.eval().requires_grad_(False)
    return model


def model_fingerprint(path: str | Path) -> str:
    """Resolved folder plus size and mtime of its weight files: part of every cache key."""
    folder = _model_dir(path).resolve()
    parts = [str(folder)]
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(parts)


def sam_pixels(rgb: np.ndarray, *, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """SAM preprocessing: ``(H, W, 3)`` uint8 -> ``(1, 3, size, size)`` and the resized ``(h, w)``.

    Longest side resized to ``size`` (bilinear, antialiased), ImageNet mean/std normalisation,
    zero padding at the bottom and right (as segment-anything's ``ResizeLongestSide`` + ``preprocess``).
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
    x = (x - mean) / std
    return F.pad(x, (0, size - new_w, 0, size - new_h)), (new_h, new_w)


def medsam_pixels(rgb: np.ndarray, *, size: int) -> torch.Tensor:
    """MedSAM preprocessing: ``(H, W, 3)`` uint8 -> ``(1, 3, size, size)`` in ``[0, 1]``.

    Resized to ``size x size`` (bicubic, antialiased, aspect ratio not kept), then min-max
    normalised to ``[0, 1]``; no mean/std normalisation (MedSAM's inference code).
    """
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    x = x.clamp(0, 255)
    lo, hi = x.min(), x.max()
    return (x - lo) / torch.clamp(hi - lo, min=1e-8)


def upscale_logits(low: torch.Tensor, *, size: int, valid: tuple[int, int], out: tuple[int, int]) -> torch.Tensor:
    """Low-resolution mask logits ``(N, h, w)`` -> ``(N, *out)``: up to the padded input ``size``,
    crop the ``valid`` (unpadded) part, resize to the original image (transformers' post_process_masks)."""
    x = F.interpolate(low[:, None], size=(size, size), mode="bilinear", align_corners=False)
    x = x[..., : valid[0], : valid[1]]
    return F.interpolate(x, size=out, mode="bilinear", align_corners=False)[:, 0]


def stability_score(logits: torch.Tensor, *, threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at ``threshold + offset`` and ``threshold - offset``: ``(N, H, W)`` -> ``(N,)``."""
    inter = (logits > threshold + offset).flatten(1).sum(1).float()
    union = (logits > threshold - offset).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` bool -> ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in pixels (inclusive); zeros for empty masks."""
    n, h, w = masks.shape
    rows, cols = masks.any(2), masks.any(1)
    ar_h, ar_w = torch.arange(h).expand(n, h), torch.arange(w).expand(n, w)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    boxes = torch.stack([x0, y0, x1, y1], 1).float()
    return torch.where(masks.flatten(1).any(1)[:, None], boxes, torch.zeros_like(boxes))


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, *, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of kept boxes, best score first. ``boxes`` ``(N, 4)`` xyxy."""
    order = torch.argsort(scores, descending=True)
    boxes = boxes[order]
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt + 1).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter)
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= iou[i, i + 1 :] <= iou_threshold
    return order[keep]


def body_box(image: np.ndarray, *, modality: str = "OT", margin: float = 0.05) -> tuple[float, float, float, float]:
    """MedSAM box prompt from the image alone: ``(x0, y0, x1, y1)`` pixels around the body.

    The body = pixels of the windowed image (:func:`medir.priors.base.window_to_unit`) above Otsu's
    threshold; its bounding box grows by ``margin`` x the image side on each side (MedSAM was trained
    with boxes perturbed by 0-20 pixels around the target) and is clipped to the image. An image
    without contrast gives the whole image.
    """
    from skimage.filters import threshold_otsu

    from medir.priors.base import window_to_unit

    unit = window_to_unit(image, modality=modality)
    unit = unit.mean(-1) if unit.ndim == 3 else unit
    if np.ptp(unit) <= 1e-6:  # the window saw no contrast (e.g. one non-zero level): threshold the values
        unit = np.asarray(image, dtype=np.float32)
        unit = unit.mean(-1) if unit.ndim == 3 else unit
    h, w = unit.shape
    if np.ptp(unit) <= 1e-6:
        return 0.0, 0.0, w - 1.0, h - 1.0
    ys, xs = np.nonzero(unit > threshold_otsu(unit))
    dy, dx = margin * h, margin * w
    return (float(max(xs.min() - dx, 0)), float(max(ys.min() - dy, 0)),
            float(min(xs.max() + dx, w - 1)), float(min(ys.max() + dy, h - 1)))


class _SamBase:
    """Shared by SAM and MedSAM: the model, and an embedding cache of the last image."""

    name = "sam"

    def __init__(self, path: str | Path, *, model=None):
        self.path = str(path)
        self.model = model if model is not None else load_sam(path)
        self.image_size = int(self.model.config.vision_config.image_size)
        self._fingerprint = model_fingerprint(path) if model is None else f"in-memory:{id(model)}"
        self._cache: tuple[str, torch.Tensor] | None = None

    def clear_cache(self) -> None:
        self._cache = None

    def _embedding(self, key: str, pixels) -> torch.Tensor:
        """``(1, 256, s, s)`` image embedding, computed once per image (``pixels`` is a thunk)."""
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.model.get_image_embeddings(pixels()))
        return self._cache[1]


class SamSegmenter(_SamBase):
    """SAM / SlimSAM automatic mask generator -> partition (RAT's post-processing).

    ``points_per_side``: the prompt grid is ``points_per_side**2`` points over the image;
    ``pred_iou_thresh``, ``stability_score_thresh`` (offset ``stability_offset`` in logit units),
    ``nms_thresh``: SAM's filters (defaults as in segment-anything); ``min_area``: masks with fewer
    pixels are dropped. Per-region confidence: the predicted IoU of the mask that painted it.
    """

    name = "sam"

    def __init__(
        self,
        path: str | Path,
        *,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_offset: float = 1.0,
        mask_threshold: float = 0.0,
        nms_thresh: float = 0.7,
        min_area: int = 0,
        model=None,
    ):
        super().__init__(path, model=model)
        self.points_per_side = points_per_side
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_offset = stability_offset
        self.mask_threshold = mask_threshold
        self.nms_thresh = nms_thresh
        self.min_area = min_area

    def settings(self) -> str:
        return (
            f"sam:v1:{self._fingerprint}:pps={self.points_per_side}:iou={self.pred_iou_thresh:g}"
            f":stab={self.stability_score_thresh:g}/{self.stability_offset:g}:thr={self.mask_threshold:g}"
            f":nms={self.nms_thresh:g}:min={self.min_area}"
        )

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        image = check_image(image)
        rgb = to_uint8_rgb(image, modality=modality)
        h, w = rgb.shape[:2]
        pixels, valid = sam_pixels(rgb, size=self.image_size)
        emb = self._embedding(content_hash(rgb) + ":sam", lambda: pixels)
        masks, scores = self.generate(emb, valid=valid, out=(h, w))
        return paint_masks(masks.numpy(), scores=scores.numpy())

    def grid_points(self, valid: tuple[int, int], out: tuple[int, int]) -> torch.Tensor:
        """``(P, 2)`` prompt points ``(x, y)`` in the resized input frame: cell centres of an even grid."""
        n = self.points_per_side
        side = (np.arange(n) + 0.5) / n
        xs, ys = np.meshgrid(side * out[1], side * out[0])
        scale = valid[0] / out[0]
        return torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], 1) * scale).float()

    def generate(self, emb: torch.Tensor, *, valid: tuple[int, int], out: tuple[int, int]):
        """All kept masks ``(N, H, W)`` bool and their predicted IoU ``(N,)`` for one embedding."""
        points = self.grid_points(valid, out)
        masks, scores = [], []
        for start in range(0, len(points), self.points_per_batch):
            m, s = self._prompt_batch(emb, points[start : start + self.points_per_batch], valid, out)
            masks.append(m)
            scores.append(s)
        masks, scores = torch.cat(masks), torch.cat(scores)
        if len(masks) == 0:
            return masks, scores
        keep = box_nms(masks_to_boxes(masks), scores, iou_threshold=self.nms_thresh)
        return masks[keep], scores[keep]

    def _prompt_batch(self, emb, points, valid, out):
        """One batch of point prompts -> filtered masks ``(k, H, W)`` bool and scores ``(k,)``."""
        with torch.no_grad():
            res = self.model(image_embeddings=emb, input_points=points[None, :, None, :],
                             input_labels=torch.ones(1, len(points), 1, dtype=torch.long), multimask_output=True)
        low = res.pred_masks[0].flatten(0, 1)  # (P*3, h, w) logits
        iou = res.iou_scores[0].flatten()
        keep = iou > self.pred_iou_thresh
        low, iou = low[keep], iou[keep]
        if len(low) == 0:
            return torch.zeros(0, *out, dtype=torch.bool), iou
        kept_masks, kept_iou = [], []
        for start in range(0, len(low), 16):  # bounded memory: 16 full-size logit maps at a time
            logits = upscale_logits(low[start : start + 16], size=self.image_size, valid=valid, out=out)
            stab = stability_score(logits, threshold=self.mask_threshold, offset=self.stability_offset)
            masks = logits > self.mask_threshold
            keep = (stab >= self.stability_score_thresh) & (masks.flatten(1).sum(1) > max(self.min_area, 0))
            kept_masks.append(masks[keep])
            kept_iou.append(iou[start : start + 16][keep])
        return torch.cat(kept_masks), torch.cat(kept_iou)


class MedSamSegmenter(_SamBase):
    """MedSAM with box prompts: ``boxes`` ``[(x0, y0, x1, y1), ...]`` in image pixels, None or ``"image"`` for
    the whole image, ``"body"`` for the box :func:`body_box` derives from each image.

    Output per box: sigmoid of the low-resolution logits, bilinear to ``(H, W)``, threshold 0.5;
    several boxes are painted largest first. Label 0 = outside every mask. Per-region confidence:
    mean foreground probability in the region (mean background probability for label 0).
    """

    name = "medsam"

    def __init__(self, path: str | Path, *, boxes: list[tuple[float, float, float, float]] | str | None = None,
                 threshold: float = 0.5, model=None):
        super().__init__(path, model=model)
        if isinstance(boxes, str) and boxes not in ("image", "body"):
            raise ValueError(f"MedSAM boxes must be a list of (x0, y0, x1, y1), 'image' or 'body', not {boxes!r}")
        self.boxes = boxes if isinstance(boxes, str) else [tuple(float(v) for v in b) for b in boxes] if boxes else None
        self.threshold = threshold

    def settings(self) -> str:
        return f"medsam:v1:{self._fingerprint}:boxes={self.boxes}:thr={self.threshold:g}"

    def probabilities(self, image: np.ndarray, *, modality: str = "OT") -> torch.Tensor:
        """Foreground probability per box, ``(n_boxes, H, W)`` in ``[0, 1]``."""
        image = check_image(image)
        rgb = to_uint8_rgb(image, modality=modality)
        h, w = rgb.shape[:2]
        emb = self._embedding(content_hash(rgb) + ":medsam", lambda: medsam_pixels(rgb, size=self.image_size))
        if self.boxes == "body":
            boxes = [body_box(image, modality=modality)]
        elif isinstance(self.boxes, list):
            boxes = self.boxes
        else:
            boxes = [(0.0, 0.0, w - 1.0, h - 1.0)]
        boxes = torch.tensor(boxes, dtype=torch.float32)
        boxes = boxes / torch.tensor([w, h, w, h]) * self.image_size
        with torch.no_grad():
            res = self.model(image_embeddings=emb, input_boxes=boxes[None], multimask_output=False)
        prob = torch.sigmoid(res.pred_masks[0, :, 0])  # (n_boxes, h', w')
        return F.interpolate(prob[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]

    def __call__(self, image: np.ndarray, *, modality: str = "OT") -> Partition:
        prob = self.probabilities(image, modality=modality)
        part = paint_masks((prob > self.threshold).numpy())
        fg = prob.max(0).values.numpy()
        conf = np.array([
            (1 - fg)[part.labels == k].mean() if k == 0 else fg[part.labels == k].mean() if (part.labels == k).any()
            else np.nan for k in range(max(part.num_labels, 1))
        ], dtype=np.float32)
        return Partition(part.labels, conf)
