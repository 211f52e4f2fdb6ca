"""Task-aware global routing (AMIR, Yang et al. 2024; DiffCode section 2.4): a task classifier, one gating vector
per image shared by every routed module, top-k experts and a load-balancing loss.

A routed module (TARM, equation 8 of the DiffCode paper) computes

    f_out = sum_{e in S} w_e A_e(f_in),   w_e = exp(V_e) / sum_{s in S} exp(V_s),   S = TopK(V, k).

This is the linear weighted sum of the selected experts' outputs. AMIR's released code instead combines experts as
``log(sum_e w_e exp(A_e(f_in)))``, inherited from a mixture-of-experts package whose log-space combine was meant
for log-probabilities; applied to features it is neither the paper's equation nor scale-equivariant (a large
feature dominates through ``exp``, and negative features are squashed), so medir uses the linear sum.

Load balance (Shazeer et al. 2017): ``cv^2(importance) + cv^2(load)`` with ``importance_e = sum_b softmax(V_b)_e``
(differentiable) and ``load_e`` = how many images picked expert ``e`` (a count: it carries no gradient here,
because the gate is not noisy; only the importance term trains the gate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation ``var(x) / mean(x)^2`` of a 1-D tensor (0 for one element)."""
    if x.numel() <= 1:
        return x.new_zeros(())
    x = x.float()
    return x.var(unbiased=False) / (x.mean() ** 2 + 1e-10)


def top_k_weights(v: torch.Tensor, k: int) -> torch.Tensor:
    """Sparse expert weights (B, E) from gating logits ``v`` (B, E): softmax over the top ``k``, zero elsewhere."""
    if not 1 <= k <= v.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the number of experts ({v.shape[1]})")
    top, idx = v.topk(k, dim=1)
    return torch.zeros_like(v).scatter(1, idx, top.softmax(dim=1))


def load_balance_loss(v: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``cv^2(importance) + cv^2(load)`` for gating logits ``v`` (B, E) and the sparse weights they chose."""
    importance = v.softmax(dim=1).sum(dim=0)
    load = (weights > 0).float().sum(dim=0)
    return cv_squared(importance) + cv_squared(load)


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-image ``(x - mean) / std`` of (B, C, H, W): the same for any positive affine intensity convention."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + 1e-6)


class TaskClassifier(nn.Module):
    """Task logits (B, tasks) of a low-quality image (B, C, H, W) in physical units, any size: strided convs, then
    the mean and standard deviation of the features over the image.

    Inputs: the standardised image, its local detail (image minus a 3x3 blur: noise in CT and PET, missing high
    frequencies in MRI super-resolution) and the signed log level ``sign(x) log(1 + |x|) / 8`` (air at -1000 HU,
    SUV of a few units, MR magnitudes in the thousands: the units carry the modality, as a DICOM header would),
    whose mean, minimum and maximum also go to the head directly. The logits are ``gain`` x the linear head: with
    Adam each weight moves about one learning rate per step, and the gain lets a short CPU run reach confident
    margins (at lr 2e-4 and a few hundred steps, gain 1 left held-out accuracy at chance for some seeds).
    """

    def __init__(self, in_channels: int, tasks: int, *, width: int = 16, levels: int = 3, gain: float = 10.0):
        super().__init__()
        self.gain = gain
        layers: list[nn.Module] = []
        chan = 3 * in_channels
        for i in range(levels):
            out = width * 2**i
            layers += [nn.Conv2d(chan, out, 3, stride=2, padding=1), nn.GELU()]
            chan = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * chan + 3 * in_channels, tasks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = standardize(x)
        detail = s - F.avg_pool2d(F.pad(s, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        level = torch.sign(x) * torch.log1p(x.abs()) / 8.0
        f = self.features(torch.cat([s, detail, level], dim=1))
        stats = [level.mean(dim=(2, 3)), level.amin(dim=(2, 3)), level.amax(dim=(2, 3))]
        pooled = torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3)), *stats], dim=1)
        return self.gain * self.head(pooled)


class TaskGate(nn.Module):
    """The global gating vector V (B, experts) from task probabilities (B, tasks): a learnt task-to-expert table.

    In training the probabilities are the one-hot task label (the label trains the router); at inference they are
    the classifier's softmax. Initialised so that task ``t`` prefers expert ``t mod experts``.
    """

    def __init__(self, tasks: int, experts: int, *, top_k: int = 1):
        super().__init__()
        self.top_k = top_k
        table = torch.zeros(tasks, experts)
        table[torch.arange(tasks), torch.arange(tasks) % experts] = 1.0
        self.table = nn.Parameter(table)

    def forward(self, task_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gating logits V (B, E), sparse expert weights (B, E))."""
        v = task_probs @ self.table
        return v, top_k_weights(v, self.top_k)


class MixtureOfExperts(nn.Module):
    """A routed module (TARM): ``sum_e w_e A_e(x)`` over the experts an image selected (equation 8).

    ``forward(x, weights)``: ``x`` (B, C, H, W), ``weights`` (B, E) sparse; each expert runs only on the images that
    selected it, so with k = 1 the cost is one expert per image.
    """

    def __init__(self, experts: list[nn.Module]):
        super().__init__()
        self.experts = nn.ModuleList(experts)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (x.shape[0], len(self.experts)):
            raise ValueError(f"weights {tuple(weights.shape)} must be (batch, {len(self.experts)} experts)")
        if x.is_meta:  # shape-only runs (MAC counts) cannot route: count one expert per image (k = 1)
            return self.experts[0](x)
        out = None
        for e, expert in enumerate(self.experts):
            rows = torch.nonzero(weights[:, e] > 0).flatten()
            if rows.numel() == 0:
                continue
            y = expert(x[rows]) * weights[rows, e].view(-1, 1, 1, 1).to(x.dtype)
            if out is None:
                out = torch.zeros(x.shape[0], *y.shape[1:], dtype=y.dtype, device=y.device)
            out = out.index_add(0, rows, y)
        return out if out is not None else torch.zeros_like(x)
