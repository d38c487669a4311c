"""Held-out name -> definition retrieval as a training callback (before, every N steps, at the end).

It scores the live encoder (``pl_module.encoder``) with the suite's held-out benchmark
(``heldout.HeldOutBenchmark``, the one held-out evaluator: ``biolord.evaluate benchmarks=[heldout]``
gives the same figures for the exported model) on the data module's held-out concepts, logs
``val/heldout_<metric>`` to every logger, and keeps the history so that the run can print a
before / after table.
"""

from __future__ import annotations

import logging
import time

from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.heldout import HeldOutBenchmark
from biolord.evaluation.periodic import PeriodicEvaluation

log = logging.getLogger(__name__)


class HeldOutRetrievalCallback(PeriodicEvaluation):
    def __init__(self, every_n_steps: int = 0, batch_size: int = 128, at_start: bool = True):
        super().__init__(every_n_steps, at_start=at_start, at_end=True)
        self.batch_size = batch_size
        self._warned = False

    def score(self, trainer, pl_module):
        heldout = trainer.datamodule.heldout
        if not heldout:
            if not self._warned:
                log.warning(
                    "held-out retrieval skipped: no held-out concept has a definition "
                    "(raise data.val_fraction, or add definition rows)"
                )
                self._warned = True
            return None
        start = time.perf_counter()
        # a fresh embedder each time: the weights changed since the last evaluation
        out = HeldOutBenchmark("heldout", heldout=heldout).run(TextEmbedder(pl_module.encoder, self.batch_size))
        scores = {**out["metrics"], "n": out["n"]}  # acc@1, mrr, n
        log.info(
            "held-out retrieval at step %d: acc@1 %.2f, MRR %.2f (n=%d, %.1fs)",
            trainer.global_step, scores["acc@1"], scores["mrr"], scores["n"], time.perf_counter() - start,
        )
        return scores, {f"val/heldout_{k}": v for k, v in scores.items() if k != "n"}
