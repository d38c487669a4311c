"""The LightningModule part the two pair phases share (contrastive, self_distill): one encoder trained
on ``(name, text)`` pairs, with phase 1's InfoNCE loss (``biolord.losses``).

A batch's sides are its tokenised names (``anchor``) and texts (``positive``), each (B, T_side);
the loss's scale is the one named when a run diverges. What each phase scores on the two (B, d)
embeddings (``loss_from_embeddings``) stays in its own module.
"""

from __future__ import annotations

from biolord.encoder import Encoder
from biolord.losses import InfoNCELoss
from biolord.phases.base import EmbeddingPhase


class PairPhase(EmbeddingPhase):
    def __init__(self, encoder: Encoder, loss: InfoNCELoss, **parts):
        """parts: ``EmbeddingPhase``'s values (optimizer, clip, batch size, config, GradCache, chunks)."""
        super().__init__(**parts)
        self.encoder = encoder
        self.loss_fn = loss
        self.loss_scale = loss.scale
        # from_pretrained returns modules in eval mode; training needs dropout on (as sentence-transformers).
        self.encoder.train()

    @property
    def network(self) -> Encoder:
        return self.encoder

    def sides(self, batch: dict):
        return [batch["anchor"], batch["positive"]]


def pair_batch_line(global_batch: int, loss: InfoNCELoss) -> str:
    """The in-batch negatives (and Matryoshka sizes) of a pair phase's loss, for the batch line."""
    msg = f"; each anchor sees {global_batch - 1} in-batch negatives"
    if loss.matryoshka_dims:
        msg += f"; Matryoshka dims {loss.matryoshka_dims} (weights {loss.matryoshka_weights})"
    return msg
