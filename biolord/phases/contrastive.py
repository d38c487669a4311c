"""Phase 1 of BioLORD-2023: concept names against their definitions and descriptions.

Glue only: the encoder (``biolord.encoder``) embeds both sides, the loss (``biolord.losses``)
scores local anchors against the positives of all ranks. Remy et al., JAMIA 2024, section 2.2.
The step, GradCache (``gradcache.mini_batch_size``), the length-sorted chunks
(``phase.tokens_per_forward``), logging and the optimizer are every phase's
(``biolord.phases.base``).

Under mixed precision (``trainer.precision=bf16-mixed``, the CPU default: bf16 matmuls run about
2.4x faster on CPUs with AVX512-BF16 or AMX) the encoder runs in bf16 and the loss in float32.
"""

from __future__ import annotations

import torch

from biolord.encoder import Encoder
from biolord.losses import InfoNCELoss
from biolord.phases.base import EmbeddingPhase


class ContrastivePhase(EmbeddingPhase):
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

    def loss_from_embeddings(self, batch: dict, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(anchors, positives, batch["concept_id"])  # (B, d) each -> scalar

    def describe(self) -> str:
        return pair_batch_line(self.trainer.world_size * self.batch_size_per_device, self.loss_fn)


def pair_batch_line(global_batch: int, loss: InfoNCELoss) -> str:
    """The in-batch negatives (and Matryoshka sizes) of a pair phase's loss, for the batch line."""
    msg = f"; each anchor sees {global_batch - 1} in-batch negatives"
    if loss.matryoshka_dims:
        msg += f"; Matryoshka dims {loss.matryoshka_dims} (weights {loss.matryoshka_weights})"
    return msg
