"""Distillation losses: student embeddings + frozen teacher embeddings in, scalar out. No Lightning.

Used by the self-distillation phase (BioLORD-2023, phase 2: the contrastive model teaches a
student so that general sentence similarity is kept while the concept knowledge stays; Remy et al.,
JAMIA 2024) and usable by any phase with a teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def embedding_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between (B, d) student and teacher vectors (Reimers & Gurevych 2020)."""
    return F.mse_loss(student, teacher)


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
