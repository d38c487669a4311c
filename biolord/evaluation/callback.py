"""Held-out evaluation as a Lightning callback: before training, every N steps, and at the end.

It scores the live encoder (``pl_module.encoder``) with ``biolord.evaluation.retrieval`` on the
data module's held-out concepts, logs ``val/<metric>`` to every logger, and keeps the history so
that the run can print a before / after table. Only rank 0 computes and logs; the other ranks
simply go on (they wait for rank 0 at the next collective).
"""

from __future__ import annotations

import logging
import time

import lightning as L

from biolord.evaluation.retrieval import heldout_retrieval

log = logging.getLogger(__name__)


class HeldOutRetrievalCallback(L.Callback):
    def __init__(self, every_n_steps: int = 0, batch_size: int = 128, at_start: bool = True):
        self.every_n_steps = int(every_n_steps or 0)
        self.batch_size = batch_size
        self.at_start = at_start
        self.history: list[dict] = []  # [{"step": int, "acc@1": float, "mrr": float, "n": int}]
        self._warned = False

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        heldout = trainer.datamodule.heldout
        if not heldout:
            if not self._warned:
                log.warning(
                    "held-out retrieval skipped: no held-out concept has a definition "
                    "(raise data.val_fraction, or add definition rows)"
                )
                self._warned = True
            return
        start = time.perf_counter()
        scores = heldout_retrieval(pl_module.encoder, heldout.names, heldout.definitions, self.batch_size)
        step = trainer.global_step
        if self.history and self.history[-1]["step"] == step:
            return
        self.history.append({"step": step, **scores})
        log.info(
            "held-out retrieval at step %d: acc@1 %.2f, MRR %.2f (n=%d, %.1fs)",
            step, scores["acc@1"], scores["mrr"], scores["n"], time.perf_counter() - start,
        )
        metrics = {f"val/heldout_{k}": v for k, v in scores.items() if k != "n"}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_start(self, trainer, pl_module):
        if self.at_start:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.global_step > 0:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._evaluate(trainer, pl_module)
