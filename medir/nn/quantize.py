"""Residual vector quantisation (RQ-VAE, Lee et al. 2022) with one codebook shared by all depths.

For a latent vector ``z`` and a codebook ``Z = {z_m}`` (K x C), depth ``d`` quantises the residual left by the
depths before it (equations 1-2 of the DiffCode paper):

    R^(0) = z,   f^(d) = argmin_m ||R^(d) - z_m||^2,   R^(d+1) = R^(d) - z_f^(d),   q = sum_d z_f^(d).

Training loss (equation 3, VQ-VAE): ``||sg[z] - q||^2`` moves the codes (codebook loss), ``beta ||z - sg[q]||^2``
the encoder (commitment, beta = 0.25); the decoder sees ``z + sg[q - z]`` (straight-through gradient).

Dead codes: each code keeps an exponential moving average of how often it is picked; in training, codes whose
average falls below ``dead_threshold`` (a fraction of the uniform rate 1/K) are re-initialised to residual vectors
of the current batch (the restart of Dhariwal et al. 2020 / Zeghidour et al. 2021). The nearest-code search runs in
chunks so that a large batch never materialises all N x K distances at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def nearest_code(x: torch.Tensor, codebook: torch.Tensor, *, chunk: int = 8192) -> torch.Tensor:
    """Index of the nearest code (squared L2) for each row of ``x`` (N, C) in ``codebook`` (K, C) -> (N,) int64.

    ``||x - z||^2 = ||x||^2 - 2 x.z + ||z||^2``; ``||x||^2`` is the same for every code and is dropped.
    """
    norms = (codebook * codebook).sum(dim=1)
    out = []
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        out.append(torch.addmm(norms[None], part, codebook.t(), alpha=-2.0).argmin(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def code_usage(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Perplexity ``exp(H(p))`` of the code histogram and the fraction of codes used at least once.

    Perplexity is K when all K codes are used equally and 1 when one code takes everything.
    """
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"perplexity": float(entropy.exp()), "used": float((counts > 0).double().mean())}


class ResidualVQ(nn.Module):
    """Residual quantiser of depth ``depth`` over one codebook of ``codebook_size`` codes of dimension ``dim``.

    ``forward(z)`` with ``z`` (B, dim, H, W) returns ``(q, codes, losses)``: the straight-through quantised latent
    (B, dim, H, W), the code indices (B, depth, H, W) and ``{"codebook", "commitment"}`` (commitment already times
    ``beta``). Dead-code restarts run in training mode, while the codebook trains.
    """

    def __init__(self, dim: int, codebook_size: int, depth: int, *, beta: float = 0.25, decay: float = 0.99,
                 dead_threshold: float = 0.03):
        super().__init__()
        if dim < 1 or codebook_size < 2 or depth < 1:
            raise ValueError(f"ResidualVQ needs dim >= 1, codebook_size >= 2, depth >= 1 (got {dim}, "
                             f"{codebook_size}, {depth})")
        self.dim, self.codebook_size, self.depth = dim, codebook_size, depth
        self.beta, self.decay, self.dead_threshold = beta, decay, dead_threshold
        # Small codes: the deeper residuals are small, and a restart gives the codes their real scale.
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) / math.sqrt(dim))
        # Usage starts at zero: every code is "dead" before the first training batch, which initialises the unused
        # ones from its residual vectors (a data-dependent start; random codes far from the latents never win).
        self.register_buffer("usage", torch.zeros(codebook_size))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``z`` (N, dim) -> (quantised sum (N, dim), codes (N, depth), residual inputs (depth, N, dim))."""
        residual, total = z, torch.zeros_like(z)
        codes, inputs = [], []
        for _ in range(self.depth):
            idx = nearest_code(residual.detach(), self.codebook.detach())
            chosen = self.codebook[idx]
            inputs.append(residual.detach())
            codes.append(idx)
            total = total + chosen
            residual = residual - chosen.detach()
        return total, torch.stack(codes, dim=1), torch.stack(inputs)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        b, c, h, w = z.shape
        if c != self.dim:
            raise ValueError(f"ResidualVQ of dim {self.dim} got a latent with {c} channels")
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        q, codes, inputs = self.quantize(flat)
        losses = {"codebook": F.mse_loss(q, flat.detach()), "commitment": self.beta * F.mse_loss(flat, q.detach())}
        if self.training and self.codebook.requires_grad and not z.is_meta:  # frozen codebooks stay as they are
            self._track_and_restart(codes, inputs)
        q = flat + (q - flat).detach()
        q = q.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return q, codes.reshape(b, h, w, self.depth).permute(0, 3, 1, 2), losses

    @torch.no_grad()
    def _track_and_restart(self, codes: torch.Tensor, inputs: torch.Tensor) -> None:
        rate = torch.bincount(codes.reshape(-1), minlength=self.codebook_size).float() / codes.numel()
        self.usage.mul_(self.decay).add_(rate, alpha=1 - self.decay)
        dead = torch.nonzero(self.usage < self.dead_threshold / self.codebook_size).flatten()
        if dead.numel() == 0:
            return
        pool = inputs.reshape(-1, self.dim)
        pick = torch.randint(pool.shape[0], (dead.numel(),), device=pool.device)
        self.codebook.data[dead] = pool[pick]
        self.usage[dead] = 1.0 / self.codebook_size


class CodebookBank(nn.Module):
    """One :class:`ResidualVQ` per task (``codebooks = number of tasks``) or one shared by all (``codebooks = 1``).

    ``forward(z, task)``: ``z`` (B, dim, H, W), ``task`` (B,) int64; each sample is quantised by its task's
    codebook (task modulo ``codebooks``, so a shared codebook serves every task). Losses are the means over the
    codebooks used, weighted by their share of the batch.
    """

    def __init__(self, codebooks: int, dim: int, codebook_size: int, depth: int, *, beta: float = 0.25,
                 dead_threshold: float = 0.03):
        super().__init__()
        self.books = nn.ModuleList(ResidualVQ(dim, codebook_size, depth, beta=beta, dead_threshold=dead_threshold)
                                   for _ in range(codebooks))

    def forward(self, z: torch.Tensor, task: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        if z.is_meta:  # shape-only runs (MAC counts): the cost of one codebook, whichever it is
            return self.books[0](z)
        q = torch.empty_like(z)
        codes = torch.empty(z.shape[0], self.books[0].depth, *z.shape[-2:], dtype=torch.long, device=z.device)
        losses = {"codebook": z.new_zeros(()), "commitment": z.new_zeros(())}
        book_of = task.long() % len(self.books)
        for k, book in enumerate(self.books):
            rows = torch.nonzero(book_of == k).flatten()
            if rows.numel() == 0:
                continue
            qk, ck, lk = book(z[rows])
            q, codes = q.index_copy(0, rows, qk), codes.index_copy(0, rows, ck)
            share = rows.numel() / z.shape[0]
            losses = {name: losses[name] + share * lk[name] for name in losses}
        return q, codes, losses
