"""BioLORD-2023-M: a multilingual student learns to put a translated name where the teacher puts the English one.

Reimers & Gurevych 2020 ("Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation"): loss = w_en * MSE(student(en), teacher(en)) + w_xx * MSE(student(xx), teacher(en)).
The teacher does not run here: its vectors come from ``biolord.teacher_cache.TeacherCache``
(precomputed before training, so every lookup is a hit; a text missing from the cache is encoded
once and stored). Glue only: the student is ``biolord.student.Student``, the metrics
``biolord.evaluation.distillation``.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from biolord.checkpoint import divergence_advice
from biolord.evaluation.distillation import distillation_metrics, format_metrics
from biolord.evaluation.periodic import PeriodicEvaluation
from biolord.phases.optim import clip_gradients, configure_optimizers

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


class MultilingualPhase(L.LightningModule):
    def __init__(self, student, cache, cfg):
        super().__init__()
        self.student = student
        self.cache = cache  # not a submodule: no weights, never moved or saved
        self.cfg = cfg
        self.en_weight = float(cfg.loss.en_weight)
        self.xx_weight = float(cfg.loss.xx_weight)
        self.cache_history: list[dict] = []  # per epoch: hits, misses, teacher_calls
        self.student.train()  # from_pretrained gives eval mode; training wants dropout on

    def on_train_start(self) -> None:
        per_device, world = self.cfg.data.batch_size_per_device, self.trainer.world_size
        log.info("batch: %d pairs per device x %d devices; loss %.2g*MSE(en) + %.2g*MSE(xx)",
                 per_device, world, self.en_weight, self.xx_weight)

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

    def training_step(self, batch, batch_idx):
        target = self.cache.lookup(batch["en_text"]).to(self.device)  # (B, d), teacher(en)
        student_en = self.student(batch["en"]).float()  # (B, d)
        student_xx = self.student(batch["xx"]).float()  # (B, d)
        loss_en = F.mse_loss(student_en, target)
        loss_xx = F.mse_loss(student_xx, target)
        loss = self.en_weight * loss_en + self.xx_weight * loss_xx
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}. " + divergence_advice(
                self.global_step, self.trainer.default_root_dir, self.cfg.optim.lr))
        n = target.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/mse_en", loss_en, batch_size=n)
        self.log("train/mse_xx", loss_xx, batch_size=n)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=n)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        return configure_optimizers(self, self.cfg.optim, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["biolord_config"] = OmegaConf.to_container(self.cfg, resolve=True)


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
