"""Losses: embeddings in, scalar out. No Lightning, no tokenizers.

``InfoNCELoss`` is the in-batch-negatives contrastive loss of BioLORD-2023 (Remy et al., JAMIA
2024, section "Contrastive phase"), identical in form to sentence-transformers'
``MultipleNegativesRankingLoss``: the anchor (a concept name) must pick its own positive (the
definition / description) among every positive of the *global* batch. With Matryoshka dimensions
(``biolord.matryoshka``) the same loss is summed over prefixes of the embeddings; this module is the
one place where they are applied, so the plain step and GradCache (``biolord.gradcache``) share it.

Same-side negatives (``same_side``; GTE's "improved contrastive loss", Li et al. 2023, which
sentence-transformers' ``MultipleNegativesRankingLoss`` offers as ``directions`` with
``query_to_query`` / ``doc_to_doc``): each softmax also holds the other in-batch items of the query's
own side, so a name must be closer to its definition than to the batch's other names. Concept
benchmarks (MayoSRS, UMNSRS, linking) compare names with names, a geometry plain InfoNCE never
scores; this term gives it its own in-batch negatives at no extra forward.

Guided false-negative filtering (GISTEmbed, Solatorio 2024; sentence-transformers'
``GISTEmbedLoss``): a frozen guide model's vectors of the same pairs mark in-batch candidates the
guide finds at least as close to the anchor as its own positive (minus ``guide_margin``); they are
masked like same-concept candidates. Ontology batches hold many such near-duplicates (a disease and
its subtype, two descriptions that differ in one parent), which plain InfoNCE pushes apart.
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
    guide: tuple[torch.Tensor, torch.Tensor] | None = None,
    guide_margin: float = 0.0,
    same_side: bool = False,
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
    guide: the guide's (B, g) L2-normalised vectors of the same anchors and positives, or None: a
        candidate the guide scores above ``guide(anchor) . guide(own positive) - guide_margin`` is
        masked (in each direction with its own scores), the own positive never.
    same_side: the other anchors of the global batch are candidates for each anchor too (and, when
        symmetric, the other positives for each positive), except those of the same concept (or, without
        ``concept_ids``, itself): the softmax is over (B, 2*world*B) logits. Not with ``guide``.
    """
    if same_side and guide is not None:
        raise ValueError("phase.loss.same_side with phase.guide.model: the guide masks only the other side's "
                         "candidates; set one of them off")
    batch = anchors.shape[0]
    all_positives = distributed.gather_with_grad(positives)  # (world*B, d), gathered once for every dim
    all_anchors = distributed.gather_with_grad(anchors) if symmetric or same_side else None  # (world*B, d)
    labels = torch.arange(batch, device=anchors.device) + distributed.rank() * batch  # (B,)
    mask = same_mask = None
    if concept_ids is not None:
        all_ids = distributed.gather_no_grad(concept_ids)  # (world*B,)
        mask = _false_negative_mask(concept_ids, all_ids, labels)  # (B, world*B)
        if same_side:
            same_mask = concept_ids[:, None] == all_ids[None, :]  # (B, world*B): itself and its concept's pairs
    elif same_side:
        same_mask = _own_pairs(labels, batch * distributed.world_size())  # (B, world*B): itself
    mask_t = mask  # the positive -> anchor direction
    if guide is not None:
        g_mask, g_mask_t = _guide_masks(*guide, labels, guide_margin, symmetric)
        mask = g_mask if mask is None else mask | g_mask
        if symmetric:
            mask_t = g_mask_t if mask_t is None else mask_t | g_mask_t

    terms = dict(labels=labels, mask=mask, mask_t=mask_t, same_mask=same_mask, scale=scale, symmetric=symmetric)
    if not dims:
        return _info_nce_at(anchors, positives, all_positives, all_anchors, **terms)
    weights = weights or [1.0] * len(dims)
    loss = anchors.new_zeros(())
    for k, w in zip(dims, weights):
        if k > anchors.shape[1]:
            raise ValueError(f"matryoshka dimension {k} > embedding dimension {anchors.shape[1]}")
        a, p, all_p = (matryoshka.truncate(x, k) for x in (anchors, positives, all_positives))  # (B, k), (B, k), (world*B, k)
        all_a = matryoshka.truncate(all_anchors, k) if all_anchors is not None else None  # (world*B, k)
        loss = loss + w * _info_nce_at(a, p, all_p, all_a, **terms)
    return loss


