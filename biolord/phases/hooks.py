"""What a phase adds to the one run path (``biolord.train.run``): the hooks, in the order they run.

The skeleton owns seeding, resume, the Trainer, checkpoints, loggers, callbacks from config,
rank-0 writing and the report; a phase owns its network, data, loss and export. Hooks read their
phase's own config sections (``cfg.phase``, ``cfg.model``, ``cfg.data``, ...); the LightningModule
they build gets values (``ModuleParts`` and its loss), never the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from omegaconf import OmegaConf

from biolord.phases.optim import GradientClip, Optimizer


@dataclass
class ModuleParts:
    """The values every phase's LightningModule gets from the skeleton (``EmbeddingPhase.__init__``)."""

    optimizer: Optimizer
    clip: GradientClip
    batch_size_per_device: int
    run_config: dict = field(repr=False)
    gradcache_mini_batch_size: int | None = None

    @classmethod
    def from_config(cls, cfg, batch_size_per_device: int) -> "ModuleParts":
        """The parts ``biolord.train.run`` gives every phase (and a bench script that fits one phase)."""
        return cls(Optimizer.from_config(cfg.optim), GradientClip.from_trainer_config(cfg.trainer), batch_size_per_device,
                   OmegaConf.to_container(cfg, resolve=True), OmegaConf.select(cfg, "gradcache.mini_batch_size"))

    def kwargs(self, tokens_per_forward: int | None = None) -> dict:
        return {**vars(self), "tokens_per_forward": tokens_per_forward}


@dataclass
class Report:
    """What rank 0 writes at the end: ``metrics.json`` content, the printed summary, the model card."""

    metrics: dict
    summary: str = ""
    card: str = ""  # the exported model's README.md ("" when nothing is exported)


class PhaseHooks:
    name = "phase"

    def __init__(self, cfg):
        self.cfg = cfg

    # ---- before any heavy work ----------------------------------------------------------------
    @property
    def batch_size_per_device(self) -> int:
        return self.cfg.data.batch_size_per_device

    @property
    def model_key(self) -> str:
        """The config key the network's architecture comes from (named by resume checks)."""
        return "model.name_or_path"

    @property
    def model_name(self) -> str:
        """The model the network is built from: ``model_key``'s value."""
        return str(OmegaConf.select(self.cfg, self.model_key))

    def check(self) -> None:
        """Fast checks of the phase's settings, before the run folder and the resume point are looked at."""

    def prepare(self) -> None:
        """Work the network needs first (after seeding): teachers, data its start depends on."""

    # ---- building -----------------------------------------------------------------------------
    def network(self) -> torch.nn.Module:
        """The network this phase trains and exports (its tokenizer feeds the data)."""
        raise NotImplementedError

    def data(self, network, stats_dir: Path | None) -> L.LightningDataModule:
        """The training data; ``stats_dir``: where to write data_stats.json (None on ranks > 0)."""
        raise NotImplementedError

    def module(self, network, data, parts: ModuleParts) -> L.LightningModule:
        raise NotImplementedError

    def callbacks(self, data) -> list[L.Callback]:
        """The phase's evaluation callbacks; the first one's ``history`` is the run's held-out history."""
        return []

    # ---- the end -------------------------------------------------------------------------------
    def outcome(self, module, callbacks: list) -> dict:
        """What ``run`` returns on every rank besides ``output_dir`` (the histories)."""
        return {}

    def report(self, network, data, module, callbacks: list, export: bool) -> Report:
        """Rank 0: the tables, ``metrics.json``'s content and, when ``export``, the card."""
        raise NotImplementedError

    def export(self, network, folder: Path, card: str) -> Path:
        """A sentence-transformers folder that gives the network's vectors."""
        raise NotImplementedError
