"""The two-stage SPD-VFM method (section III): a teacher with priors, then a student that runs alone.

Stage 1 (``teacher_steps`` optimiser steps): the teacher f^IR2 learns ``hq`` from ``lq`` and the label map
of ``hq`` (priors from the high-quality image, section III-C) with the PSNR loss. Stage 2 (the remaining
steps): teacher, segmenter and feature network are frozen; the student f^IR1 learns with equation 12,

    L = -PSNR(I1, hq) + lambda1 SKD(I1, I2) + lambda2 SCM(phi(I1), phi(I2), S),
    I1 = f_IR1(lq),   I2 = f_IR2(Concat[I1, M(E(I1), S)])          (equations 5, 6; ``teacher_input``)

``I2`` and ``phi(I2)`` are targets (computed without gradients): the student learns to match them, no
gradient flows back through the teacher. Inference runs the student alone (``network``), which the
training loop saves as a plain model file of its backbone.

The stage is a function of the number of optimiser steps taken, counted in a buffer that checkpoints
keep, so ``medir train`` runs both stages from one config and resumes in either. The learning-rate
schedule of the loop spans both stages (one cosine over ``schedule.steps``); to give the student its own
full schedule, train the teacher in one run and pass that run as ``teacher_from`` with ``teacher_steps: 0``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medir.methods.spdvfm.losses import ScmMode, psnr_loss, scm_loss, skd_loss
from medir.methods.spdvfm.prior import PriorTeacher
from medir.methods.supervised import RestorationScore


class SPDVFM(nn.Module):
    """``forward(batch) -> (loss, logs)`` for the current stage; ``network`` is the student.

    batch: ``lq``, ``hq`` ``(B, C, H, W)`` network space, ``offset``/``span`` (B,) to physical units.
    segmenter: a :class:`medir.priors.Segmenter` run on ``hq`` in physical units (frozen; not a submodule).
    features: the frozen SCM feature network ``phi``, or None for the teacher's encoder ``E``.
    accumulate: micro-batches per optimiser step (the loop's ``train.accumulate``).
    """

    def __init__(self, student: nn.Module, teacher: PriorTeacher, *, segmenter, modality: str = "NM",
                 teacher_steps: int = 1000, accumulate: int = 1, lambda_skd: float = 0.01, lambda_scm: float = 100.0,
                 scm_mode: ScmMode = "pooled", features: nn.Module | None = None,
                 teacher_input: Literal["student", "lq"] = "student", score: RestorationScore = RestorationScore()):
        super().__init__()
        if teacher_input not in ("student", "lq"):
            raise ValueError(f"teacher_input '{teacher_input}' is unknown: use student (equation 6) or lq")
        if teacher_steps < 0 or accumulate < 1 or lambda_skd < 0 or lambda_scm < 0:
            raise ValueError("teacher_steps and the lambdas must be >= 0, accumulate >= 1")
        self.network, self.teacher, self.features = student, teacher, features
        self._segmenter = (segmenter,)  # a tuple hides it from nn.Module: never trained, never checkpointed
        self.modality, self.teacher_steps, self.accumulate = modality, teacher_steps, accumulate
        self.lambda_skd, self.lambda_scm, self.scm_mode = lambda_skd, lambda_scm, scm_mode
        self.teacher_input, self.score = teacher_input, score
        self.register_buffer("micro_steps", torch.zeros((), dtype=torch.long))

    @property
    def segmenter(self):
        return self._segmenter[0]

    @property
    def stage(self) -> int:
        """1 while the teacher trains, then 2."""
        return 1 if int(self.micro_steps) // self.accumulate < self.teacher_steps else 2

    @torch.no_grad()
    def labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, H, W)`` int64 label maps of ``hq`` (the priors come from the high-quality image)."""
        from medir.data.datasets import from_network
        from medir.priors.base import batch_labels

        hq = from_network(batch["hq"].float(), batch)
        return batch_labels(self.segmenter, hq, modality=self.modality).to(batch["hq"].device)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        stage = self.stage
        if self.training and torch.is_grad_enabled():
            self.micro_steps += 1
        labels = self.labels(batch)
        return self.teacher_loss(batch, labels) if stage == 1 else self.student_loss(batch, labels)

    def freeze_teacher(self, frozen: bool) -> None:
        """Stage 2 freezes the teacher (and with it the default feature network, its encoder)."""
        for p in self.teacher.parameters():
            p.requires_grad_(not frozen)
        self.teacher.train(self.training and not frozen)
        if self.features is not None:
            self.features.eval()

    def teacher_loss(self, batch, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.freeze_teacher(False)
        loss = psnr_loss(self.teacher(batch["lq"], labels), batch["hq"])
        return loss, {"stage": torch.tensor(1.0), "teacher_psnr_loss": loss.detach()}

    def student_loss(self, batch, labels) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.freeze_teacher(True)
        i1 = self.network(batch["lq"])
        recon = psnr_loss(i1, batch["hq"])
        with torch.no_grad():
            i2 = self.teacher(i1.detach() if self.teacher_input == "student" else batch["lq"], labels)
        loss, logs = recon, {"stage": torch.tensor(2.0), "psnr_loss": recon.detach()}
        if self.lambda_skd > 0:
            skd = skd_loss(i1, i2)
            loss = loss + self.lambda_skd * skd
            logs["skd"] = skd.detach()
        if self.lambda_scm > 0:
            phi = self.features if self.features is not None else self.teacher.encoder
            with torch.no_grad():
                target = phi(i2)
            scm = scm_loss(phi(i1), target, labels, mode=self.scm_mode)
            loss = loss + self.lambda_scm * scm
            logs["scm"] = scm.detach()
        return loss, logs

    @torch.no_grad()
    def restore(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """What inference computes: the student alone."""
        return self.network(batch["lq"])

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """The student's ``psnr``/``ssim`` (and ``psnr_input``), plus ``teacher_psnr``: the teacher on ``lq``
        with the priors of ``hq`` (an upper reference the student cannot use at inference)."""
        scores = self.score(self.restore(batch), batch)
        was = self.teacher.training
        self.teacher.eval()
        teacher = self.score(self.teacher(batch["lq"], self.labels(batch)), batch)
        self.teacher.train(was)
        return {**scores, "teacher_psnr": teacher["psnr"], "teacher_ssim": teacher["ssim"]}