def _info_nce_at(anchors, positives, all_positives, all_anchors, labels, mask, mask_t, same_mask, scale,
                 symmetric) -> torch.Tensor:
    """The loss at one embedding size: anchors, positives (B, k); all_* (world*B, k) or None;
    mask, mask_t: (B, world*B) bool or None, for the anchor -> positive and positive -> anchor terms;
    same_mask: (B, world*B) bool, the same-side candidates left out, or None: no same-side candidates."""
    logits = _direction(anchors, all_positives, all_anchors, mask, same_mask, scale)  # (B, world*B [x2])
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        # The positive must also pick its own anchor among all anchors (CLIP-style second term).
        logits_t = _direction(positives, all_anchors, all_positives, mask_t, same_mask, scale)
        loss = (loss + F.cross_entropy(logits_t, labels)) / 2
    return loss


def _direction(queries, candidates, same_side, mask, same_mask, scale) -> torch.Tensor:
    """Logits of one direction: queries (B, k) against the other side's candidates (world*B, k),
    then, with ``same_mask``, against their own side's (world*B, k): (B, world*B) or (B, 2*world*B);
    the label of query i stays its column in the first block."""
    logits = scale * queries @ candidates.T  # (B, world*B)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    if same_mask is None:
        return logits
    same = (scale * queries @ same_side.T).masked_fill(same_mask, float("-inf"))  # (B, world*B)
    return torch.cat([logits, same], dim=1)  # (B, 2*world*B)


def _false_negative_mask(
    local_ids: torch.Tensor, all_ids: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """True where a candidate shares the anchor's concept but is not the anchor's own positive."""
    same = local_ids[:, None] == all_ids[None, :]  # (B, world*B)
    return same & ~_own_pairs(labels, same.shape[1])


def _own_pairs(labels: torch.Tensor, candidates: int) -> torch.Tensor:
    """(B, candidates) bool, True at each local anchor's own positive (column ``labels[i]``)."""
    own = torch.zeros(len(labels), candidates, dtype=torch.bool, device=labels.device)
    own[torch.arange(len(labels), device=labels.device), labels] = True
    return own


@torch.no_grad()
def _guide_masks(
    guide_anchors: torch.Tensor, guide_positives: torch.Tensor, labels: torch.Tensor, margin: float, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """True where the guide scores a candidate above the own pair's score minus ``margin``.

    guide_anchors, guide_positives: (B, g) local guide vectors; candidates are gathered from every
    rank, as the loss's. Returns the (B, world*B) mask of anchor -> positives and, when symmetric,
    of positive -> anchors.
    """
    own = _own_pairs(labels, len(labels) * distributed.world_size())  # (B, world*B)
    pair = (guide_anchors * guide_positives).sum(1, keepdim=True)  # (B, 1): the guide's score of each own pair

    def above(queries, candidates):
        scores = queries @ distributed.gather_no_grad(candidates).T  # (B, world*B)
        return (scores > pair - margin) & ~own

    return above(guide_anchors, guide_positives), above(guide_positives, guide_anchors) if symmetric else None


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
        guide_margin: float = 0.0,
        same_side: bool = False,
    ):
        super().__init__()
        self.same_side = bool(same_side)
        if scale <= 0:
            raise ValueError(f"loss.scale must be positive, got {scale}")
        self.guide_margin = float(guide_margin)
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
        self, anchors: torch.Tensor, positives: torch.Tensor, concept_ids: torch.Tensor | None = None,
        guide: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """guide: the guide model's (B, g) vectors of the anchors and positives (``info_nce``), or None."""
        ids = concept_ids if self.mask_same_concept else None
        return info_nce(
            anchors, positives, ids, scale=self.scale, symmetric=self.symmetric,
            dims=self.matryoshka_dims, weights=self.matryoshka_weights, guide=guide, guide_margin=self.guide_margin,
            same_side=self.same_side,
        )
