"""Phase 2 of BioLORD-2023: self-distillation.

The contrastive model (phase 1) knows concepts but loses some general sentence similarity; a
student trained to reproduce it keeps the concept knowledge, and a second teacher (the original
base model) on the sentence side keeps the general geometry (Remy et al., JAMIA 2024, section 2.3;
the paper's exact recipe is not public offline, so every term is configurable):

- ``weights.mse``: ||student(name) - teacher(name)||^2 + ||student(text) - text_teacher(text)||^2, each
  averaged over the batch (``squared_distance``: summed over dimensions, so 2 - 2 cos for unit vectors);
- ``weights.kl``: KL between the teacher's and the student's in-batch similarity distributions
  (names x texts, both embedded by the concept teacher);
- ``weights.contrastive``: the InfoNCE of phase 1 on the pairs.

Teacher vectors come from ``biolord.teacher_cache`` (built by ``biolord.pair_phases``): each text
goes through a teacher once, later epochs and reruns read them from disk. The step, GradCache,
logging and the optimizer are every phase's (``biolord.phases.base``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from biolord.encoder import Encoder
from biolord.losses import InfoNCELoss
from biolord.losses_distill import similarity_kl, squared_distance
from biolord.phases.pair import PairPhase, pair_batch_line
from biolord.teacher_cache import TeacherCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillWeights:
    mse: float = 1.0
    kl: float = 1.0
    contrastive: float = 0.0

    def __post_init__(self):
        if min(self.mse, self.kl, self.contrastive) < 0 or self.mse + self.kl + self.contrastive <= 0:
            raise ValueError(f"phase.weights {vars(self)} must be >= 0 and not all 0")


class SelfDistillPhase(PairPhase):
    def __init__(self, encoder: Encoder, loss: InfoNCELoss, weights: DistillWeights, name_cache: TeacherCache,
                 sentence_cache: TeacherCache, **parts):
        """encoder: the student; loss: the contrastive term (its scale is also the KL temperature);
        name_cache: the concept teacher's vectors (names, and texts for KL); sentence_cache: the
        texts' MSE targets (the same cache when no sentence teacher is set)."""
        super().__init__(encoder, loss, **parts)  # the student, dropout on, as in phase 1
        if loss.matryoshka_dims and not weights.contrastive:
            raise ValueError(
                f"phase.loss.matryoshka_dims={loss.matryoshka_dims} applies to the contrastive term, but "
                "phase.weights.contrastive=0; set phase.weights.contrastive>0 or drop matryoshka_dims"
            )
        self.weights = weights
        # teachers live in their caches, not as submodules: they are never trained, saved or moved
        self.name_cache, self.sentence_cache = name_cache, sentence_cache

    def loss_from_embeddings(self, batch: dict, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """anchors, positives: (B, d) student embeddings of the batch's names and texts."""
        w = self.weights
        t_names = self.name_cache.lookup(batch["names"]).to(anchors)  # (B, d)
        # the concept teacher's text vectors: KL targets, and MSE targets when it also teaches sentences
        t_texts = self.name_cache.lookup(batch["texts"]).to(positives) if w.kl else None  # (B, d)
        terms = {}
        if w.mse:
            same = t_texts is not None and self.sentence_cache is self.name_cache
            t_sent = t_texts if same else self.sentence_cache.lookup(batch["texts"]).to(positives)  # (B, d)
            terms["mse"] = squared_distance(anchors, t_names) + squared_distance(positives, t_sent)
        if w.kl:
            terms["kl"] = similarity_kl(anchors, positives, t_names, t_texts, scale=self.loss_fn.scale)
        if w.contrastive:
            terms["contrastive"] = self.loss_fn(anchors, positives, batch["concept_id"])
        # each term on its own, unweighted: the balance of the weights is visible in the run's logs
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=anchors.shape[0])  # Lightning logs a detached copy
        return sum(getattr(w, name) * value for name, value in terms.items())

    def describe(self) -> str:
        w = self.weights
        terms = f"; loss {w.mse:g}*MSE + {w.kl:g}*KL + {w.contrastive:g}*InfoNCE"
        if not w.contrastive:
            return terms
        return terms + pair_batch_line(self.trainer.world_size * self.batch_size_per_device, self.loss_fn)

    def caches(self) -> dict:
        return {"names": self.name_cache, "sentences": self.sentence_cache}
