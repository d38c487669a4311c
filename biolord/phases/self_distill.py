"""Phase 2 of BioLORD-2023: self-distillation.

The contrastive model (phase 1) knows concepts but loses some general sentence similarity; a
student trained to reproduce it keeps the concept knowledge, and a second teacher (the original
base model) on the sentence side keeps the general geometry (Remy et al., JAMIA 2024, section 2.3;
the paper's exact recipe is not public offline, so every term is configurable):

- ``mse_weight``: MSE(student(name), teacher(name)) + MSE(student(text), text_teacher(text));
- ``kl_weight``: KL between the teacher's and the student's in-batch similarity distributions
  (names x texts, both embedded by the concept teacher);
- ``contrastive_weight``: the InfoNCE of phase 1 on the pairs.

Teacher vectors come from ``biolord.teacher_cache``: each text goes through a teacher once, later
epochs and reruns read them from disk. The student starts from the base model (``model`` group) or
from the teacher (``phase.student_init``). Everything else (optimizer, GradCache, logging,
checkpoints) is the contrastive phase's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import OmegaConf

from biolord.encoder import Encoder
from biolord.losses_distill import embedding_mse, similarity_kl
from biolord.phases.contrastive import ContrastivePhase
from biolord.teacher_cache import FrozenTeacher, TeacherCache

log = logging.getLogger(__name__)


def teacher_spec(spec: str | None, what: str) -> str:
    """The configured teacher, or the error that says what to pass."""
    if not spec:
        raise ValueError(
            f"phase=self_distill needs {what}: e.g. teacher=outputs/contrastive/<run> (a run folder, its model/ "
            "folder, a sentence-transformers folder or a hub id)"
        )
    return str(spec)


def load_teacher(spec: str | None, what: str) -> Encoder:
    return Encoder.load(teacher_spec(spec, what))


class SelfDistillPhase(ContrastivePhase):
    @classmethod
    def initial_encoder(cls, cfg) -> Encoder:
        """The student: the base model (``model`` group) or a copy of the teacher (``phase.student_init``)."""
        init = cfg.phase.student_init
        if init == "base":
            return Encoder.from_config(cfg.model)
        if init != "teacher":
            raise ValueError(f"phase.student_init={init!r}: choose base (the model group) or teacher")
        return Encoder.load(teacher_spec(cfg.get("teacher"), "a teacher"), max_seq_length=cfg.model.get("max_seq_length"))

    def __init__(self, encoder: Encoder, cfg):
        """encoder: the student, from ``initial_encoder`` (train.py exports this module's encoder)."""
        phase = cfg.phase
        teacher = load_teacher(cfg.get("teacher"), "a teacher")
        if teacher.dim != encoder.dim:
            raise ValueError(
                f"teacher {cfg.teacher} has dimension {teacher.dim} but the student {encoder.source} has {encoder.dim}; "
                "self-distillation needs the same embedding size (pick a student of the teacher's family)"
            )
        super().__init__(encoder, cfg)
        w = phase.weights
        if min(w.mse, w.kl, w.contrastive) < 0 or w.mse + w.kl + w.contrastive <= 0:
            raise ValueError(f"phase.weights {OmegaConf.to_container(w)} must be >= 0 and not all 0")
        self.weights = w
        if self.loss_fn.matryoshka_dims and not w.contrastive:
            raise ValueError(
                f"phase.loss.matryoshka_dims={self.loss_fn.matryoshka_dims} applies to the contrastive term, but "
                "phase.weights.contrastive=0; set phase.weights.contrastive>0 or drop matryoshka_dims"
            )
        root = Path(str(phase.teacher_cache_dir))
        teacher.max_seq_length = encoder.max_seq_length  # the teacher sees what the student sees
        concept = FrozenTeacher(teacher)
        # teachers live in their caches, not as submodules: they are never trained, saved or moved
        self.name_cache = TeacherCache(root, concept, batch_size=phase.teacher_batch_size)  # names and, for KL, texts
        self.sentence_cache = self.name_cache  # the texts' MSE targets
        if phase.get("sentence_teacher"):
            # the base model teaches the sentence side: general sentence geometry is kept
            sentence = load_teacher(phase.sentence_teacher, "phase.sentence_teacher")
            sentence.max_seq_length = encoder.max_seq_length
            if sentence.dim != encoder.dim:
                raise ValueError(f"phase.sentence_teacher has dimension {sentence.dim}, the student {encoder.dim}")
            self.sentence_cache = TeacherCache(root, FrozenTeacher(sentence), batch_size=phase.teacher_batch_size)

    def batch_loss(self, anchors: torch.Tensor, positives: torch.Tensor, batch: dict) -> torch.Tensor:
        """anchors, positives: (B, d) student embeddings of the batch's names and texts."""
        w = self.weights
        t_names = self.name_cache.lookup(batch["names"]).to(anchors)  # (B, d)
        # the concept teacher's text vectors: KL targets, and MSE targets when it also teaches sentences
        t_texts = self.name_cache.lookup(batch["texts"]).to(positives) if w.kl else None  # (B, d)
        loss = anchors.new_zeros(())
        if w.mse:
            same = t_texts is not None and self.sentence_cache is self.name_cache
            t_sent = t_texts if same else self.sentence_cache.lookup(batch["texts"]).to(positives)  # (B, d)
            loss = loss + w.mse * (embedding_mse(anchors, t_names) + embedding_mse(positives, t_sent))
        if w.kl:
            loss = loss + w.kl * similarity_kl(anchors, positives, t_names, t_texts, scale=self.loss_fn.scale)
        if w.contrastive:
            loss = loss + w.contrastive * self.loss_fn(anchors, positives, batch["concept_id"])
        return loss

    def on_train_epoch_end(self) -> None:
        for name, cache in (("names", self.name_cache), ("sentences", self.sentence_cache)):
            log.info("teacher cache (%s): %s", name, cache.stats())
