"""Distillation losses: student embeddings + frozen teacher embeddings in, scalar out. No Lightning.

Used by the self-distillation phase (BioLORD-2023, phase 2: the contrastive model teaches a
student so that general sentence similarity is kept while the concept knowledge stays; Remy et al.,
JAMIA 2024) and usable by any phase with a teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def squared_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||student_i - teacher_i||^2, for (B, d) vectors: the MSE distillation
    term of Reimers & Gurevych (2020), summed over the d dimensions rather than averaged.

    For L2-normalised vectors this is 2 - 2 cos, whatever d is. ``F.mse_loss`` divides it by d as
    well, which left the term 1/384 (MiniLM) or 1/768 (mpnet) the size of the InfoNCE and KL terms
    beside it: measured, a self-distillation student's sentence side stayed where the contrastive
    model had left it, as if the term were absent (docs/results.md, "the sentence teacher was
    inert"). Alone (the multilingual phase) the two differ by a constant factor that Adam ignores.
    """
    return (student - teacher).pow(2).sum(dim=-1).mean()


def similarity_kl(
    student_a: torch.Tensor,
    student_b: torch.Tensor,
    teacher_a: torch.Tensor,
    teacher_b: torch.Tensor,
    scale: float = 20.0,
    symmetric: bool = False,
) -> torch.Tensor:
    """KL(teacher || student) between in-batch similarity distributions.

    Row i of ``scale * a @ b.T`` is a distribution over the batch's candidates for anchor i; the
    student learns to rank the candidates as the teacher does (relational distillation), not only
    to copy vectors. All inputs (B, d), L2-normalised.
    """
    s = scale * student_a @ student_b.T  # (B, B)
    t = scale * teacher_a @ teacher_b.T  # (B, B)
    loss = F.kl_div(F.log_softmax(s, dim=1), F.log_softmax(t, dim=1), log_target=True, reduction="batchmean")
    if symmetric:
        loss_t = F.kl_div(F.log_softmax(s.T, dim=1), F.log_softmax(t.T, dim=1), log_target=True, reduction="batchmean")
        loss = (loss + loss_t) / 2
    return loss
