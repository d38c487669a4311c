"""The schedule every evaluation callback shares: before training, every N optimizer steps, at the end.

Only rank 0 scores and logs (the other ranks go on and wait for it at the next collective); a step
is never scored twice (``on_train_end`` right after a periodic evaluation). Subclasses say what to
score in ``score`` and get ``history`` and logging to every Lightning logger for free.

The history is saved in every checkpoint, so that a resumed run's report and ``metrics.json``
hold the points scored before the kill; "before training" means step 0, not the resumed step.
"""

from __future__ import annotations

import json

import lightning as L


class PeriodicEvaluation(L.Callback):
    def __init__(self, every_n_steps: int = 0, at_start: bool = True, at_end: bool = True):
        self.every_n_steps = int(every_n_steps or 0)
        self.at_start, self.at_end = at_start, at_end
        self.history: list[dict] = []  # [{"step": int, **record}]

    def score(self, trainer, pl_module) -> tuple[dict, dict] | None:
        """(record kept in ``history``, flat metrics for the loggers), or None to skip."""
        raise NotImplementedError

    def evaluate(self, trainer, pl_module) -> None:
        step = trainer.global_step
        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        if self.history and self.history[-1]["step"] == step:
            return
        scored = self.score(trainer, pl_module)
        if scored is None:
            return
        record, metrics = scored
        self.history.append({"step": step, **record})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def state_dict(self) -> dict:
        # plain types only (numpy scalars become floats): checkpoints load with weights_only=True
        return {"history": json.loads(json.dumps(self.history, default=float))}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))

    def on_train_start(self, trainer, pl_module):
        if self.at_start and trainer.global_step == 0:
            self.evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.at_end:
            self.evaluate(trainer, pl_module)
