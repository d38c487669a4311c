"""Loggers from config (``logger`` group: csv, wandb, tensorboard, none), with W&B failing soft.

A cluster job must not die because W&B is down or the node has no internet: when the W&B service
cannot be reached (and ``WANDB_MODE`` does not already say offline/disabled), the W&B logger is
switched to offline mode with a warning; the run folder then holds the files for ``wandb sync``.

A resumed run continues ``csv/metrics.csv`` (``AppendingCSVLogger``) instead of replacing it, as
Lightning's CSVLogger does.
"""

from __future__ import annotations

import logging
import os
import socket

import csv

import hydra
import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_reachable(host: str = "api.wandb.ai", port: int = 443, timeout: float = 3.0) -> bool:
    base = os.environ.get("WANDB_BASE_URL")
    if base:
        from urllib.parse import urlparse

        parsed = urlparse(base)
        host, port = parsed.hostname or host, parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def instantiate_loggers(cfg: DictConfig, resume_step: int | None = None, resume_row: dict | None = None) -> list:
    """The configured loggers; ``resume_step``: the step a resumed run continues from (None: fresh),
    ``resume_row``: the checkpoint's copy of its last training row (``LastTrainRow``)."""
    if not cfg.get("logger"):
        return []
    loggers = []
    for name, conf in cfg.logger.items():
        if conf is None or "_target_" not in conf:
            continue
        conf = OmegaConf.to_container(conf, resolve=True)
        if conf["_target_"].endswith("WandbLogger"):
            mode = os.environ.get("WANDB_MODE", "")
            if not conf.get("offline") and mode not in ("offline", "disabled", "dryrun") and not wandb_reachable():
                log.warning(
                    "W&B is not reachable: logging offline to %s/wandb; upload later with `wandb sync`",
                    conf.get("save_dir"),
                )
                conf["offline"] = True
        logger = hydra.utils.instantiate(conf)
        if isinstance(logger, AppendingCSVLogger):
            logger.resume_step, logger.resume_row = resume_step, resume_row
        loggers.append(logger)
    return loggers


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that a resumed run keeps the rows logged before its checkpoint.

    Lightning deletes ``metrics.csv`` when its writer starts, so a killed and resumed run used to
    keep only the resumed steps. Here the writer keeps the rows that belong to steps before the
    checkpoint and appends; a fresh start (``resume_step`` None) still replaces the file. Rows are
    written as they are logged (``flush_logs_every_n_steps: 1`` in conf/logger/csv.yaml), so that a
    killed run loses at most the rows of the step it was killed in.
    """

    resume_step: int | None = None
    resume_row: dict | None = None

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self.resume_step, self.resume_row)
        return self._experiment


class LastTrainRow(L.Callback):
    """Keeps the checkpointed step's training row in the checkpoint (``biolord_log_row``).

    Lightning writes a step's checkpoint (``on_train_batch_end``) before it logs that step's
    training metrics, so a kill in between loses the row for good: the resumed run starts after
    it. The checkpoint keeps a copy, and the resumed ``metrics.csv`` gets it back when it is missing.
    """

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
        if metrics:
            # logged by Lightning with the number of optimizer steps before this batch, and the epoch
            checkpoint["biolord_log_row"] = {"epoch": trainer.current_epoch, "step": trainer.global_step - 1, **metrics}


class _ContinuingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: int | None, resume_row: dict | None):
        self.resume_step, self.resume_row = resume_step, resume_row
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        if self.resume_step is None:
            log.info("starting fresh: replacing %s", self.metrics_file_path)
            self._fs.rm_file(self.metrics_file_path)
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows if _before(row, self.resume_step)]
        dropped, restored = len(rows) - len(kept), 0
        row = self.resume_row
        if row and int(row["step"]) == self.resume_step - 1 and not any(
                r.get("epoch") not in (None, "") and int(float(r["step"])) == row["step"] for r in kept):
            kept.append(row)  # the kill came between the checkpoint and the row
            restored = 1
            header = sorted(set(header) | set(row)) if not set(row) <= set(header) else header
        tmp = f"{self.metrics_file_path}.tmp-{os.getpid()}"  # renamed into place: a kill now loses nothing
        with self._fs.open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(kept)
        self._fs.mv(tmp, self.metrics_file_path)
        self.metrics_keys = header
        log.info("resuming %s at step %d: kept %d rows, dropped %d logged after the checkpoint, restored %d "
                 "from the checkpoint (killed before it was logged)", self.metrics_file_path, self.resume_step,
                 len(kept) - restored, dropped, restored)


def _before(row: dict, step: int) -> bool:
    """Whether a row was logged before the checkpoint of ``step`` was written.

    Lightning logs a training batch's metrics (the rows with an ``epoch``) with the number of
    optimizer steps before it, after the checkpoint of that batch's step: rows up to ``step - 1``.
    The evaluation callbacks log at the step they score, before its checkpoint: rows up to ``step``.
    """
    logged = int(float(row.get("step") or -1))
    return logged < step if row.get("epoch") not in (None, "") else logged <= step


def log_config(loggers: list, cfg: DictConfig) -> None:
    """The resolved config, so that every run in W&B / TensorBoard / CSV says how it was made."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(container)


def log_model_artifact(loggers: list, model_dir: str, name: str) -> None:
    """Upload the exported sentence-transformers folder as a W&B artifact (``wandb_artifact=true``)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            artifact = wandb.Artifact(name=name, type="model")
            artifact.add_dir(model_dir)
            logger.experiment.log_artifact(artifact)


def finish_loggers(loggers: list) -> None:
    """Close W&B runs so that their files are complete (several runs in one process, e.g. tests)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger" and logger._experiment is not None:
            logger.experiment.finish()
