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
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader


class ResumableDataLoader(DataLoader):
    """A DataLoader over a ``GlobalBatchSampler`` whose position is saved in checkpoints."""

    def state_dict(self) -> dict:
        return {"epoch": self.batch_sampler.epoch, "trained": self.batch_sampler.trained}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.resume(int(state["epoch"]), int(state["trained"]))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
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
