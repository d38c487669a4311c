"""Losses: embeddings in, scalar out. No Lightning, no tokenizers.

``InfoNCELoss`` is the in-batch-negatives contrastive loss of BioLORD-2023 (Remy et al., JAMIA
2024, section "Contrastive phase"), identical in form to sentence-transformers'
``MultipleNegativesRankingLoss``: the anchor (a concept name) must pick its own positive (the
definition / description) among every positive of the *global* batch. With Matryoshka dimensions
(``biolord.matryoshka``) the same loss is summed over prefixes of the embeddings; this module is the
one place where they are applied, so the plain step and GradCache (``biolord.gradcache``) share it.
"""

from __future__ import annotations

import logging

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biolord import distributed, matryoshka

log = logging.getLogger(__name__)


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    concept_ids: torch.Tensor | None = None,
    scale: float = 20.0,
    symmetric: bool = False,
    dims: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """InfoNCE over local anchors x candidates gathered from every rank (with gradient).

    Each rank scores its *local* anchors against the positives of all ranks, so the logits are
    (B, world*B) instead of (world*B, world*B): the layout that scales (open_clip #894). The
    label of local anchor i is ``rank*B + i``. Candidates of another pair that share the anchor's
    concept id are false negatives (two synonyms of one concept in the batch) and are masked out.

    anchors, positives: (B, d), L2-normalised (cosine similarity is the dot product).
    concept_ids: (B,) int64, or None for no masking.
    dims: Matryoshka prefix sizes (Kusupati et al., 2022), each <= d: the loss is
        ``sum_k weights[k] * InfoNCE(first k dims, re-normalised)``; None: the full vectors only.
    weights: one per dim (default 1 each).
    """
    batch = anchors.shape[0]
    all_positives = distributed.gather_with_grad(positives)  # (world*B, d), gathered once for every dim
    all_anchors = distributed.gather_with_grad(anchors) if symmetric else None  # (world*B, d)
    labels = torch.arange(batch, device=anchors.device) + distributed.rank() * batch  # (B,)
    mask = None
    if concept_ids is not None:
        all_ids = distributed.gather_no_grad(concept_ids)  # (world*B,)
        mask = _false_negative_mask(concept_ids, all_ids, labels)  # (B, world*B)

    if not dims:
        return _info_nce_at(anchors, positives, all_positives, all_anchors, labels, mask, scale)
    weights = weights or [1.0] * len(dims)
    loss = anchors.new_zeros(())
    for k, w in zip(dims, weights):
        if k > anchors.shape[1]:
            raise ValueError(f"matryoshka dimension {k} > embedding dimension {anchors.shape[1]}")
        a, p, all_p = (matryoshka.truncate(x, k) for x in (anchors, positives, all_positives))  # (B, k), (B, k), (world*B, k)
        all_a = matryoshka.truncate(all_anchors, k) if all_anchors is not None else None  # (world*B, k)
        loss = loss + w * _info_nce_at(a, p, all_p, all_a, labels, mask, scale)
    return loss


def _info_nce_at(anchors, positives, all_positives, all_anchors, labels, mask, scale) -> torch.Tensor:
    """The loss at one embedding size: anchors, positives (B, k); all_* (world*B, k) or None."""
    logits = scale * anchors @ all_positives.T  # (B, world*B)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    loss = F.cross_entropy(logits, labels)
    if all_anchors is not None:
        # The positive must also pick its own anchor among all anchors (CLIP-style second term).
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
    """Module wrapper so that the loss and its settings come from config (``phase.loss``).

    model_dim: the encoder's embedding size, against which ``matryoshka_dims`` are checked when the
    module is built (a bad size fails before any training step).
    """

    def __init__(
        self,
        scale: float = 20.0,
        symmetric: bool = False,
        mask_same_concept: bool = True,
        matryoshka_dims: Sequence[int] | None = None,
        matryoshka_weights: Sequence[float] | None = None,
        model_dim: int | None = None,
    ):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"loss.scale must be positive, got {scale}")
        self.scale = scale
        self.symmetric = symmetric
        self.mask_same_concept = mask_same_concept
        self.matryoshka_dims = matryoshka.check_dims(matryoshka_dims, model_dim, "phase.loss.matryoshka_dims")
        self.matryoshka_weights = matryoshka.check_weights(
            matryoshka_weights, self.matryoshka_dims, "phase.loss.matryoshka_weights"
        )
        if self.matryoshka_dims and model_dim and max(self.matryoshka_dims) < model_dim:
            # e.g. model.name_or_path set to a 768-dim model under model=minilm's [384, 256, 128, 64]
            log.warning("phase.loss.matryoshka_dims=%s: none is the model's full %d dims, so the full vector is "
                        "not trained directly; add %d (or set model.matryoshka_dims for this model)",
                        self.matryoshka_dims, model_dim, model_dim)

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, concept_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        ids = concept_ids if self.mask_same_concept else None
        return info_nce(
            anchors, positives, ids, scale=self.scale, symmetric=self.symmetric,
            dims=self.matryoshka_dims, weights=self.matryoshka_weights,
        )
