"""Losses: embeddings in, scalar out. No Lightning, no tokenizers.

``InfoNCELoss`` is the in-batch-negatives contrastive loss of BioLORD-2023 (Remy et al., JAMIA
2024, section "Contrastive phase"), identical in form to sentence-transformers'
``MultipleNegativesRankingLoss``: the anchor (a concept name) must pick its own positive (the
definition / description) among every positive of the *global* batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biolord import distributed


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    concept_ids: torch.Tensor | None = None,
    scale: float = 20.0,
    symmetric: bool = False,
) -> torch.Tensor:
    """InfoNCE over local anchors x candidates gathered from every rank (with gradient).

    Each rank scores its *local* anchors against the positives of all ranks, so the logits are
    (B, world*B) instead of (world*B, world*B): the layout that scales (open_clip #894). The
    label of local anchor i is ``rank*B + i``. Candidates of another pair that share the anchor's
    concept id are false negatives (two synonyms of one concept in the batch) and are masked out.

    anchors, positives: (B, d), L2-normalised (cosine similarity is the dot product).
    concept_ids: (B,) int64, or None for no masking.
    """
    batch = anchors.shape[0]
    all_positives = distributed.gather_with_grad(positives)  # (world*B, d)
    labels = torch.arange(batch, device=anchors.device) + distributed.rank() * batch  # (B,)
    mask = None
    if concept_ids is not None:
        all_ids = distributed.gather_no_grad(concept_ids)  # (world*B,)
        mask = _false_negative_mask(concept_ids, all_ids, labels)  # (B, world*B)

    logits = scale * anchors @ all_positives.T  # (B, world*B)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    loss = F.cross_entropy(logits, labels)

    if symmetric:
        # The positive must also pick its own anchor among all anchors (CLIP-style second term).
        all_anchors = distributed.gather_with_grad(anchors)  # (world*B, d)
        logits_t = scale * positives @ all_anchors.T  # (B, world*B)
        if mask is not None:
            logits_t = logits_t.masked_fill(mask, float("-inf"))
        loss = (loss + F.cross_entropy(logits_t, labels)) / 2
    return loss


def _false_negative_mask(
    local_ids: torch.Tensor, all_ids: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """True where a candidate shares the anchor's concept but is not the anchor's own positive."""
    same = local_ids[:, None] == all_ids[None, :]  # (B, world*B)
    own = torch.zeros_like(same)
    own[torch.arange(len(labels), device=labels.device), labels] = True
    return same & ~own


class InfoNCELoss(nn.Module):
    """Module wrapper so that the loss and its settings come from config (``phase.loss``)."""

    def __init__(self, scale: float = 20.0, symmetric: bool = False, mask_same_concept: bool = True):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"loss.scale must be positive, got {scale}")
        self.scale = scale
        self.symmetric = symmetric
        self.mask_same_concept = mask_same_concept

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, concept_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        ids = concept_ids if self.mask_same_concept else None
        return info_nce(anchors, positives, ids, scale=self.scale, symmetric=self.symmetric)
