"""Exact resume: a killed run continues as if it had never stopped (same data order, same RNG).

Lightning restores weights, optimizer, scheduler and loop counters by itself; two things are left:

- **data position**: ``ResumableDataLoader`` exposes ``state_dict`` / ``load_state_dict``, which
  Lightning stores in the checkpoint (``loops.fit_loop.combined_loader``) and restores before the
  epoch resumes; the ``GlobalBatchSampler`` then skips the global batches already trained on.
  The count is of batches *trained* (``ExactResumeCallback`` increments it after each training
  batch), not batches fetched, since Lightning prefetches one batch ahead.
- **random state**: dropout draws from torch's RNG. ``ExactResumeCallback`` saves the torch, numpy
  and python RNG states with each checkpoint and restores them at the start of the first batch
  after a resume, i.e. after the DataLoader iterator (which itself draws a seed) was created.

What the config changes on resume is not left to the checkpoint: ``ChangedOptimSettings``.
"""

from __future__ import annotations

import logging
import random

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``GlobalBatchSampler`` whose position is saved in checkpoints."""

    def state_dict(self) -> dict:
        return {"epoch": self.batch_sampler.epoch, "trained": self.batch_sampler.trained}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.resume(int(state["epoch"]), int(state["trained"]))


def _rng_state() -> dict:
    """Plain types only (tensors, ints, floats), so that checkpoints load with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)  # a tuple with an ndarray in checkpoints written before
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ExactResumeCallback(L.Callback):
    def __init__(self):
        self._pending_rng: dict | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "trained"):
            sampler.trained += 1

    def state_dict(self) -> dict:
        return {"rng": _rng_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending_rng = state_dict.get("rng")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None


# settings Lightning restores from the checkpoint into each parameter group, so a changed value in
# the config would be ignored unless set again; the schedule's shape (optim.scheduler, warmup_*,
# trainer.max_steps) is rebuilt from the config on every start and follows a changed value by itself
GROUP_SETTINGS = ("lr", "weight_decay", "betas", "eps")
SCHEDULE_SETTINGS = ("scheduler", "warmup_ratio", "warmup_steps")


def changed_settings(old: dict, new: dict) -> dict[str, tuple]:
    """{key: (checkpoint value, config value)} for the optimizer settings that differ."""
    out = {}
    for key in GROUP_SETTINGS + SCHEDULE_SETTINGS:
        a, b = old.get(key), new.get(key)
        if key == "betas":
            a, b = (tuple(a) if a is not None else None), (tuple(b) if b is not None else None)
        if key in old and a != b:
            out[key] = (a, b)
    return out


class ChangedOptimSettings(L.Callback):
    """A resumed run uses the optimizer settings of its config, not the checkpoint's.

    Lightning restores each parameter group's ``lr``, ``weight_decay``, ``betas`` and ``eps`` from
    the checkpoint; a user who lowers ``optim.lr`` after a divergence and resumes would silently get
    the old one. Here every changed value is logged (key, checkpoint value, new value) and set again
    after the restore: the learning rate by rescaling the group's and the scheduler's base rates (the
    schedule keeps its position), the others as they are. ``optim``: the run's ``optim`` group.
    """

    def __init__(self, optim: dict):
        self.optim = dict(optim)
        self.changes: dict[str, tuple] = {}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        old = (checkpoint.get("biolord_config") or {}).get("optim") or {}
        self.changes = changed_settings(old, self.optim)
        if self.changes.get("lr", (1, 1))[0] == 0:
            raise ValueError(f"optim.lr changed on resume from 0 to {self.optim['lr']}: a rate of 0 cannot be "
                             "rescaled; start fresh with ckpt_path=none")

    def on_train_start(self, trainer, pl_module):
        if not self.changes:
            return
        for key, (old, new) in self.changes.items():
            how = "applied from this step" if key in GROUP_SETTINGS else "the schedule follows the new value"
            if trainer.is_global_zero:
                log.warning("optim.%s changed on resume: %s in the checkpoint, %s now (%s; ckpt_path=none starts "
                            "fresh)", key, old, new, how)
        for optimizer in trainer.optimizers:
            schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
            self._apply(optimizer, schedulers)

    def _apply(self, optimizer, schedulers) -> None:
        if "lr" in self.changes:
            old, new = self.changes["lr"]
            factor = float(new) / float(old)
            for group in optimizer.param_groups:
                group["lr"] *= factor
                if "initial_lr" in group:
                    group["initial_lr"] *= factor
            for scheduler in schedulers:
                scheduler.base_lrs = [base * factor for base in scheduler.base_lrs]
                scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        if "weight_decay" in self.changes:
            old, new = self.changes["weight_decay"]
            # biolord's first group is the decayed one (biolord.phases.optim); the other stays at 0
            for i, group in enumerate(optimizer.param_groups):
                if (old and group.get("weight_decay") == old) or (not old and i == 0):
                    group["weight_decay"] = new
        for key in ("betas", "eps"):
            if key in self.changes:
                for group in optimizer.param_groups:
                    group[key] = self.changes[key][1]
