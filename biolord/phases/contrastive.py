"""Phase 1 of BioLORD-2023: concept names against their definitions and descriptions.

Glue only: the encoder (``biolord.encoder``) embeds both sides, the loss (``biolord.losses``)
scores local anchors against the positives of all ranks. Remy et al., JAMIA 2024, section 2.2.
The step, GradCache (``gradcache.mini_batch_size``), the length-sorted chunks
(``phase.tokens_per_forward``), logging and the optimizer are every phase's
(``biolord.phases.base``); the encoder, loss and sides are the pair phases' (``biolord.phases.pair``).

Under mixed precision (``trainer.precision=bf16-mixed``, what ``auto`` picks on CPUs with
AVX512-BF16 or AMX, where bf16 matmuls run about 2.4x faster) the encoder runs in bf16 and the loss in float32.

With a guide (``phase.guide.model``, GISTEmbed-style false-negative filtering, ``biolord.losses``)
the guide's vectors of the batch's names and texts come from a ``TeacherCache``: the frozen guide
runs once per text, and a rerun on the same data reads them from disk.
"""

from __future__ import annotations

import torch

from biolord.encoder import Encoder
from biolord.losses import InfoNCELoss
from biolord.phases.pair import PairPhase, pair_batch_line
from biolord.teacher_cache import TeacherCache


class ContrastivePhase(PairPhase):
    """The pair phase (``biolord.phases.pair``: encoder, InfoNCE loss, sides) scored by that loss alone."""

    def __init__(self, encoder: Encoder, loss: InfoNCELoss, guide: TeacherCache | None = None, **parts):
        """guide: the guide model's vectors (None: no guided filtering); it lives in its cache, not as a
        submodule, so it is never trained, saved or wrapped by DDP."""
        super().__init__(encoder, loss, **parts)
        self.guide = guide

    def loss_from_embeddings(self, batch: dict, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        guide = None
        if self.guide is not None:
            guide = (self.guide.lookup(batch["names"]).to(anchors), self.guide.lookup(batch["texts"]).to(positives))  # (B, g) each
        return self.loss_fn(anchors, positives, batch["concept_id"], guide=guide)  # (B, d) each -> scalar

    def describe(self) -> str:
        line = pair_batch_line(self.trainer.world_size * self.batch_size_per_device, self.loss_fn)
        if self.guide is not None:
            line += (f"; guided false-negative filter: candidates the guide scores above the pair's own score "
                     f"- {self.loss_fn.guide_margin:g} are masked")
        return line

    def caches(self) -> dict:
        return {"guide": self.guide} if self.guide is not None else {}
