"""SPD-VFM's losses: reconstruction (equation 13), distillation (SKD, equation 7), semantic consistency
(SCM, equations 8-11). Functions on tensors; the method (:mod:`medir.methods.spdvfm.method`) weighs them
as ``L = L_recon + lambda1 L_SKD + lambda2 L_SCM`` (equation 12).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from medir.losses import psnr_loss
from medir.nn.mask_pooling import region_means, resize_labels

ScmMode = Literal["pooled", "literal"]

__all__ = ["psnr_loss", "skd_loss", "scm_loss", "region_cosines"]


def skd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Equation 7: the Huber / smooth-L1 loss with threshold 1 between ``I1`` and ``I2`` (any equal shapes), mean."""
    return F.smooth_l1_loss(student, teacher, beta=1.0)


def region_cosines(features: torch.Tensor, labels: torch.Tensor, *, mode: ScmMode = "pooled") -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise cosine similarities between regions (equation 10) and which pairs count.

    ``features (B, C, H, W)``; ``labels (B, h, w)`` resized to the feature size by nearest neighbour.
    Returns ``c (B, L, L)`` and a boolean ``pairs (B, L, L)`` (both regions present, ``i != j``).

    ``literal``: ``h_k = vec(H * S_k)`` (equation 9) with ``S_k`` the binary mask of label ``k``. For masks
    that tile the image (medir's segmenters) two different ``h_k`` never share a non-zero entry, so every
    ``c_ij`` is 0 and the loss is 0: kept to show this. ``pooled`` (default): ``h_k`` is the mean feature of
    region ``k``, so ``c_ij`` compares what regions look like to the network, the relation the paper describes.
    """
    b, c, h, w = features.shape
    labels = resize_labels(labels, (h, w))
    if mode == "pooled":
        means, counts = region_means(features, labels)
        unit = F.normalize(means, dim=-1, eps=1e-8)
        cos = unit @ unit.transpose(1, 2)
    elif mode == "literal":
        per_image = int(labels.max()) + 1
        masks = F.one_hot(labels.long(), per_image).permute(0, 3, 1, 2).flatten(2).to(features)   # (B, L, HW)
        energy = features.pow(2).sum(1).flatten(1)                                                # (B, HW)
        gram = torch.einsum("bkp,bjp,bp->bkj", masks, masks, energy)                             # <h_k, h_j>
        norms = gram.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
        cos = gram / (norms[:, :, None] * norms[:, None, :]).clamp_min(1e-8)
        counts = masks.sum(-1)
    else:
        raise ValueError(f"unknown SCM mode '{mode}': use pooled or literal")
    present = counts > 0
    eye = torch.eye(cos.shape[-1], dtype=torch.bool, device=cos.device)
    return cos, present[:, :, None] & present[:, None, :] & ~eye


def scm_loss(features_a: torch.Tensor, features_b: torch.Tensor, labels: torch.Tensor, *,
             mode: ScmMode = "pooled") -> torch.Tensor:
    """Equation 11: ``mean over i != j of |c_ij^A - c_ij^B|`` per image (its ``K (K - 1)`` ordered pairs of
    present regions), averaged over the images that have at least two regions (0 if none has)."""
    ca, pairs = region_cosines(features_a, labels, mode=mode)
    cb, _ = region_cosines(features_b, labels, mode=mode)
    diff = (ca - cb).abs() * pairs
    n = pairs.flatten(1).sum(1)
    per_image = diff.flatten(1).sum(1) / n.clamp_min(1)
    has_pairs = n > 0
    if not bool(has_pairs.any()):
        return features_a.sum() * 0.0
    return per_image[has_pairs].mean()
