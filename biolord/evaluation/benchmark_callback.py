"""The benchmark suite as a Lightning callback: scores the live encoder during training.

Runs the configured benchmarks (``conf/benchmark/*.yaml`` names, paths or mappings) on
``pl_module.encoder`` before training, every N optimizer steps and at the end, and logs
``bench/<benchmark>/<metric>`` to every logger. Only rank 0 reads the files and computes; the
other ranks go on and wait at the next collective, as in ``callback.py``. No on-disk cache here:
the weights change between evaluations, so cached vectors would never be reused.
"""

from __future__ import annotations

import logging

import lightning as L

from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.runner import build_benchmarks, evaluate_encoder

log = logging.getLogger(__name__)


class BenchmarkCallback(L.Callback):
    def __init__(self, benchmarks, evals_dir=None, every_n_steps: int = 0, at_start: bool = True,
                 at_end: bool = True, batch_size: int = 128, benchmark_dirs=()):
        self.names = list(benchmarks)
        self.evals_dir = evals_dir
        self.benchmark_dirs = list(benchmark_dirs or ())
        self.every_n_steps = int(every_n_steps or 0)
        self.at_start, self.at_end = at_start, at_end
        self.batch_size = batch_size
        self.benchmarks: list | None = None
        self.history: list[dict] = []  # [{"step": int, "bench/<name>/<metric>": float, ...}]

    @classmethod
    def from_config(cls, cfg) -> "BenchmarkCallback | None":
        """From a config block with ``benchmarks`` (and optional keys of ``__init__``); None when empty."""
        if cfg is None or not cfg.get("benchmarks"):
            return None
        return cls(
            list(cfg["benchmarks"]),
            evals_dir=cfg.get("evals_dir"),
            every_n_steps=cfg.get("every_n_steps", 0),
            at_start=cfg.get("at_start", True),
            at_end=cfg.get("at_end", True),
            batch_size=cfg.get("batch_size", 128),
            benchmark_dirs=cfg.get("benchmark_dirs") or (),
        )

    def setup(self, trainer, pl_module, stage=None):
        """Read and check every benchmark file once, before the first step (rank 0 only)."""
        if trainer.global_rank != 0 or self.benchmarks is not None:
            return
        datamodule = getattr(trainer, "datamodule", None)
        self.benchmarks = build_benchmarks(self.names, self.evals_dir, self.benchmark_dirs,
                                           heldout=getattr(datamodule, "heldout", None))

    def _evaluate(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        step = trainer.global_step
        if self.history and self.history[-1]["step"] == step:
            return
        if self.benchmarks is None:
            self.setup(trainer, pl_module)
        embedder = TextEmbedder(pl_module.encoder, self.batch_size, cache=None)
        records = evaluate_encoder(embedder, self.benchmarks, f"step {step}")
        metrics = {f"bench/{r['benchmark']}/{k}": v for r in records for k, v in r["metrics"].items()}
        self.history.append({"step": step, **metrics})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_start(self, trainer, pl_module):
        if self.at_start:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.at_end:
            self._evaluate(trainer, pl_module)
