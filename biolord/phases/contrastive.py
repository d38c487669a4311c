"""Phase 1 of BioLORD-2023: concept names against their definitions and descriptions.

Glue only: the encoder (``biolord.encoder``) embeds both sides, the loss (``biolord.losses``)
scores local anchors against the positives of all ranks. Remy et al., JAMIA 2024, section 2.2.
The step, GradCache (``gradcache.mini_batch_size``), the length-sorted chunks
(``phase.tokens_per_forward``), logging and the optimizer are every phase's
(``biolord.phases.base``); the encoder, loss and sides are the pair phases' (``biolord.phases.pair``).

Under mixed precision (``trainer.precision=bf16-mixed``, the CPU default: bf16 matmuls run about
2.4x faster on CPUs with AVX512-BF16 or AMX) the encoder runs in bf16 and the loss in float32.
"""

from __future__ import annotations

import torch

from biolord.phases.pair import PairPhase, pair_batch_line


class ContrastivePhase(PairPhase):
    """The pair phase (``biolord.phases.pair``: encoder, InfoNCE loss, sides) scored by that loss alone."""

    def loss_from_embeddings(self, batch: dict, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(anchors, positives, batch["concept_id"])  # (B, d) each -> scalar

    def describe(self) -> str:
        return pair_batch_line(self.trainer.world_size * self.batch_size_per_device, self.loss_fn)
