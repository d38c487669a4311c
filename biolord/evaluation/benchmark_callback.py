"""The benchmark suite as a Lightning callback: scores the live encoder during training.

Runs the configured benchmarks (``conf/benchmark/*.yaml`` names, paths or mappings) on
``pl_module.encoder`` before training, every N optimizer steps and at the end, and logs
``bench/<benchmark>/<metric>`` to every logger. Only rank 0 reads the files and computes; the
other ranks go on and wait at the next collective, as in ``callback.py``. No on-disk cache here:
the weights change between evaluations, so cached vectors would never be reused.
"""

from __future__ import annotations

import logging

from biolord.evaluation.embedder import TextEmbedder
from biolord.evaluation.periodic import PeriodicEvaluation
from biolord.evaluation.runner import build_benchmarks, evaluate_encoder

log = logging.getLogger(__name__)


class BenchmarkCallback(PeriodicEvaluation):
    def __init__(self, benchmarks, evals_dir=None, every_n_steps: int = 0, at_start: bool = True,
                 at_end: bool = True, batch_size: int = 128, benchmark_dirs=()):
        super().__init__(every_n_steps, at_start=at_start, at_end=at_end)
        self.names = list(benchmarks)
        self.evals_dir = evals_dir
        self.benchmark_dirs = list(benchmark_dirs or ())
        self.batch_size = batch_size
        self.benchmarks: list | None = None
        # history: [{"step": int, "bench/<name>/<metric>": float, ...}]

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

    def score(self, trainer, pl_module):
        if self.benchmarks is None:
            self.setup(trainer, pl_module)
        embedder = TextEmbedder(pl_module.encoder, self.batch_size)
        records = evaluate_encoder(embedder, self.benchmarks, f"step {trainer.global_step}")
        metrics = {f"bench/{r['benchmark']}/{k}": v for r in records for k, v in r["metrics"].items()}
        return metrics, metrics
