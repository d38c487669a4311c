"""BioLORD-2023-M: a multilingual student learns to put a translated name where the teacher puts the English one.

Reimers & Gurevych 2020 ("Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation"): loss = w_en * MSE(student(en), teacher(en)) + w_xx * MSE(student(xx), teacher(en)).
The teacher does not run here: its vectors come from ``biolord.teacher_cache.TeacherCache``
(precomputed before training, so every lookup is a hit; a text missing from the cache is encoded
once and stored). Glue only: the student is ``biolord.student.Student``, the metrics
``biolord.evaluation.distillation``, the step, logging and optimizer every phase's
(``biolord.phases.base``), the run ``biolord.multilingual`` through ``biolord.train.run``.

The batches come from ``GlobalBatchSampler`` (``biolord.data.sampler``), as in the pair phases: one
plan of global batches from ``(seed, epoch)``, each rank its own slice (under DDP the ranks see
disjoint pairs), and a position that checkpoints save (exact resume, ``biolord.resume``).
"""

from __future__ import annotations

import hashlib
import logging
import time

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from biolord import distributed
from biolord.data.parallel import ParallelRow
from biolord.data.sampler import GlobalBatchSampler
from biolord.evaluation.distillation import distillation_metrics, format_metrics
from biolord.evaluation.periodic import PeriodicEvaluation
from biolord.phases.base import EmbeddingPhase

log = logging.getLogger(__name__)


class ParallelCollator:
    """Rows -> the student's tokenised English and translated names (each side padded on its own)."""

    def __init__(self, student):
        self.student = student

    def __call__(self, rows) -> dict:
        return {
            "en_text": [r.en for r in rows],
            "lang": [r.lang for r in rows],
            "en": self.student.tokenize([r.en for r in rows]),
            "xx": self.student.tokenize([r.xx for r in rows]),
        }


def concept_keys(rows: list[ParallelRow]) -> np.ndarray:
    """(N,) int64 key of each row's concept, for the sampler (which may keep a concept once a batch)."""
    return np.asarray([int.from_bytes(hashlib.blake2b(r.concept_id.encode(), digest_size=8).digest(), "little", signed=True)
                       for r in rows], dtype=np.int64)


class ParallelDataModule(L.LightningDataModule):
    """Training rows -> global batches of ``batch_size_per_device x world`` pairs, one slice per rank.

    The sampler is built in ``train_dataloader``, after the process group exists, so that it knows
    the world size and the rank. ``unique_concepts``: no concept twice in a global batch (its
    translations then go to different steps); ``group_by_length``: rows of similar length together.
    """

    def __init__(self, rows: list[ParallelRow], heldout: list[ParallelRow], collator: ParallelCollator,
                 batch_size_per_device: int, seed: int, num_workers: int = 0, unique_concepts: bool = False,
                 group_by_length: bool = False):
        super().__init__()
        self.rows, self.heldout, self.collator = rows, heldout, collator
        self.batch_size_per_device, self.seed, self.num_workers = int(batch_size_per_device), int(seed), int(num_workers)
        self.unique_concepts, self.group_by_length = unique_concepts, group_by_length

    def sampler(self, world_size: int | None = None, rank: int | None = None) -> GlobalBatchSampler:
        return GlobalBatchSampler(
            concept_keys=concept_keys(self.rows),
            lengths=np.asarray([len(r.en) + len(r.xx) for r in self.rows]),
            source_ids=np.zeros(len(self.rows), dtype=np.int64),
            batch_size=self.batch_size_per_device,
            world_size=distributed.world_size() if world_size is None else world_size,
            rank=distributed.rank() if rank is None else rank,
            seed=self.seed, unique_concepts=self.unique_concepts, group_by_length=self.group_by_length,
        )

    def train_dataloader(self):
        from biolord.resume import ResumableDataLoader

        return ResumableDataLoader(self.rows, batch_sampler=self.sampler(), collate_fn=self.collator,
                                   num_workers=self.num_workers, persistent_workers=self.num_workers > 0)


class MultilingualPhase(EmbeddingPhase):
    def __init__(self, student, cache, en_weight: float = 1.0, xx_weight: float = 1.0, **parts):
        """student: ``biolord.student.Student``; cache: the teacher's vectors (``TeacherCache``)."""
        super().__init__(**parts)
        self.student = student
        self.cache = cache  # not a submodule: no weights, never moved or saved
        self.en_weight, self.xx_weight = float(en_weight), float(xx_weight)
        self.cache_history: list[dict] = []  # per epoch: hits, misses, teacher_calls
        self.student.train()  # from_pretrained gives eval mode; training wants dropout on

    @property
    def network(self):
        return self.student

    def sides(self, batch: dict):
        return [batch["en"], batch["xx"]]

    def loss_from_embeddings(self, batch: dict, student_en: torch.Tensor, student_xx: torch.Tensor) -> torch.Tensor:
        target = self.cache.lookup(batch["en_text"]).to(student_en)  # (B, d), teacher(en)
        loss_en = F.mse_loss(student_en, target)  # student_en, student_xx: (B, d)
        loss_xx = F.mse_loss(student_xx, target)
        n = target.shape[0]
        self.log("train/mse_en", loss_en, batch_size=n)
        self.log("train/mse_xx", loss_xx, batch_size=n)
        return self.en_weight * loss_en + self.xx_weight * loss_xx

    def describe(self) -> str:
        return f"; loss {self.en_weight:g}*MSE(en) + {self.xx_weight:g}*MSE(xx)"

    def on_train_epoch_start(self) -> None:
        self.cache.reset_stats()
        self._epoch_open = True

    def on_train_epoch_end(self) -> None:
        self._epoch_open = False
        stats = {"epoch": self.current_epoch, "step": self.global_step, **self.cache.stats()}
        self.cache_history.append(stats)
        log.info("teacher cache, epoch %d: %d hits, %d misses, %d teacher calls",
                 stats["epoch"], stats["hits"], stats["misses"], stats["teacher_calls"])

    def on_train_end(self) -> None:
        # max_steps can stop an epoch half-way; its counters still belong in the history
        if getattr(self, "_epoch_open", False):
            self.on_train_epoch_end()
        super().on_train_end()  # the cache's last vectors written (EmbeddingPhase, via caches())

    def caches(self) -> dict:
        return {"teacher": self.cache}


class DistillationEvalCallback(PeriodicEvaluation):
    """Per-language MSE to the teacher and cross-lingual acc@1 on held-out concepts: at start, every N steps, at end."""

    def __init__(self, rows, every_n_steps: int = 0, batch_size: int = 64, at_start: bool = True):
        super().__init__(every_n_steps, at_start=at_start, at_end=True)
        self.rows = rows
        self.batch_size = int(batch_size)
        # history: [{"step": int, "metrics": {lang: {...}}}]

    def score(self, trainer, pl_module):
        start = time.perf_counter()
        metrics = distillation_metrics(pl_module.student, self.rows, pl_module.cache.lookup, self.batch_size)
        log.info("held-out at step %d (%.1fs): %s", trainer.global_step, time.perf_counter() - start,
                 format_metrics(metrics))
        flat = {f"val/{lang}_{k}": v for lang, m in metrics.items() for k, v in m.items() if k != "n"}
        return {"metrics": metrics}, flat
